"""The sweeping superqueuer refreshes lzq_jobs statistics that are far out of date, so the
daemons' cached plans (made when the table was small) are replanned as it grows."""

from __future__ import annotations

import psycopg
from psycopg.types.json import Jsonb

from lzq import maintenance
from lzq.superqueuer import Superqueuer


def reltuples(conn: psycopg.Connection) -> float:
    return conn.execute("SELECT reltuples FROM pg_class WHERE oid = 'lzq_jobs'::regclass").fetchone()[0]


def wait_for_counters(conn: psycopg.Connection) -> None:
    conn.execute("SELECT pg_stat_force_next_flush()")  # this session's counts, visible to all now


def test_a_table_grown_far_past_its_statistics_is_analyzed_once(settings, conn):
    assert reltuples(conn) < 0  # never analyzed
    conn.execute("SELECT lzq_push_many(%s)", (Jsonb([{"job_name": "noop"}] * 1500),))
    wait_for_counters(conn)
    superqueuer = Superqueuer(settings)
    try:
        superqueuer.run_once()  # the first pass sweeps
    finally:
        superqueuer._close()
    assert reltuples(conn) == 1500
    assert maintenance.analyze_if_stale(conn) is False  # fresh now: nothing to do


def test_a_small_change_is_left_to_autovacuum(conn):
    conn.execute("SELECT lzq_push_many(%s)", (Jsonb([{"job_name": "noop"}] * 10),))
    wait_for_counters(conn)
    assert maintenance.analyze_if_stale(conn) is False
    assert reltuples(conn) < 0
