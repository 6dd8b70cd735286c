-- _lzq_insert_jobs(jobs, dep_job_ids, dep_parent_ids): write validated new jobs and their dependencies.
-- Called by lzq_push and lzq_push_many with rows built by _lzq_new_job (every NOT NULL column set,
-- id taken from lzq_jobs_id_seq) and dependency pairs (job, depends_on) as two parallel arrays.
-- Wakes sleeping superqueuers for queues that got ready jobs or jobs whose checks are due.
-- Ready jobs of fair queues get their dispatch tags here, for the whole batch at once
-- (_lzq_flow_tails: each next job of a flow one cost further). The trigger then skips rows that
-- arrive stamped; it still stamps ready jobs of priority and fifo queues (a sequence, row order).
CREATE OR REPLACE FUNCTION _lzq_insert_jobs(jobs lzq_jobs[], dep_job_ids bigint[], dep_parent_ids bigint[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_tags bigint[];
BEGIN
    IF cardinality(jobs) > 1 THEN
        WITH j AS (
            SELECT u.queue_name, u.fairness_key, u.priority, u.status, u.ordinality AS ord
              FROM unnest(jobs) WITH ORDINALITY AS u
        ), flows AS MATERIALIZED (
            SELECT t.*
              FROM (SELECT array_agg(j.queue_name) AS queues, array_agg(j.fairness_key) AS keys,
                           array_agg(j.priority) AS priorities
                      FROM j WHERE j.status = 'ready') AS r
             CROSS JOIN LATERAL _lzq_flow_tails(r.queues, r.keys, r.priorities) AS t
        )
        SELECT array_agg(tagged.vtag ORDER BY tagged.ord) INTO v_tags
          FROM (SELECT j.ord,
                       flows.tail + _lzq_cost(j.priority) * row_number() OVER (
                           PARTITION BY j.queue_name, j.fairness_key, j.priority, j.status ORDER BY j.ord) AS vtag
                  FROM j
                  LEFT JOIN flows ON j.status = 'ready' AND flows.queue_name = j.queue_name
                                 AND flows.fairness_key = j.fairness_key AND flows.priority = j.priority) AS tagged;
        FOR i IN 1 .. cardinality(jobs) LOOP
            jobs[i].vtag := v_tags[i];
        END LOOP;
    END IF;
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
