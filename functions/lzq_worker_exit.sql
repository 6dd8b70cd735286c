-- lzq_worker_exit(worker_id): a worker leaves cleanly; its slots stop counting as credit.
-- Called by a worker as the last step of a graceful stop, after its jobs are finished or handed back.
CREATE OR REPLACE FUNCTION lzq_worker_exit(worker_id text)
RETURNS void
LANGUAGE sql AS $$
    DELETE FROM lzq_workers AS w WHERE w.worker_id = lzq_worker_exit.worker_id;
$$;

COMMENT ON FUNCTION lzq_worker_exit(text) IS 'Worker: deregister after a graceful stop.';
