-- lzq_schedule(job_name, job_params, start_time, job_options): queue one job to start later.
-- Called by users (plain SQL or lzq.Client.schedule). Same as lzq_push with start_time given as its
-- own argument ('now', '+<interval>', or a timestamp). Raises 22023 naming the field on bad input,
-- including a start_time given both as the argument and inside job_options.
--   SELECT lzq_schedule('report', '{}', '2030-01-01 03:00:00+00');
CREATE OR REPLACE FUNCTION lzq_schedule(job_name text, job_params jsonb, start_time text,
                                        job_options jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    IF start_time IS NULL THEN
        PERFORM _lzq_invalid('start_time', 'must be given');
    END IF;
    IF jsonb_typeof(job_options) = 'object' AND job_options ? 'start_time' THEN
        PERFORM _lzq_invalid('start_time', 'given twice: as an argument and in job_options');
    END IF;
    IF jsonb_typeof(job_options) IS DISTINCT FROM 'object' AND job_options IS NOT NULL THEN
        PERFORM _lzq_invalid('job_options', format('must be a JSON object, got %s',
                                                   jsonb_typeof(job_options)));
    END IF;
    RETURN lzq_push(job_name, job_params,
                    coalesce(job_options, '{}'::jsonb) || jsonb_build_object('start_time', start_time));
END;
$$;

COMMENT ON FUNCTION lzq_schedule(text, jsonb, text, jsonb) IS
    'Queue a job for later: lzq_schedule(job_name, job_params, start_time, job_options) -> id.';
