"""lzq_heartbeat: register or refresh a worker; true when its row had to be (re)created."""

from __future__ import annotations

from tests.sql.helpers import heartbeat


def worker(conn, worker_id="w1"):
    return conn.execute(
        "SELECT hostname, pid, queues, slots, stopping FROM lzq_workers WHERE worker_id = %s", (worker_id,)
    ).fetchone()


def test_heartbeat_is_true_on_first_call_false_after_and_true_again_once_the_row_was_deleted(conn):
    assert heartbeat(conn, "w1") is True
    assert heartbeat(conn, "w1") is False
    assert heartbeat(conn, "w1") is False
    conn.execute("SELECT lzq_worker_exit('w1')")
    assert worker(conn) is None
    assert heartbeat(conn, "w1") is True
    conn.execute("UPDATE lzq_workers SET heartbeat_at = now() - interval '1 hour'")
    conn.execute("SELECT * FROM lzq_sweep(30)")
    assert heartbeat(conn, "w1") is True


def test_heartbeat_registers_the_worker_and_updates_its_slots_queues_and_stopping(conn):
    conn.execute("SELECT lzq_heartbeat('w1', 'host-a', 41, ARRAY['default', 'emails'], 4)")
    assert worker(conn) == ("host-a", 41, ["default", "emails"], 4, False)
    conn.execute("UPDATE lzq_workers SET heartbeat_at = now() - interval '1 hour'")
    conn.execute("SELECT lzq_heartbeat('w1', 'host-a', 41, ARRAY['emails'], 2, stopping => true)")
    assert worker(conn) == ("host-a", 41, ["emails"], 2, True)
    age = conn.execute("SELECT extract(epoch FROM now() - heartbeat_at) FROM lzq_workers").fetchone()[0]
    assert age < 5
    assert heartbeat(conn, "w2") is True
    assert conn.execute("SELECT count(*) FROM lzq_workers").fetchone()[0] == 2
