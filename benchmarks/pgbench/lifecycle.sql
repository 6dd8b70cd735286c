-- pgbench: a job's whole life in SQL, :batch jobs at a time (run.py passes -D batch=N):
-- claim (superqueuer, asynchronous commit as lzq's superqueuer does), start fence, finish fence
-- (workers, each its own synchronous commit). No Python, no RabbitMQ: the SQL ceiling of a drain.
-- Needs a registered worker 'bench-worker' on queue default and a backlog of ready jobs (run.py).
BEGIN;
SET LOCAL synchronous_commit = off;
SELECT coalesce(jsonb_agg(jsonb_build_object('id', c.id, 'token', c.dispatch_token)), '[]') AS deliveries
  FROM lzq_claim(:batch, 60, 1, 86400) AS c \gset
COMMIT;
SELECT coalesce(jsonb_agg(jsonb_build_object('id', s.id, 'attempt', s.attempt, 'outcome', 'succeeded')), '[]') AS reports
  FROM lzq_start('bench-worker', ':deliveries'::jsonb) AS s \gset
SELECT count(*) FROM lzq_finish('bench-worker', ':reports'::jsonb);
