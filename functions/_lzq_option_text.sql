-- _lzq_option_text(options, key, default_value, max_length): one non-blank string option, checked.
-- Called by _lzq_new_job. Returns default_value when the key is absent or JSON null; raises 22023
-- naming the key when the value is not a string, is blank, or is longer than max_length characters.
-- The value is returned verbatim (no trimming): names are data, never spliced into SQL.
CREATE OR REPLACE FUNCTION _lzq_option_text(options jsonb, key text, default_value text,
                                            max_length integer)
RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_value jsonb := options -> key;
    v_text text;
BEGIN
    IF v_value IS NULL OR v_value = 'null'::jsonb THEN
        RETURN default_value;
    END IF;
    IF jsonb_typeof(v_value) <> 'string' THEN
        PERFORM _lzq_invalid(key, format('must be a string, got %s', v_value));
    END IF;
    v_text := v_value #>> '{}';
    IF v_text !~ '\S' THEN
        PERFORM _lzq_invalid(key, 'must not be empty');
    END IF;
    IF length(v_text) > max_length THEN
        PERFORM _lzq_invalid(key, format('must be at most %s characters, got %s', max_length,
                                         length(v_text)));
    END IF;
    RETURN v_text;
END;
$$;

COMMENT ON FUNCTION _lzq_option_text(jsonb, text, text, integer) IS
    'Read a non-blank string option of bounded length from a jsonb object; 22023 naming the key otherwise.';
