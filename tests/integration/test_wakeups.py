"""What wakes a sleeping superqueuer into a claim: work made ready, not a slot nobody waits for."""

from __future__ import annotations

import dataclasses
import time

from psycopg.types.json import Jsonb

from lzq import superqueuer as superqueuer_module
from lzq.config import Settings
from lzq.superqueuer import Superqueuer
from tests.conftest import wait_until
from tests.integration.helpers import running

# Long polling and sweep intervals: only NOTIFYs can explain what happens within a test.
QUIET = {"poll_interval_s": 3.0, "sweep_interval_s": 60.0, "worker_dead_after_s": 60}


def push(conn, name: str) -> int:
    return conn.execute("SELECT lzq_push(%s)", (name,)).fetchone()[0]


def status(conn, job_id: int) -> str:
    return conn.execute("SELECT status FROM lzq_jobs WHERE id = %s", (job_id,)).fetchone()[0]


def finish(conn, job_id: int) -> None:
    """What a worker does with a job assigned to it, as SQL: its success report."""
    conn.execute(
        "SELECT * FROM lzq_finish('w1', %s)", (Jsonb([{"id": job_id, "attempt": 1, "outcome": "succeeded"}]),)
    )


def counting_claims(superqueuer: Superqueuer) -> list[float]:
    """Note the time of every claim the superqueuer prepares (a spy on our own method)."""
    times: list[float] = []
    prepare = superqueuer._claim_statement

    def spied():
        times.append(time.monotonic())
        return prepare()

    superqueuer._claim_statement = spied
    return times


def test_a_slot_freed_while_nothing_is_ready_costs_no_claim(sql_worker, settings: Settings, conn):
    sql_worker("w1", slots=4)
    superqueuer = Superqueuer(dataclasses.replace(settings, **QUIET))
    claims = counting_claims(superqueuer)
    first = push(conn, "first")
    with running(superqueuer):
        wait_until(lambda: status(conn, first) == "running", 10, message="the first job assigned")
        wait_until(lambda: superqueuer._idle, 10, message="the superqueuer asleep")
        before = len(claims)
        finish(conn, first)  # NOTIFYs a freed slot: nothing is ready, so no pass
        time.sleep(0.5)
        assert len(claims) == before
        second = push(conn, "second")  # ready work: a pass and its claim at once
        wait_until(lambda: status(conn, second) == "running", 3, message="the second job assigned")
        assert len(claims) > before


def test_a_slot_freed_while_a_job_waits_for_credit_is_claimed_at_once(sql_worker, settings: Settings, conn):
    sql_worker("w1", slots=1)  # one slot, no margin
    superqueuer = Superqueuer(dataclasses.replace(settings, prefetch_margin="0", **QUIET))
    first, waiting = push(conn, "first"), push(conn, "waiting")
    with running(superqueuer):
        wait_until(lambda: status(conn, first) == "running", 10, message="the first job assigned")
        wait_until(lambda: superqueuer._idle, 10, message="the superqueuer asleep")
        assert status(conn, waiting) == "ready"  # no credit for it
        finish(conn, first)
        wait_until(lambda: status(conn, waiting) == "running", 3, message="the waiting job assigned")


def test_slots_freed_during_a_backlog_are_claimed_without_looking_each_time(
    sql_worker, settings: Settings, conn
):
    sql_worker("w1", slots=1)  # one slot, no margin
    superqueuer = Superqueuer(dataclasses.replace(settings, prefetch_margin="0", **QUIET))
    looks = []
    fetch = superqueuer._fetch

    def spied(sql, params):
        if sql == superqueuer_module._READY_LEFT:
            looks.append(sql)
        return fetch(sql, params)

    superqueuer._fetch = spied
    jobs = [push(conn, f"job{i}") for i in range(5)]
    with running(superqueuer):
        for job_id in jobs:
            wait_until(lambda j=job_id: status(conn, j) == "running", 10, message=f"job {job_id} assigned")
            finish(conn, job_id)  # frees the one slot: the next job waits for it
        wait_until(lambda: superqueuer._idle, 10, message="the superqueuer asleep")
    # The first freed slot is looked into; the next three go straight to a claim, which finds the
    # backlog still there; the last finds it empty (one more look, none after).
    assert len(looks) <= 2, looks


def test_the_look_for_ready_jobs_uses_the_dispatch_index_whatever_the_statistics_say(conn):
    # Statistics from a backlog (every job ready), then the backlog drained: the look that decides
    # whether a freed slot is worth a pass must not scan the table for the ready jobs it believes in.
    conn.execute(
        "INSERT INTO lzq_jobs (job_name, fairness_key, status, vtag)"
        " SELECT 'noop', 'noop', 'ready', g FROM generate_series(1, 5000) AS g"
    )
    conn.execute("ANALYZE lzq_jobs")
    conn.execute("UPDATE lzq_jobs SET status = 'succeeded', finished_at = now()")
    plan = "\n".join(row[0] for row in conn.execute("EXPLAIN " + superqueuer_module._READY_LEFT))
    assert "lzq_jobs_dispatch_idx" in plan and "Seq Scan" not in plan, plan
