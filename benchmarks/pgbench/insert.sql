-- pgbench baseline for push.sql: the same row into a copy of lzq_jobs (same indexes, checks,
-- defaults; created by run.py as LIKE lzq_jobs INCLUDING ALL) with no function around it.
INSERT INTO bench_plain_jobs (job_name, params, queue_name, priority, fairness_key, max_failures, status, run_at)
VALUES ('noop', '{"n": 1}', 'default', 0, 'noop', 3, 'ready', now());
