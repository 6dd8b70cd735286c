-- lzq_queue_mode(queue_name, mode): how a queue orders its ready jobs; returns the mode now in force.
-- Called by user SQL, lzq.Client.queue_mode and `lzq queue mode`. Modes:
--   'fair' (default): nice-weighted fair sharing between flows (queue, fairness_key, priority),
--                     FIFO inside a flow; no level ever starves;
--   'priority':       strict nice order, then ready order: a lower level runs only when no higher
--                     level is ready, so it can starve (what most peers do);
--   'fifo':           ready order, nice ignored.
-- mode NULL only reads the current mode. A change re-stamps the queue's ready jobs under the new
-- mode in the order they had (one UPDATE per ready job: O(backlog), an administrative operation);
-- jobs another transaction makes ready while the change commits may keep an old-mode tag.
-- Locks the lzq_queues row and the queue's ready jobs (FOR UPDATE: a claim skips them meanwhile).
-- Raises 22023 (queue_name, mode) on bad input.
CREATE OR REPLACE FUNCTION lzq_queue_mode(queue_name text, mode text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_name constant text := queue_name;
    v_old text;
    v_ids bigint[];
    v_id bigint;
BEGIN
    IF v_name IS NULL OR length(v_name) NOT BETWEEN 1 AND 200 THEN
        PERFORM _lzq_invalid('queue_name', 'must be a string of 1 to 200 characters');
    END IF;
    SELECT q.mode INTO v_old FROM lzq_queues AS q WHERE q.queue_name = v_name;
    IF lzq_queue_mode.mode IS NULL THEN
        RETURN coalesce(v_old, 'fair');
    END IF;
    IF lzq_queue_mode.mode NOT IN ('fair', 'priority', 'fifo') THEN
        PERFORM _lzq_invalid('mode', format('must be one of fair, priority, fifo, got %s', lzq_queue_mode.mode));
    END IF;
    IF coalesce(v_old, 'fair') = lzq_queue_mode.mode THEN
        RETURN lzq_queue_mode.mode;
    END IF;
    -- The backlog's rows before the queue's row: the claim locks in that order too (jobs, then its
    -- clock), so a claim running meanwhile waits instead of deadlocking.
    SELECT array_agg(j.id ORDER BY j.vtag, j.priority, j.id) INTO v_ids
      FROM (SELECT j.id, j.vtag, j.priority FROM lzq_jobs AS j
             WHERE j.status = 'ready' AND j.queue_name = v_name
               FOR UPDATE) AS j;
    INSERT INTO lzq_queues AS q (queue_name, mode) VALUES (v_name, lzq_queue_mode.mode)
    ON CONFLICT (queue_name) DO UPDATE SET mode = excluded.mode, updated_at = now();

    -- Re-stamp the backlog through _lzq_stamp_ready, in its old order. First park every old tag
    -- below any new one (-1: under every clock), so flow tails seen while re-stamping are new tags.
    UPDATE lzq_jobs AS j SET vtag = -1 WHERE j.id = ANY (v_ids);
    FOREACH v_id IN ARRAY coalesce(v_ids, '{}') LOOP
        UPDATE lzq_jobs AS j SET vtag = NULL WHERE j.id = v_id;
    END LOOP;
    RETURN lzq_queue_mode.mode;
END;
$$;

COMMENT ON FUNCTION lzq_queue_mode(text, text) IS
    'Read or set how a queue orders its ready jobs: fair (default), priority (strict nice, may starve) or fifo.';
