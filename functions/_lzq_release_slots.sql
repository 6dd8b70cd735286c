-- _lzq_release_slots(job_ids): free the limit_to slots of jobs leaving dispatched/running.
-- Called by lzq_finish, lzq_handback, lzq_cancel and lzq_sweep. For each freed slot, one job
-- waiting on that full limit goes back to `ready` (best nice level first, then oldest), so a full
-- limit costs claims nothing until a slot frees. Cheap when no slots are held (partial index).
CREATE OR REPLACE FUNCTION _lzq_release_slots(job_ids bigint[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_keys text[];
    v_counts integer[];
    v_queues text[];
BEGIN
    WITH freed AS (
        UPDATE lzq_slots AS s SET job_id = NULL WHERE s.job_id = ANY (job_ids) RETURNING s.limit_key
    )
    SELECT array_agg(f.limit_key), array_agg(f.n) INTO v_keys, v_counts
      FROM (SELECT freed.limit_key, count(*)::integer AS n FROM freed GROUP BY freed.limit_key) AS f;
    IF v_keys IS NULL THEN
        RETURN;
    END IF;

    WITH wanted AS (
        SELECT w.id
          FROM unnest(v_keys, v_counts) AS k(limit_key, n)
          CROSS JOIN LATERAL (
              SELECT j.id
                FROM lzq_jobs AS j
               WHERE j.status = 'waiting' AND j.waiting_on_limit = k.limit_key
               ORDER BY j.priority, j.id
               LIMIT k.n
                 FOR UPDATE SKIP LOCKED) AS w
    ), woken AS (
        UPDATE lzq_jobs AS j
           SET status = 'ready', waiting_on_limit = NULL
          FROM wanted
         WHERE j.id = wanted.id
        RETURNING j.queue_name
    )
    SELECT array_agg(DISTINCT woken.queue_name) INTO v_queues FROM woken;
    PERFORM _lzq_wake(q) FROM unnest(v_queues) AS q;
END;
$$;

COMMENT ON FUNCTION _lzq_release_slots(bigint[]) IS
    'Free the limit_to slots of these jobs and make as many jobs waiting on those limits ready.';
