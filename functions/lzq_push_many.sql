-- lzq_push_many(jobs): queue many jobs in one statement; returns their ids in input order.
-- Called by users (plain SQL or lzq.Client.push_many). `jobs` is a JSON array of objects
-- {"job_name": ..., "job_params": {...}, "job_options": {...}}; each is validated exactly as lzq_push
-- does (dependencies included), then all rows go in with one INSERT. All or nothing: one bad element
-- raises 22023 naming `jobs[<index>].<field>` and nothing is written. A job may depend only on jobs
-- that exist before the call, not on others in the same batch (their ids are not known yet).
--   SELECT * FROM lzq_push_many('[{"job_name": "a"}, {"job_name": "b", "job_options": {"priority": 5}}]');
CREATE OR REPLACE FUNCTION lzq_push_many(jobs jsonb)
RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_rows lzq_jobs[] := '{}';
    v_job lzq_jobs;
    v_deps bigint[];
    v_dep_jobs bigint[] := '{}';
    v_dep_parents bigint[] := '{}';
    v_element jsonb;
    v_index integer := 0;
    v_column text;
    v_message text;
    v_ids bigint[];
    v_queues text[];
BEGIN
    IF jobs IS NULL OR jsonb_typeof(jobs) <> 'array' THEN
        PERFORM _lzq_invalid('jobs', 'must be a JSON array of {"job_name", "job_params", "job_options"}');
    END IF;

    -- The common batch, set-based: every element a valid {"job_name", "job_params", "job_options"}
    -- whose options are at most a queue_name, priority, max_failures and fairness_key
    -- (_lzq_batchable_options). Such a job's row is the defaults' row with its own name, params and
    -- those four, so it is built from one template instead of a loop of validating calls. One
    -- statement reads the elements once, checks them all, and inserts only if every one passed;
    -- anything else (start_time, depends_on, or a mistake to report) takes the loop below, whose
    -- rules these mirror (tests/sql/test_lzq_push_many.py holds the rows of the two paths equal).
    v_job := _lzq_new_job('template', '{}', '{}');
    WITH x AS MATERIALIZED (
        -- Each element's parts, taken out once. (The type test guards `-`, which fails on a scalar.)
        SELECT x.ord, jsonb_typeof(x.e) = 'object'
                      AND x.e - ARRAY['job_name', 'job_params', 'job_options'] = '{}'::jsonb AS shaped,
               jsonb_typeof(x.e -> 'job_name') AS name_type, x.e ->> 'job_name' AS job_name,
               x.e -> 'job_params' AS params, x.e -> 'job_options' AS options
          FROM jsonb_array_elements(jobs) WITH ORDINALITY AS x(e, ord)
    ), e AS MATERIALIZED (
        -- Ids in input order, as the loop takes them; none taken unless every element passed (the
        -- condition is computed once, and the casts below run only on checked values).
        -- (coalesce: a missing key makes a conjunction NULL, which bool_and would skip.)
        SELECT nextval('lzq_jobs_id_seq') AS id, x.job_name,
               coalesce(nullif(x.params, 'null'::jsonb), '{}'::jsonb) AS params,
               coalesce(x.options ->> 'queue_name', v_job.queue_name) AS queue_name,
               coalesce((x.options ->> 'priority')::numeric::smallint, v_job.priority) AS priority,
               coalesce((x.options ->> 'max_failures')::numeric::integer, v_job.max_failures) AS max_failures,
               coalesce(x.options ->> 'fairness_key', x.job_name) AS fairness_key,
               x.ord
          FROM x
         WHERE (SELECT bool_and(coalesce(
                       c.shaped AND c.name_type = 'string'
                       -- A printable ASCII first character is not blank; only others need the regex.
                       AND (ascii(c.job_name) BETWEEN 33 AND 126 OR c.job_name ~ '\S')
                       AND length(c.job_name) <= 255
                       AND coalesce(jsonb_typeof(c.params), 'null') IN ('object', 'null')
                       AND coalesce(octet_length(c.params::text), 0) <= 1048576
                       AND _lzq_batchable_options(c.options),
                       false))
                  FROM x AS c)
         ORDER BY x.ord
    ), flows AS MATERIALIZED (
        SELECT t.*
          FROM (SELECT array_agg(f.queue_name) AS queues, array_agg(f.fairness_key) AS keys,
                       array_agg(f.priority) AS priorities
                  FROM (SELECT DISTINCT e.queue_name, e.fairness_key, e.priority FROM e) AS f) AS r
         CROSS JOIN LATERAL _lzq_flow_tails(r.queues, r.keys, r.priorities) AS t
         WHERE v_job.status = 'ready'
    ), inserted AS (
        -- One INSERT, no row values built in between: the columns every such job shares come from
        -- the template row, and ready jobs of fair queues are tagged here as _lzq_insert_jobs tags
        -- a batch (other modes: the trigger stamps them, in input order).
        INSERT INTO lzq_jobs (id, job_name, params, queue_name, priority, fairness_key, max_failures, status,
                              run_at, attempts, last_error, dispatch_token, lease_expires_at, worker_id,
                              created_at, started_at, finished_at, unmet_deps, checks, check_at,
                              check_attempts, limits, waiting_on_limit, recurring_id, recur_slot, vtag)
        SELECT e.id, e.job_name, e.params, e.queue_name, e.priority, e.fairness_key, e.max_failures,
               v_job.status, v_job.run_at, v_job.attempts, v_job.last_error, v_job.dispatch_token,
               v_job.lease_expires_at, v_job.worker_id, v_job.created_at, v_job.started_at,
               v_job.finished_at, v_job.unmet_deps, v_job.checks, v_job.check_at, v_job.check_attempts,
               v_job.limits, v_job.waiting_on_limit, v_job.recurring_id, v_job.recur_slot,
               flows.tail + _lzq_cost(e.priority) * row_number() OVER (
                   PARTITION BY e.queue_name, e.fairness_key, e.priority ORDER BY e.ord)
          FROM e
          LEFT JOIN flows ON flows.queue_name = e.queue_name AND flows.fairness_key = e.fairness_key
                         AND flows.priority = e.priority
         -- Rows go in in input order: the trigger stamps untagged ones (priority and fifo
         -- queues) from a sequence, in the order it sees them.
         ORDER BY e.ord
    )
    SELECT array_agg(e.id ORDER BY e.ord), array_agg(DISTINCT e.queue_name) INTO v_ids, v_queues FROM e;
    IF v_ids IS NOT NULL THEN
        IF v_job.status = 'ready' THEN
            PERFORM _lzq_wake(q) FROM unnest(v_queues) AS q;
        END IF;
        RETURN QUERY SELECT unnest(v_ids);
        RETURN;
    END IF;
    -- One exception block around the whole loop (not one per element): a block is a subtransaction.
    BEGIN
        FOR v_element IN SELECT e FROM jsonb_array_elements(jobs) AS e LOOP
            v_job := _lzq_job_from_json(v_element);
            v_deps := _lzq_dependency_ids(v_element -> 'job_options');
            -- Ids are taken here so the result follows the input order.
            v_job.id := nextval('lzq_jobs_id_seq');
            v_rows := v_rows || v_job;
            v_dep_jobs := v_dep_jobs || array_fill(v_job.id, ARRAY[cardinality(v_deps)]);
            v_dep_parents := v_dep_parents || v_deps;
            v_index := v_index + 1;
        END LOOP;
    EXCEPTION WHEN invalid_parameter_value THEN
        GET STACKED DIAGNOSTICS v_column = COLUMN_NAME, v_message = MESSAGE_TEXT;
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('jobs[%s]: %s', v_index, v_message),
            COLUMN = format('jobs[%s].%s', v_index, v_column);
    END;

    PERFORM _lzq_insert_jobs(v_rows, v_dep_jobs, v_dep_parents);

    RETURN QUERY SELECT r.id FROM unnest(v_rows) AS r;
END;
$$;

COMMENT ON FUNCTION lzq_push_many(jsonb) IS
    'Queue many jobs at once: lzq_push_many(''[{"job_name":..., "job_params":..., "job_options":...}]'') -> ids in order.';
