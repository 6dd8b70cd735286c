-- pgbench baseline for push_many.sql: the same 100 rows as one plain multi-row INSERT.
INSERT INTO bench_plain_jobs (job_name, params, queue_name, priority, fairness_key, max_failures, status, run_at)
SELECT 'noop', jsonb_build_object('n', i), 'default', 0, 'noop', 3, 'ready', now()
  FROM generate_series(1, 100) AS i;
