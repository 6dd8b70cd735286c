"""lzq_start: the start fence. dispatched -> running only with the current token; at most once."""

from __future__ import annotations

import threading
import uuid

from tests.sql.helpers import (
    claim,
    dispatched_job,
    heartbeat,
    job,
    push,
    running_job,
    start,
    sweep,
    wait_until_blocked,
)


def test_start_with_current_token_runs_the_job_and_counts_the_attempt(conn):
    job_id, token = dispatched_job(
        conn, "w1", "mailer", queue_name="emails", priority=-2, max_failures=5, fairness_key="t1"
    )
    conn.execute('UPDATE lzq_jobs SET params = \'{"to": "a@b.c"}\' WHERE id = %s', (job_id,))
    rows = start(conn, "w1", (job_id, token))
    assert len(rows) == 1
    got = rows[0]
    assert (got["id"], got["dispatch_token"], got["job_name"], got["params"], got["queue_name"]) == (
        job_id,
        token,
        "mailer",
        {"to": "a@b.c"},
        "emails",
    )
    assert (got["priority"], got["fairness_key"], got["max_failures"], got["attempt"]) == (-2, "t1", 5, 1)
    row = job(conn, job_id)
    assert (row["status"], row["attempts"], row["worker_id"], row["lease_expires_at"]) == (
        "running",
        1,
        "w1",
        None,
    )
    assert row["started_at"] is not None and got["created_at"] == row["created_at"]


def test_start_with_wrong_or_stale_token_returns_nothing_and_changes_nothing(conn):
    job_id, token = dispatched_job(conn)
    assert start(conn, "w1", (job_id, uuid.uuid4())) == []
    assert start(conn, "w1", (job_id + 1000, token)) == []
    assert (job(conn, job_id)["status"], job(conn, job_id)["attempts"]) == ("dispatched", 0)
    # After the lease expired and the job was dispatched again, the first delivery is stale.
    conn.execute(
        "UPDATE lzq_jobs SET lease_expires_at = now() - interval '1 second' WHERE id = %s", (job_id,)
    )
    assert [r[0] for r in sweep(conn)] == [job_id]
    ((_, new_token, _),) = claim(conn)
    assert new_token != token
    assert start(conn, "w1", (job_id, token)) == []
    assert [r["id"] for r in start(conn, "w1", (job_id, new_token))] == [job_id]


def test_start_of_a_job_running_on_another_worker_returns_nothing(conn):
    job_id, token = running_job(conn, "w1")
    assert start(conn, "w2", (job_id, token)) == []
    row = job(conn, job_id)
    assert (row["status"], row["worker_id"], row["attempts"]) == ("running", "w1", 1)


def test_start_of_a_cancelled_job_returns_nothing(conn):
    job_id, token = dispatched_job(conn)
    assert conn.execute("SELECT lzq_cancel(%s)", (job_id,)).fetchone()[0] is True
    assert start(conn, "w1", (job_id, token)) == []
    assert job(conn, job_id)["status"] == "cancelled"


def test_start_retried_by_the_same_worker_returns_the_job_without_a_second_attempt(conn):
    job_id, token = running_job(conn, "w1")
    started_at = job(conn, job_id)["started_at"]
    again = start(conn, "w1", (job_id, token))
    assert [(r["id"], r["attempt"]) for r in again] == [(job_id, 1)]
    row = job(conn, job_id)
    assert (row["attempts"], row["started_at"], row["worker_id"]) == (1, started_at, "w1")


def test_start_batch_returns_only_the_deliveries_it_may_run(conn):
    heartbeat(conn, "w1", slots=10)
    ids = [push(conn, f"j{i}") for i in range(3)]
    tokens = {r[0]: r[1] for r in claim(conn)}
    rows = start(
        conn,
        "w1",
        (ids[0], tokens[ids[0]]),
        (ids[1], uuid.uuid4()),
        (ids[2], tokens[ids[2]]),
        (999_999, uuid.uuid4()),
    )
    assert sorted(r["id"] for r in rows) == [ids[0], ids[2]]
    assert job(conn, ids[1])["status"] == "dispatched"
    assert conn.execute("SELECT * FROM lzq_start('w1', '[]')").fetchall() == []


def test_concurrent_starts_of_one_delivery_run_it_once(conn, connect):
    job_id, token = dispatched_job(conn)
    one, two = connect(), connect(autocommit=True)
    two.execute("SET statement_timeout = '10s'")
    assert [r["id"] for r in start(one, "w1", (job_id, token))] == [job_id]
    result: list = []
    waiter = threading.Thread(target=lambda: result.append(start(two, "w2", (job_id, token))))
    waiter.start()
    # two now waits on one's row lock; once one commits, two re-checks the row and finds it running.
    wait_until_blocked(conn, two)
    one.commit()
    waiter.join(10)
    assert result == [[]]
    row = job(conn, job_id)
    assert (row["worker_id"], row["attempts"]) == ("w1", 1)
