-- lzq_assign(max_jobs, margin_per_worker, dead_after_s): give ready jobs to the workers with free
-- slots; ready -> running on the chosen worker (see _lzq_claim). Called by the superqueuer, which
-- publishes each job, in the returned order, to its worker's inbox. Returns what the worker needs
-- to run each job; `attempt` is the attempt this is (counted now: a worker that crashes holding
-- the job spent it, as one that crashes running it).
CREATE OR REPLACE FUNCTION lzq_assign(max_jobs integer, margin_per_worker integer DEFAULT 1,
                                      dead_after_s integer DEFAULT 30)
RETURNS TABLE (id bigint, dispatch_token uuid, queue_name text, worker_id text, inbox text,
               job_name text, params jsonb, priority smallint, fairness_key text, max_failures integer,
               attempt integer)
LANGUAGE sql
SET jit = off  -- as _lzq_claim's statements: this one call never pays for compiling
AS $$
    SELECT * FROM _lzq_claim(max_jobs, 0, margin_per_worker, dead_after_s, true);
$$;

COMMENT ON FUNCTION lzq_assign(integer, integer, integer) IS
    'Superqueuer: ready -> running on the worker with the most free credit, for up to max_jobs jobs; returns the jobs and each one''s worker inbox.';
