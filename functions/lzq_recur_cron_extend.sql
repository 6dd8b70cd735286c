-- lzq_recur_cron_extend(recurring_id, fire_times): add precomputed cron fire times.
-- Called by the superqueuer after lzq_recur_cron_due. Times more than an hour old are dropped (a
-- run completing early may still look a little back); the rest are merged, sorted and deduplicated. A definition whose run went missing (no pending run) gets it back at
-- the next sweep.
CREATE OR REPLACE FUNCTION lzq_recur_cron_extend(recurring_id bigint, fire_times timestamptz[])
RETURNS void
LANGUAGE sql AS $$
    UPDATE lzq_recurring AS r
       SET cron_slots = ARRAY(SELECT DISTINCT s FROM unnest(r.cron_slots || fire_times) AS s
                               WHERE s > now() - interval '1 hour' ORDER BY s)
     WHERE r.id = lzq_recur_cron_extend.recurring_id;
$$;

COMMENT ON FUNCTION lzq_recur_cron_extend(bigint, timestamptz[]) IS
    'Superqueuer: store more precomputed cron fire times for a recurring job.';
