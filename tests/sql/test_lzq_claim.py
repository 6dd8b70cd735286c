"""lzq_claim: ready -> dispatched, only into free slots of live workers, in dispatch (vtag) order."""

from __future__ import annotations

import datetime as dt

from tests.sql.helpers import claim, dispatched_job, heartbeat, job, push, start


def statuses(conn):
    return dict(conn.execute("SELECT status, count(*) FROM lzq_jobs GROUP BY status").fetchall())


def push_n(conn, n, **options):
    return [push(conn, f"job{i}", **options) for i in range(n)]


def test_claim_dispatches_nothing_without_live_workers(conn):
    push_n(conn, 3)
    assert claim(conn) == []
    heartbeat(conn, "w1", queues=["other"], slots=5)
    assert claim(conn) == []
    assert statuses(conn) == {"ready": 3}


def test_claim_credit_is_slots_plus_margin_per_worker_minus_dispatched_and_running(conn):
    push_n(conn, 20)
    heartbeat(conn, "w1", slots=2)
    heartbeat(conn, "w2", slots=3)
    assert len(claim(conn, margin_per_worker=1)) == (2 + 1) + (3 + 1)
    assert claim(conn, margin_per_worker=1) == []
    # A dispatched job that starts running still holds its slot ...
    job_id, token, _ = conn.execute(
        "SELECT id, dispatch_token, queue_name FROM lzq_jobs WHERE status = 'dispatched' ORDER BY id LIMIT 1"
    ).fetchone()
    assert len(start(conn, "w1", (job_id, token))) == 1
    assert claim(conn, margin_per_worker=1) == []
    # ... until it finishes; then exactly that slot is credit again.
    conn.execute("UPDATE lzq_jobs SET status = 'succeeded' WHERE id = %s", (job_id,))
    assert len(claim(conn, margin_per_worker=1)) == 1
    assert statuses(conn) == {"dispatched": 7, "succeeded": 1, "ready": 12}
    # Without margin, the same workers have no credit left at all.
    conn.execute(
        "UPDATE lzq_jobs SET status = 'succeeded' WHERE status = 'dispatched' AND id IN "
        "(SELECT id FROM lzq_jobs WHERE status = 'dispatched' ORDER BY id LIMIT 2)"
    )
    assert claim(conn, margin_per_worker=0) == []
    assert len(claim(conn, margin_per_worker=1)) == 2


def test_claim_credit_is_per_queue(conn):
    emails = push_n(conn, 4, queue_name="emails")
    push_n(conn, 4, queue_name="reports")
    heartbeat(conn, "w1", queues=["emails"], slots=2)
    rows = claim(conn)
    assert sorted(r[0] for r in rows) == emails[:2]
    assert {r[2] for r in rows} == {"emails"}
    # A busy queue does not eat another queue's credit.
    heartbeat(conn, "w2", queues=["reports"], slots=1)
    assert [r[2] for r in claim(conn)] == ["reports"]


def test_claim_ignores_workers_with_stale_heartbeat(conn):
    push_n(conn, 5)
    heartbeat(conn, "w1", slots=3)
    conn.execute("UPDATE lzq_workers SET heartbeat_at = now() - interval '1 hour'")
    assert claim(conn, dead_after_s=30) == []
    conn.execute("UPDATE lzq_workers SET heartbeat_at = now() - interval '20 seconds'")
    assert claim(conn, dead_after_s=10) == []
    assert len(claim(conn, dead_after_s=30)) == 3


def test_claim_ignores_stopping_workers(conn):
    push_n(conn, 5)
    heartbeat(conn, "w1", slots=3, stopping=True)
    assert claim(conn, margin_per_worker=1) == []
    heartbeat(conn, "w1", slots=3, stopping=False)
    assert len(claim(conn, margin_per_worker=1)) == 4


def test_claim_takes_lowest_priority_value_first_then_oldest_id(conn):
    ids = {
        name: push(conn, name, priority=priority)
        for name, priority in [("p5", 5), ("m5a", -5), ("zero", 0), ("m5b", -5), ("m20", -20), ("p20", 20)]
    }
    heartbeat(conn, "w1", slots=100)
    order = [claim(conn, max_jobs=1)[0][0] for _ in ids]
    assert order == [ids[n] for n in ("m20", "m5a", "m5b", "zero", "p5", "p20")]


