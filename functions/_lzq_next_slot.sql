-- _lzq_next_slot(every, base_time, after, timezone): when a recurring job runs next, as the seed decided.
-- Called by lzq_recur (first run), _lzq_recur_after (at each completion, and by the sweep).
-- Without base_time: after + every (the completion time plus the interval, so a 5-hour run of an
-- hourly job does not re-run at once). With base_time: the first base_time + k * every (k >= 0)
-- strictly after `after`, so runs stay on the grid and missed slots collapse into one.
-- Intervals of hours, minutes and seconds ('12:00:00', '90 minutes') are elapsed time, exact.
-- Intervals with days or months ('1 day', '1 mon') step the wall clock of `timezone`: a daily job
-- stays at the same local time across DST. Those start from an estimate and step to the answer.
CREATE OR REPLACE FUNCTION _lzq_next_slot(every interval, base_time timestamptz, after timestamptz,
                                          timezone text DEFAULT 'UTC')
RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_wall_clock boolean := extract(month FROM every) <> 0 OR extract(day FROM every) <> 0
                            OR extract(year FROM every) <> 0;
    v_base timestamp;
    v_k bigint;
BEGIN
    IF NOT v_wall_clock THEN
        IF base_time IS NULL THEN
            RETURN after + every;
        END IF;
        IF after < base_time THEN
            RETURN base_time;
        END IF;
        -- Exact in microseconds: floor((after - base) / every) + 1 steps from the base.
        v_k := floor((extract(epoch FROM after - base_time) * 1000000)::numeric
                     / (extract(epoch FROM every) * 1000000)::numeric)::bigint + 1;
        RETURN base_time + every * v_k;
    END IF;

    IF base_time IS NULL THEN
        RETURN ((after AT TIME ZONE timezone) + every) AT TIME ZONE timezone;
    END IF;
    v_base := base_time AT TIME ZONE timezone;
    v_k := greatest(0, floor(extract(epoch FROM after - base_time) / extract(epoch FROM every)))::bigint;
    WHILE ((v_base + every * v_k) AT TIME ZONE timezone) <= after LOOP
        v_k := v_k + 1;
    END LOOP;
    WHILE v_k > 0 AND ((v_base + every * (v_k - 1)) AT TIME ZONE timezone) > after LOOP
        v_k := v_k - 1;
    END LOOP;
    RETURN (v_base + every * v_k) AT TIME ZONE timezone;
END;
$$;

COMMENT ON FUNCTION _lzq_next_slot(interval, timestamptz, timestamptz, text) IS
    'Next run of an interval recurrence after a time: after + every, or the first base_time + k*every after it.';
