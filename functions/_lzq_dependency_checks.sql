-- _lzq_dependency_checks(job_options): the readiness-check references in job_options.depends_on.
-- Called by _lzq_new_job. A reference is "#method" (a method of the job's own handler),
-- "pkg.module.Class#method" or "service#method"; the method part must be a public identifier.
-- Whether the method exists is known only to Python: the client checks what it can load, and the
-- superqueuer fails the job if it does not exist. Raises 22023 naming depends_on for a bad form.
CREATE OR REPLACE FUNCTION _lzq_dependency_checks(job_options jsonb)
RETURNS text[]
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_ref text;
    v_checks text[] := '{}';
BEGIN
    IF jsonb_typeof(job_options -> 'depends_on') IS DISTINCT FROM 'array' THEN
        RETURN v_checks;
    END IF;
    FOR v_ref IN
        SELECT e #>> '{}' FROM jsonb_array_elements(job_options -> 'depends_on') AS e
         WHERE jsonb_typeof(e) = 'string'
    LOOP
        IF v_ref !~ '^[^#]{0,255}#[A-Za-z][A-Za-z0-9_]*$' THEN
            PERFORM _lzq_invalid('depends_on', format('%L is not a check reference: use "#method", '
                                                      '"pkg.module.Class#method" or "service#method"', v_ref));
        END IF;
        IF NOT v_ref = ANY (v_checks) THEN
            v_checks := v_checks || v_ref;
        END IF;
    END LOOP;
    RETURN v_checks;
END;
$$;

COMMENT ON FUNCTION _lzq_dependency_checks(jsonb) IS
    'The readiness-check references ("#method", "Class#method", "service#method") in job_options.depends_on.';
