-- lzq_worker_inbox(worker_id, inbox): where the superqueuer publishes this worker's jobs from now
-- on (its RabbitMQ queue, exclusive to the worker's connection); NULL: nowhere. Called by a worker
-- once it consumes a new inbox, after handing back what was sent to the old one (lzq_undelivered;
-- lzq_inbox_gone forgets an inbox the broker no longer routes to). Wakes
-- sleeping superqueuers: jobs may have waited for this worker. Returns false if the worker is not
-- registered (swept as dead: it must stop).
CREATE OR REPLACE FUNCTION lzq_worker_inbox(worker_id text, inbox text)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_queues text[];
BEGIN
    UPDATE lzq_workers AS w SET inbox = lzq_worker_inbox.inbox
     WHERE w.worker_id = lzq_worker_inbox.worker_id
    RETURNING w.queues INTO v_queues;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM _lzq_wake(q) FROM unnest(v_queues) AS q;
    RETURN true;
END;
$$;

COMMENT ON FUNCTION lzq_worker_inbox(text, text) IS
    'Worker: the RabbitMQ queue its jobs are published to from now on; false if it is not registered.';
