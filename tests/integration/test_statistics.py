"""A superqueuer refreshes lzq_jobs statistics that are far out of date, so the
daemons' cached plans (made when the table was small) are replanned as it grows."""

from __future__ import annotations

import psycopg
from psycopg.types.json import Jsonb

from lzq import maintenance
from lzq.superqueuer import Superqueuer
from tests.conftest import wait_until
from tests.integration.helpers import running


def reltuples(conn: psycopg.Connection) -> float:
    return conn.execute("SELECT reltuples FROM pg_class WHERE oid = 'lzq_jobs'::regclass").fetchone()[0]


def wait_for_counters(conn: psycopg.Connection) -> None:
    conn.execute("SELECT pg_stat_force_next_flush()")  # this session's counts, visible to all now


def test_a_table_grown_far_past_its_statistics_is_analyzed_once(settings, conn):
    assert reltuples(conn) < 0  # never analyzed
    conn.execute("SELECT lzq_push_many(%s)", (Jsonb([{"job_name": "noop"}] * 1500),))
    wait_for_counters(conn)
    with running(Superqueuer(settings)):  # its upkeep looks at the statistics at once
        wait_until(lambda: reltuples(conn) >= 0, 10, message="lzq_jobs analyzed")
    assert reltuples(conn) == 1500
    assert maintenance.analyze_if_stale(conn) is False  # fresh now: nothing to do


def test_churn_in_a_table_of_steady_size_is_left_to_autovacuum(conn):
    # A queue table rewrites its rows all the time (ready, dispatched, running, final); its size,
    # which is what the cached plans depend on, stays put. Two full rewrites of 1,500 rows: 3,000
    # changes, more than 1,000 plus the table's size, and still no ANALYZE.
    conn.execute("SELECT lzq_push_many(%s)", (Jsonb([{"job_name": "noop"}] * 1500),))
    wait_for_counters(conn)
    assert maintenance.analyze_if_stale(conn) is True
    for status in ("scheduled", "ready"):
        conn.execute("UPDATE lzq_jobs SET status = %s", (status,))
    wait_for_counters(conn)
    assert (
        conn.execute(
            "SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = 'lzq_jobs'"
        ).fetchone()[0]
        >= 3000
    )
    assert maintenance.analyze_if_stale(conn) is False
    conn.execute("SELECT lzq_push_many(%s)", (Jsonb([{"job_name": "noop"}] * 2100),))  # 3,600 rows now
    wait_for_counters(conn)
    assert maintenance.analyze_if_stale(conn) is False  # not yet past 2 x 1,500 + 1,000
    conn.execute("SELECT lzq_push_many(%s)", (Jsonb([{"job_name": "noop"}] * 500),))
    wait_for_counters(conn)
    assert maintenance.analyze_if_stale(conn) is True


def test_a_small_change_is_left_to_autovacuum(conn):
    conn.execute("SELECT lzq_push_many(%s)", (Jsonb([{"job_name": "noop"}] * 10),))
    wait_for_counters(conn)
    assert maintenance.analyze_if_stale(conn) is False
    assert reltuples(conn) < 0


def test_plans_cached_while_the_table_was_empty_are_replanned_once_a_superqueuer_runs(settings, conn, dsn):
    """A session keeps a generic plan made on an empty lzq_jobs, where a sequential scan looks
    cheapest, for as long as nothing invalidates it. The claim, start and finish are immune (they
    never scan lzq_jobs sequentially: tests/sql/test_plans.py); any other statement a daemon or an
    application prepares is not. Once the table has grown, the superqueuer's ANALYZE makes that same
    session plan it again."""
    daemon = psycopg.connect(dsn, autocommit=True)
    daemon.execute("SET plan_cache_mode = force_generic_plan")
    daemon.execute("PREPARE by_ids(bigint[]) AS SELECT id FROM lzq_jobs WHERE id = ANY ($1)")
    daemon.execute("EXECUTE by_ids('{1}')")  # planned now, on the empty table
    conn.execute("SELECT lzq_push_many(%s)", (Jsonb([{"job_name": "noop"}] * 5000),))
    wait_for_counters(conn)

    def plan() -> str:
        return "\n".join(row[0] for row in daemon.execute("EXPLAIN EXECUTE by_ids('{1, 2}')"))

    assert "Seq Scan on lzq_jobs" in plan()  # the trap
    with running(Superqueuer(settings)):  # its upkeep looks at the statistics: the table is analyzed
        wait_until(lambda: reltuples(conn) >= 5000, 10, message="lzq_jobs analyzed")
    assert "lzq_jobs_pkey" in plan(), plan()
    daemon.close()
