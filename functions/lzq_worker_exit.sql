-- lzq_worker_exit(worker_id): a worker leaves cleanly; returns the ids of the jobs it handed back.
-- Called by a worker as the last step of a graceful stop, once the jobs it could finish are
-- finished: every job still assigned to it (running past the grace period, received and not
-- started, or still on its way) goes back to `ready` without counting the attempt (lzq_handback),
-- and its slots stop counting as credit. The worker exits at once after this commit.
CREATE OR REPLACE FUNCTION lzq_worker_exit(worker_id text)
RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    SELECT * FROM lzq_handback(lzq_worker_exit.worker_id, (
        SELECT coalesce(jsonb_agg(jsonb_build_object('id', j.id, 'token', j.dispatch_token)), '[]')
          FROM lzq_jobs AS j
         WHERE j.status = 'running' AND j.worker_id = lzq_worker_exit.worker_id));
    DELETE FROM lzq_workers AS w WHERE w.worker_id = lzq_worker_exit.worker_id;
END;
$$;

COMMENT ON FUNCTION lzq_worker_exit(text) IS
    'Worker: hand back every job still assigned to it and deregister, after a graceful stop; returns the ids handed back.';
