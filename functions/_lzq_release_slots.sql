-- _lzq_release_slots(job_ids): free the limit_to slots of jobs leaving dispatched/running.
-- Called by lzq_finish, lzq_handback, lzq_cancel and lzq_sweep. Jobs parked on those limits are
-- woken by _lzq_wake_parked, so a full limit costs claims nothing until a slot frees. Cheap when no
-- slots are held (partial index).
CREATE OR REPLACE FUNCTION _lzq_release_slots(job_ids bigint[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_keys text[];
BEGIN
    WITH freed AS (
        UPDATE lzq_slots AS s SET job_id = NULL WHERE s.job_id = ANY (job_ids) RETURNING s.limit_key
    )
    SELECT array_agg(DISTINCT freed.limit_key) INTO v_keys FROM freed;
    IF v_keys IS NOT NULL THEN
        PERFORM _lzq_wake_parked(v_keys);
    END IF;
END;
$$;

COMMENT ON FUNCTION _lzq_release_slots(bigint[]) IS
    'Free the limit_to slots of these jobs and wake jobs parked on those limits.';
