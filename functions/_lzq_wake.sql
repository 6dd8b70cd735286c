-- _lzq_wake(queue_name): tell sleeping superqueuers that a queue has work or free credit.
-- Called by lzq_push, lzq_push_many, lzq_finish, lzq_handback, lzq_sweep. NOTIFYs only when some
-- superqueuer has said it is sleeping: a transaction that NOTIFYs takes a database-wide lock at
-- commit, and a busy superqueuer polls its own loop anyway. Notifications with the same payload in
-- one transaction collapse into one. LISTEN is a hint; superqueuers also poll on a slow timer.
-- The payload is the queue name; lzq_finish prefixes chr(31) where it only freed slots.
CREATE OR REPLACE FUNCTION _lzq_wake(queue_name text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM lzq_superqueuers s WHERE s.idle) THEN
        PERFORM pg_notify('lzq', queue_name);
    END IF;
END;
$$;

COMMENT ON FUNCTION _lzq_wake(text) IS
    'NOTIFY lzq, <queue> if a superqueuer is sleeping on LISTEN.';
