-- lzq_finish(worker_id, reports): the finish fence; records outcomes, returns those applied.
-- Called by workers with a batch of reports, committed before the RabbitMQ messages are acked:
--   [{"id": 1, "attempt": 1, "outcome": "succeeded"|"retry"|"failed", "error": "...",
--     "retry_delay_s": 0.5}, ...]
-- A report applies only while the job is `running` this attempt on this worker; a late report from
-- a zombie worker (its job was swept and restarted) matches no row and is not returned.
-- Moves running -> succeeded; running -> scheduled (retry after retry_delay_s, or the exponential
-- backoff) or ready (retry with delay 0); running -> failed (outcome failed, or attempts spent).
-- Then, in the same transaction: frees the jobs' limit_to slots, releases or cancels the dependents of
-- jobs that became final, creates the next run of recurring jobs that completed, and re-evaluates
-- soon the readiness checks of jobs of the same classes.
-- Wakes sleeping superqueuers: a finished job frees a slot (payload chr(31) || queue), a retried
-- one is ready again (payload: the queue).
CREATE OR REPLACE FUNCTION lzq_finish(worker_id text, reports jsonb)
RETURNS TABLE (id bigint, status text)
LANGUAGE plpgsql
-- Generic plans, no JIT, no sequential scans: as lzq_claim, and for the same reasons (statements by
-- primary key and partial index, re-planned per call by default; plans made on an empty table).
SET plan_cache_mode = force_generic_plan
SET jit = off
SET enable_seqscan = off
AS $$
#variable_conflict use_column
BEGIN
    -- Lock the reported jobs in id order, as pushes lock their dependencies: no deadlock between a
    -- batch of reports and a push depending on several of them.
    PERFORM 1 FROM lzq_jobs AS j
      WHERE j.id = ANY (ARRAY(SELECT r.id FROM jsonb_to_recordset(reports) AS r(id bigint)))
      ORDER BY j.id FOR UPDATE;
    RETURN QUERY SELECT * FROM _lzq_finish_locked(lzq_finish.worker_id, reports);
END;
$$;

COMMENT ON FUNCTION lzq_finish(text, jsonb) IS
    'Worker finish fence: running -> succeeded | scheduled | ready | failed for reports [{id, attempt, outcome, error, retry_delay_s}].';
