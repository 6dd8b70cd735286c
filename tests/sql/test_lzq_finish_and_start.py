"""lzq_finish_and_start: a worker's ledger batch (reports, then deliveries) in one statement."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from tests.sql.helpers import (
    deliveries,
    dispatched_job,
    job,
    push,
    raises_invalid,
    running_job,
    wait_until_blocked,
)


def finish_and_start(conn, worker_id, reports, *pairs):
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM lzq_finish_and_start(%s, %s, %s)", (worker_id, Jsonb(reports), deliveries(*pairs))
        ).fetchall()


def succeeded(job_id, attempt=1):
    return {"id": job_id, "attempt": attempt, "outcome": "succeeded"}


def test_one_call_records_the_reports_and_starts_the_deliveries_in_one_transaction(conn):
    ended, _ = running_job(conn, "w1")
    waiting, token = dispatched_job(
        conn, "w1", "mailer", queue_name="default", priority=-2, fairness_key="t1"
    )
    conn.execute('UPDATE lzq_jobs SET params = \'{"to": "a@b.c"}\' WHERE id = %s', (waiting,))
    rows = finish_and_start(conn, "w1", [succeeded(ended)], (waiting, token))
    report_row, start_row = rows
    assert report_row == {
        "id": ended,
        "status": "succeeded",
        "dispatch_token": None,
        "job_name": None,
        "params": None,
        "queue_name": None,
        "priority": None,
        "fairness_key": None,
        "max_failures": None,
        "attempt": None,
    }
    assert start_row == {
        "id": waiting,
        "status": "running",
        "dispatch_token": token,
        "job_name": "mailer",
        "params": {"to": "a@b.c"},
        "queue_name": "default",
        "priority": -2,
        "fairness_key": "t1",
        "max_failures": 3,
        "attempt": 1,
    }
    # The slot went from one job to the next at one instant: the same transaction.
    assert job(conn, ended)["finished_at"] == job(conn, waiting)["started_at"]
    assert (job(conn, waiting)["status"], job(conn, waiting)["worker_id"]) == ("running", "w1")


def test_either_side_may_be_empty(conn):
    assert finish_and_start(conn, "w1", []) == []
    ended, _ = running_job(conn, "w1")
    assert [(r["id"], r["status"]) for r in finish_and_start(conn, "w1", [succeeded(ended)])] == [
        (ended, "succeeded")
    ]
    waiting, token = dispatched_job(conn, "w1")
    assert [(r["id"], r["status"]) for r in finish_and_start(conn, "w1", [], (waiting, token))] == [
        (waiting, "running")
    ]


def test_the_fences_hold_stale_reports_and_deliveries_return_nothing(conn):
    ended, _ = running_job(conn, "w1")
    waiting, _token = dispatched_job(conn, "w1")
    rows = finish_and_start(conn, "w1", [succeeded(ended, attempt=2)], (waiting, uuid.uuid4()))
    assert rows == []
    assert (job(conn, ended)["status"], job(conn, waiting)["status"]) == ("running", "dispatched")
    # Another worker's report does not apply either.
    assert finish_and_start(conn, "w2", [succeeded(ended)]) == []


def test_a_retry_after_a_lost_reply_is_idempotent(conn):
    ended, _ = running_job(conn, "w1")
    waiting, token = dispatched_job(conn, "w1")
    first = finish_and_start(conn, "w1", [succeeded(ended)], (waiting, token))
    again = finish_and_start(conn, "w1", [succeeded(ended)], (waiting, token))
    # The report is not applied twice; the start returns the running job again, same attempt.
    assert [(r["id"], r["status"], r["attempt"]) for r in first] == [
        (ended, "succeeded", None),
        (waiting, "running", 1),
    ]
    assert [(r["id"], r["status"], r["attempt"]) for r in again] == [(waiting, "running", 1)]
    assert job(conn, waiting)["attempts"] == 1


def test_a_refused_report_writes_nothing_of_the_batch(conn):
    ended, _ = running_job(conn, "w1")
    waiting, token = dispatched_job(conn, "w1")
    bad = {"id": ended, "attempt": 1, "outcome": "exploded"}
    with raises_invalid("outcome"):
        finish_and_start(conn, "w1", [bad], (waiting, token))
    assert (job(conn, ended)["status"], job(conn, waiting)["status"]) == ("running", "dispatched")


def test_reports_and_deliveries_are_locked_in_id_order_so_a_push_cannot_deadlock_them(conn, connect):
    # `waiting` (a delivery) has a smaller id than `ended` (a report). A producer's open transaction
    # pushed a job depending on `waiting`, holding it FOR SHARE.
    waiting, token = dispatched_job(conn, "w1")
    ended, _ = running_job(conn, "w1")
    producer = connect()
    push(producer, "earlier", depends_on=[waiting])
    ledger = connect(autocommit=True)
    with ThreadPoolExecutor(max_workers=1) as pool:
        settled = pool.submit(finish_and_start, ledger, "w1", [succeeded(ended)], (waiting, token))
        wait_until_blocked(conn, ledger)
        # Locking the report's row first, then the delivery's, would hold `ended` while waiting for
        # `waiting`: this push (same open transaction, now depending on `ended` too) would then wait
        # for the ledger while the ledger waits for it, a deadlock PostgreSQL breaks by killing one.
        try:
            push(producer, "later", depends_on=[ended])
        except psycopg.errors.DeadlockDetected as exc:  # pragma: no cover - the failure this test guards
            raise AssertionError("the push deadlocked with the ledger batch") from exc
        producer.commit()
        rows = settled.result(timeout=10)
    assert [(r["id"], r["status"]) for r in rows] == [(ended, "succeeded"), (waiting, "running")]
