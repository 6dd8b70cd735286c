-- _lzq_recur_next(job_ids): create the next runs of recurring jobs whose runs just completed.
-- Called in the transaction that records the completion (success or final failure): lzq_finish,
-- lzq_sweep, lzq_checks_done. So a completed run always has a successor, or none was due (a cron
-- beyond its precomputed times: the sweep adds it), never a lost one.
CREATE OR REPLACE FUNCTION _lzq_recur_next(job_ids bigint[])
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM _lzq_recur_run(r, _lzq_recur_after(r, now()))
       FROM lzq_recurring AS r
      WHERE r.id IN (SELECT j.recurring_id FROM lzq_jobs AS j
                      WHERE j.id = ANY (job_ids) AND j.recurring_id IS NOT NULL)
        AND _lzq_recur_after(r, now()) IS NOT NULL;
END;
$$;

COMMENT ON FUNCTION _lzq_recur_next(bigint[]) IS
    'After runs of recurring jobs completed: create each definition''s next run (once per slot).';
