-- pgbench: a job's whole life in SQL, :batch jobs at a time (run.py passes -D batch=N):
-- assignment (superqueuer: lzq_assign, whose commit is durable) and finish fence (worker, its own
-- synchronous commit). No Python, no RabbitMQ: the SQL ceiling of a drain.
-- Needs a registered worker 'bench-worker' with an inbox on queue default and a backlog of ready
-- jobs (run.py).
BEGIN;
SET LOCAL synchronous_commit = off;
SELECT coalesce(jsonb_agg(jsonb_build_object('id', a.id, 'attempt', a.attempt, 'outcome', 'succeeded')), '[]') AS reports
  FROM lzq_assign(:batch, 1, 86400) AS a \gset
COMMIT;
SELECT count(*) FROM lzq_finish('bench-worker', ':reports'::jsonb);
