-- pgbench: one lzq_push_many of 100 jobs per transaction (jobs/s = tps x 100).
SELECT count(*) FROM lzq_push_many(
    (SELECT jsonb_agg(jsonb_build_object('job_name', 'noop', 'job_params', jsonb_build_object('n', i)))
       FROM generate_series(1, 100) AS i));
