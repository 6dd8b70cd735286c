-- lzq_prune(older_than, max_jobs): delete finished jobs older than a retention; returns the rows deleted.
-- Called by the superqueuer (every minute, with LZQ_RETENTION), by `lzq prune`, or from plain SQL
-- (a cron job: SELECT lzq_prune('7 days')). Moves no job between states: it deletes, in one
-- transaction and at most max_jobs rows in all,
--   1. jobs in a final status (succeeded, failed, cancelled) whose finished_at is more than
--      older_than ago, oldest first (through lzq_jobs_finished_idx);
--   2. with what is left of max_jobs, lzq_buffered records written in more than older_than ago,
--      oldest first. They have no foreign key to lzq_jobs (see schema.sql): they age on their own,
--      so the buffer's idempotency window (a redelivered push is recognised by its uuid) equals the
--      retention, whether or not the push's job still exists.
-- The count returned is both together: a call that returns less than max_jobs left nothing behind.
-- What it keeps, so that no rule changes when rows go:
--   * every job that is not final, however old;
--   * a recurring run whose slot is still ahead (a cancelled future run is what makes the sweep
--     skip that slot), and each definition's latest run (the sweep times the next run of a plain
--     interval from the last completion). Every slot the rules compute lies at or after now, so
--     the slot of a deleted run, always in the past, is never filled again;
-- and what goes with a job: its lzq_dependencies rows, both ways (ON DELETE CASCADE). A parent
-- becomes final in the same transaction that tells its waiting dependents (one unmet dependency
-- fewer, or cancelled), so no job still waits on a deleted parent; a push naming a deleted id gets
-- "depends_on: unknown job id". lzq_slots are held only by dispatched or running jobs (the sweep
-- frees any other), so a final job holds none.
-- Locks: candidate jobs and records FOR UPDATE SKIP LOCKED, so it never waits for the hot path: a
-- job a concurrent push depends on (FOR SHARE until that push commits) is skipped and deleted by a
-- later call. Pruners take the advisory lock hashtextextended('lzq_prune', 0) for their
-- transaction, one after the other: two pruners deleting a parent and its child at once would
-- cascade into the same lzq_dependencies rows from both ends and could deadlock. The superqueuer
-- tries that lock first and skips its turn when another pruner holds it.
-- Raises 22023 naming older_than (NULL or negative) or max_jobs (NULL or below 1).
--   SELECT lzq_prune('7 days');                       -- up to 10,000 rows
--   SELECT lzq_prune('12 hours', max_jobs => 1000);
CREATE OR REPLACE FUNCTION lzq_prune(older_than interval, max_jobs integer DEFAULT 10000)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_cutoff timestamptz;
    v_jobs integer;
    v_buffered integer := 0;
BEGIN
    IF older_than IS NULL OR older_than < interval '0' THEN
        PERFORM _lzq_invalid('older_than', format('must be an interval of 0 or more, got %s',
                                                  coalesce(older_than::text, 'NULL')));
    END IF;
    IF max_jobs IS NULL OR max_jobs < 1 THEN
        PERFORM _lzq_invalid('max_jobs', format('must be 1 or more, got %s', coalesce(max_jobs::text, 'NULL')));
    END IF;
    v_cutoff := now() - older_than;
    PERFORM pg_advisory_xact_lock(hashtextextended('lzq_prune', 0));

    WITH doomed AS (
        SELECT j.id
          FROM lzq_jobs AS j
         WHERE j.status IN ('succeeded', 'failed', 'cancelled')
           AND j.finished_at < v_cutoff
           AND (j.recurring_id IS NULL
                OR (j.recur_slot < now()
                    AND EXISTS (SELECT 1 FROM lzq_jobs AS later
                                 WHERE later.recurring_id = j.recurring_id
                                   AND later.recur_slot > j.recur_slot)))
         ORDER BY j.finished_at
         LIMIT max_jobs
           FOR UPDATE OF j SKIP LOCKED
    )
    DELETE FROM lzq_jobs AS j
     USING doomed
     WHERE j.id = doomed.id;
    GET DIAGNOSTICS v_jobs = ROW_COUNT;

    IF v_jobs < max_jobs THEN
        WITH doomed AS (
            SELECT b.uuid
              FROM lzq_buffered AS b
             WHERE b.inserted_at < v_cutoff
             ORDER BY b.inserted_at
             LIMIT max_jobs - v_jobs
               FOR UPDATE SKIP LOCKED
        )
        DELETE FROM lzq_buffered AS b
         USING doomed
         WHERE b.uuid = doomed.uuid;
        GET DIAGNOSTICS v_buffered = ROW_COUNT;
    END IF;
    RETURN v_jobs + v_buffered;
END;
$$;

COMMENT ON FUNCTION lzq_prune(interval, integer) IS
    'Maintenance: delete up to max_jobs final jobs (then buffer records) older than older_than, oldest first; returns the rows deleted.';
