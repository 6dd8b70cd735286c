-- _lzq_cost(priority): the virtual time one job at this nice level costs its flow.
-- Called by _lzq_stamp_ready. The weight of nice n is 1024 / 1.25^n (Linux's sched_prio_to_weight,
-- extended to +20); the cost is its inverse scaled to an exact integer, round(2^20 * 1.25^n), so
-- tags are bigints with no float ties: nice -20 -> 12089, 0 -> 1048576, 5 -> 3200000,
-- 20 -> 90949470 (tests/fairness_model.py COST is the same table).
CREATE OR REPLACE FUNCTION _lzq_cost(priority smallint)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT round(1048576 * power(1.25::numeric, priority))::bigint;
$$;

COMMENT ON FUNCTION _lzq_cost(smallint) IS
    'Virtual-time cost of one job at this nice level: round(2^20 * 1.25^priority).';
