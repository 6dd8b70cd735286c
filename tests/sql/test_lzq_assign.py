"""lzq_assign: ready -> running on the worker with the most credit left, for workers with an inbox;
the worker's own bookkeeping around it (lzq_worker_inbox, lzq_undelivered, lzq_inbox_gone,
lzq_worker_exit)."""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sql.helpers import (
    assign,
    finish,
    handback,
    heartbeat,
    inbox,
    job,
    notifications_until_sentinel,
    push,
    push_many,
    status,
)


def test_assign_gives_the_job_to_a_worker_with_what_it_needs_and_counts_the_attempt(conn):
    heartbeat(conn, "w1", slots=2)
    inbox(conn, "w1", "amq.gen-1")
    job_id = push(conn, "mail", {"to": "x"}, priority=3, fairness_key="t1", max_failures=5)
    [row] = assign(conn)
    stored = job(conn, job_id)
    assert row == {
        "id": job_id,
        "dispatch_token": stored["dispatch_token"],
        "queue_name": "default",
        "worker_id": "w1",
        "inbox": "amq.gen-1",
        "job_name": "mail",
        "params": {"to": "x"},
        "priority": 3,
        "fairness_key": "t1",
        "max_failures": 5,
        "attempt": 1,
    }
    assert (stored["status"], stored["worker_id"], stored["attempts"]) == ("running", "w1", 1)
    assert stored["started_at"] is not None and stored["lease_expires_at"] is None
    # The worker reports it like any running job.
    assert finish(conn, "w1", {"id": job_id, "attempt": 1, "outcome": "succeeded"}) == [(job_id, "succeeded")]


def test_only_live_workers_with_an_inbox_that_are_not_stopping_get_jobs(conn):
    push_many(conn, [{"job_name": "j"}] * 6)
    heartbeat(conn, "no-inbox", slots=5)
    heartbeat(conn, "stopping", slots=5)
    inbox(conn, "stopping")
    heartbeat(conn, "stopping", slots=5, stopping=True)
    heartbeat(conn, "dead", slots=5)
    inbox(conn, "dead")
    conn.execute("UPDATE lzq_workers SET heartbeat_at = now() - interval '1 minute' WHERE worker_id = 'dead'")
    assert assign(conn) == []
    heartbeat(conn, "w1", slots=2)
    inbox(conn, "w1")
    assert {r["worker_id"] for r in assign(conn)} == {"w1"}
    assert dict(conn.execute("SELECT status, count(*) FROM lzq_jobs GROUP BY 1").fetchall()) == {
        "running": 2,
        "ready": 4,
    }


def test_assign_commits_durably_even_on_a_session_that_does_not(connect):
    session = connect()
    session.execute("SET synchronous_commit = off")
    heartbeat(session, "w1")
    inbox(session, "w1")
    push(session, "j")
    session.commit()
    assert len(assign(session)) == 1
    # Published only after this commit: a claim lost in a crash would leave the job ready while
    # its message runs it.
    assert session.execute("SHOW synchronous_commit").fetchone() == ("on",)
    session.commit()
    assert session.execute("SHOW synchronous_commit").fetchone() == ("off",)


# -- the reference model of the balance --------------------------------------------------------------


def model_assignment(
    workers: dict[str, tuple[int, int]], margin: int, ready: int, max_jobs: int
) -> list[str]:
    """Who gets each of the ready jobs, in dispatch order: the worker with the most credit left
    (slots + margin - running - given so far), ties to the smallest id; as many jobs as the credit
    of all of them together (a worker holding more than its share lowers it) and max_jobs allow."""
    credit = {w: slots + margin - running for w, (slots, running) in workers.items()}
    total = max(0, min(ready, max_jobs, sum(credit.values())))
    order = []
    for _ in range(total):
        best = min(credit, key=lambda w: (-credit[w], w))
        order.append(best)
        credit[best] -= 1
    return order


workers_strategy = st.dictionaries(
    st.sampled_from(["w1", "w2", "w3", "w4"]),
    st.tuples(st.integers(min_value=1, max_value=5), st.integers(min_value=0, max_value=7)),  # slots, running
    min_size=1,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    workers=workers_strategy,
    margin=st.integers(min_value=0, max_value=3),
    ready=st.integers(min_value=0, max_value=30),
    max_jobs=st.integers(min_value=1, max_value=40),
)
def test_assignment_equals_the_reference_model(conn, workers, margin, ready, max_jobs):
    conn.execute("DELETE FROM lzq_jobs; DELETE FROM lzq_workers; DELETE FROM lzq_queues")
    for worker_id, (slots, running) in workers.items():
        heartbeat(conn, worker_id, slots=slots)
        inbox(conn, worker_id)
        if running:
            ids = push_many(conn, [{"job_name": "busy"}] * running)
            conn.execute(
                "UPDATE lzq_jobs SET status = 'running', worker_id = %s, attempts = 1, started_at = now(),"
                " dispatch_token = gen_random_uuid() WHERE id = ANY (%s)",
                (worker_id, ids),
            )
    queued = push_many(conn, [{"job_name": "j"}] * ready)
    rows = assign(conn, max_jobs=max_jobs, margin_per_worker=margin)
    expected = model_assignment(workers, margin, ready, max_jobs)
    assert [r["worker_id"] for r in rows] == expected
    assert [r["id"] for r in rows] == queued[: len(expected)]  # dispatch order: FIFO in one flow
    assert [r["inbox"] for r in rows] == [f"inbox-{w}" for w in expected]


