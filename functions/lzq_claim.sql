-- lzq_claim(max_jobs, lease_s, margin_per_worker, dead_after_s): ready -> dispatched for free worker
-- slots, for SQL callers that consume the queues' shared RabbitMQ queues themselves and start jobs
-- through lzq_start's fence. lzq's own daemons assign instead (lzq_assign). See _lzq_claim.
CREATE OR REPLACE FUNCTION lzq_claim(max_jobs integer, lease_s integer DEFAULT 60,
                                     margin_per_worker integer DEFAULT 1, dead_after_s integer DEFAULT 30)
RETURNS TABLE (id bigint, dispatch_token uuid, queue_name text)
LANGUAGE sql
SET jit = off  -- as _lzq_claim's statements: this one call never pays for compiling
AS $$
    SELECT c.id, c.dispatch_token, c.queue_name
      FROM _lzq_claim(max_jobs, lease_s, margin_per_worker, dead_after_s, false) AS c;
$$;

COMMENT ON FUNCTION lzq_claim(integer, integer, integer, integer) IS
    'ready -> dispatched for up to max_jobs jobs, within the free worker slots and limit_to slots; returns (id, dispatch_token, queue_name).';
