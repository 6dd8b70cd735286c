-- _lzq_dependency_ids(job_options): the job ids in job_options.depends_on, checked for form.
-- Called by _lzq_new_job (validation) and by lzq_push / lzq_push_many (to attach dependencies).
-- depends_on is a JSON array of positive integer job ids and readiness-check strings
-- ("#method", "pkg.Class#method", "service#method"); the strings are _lzq_dependency_checks'.
-- Raises 22023 naming depends_on for anything else. Duplicates are dropped; order is kept.
CREATE OR REPLACE FUNCTION _lzq_dependency_ids(job_options jsonb)
RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_list jsonb := job_options -> 'depends_on';
    v_item jsonb;
    v_ids bigint[] := '{}';
BEGIN
    IF v_list IS NULL OR v_list = 'null'::jsonb THEN
        RETURN v_ids;
    END IF;
    IF jsonb_typeof(v_list) <> 'array' THEN
        PERFORM _lzq_invalid('depends_on', format('must be a list of job ids and "#check" references, got %s',
                                                  v_list));
    END IF;
    FOR v_item IN SELECT e FROM jsonb_array_elements(v_list) AS e LOOP
        IF jsonb_typeof(v_item) = 'number' THEN
            IF v_item::numeric <> trunc(v_item::numeric) OR v_item::numeric < 1
               OR v_item::numeric > 9223372036854775807 THEN
                PERFORM _lzq_invalid('depends_on', format('job ids must be positive integers, got %s', v_item));
            END IF;
            IF NOT v_item::bigint = ANY (v_ids) THEN
                v_ids := v_ids || v_item::bigint;
            END IF;
        ELSIF jsonb_typeof(v_item) <> 'string' THEN
            PERFORM _lzq_invalid('depends_on', format('must hold job ids and "#check" strings, got %s', v_item));
        END IF;
    END LOOP;
    RETURN v_ids;
END;
$$;

COMMENT ON FUNCTION _lzq_dependency_ids(jsonb) IS
    'The job ids in job_options.depends_on (validated); 22023 naming depends_on otherwise.';
