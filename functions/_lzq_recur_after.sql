-- _lzq_recur_after(recurring, after): the definition's next slot strictly after a time, or NULL.
-- Called by _lzq_recur_next (after = the completion) and lzq_sweep (after = now). Interval
-- recurrences use _lzq_next_slot; cron ones take the first precomputed fire time after `after`
-- (NULL when the superqueuers have not computed that far yet: the sweep creates the run later).
CREATE OR REPLACE FUNCTION _lzq_recur_after(recurring lzq_recurring, after timestamptz)
RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN recurring.every IS NOT NULL
            THEN _lzq_next_slot(recurring.every, recurring.base_time, after, recurring.timezone)
        ELSE (SELECT min(s) FROM unnest(recurring.cron_slots) AS s WHERE s > after)
    END;
$$;

COMMENT ON FUNCTION _lzq_recur_after(lzq_recurring, timestamptz) IS
    'Next slot of a recurring job after a time (interval math, or the next precomputed cron time).';
