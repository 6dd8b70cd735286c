"""The superqueuer's upkeep (the sweep, cron fire times, statistics, pruning) runs beside its dispatch
loop, never in it, and says when nothing vacuums lzq_jobs."""

from __future__ import annotations

import time

import psycopg
import structlog
from psycopg.types.json import Jsonb
from structlog.testing import capture_logs

from lzq import maintenance
from lzq.superqueuer import Superqueuer
from tests.conftest import wait_until
from tests.integration.helpers import running


def analyze_waiting(conn) -> int:
    """Superqueuer sessions whose ANALYZE lzq_jobs waits for a lock."""
    return conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'lzq-superqueuer%'"
        " AND wait_event_type = 'Lock' AND query = 'ANALYZE lzq_jobs'"
    ).fetchone()[0]


def test_dispatch_goes_on_while_the_upkeeps_analyze_waits(sql_worker, settings, conn, dsn):
    # Statistics far out of date, so the upkeep's first turn runs ANALYZE; another session holds a
    # lock that makes ANALYZE wait (SHARE UPDATE EXCLUSIVE, which pushes and claims do not need).
    conn.execute("SELECT lzq_push_many(%s)", (Jsonb([{"job_name": "noop"}] * 1500),))
    conn.execute("SELECT pg_stat_force_next_flush()")
    sql_worker("w1", slots=10000)
    with psycopg.connect(dsn) as blocker:
        blocker.execute("LOCK TABLE lzq_jobs IN SHARE UPDATE EXCLUSIVE MODE")
        with running(Superqueuer(settings)):
            wait_until(lambda: analyze_waiting(conn), 10, message="the upkeep's ANALYZE waiting for the lock")
            # A job pushed now is assigned while the ANALYZE still waits: the loop is not in it.
            [(job_id,)] = conn.execute("SELECT lzq_push('late')").fetchall()
            wait_until(
                lambda: (
                    conn.execute("SELECT status FROM lzq_jobs WHERE id = %s", (job_id,)).fetchone()[0]
                    == "running"
                ),
                10,
                message="the job pushed during the ANALYZE assigned",
            )
            blocker.rollback()  # the ANALYZE goes through; the superqueuer then stops cleanly
            wait_until(
                lambda: (
                    conn.execute(
                        "SELECT reltuples FROM pg_class WHERE oid = 'lzq_jobs'::regclass"
                    ).fetchone()[0]
                    > 0
                ),
                10,
                message="lzq_jobs analyzed",
            )


def test_a_superqueuer_stops_at_once_while_its_upkeeps_analyze_waits(settings, conn, dsn):
    conn.execute("SELECT lzq_push_many(%s)", (Jsonb([{"job_name": "noop"}] * 1500),))
    conn.execute("SELECT pg_stat_force_next_flush()")
    superqueuer = Superqueuer(settings)
    with psycopg.connect(dsn) as blocker:
        blocker.execute("LOCK TABLE lzq_jobs IN SHARE UPDATE EXCLUSIVE MODE")
        with running(superqueuer) as thread:
            wait_until(lambda: analyze_waiting(conn), 10, message="the upkeep's ANALYZE waiting for the lock")
            stopping = time.monotonic()
            superqueuer.stop()
            thread.join(timeout=10)
            assert not thread.is_alive()
            assert time.monotonic() - stopping < 5  # the lock is still held: the ANALYZE was cancelled
        wait_until(lambda: not analyze_waiting(conn), 10, message="the cancelled ANALYZE gone")


def test_autovacuum_on_reads_the_server_setting_and_the_tables_own(conn):
    server_on = conn.execute("SHOW autovacuum").fetchone()[0] == "on"
    assert maintenance.autovacuum_on(conn) is server_on
    conn.execute("ALTER TABLE lzq_jobs SET (autovacuum_enabled = false)")
    assert maintenance.autovacuum_on(conn) is False
    conn.execute("ALTER TABLE lzq_jobs RESET (autovacuum_enabled)")
    assert maintenance.autovacuum_on(conn) is server_on


def test_an_upkeep_warns_once_when_nothing_vacuums_lzq_jobs(dsn, conn):
    conn.execute("ALTER TABLE lzq_jobs SET (autovacuum_enabled = false)")
    with capture_logs() as logs:
        log = structlog.get_logger()
        upkeep = maintenance.Upkeep(dsn, log, [maintenance.Pruner(None, log)])
        try:
            for _ in range(3):
                upkeep.run_once()
        finally:
            upkeep.stop()
    assert [(e["log_level"], e["event"]) for e in logs] == [("warning", "autovacuum_off")]


