"""lzq_handback: dispatched|running -> ready at once; an interrupted run does not count as an attempt."""

from __future__ import annotations

import uuid

from tests.sql.helpers import claim, dispatched_job, finish, handback, job, running_job, start


def test_handback_of_a_dispatched_job_makes_it_ready(conn):
    job_id, token = dispatched_job(conn, "w1")
    # The superqueuer hands back messages RabbitMQ refused, with no worker of its own.
    assert handback(conn, None, (job_id, token)) == [job_id]
    row = job(conn, job_id)
    assert (row["status"], row["attempts"], row["lease_expires_at"], row["worker_id"]) == (
        "ready",
        0,
        None,
        None,
    )
    # The handed-back delivery is dead: only a new dispatch can start the job.
    assert start(conn, "w1", (job_id, token)) == []
    ((_, new_token, _),) = claim(conn)
    assert [r["attempt"] for r in start(conn, "w1", (job_id, new_token))] == [1]


def test_handback_of_a_dispatched_job_works_from_a_worker_too(conn):
    job_id, token = dispatched_job(conn, "w1")
    assert handback(conn, "w2", (job_id, token)) == [job_id]
    assert job(conn, job_id)["status"] == "ready"


def test_handback_of_a_running_job_by_its_worker_makes_it_ready_without_counting_the_attempt(conn):
    job_id, token = running_job(conn, "w1")
    assert handback(conn, "w1", (job_id, token)) == [job_id]
    row = job(conn, job_id)
    assert (row["status"], row["attempts"], row["worker_id"], row["started_at"]) == ("ready", 0, None, None)
    # Its late finish report no longer applies.
    assert finish(conn, "w1", {"id": job_id, "attempt": 1, "outcome": "succeeded"}) == []
    ((_, new_token, _),) = claim(conn)
    assert [r["attempt"] for r in start(conn, "w2", (job_id, new_token))] == [1]


def test_handback_of_a_running_job_by_another_worker_is_ignored(conn):
    job_id, token = running_job(conn, "w1")
    assert handback(conn, "w2", (job_id, token)) == []
    row = job(conn, job_id)
    assert (row["status"], row["attempts"], row["worker_id"]) == ("running", 1, "w1")


def test_the_superqueuer_hands_back_an_assigned_job_nobody_received_without_counting_the_attempt(conn):
    job_id, token = running_job(conn, "w1")  # an assignment is this state: running on w1, attempt 1
    assert handback(conn, None, (job_id, token)) == [job_id]
    row = job(conn, job_id)
    assert (row["status"], row["attempts"], row["worker_id"]) == ("ready", 0, None)


def test_handback_with_a_wrong_token_or_of_a_finished_job_is_ignored(conn):
    dispatched, token = dispatched_job(conn, "w1")
    running, running_token = running_job(conn, "w1")
    assert handback(conn, "w1", (dispatched, uuid.uuid4()), (running, uuid.uuid4()), (999_999, token)) == []
    assert (job(conn, dispatched)["status"], job(conn, running)["status"]) == ("dispatched", "running")
    assert finish(conn, "w1", {"id": running, "attempt": 1, "outcome": "succeeded"}) == [
        (running, "succeeded")
    ]
    assert handback(conn, "w1", (running, running_token)) == []
    assert (job(conn, running)["status"], job(conn, running)["attempts"]) == ("succeeded", 1)
    # A batch gives back exactly the deliveries that match.
    assert handback(conn, "w1", (dispatched, token), (running, running_token)) == [dispatched]
