"""lzq_superqueuer_idle and _lzq_wake: NOTIFY lzq only when some superqueuer sleeps on LISTEN."""

from __future__ import annotations

from psycopg.types.json import Jsonb

from tests.sql.helpers import (
    dispatched_job,
    finish,
    handback,
    notifications_until_sentinel,
    push,
    running_job,
)


def set_idle(conn, superqueuer_id, idle):
    conn.execute("SELECT lzq_superqueuer_idle(%s, %s)", (superqueuer_id, idle))


def test_superqueuer_idle_records_the_flag_and_refreshes_the_heartbeat(conn):
    set_idle(conn, "sq1", True)
    assert conn.execute("SELECT superqueuer_id, idle FROM lzq_superqueuers").fetchall() == [("sq1", True)]
    conn.execute("UPDATE lzq_superqueuers SET heartbeat_at = now() - interval '1 hour'")
    set_idle(conn, "sq1", False)
    assert conn.execute(
        "SELECT idle, now() - heartbeat_at < interval '5 seconds' FROM lzq_superqueuers"
    ).fetchall() == [(False, True)]


def test_wake_notifies_only_when_a_superqueuer_is_idle(conn, listener):
    conn.execute("SELECT _lzq_wake('emails')")
    assert notifications_until_sentinel(listener, conn) == []
    set_idle(conn, "busy", False)
    conn.execute("SELECT _lzq_wake('emails')")
    assert notifications_until_sentinel(listener, conn) == []
    set_idle(conn, "sleepy", True)
    conn.execute("SELECT _lzq_wake('emails')")
    assert notifications_until_sentinel(listener, conn) == ["emails"]
    set_idle(conn, "sleepy", False)
    conn.execute("SELECT _lzq_wake('emails')")
    assert notifications_until_sentinel(listener, conn) == []


def test_push_notifies_a_sleeping_superqueuer_of_ready_jobs_only(conn, listener):
    push(conn, queue_name="emails")
    assert notifications_until_sentinel(listener, conn) == []
    set_idle(conn, "sq1", True)
    push(conn, queue_name="emails")
    push(conn, queue_name="later", start_time="+1 hour")
    assert notifications_until_sentinel(listener, conn) == ["emails"]


def test_push_many_notifies_once_per_queue_with_ready_jobs(conn, listener):
    set_idle(conn, "sq1", True)
    conn.execute(
        "SELECT * FROM lzq_push_many(%s)",
        (
            Jsonb(
                [
                    {"job_name": "a", "job_options": {"queue_name": "q1"}},
                    {"job_name": "b", "job_options": {"queue_name": "q2"}},
                    {"job_name": "c", "job_options": {"queue_name": "q1"}},
                    {"job_name": "d", "job_options": {"queue_name": "q3", "start_time": "+1 hour"}},
                ]
            ),
        ),
    )
    assert sorted(notifications_until_sentinel(listener, conn)) == ["q1", "q2"]


def test_finish_and_handback_notify_a_sleeping_superqueuer_that_a_slot_freed(conn, listener):
    done, _ = running_job(conn, "w1", queue_name="emails")
    back, token = dispatched_job(conn, "w1", queue_name="reports")
    notifications_until_sentinel(listener, conn)  # forget what setting up sent
    set_idle(conn, "sq1", True)
    assert finish(conn, "w1", {"id": done, "attempt": 1, "outcome": "succeeded"}) == [(done, "succeeded")]
    assert notifications_until_sentinel(listener, conn) == ["\x1femails"]  # a slot, nothing made ready
    assert handback(conn, None, (back, token)) == [back]
    assert notifications_until_sentinel(listener, conn) == ["reports"]
    # A report that does not apply frees nothing and wakes nobody.
    assert finish(conn, "w1", {"id": done, "attempt": 1, "outcome": "succeeded"}) == []
    assert notifications_until_sentinel(listener, conn) == []


def test_a_finish_that_makes_its_job_ready_again_wakes_for_ready_work_not_a_slot(conn, listener):
    job_id, _ = running_job(conn, "w1", queue_name="emails")
    notifications_until_sentinel(listener, conn)
    set_idle(conn, "sq1", True)
    assert finish(conn, "w1", {"id": job_id, "attempt": 1, "outcome": "retry", "retry_delay_s": 0}) == [
        (job_id, "ready")
    ]
    assert notifications_until_sentinel(listener, conn) == ["emails"]


def test_sweep_notifies_a_sleeping_superqueuer_of_the_queues_it_gave_jobs_back_to(conn, listener):
    job_id, _ = dispatched_job(conn, "w1", queue_name="emails")
    conn.execute(
        "UPDATE lzq_jobs SET lease_expires_at = now() - interval '1 second' WHERE id = %s", (job_id,)
    )
    set_idle(conn, "sq1", True)
    assert conn.execute("SELECT id, to_status FROM lzq_sweep(30)").fetchall() == [(job_id, "ready")]
    assert notifications_until_sentinel(listener, conn) in (["emails"], [""])


def test_sweep_that_moved_nothing_wakes_nobody_and_names_queues_when_it_did(conn, listener):
    set_idle(conn, "sq1", True)
    assert conn.execute("SELECT * FROM lzq_sweep(30)").fetchall() == []
    assert notifications_until_sentinel(listener, conn) == []
    job_id, _ = dispatched_job(conn, "w1", queue_name="emails")
    conn.execute(
        "UPDATE lzq_jobs SET lease_expires_at = now() - interval '1 second' WHERE id = %s", (job_id,)
    )
    notifications_until_sentinel(listener, conn)
    conn.execute("SELECT * FROM lzq_sweep(30)")
    assert notifications_until_sentinel(listener, conn) == ["emails"]


def test_a_worker_registering_wakes_a_sleeping_superqueuer_for_its_queues(conn, listener):
    set_idle(conn, "sleepy", True)
    conn.execute("SELECT lzq_heartbeat('w1', 'h', 1, ARRAY['default', 'emails'], 4)")
    assert sorted(notifications_until_sentinel(listener, conn)) == ["default", "emails"]
    # A heartbeat of a known worker, or a worker registering as it stops, adds no slots.
    conn.execute("SELECT lzq_heartbeat('w1', 'h', 1, ARRAY['default', 'emails'], 4)")
    conn.execute("SELECT lzq_heartbeat('w2', 'h', 2, ARRAY['default'], 4, stopping => true)")
    assert notifications_until_sentinel(listener, conn) == []
