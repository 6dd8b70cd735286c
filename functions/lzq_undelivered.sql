-- lzq_undelivered(worker_id, held, older_than_s): jobs assigned to this worker whose message it
-- never received. Called by workers: after connecting a new inbox (older_than_s 0: whatever was
-- sent to an earlier inbox went with that connection) and every few seconds (a message whose
-- publish outcome the superqueuer could not know, or sent to an inbox the broker had not yet
-- dropped). held: the dispatch tokens of every job the worker received and has not reported.
-- Returns (id, dispatch_token) of its running jobs, assigned more than older_than_s ago, that it
-- does not hold. Reads only: the worker remembers these tokens (a copy arriving late is dropped)
-- and then gives the jobs back with lzq_handback.
CREATE OR REPLACE FUNCTION lzq_undelivered(worker_id text, held uuid[], older_than_s double precision)
RETURNS TABLE (id bigint, dispatch_token uuid)
LANGUAGE sql STABLE AS $$
    SELECT j.id, j.dispatch_token
      FROM lzq_jobs AS j
     WHERE j.status = 'running' AND j.worker_id = lzq_undelivered.worker_id
       AND j.started_at <= now() - make_interval(secs => older_than_s)
       AND j.dispatch_token <> ALL (held)
     ORDER BY j.id;
$$;

COMMENT ON FUNCTION lzq_undelivered(text, uuid[], double precision) IS
    'Worker: its assigned jobs, older than older_than_s, whose token it does not hold (their message never came).';