# -- the worker's side: its inbox, what never arrived, leaving -------------------------------------


def test_a_worker_names_its_inbox_and_that_wakes_sleeping_superqueuers(conn, listener):
    heartbeat(conn, "w1", queues=["mail", "default"])
    conn.execute("SELECT lzq_superqueuer_idle('sq1', true)")
    assert inbox(conn, "w1", "amq.gen-a") is True
    assert notifications_until_sentinel(listener, conn) == ["mail", "default"]
    assert conn.execute("SELECT inbox FROM lzq_workers").fetchall() == [("amq.gen-a",)]
    # A worker the sweep forgot (declared dead) is told so: it must stop.
    assert inbox(conn, "swept") is False


def test_undelivered_lists_assigned_jobs_the_worker_does_not_hold_and_old_enough(conn):
    heartbeat(conn, "w1", slots=5)
    heartbeat(conn, "w2", slots=5)
    inbox(conn, "w1")
    push_many(conn, [{"job_name": "j"}] * 3)
    rows = assign(conn, max_jobs=3)
    assert {r["worker_id"] for r in rows} == {"w1"}
    held, lost = rows[0], rows[1:]

    def undelivered(older_than_s, held_tokens):
        return conn.execute(
            "SELECT * FROM lzq_undelivered('w1', %s::uuid[], %s)", (held_tokens, older_than_s)
        ).fetchall()

    expected = [(r["id"], r["dispatch_token"]) for r in lost]
    assert undelivered(0, [str(held["dispatch_token"])]) == expected
    assert undelivered(60, [str(held["dispatch_token"])]) == []  # too recent: may be on its way
    assert undelivered(0, [str(r["dispatch_token"]) for r in rows]) == []
    assert conn.execute("SELECT * FROM lzq_undelivered('w2', '{}', 0)").fetchall() == []
    # Handed back by the worker: ready again, the attempt not counted.
    assert handback(conn, "w1", *expected) == [r["id"] for r in lost]
    assert [(job(conn, r["id"])["status"], job(conn, r["id"])["attempts"]) for r in lost] == [
        ("ready", 0)
    ] * 2


def test_inbox_gone_stops_assignments_to_that_worker_until_it_names_a_new_one(conn):
    heartbeat(conn, "w1", slots=5)
    heartbeat(conn, "w2", slots=5)
    inbox(conn, "w1", "old")
    inbox(conn, "w2", "other")
    assert conn.execute("SELECT lzq_inbox_gone(%s)", (["old", "never"],)).fetchone() == (1,)
    push(conn, "j")
    assert [r["worker_id"] for r in assign(conn)] == ["w2"]
    inbox(conn, "w1", "new")
    push(conn, "j")
    assert [r["inbox"] for r in assign(conn)] == ["new"]


def test_worker_exit_hands_back_everything_assigned_to_it_and_removes_its_credit(conn):
    heartbeat(conn, "w1", slots=2)
    heartbeat(conn, "w2", slots=1)
    inbox(conn, "w1")
    push_many(conn, [{"job_name": "j"}] * 4)
    mine = [r["id"] for r in assign(conn)]
    assert len(mine) == 2
    assert sorted(r[0] for r in conn.execute("SELECT * FROM lzq_worker_exit('w1')").fetchall()) == sorted(
        mine
    )
    assert [(status(conn, i), job(conn, i)["attempts"]) for i in mine] == [("ready", 0)] * 2
    assert conn.execute("SELECT * FROM lzq_worker_exit('never-registered')").fetchall() == []
    assert conn.execute("SELECT worker_id FROM lzq_workers").fetchall() == [("w2",)]


def test_a_finish_for_a_job_handed_back_meanwhile_is_rejected(conn):
    heartbeat(conn, "w1")
    inbox(conn, "w1")
    job_id = push(conn, "j")
    [row] = assign(conn)
    assert handback(conn, None, (job_id, row["dispatch_token"])) == [job_id]
    assert finish(conn, "w1", {"id": job_id, "attempt": 1, "outcome": "succeeded"}) == []
    assert status(conn, job_id) == "ready"


def test_a_hand_back_with_a_token_that_is_not_the_assignments_does_nothing(conn):
    heartbeat(conn, "w1")
    inbox(conn, "w1")
    job_id = push(conn, "j")
    assign(conn)
    assert handback(conn, None, (job_id, uuid.uuid4())) == []
    assert status(conn, job_id) == "running"
