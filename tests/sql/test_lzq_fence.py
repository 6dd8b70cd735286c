"""lzq_fence: a handler's write holds the job's attempt; the sweep cannot hand the job over meanwhile,
and after a hand-over the fence fails."""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg.types.json import Jsonb

import lzq
from tests.sql.helpers import wait_until_blocked


def _running_job(conn) -> tuple[int, int]:
    conn.execute("SELECT lzq_heartbeat('w1', 'h', 1, '{default}', 4)")
    job_id = conn.execute("SELECT lzq_push('job')").fetchone()[0]
    [(token,)] = conn.execute("SELECT dispatch_token FROM lzq_claim(10)").fetchall()
    [(attempt,)] = conn.execute(
        "SELECT attempt FROM lzq_start('w1', %s)", (Jsonb([{"id": job_id, "token": str(token)}]),)
    ).fetchall()
    return job_id, attempt


def test_fence_passes_for_the_current_attempt_and_fails_after_a_hand_over(conn):
    job_id, attempt = _running_job(conn)
    with conn.transaction():
        lzq.fence(conn, {"id": job_id, "attempt": attempt})

    conn.execute("UPDATE lzq_workers SET heartbeat_at = now() - interval '1 hour'")
    conn.execute("SELECT * FROM lzq_sweep(30)")  # the worker is dead: its job goes back to ready

    with pytest.raises(lzq.LeaseLost), conn.transaction():
        lzq.fence(conn, {"id": job_id, "attempt": attempt})
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        conn.execute("SELECT lzq_fence(%s, %s)", (job_id, attempt))


def test_a_fenced_transaction_holds_off_the_sweep_until_it_commits(conn, connect):
    job_id, attempt = _running_job(conn)
    conn.execute("UPDATE lzq_workers SET heartbeat_at = now() - interval '1 hour'")
    handler = connect()  # not autocommit: the handler's transaction stays open
    handler.execute("SELECT lzq_fence(%s, %s)", (job_id, attempt))  # the handler's write is under way

    sweeper = connect(autocommit=True)
    swept: list = []
    thread = threading.Thread(
        target=lambda: swept.extend(sweeper.execute("SELECT * FROM lzq_sweep(30)").fetchall())
    )
    thread.start()
    wait_until_blocked(conn, sweeper)
    assert conn.execute("SELECT status FROM lzq_jobs WHERE id = %s", (job_id,)).fetchone()[0] == "running"

    handler.commit()
    thread.join(timeout=10)
    assert [(row[0], row[2]) for row in swept] == [(job_id, "ready")]
