-- _lzq_wake_freed(queue_names): tell sleeping superqueuers that jobs of these queues left running
-- and freed their slots, having made nothing ready. Called by lzq_finish (via _lzq_finish_locked).
-- The payload is chr(31) || queue name, unlike _lzq_wake's bare name: a superqueuer acts on it
-- only while ready jobs are left waiting for credit (its last look says so), because otherwise a
-- free slot has nothing to take and every finished job would cost it a pass and a claim (at
-- 200 jobs/s that was half of all claims). Whatever makes jobs ready calls _lzq_wake instead.
CREATE OR REPLACE FUNCTION _lzq_wake_freed(queue_names text[])
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM lzq_superqueuers s WHERE s.idle) THEN
        PERFORM pg_notify('lzq', chr(31) || q) FROM unnest(queue_names) AS q;
    END IF;
END;
$$;

COMMENT ON FUNCTION _lzq_wake_freed(text[]) IS
    'NOTIFY lzq, chr(31) || <queue> per queue if a superqueuer is sleeping: slots freed, nothing made ready.';