def waiting_sweep(conn) -> int:
    """Upkeep sessions of a superqueuer whose statement waits for a lock (the sweep's lock round)."""
    return conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'lzq-superqueuer-upkeep'"
        " AND wait_event_type = 'Lock'"
    ).fetchone()[0]


def job_of_a_dead_worker(conn) -> int:
    conn.execute("SELECT lzq_heartbeat('dead', 'h', 1, '{default}', 1)")
    conn.execute("UPDATE lzq_workers SET heartbeat_at = now() - interval '1 hour' WHERE worker_id = 'dead'")
    [(job_id,)] = conn.execute(
        """INSERT INTO lzq_jobs (job_name, fairness_key, status, attempts, worker_id, started_at)
           VALUES ('lost', 'lost', 'running', 1, 'dead', now()) RETURNING id"""
    )
    return job_id


def status(conn, job_id: int) -> str:
    return conn.execute("SELECT status FROM lzq_jobs WHERE id = %s", (job_id,)).fetchone()[0]


def test_dispatch_goes_on_while_the_upkeeps_sweep_waits(sql_worker, settings, conn, dsn):
    lost = job_of_a_dead_worker(conn)
    with psycopg.connect(dsn) as blocker:
        # The sweep locks the dead worker's job before moving it: make it wait there.
        blocker.execute("SELECT 1 FROM lzq_jobs WHERE id = %s FOR UPDATE", (lost,))
        sql_worker("w1", slots=8)
        with running(Superqueuer(settings)):
            wait_until(lambda: waiting_sweep(conn), 10, message="the upkeep's sweep waiting for the lock")
            [(job_id,)] = conn.execute("SELECT lzq_push('late')").fetchall()
            wait_until(lambda: status(conn, job_id) == "running", 10, message="the late job assigned")
            blocker.rollback()
            wait_until(lambda: status(conn, lost) == "ready", 10, message="the dead worker's job swept")


def test_an_upkeeps_sweeper_recovers_jobs_says_so_and_waits_its_interval(dsn, conn):
    lost = job_of_a_dead_worker(conn)
    with capture_logs() as logs:
        log = structlog.get_logger()
        upkeep = maintenance.Upkeep(
            dsn, log, [maintenance.Sweeper(60.0, 30, log), maintenance.Pruner(None, log)]
        )
        try:
            upkeep.run_once()
            assert status(conn, lost) == "ready"
            conn.execute("UPDATE lzq_jobs SET status = 'running', worker_id = 'dead' WHERE id = %s", (lost,))
            upkeep.run_once()  # within the interval: no second sweep
            assert status(conn, lost) == "running"
        finally:
            upkeep.stop()
    recovered = [e for e in logs if e["event"] == "job_recovered"]
    assert recovered == [
        {
            "event": "job_recovered",
            "log_level": "warning",
            "job_id": lost,
            "from_status": "running",
            "to_status": "ready",
        }
    ]


def test_a_sweeper_tops_up_cron_fire_times_and_reports_an_unreadable_cron_once(dsn, conn):
    [(good,)] = conn.execute("SELECT lzq_recur('nightly', '{}', 'nightly', cron => '0 3 * * *')")
    [(bad,)] = conn.execute("SELECT lzq_recur('broken', '{}', 'broken', cron => '99 99 * * *')")
    with capture_logs() as logs:
        sweeper = maintenance.Sweeper(0.0, 30, structlog.get_logger())
        sweeper.run_once(conn)  # fire times for `good`; `bad` reported
        sweeper.run_once(conn)  # `good`'s first run from them; `bad` not reported again
    [(slots,)] = conn.execute("SELECT cardinality(cron_slots) FROM lzq_recurring WHERE id = %s", (good,))
    assert slots > 0
    [(runs,)] = conn.execute("SELECT count(*) FROM lzq_jobs WHERE recurring_id = %s", (good,))
    assert runs == 1
    assert [(e["event"], e["recurring_id"]) for e in logs if e["event"] == "recurring_cron_invalid"] == [
        ("recurring_cron_invalid", bad)
    ]
