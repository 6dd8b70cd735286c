-- lzq_checks_due(max_jobs, lease_s): waiting jobs whose readiness checks the superqueuer should
-- evaluate now. Called by the superqueuer, which evaluates them in Python (it imports --app) and
-- reports with lzq_checks_done. Moves no state: pushes check_at lease_s ahead so other superqueuers
-- leave these jobs alone meanwhile (a superqueuer dying mid-evaluation only delays them).
-- Skips rows others hold (FOR UPDATE SKIP LOCKED).
CREATE OR REPLACE FUNCTION lzq_checks_due(max_jobs integer, lease_s integer DEFAULT 30)
RETURNS TABLE (id bigint, job_name text, params jsonb, queue_name text, priority smallint,
               fairness_key text, max_failures integer, checks text[])
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH due AS (
        SELECT j.id
          FROM lzq_jobs AS j
         WHERE j.status = 'waiting' AND j.unmet_deps = 0 AND j.checks <> '{}' AND j.check_at <= now()
         ORDER BY j.check_at
         LIMIT max_jobs
           FOR UPDATE SKIP LOCKED
    )
    UPDATE lzq_jobs AS j
       SET check_at = now() + make_interval(secs => lease_s)
      FROM due
     WHERE j.id = due.id
    RETURNING j.id, j.job_name, j.params, j.queue_name, j.priority, j.fairness_key, j.max_failures, j.checks;
END;
$$;

COMMENT ON FUNCTION lzq_checks_due(integer, integer) IS
    'Superqueuer: waiting jobs whose readiness checks are due (leased for lease_s seconds).';
