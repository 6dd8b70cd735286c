"""lzq_schedule: lzq_push with start_time as its own argument."""

from __future__ import annotations

from psycopg.types.json import Jsonb

from tests.sql.helpers import count_jobs, job, raises_invalid, seconds_from_now


def schedule(conn, job_name, params, start_time, options=None):
    args = (job_name, Jsonb(params), start_time)
    if options is None:
        return conn.execute("SELECT lzq_schedule(%s, %s, %s)", args).fetchone()[0]
    return conn.execute("SELECT lzq_schedule(%s, %s, %s, %s)", (*args, options)).fetchone()[0]


def test_schedule_writes_scheduled_job_at_start_time_with_options(conn):
    with conn.transaction():  # one now() for the call and the check
        job_id = schedule(
            conn, "report", {"day": 1}, "+1 hour", Jsonb({"priority": -3, "queue_name": "reports"})
        )
        assert seconds_from_now(conn, job_id) == 3600
    row = job(conn, job_id)
    assert (row["status"], row["priority"], row["queue_name"], row["params"]) == (
        "scheduled",
        -3,
        "reports",
        {"day": 1},
    )
    at = schedule(conn, "report", {}, "2099-01-01 03:00:00+00")
    assert conn.execute(
        "SELECT run_at = '2099-01-01 03:00:00+00' FROM lzq_jobs WHERE id = %s", (at,)
    ).fetchone()[0]


def test_schedule_with_start_time_reached_is_ready(conn):
    assert job(conn, schedule(conn, "a", {}, "now"))["status"] == "ready"
    assert job(conn, schedule(conn, "a", {}, "2001-01-01 00:00:00"))["status"] == "ready"
    assert job(conn, schedule(conn, "a", {}, "+0 seconds", None))["status"] == "ready"


def test_schedule_rejects_missing_duplicate_or_bad_start_time_and_bad_options(conn):
    with raises_invalid("start_time", message="must be given"):
        schedule(conn, "a", {}, None)
    with raises_invalid("start_time", message="given twice"):
        schedule(conn, "a", {}, "+1 hour", Jsonb({"start_time": "+2 hours"}))
    with raises_invalid("start_time", message="cannot parse"):
        schedule(conn, "a", {}, "next tuesday-ish")
    with raises_invalid("start_time", message="not a finite time"):
        schedule(conn, "a", {}, "infinity")
    for options in ([1], "x", None):
        with raises_invalid("job_options", case=options):
            schedule(conn, "a", {}, "+1 hour", Jsonb(options))
    # Everything lzq_push checks is checked too.
    with raises_invalid("priority"):
        schedule(conn, "a", {}, "+1 hour", Jsonb({"priority": 40}))
    with raises_invalid("job_name"):
        schedule(conn, " ", {}, "+1 hour")
    assert count_jobs(conn) == 0
