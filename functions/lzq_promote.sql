-- lzq_promote(max_jobs): make due scheduled jobs ready; returns how many, and how soon the next is due.
-- Called by the superqueuer on every loop. Moves scheduled -> ready for jobs whose run_at has come
-- (start times and retry backoffs), or -> waiting when readiness checks are still to pass (they are
-- evaluated once the start time has come), oldest first, at most max_jobs per call; rows another
-- superqueuer is promoting are skipped (FOR UPDATE SKIP LOCKED). next_due_in_s (NULL if nothing is
-- scheduled and no readiness check is pending) lets the superqueuer sleep exactly until the next
-- start time or check evaluation, in database time.
CREATE OR REPLACE FUNCTION lzq_promote(max_jobs integer)
RETURNS TABLE (promoted integer, next_due_in_s double precision)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH due AS (
        SELECT j.id
          FROM lzq_jobs AS j
         WHERE j.status = 'scheduled' AND j.run_at <= now()
         ORDER BY j.run_at
         LIMIT max_jobs
           FOR UPDATE SKIP LOCKED
    ), moved AS (
        UPDATE lzq_jobs AS j
           SET status = CASE WHEN j.checks <> '{}' THEN 'waiting' ELSE 'ready' END,
               check_at = CASE WHEN j.checks <> '{}' THEN now() END
          FROM due
         WHERE j.id = due.id AND j.status = 'scheduled'
        RETURNING j.id
    )
    -- The statement still sees promoted rows as scheduled: leave them out. Due jobs left over by
    -- max_jobs make it 0 (go again now), not NULL (nothing scheduled).
    SELECT (SELECT count(*) FROM moved)::integer,
           CASE WHEN next_due.at IS NOT NULL
                THEN greatest(0, extract(epoch FROM next_due.at - now()))::double precision END
      FROM (SELECT least(
                (SELECT min(j.run_at) FROM lzq_jobs AS j
                  WHERE j.status = 'scheduled' AND j.id NOT IN (SELECT moved.id FROM moved)),
                (SELECT min(j.check_at) FROM lzq_jobs AS j
                  WHERE j.status = 'waiting' AND j.unmet_deps = 0 AND j.checks <> '{}')) AS at) AS next_due;
END;
$$;

COMMENT ON FUNCTION lzq_promote(integer) IS
    'Superqueuer: scheduled -> ready|waiting for due jobs (at most max_jobs); returns (promoted, next_due_in_s).';
