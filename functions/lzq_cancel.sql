-- lzq_cancel(job_id): cancel a job that has not started; returns true if it was cancelled.
-- Called by users (plain SQL or lzq.Client.cancel). Moves waiting|scheduled|ready|dispatched ->
-- cancelled (a dispatched job's message is then dropped by the start fence). A running or finished
-- job is left alone and false is returned. Raises P0002 (no_data_found) if there is no such job.
-- Its waiting dependents are cancelled with it (transitively), and a limit_to slot it held is freed.
CREATE OR REPLACE FUNCTION lzq_cancel(job_id bigint)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
BEGIN
    UPDATE lzq_jobs AS j
       SET status = 'cancelled', finished_at = now(), lease_expires_at = NULL
     WHERE j.id = job_id AND j.status IN ('waiting', 'scheduled', 'ready', 'dispatched');
    IF FOUND THEN
        PERFORM _lzq_release_slots(ARRAY[job_id]);
        PERFORM _lzq_resolve_dependents(ARRAY[job_id]);
        RETURN true;
    END IF;
    SELECT j.status INTO v_status FROM lzq_jobs AS j WHERE j.id = job_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('job %s not found', job_id),
                              COLUMN = 'job_id';
    END IF;
    RETURN false;
END;
$$;

COMMENT ON FUNCTION lzq_cancel(bigint) IS
    'Cancel a job that has not started yet; true if cancelled, false if running or finished; P0002 if unknown.';
