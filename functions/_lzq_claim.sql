-- _lzq_claim(max_jobs, lease_s, margin_per_worker, dead_after_s, assign): take ready jobs for free
-- worker slots; the body of lzq_assign (assign: the superqueuer's) and lzq_claim (not assign).
-- Assign: each job goes to one worker, the one with the most credit left (its slots + margin
-- minus its running jobs and those given to it before it in this call), and moves ready ->
-- running there at once (attempts + 1, started_at now, a fresh dispatch_token): the superqueuer
-- publishes it, with everything the worker needs to run it, to that worker's inbox
-- (lzq_workers.inbox), which only that worker's current connection consumes, so no other worker
-- can ever receive it and the worker needs no start fence. The commit is made durable
-- (synchronous_commit on for this transaction) before the superqueuer publishes: a claim lost in a
-- server crash would leave the job ready while its message runs it. Only workers with an inbox
-- get jobs.
-- Not assign (lzq_claim, for SQL callers with a consumer of their own): ready -> dispatched,
-- for whoever consumes the queue's shared RabbitMQ queue; the worker's lzq_start is the fence.
-- stamping a fresh dispatch_token and a lease of lease_s seconds (the sweep takes the job back if
-- no worker starts it in time).
-- Either way a crash between this commit and the publish costs a delay, never a job (for an
-- assigned job: the worker hands back what it was given and did not receive, lzq_undelivered).
-- Order: smallest vtag first (fair, priority or fifo per queue: _lzq_stamp_ready); each queue's
-- vclock moves to the largest tag dispatched from it. Moves ready -> waiting a job one of whose limit_to is full
-- (_lzq_take_slots): it leaves the ready index until _lzq_release_slots frees a slot, and the credit
-- it would have used goes to the next jobs (a few rounds per call at most).
-- Credit: live, non-stopping workers are grouped by the set of queues they consume; a group's
-- credit is its slots (+ margin_per_worker each) minus the jobs dispatched to its queues and the
-- jobs running on (assigned to) its workers, spent on its queues' ready jobs in dispatch order. (A worker on
-- several queues lends its slots once, not once per queue; jobs on stopping or dead workers do not
-- eat live workers' credit.) Jobs stay `ready` in PostgreSQL until a slot is free, so order is
-- decided when a slot frees, not by RabbitMQ's FIFO.
-- Locks: a transaction-level advisory lock per worker group (try-lock: a group another superqueuer
-- is claiming for right now is skipped, it will spend that credit), so two superqueuers never spend
-- the same credit; the claimed rows via FOR UPDATE SKIP LOCKED; limit slots likewise.
CREATE OR REPLACE FUNCTION _lzq_claim(max_jobs integer, lease_s integer, margin_per_worker integer,
                                      dead_after_s integer, assign boolean)
RETURNS TABLE (id bigint, dispatch_token uuid, queue_name text, worker_id text, inbox text,
               job_name text, params jsonb, priority smallint, fairness_key text, max_failures integer,
               attempt integer)
LANGUAGE plpgsql
-- Plain index scans only: they mark index entries of dead row versions as dead as they pass
-- (every job leaves two in the in-flight index), so later claims skip them. Bitmap scans never
-- do, and between vacuums (or where autovacuum is off) the in-flight count then grew with every
-- job dispatched: 1.4 -> 4.3 ms per claim over a minute at 230 jobs/s, against a steady 1.2-1.5.
SET enable_bitmapscan = off
-- Generic plans, made once per session: every statement here reads by index (ready jobs in dispatch
-- order, rows by primary key) whatever its parameters, yet PostgreSQL's default re-planned some on
-- every call (the pick, for its LIMIT): a third of a one-job claim's time. No JIT: a generic plan's
-- cost over a large backlog (it takes a LIMIT for 10% of the rows) passes jit_above_cost, and
-- compiling then cost 20 ms per claim at 1M ready jobs, for statements that run in a tenth of that.
SET plan_cache_mode = force_generic_plan
SET jit = off
-- No sequential scans: a generic plan is made at a session's first call, and daemons start on a new,
-- empty lzq_jobs, where a scan looks cheaper than any index. The plan then read every job on every
-- call until an ANALYZE replaced it (0.2 ms per scan at 1,000 rows, five per job's claim,
-- start and finish). Every read of lzq_jobs here is by an index whatever the table holds.
SET enable_seqscan = off
AS $$
#variable_conflict use_column
DECLARE
    c_max_rounds constant integer := 8;
    v_group record;
    v_job record;
    v_inflight integer;
    v_credit integer;
    v_claimed integer;
    v_left integer := max_jobs;
    v_ids bigint[];
    v_any_limited boolean;
    v_full_limit text;
    v_blocked boolean;
BEGIN
    IF assign THEN
        PERFORM set_config('synchronous_commit', 'on', true);
    END IF;
    FOR v_group IN
        SELECT w.queues, sum(w.slots + margin_per_worker)::integer AS capacity,
               array_agg(w.worker_id) AS workers
          FROM (SELECT w.worker_id, w.slots, ARRAY(SELECT DISTINCT q FROM unnest(w.queues) AS q ORDER BY q) AS queues
                  FROM lzq_workers AS w
                 WHERE w.heartbeat_at > now() - make_interval(secs => dead_after_s)
                   AND NOT w.stopping AND (w.inbox IS NOT NULL OR NOT assign)) AS w
         GROUP BY w.queues
         ORDER BY w.queues
    LOOP
        EXIT WHEN v_left <= 0;
        CONTINUE WHEN NOT pg_try_advisory_xact_lock(
            hashtextextended('lzq_claim:' || array_to_string(v_group.queues, chr(31)), 0));
        -- A new statement, a new snapshot: this count sees claims other superqueuers committed.
        SELECT count(*) INTO v_inflight
          FROM lzq_jobs AS j
         WHERE (j.status = 'dispatched' AND j.queue_name = ANY (v_group.queues))
            OR (j.status = 'running' AND j.worker_id = ANY (v_group.workers));

        FOR v_round IN 1 .. c_max_rounds LOOP
            v_credit := least(v_left, v_group.capacity - v_inflight);
            EXIT WHEN v_credit <= 0;
            -- Each queue's head by the dispatch index (smallest vtag first: see _lzq_stamp_ready), then
            -- the best of those across the group's queues by lag behind each queue's own clock.
            SELECT array_agg(picked.id ORDER BY picked.lag, picked.priority, picked.id),
                   bool_or(picked.limits <> '[]')
              INTO v_ids, v_any_limited
              FROM (SELECT head.id, head.priority, head.limits, head.vtag - coalesce(lq.vclock, 0) AS lag
                      FROM unnest(v_group.queues) AS q(name)
                      LEFT JOIN lzq_queues AS lq ON lq.queue_name = q.name
                     CROSS JOIN LATERAL (
                           SELECT j.id, j.vtag, j.priority, j.limits
                             FROM lzq_jobs AS j
                            WHERE j.status = 'ready' AND j.queue_name = q.name
                            ORDER BY j.vtag, j.priority, j.id
                            LIMIT v_credit
                              FOR UPDATE SKIP LOCKED) AS head
                     ORDER BY lag, head.priority, head.id
                     LIMIT v_credit) AS picked;
            EXIT WHEN v_ids IS NULL;

            v_blocked := false;
            IF v_any_limited THEN
                FOR v_job IN
                    SELECT j.id, j.limits FROM lzq_jobs AS j
                     WHERE j.id = ANY (v_ids) AND j.limits <> '[]'
                     ORDER BY array_position(v_ids, j.id)
                LOOP
                    v_full_limit := _lzq_take_slots(v_job.id, v_job.limits);
                    IF v_full_limit IS NOT NULL THEN
                        UPDATE lzq_jobs AS j SET status = 'waiting', waiting_on_limit = v_full_limit
                         WHERE j.id = v_job.id;
                        v_ids := array_remove(v_ids, v_job.id);
                        v_blocked := true;
                    END IF;
                END LOOP;
            END IF;

            RETURN QUERY
            -- Materialized: each worker's running jobs are counted once, not once per seat.
            WITH credit AS MATERIALIZED (
                SELECT w.worker_id, w.inbox,
                       w.slots + margin_per_worker
                         - (SELECT count(*) FROM lzq_jobs AS r
                             WHERE r.status = 'running' AND r.worker_id = w.worker_id)::integer AS free
                  FROM lzq_workers AS w
                 WHERE assign AND w.worker_id = ANY (v_group.workers)
            ), seat AS (
                -- A worker's k-th seat leaves it free - k credit: taking seats in that order, most
                -- first, gives each job to the worker with the most credit left (ties by id).
                SELECT c.worker_id, c.inbox, row_number() OVER (ORDER BY c.free - k.k DESC, c.worker_id) AS pos
                  FROM credit AS c
                 CROSS JOIN LATERAL generate_series(1, c.free) AS k(k)
            ), claimed AS (
                UPDATE lzq_jobs AS j
                   SET status = CASE WHEN assign THEN 'running' ELSE 'dispatched' END,
                       worker_id = CASE WHEN assign THEN s.worker_id ELSE j.worker_id END,
                       attempts = j.attempts + assign::integer,
                       started_at = CASE WHEN assign THEN now() ELSE j.started_at END,
                       dispatch_token = gen_random_uuid(),
                       lease_expires_at = CASE WHEN NOT assign THEN now() + make_interval(secs => lease_s) END,
                       waiting_on_limit = NULL
                  FROM unnest(v_ids) WITH ORDINALITY AS o(id, pos)
                  LEFT JOIN seat AS s ON s.pos = o.pos
                 -- By primary key: these rows are ours, locked since the pick.
                 WHERE j.id = o.id AND j.id = ANY (v_ids) AND (s.pos IS NOT NULL OR NOT assign)
                RETURNING j.id, j.dispatch_token, j.queue_name, j.worker_id, s.inbox, j.job_name, j.params,
                          j.priority, j.fairness_key, j.max_failures, j.attempts, j.vtag, o.pos
            ), clock AS (
                -- The queue's virtual time moves to the largest tag dispatched (never back).
                INSERT INTO lzq_queues AS lq (queue_name, vclock)
                SELECT c.queue_name, max(c.vtag) FROM claimed AS c GROUP BY c.queue_name ORDER BY c.queue_name
                ON CONFLICT (queue_name) DO UPDATE SET vclock = excluded.vclock
                 WHERE lq.vclock < excluded.vclock
            )
            -- In dispatch order: the superqueuer publishes in this order.
            SELECT c.id, c.dispatch_token, c.queue_name, c.worker_id, c.inbox, c.job_name, c.params,
                   c.priority, c.fairness_key, c.max_failures, c.attempts
              FROM claimed AS c
             ORDER BY c.pos;
            GET DIAGNOSTICS v_claimed = ROW_COUNT;
            v_left := v_left - v_claimed;
            v_inflight := v_inflight + v_claimed;
            EXIT WHEN NOT v_blocked;
        END LOOP;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION _lzq_claim(integer, integer, integer, integer, boolean) IS
    'lzq_assign (assign) and lzq_claim: take ready jobs for free worker slots and limit_to slots.';
