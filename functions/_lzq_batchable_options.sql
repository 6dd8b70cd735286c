-- _lzq_batchable_options(options): whether a job's options let lzq_push_many build its row set-based.
-- True for none (NULL, null, {}) and for an object holding only queue_name, priority, max_failures and
-- fairness_key, each null or valid by the rules _lzq_new_job applies to them (_lzq_option_text,
-- _lzq_option_int). Anything else (start_time, depends_on, a mistake to report) sends the batch
-- through lzq_push_many's per-job loop, which builds the same rows or names the bad field
-- (tests/sql/test_lzq_push_many.py holds the two paths equal).
-- One SQL expression, so PostgreSQL inlines it into the caller's query: no function call per job.
-- (CASE, not AND: a jsonb string must not reach the ::numeric cast.)
CREATE OR REPLACE FUNCTION _lzq_batchable_options(options jsonb)
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN options IS NULL OR options = 'null'::jsonb OR options = '{}'::jsonb THEN true
        WHEN jsonb_typeof(options) <> 'object'
             OR options - ARRAY['queue_name', 'priority', 'max_failures', 'fairness_key'] <> '{}'::jsonb THEN false
        ELSE
            CASE coalesce(jsonb_typeof(options -> 'queue_name'), 'null')
                WHEN 'null' THEN true
                WHEN 'string' THEN (options ->> 'queue_name') ~ '\S' AND length(options ->> 'queue_name') <= 200
                ELSE false END
            AND CASE coalesce(jsonb_typeof(options -> 'fairness_key'), 'null')
                WHEN 'null' THEN true
                WHEN 'string' THEN (options ->> 'fairness_key') ~ '\S' AND length(options ->> 'fairness_key') <= 255
                ELSE false END
            AND CASE coalesce(jsonb_typeof(options -> 'priority'), 'null')
                WHEN 'null' THEN true
                WHEN 'number' THEN (options -> 'priority')::numeric = trunc((options -> 'priority')::numeric)
                                   AND (options -> 'priority')::numeric BETWEEN -20 AND 20
                ELSE false END
            AND CASE coalesce(jsonb_typeof(options -> 'max_failures'), 'null')
                WHEN 'null' THEN true
                WHEN 'number' THEN (options -> 'max_failures')::numeric = trunc((options -> 'max_failures')::numeric)
                                   AND (options -> 'max_failures')::numeric BETWEEN 1 AND 1000000
                ELSE false END
    END
$$;

COMMENT ON FUNCTION _lzq_batchable_options(jsonb) IS
    'Whether lzq_push_many may build a job with these options set-based (only valid queue_name, priority, max_failures, fairness_key).';
