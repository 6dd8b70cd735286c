-- _lzq_insert_jobs(jobs, dep_job_ids, dep_parent_ids): write validated new jobs and their dependencies.
-- Called by lzq_push and lzq_push_many with rows built by _lzq_new_job (every NOT NULL column set,
-- id taken from lzq_jobs_id_seq) and dependency pairs (job, depends_on) as two parallel arrays.
-- Wakes sleeping superqueuers for queues that got ready jobs or jobs whose checks are due.
CREATE OR REPLACE FUNCTION _lzq_insert_jobs(jobs lzq_jobs[], dep_job_ids bigint[], dep_parent_ids bigint[])
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO lzq_jobs SELECT * FROM unnest(jobs);
    IF cardinality(dep_job_ids) > 0 THEN
        INSERT INTO lzq_dependencies (job_id, depends_on)
        SELECT * FROM unnest(dep_job_ids, dep_parent_ids);
    END IF;
    -- Ready jobs need a dispatch; jobs waiting only on readiness checks need an evaluation.
    PERFORM _lzq_wake(q.queue_name)
       FROM (SELECT DISTINCT j.queue_name FROM unnest(jobs) AS j
              WHERE j.status = 'ready' OR (j.status = 'waiting' AND j.unmet_deps = 0)) AS q;
END;
$$;

COMMENT ON FUNCTION _lzq_insert_jobs(lzq_jobs[], bigint[], bigint[]) IS
    'Insert new job rows and their dependency pairs; NOTIFY for ready ones.';
