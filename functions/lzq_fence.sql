-- lzq_fence(job_id, attempt): fence a handler's side effect with its job's attempt.
-- Called by handlers (lzq.fence(conn, job_options)) inside their own transaction, before writing.
-- Succeeds only while the job is still `running` that attempt, and then holds a FOR SHARE lock on
-- the job's row until the caller's transaction ends: the sweep cannot give the job to another
-- worker in between (its UPDATE waits), and a write fenced after a hand-over fails instead of
-- overlapping the new run. This is what makes "never twice at the same time" hold for side effects
-- even when a worker froze past its lease (a thawing thread cannot be stopped in time).
-- Raises 55000 (object_not_in_prerequisite_state) when the attempt is no longer current.
CREATE OR REPLACE FUNCTION lzq_fence(job_id bigint, attempt integer)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM lzq_jobs AS j
      WHERE j.id = lzq_fence.job_id AND j.attempts = lzq_fence.attempt AND j.status = 'running'
        FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '55000',
            MESSAGE = format('job %s attempt %s is no longer running here: its lease was lost', job_id, attempt);
    END IF;
END;
$$;

COMMENT ON FUNCTION lzq_fence(bigint, integer) IS
    'Handlers: fence a write with the job attempt (FOR SHARE until commit); 55000 if the lease was lost.';
