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
BEGIN
    IF jobs IS NULL OR jsonb_typeof(jobs) <> 'array' THEN
        PERFORM _lzq_invalid('jobs', 'must be a JSON array of {"job_name", "job_params", "job_options"}');
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
