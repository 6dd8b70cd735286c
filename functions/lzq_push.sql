-- lzq_push(job_name, job_params, job_options): queue one job; returns its id.
-- Called by users (plain SQL or lzq.Client.push). New job: `ready`; `scheduled` when
-- job_options.start_time is in the future; `waiting` while depends_on has unmet job ids or
-- readiness checks; `cancelled` if it depends on a failed or cancelled job. Options: queue_name,
-- start_time, priority (-20..20, nice: lower runs sooner), max_failures (>= 1), fairness_key,
-- depends_on (job ids and "#check" references). Raises 22023 naming the field on bad input; nothing
-- is written then. Locks the jobs it depends on FOR SHARE (see _lzq_gate_on_dependencies).
--   SELECT lzq_push('mailer', '{"to": "a@b.c"}', '{"priority": -5, "start_time": "+10 minutes"}');
--   SELECT lzq_push('report', '{}', '{"depends_on": [12, 13, "#is_ready_to_run"]}');
CREATE OR REPLACE FUNCTION lzq_push(job_name text, job_params jsonb DEFAULT '{}',
                                    job_options jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_job lzq_jobs := _lzq_new_job(job_name, job_params, job_options);
    v_deps bigint[];
BEGIN
    v_job.id := nextval('lzq_jobs_id_seq');
    IF job_options ? 'depends_on' THEN
        v_deps := _lzq_dependency_ids(job_options);
        v_job := _lzq_gate_on_dependencies(v_job, v_deps);
        PERFORM _lzq_insert_jobs(ARRAY[v_job], array_fill(v_job.id, ARRAY[cardinality(v_deps)]), v_deps);
        RETURN v_job.id;
    END IF;
    -- The common case, kept lean: one row, no dependencies.
    INSERT INTO lzq_jobs SELECT (v_job).*;
    IF v_job.status = 'ready' OR v_job.status = 'waiting' THEN
        PERFORM _lzq_wake(v_job.queue_name);
    END IF;
    RETURN v_job.id;
END;
$$;

COMMENT ON FUNCTION lzq_push(text, jsonb, jsonb) IS
    'Queue a job: lzq_push(job_name, job_params jsonb, job_options jsonb) -> id. 22023 naming the field on bad input.';
