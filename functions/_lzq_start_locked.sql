-- _lzq_start_locked(worker_id, deliveries): lzq_start's work, for a caller that already holds the
-- delivered jobs' row locks (lzq_start, lzq_finish_and_start); see lzq_start for the contract.
CREATE OR REPLACE FUNCTION _lzq_start_locked(worker_id text, deliveries jsonb)
RETURNS TABLE (id bigint, dispatch_token uuid, job_name text, params jsonb, queue_name text,
               priority smallint, fairness_key text, max_failures integer, attempt integer,
               created_at timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_ids bigint[];
BEGIN
    -- The deliveries that pass the fence, each job looked up by id (LATERAL ... LIMIT 1: one
    -- primary-key probe per delivery). Filtering the UPDATE on status instead lets the planner scan
    -- every in-flight job through lzq_jobs_inflight_idx (dead entries and all) whenever statistics
    -- call that set small: 1.3 ms to start one job with 1,000 in flight, against 0.2. The rows are
    -- locked, so what passes here is what the UPDATE finds.
    v_ids := ARRAY(
        SELECT d.id
          FROM jsonb_to_recordset(deliveries) AS d(id bigint, token uuid)
         CROSS JOIN LATERAL (SELECT j.status, j.dispatch_token, j.worker_id
                               FROM lzq_jobs AS j WHERE j.id = d.id LIMIT 1) AS j
         WHERE j.dispatch_token = d.token
           AND (j.status = 'dispatched' OR (j.status = 'running' AND j.worker_id = _lzq_start_locked.worker_id)));
    RETURN QUERY
    UPDATE lzq_jobs AS j
       SET status = 'running',
           attempts = CASE WHEN j.status = 'dispatched' THEN j.attempts + 1 ELSE j.attempts END,
           started_at = CASE WHEN j.status = 'dispatched' THEN now() ELSE j.started_at END,
           lease_expires_at = NULL,
           worker_id = _lzq_start_locked.worker_id
     WHERE j.id = ANY (v_ids)
    RETURNING j.id, j.dispatch_token, j.job_name, j.params, j.queue_name, j.priority, j.fairness_key,
              j.max_failures, j.attempts, j.created_at;
END;
$$;

COMMENT ON FUNCTION _lzq_start_locked(text, jsonb) IS
    'lzq_start without its lock round: for callers holding the delivered jobs'' row locks.';
