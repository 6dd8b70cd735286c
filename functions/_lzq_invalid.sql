-- _lzq_invalid(field, message): raise the error for bad input, as "<field>: <message>".
-- Called by every validating function. Raises SQLSTATE 22023 (invalid_parameter_value) with the field
-- in COLUMN, so Python maps it to lzq.InvalidArgument(field) and plain-SQL users see it in \errverbose.
-- Never returns. Because it raises, the calling statement and everything it wrote roll back.
CREATE OR REPLACE FUNCTION _lzq_invalid(field text, message text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = '22023',
        MESSAGE = format('%s: %s', field, message),
        COLUMN = field;
END;
$$;

COMMENT ON FUNCTION _lzq_invalid(text, text) IS
    'Raise SQLSTATE 22023 "<field>: <message>" with COLUMN = field.';
