-- _lzq_cost(priority): the virtual time one job at this nice level costs its flow.
-- Called by _lzq_stamp_ready. The weight of nice n is 1024 / 1.25^n (Linux's sched_prio_to_weight,
-- extended to +20); the cost is its inverse scaled to an exact integer, round(2^20 * 1.25^n), so
-- tags are bigints with no float ties: nice -20 -> 12089, 0 -> 1048576, 5 -> 3200000,
-- 20 -> 90949470 (tests/fairness_model.py COST is the same table).
CREATE OR REPLACE FUNCTION _lzq_cost(priority smallint)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    -- The table, precomputed (it is read once per job made ready; numeric power() is slow).
    SELECT ('{12089,15112,18889,23612,29515,36893,46117,57646,72058,90072,112590,140737,175922,'
            '219902,274878,343597,429497,536871,671089,838861,1048576,1310720,1638400,2048000,'
            '2560000,3200000,4000000,5000000,6250000,7812500,9765625,12207031,15258789,19073486,'
            '23841858,29802322,37252903,46566129,58207661,72759576,90949470}'::bigint[])[priority + 21];
$$;

COMMENT ON FUNCTION _lzq_cost(smallint) IS
    'Virtual-time cost of one job at this nice level: round(2^20 * 1.25^priority).';
