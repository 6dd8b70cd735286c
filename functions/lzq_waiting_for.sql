-- lzq_waiting_for(job): why a waiting job waits, in words; NULL for any other status.
-- Called by lzq.Client.get and `lzq status`, or in SQL as a computed column:
--   SELECT j.id, lzq_waiting_for(j) FROM lzq_jobs AS j WHERE j.status = 'waiting';
-- Derived from the row (and its unmet dependencies), never stored, so it cannot go stale.
CREATE OR REPLACE FUNCTION lzq_waiting_for(job lzq_jobs)
RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN job.status <> 'waiting' THEN NULL
        WHEN job.unmet_deps > 0 THEN
            format('dependencies: %s unmet (%s%s)', job.unmet_deps,
                   (SELECT string_agg(u.depends_on::text, ', ' ORDER BY u.depends_on)
                      FROM (SELECT d.depends_on
                              FROM lzq_dependencies AS d
                              JOIN lzq_jobs AS p ON p.id = d.depends_on
                             WHERE d.job_id = job.id AND p.status <> 'succeeded'
                             ORDER BY d.depends_on
                             LIMIT 5) AS u),
                   CASE WHEN job.unmet_deps > 5 THEN ', ...' ELSE '' END)
        WHEN job.waiting_on_limit IS NOT NULL THEN
            format('limit: every slot of %s is taken', job.waiting_on_limit)
        WHEN job.checks <> '{}' THEN
            format('check: %s not met yet (%s evaluations)', array_to_string(job.checks, ', '),
                   job.check_attempts)
    END;
$$;

COMMENT ON FUNCTION lzq_waiting_for(lzq_jobs) IS
    'Why a waiting job waits (dependencies / limit / check), in words; NULL unless waiting.';
