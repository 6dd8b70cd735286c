"""lzq_finish: the finish fence. A report applies only to the job's current attempt on its worker."""

from __future__ import annotations

from psycopg.types.json import Jsonb

from tests.sql.helpers import (
    claim,
    dispatched_job,
    finish,
    job,
    raises_invalid,
    running_job,
    seconds_from_now,
    start,
)


def report(job_id, outcome, attempt=1, **extra):
    return {"id": job_id, "attempt": attempt, "outcome": outcome, **extra}


def test_finish_succeeded_records_success_and_returns_the_applied_report(conn):
    job_id, _ = running_job(conn, "w1")
    rows = conn.execute(
        "SELECT * FROM lzq_finish('w1', %s)", (Jsonb([report(job_id, "succeeded")]),)
    ).fetchall()
    assert rows == [(job_id, "succeeded")]
    row = job(conn, job_id)
    assert (row["status"], row["attempts"], row["last_error"]) == ("succeeded", 1, None)
    assert row["finished_at"] is not None


def test_finish_failed_fails_the_job_at_once_with_its_error(conn):
    job_id, _ = running_job(conn, "w1", max_failures=5)
    assert finish(conn, "w1", report(job_id, "failed", error="ValueError: boom")) == [(job_id, "failed")]
    row = job(conn, job_id)
    assert (row["status"], row["last_error"], row["attempts"]) == ("failed", "ValueError: boom", 1)
    assert row["finished_at"] is not None


def test_finish_retry_without_delay_makes_the_job_ready_for_its_next_attempt(conn):
    job_id, _ = running_job(conn, "w1")
    assert finish(conn, "w1", report(job_id, "retry", error="try again", retry_delay_s=0)) == [
        (job_id, "ready")
    ]
    row = job(conn, job_id)
    assert (row["status"], row["last_error"], row["attempts"], row["finished_at"]) == (
        "ready",
        "try again",
        1,
        None,
    )
    ((_, token, _),) = claim(conn)
    assert [r["attempt"] for r in start(conn, "w1", (job_id, token))] == [2]


# Time checks run inside one transaction: now() is then the same for the call and the check.


def test_finish_retry_with_delay_schedules_the_job_that_far_ahead(conn):
    job_id, _ = running_job(conn, "w1")
    short, _ = running_job(conn, "w1")
    with conn.transaction():
        assert finish(conn, "w1", report(job_id, "retry", retry_delay_s=30)) == [(job_id, "scheduled")]
        assert finish(conn, "w1", report(short, "retry", retry_delay_s=0.5)) == [(short, "scheduled")]
        assert seconds_from_now(conn, job_id) == 30
        assert seconds_from_now(conn, short) == 0.5
    assert job(conn, job_id)["status"] == "scheduled"


def test_finish_retry_without_a_delay_of_its_own_backs_off_exponentially(conn):
    first, _ = running_job(conn, "w1", max_failures=10)
    third, _ = running_job(conn, "w1", max_failures=10)
    capped, _ = running_job(conn, "w1", max_failures=100)
    conn.execute("UPDATE lzq_jobs SET attempts = 3 WHERE id = %s", (third,))
    conn.execute("UPDATE lzq_jobs SET attempts = 40 WHERE id = %s", (capped,))
    with conn.transaction():
        rows = finish(
            conn,
            "w1",
            report(first, "retry"),
            report(third, "retry", attempt=3),
            report(capped, "retry", attempt=40),
        )
        assert sorted(rows) == [(first, "scheduled"), (third, "scheduled"), (capped, "scheduled")]
        assert seconds_from_now(conn, first) == 2  # 2^1 s after attempt 1
        assert seconds_from_now(conn, third) == 8  # 2^3 s after attempt 3
        assert seconds_from_now(conn, capped) == 3600  # at most an hour


def test_finish_retry_with_attempts_spent_fails_the_job(conn):
    job_id, _ = running_job(conn, "w1", max_failures=1)
    assert finish(conn, "w1", report(job_id, "retry", error="boom", retry_delay_s=0)) == [(job_id, "failed")]
    row = job(conn, job_id)
    assert (row["status"], row["last_error"]) == ("failed", "boom")
    assert row["finished_at"] is not None


def test_finish_ignores_reports_for_another_attempt_another_worker_or_a_job_not_running(conn):
    job_id, _ = running_job(conn, "w1")
    dispatched, _ = dispatched_job(conn, "w1")
    assert finish(conn, "w1", report(job_id, "succeeded", attempt=2)) == []
    assert finish(conn, "w1", report(job_id, "succeeded", attempt=0)) == []
    assert finish(conn, "w2", report(job_id, "succeeded")) == []
    assert finish(conn, "w1", report(dispatched, "succeeded", attempt=0)) == []
    assert finish(conn, "w1", report(dispatched, "succeeded")) == []
    assert finish(conn, "w1", report(999_999, "succeeded")) == []
    assert (job(conn, job_id)["status"], job(conn, dispatched)["status"]) == ("running", "dispatched")
    # A report applies once: a duplicate after the job finished finds it no longer running.
    assert finish(conn, "w1", report(job_id, "failed", error="late")) == [(job_id, "failed")]
    assert finish(conn, "w1", report(job_id, "succeeded")) == []
    assert (job(conn, job_id)["status"], job(conn, job_id)["last_error"]) == ("failed", "late")


def test_finish_applies_each_report_of_a_batch(conn):
    ok, _ = running_job(conn, "w1")
    bad, _ = running_job(conn, "w1")
    again, _ = running_job(conn, "w1")
    other, _ = running_job(conn, "w2")
    rows = finish(
        conn,
        "w1",
        report(ok, "succeeded"),
        report(bad, "failed", error="x"),
        report(again, "retry", retry_delay_s=0),
        report(other, "succeeded"),
    )
    assert sorted(rows) == sorted([(ok, "succeeded"), (bad, "failed"), (again, "ready")])
    assert job(conn, other)["status"] == "running"


def test_finish_rejects_a_bad_outcome_and_applies_no_report_of_the_batch(conn):
    job_id, _ = running_job(conn, "w1")
    for outcome in ("done", "SUCCEEDED", "", None):
        with raises_invalid("outcome", message="must be succeeded, retry or failed", case=outcome):
            finish(conn, "w1", report(job_id, "succeeded"), report(job_id, outcome))
    with raises_invalid("outcome"):
        finish(conn, "w1", report(job_id, "succeeded"), {"id": job_id, "attempt": 1})
    assert job(conn, job_id)["status"] == "running"
