-- _lzq_stamp_ready(): trigger on lzq_jobs, before a row becomes ready. Gives the job its place in the
-- dispatch order, vtag, which the claim (_lzq_claim) reads in increasing order (lzq_jobs_dispatch_idx):
--   'fair' queues (the default): a virtual finish tag, start-time fair queueing over flows
--     (queue_name, fairness_key, priority):
--       vtag = greatest(queue vclock, the flow's largest ready vtag) + _lzq_cost(priority)
--     so a backlogged flow's jobs are spaced by its cost (1.25x per nice step), flows interleave in
--     proportion to their weights, and a flow that was idle starts at the queue's virtual time
--     (the largest tag dispatched, lzq_queues.vclock) with no credit banked while it was away.
--   'priority' queues: strict nice order, then the order jobs became ready (low levels can starve).
--   'fifo' queues: the order jobs became ready.
-- Every path that makes a job ready (push, promote, dependency release, readiness checks, retry,
-- hand-back, sweep, limit wake-up) goes through this one trigger, so none can forget the tag.
-- A job woken from a full limit (waiting_on_limit set) keeps the tag it had when it parked: it has
-- already waited its turn. Rows made ready earlier in the same statement are visible to the flow
-- lookup (row-level BEFORE trigger), so a statement readying many jobs (promote, a dependency
-- release) spaces them correctly; push_many's batches arrive stamped by _lzq_insert_jobs, by the
-- same rule (tests/sql/test_fair_dispatch.py compares the two). Concurrent transactions
-- making jobs of one flow ready at the same moment may stamp equal tags (no lock is taken: a push
-- never waits for another push); those jobs then run in id order, a bounded, transient unfairness.
-- Locks nothing; reads lzq_queues (one row) and lzq_jobs_flow_hashed_idx (one descent).
CREATE OR REPLACE FUNCTION _lzq_stamp_ready()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_mode text;
    v_vclock bigint;
    v_tail bigint;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status = 'waiting' AND OLD.waiting_on_limit IS NOT NULL
       AND NEW.vtag IS NOT NULL AND NEW.queue_name = OLD.queue_name THEN
        RETURN NEW;
    END IF;
    -- One query for the queue's row and, in fair mode, the flow's tail (each SPI call costs).
    SELECT q.mode, q.vclock,
           CASE WHEN q.mode IS NULL OR q.mode = 'fair' THEN
               (SELECT j.vtag
                  FROM lzq_jobs AS j
                 WHERE j.status = 'ready'
                   -- The flow, by lzq_jobs_flow_hashed_idx's hash (schema.sql says why a hash).
                   AND hashtextextended(j.fairness_key, hashtextextended(j.queue_name, 0))
                       = hashtextextended(NEW.fairness_key, hashtextextended(NEW.queue_name, 0))
                   AND j.priority = NEW.priority
                   -- Only a tail above the clock matters, and below it lie the index entries of
                   -- the flow's dispatched jobs (their tags are <= vclock), dead until vacuumed:
                   -- without this bound a flow with one job at a time walked all of them.
                   AND j.vtag > coalesce(q.vclock, 0)
                 ORDER BY j.vtag DESC
                 LIMIT 1)
           END
      INTO v_mode, v_vclock, v_tail
      FROM (VALUES (NEW.queue_name)) AS n(queue_name)
      LEFT JOIN lzq_queues AS q ON q.queue_name = n.queue_name;
    IF v_mode = 'fifo' THEN
        NEW.vtag := nextval('lzq_ready_seq');
    ELSIF v_mode = 'priority' THEN
        -- Nice level in the top bits (0..40 fits 6 bits above 2^56), ready order below.
        NEW.vtag := ((NEW.priority + 20)::bigint << 56) + nextval('lzq_ready_seq');
    ELSE
        NEW.vtag := greatest(coalesce(v_vclock, 0), v_tail) + _lzq_cost(NEW.priority);
    END IF;
    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION _lzq_stamp_ready() IS
    'Trigger: stamp vtag, the dispatch order, on a job becoming ready (fair / priority / fifo per queue).';

-- Rows inserted already stamped (_lzq_insert_jobs tags a batch at once) keep their tag.
CREATE OR REPLACE TRIGGER lzq_jobs_stamp_ready_on_insert
    BEFORE INSERT ON lzq_jobs
    FOR EACH ROW WHEN (NEW.status = 'ready' AND NEW.vtag IS NULL)
    EXECUTE FUNCTION _lzq_stamp_ready();

-- Also when a ready job's flow changes (lzq_recur realigns a pending run) and when lzq_queue_mode
-- clears vtag to re-stamp a queue's backlog under its new mode.
CREATE OR REPLACE TRIGGER lzq_jobs_stamp_ready_on_update
    BEFORE UPDATE ON lzq_jobs
    FOR EACH ROW WHEN (NEW.status = 'ready'
                       AND (OLD.status <> 'ready' OR NEW.vtag IS NULL
                            OR OLD.queue_name <> NEW.queue_name OR OLD.fairness_key <> NEW.fairness_key
                            OR OLD.priority <> NEW.priority))
    EXECUTE FUNCTION _lzq_stamp_ready();
