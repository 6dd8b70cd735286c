-- lzq_sweep(dead_after_s): repair what crashes leave behind; returns the jobs it moved.
-- Called by superqueuers every few seconds; only one sweeps at a time (try-lock on an advisory
-- lock: the others return at once with no rows).
-- Moves dispatched -> ready when the dispatch lease expired (superqueuer died before publishing,
-- message lost, no worker started it); running -> ready, or -> failed when attempts are spent, when
-- the job's worker has not heartbeaten for dead_after_s seconds (crashed, killed, or frozen). Then
-- forgets dead workers and superqueuers. A swept worker that wakes up finds its jobs' fences moved:
-- its late reports are rejected by lzq_finish.
CREATE OR REPLACE FUNCTION lzq_sweep(dead_after_s integer DEFAULT 30)
RETURNS TABLE (id bigint, from_status text, to_status text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_dead_after interval := make_interval(secs => dead_after_s);
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtextextended('lzq_sweep', 0)) THEN
        RETURN;
    END IF;

    RETURN QUERY
    UPDATE lzq_jobs AS j
       SET status = 'ready', lease_expires_at = NULL
     WHERE j.status = 'dispatched' AND j.lease_expires_at < now()
    RETURNING j.id, 'dispatched'::text, j.status;

    RETURN QUERY
    UPDATE lzq_jobs AS j
       SET status = CASE WHEN j.attempts >= j.max_failures THEN 'failed' ELSE 'ready' END,
           last_error = format('worker %s stopped heartbeating during attempt %s', j.worker_id, j.attempts),
           finished_at = CASE WHEN j.attempts >= j.max_failures THEN now() END
     WHERE j.status = 'running'
       AND NOT EXISTS (SELECT 1 FROM lzq_workers AS w
                        WHERE w.worker_id = j.worker_id AND w.heartbeat_at > now() - v_dead_after)
    RETURNING j.id, 'running'::text, j.status;

    DELETE FROM lzq_workers AS w WHERE w.heartbeat_at <= now() - v_dead_after;
    DELETE FROM lzq_superqueuers AS s WHERE s.heartbeat_at <= now() - v_dead_after;

    PERFORM _lzq_wake('');
END;
$$;

COMMENT ON FUNCTION lzq_sweep(integer) IS
    'Maintenance: expired dispatches -> ready; running jobs of dead workers -> ready|failed; forget dead workers.';
