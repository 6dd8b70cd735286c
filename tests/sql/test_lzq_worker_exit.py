"""lzq_worker_exit: a worker leaving cleanly takes its slots out of the dispatch credit."""

from __future__ import annotations

from tests.sql.helpers import claim, heartbeat, push


def test_worker_exit_removes_only_that_worker_and_its_credit(conn):
    push(conn, "a")
    push(conn, "b")
    heartbeat(conn, "w1", slots=1)
    heartbeat(conn, "w2", slots=1)
    conn.execute("SELECT lzq_worker_exit('w1')")
    conn.execute("SELECT lzq_worker_exit('never-registered')")  # nothing to do, no error
    assert conn.execute("SELECT worker_id FROM lzq_workers").fetchall() == [("w2",)]
    assert len(claim(conn, margin_per_worker=0)) == 1
