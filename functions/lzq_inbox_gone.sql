-- lzq_inbox_gone(inboxes): the broker returned messages to these inboxes as unroutable: their
-- workers' connections are gone. Called by the superqueuer with the hand-back of those messages'
-- jobs: no more jobs go to these workers until they connect again and name a new inbox
-- (lzq_worker_inbox); meanwhile each assignment would only come back. Returns how many workers.
CREATE OR REPLACE FUNCTION lzq_inbox_gone(inboxes text[])
RETURNS integer
LANGUAGE sql AS $$
    WITH gone AS (
        UPDATE lzq_workers AS w SET inbox = NULL WHERE w.inbox = ANY (inboxes) RETURNING 1
    )
    SELECT count(*)::integer FROM gone;
$$;

COMMENT ON FUNCTION lzq_inbox_gone(text[]) IS
    'Superqueuer: forget inboxes the broker could not route to (their workers get no jobs until they name a new one).';
