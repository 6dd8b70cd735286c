-- _lzq_resolve_dependents(parent_ids): tell the dependents of jobs that just became final.
-- Called in the same transaction as the final move, by lzq_finish, lzq_sweep, lzq_cancel and
-- lzq_checks_done, so no dependent can miss it. For each succeeded parent, its waiting dependents
-- have one dependency fewer; those at zero move on: `scheduled` (start time ahead), `waiting`
-- (readiness checks to pass) or `ready`. For each failed or cancelled parent, every waiting
-- descendant is `cancelled`, its last_error naming its own dependency that failed or was cancelled.
-- Locks dependents in id order (concurrent finishes sharing a dependent do not deadlock).
CREATE OR REPLACE FUNCTION _lzq_resolve_dependents(parent_ids bigint[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_queues text[];
BEGIN
    IF coalesce(cardinality(parent_ids), 0) = 0 OR NOT EXISTS (
        SELECT 1 FROM lzq_dependencies AS d WHERE d.depends_on = ANY (parent_ids)) THEN
        RETURN;
    END IF;

    WITH met AS (
        SELECT d.job_id, count(*)::integer AS n
          FROM lzq_dependencies AS d
          JOIN lzq_jobs AS p ON p.id = d.depends_on
         WHERE d.depends_on = ANY (parent_ids) AND p.status = 'succeeded'
         GROUP BY d.job_id
    ), locked AS (
        SELECT j.id, met.n
          FROM lzq_jobs AS j
          JOIN met ON met.job_id = j.id
         WHERE j.status = 'waiting' AND j.unmet_deps > 0
         ORDER BY j.id
           FOR UPDATE OF j
    ), released AS (
        UPDATE lzq_jobs AS j
           SET unmet_deps = j.unmet_deps - locked.n,
               status = CASE WHEN j.unmet_deps - locked.n > 0 THEN 'waiting'
                             WHEN j.run_at > now() THEN 'scheduled'
                             WHEN j.checks <> '{}' THEN 'waiting'
                             ELSE 'ready' END,
               check_at = CASE WHEN j.checks <> '{}' THEN greatest(j.run_at, now()) END
          FROM locked
         WHERE j.id = locked.id
        RETURNING j.status, j.queue_name
    )
    SELECT array_agg(DISTINCT released.queue_name) FILTER (WHERE released.status = 'ready')
      INTO v_queues
      FROM released;
    PERFORM _lzq_wake(q) FROM unnest(v_queues) AS q;

    WITH RECURSIVE doomed (id, parent, parent_status) AS (
        SELECT d.job_id, d.depends_on, p.status
          FROM lzq_dependencies AS d
          JOIN lzq_jobs AS p ON p.id = d.depends_on
         WHERE d.depends_on = ANY (parent_ids) AND p.status IN ('failed', 'cancelled')
        UNION
        SELECT d.job_id, d.depends_on, 'cancelled'
          FROM doomed
          JOIN lzq_dependencies AS d ON d.depends_on = doomed.id
    ), named AS (
        SELECT DISTINCT ON (doomed.id) doomed.id, doomed.parent, doomed.parent_status
          FROM doomed
         ORDER BY doomed.id, doomed.parent
    ), locked AS (
        SELECT j.id
          FROM lzq_jobs AS j
          JOIN named ON named.id = j.id
         WHERE j.status = 'waiting'
         ORDER BY j.id
           FOR UPDATE OF j
    )
    UPDATE lzq_jobs AS j
       SET status = 'cancelled',
           finished_at = now(),
           last_error = format('cancelled: dependency %s %s', named.parent, named.parent_status)
      FROM named
     WHERE j.id = named.id AND j.id IN (SELECT locked.id FROM locked);
END;
$$;

COMMENT ON FUNCTION _lzq_resolve_dependents(bigint[]) IS
    'After jobs became final: release dependents of succeeded ones, cancel descendants of failed/cancelled ones.';
