-- _lzq_gate_on_dependencies(job, dep_ids): apply job-id dependencies to a job about to be inserted.
-- Called by lzq_push and lzq_push_many. Counts the dependencies that have not succeeded (a job
-- depending only on succeeded jobs is not held back at all); with any unmet, the job is `waiting`.
-- A job depending on a failed or cancelled job is created `cancelled`, naming that dependency.
-- Locks the dependencies FOR SHARE until the push commits: a dependency's finish (an UPDATE of its
-- row) waits for us, so it then sees our dependency rows, or we wait for it and see it finished.
-- FOR KEY SHARE would not do: it does not conflict with the finish's UPDATE.
-- Raises 22023 naming depends_on for a job id that does not exist.
CREATE OR REPLACE FUNCTION _lzq_gate_on_dependencies(job lzq_jobs, dep_ids bigint[])
RETURNS lzq_jobs
LANGUAGE plpgsql AS $$
DECLARE
    v_missing bigint;
    v_dead record;
BEGIN
    IF cardinality(dep_ids) = 0 THEN
        RETURN job;
    END IF;
    PERFORM 1 FROM lzq_jobs AS p WHERE p.id = ANY (dep_ids) ORDER BY p.id FOR SHARE OF p;

    SELECT d INTO v_missing
      FROM unnest(dep_ids) AS d
     WHERE NOT EXISTS (SELECT 1 FROM lzq_jobs AS p WHERE p.id = d)
     LIMIT 1;
    IF v_missing IS NOT NULL THEN
        PERFORM _lzq_invalid('depends_on', format('unknown job id %s', v_missing));
    END IF;

    SELECT p.id, p.status INTO v_dead
      FROM lzq_jobs AS p
     WHERE p.id = ANY (dep_ids) AND p.status IN ('failed', 'cancelled')
     ORDER BY p.id
     LIMIT 1;
    IF FOUND THEN
        job.status := 'cancelled';
        job.finished_at := now();
        job.last_error := format('cancelled: dependency %s %s', v_dead.id, v_dead.status);
        RETURN job;
    END IF;

    SELECT count(*) INTO job.unmet_deps
      FROM lzq_jobs AS p
     WHERE p.id = ANY (dep_ids) AND p.status <> 'succeeded';
    IF job.unmet_deps > 0 THEN
        job.status := 'waiting';
    END IF;
    RETURN job;
END;
$$;

COMMENT ON FUNCTION _lzq_gate_on_dependencies(lzq_jobs, bigint[]) IS
    'Apply depends_on job ids to a new job row: count unmet, wait, or cancel if one failed; locks them FOR SHARE.';
