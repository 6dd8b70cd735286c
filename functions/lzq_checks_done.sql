-- lzq_checks_done(results): record readiness-check evaluations; returns the ids that moved.
-- Called by the superqueuer after lzq_checks_due. results:
--   [{"id": 1, "outcome": "passed", "limits": [{"key": "pkg.Class|{...}", "count": 5}]},
--    {"id": 2, "outcome": "not_ready"},
--    {"id": 3, "outcome": "invalid", "error": "check '#nope': no such method"}]
-- passed: waiting -> ready, keeping the limit_to list for the claim to enforce. not_ready: stays
-- waiting, evaluated again after a backoff (0.5 s doubling to 30 s) or sooner when a job of its
-- class finishes. invalid (a check that can never run): waiting -> failed, dependents cancelled.
-- Only jobs still waiting on checks are touched (a cancelled one is left alone).
CREATE OR REPLACE FUNCTION lzq_checks_done(results jsonb)
RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_moved bigint[];
    v_failed bigint[];
    v_queues text[];
    v_bad text;
BEGIN
    SELECT r.outcome INTO v_bad
      FROM jsonb_to_recordset(results) AS r(outcome text)
     WHERE r.outcome IS NULL OR r.outcome NOT IN ('passed', 'not_ready', 'invalid')
     LIMIT 1;
    IF FOUND THEN
        PERFORM _lzq_invalid('outcome', format('must be passed, not_ready or invalid, got %L', v_bad));
    END IF;

    -- Limits are read by every later claim of the job's queue: a malformed one must not get in.
    SELECT r.limits::text INTO v_bad
      FROM jsonb_to_recordset(results) AS r(outcome text, limits jsonb)
     WHERE r.outcome = 'passed' AND r.limits IS NOT NULL
       AND (jsonb_typeof(r.limits) <> 'array'
            OR EXISTS (SELECT 1 FROM jsonb_array_elements(r.limits) AS l
                        WHERE jsonb_typeof(l) <> 'object'
                           OR jsonb_typeof(l -> 'key') IS DISTINCT FROM 'string' OR (l ->> 'key') !~ '\S'
                           OR jsonb_typeof(l -> 'count') IS DISTINCT FROM 'number'
                           OR CASE WHEN jsonb_typeof(l -> 'count') = 'number'
                                   THEN (l -> 'count')::numeric <> trunc((l -> 'count')::numeric)
                                        OR (l -> 'count')::numeric < 1 ELSE true END))
     LIMIT 1;
    IF FOUND THEN
        PERFORM _lzq_invalid('limits', format('must be a list of {"key": text, "count": integer >= 1}, got %s',
                                              v_bad));
    END IF;
    -- Create the slot rows now, so claims find them and never insert them (which would make
    -- concurrent claims wait on each other).
    INSERT INTO lzq_slots (limit_key, slot)
    SELECT DISTINCT l ->> 'key', g
      FROM jsonb_to_recordset(results) AS r(outcome text, limits jsonb),
           jsonb_array_elements(coalesce(r.limits, '[]')) AS l,
           generate_series(1, (l ->> 'count')::integer) AS g
     WHERE r.outcome = 'passed'
    ON CONFLICT DO NOTHING;

    WITH r AS (
        SELECT * FROM jsonb_to_recordset(results) AS r(id bigint, outcome text, limits jsonb, error text)
    ), moved AS (
        UPDATE lzq_jobs AS j
           SET status = CASE r.outcome WHEN 'passed' THEN 'ready' WHEN 'invalid' THEN 'failed' ELSE 'waiting' END,
               checks = CASE WHEN r.outcome = 'not_ready' THEN j.checks ELSE '{}' END,
               limits = CASE WHEN r.outcome = 'passed' THEN coalesce(r.limits, '[]') ELSE j.limits END,
               check_attempts = j.check_attempts + 1,
               check_at = CASE WHEN r.outcome = 'not_ready'
                               THEN now() + make_interval(secs => least(30, 0.5 * power(2, least(j.check_attempts, 10))))
                          END,
               last_error = CASE WHEN r.outcome = 'invalid' THEN r.error ELSE j.last_error END,
               finished_at = CASE WHEN r.outcome = 'invalid' THEN now() END
          FROM r
         WHERE j.id = r.id AND j.status = 'waiting' AND j.unmet_deps = 0 AND j.checks <> '{}'
        RETURNING j.id, j.status, j.queue_name
    )
    SELECT array_agg(moved.id) FILTER (WHERE moved.status <> 'waiting'),
           array_agg(moved.id) FILTER (WHERE moved.status = 'failed'),
           array_agg(DISTINCT moved.queue_name) FILTER (WHERE moved.status = 'ready')
      INTO v_moved, v_failed, v_queues
      FROM moved;

    PERFORM _lzq_resolve_dependents(v_failed);
    PERFORM _lzq_recur_next(v_failed);
    PERFORM _lzq_wake(q) FROM unnest(v_queues) AS q;
    RETURN QUERY SELECT unnest(v_moved);
END;
$$;

COMMENT ON FUNCTION lzq_checks_done(jsonb) IS
    'Superqueuer: record readiness evaluations: passed -> ready (with limits), not_ready -> backoff, invalid -> failed.';
