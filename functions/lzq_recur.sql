-- lzq_recur(job_name, job_params, known_as, interval, base_time, job_options, cron, timezone,
--           cron_slots): define (or redefine) a recurring job; returns the definition's id.
-- Called by users (plain SQL or lzq.Client.recur). known_as is the identity: calling it again
-- updates the definition in place, never duplicates it. Give exactly one of
--   interval  'HH:MM:SS', any PostgreSQL interval ('1 day', '90 minutes') or seconds ('3600'),
--             optionally with base_time: runs fall on base_time + k * interval;
--   cron      a croniter expression ('0 3 * * *'), in `timezone` (default UTC).
-- First run: with base_time, the first slot at or after now; with a plain interval, job_options'
-- start_time or at once; with cron, the first fire time from now (cron_slots, computed by the
-- Python client with croniter; from plain SQL the superqueuer computes them within seconds).
-- A base_time without an offset is read in `timezone`.
-- Calling it again with the same definition writes nothing (safe at every application start).
-- With a changed one, a not-yet-started pending run takes the new job fields and, for base_time
-- and cron schedules, the new first slot (a plain interval keeps its time unless start_time is
-- given); a running one finishes as it is and its successor follows the new definition.
-- Raises 22023 naming the field (known_as, interval, base_time, cron, timezone, any job option);
-- nothing is written then. Runs may depend on readiness checks but not on job ids.
--   SELECT lzq_recur('report', '{}', 'report:every_12_hours', '12:00:00', '2014-07-20 03:00:00');
--   SELECT lzq_recur('cleanup', '{}', 'cleanup:nightly', NULL, cron => '0 3 * * *');
CREATE OR REPLACE FUNCTION lzq_recur(job_name text, job_params jsonb, known_as text,
                                     "interval" text DEFAULT NULL, base_time text DEFAULT NULL,
                                     job_options jsonb DEFAULT '{}', cron text DEFAULT NULL,
                                     timezone text DEFAULT 'UTC', cron_slots timestamptz[] DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_every interval;
    v_base timestamptz;
    v_options jsonb := coalesce(nullif(job_options, 'null'::jsonb), '{}'::jsonb);
    v_params jsonb := coalesce(nullif(job_params, 'null'::jsonb), '{}'::jsonb);
    v_session_zone text := current_setting('timezone');
    v_def lzq_recurring;
    v_old lzq_recurring;
    v_pending lzq_jobs;
    v_first timestamptz;
    v_run lzq_jobs;
BEGIN
    IF known_as IS NULL OR known_as !~ '\S' THEN
        PERFORM _lzq_invalid('known_as', 'must not be empty');
    END IF;
    IF length(known_as) > 255 THEN
        PERFORM _lzq_invalid('known_as', format('must be at most 255 characters, got %s', length(known_as)));
    END IF;
    IF ("interval" IS NULL) = (cron IS NULL) THEN
        PERFORM _lzq_invalid('interval', 'give exactly one of interval and cron');
    END IF;
    IF "interval" IS NOT NULL THEN
        BEGIN
            v_every := CASE WHEN "interval" ~ '^\s*[0-9]+(\.[0-9]+)?\s*$'
                            THEN make_interval(secs => "interval"::double precision)
                            ELSE "interval"::interval END;
        EXCEPTION WHEN data_exception THEN
            PERFORM _lzq_invalid('interval', format('cannot parse %L: use ''HH:MM:SS'', seconds or a '
                                                    'PostgreSQL interval', "interval"));
        END;
        IF v_every <= interval '0' THEN
            PERFORM _lzq_invalid('interval', format('must be positive, got %L', "interval"));
        END IF;
    ELSIF array_length(regexp_split_to_array(btrim(cron), '\s+'), 1) NOT BETWEEN 5 AND 7 THEN
        PERFORM _lzq_invalid('cron', format('%L is not a cron expression (5 to 7 fields)', cron));
    END IF;
    IF timezone IS NULL OR NOT EXISTS (SELECT 1 FROM pg_timezone_names AS z WHERE z.name = timezone) THEN
        PERFORM _lzq_invalid('timezone', format('unknown time zone %L', timezone));
    END IF;
    IF base_time IS NOT NULL THEN
        IF cron IS NOT NULL THEN
            PERFORM _lzq_invalid('base_time', 'goes with interval, not cron');
        END IF;
        -- Read a base_time without an offset on the schedule's wall clock, then put the session's
        -- zone back (set_config(..., true) lasts until the end of the transaction).
        PERFORM set_config('timezone', timezone, true);
        v_base := _lzq_parse_time(base_time, 'base_time');
        PERFORM set_config('timezone', v_session_zone, true);
    END IF;
    IF v_options ? 'start_time' AND (v_base IS NOT NULL OR cron IS NOT NULL) THEN
        PERFORM _lzq_invalid('start_time', 'the first run of a base_time or cron schedule is its first slot');
    END IF;
    -- Every rule of a push applies to the runs: validate the options now, on a dry-run row.
    PERFORM _lzq_new_job(job_name, v_params, v_options);
    IF _lzq_dependency_ids(v_options) <> '{}' THEN
        PERFORM _lzq_invalid('depends_on', 'runs of a recurring job may depend on readiness checks, not on job ids');
    END IF;

    SELECT * INTO v_old FROM lzq_recurring AS r WHERE r.known_as = lzq_recur.known_as FOR UPDATE;
    IF FOUND AND (v_old.job_name, v_old.params, v_old.options, v_old.every, v_old.base_time, v_old.cron,
                  v_old.timezone)
                 IS NOT DISTINCT FROM (job_name, v_params, v_options - 'start_time', v_every, v_base, cron,
                                       timezone) THEN
        RETURN v_old.id;  -- the same definition: nothing to write, the schedule stays as it is
    END IF;

    INSERT INTO lzq_recurring AS r (known_as, job_name, params, options, every, base_time, cron, cron_slots,
                                    timezone)
    VALUES (known_as, job_name, v_params, v_options - 'start_time', v_every, v_base, cron,
            coalesce(cron_slots, '{}'), timezone)
    ON CONFLICT ON CONSTRAINT lzq_recurring_known_as_key DO UPDATE
       SET job_name = excluded.job_name, params = excluded.params, options = excluded.options,
           every = excluded.every, base_time = excluded.base_time, cron = excluded.cron,
           -- The same cron re-declared without fire times (plain SQL) keeps the ones it has.
           cron_slots = CASE WHEN lzq_recur.cron_slots IS NULL AND r.cron IS NOT DISTINCT FROM excluded.cron
                                  AND r.timezone = excluded.timezone
                             THEN r.cron_slots ELSE excluded.cron_slots END,
           timezone = excluded.timezone, updated_at = now()
    RETURNING * INTO v_def;

    SELECT * INTO v_pending FROM lzq_jobs AS j
     WHERE j.recurring_id = v_def.id AND j.status IN ('waiting', 'scheduled', 'ready', 'dispatched', 'running')
       FOR UPDATE;
    v_first := CASE WHEN v_base IS NOT NULL OR cron IS NOT NULL
                         THEN _lzq_recur_after(v_def, now() - interval '1 microsecond')
                    WHEN v_options ? 'start_time' OR v_pending.id IS NULL
                         THEN _lzq_parse_time(v_options ->> 'start_time', 'start_time')
                    ELSE v_pending.recur_slot END;  -- a plain interval keeps its pending run's time

    IF v_pending.id IS NULL THEN
        IF v_first IS NOT NULL THEN
            PERFORM _lzq_recur_run(v_def, v_first);
        END IF;
    ELSIF v_pending.status IN ('waiting', 'scheduled', 'ready') AND v_pending.unmet_deps = 0 THEN
        IF v_first IS NULL OR EXISTS (SELECT 1 FROM lzq_jobs AS j WHERE j.recurring_id = v_def.id
                                         AND j.recur_slot = v_first AND j.id <> v_pending.id) THEN
            -- Its new slot is unknown yet (cron times to come) or already had a run (cancelled):
            -- drop this run; the sweep creates the next one when its time comes.
            PERFORM lzq_cancel(v_pending.id);
        ELSE
            -- Not started yet: make it the new definition's first run, in place (same id).
            v_run := _lzq_new_job(v_def.job_name, v_def.params,
                                  v_def.options || jsonb_build_object('start_time', v_first));
            UPDATE lzq_jobs AS j
               SET job_name = v_run.job_name, params = v_run.params, queue_name = v_run.queue_name,
                   priority = v_run.priority, fairness_key = v_run.fairness_key,
                   max_failures = v_run.max_failures, status = v_run.status, run_at = v_run.run_at,
                   checks = v_run.checks, check_at = v_run.check_at, check_attempts = 0, limits = '[]',
                   waiting_on_limit = NULL, recur_slot = v_first
             WHERE j.id = v_pending.id;
            IF v_run.status IN ('ready', 'waiting') THEN
                PERFORM _lzq_wake(v_run.queue_name);
            END IF;
        END IF;
    END IF;
    RETURN v_def.id;
END;
$$;

COMMENT ON FUNCTION lzq_recur(text, jsonb, text, text, text, jsonb, text, text, timestamptz[]) IS
    'Define or update a recurring job by known_as: lzq_recur(job_name, job_params, known_as, interval, base_time, job_options, cron => ...) -> id.';
