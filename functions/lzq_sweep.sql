-- lzq_sweep(dead_after_s): repair what crashes leave behind; returns the jobs it moved.
-- Called by superqueuers every few seconds; only one sweeps at a time (try-lock on an advisory
-- lock: the others return at once with no rows).
-- Moves dispatched -> ready when the dispatch lease expired (superqueuer died before publishing,
-- message lost, no worker started it); running -> ready, or -> failed when attempts are spent, when
-- the job's worker has not heartbeaten for dead_after_s seconds (crashed, killed, or frozen). Frees
-- their limit_to slots and tells the dependents of the failed ones. Backstops: slots held by jobs
-- that are no longer dispatched or running are freed, and jobs waiting on a limit that has free
-- slots are made ready (a slot freed while such a job was being parked did not wake it); a
-- recurring job without a pending run gets its next one. Then forgets dead workers and
-- superqueuers. A swept worker that wakes up finds its jobs' fences moved: its late reports are
-- rejected by lzq_finish.
CREATE OR REPLACE FUNCTION lzq_sweep(dead_after_s integer DEFAULT 30)
RETURNS TABLE (id bigint, from_status text, to_status text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_dead_after interval := make_interval(secs => dead_after_s);
    v_ids bigint[];
    v_from text[];
    v_to text[];
    v_queues text[];
    v_failed bigint[];
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtextextended('lzq_sweep', 0)) THEN
        RETURN;
    END IF;

    -- Lock what moves in id order, as pushes lock the jobs they depend on: no deadlock with a push.
    PERFORM 1 FROM lzq_jobs AS j
      WHERE (j.status = 'dispatched' AND j.lease_expires_at < now())
         OR (j.status = 'running'
             AND NOT EXISTS (SELECT 1 FROM lzq_workers AS w
                              WHERE w.worker_id = j.worker_id AND w.heartbeat_at > now() - v_dead_after))
      ORDER BY j.id FOR UPDATE;
    WITH expired AS (
        UPDATE lzq_jobs AS j
           SET status = 'ready', lease_expires_at = NULL
         WHERE j.status = 'dispatched' AND j.lease_expires_at < now()
        RETURNING j.id, 'dispatched'::text AS from_status, j.status AS to_status, j.queue_name
    ), lost AS (
        UPDATE lzq_jobs AS j
           SET status = CASE WHEN j.attempts >= j.max_failures THEN 'failed' ELSE 'ready' END,
               last_error = format('worker %s stopped heartbeating during attempt %s', j.worker_id, j.attempts),
               finished_at = CASE WHEN j.attempts >= j.max_failures THEN now() END
         WHERE j.status = 'running'
           AND NOT EXISTS (SELECT 1 FROM lzq_workers AS w
                            WHERE w.worker_id = j.worker_id AND w.heartbeat_at > now() - v_dead_after)
        RETURNING j.id, 'running'::text AS from_status, j.status AS to_status, j.queue_name
    ), moved AS (
        SELECT * FROM expired UNION ALL SELECT * FROM lost
    )
    SELECT array_agg(moved.id), array_agg(moved.from_status), array_agg(moved.to_status),
           array_agg(DISTINCT moved.queue_name) FILTER (WHERE moved.to_status = 'ready')
      INTO v_ids, v_from, v_to, v_queues
      FROM moved;
    PERFORM _lzq_release_slots(v_ids);
    v_failed := ARRAY(SELECT m.id FROM unnest(v_ids, v_to) AS m(id, to_status) WHERE m.to_status = 'failed');
    PERFORM _lzq_resolve_dependents(v_failed);
    PERFORM _lzq_recur_next(v_failed);

    -- Backstops for limit_to slots (see header).
    PERFORM _lzq_release_slots(ARRAY(
        SELECT s.job_id FROM lzq_slots AS s
         WHERE s.job_id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM lzq_jobs AS j
                            WHERE j.id = s.job_id AND j.status IN ('dispatched', 'running'))));
    PERFORM _lzq_wake_parked(ARRAY(SELECT DISTINCT j.waiting_on_limit FROM lzq_jobs AS j
                                    WHERE j.status = 'waiting' AND j.waiting_on_limit IS NOT NULL));

    -- A recurring job with no pending run (deleted by hand, or a cron beyond its precomputed fire
    -- times) gets its next one: on its grid or cron from now; a plain interval after its last end.
    PERFORM _lzq_recur_run(m.r, m.slot)
       FROM (SELECT r,
                    CASE WHEN r.every IS NOT NULL AND r.base_time IS NULL THEN
                             greatest(now(), _lzq_next_slot(r.every, NULL,
                                 (SELECT max(j.finished_at) FROM lzq_jobs AS j WHERE j.recurring_id = r.id),
                                 r.timezone))
                         ELSE _lzq_recur_after(r, now() - interval '1 microsecond') END AS slot
               FROM lzq_recurring AS r
              WHERE NOT EXISTS (SELECT 1 FROM lzq_jobs AS j
                                 WHERE j.recurring_id = r.id
                                   AND j.status IN ('waiting', 'scheduled', 'ready', 'dispatched', 'running'))
            ) AS m
      WHERE m.slot IS NOT NULL;

    DELETE FROM lzq_workers AS w WHERE w.heartbeat_at <= now() - v_dead_after;
    DELETE FROM lzq_superqueuers AS s WHERE s.heartbeat_at <= now() - v_dead_after;

    -- Only queues that got ready jobs: a sweep that moved nothing wakes nobody.
    PERFORM _lzq_wake(q) FROM (SELECT DISTINCT q FROM unnest(v_queues) AS q WHERE q IS NOT NULL) AS w(q);
    RETURN QUERY SELECT * FROM unnest(v_ids, v_from, v_to);
END;
$$;

COMMENT ON FUNCTION lzq_sweep(integer) IS
    'Maintenance: expired dispatches -> ready; running jobs of dead workers -> ready|failed; free stray slots; forget dead workers.';
