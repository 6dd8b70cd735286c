"""A superqueuer refreshes lzq_jobs statistics that are far out of date, so the
daemons' cached plans (made when the table was small) are replanned as it grows."""

from __future__ import annotations

import psycopg
from psycopg.types.json import Jsonb

from lzq import maintenance
from lzq.superqueuer import Superqueuer
from tests.conftest import wait_until
from tests.integration.helpers import running
from tests.sql.helpers import explained


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
    """A daemon's session caches generic plans on an empty lzq_jobs; once the table has grown, the
    superqueuer's ANALYZE makes that same session look jobs up by primary key again."""
    daemon = psycopg.connect(dsn, autocommit=True)
    daemon.execute("SELECT lzq_heartbeat('w1', 'h', 1, '{default}', 16)")
    for _ in range(12):  # past PostgreSQL's five custom plans: the generic ones are kept from here on
        conn.execute("SELECT lzq_push_many(%s)", (Jsonb([{"job_name": "noop"}] * 2),))
        claimed = daemon.execute("SELECT id, dispatch_token FROM lzq_claim(2)").fetchall()
        daemon.execute(
            "SELECT * FROM lzq_start('w1', %s)", (Jsonb([{"id": i, "token": str(t)} for i, t in claimed]),)
        )
        reports = [{"id": i, "attempt": 1, "outcome": "succeeded"} for i, _ in claimed]
        daemon.execute("SELECT * FROM lzq_finish('w1', %s)", (Jsonb(reports),))
    conn.execute("SELECT lzq_push_many(%s)", (Jsonb([{"job_name": "noop"}] * 5000),))
    claimed = daemon.execute("SELECT id, dispatch_token FROM lzq_claim(4)").fetchall()
    wait_for_counters(conn)

    def start_plans(pair: list[tuple]) -> list[str]:
        deliveries = Jsonb([{"id": i, "token": str(t)} for i, t in pair])
        _, plans = explained(daemon, "SELECT * FROM lzq_start('w1', %s)", (deliveries,))
        return [plan for plan in plans if "UPDATE lzq_jobs" in plan]

    assert any("Seq Scan on lzq_jobs" in plan for plan in start_plans(claimed[:2]))  # the trap, as it was
    with running(Superqueuer(settings)):  # its upkeep looks at the statistics: the table is analyzed
        wait_until(lambda: reltuples(conn) > 5000, 10, message="lzq_jobs analyzed")
    plans = start_plans(claimed[2:])
    assert plans and not any("Seq Scan on lzq_jobs" in plan for plan in plans), plans
    daemon.close()
