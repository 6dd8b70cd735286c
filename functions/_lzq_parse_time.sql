-- _lzq_parse_time(value, field): a start time as users write it, in database time.
-- Called by lzq_push / lzq_schedule. Accepts NULL or 'now', '+<any PostgreSQL interval>'
-- ('+1 hour', '+90 seconds', '+00:00:05') and timestamps ('2014-07-20 00:15:00', ISO 8601 with or
-- without a zone; without one, the session TimeZone applies). Raises 22023 naming `field` otherwise.
CREATE OR REPLACE FUNCTION _lzq_parse_time(value text, field text)
RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_text   text := btrim(value);
    v_result timestamptz;
BEGIN
    IF v_text IS NULL OR lower(v_text) = 'now' THEN
        RETURN now();
    END IF;
    BEGIN
        IF left(v_text, 1) = '+' THEN
            v_result := now() + substr(v_text, 2)::interval;
        ELSE
            v_result := v_text::timestamptz;
        END IF;
    EXCEPTION WHEN data_exception THEN
        PERFORM _lzq_invalid(field, format('cannot parse %L as a time: use ''now'', ''+<interval>'' '
                                           'or a timestamp', value));
    END;
    IF NOT isfinite(v_result) THEN
        PERFORM _lzq_invalid(field, format('%L is not a finite time', value));
    END IF;
    RETURN v_result;
END;
$$;

COMMENT ON FUNCTION _lzq_parse_time(text, text) IS
    'Parse ''now'', ''+<interval>'' or a timestamp; 22023 naming the field otherwise.';
