"""lzq_sweep: expired dispatches and running jobs of dead workers go back (or fail); dead rows go."""

from __future__ import annotations

from tests.sql.helpers import claim, dispatched_job, finish, heartbeat, job, push, running_job, start, sweep


def expire_lease(conn, job_id):
    conn.execute(
        "UPDATE lzq_jobs SET lease_expires_at = now() - interval '1 second' WHERE id = %s", (job_id,)
    )


def kill_worker(conn, worker_id):
    conn.execute(
        "UPDATE lzq_workers SET heartbeat_at = now() - interval '1 hour' WHERE worker_id = %s", (worker_id,)
    )


def test_sweep_makes_a_dispatched_job_with_expired_lease_ready(conn):
    expired, token = dispatched_job(conn, "w1")
    fresh, _ = dispatched_job(conn, "w1")
    expire_lease(conn, expired)
    assert sweep(conn) == [(expired, "dispatched", "ready")]
    row = job(conn, expired)
    assert (row["status"], row["lease_expires_at"], row["attempts"]) == ("ready", None, 0)
    assert job(conn, fresh)["status"] == "dispatched"
    assert start(conn, "w1", (expired, token)) == []
    assert sweep(conn) == []


def test_sweep_makes_a_running_job_of_a_dead_worker_ready_with_the_reason(conn):
    job_id, _ = running_job(conn, "w1")
    alive, _ = running_job(conn, "w2")
    kill_worker(conn, "w1")
    assert sweep(conn, dead_after_s=30) == [(job_id, "running", "ready")]
    row = job(conn, job_id)
    assert (row["status"], row["attempts"], row["finished_at"]) == ("ready", 1, None)
    assert row["last_error"] == "worker w1 stopped heartbeating during attempt 1"
    assert job(conn, alive)["status"] == "running"
    # The zombie's late report is rejected; the next run is attempt 2 on a live worker.
    assert finish(conn, "w1", {"id": job_id, "attempt": 1, "outcome": "succeeded"}) == []
    ((_, token, _),) = claim(conn)
    assert [r["attempt"] for r in start(conn, "w2", (job_id, token))] == [2]
    assert finish(conn, "w1", {"id": job_id, "attempt": 1, "outcome": "succeeded"}) == []
    assert job(conn, job_id)["status"] == "running"


def test_sweep_fails_a_running_job_of_a_dead_worker_when_attempts_are_spent(conn):
    job_id, _ = running_job(conn, "w1", max_failures=1)
    kill_worker(conn, "w1")
    assert sweep(conn) == [(job_id, "running", "failed")]
    row = job(conn, job_id)
    assert row["status"] == "failed" and row["finished_at"] is not None
    assert row["last_error"] == "worker w1 stopped heartbeating during attempt 1"


def test_sweep_treats_a_worker_as_dead_after_dead_after_s_or_when_its_row_is_gone(conn):
    slow, _ = running_job(conn, "w1")
    gone, _ = running_job(conn, "w2")
    conn.execute("UPDATE lzq_workers SET heartbeat_at = now() - interval '20 seconds' WHERE worker_id = 'w1'")
    conn.execute("DELETE FROM lzq_workers WHERE worker_id = 'w2'")  # forgotten, not exited cleanly
    assert sweep(conn, dead_after_s=30) == [(gone, "running", "ready")]
    assert sweep(conn, dead_after_s=10) == [(slow, "running", "ready")]


def test_sweep_forgets_dead_workers_and_superqueuers_but_keeps_live_ones(conn):
    heartbeat(conn, "dead")
    heartbeat(conn, "stopping", stopping=True)
    heartbeat(conn, "live")
    kill_worker(conn, "dead")
    conn.execute("SELECT lzq_superqueuer_idle('sq-dead', false), lzq_superqueuer_idle('sq-live', true)")
    conn.execute(
        "UPDATE lzq_superqueuers SET heartbeat_at = now() - interval '1 hour' "
        "WHERE superqueuer_id = 'sq-dead'"
    )
    assert sweep(conn) == []
    assert [r[0] for r in conn.execute("SELECT worker_id FROM lzq_workers ORDER BY 1")] == [
        "live",
        "stopping",
    ]
    assert [r[0] for r in conn.execute("SELECT superqueuer_id FROM lzq_superqueuers")] == ["sq-live"]
    # The swept worker learns it was declared dead when its next heartbeat has to re-create its row.
    assert heartbeat(conn, "dead") is True


def test_sweep_leaves_other_statuses_alone(conn):
    heartbeat(conn, "w1", slots=10)
    scheduled = push(conn, start_time="+1 hour")
    ready = push(conn)
    conn.execute("UPDATE lzq_jobs SET lease_expires_at = now() - interval '1 hour', worker_id = 'nobody'")
    assert sweep(conn) == []
    assert (job(conn, scheduled)["status"], job(conn, ready)["status"]) == ("scheduled", "ready")


def test_a_second_sweep_returns_nothing_while_the_first_holds_its_lock(conn, connect):
    first_job, _ = dispatched_job(conn, "w1")
    second_job, _ = dispatched_job(conn, "w1")
    expire_lease(conn, first_job)
    one, two = connect(), connect()
    two.execute("SET statement_timeout = '5s'")  # a sweep that waited instead of skipping would fail
    assert sweep(one) == [(first_job, "dispatched", "ready")]
    expire_lease(conn, second_job)  # work for the second sweep, which it must not do yet
    assert sweep(two) == []
    two.commit()
    one.commit()
    assert sweep(two) == [(second_job, "dispatched", "ready")]
    two.commit()
    assert (job(conn, first_job)["status"], job(conn, second_job)["status"]) == ("ready", "ready")