def test_claim_takes_at_most_max_jobs_across_queues(conn):
    push_n(conn, 5, queue_name="a")
    push_n(conn, 5, queue_name="b")
    heartbeat(conn, "w1", queues=["a", "b"], slots=10)
    assert len(claim(conn, max_jobs=7)) == 7
    assert len(claim(conn, max_jobs=7)) == 3
    assert claim(conn, max_jobs=0) == []


def test_claim_stamps_fresh_token_and_lease_and_returns_queue(conn):
    ids = push_n(conn, 3, queue_name="emails")
    heartbeat(conn, "w1", queues=["emails"], slots=3)
    with conn.transaction():  # one now() for the claim and the lease check
        rows = claim(conn, lease_s=45)
        leases = conn.execute("SELECT DISTINCT lease_expires_at - now() FROM lzq_jobs").fetchall()
    assert leases == [(dt.timedelta(seconds=45),)]
    assert sorted(r[0] for r in rows) == ids
    assert len({r[1] for r in rows}) == 3
    for job_id, token, queue in rows:
        row = job(conn, job_id)
        assert (row["status"], row["dispatch_token"], queue) == ("dispatched", token, "emails")
        assert row["attempts"] == 0 and row["worker_id"] is None


def test_claim_takes_only_ready_jobs(conn):
    push(conn, "later", start_time="+1 hour")
    for status in ("waiting", "succeeded", "failed", "cancelled"):
        conn.execute("UPDATE lzq_jobs SET status = %s WHERE id = %s", (status, push(conn, status)))
    ready = push(conn, "ready")
    heartbeat(conn, "w1", slots=10)
    assert [r[0] for r in claim(conn)] == [ready]


def test_claim_skips_rows_locked_by_another_transaction(conn, connect):
    first, second = push(conn, "first"), push(conn, "second")
    heartbeat(conn, "w1", slots=1)
    other = connect()
    other.execute("SELECT 1 FROM lzq_jobs WHERE id = %s FOR UPDATE", (first,))
    conn.execute("SET statement_timeout = '5s'")  # a claim that waited on the lock would fail here
    assert [r[0] for r in claim(conn)] == [second]
    other.rollback()
    assert claim(conn) == []  # the one slot is spent


def test_concurrent_claims_never_exceed_credit_nor_take_the_same_row(conn, connect):
    push_n(conn, 10, queue_name="a")
    push_n(conn, 10, queue_name="b")
    heartbeat(conn, "w1", queues=["a", "b"], slots=2)
    heartbeat(conn, "w2", queues=["b", "a"], slots=1)  # the same group of queues: credit 2+1+1+1
    one, two = connect(), connect()
    two.execute("SET statement_timeout = '5s'")
    two.execute("SELECT 1")  # two's transaction is open before one claims
    first = claim(one, margin_per_worker=1)
    # While one's transaction is open, two skips the queues one is claiming instead of waiting.
    assert claim(two, margin_per_worker=1) == []
    one.commit()
    # Now two sees one's committed claims in its credit count: nothing is left to spend.
    assert claim(two, margin_per_worker=1) == []
    two.commit()
    assert sorted(r[2] for r in first) == ["a"] * 5  # best first across the group's queues: oldest
    # Interleave again with free credit on both sides: the sum never exceeds it, no row twice.
    conn.execute("UPDATE lzq_jobs SET status = 'succeeded' WHERE status = 'dispatched'")
    from_one = claim(one, max_jobs=3, margin_per_worker=1)
    from_two = claim(two, margin_per_worker=1)
    one.commit()
    from_two += claim(two, margin_per_worker=1)
    two.commit()
    ids = [r[0] for r in from_one + from_two]
    assert len(ids) == len(set(ids)) == 5
    assert conn.execute("SELECT count(*) FROM lzq_jobs WHERE status = 'dispatched'").fetchone()[0] == 5


def test_claim_counts_the_slots_of_a_worker_on_several_queues_once(conn):
    push(conn, "a", queue_name="a")
    push(conn, "b", queue_name="b")
    heartbeat(conn, "w1", queues=["a", "b"], slots=1)
    assert len(claim(conn, margin_per_worker=0)) == 1


def test_claim_does_not_charge_live_workers_for_jobs_running_on_a_stopping_worker(conn):
    first, token = dispatched_job(conn, "old", job_name="first")
    assert len(start(conn, "old", (first, token))) == 1
    heartbeat(conn, "old", slots=10, stopping=True)
    waiting = push(conn, "waiting")
    heartbeat(conn, "new", slots=1)
    assert [r[0] for r in claim(conn, margin_per_worker=0)] == [waiting]
