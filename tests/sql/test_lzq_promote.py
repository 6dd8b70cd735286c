"""lzq_promote: due scheduled jobs become ready, oldest first; says how soon the next one is due."""

from __future__ import annotations

from tests.sql.helpers import job, push


def promote(conn, max_jobs=100):
    return conn.execute("SELECT * FROM lzq_promote(%s)", (max_jobs,)).fetchone()


def make_due(conn, job_id, seconds_ago=1):
    conn.execute(
        "UPDATE lzq_jobs SET run_at = now() - make_interval(secs => %s) WHERE id = %s", (seconds_ago, job_id)
    )


def test_promote_makes_only_due_scheduled_jobs_ready(conn):
    due = push(conn, start_time="+1 hour")
    make_due(conn, due)
    with conn.transaction():  # one now() for the push and the promote
        not_yet = push(conn, start_time="+1 hour")
        promoted, next_due_in_s = promote(conn)
    assert (promoted, next_due_in_s) == (1, 3600)
    assert (job(conn, due)["status"], job(conn, not_yet)["status"]) == ("ready", "scheduled")
    assert promote(conn)[0] == 0


def test_promote_reports_no_next_due_time_when_nothing_is_scheduled(conn):
    assert promote(conn) == (0, None)
    push(conn)  # ready, not scheduled
    assert promote(conn) == (0, None)


def test_promote_takes_at_most_max_jobs_oldest_run_at_first(conn):
    ids = [push(conn, start_time="+1 hour") for _ in range(4)]
    for job_id, seconds_ago in zip(ids, (10, 40, 20, 30), strict=True):
        make_due(conn, job_id, seconds_ago)
    assert promote(conn, max_jobs=2)[0] == 2
    assert [job(conn, i)["status"] for i in ids] == ["scheduled", "ready", "scheduled", "ready"]
    assert promote(conn, max_jobs=2)[0] == 2
    assert {job(conn, i)["status"] for i in ids} == {"ready"}


def test_promote_reports_zero_wait_when_due_jobs_remain_beyond_max_jobs(conn):
    ids = [push(conn, start_time="+1 hour") for _ in range(3)]
    for job_id in ids:
        make_due(conn, job_id)
    promoted, next_due_in_s = promote(conn, max_jobs=2)
    assert promoted == 2
    assert next_due_in_s == 0


def test_promote_skips_rows_another_transaction_is_promoting(conn, connect):
    locked, free = push(conn, start_time="+1 hour"), push(conn, start_time="+1 hour")
    make_due(conn, locked, 20)
    make_due(conn, free, 10)
    other = connect()
    other.execute("SELECT 1 FROM lzq_jobs WHERE id = %s FOR UPDATE", (locked,))
    conn.execute("SET statement_timeout = '5s'")
    assert promote(conn)[0] == 1
    assert (job(conn, locked)["status"], job(conn, free)["status"]) == ("scheduled", "ready")
    other.rollback()
