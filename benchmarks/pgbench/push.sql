-- pgbench: one lzq_push per transaction (validation in PL/pgSQL, insert, wake check).
SELECT lzq_push('noop', '{"n": 1}', '{}');
