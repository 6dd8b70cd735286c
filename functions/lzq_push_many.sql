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
    v_plain boolean;
BEGIN
    IF jobs IS NULL OR jsonb_typeof(jobs) <> 'array' THEN
        PERFORM _lzq_invalid('jobs', 'must be a JSON array of {"job_name", "job_params", "job_options"}');
    END IF;

    -- The common batch, set-based: every element a valid {"job_name", "job_params"} without
    -- options. Such a job's row is the defaults' row with its own name, params and fairness key,
    -- so it is built from one template instead of a loop of validating calls. Anything else (an
    -- option, or a mistake to report) takes the loop below, whose rules these mirror
    -- (tests/sql/test_lzq_push_many.py holds the rows of the two paths equal).
    -- (coalesce: a missing key makes the conjunction NULL, which bool_and would skip.)
    SELECT bool_and(coalesce(jsonb_typeof(e) = 'object'
                    AND e - ARRAY['job_name', 'job_params', 'job_options'] = '{}'::jsonb
                    AND jsonb_typeof(e -> 'job_name') = 'string'
                    AND (e ->> 'job_name') ~ '\S' AND length(e ->> 'job_name') <= 255
                    AND coalesce(jsonb_typeof(e -> 'job_params'), 'null') IN ('object', 'null')
                    AND coalesce(octet_length((e -> 'job_params')::text), 0) <= 1048576
                    AND coalesce(nullif(e -> 'job_options', 'null'::jsonb), '{}'::jsonb) = '{}'::jsonb,
                             false))
      INTO v_plain
      FROM jsonb_array_elements(jobs) AS e;
    IF v_plain THEN
        v_job := _lzq_new_job('template', '{}', '{}');
        -- Ids in input order, as the loop takes them.
        SELECT array_agg(jsonb_populate_record(v_job, jsonb_build_object(
                   'id', nextval('lzq_jobs_id_seq'),
                   'job_name', x.e ->> 'job_name',
                   'fairness_key', x.e ->> 'job_name',
                   'params', coalesce(nullif(x.e -> 'job_params', 'null'::jsonb), '{}'::jsonb))) ORDER BY x.ord)
          INTO v_rows
          FROM jsonb_array_elements(jobs) WITH ORDINALITY AS x(e, ord);
        PERFORM _lzq_insert_jobs(v_rows, '{}', '{}');
        RETURN QUERY SELECT r.id FROM unnest(v_rows) AS r;
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
