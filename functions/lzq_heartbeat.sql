-- lzq_heartbeat(worker_id, hostname, pid, queues, slots, stopping): a worker says it is alive.
-- Called by each worker process every couple of seconds from its own thread (never the job's), and
-- once at start to register. Its slots become dispatch credit for its queues; `stopping` withdraws
-- that credit while it finishes running jobs; a new, non-stopping worker wakes sleeping superqueuers.
-- Returns true when the row had to be created: after the first call that means the sweep declared
-- this worker dead and may have restarted its jobs elsewhere, so the worker must stop at once.
CREATE OR REPLACE FUNCTION lzq_heartbeat(worker_id text, hostname text, pid integer, queues text[],
                                         slots integer, stopping boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_created boolean;
BEGIN
    INSERT INTO lzq_workers AS w (worker_id, hostname, pid, queues, slots, stopping)
    VALUES (lzq_heartbeat.worker_id, lzq_heartbeat.hostname, lzq_heartbeat.pid, lzq_heartbeat.queues,
            lzq_heartbeat.slots, lzq_heartbeat.stopping)
    ON CONFLICT ON CONSTRAINT lzq_workers_pkey DO UPDATE
       SET heartbeat_at = now(), stopping = excluded.stopping, queues = excluded.queues,
           slots = excluded.slots
    RETURNING w.xmax = 0 INTO v_created;
    IF v_created AND NOT lzq_heartbeat.stopping THEN
        -- New slots: a sleeping superqueuer may have jobs that waited for a worker. Without this,
        -- a backlog pushed before any worker started waited for the superqueuer's polling
        -- backstop (bin/demo on a new database: the first jobs 1.4 s late in half the runs).
        PERFORM _lzq_wake(q) FROM unnest(lzq_heartbeat.queues) AS q;
    END IF;
    RETURN v_created;
END;
$$;

COMMENT ON FUNCTION lzq_heartbeat(text, text, integer, text[], integer, boolean) IS
    'Worker: register or heartbeat (slots are dispatch credit); true if the row was (re)created.';
