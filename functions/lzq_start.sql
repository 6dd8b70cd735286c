-- lzq_start(worker_id, deliveries): the start fence; returns the jobs this worker may now run.
-- Called by workers for a batch of RabbitMQ deliveries, [{"id": 1, "token": "<uuid>"}, ...].
-- Moves dispatched -> running only when the token is the job's current dispatch_token, counting the
-- attempt. A stale or duplicate delivery (expired lease, redelivery, cancelled job) matches no row
-- and is simply not returned: the worker acks and drops it. So each dispatch starts at most once.
-- Idempotent for the worker that started it: a retry after a lost reply (the commit happened, the
-- answer did not arrive) returns the running job again without counting another attempt. The
-- worker itself refuses a second delivery of a job it is already running.
CREATE OR REPLACE FUNCTION lzq_start(worker_id text, deliveries jsonb)
RETURNS TABLE (id bigint, dispatch_token uuid, job_name text, params jsonb, queue_name text,
               priority smallint, fairness_key text, max_failures integer, attempt integer,
               created_at timestamptz)
LANGUAGE plpgsql
-- Generic plans, no JIT, no sequential scans: as lzq_claim, and for the same reasons (statements by
-- primary key and partial index, re-planned per call by default; plans made on an empty table).
SET plan_cache_mode = force_generic_plan
SET jit = off
SET enable_seqscan = off
AS $$
#variable_conflict use_column
BEGIN
    -- Lock in id order, as pushes lock the jobs they depend on: no deadlock with a push.
    PERFORM 1 FROM lzq_jobs AS j
      WHERE j.id = ANY (ARRAY(SELECT d.id FROM jsonb_to_recordset(deliveries) AS d(id bigint)))
      ORDER BY j.id FOR UPDATE;
    RETURN QUERY SELECT * FROM _lzq_start_locked(lzq_start.worker_id, deliveries);
END;
$$;

COMMENT ON FUNCTION lzq_start(text, jsonb) IS
    'Worker start fence: dispatched -> running for deliveries [{id, token}] whose token is current.';
