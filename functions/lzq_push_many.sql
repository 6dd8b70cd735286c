-- lzq_push_many(jobs): queue many jobs in one statement; returns their ids in input order.
-- Called by users (plain SQL or lzq.Client.push_many). `jobs` is a JSON array of objects
-- {"job_name": ..., "job_params": {...}, "job_options": {...}}; each is validated exactly as lzq_push
-- does, then all rows go in with one INSERT. All or nothing: one bad element raises 22023 naming
-- `jobs[<index>].<field>` and nothing is written.
--   SELECT * FROM lzq_push_many('[{"job_name": "a"}, {"job_name": "b", "job_options": {"priority": 5}}]');
CREATE OR REPLACE FUNCTION lzq_push_many(jobs jsonb)
RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_rows lzq_jobs[] := '{}';
    v_job lzq_jobs;
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
            IF jsonb_typeof(v_element) <> 'object' THEN
                PERFORM _lzq_invalid('job', 'must be an object {"job_name", "job_params", "job_options"}');
            END IF;
            IF EXISTS (SELECT 1 FROM jsonb_object_keys(v_element) k
                        WHERE k NOT IN ('job_name', 'job_params', 'job_options')) THEN
                PERFORM _lzq_invalid('job', 'keys must be job_name, job_params, job_options');
            END IF;
            IF jsonb_typeof(v_element -> 'job_name') IS DISTINCT FROM 'string' THEN
                PERFORM _lzq_invalid('job_name', 'must be a string');
            END IF;
            v_job := _lzq_new_job(v_element ->> 'job_name', v_element -> 'job_params',
                                  v_element -> 'job_options');
            -- Ids are taken here so the result follows the input order.
            v_job.id := nextval(pg_get_serial_sequence('lzq_jobs', 'id'));
            v_rows := v_rows || v_job;
            v_index := v_index + 1;
        END LOOP;
    EXCEPTION WHEN invalid_parameter_value THEN
        GET STACKED DIAGNOSTICS v_column = COLUMN_NAME, v_message = MESSAGE_TEXT;
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('jobs[%s]: %s', v_index, v_message),
            COLUMN = format('jobs[%s].%s', v_index, v_column);
    END;

    INSERT INTO lzq_jobs (id, job_name, params, queue_name, priority, fairness_key, max_failures,
                          status, run_at)
    SELECT r.id, r.job_name, r.params, r.queue_name, r.priority, r.fairness_key, r.max_failures,
           r.status, r.run_at
      FROM unnest(v_rows) AS r;

    PERFORM _lzq_wake(q.queue_name)
       FROM (SELECT DISTINCT r.queue_name FROM unnest(v_rows) AS r WHERE r.status = 'ready') AS q;

    RETURN QUERY SELECT r.id FROM unnest(v_rows) AS r;
END;
$$;

COMMENT ON FUNCTION lzq_push_many(jsonb) IS
    'Queue many jobs at once: lzq_push_many(''[{"job_name":..., "job_params":..., "job_options":...}]'') -> ids in order.';
