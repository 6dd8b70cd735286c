"""lzq_cancel: cancels a job that has not started (true); running or finished jobs are left (false)."""

from __future__ import annotations

import psycopg
import pytest

from tests.sql.helpers import dispatched_job, finish, job, push, running_job, start


def cancel(conn, job_id):
    return conn.execute("SELECT lzq_cancel(%s)", (job_id,)).fetchone()[0]


def test_cancel_of_a_job_not_yet_started_cancels_it(conn):
    dispatched, token = dispatched_job(conn)
    ready = push(conn)
    scheduled = push(conn, start_time="+1 hour")
    waiting = push(conn)
    conn.execute("UPDATE lzq_jobs SET status = 'waiting' WHERE id = %s", (waiting,))
    assert [job(conn, i)["status"] for i in (ready, scheduled, waiting, dispatched)] == [
        "ready",
        "scheduled",
        "waiting",
        "dispatched",
    ]
    for job_id in (ready, scheduled, waiting, dispatched):
        assert cancel(conn, job_id) is True
        row = job(conn, job_id)
        assert (row["status"], row["lease_expires_at"]) == ("cancelled", None)
        assert row["finished_at"] is not None
    # The dispatched job's message is dropped by the start fence.
    assert start(conn, "w1", (dispatched, token)) == []


def test_cancel_of_a_running_or_finished_job_returns_false_and_changes_nothing(conn):
    running, _ = running_job(conn, "w1")
    done, _ = running_job(conn, "w1")
    assert finish(conn, "w1", {"id": done, "attempt": 1, "outcome": "succeeded"}) == [(done, "succeeded")]
    cancelled = push(conn)
    assert cancel(conn, cancelled) is True
    for job_id, status in ((running, "running"), (done, "succeeded"), (cancelled, "cancelled")):
        assert cancel(conn, job_id) is False
        assert job(conn, job_id)["status"] == status


def test_cancel_of_an_unknown_job_raises_no_data_found(conn):
    with pytest.raises(psycopg.errors.NoDataFound) as excinfo:
        cancel(conn, 424242)
    assert excinfo.value.sqlstate == "P0002"
    assert excinfo.value.diag.message_primary == "job 424242 not found"
    assert excinfo.value.diag.column_name == "job_id"
