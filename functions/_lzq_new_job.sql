-- _lzq_new_job(job_name, job_params, job_options): validate one push and build its row (not inserted).
-- Called by lzq_push and lzq_push_many, so single and batch pushes share every rule.
-- Decides the first state from the start time and readiness checks: `scheduled` (start time in the
-- future), `waiting` (checks to pass), else `ready`. Job-id dependencies are applied afterwards by
-- _lzq_gate_on_dependencies, which may make it `waiting` or `cancelled`.
-- Raises 22023 naming the field for: blank/too long job_name, params that are not a JSON object or
-- are larger than 1 MiB, options that are not an object, unknown options, and each option's own rule.
CREATE OR REPLACE FUNCTION _lzq_new_job(job_name text, job_params jsonb, job_options jsonb)
RETURNS lzq_jobs
LANGUAGE plpgsql STABLE AS $$
DECLARE
    -- Large payloads belong in object storage; a job row stays small so claims stay fast.
    c_max_params_bytes constant integer := 1048576;
    c_default_queue constant text := 'default';
    c_default_priority constant integer := 0;
    c_default_max_failures constant integer := 3;
    c_known_options constant text[] := ARRAY['queue_name', 'start_time', 'priority', 'max_failures',
                                             'fairness_key', 'depends_on'];
    v_job lzq_jobs;
    v_unknown text;
    v_params_bytes integer;
BEGIN
    IF job_name IS NULL OR job_name !~ '\S' THEN
        PERFORM _lzq_invalid('job_name', 'must not be empty');
    END IF;
    IF length(job_name) > 255 THEN
        PERFORM _lzq_invalid('job_name', format('must be at most 255 characters, got %s',
                                                length(job_name)));
    END IF;

    job_params := coalesce(nullif(job_params, 'null'::jsonb), '{}'::jsonb);
    IF jsonb_typeof(job_params) <> 'object' THEN
        PERFORM _lzq_invalid('job_params', format('must be a JSON object, got %s',
                                                  jsonb_typeof(job_params)));
    END IF;
    v_params_bytes := octet_length(job_params::text);
    IF v_params_bytes > c_max_params_bytes THEN
        PERFORM _lzq_invalid('job_params', format('must be at most %s bytes of JSON, got %s',
                                                  c_max_params_bytes, v_params_bytes));
    END IF;

    job_options := coalesce(nullif(job_options, 'null'::jsonb), '{}'::jsonb);
    IF jsonb_typeof(job_options) <> 'object' THEN
        PERFORM _lzq_invalid('job_options', format('must be a JSON object, got %s',
                                                   jsonb_typeof(job_options)));
    END IF;
    IF job_options - c_known_options <> '{}'::jsonb THEN  -- an operator, not a query: the hot path
        SELECT k INTO v_unknown
          FROM jsonb_object_keys(job_options - c_known_options) AS k
         ORDER BY k
         LIMIT 1;
        PERFORM _lzq_invalid(v_unknown, format('unknown option (known options: %s)',
                                               array_to_string(c_known_options, ', ')));
    END IF;
    IF job_options ? 'start_time' AND jsonb_typeof(job_options -> 'start_time') NOT IN ('string', 'null') THEN
        PERFORM _lzq_invalid('start_time', format('must be a string, got %s', job_options -> 'start_time'));
    END IF;

    v_job.job_name     := job_name;
    v_job.params       := job_params;
    IF job_options = '{}'::jsonb THEN
        -- No options, the common push: the defaults below, without seven function calls.
        v_job.queue_name   := c_default_queue;
        v_job.priority     := c_default_priority;
        v_job.max_failures := c_default_max_failures;
        v_job.fairness_key := job_name;
        v_job.run_at       := now();
        v_job.checks       := '{}';
    ELSE
        v_job.queue_name   := _lzq_option_text(job_options, 'queue_name', c_default_queue, 200);
        v_job.priority     := _lzq_option_int(job_options, 'priority', c_default_priority, -20, 20);
        v_job.max_failures := _lzq_option_int(job_options, 'max_failures', c_default_max_failures, 1, 1000000);
        v_job.fairness_key := _lzq_option_text(job_options, 'fairness_key', job_name, 255);
        v_job.run_at       := _lzq_parse_time(job_options ->> 'start_time', 'start_time');
        PERFORM _lzq_dependency_ids(job_options);  -- validates the job ids part of depends_on
        v_job.checks       := _lzq_dependency_checks(job_options);
    END IF;
    v_job.check_at     := CASE WHEN v_job.checks <> '{}' THEN v_job.run_at END;
    v_job.status       := CASE WHEN v_job.run_at > now() THEN 'scheduled'
                               WHEN v_job.checks <> '{}' THEN 'waiting'
                               ELSE 'ready' END;
    v_job.attempts     := 0;
    v_job.unmet_deps   := 0;
    v_job.check_attempts := 0;
    v_job.limits       := '[]';
    v_job.created_at   := now();
    RETURN v_job;
END;
$$;

COMMENT ON FUNCTION _lzq_new_job(text, jsonb, jsonb) IS
    'Validate a push and build its lzq_jobs row (id unset, not inserted); 22023 naming the field on bad input.';
