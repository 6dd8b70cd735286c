-- _lzq_resolve_dependents(parent_ids): tell the dependents of jobs that just became final.
-- Called in the same transaction as the final move, by lzq_finish, lzq_sweep, lzq_cancel and
-- lzq_checks_done, so no dependent can miss it. For each succeeded parent, its waiting dependents
-- have one dependency fewer; those at zero move on: `scheduled` (start time ahead), `waiting`
-- (readiness checks to pass) or `ready`. For each failed or cancelled parent, every waiting
-- descendant is `cancelled`, level by level, its last_error naming its own dependency that failed
-- or was cancelled. Locks dependents in id order (concurrent finishes sharing a dependent do not
-- deadlock). Every statement looks jobs up by id arrays, never by a scan of lzq_jobs: this runs in
-- every finish, and a deep chain runs it level after level.
CREATE OR REPLACE FUNCTION _lzq_resolve_dependents(parent_ids bigint[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_succeeded bigint[];
    v_frontier bigint[];
    v_children bigint[];
    v_counts integer[];
    v_parents bigint[];
    v_queues text[];
BEGIN
    IF coalesce(cardinality(parent_ids), 0) = 0 OR NOT EXISTS (
        SELECT 1 FROM lzq_dependencies AS d WHERE d.depends_on = ANY (parent_ids)) THEN
        RETURN;
    END IF;
    SELECT array_agg(p.id) FILTER (WHERE p.status = 'succeeded'),
           array_agg(p.id) FILTER (WHERE p.status IN ('failed', 'cancelled'))
      INTO v_succeeded, v_frontier
      FROM lzq_jobs AS p
     WHERE p.id = ANY (parent_ids);

    IF v_succeeded IS NOT NULL THEN
        SELECT array_agg(m.job_id ORDER BY m.job_id), array_agg(m.n ORDER BY m.job_id)
          INTO v_children, v_counts
          FROM (SELECT d.job_id, count(*)::integer AS n
                  FROM lzq_dependencies AS d
                 WHERE d.depends_on = ANY (v_succeeded)
                 GROUP BY d.job_id) AS m;
        PERFORM 1 FROM lzq_jobs AS j WHERE j.id = ANY (v_children) ORDER BY j.id FOR UPDATE;
        WITH released AS (
            UPDATE lzq_jobs AS j
               SET unmet_deps = j.unmet_deps - m.n,
                   status = CASE WHEN j.unmet_deps - m.n > 0 THEN 'waiting'
                                 -- now() is when this transaction began: a job pushed since then
                                 -- without a start time has run_at = created_at, and is due.
                                 WHEN j.run_at > now() AND j.run_at > j.created_at THEN 'scheduled'
                                 WHEN j.checks <> '{}' THEN 'waiting'
                                 ELSE 'ready' END,
                   check_at = CASE WHEN j.checks <> '{}' THEN greatest(j.run_at, now()) END
              FROM unnest(v_children, v_counts) AS m(job_id, n)
             WHERE j.id = m.job_id AND j.status = 'waiting' AND j.unmet_deps > 0
            RETURNING j.status, j.queue_name, j.unmet_deps
        )
        -- Wake for ready jobs, and for jobs whose readiness checks are now due.
        SELECT array_agg(DISTINCT released.queue_name)
                   FILTER (WHERE released.status = 'ready' OR (released.status = 'waiting' AND released.unmet_deps = 0))
          INTO v_queues
          FROM released;
        PERFORM _lzq_wake(q) FROM unnest(v_queues) AS q;
    END IF;

    WHILE v_frontier IS NOT NULL LOOP
        SELECT array_agg(c.job_id ORDER BY c.job_id), array_agg(c.parent ORDER BY c.job_id)
          INTO v_children, v_parents
          FROM (SELECT d.job_id, min(d.depends_on) AS parent
                  FROM lzq_dependencies AS d
                 WHERE d.depends_on = ANY (v_frontier)
                 GROUP BY d.job_id) AS c;
        PERFORM 1 FROM lzq_jobs AS j
          WHERE j.id = ANY (v_children) AND j.status = 'waiting' ORDER BY j.id FOR UPDATE;
        WITH doomed AS (
            UPDATE lzq_jobs AS j
               SET status = 'cancelled',
                   finished_at = now(),
                   last_error = format('cancelled: dependency %s %s', c.parent,
                                       (SELECT p.status FROM lzq_jobs AS p WHERE p.id = c.parent))
              FROM unnest(v_children, v_parents) AS c(job_id, parent)
             WHERE j.id = c.job_id AND j.status = 'waiting'
            RETURNING j.id
        )
        SELECT array_agg(doomed.id) INTO v_frontier FROM doomed;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION _lzq_resolve_dependents(bigint[]) IS
    'After jobs became final: release dependents of succeeded ones, cancel descendants of failed/cancelled ones.';
