"""The superqueuer's upkeep (statistics, pruning) runs beside its dispatch loop, never in it."""

from __future__ import annotations

import psycopg
from psycopg.types.json import Jsonb

from lzq.superqueuer import Superqueuer
from tests.integration.helpers import running, wait_until


def test_dispatch_goes_on_while_the_upkeeps_analyze_waits(settings, conn, dsn):
    # Statistics far out of date, so the upkeep's first turn runs ANALYZE; another session holds a
    # lock that makes ANALYZE wait (SHARE UPDATE EXCLUSIVE, which pushes and claims do not need).
    conn.execute("SELECT lzq_push_many(%s)", (Jsonb([{"job_name": "noop"}] * 1500),))
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.execute("SELECT lzq_heartbeat('w1', 'h', 1, '{default}', 10000)")
    with psycopg.connect(dsn) as blocker:
        blocker.execute("LOCK TABLE lzq_jobs IN SHARE UPDATE EXCLUSIVE MODE")
        with running(Superqueuer(settings)):
            wait_until(
                lambda: conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'lzq-superqueuer%'"
                    " AND wait_event_type = 'Lock' AND query = 'ANALYZE lzq_jobs'"
                ).fetchone()[0],
                what="the upkeep's ANALYZE waiting for the lock",
            )
            # A job pushed now is dispatched while the ANALYZE still waits: the loop is not in it.
            [(job_id,)] = conn.execute("SELECT lzq_push('late')").fetchall()
            wait_until(
                lambda: (
                    conn.execute("SELECT status FROM lzq_jobs WHERE id = %s", (job_id,)).fetchone()[0]
                    == "dispatched"
                ),
                what="the job pushed during the ANALYZE dispatched",
            )
            blocker.rollback()  # the ANALYZE goes through; the superqueuer then stops cleanly
            wait_until(
                lambda: (
                    conn.execute(
                        "SELECT reltuples FROM pg_class WHERE oid = 'lzq_jobs'::regclass"
                    ).fetchone()[0]
                    > 0
                ),
                what="lzq_jobs analyzed",
            )
