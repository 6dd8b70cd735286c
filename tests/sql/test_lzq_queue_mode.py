"""lzq_queue_mode: read or set how a queue orders its ready jobs (fair / priority / fifo)."""

from __future__ import annotations

import psycopg

from tests.sql.helpers import claimed_ids, heartbeat, push, push_many, raises_invalid


def mode(conn: psycopg.Connection, queue: str, new: str | None = None) -> str:
    row = conn.execute("SELECT lzq_queue_mode(%s, %s)", (queue, new)).fetchone()
    assert row is not None
    return row[0]


def backlog(conn: psycopg.Connection) -> dict[str, list[int]]:
    """Three flows: 6 nice-0 'a' jobs, 2 nice-5 'b' jobs, 2 nice -3 'c' jobs, pushed in that order."""
    jobs = [{"job_name": "a"}] * 6 + [{"job_name": "b", "job_options": {"priority": 5}}] * 2
    jobs += [{"job_name": "c", "job_options": {"priority": -3}}] * 2
    ids = push_many(conn, jobs)
    return {"a": ids[:6], "b": ids[6:8], "c": ids[8:]}


def test_a_queue_is_fair_until_told_otherwise_and_the_mode_is_stored(conn):
    assert mode(conn, "default") == "fair"
    assert mode(conn, "default", "priority") == "priority"
    assert mode(conn, "default") == "priority"
    assert mode(conn, "default", "priority") == "priority"  # unchanged: nothing to re-stamp
    assert mode(conn, "other") == "fair"


def test_fair_mode_interleaves_levels_by_weight(conn):
    heartbeat(conn, slots=100)
    jobs = backlog(conn)
    a, b, c = jobs["a"], jobs["b"], jobs["c"]
    # c costs 0.51 of a, b 3.05 of a: c c a a a b a a a b (tags 0.51 1.02 1 2 3 3.05 4 5 6 6.1)
    assert claimed_ids(conn) == [c[0], a[0], c[1], a[1], a[2], b[0], a[3], a[4], a[5], b[1]]


def test_priority_mode_is_strict_nice_order_and_lets_a_lower_level_starve(conn):
    heartbeat(conn, slots=100)
    mode(conn, "default", "priority")
    jobs = backlog(conn)
    assert claimed_ids(conn, 8) == jobs["c"] + jobs["a"]
    more = push(conn, "a")
    assert claimed_ids(conn, 1) == [more]  # the nice 5 jobs wait as long as nice 0 work keeps coming


def test_fifo_mode_ignores_nice(conn):
    heartbeat(conn, slots=100)
    mode(conn, "default", "fifo")
    jobs = backlog(conn)
    assert claimed_ids(conn) == jobs["a"] + jobs["b"] + jobs["c"]


def test_changing_the_mode_keeps_the_backlogs_order_and_applies_to_new_jobs(conn):
    heartbeat(conn, slots=100)
    backlog(conn)
    fair_order = [r[0] for r in conn.execute("SELECT id FROM lzq_jobs ORDER BY vtag, priority, id")]
    assert mode(conn, "default", "fifo") == "fifo"
    newer = push(conn, "c", priority=-20)
    assert claimed_ids(conn) == [*fair_order, newer]


def test_bad_input_names_the_field_and_writes_nothing(conn):
    for queue, new, field in [
        ("default", "strict", "mode"),
        ("", "fifo", "queue_name"),
        (None, None, "queue_name"),
    ]:
        with raises_invalid(field):
            mode(conn, queue, new)
    assert conn.execute("SELECT count(*) FROM lzq_queues").fetchone() == (0,)
