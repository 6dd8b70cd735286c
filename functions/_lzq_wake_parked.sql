-- _lzq_wake_parked(limit_keys): make ready as many jobs parked on these limits as can use a slot.
-- Called by _lzq_release_slots (slots just freed) and lzq_sweep (backstop). Per key: the free slots,
-- minus the jobs already woken for it and not yet claimed (ready, still marked with
-- waiting_on_limit until the claim takes them), is how many parked jobs to wake, in the dispatch
-- order they had when they parked (their vtag, which they keep: see _lzq_stamp_ready); only jobs
-- whose count reaches a free slot (a count-1 job cannot use slot 2).
-- So repeated sweeps never flood the ready index with jobs that would only park again.
CREATE OR REPLACE FUNCTION _lzq_wake_parked(limit_keys text[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_key text;
    v_free integer;
    v_lowest_free integer;
    v_woken_already integer;
    v_queues text[];
BEGIN
    FOR v_key IN SELECT DISTINCT k FROM unnest(limit_keys) AS k WHERE k IS NOT NULL LOOP
        SELECT count(*), min(s.slot) INTO v_free, v_lowest_free
          FROM lzq_slots AS s WHERE s.limit_key = v_key AND s.job_id IS NULL;
        SELECT count(*) INTO v_woken_already
          FROM lzq_jobs AS j WHERE j.status = 'ready' AND j.waiting_on_limit = v_key;
        CONTINUE WHEN v_free - v_woken_already <= 0;
        WITH woken AS (
            UPDATE lzq_jobs AS j
               SET status = 'ready'
             WHERE j.id IN (SELECT w.id
                              FROM lzq_jobs AS w
                             WHERE w.status = 'waiting' AND w.waiting_on_limit = v_key
                               AND (SELECT max((l ->> 'count')::integer) FROM jsonb_array_elements(w.limits) AS l
                                     WHERE l ->> 'key' = v_key) >= v_lowest_free
                             ORDER BY w.vtag, w.priority, w.id
                             LIMIT v_free - v_woken_already
                               FOR UPDATE SKIP LOCKED)
            RETURNING j.queue_name
        )
        SELECT array_agg(DISTINCT woken.queue_name) INTO v_queues FROM woken;
        PERFORM _lzq_wake(q) FROM unnest(v_queues) AS q;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION _lzq_wake_parked(text[]) IS
    'Wake as many jobs parked on these limit_to keys as there are free slots not already promised.';
