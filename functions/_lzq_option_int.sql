-- _lzq_option_int(options, key, default_value, min_value, max_value): one integer option, checked.
-- Called by _lzq_new_job (and anything else that reads integer options from a jsonb object).
-- Returns default_value when the key is absent or JSON null; raises 22023 naming the key when the
-- value is not an integer in [min_value, max_value].
CREATE OR REPLACE FUNCTION _lzq_option_int(options jsonb, key text, default_value integer,
                                           min_value integer, max_value integer)
RETURNS integer
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_value jsonb := options -> key;
    v_number numeric;
BEGIN
    IF v_value IS NULL OR v_value = 'null'::jsonb THEN
        RETURN default_value;
    END IF;
    IF jsonb_typeof(v_value) <> 'number' THEN
        PERFORM _lzq_invalid(key, format('must be an integer between %s and %s, got %s',
                                         min_value, max_value, v_value));
    END IF;
    v_number := v_value::numeric;
    IF v_number <> trunc(v_number) OR v_number < min_value OR v_number > max_value THEN
        PERFORM _lzq_invalid(key, format('must be an integer between %s and %s, got %s',
                                         min_value, max_value, v_value));
    END IF;
    RETURN v_number::integer;
END;
$$;

COMMENT ON FUNCTION _lzq_option_int(jsonb, text, integer, integer, integer) IS
    'Read an integer option in [min, max] from a jsonb object; 22023 naming the key otherwise.';
