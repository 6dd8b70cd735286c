-- lzq_claim(max_jobs, lease_s, margin_per_worker, dead_after_s): take ready jobs for free worker slots.
-- Called by the superqueuer, which commits, then publishes each {id, token} to RabbitMQ.
-- Moves ready -> dispatched, stamping a fresh dispatch_token and a lease of lease_s seconds (the sweep
-- takes the job back if no worker starts it in time: a crash between this commit and the publish
-- costs a delay, never a job). Moves ready -> waiting a job one of whose limit_to is full
-- (_lzq_take_slots): it leaves the ready index until _lzq_release_slots frees a slot, and the credit
-- it would have used goes to the next jobs (a few rounds per call at most).
-- Credit: per queue, the slots of live, non-stopping workers (+ margin_per_worker each) minus the
-- jobs already dispatched or running. Jobs stay `ready` in PostgreSQL until a slot is free, so order
-- is decided when a slot frees, not by RabbitMQ's FIFO.
-- Locks: a transaction-level advisory lock per queue (try-lock: a queue another superqueuer is
-- claiming right now is skipped, it will spend that credit), so two superqueuers never spend the
-- same credit; the claimed rows via FOR UPDATE SKIP LOCKED; limit slots likewise.
CREATE OR REPLACE FUNCTION lzq_claim(max_jobs integer, lease_s integer DEFAULT 60,
                                     margin_per_worker integer DEFAULT 1, dead_after_s integer DEFAULT 30)
RETURNS TABLE (id bigint, dispatch_token uuid, queue_name text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    c_max_rounds constant integer := 8;
    v_queue record;
    v_job record;
    v_inflight integer;
    v_credit integer;
    v_claimed integer;
    v_left integer := max_jobs;
    v_ids bigint[];
    v_any_limited boolean;
    v_full_limit text;
    v_blocked boolean;
BEGIN
    FOR v_queue IN
        SELECT q.name, sum(w.slots + margin_per_worker)::integer AS capacity
          FROM lzq_workers AS w, unnest(w.queues) AS q(name)
         WHERE w.heartbeat_at > now() - make_interval(secs => dead_after_s)
           AND NOT w.stopping
         GROUP BY q.name
         ORDER BY q.name
    LOOP
        EXIT WHEN v_left <= 0;
        CONTINUE WHEN NOT pg_try_advisory_xact_lock(hashtextextended('lzq_claim:' || v_queue.name, 0));
        -- A new statement, a new snapshot: this count sees claims other superqueuers committed.
        SELECT count(*) INTO v_inflight
          FROM lzq_jobs AS j
         WHERE j.queue_name = v_queue.name AND j.status IN ('dispatched', 'running');

        FOR v_round IN 1 .. c_max_rounds LOOP
            v_credit := least(v_left, v_queue.capacity - v_inflight);
            EXIT WHEN v_credit <= 0;
            SELECT array_agg(picked.id ORDER BY picked.priority, picked.id), bool_or(picked.limits <> '[]')
              INTO v_ids, v_any_limited
              FROM (SELECT j.id, j.priority, j.limits
                      FROM lzq_jobs AS j
                     WHERE j.status = 'ready' AND j.queue_name = v_queue.name
                     ORDER BY j.priority, j.id
                     LIMIT v_credit
                       FOR UPDATE SKIP LOCKED) AS picked;
            EXIT WHEN v_ids IS NULL;

            v_blocked := false;
            IF v_any_limited THEN
                FOR v_job IN
                    SELECT j.id, j.limits FROM lzq_jobs AS j
                     WHERE j.id = ANY (v_ids) AND j.limits <> '[]'
                     ORDER BY j.priority, j.id
                LOOP
                    v_full_limit := _lzq_take_slots(v_job.id, v_job.limits);
                    IF v_full_limit IS NOT NULL THEN
                        UPDATE lzq_jobs AS j SET status = 'waiting', waiting_on_limit = v_full_limit
                         WHERE j.id = v_job.id;
                        v_ids := array_remove(v_ids, v_job.id);
                        v_blocked := true;
                    END IF;
                END LOOP;
            END IF;

            RETURN QUERY
            UPDATE lzq_jobs AS j
               SET status = 'dispatched',
                   dispatch_token = gen_random_uuid(),
                   lease_expires_at = now() + make_interval(secs => lease_s)
             WHERE j.id = ANY (v_ids) AND j.status = 'ready'
            RETURNING j.id, j.dispatch_token, j.queue_name;
            GET DIAGNOSTICS v_claimed = ROW_COUNT;
            v_left := v_left - v_claimed;
            v_inflight := v_inflight + v_claimed;
            EXIT WHEN NOT v_blocked;
        END LOOP;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION lzq_claim(integer, integer, integer, integer) IS
    'Superqueuer: ready -> dispatched for up to max_jobs jobs, within the free worker slots and limit_to slots; returns (id, dispatch_token, queue_name).';
