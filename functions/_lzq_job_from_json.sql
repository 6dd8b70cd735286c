-- _lzq_job_from_json(job, extra_keys): validate one job given as JSON and build its row (not inserted).
-- Called by lzq_push_many and lzq_push_buffered for each element:
--   {"job_name": ..., "job_params": {...}, "job_options": {...}} (plus `extra_keys`, e.g. "uuid").
-- Applies every rule of a push, dependencies included (it locks them FOR SHARE, see
-- _lzq_gate_on_dependencies); the caller takes the job's dependency ids from job_options itself.
-- Raises 22023 naming the field.
CREATE OR REPLACE FUNCTION _lzq_job_from_json(job jsonb, extra_keys text[] DEFAULT '{}')
RETURNS lzq_jobs
LANGUAGE plpgsql AS $$
BEGIN
    IF jsonb_typeof(job) IS DISTINCT FROM 'object' THEN
        PERFORM _lzq_invalid('job', 'must be an object {"job_name", "job_params", "job_options"}');
    END IF;
    IF job - (ARRAY['job_name', 'job_params', 'job_options'] || extra_keys) <> '{}'::jsonb THEN
        PERFORM _lzq_invalid('job', format('keys must be %s',
                                           array_to_string(ARRAY['job_name', 'job_params', 'job_options'] || extra_keys, ', ')));
    END IF;
    IF jsonb_typeof(job -> 'job_name') IS DISTINCT FROM 'string' THEN
        PERFORM _lzq_invalid('job_name', 'must be a string');
    END IF;
    RETURN _lzq_gate_on_dependencies(
        _lzq_new_job(job ->> 'job_name', job -> 'job_params', job -> 'job_options'),
        _lzq_dependency_ids(job -> 'job_options'));
END;
$$;

COMMENT ON FUNCTION _lzq_job_from_json(jsonb, text[]) IS
    'Validate one {"job_name", "job_params", "job_options"} element and build its row (dependencies applied).';
