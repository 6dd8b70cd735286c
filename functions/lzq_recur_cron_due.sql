-- lzq_recur_cron_due(min_ahead): cron definitions running short of precomputed fire times.
-- Called by the superqueuer on its sweep passes; it computes more with croniter (in the
-- definition's time zone) and stores them with lzq_recur_cron_extend. Returns each definition's
-- cron, zone, and the time to continue from (its last known fire time, or now).
CREATE OR REPLACE FUNCTION lzq_recur_cron_due(min_ahead integer DEFAULT 10)
RETURNS TABLE (id bigint, cron text, timezone text, continue_after timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT r.id, r.cron, r.timezone,
           greatest(now(), (SELECT max(s) FROM unnest(r.cron_slots) AS s))
      FROM lzq_recurring AS r
     WHERE r.cron IS NOT NULL
       AND (SELECT count(*) FROM unnest(r.cron_slots) AS s WHERE s > now()) < min_ahead;
$$;

COMMENT ON FUNCTION lzq_recur_cron_due(integer) IS
    'Superqueuer: cron recurrences with fewer than min_ahead future fire times precomputed.';
