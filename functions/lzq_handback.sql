-- lzq_handback(worker_id, deliveries): give dispatched or running jobs back to `ready` at once.
-- Called by workers (jobs assigned to them that they will not run: lzq_undelivered, lzq_worker_exit)
-- and by the superqueuer (worker_id NULL) for messages RabbitMQ returned as unroutable, which no
-- worker received. deliveries: [{"id": 1, "token": "<uuid>"}, ...].
-- Moves dispatched -> ready (token must still be current) and running -> ready (token current and
-- running on this worker; with worker_id NULL, on any worker). A handed-back run was interrupted,
-- not failed: its attempt is not counted.
-- Frees their limit_to slots. Returns the ids handed back. Wakes sleeping superqueuers.
CREATE OR REPLACE FUNCTION lzq_handback(worker_id text, deliveries jsonb)
RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_ids bigint[];
    v_queues text[];
BEGIN
    -- Lock in id order, as pushes lock the jobs they depend on: no deadlock with a push.
    PERFORM 1 FROM lzq_jobs AS j
      WHERE j.id = ANY (ARRAY(SELECT d.id FROM jsonb_to_recordset(deliveries) AS d(id bigint)))
      ORDER BY j.id FOR UPDATE;
    WITH back AS (
        UPDATE lzq_jobs AS j
           SET status = 'ready',
               attempts = CASE WHEN j.status = 'running' THEN j.attempts - 1 ELSE j.attempts END,
               lease_expires_at = NULL,
               started_at = NULL,
               worker_id = NULL
          FROM jsonb_to_recordset(deliveries) AS d(id bigint, token uuid)
         WHERE j.id = d.id AND j.dispatch_token = d.token
           AND (j.status = 'dispatched'
                OR (j.status = 'running'
                    AND (lzq_handback.worker_id IS NULL OR j.worker_id = lzq_handback.worker_id)))
        RETURNING j.id, j.queue_name
    )
    SELECT array_agg(back.id), array_agg(DISTINCT back.queue_name) INTO v_ids, v_queues FROM back;

    PERFORM _lzq_release_slots(v_ids);
    PERFORM _lzq_wake(q) FROM unnest(v_queues) AS q;
    RETURN QUERY SELECT unnest(v_ids);
END;
$$;

COMMENT ON FUNCTION lzq_handback(text, jsonb) IS
    'Give jobs back: dispatched|running -> ready for deliveries [{id, token}] (running ones from their own worker, or any with worker_id NULL).';
