-- lzq_push(job_name, job_params, job_options): queue one job; returns its id.
-- Called by users (plain SQL or lzq.Client.push). New job: `ready`, or `scheduled` when
-- job_options.start_time is in the future. Options: queue_name, start_time, priority (-20..20, nice:
-- lower runs sooner), max_failures (>= 1), fairness_key. Raises 22023 naming the field on bad input;
-- nothing is written then. Wakes a sleeping superqueuer when the job is ready now.
--   SELECT lzq_push('mailer', '{"to": "a@b.c"}', '{"priority": -5, "start_time": "+10 minutes"}');
CREATE OR REPLACE FUNCTION lzq_push(job_name text, job_params jsonb DEFAULT '{}',
                                    job_options jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_job lzq_jobs := _lzq_new_job(job_name, job_params, job_options);
    v_id bigint;
BEGIN
    INSERT INTO lzq_jobs AS j (job_name, params, queue_name, priority, fairness_key, max_failures,
                               status, run_at)
    VALUES (v_job.job_name, v_job.params, v_job.queue_name, v_job.priority, v_job.fairness_key,
            v_job.max_failures, v_job.status, v_job.run_at)
    RETURNING j.id INTO v_id;
    IF v_job.status = 'ready' THEN
        PERFORM _lzq_wake(v_job.queue_name);
    END IF;
    RETURN v_id;
END;
$$;

COMMENT ON FUNCTION lzq_push(text, jsonb, jsonb) IS
    'Queue a job: lzq_push(job_name, job_params jsonb, job_options jsonb) -> id. 22023 naming the field on bad input.';
