-- _lzq_recur_next(job_ids): create the next runs of recurring jobs whose runs just completed.
-- Called in the transaction that records the completion (success or final failure): lzq_finish,
-- lzq_sweep, lzq_checks_done. So a completed run always has a successor, or none was due yet (a
-- cron beyond its precomputed times: the sweep adds it), never a lost one. The next slot is the
-- first after the completion, or after the run's own slot if it completed early (moved by hand).
CREATE OR REPLACE FUNCTION _lzq_recur_next(job_ids bigint[])
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM _lzq_recur_run(done.r, done.slot)
       FROM (SELECT r, _lzq_recur_after(r, greatest(now(), j.recur_slot)) AS slot
               FROM lzq_jobs AS j
               JOIN lzq_recurring AS r ON r.id = j.recurring_id
              WHERE j.id = ANY (job_ids)) AS done
      WHERE done.slot IS NOT NULL;
END;
$$;

COMMENT ON FUNCTION _lzq_recur_next(bigint[]) IS
    'After runs of recurring jobs completed: create each definition''s next run (once per slot).';
