"""lzq_prune: final jobs and buffer records older than the retention go, oldest first, in batches;
nothing that waits, runs or marks a recurring slot goes, and the hot path is never waited for.

Jobs are made final the way the daemons do it (lzq_finish, lzq_cancel); their age is then moved back
(finished_at, inserted_at) instead of waiting for it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from psycopg.types.json import Jsonb

from lzq.maintenance import PRUNE_UNLESS_BUSY
from tests.sql.helpers import (
    dispatched_job,
    finish,
    job,
    push,
    raises_invalid,
    running_job,
    sweep,
    wait_until_blocked,
    wait_until_done_or_blocked,
)
from tests.sql.test_lzq_recur import BASE, complete_run, pending, recur, recur_run, the_pending_run, travel

FINAL = ("succeeded", "failed", "cancelled")


def prune(conn, older_than="1 day", max_jobs=None) -> int:
    """lzq_prune as a plain-SQL user calls it -> rows deleted."""
    if max_jobs is None:
        return conn.execute("SELECT lzq_prune(%s)", (older_than,)).fetchone()[0]
    return conn.execute("SELECT lzq_prune(%s, max_jobs => %s)", (older_than, max_jobs)).fetchone()[0]


def age(conn, *job_ids: int, by: str = "2 days") -> None:
    """As if the jobs had finished `by` earlier than they did."""
    conn.execute(
        "UPDATE lzq_jobs SET finished_at = finished_at - %s::interval WHERE id = ANY (%s)",
        (by, list(job_ids)),
    )


def exists(conn, job_id: int) -> bool:
    return conn.execute("SELECT EXISTS (SELECT 1 FROM lzq_jobs WHERE id = %s)", (job_id,)).fetchone()[0]


def remaining(conn, *job_ids: int) -> list[int]:
    return [j for j in job_ids if exists(conn, j)]


def succeeded_job(conn, job_name: str = "job", **options) -> int:
    job_id, _ = running_job(conn, "w1", job_name, **options)
    assert finish(conn, "w1", {"id": job_id, "attempt": 1, "outcome": "succeeded"}) == [(job_id, "succeeded")]
    return job_id


def failed_job(conn, job_name: str = "job") -> int:
    job_id, _ = running_job(conn, "w1", job_name)
    assert finish(conn, "w1", {"id": job_id, "attempt": 1, "outcome": "failed"}) == [(job_id, "failed")]
    return job_id


def cancelled_job(conn, job_name: str = "job", **options) -> int:
    job_id = push(conn, job_name, **options)
    assert conn.execute("SELECT lzq_cancel(%s)", (job_id,)).fetchone()[0] is True
    return job_id


def dependencies(conn) -> list[tuple[int, int]]:
    return conn.execute("SELECT job_id, depends_on FROM lzq_dependencies ORDER BY 1, 2").fetchall()


def buffered(conn, *pushes: dict) -> list[tuple]:
    """lzq_push_buffered rows: (uuid, job_id, outcome)."""
    rows = conn.execute("SELECT uuid, job_id, outcome FROM lzq_push_buffered(%s)", (Jsonb(list(pushes)),))
    return [(str(u), job_id, outcome) for u, job_id, outcome in rows.fetchall()]


def a_push(**options) -> dict:
    return {"uuid": str(uuid.uuid4()), "job_name": "job", "job_params": {}, "job_options": options}


def records(conn) -> set[str]:
    return {str(r[0]) for r in conn.execute("SELECT uuid FROM lzq_buffered").fetchall()}


# -- what goes and what stays ---------------------------------------------------------------------


def test_prune_deletes_final_jobs_finished_before_the_cutoff_and_returns_how_many(conn):
    old = [succeeded_job(conn), failed_job(conn), cancelled_job(conn)]
    recent = [succeeded_job(conn), failed_job(conn), cancelled_job(conn)]
    age(conn, *old, by="25 hours")
    assert [job(conn, j)["status"] for j in old] == list(FINAL)

    assert prune(conn, "1 day") == 3
    assert remaining(conn, *old, *recent) == recent
    assert prune(conn, "1 day") == 0
    # '0' keeps nothing that is final.
    assert prune(conn, "0") == 3
    assert remaining(conn, *recent) == []


def test_prune_never_deletes_a_job_that_is_not_final_however_old(conn):
    running, _ = running_job(conn, "w1")
    dispatched, _ = dispatched_job(conn, "w2")
    ready = push(conn)
    scheduled = push(conn, start_time="+1 hour")
    waiting = push(conn, depends_on=[running])
    not_final = [waiting, scheduled, ready, dispatched, running]
    assert [job(conn, j)["status"] for j in not_final] == [
        "waiting",
        "scheduled",
        "ready",
        "dispatched",
        "running",
    ]
    # Old by every clock, even one a retry left behind: only the status decides.
    conn.execute(
        """UPDATE lzq_jobs SET created_at = now() - interval '1 year', started_at = now() - interval '1 year',
                               finished_at = now() - interval '1 year'""",
    )

    assert prune(conn, "0") == 0
    assert remaining(conn, *not_final) == not_final


def test_prune_takes_at_most_max_jobs_per_call_oldest_first(conn):
    jobs = [succeeded_job(conn) for _ in range(5)]
    for days, job_id in zip((3, 5, 2, 6, 4), jobs, strict=True):
        age(conn, job_id, by=f"{days} days")
    by_age = [jobs[3], jobs[1], jobs[4], jobs[0], jobs[2]]  # finished 6, 5, 4, 3, 2 days ago

    assert prune(conn, "1 day", max_jobs=2) == 2
    assert remaining(conn, *by_age) == by_age[2:]
    assert prune(conn, "1 day", max_jobs=2) == 2
    assert remaining(conn, *by_age) == by_age[4:]
    assert prune(conn, "1 day", max_jobs=2) == 1


# -- references ------------------------------------------------------------------------------------


def test_pruning_a_succeeded_parent_leaves_its_waiting_dependent_counting_the_rest(conn):
    parent = succeeded_job(conn, "parent")
    other, _ = running_job(conn, "w1", "other")
    child = push(conn, "child", depends_on=[parent, other])
    assert (job(conn, child)["status"], job(conn, child)["unmet_deps"]) == ("waiting", 1)
    age(conn, parent)

    assert prune(conn) == 1
    assert dependencies(conn) == [(child, other)]
    assert (job(conn, child)["status"], job(conn, child)["unmet_deps"]) == ("waiting", 1)
    assert conn.execute("SELECT lzq_waiting_for(j) FROM lzq_jobs AS j WHERE id = %s", (child,)).fetchone()[
        0
    ] == (f"dependencies: 1 unmet ({other})")
    # Its last dependency still releases it.
    assert finish(conn, "w1", {"id": other, "attempt": 1, "outcome": "succeeded"}) == [(other, "succeeded")]
    assert job(conn, child)["status"] == "ready"


def test_pruning_a_failed_chain_takes_its_cancelled_dependents_and_their_rows(conn):
    parent, _ = running_job(conn, "w1", "parent")
    child = push(conn, "child", depends_on=[parent])
    grandchild = push(conn, "grandchild", depends_on=[child])
    assert finish(conn, "w1", {"id": parent, "attempt": 1, "outcome": "failed"}) == [(parent, "failed")]
    assert [job(conn, j)["status"] for j in (child, grandchild)] == ["cancelled", "cancelled"]
    age(conn, parent, child)  # the grandchild is younger than the retention: it stays, alone

    assert prune(conn) == 2
    assert remaining(conn, parent, child, grandchild) == [grandchild]
    assert dependencies(conn) == []
    assert job(conn, grandchild)["last_error"] == f"cancelled: dependency {child} cancelled"


def test_a_push_depending_on_a_pruned_job_names_it_as_unknown(conn):
    parent = succeeded_job(conn, "parent")
    age(conn, parent)
    assert prune(conn) == 1

    with raises_invalid("depends_on", message=f"unknown job id {parent}"):
        push(conn, "child", depends_on=[parent])


def test_prune_keeps_a_recurring_jobs_latest_run_and_the_future_slot_a_cancel_skipped(conn):
    rid = recur(conn, interval="01:00:00", base_time=BASE)
    first = the_pending_run(conn, rid)["id"]
    complete_run(conn, first)
    second = the_pending_run(conn, rid)["id"]
    complete_run(conn, second)
    third = the_pending_run(conn, rid)
    assert conn.execute("SELECT lzq_cancel(%s)", (third["id"],)).fetchone()[0] is True
    age(conn, first, second, third["id"], by="1 year")

    # The completed runs' slots are past and later runs exist: they go. The cancelled run's slot is
    # ahead; deleting it would let the sweep fill a slot that was cancelled.
    assert prune(conn, "1 day") == 2
    assert remaining(conn, first, second, third["id"]) == [third["id"]]
    assert recur_run(conn, rid, third["recur_slot"]) is None
    assert sweep(conn) == [] and pending(conn, rid) == []

    # Once its slot has passed, it is still the definition's latest run (the sweep times a plain
    # interval from the last completion): kept until a later run exists.
    travel(
        conn, rid, third["recur_slot"] - conn.execute("SELECT now()").fetchone()[0] + dt.timedelta(minutes=1)
    )
    assert prune(conn, "1 day") == 0
    sweep(conn)
    later = the_pending_run(conn, rid)
    assert later["recur_slot"] > job(conn, third["id"])["recur_slot"]
    assert prune(conn, "1 day") == 1
    assert remaining(conn, third["id"], later["id"]) == [later["id"]]


def test_prune_deletes_buffer_records_older_than_the_cutoff_so_the_window_ends_there(conn):
    old_ok, old_bad, fresh = a_push(), a_push(priority=99), a_push()
    rows = buffered(conn, old_ok, old_bad, fresh)
    assert [r[2] for r in rows] == ["inserted", "rejected", "inserted"]
    conn.execute(
        "UPDATE lzq_buffered SET inserted_at = now() - interval '2 days' WHERE uuid = ANY (%s::uuid[])",
        ([old_ok["uuid"], old_bad["uuid"]],),
    )

    assert prune(conn, "1 day") == 2  # the two records; their jobs are ready, not final
    assert records(conn) == {fresh["uuid"]}
    assert remaining(conn, rows[0][1], rows[2][1]) == [rows[0][1], rows[2][1]]
    # Within the window a redelivery writes nothing; past it, the uuid is new again.
    assert buffered(conn, fresh)[0][2] == "duplicate"
    assert buffered(conn, old_ok)[0][2] == "inserted"


def test_max_jobs_bounds_jobs_and_buffer_records_together_jobs_first(conn):
    jobs = [succeeded_job(conn) for _ in range(2)]
    age(conn, *jobs)
    pushes = [a_push(), a_push()]
    buffered(conn, *pushes)
    conn.execute("UPDATE lzq_buffered SET inserted_at = now() - interval '2 days'")

    assert prune(conn, "1 day", max_jobs=3) == 3
    assert remaining(conn, *jobs) == [] and len(records(conn)) == 1
    assert prune(conn, "1 day", max_jobs=3) == 1
    assert records(conn) == set()


# -- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("older_than", "max_jobs", "field"),
    [
        pytest.param(None, 10, "older_than", id="older-than-null"),
        pytest.param("-1 second", 10, "older_than", id="older-than-negative"),
        pytest.param("1 day -25 hours", 10, "older_than", id="older-than-negative-in-sum"),
        pytest.param("1 day", 0, "max_jobs", id="max-jobs-zero"),
        pytest.param("1 day", -5, "max_jobs", id="max-jobs-negative"),
        pytest.param("1 day", None, "max_jobs", id="max-jobs-null"),
    ],
)
def test_prune_rejects_bad_input_naming_the_field_and_deletes_nothing(conn, older_than, max_jobs, field):
    old = succeeded_job(conn)
    age(conn, old)
    with raises_invalid(field):
        conn.execute("SELECT lzq_prune(%s::interval, %s::integer)", (older_than, max_jobs))
    assert exists(conn, old)


# -- concurrency: two sessions, interleaved by hand -----------------------------------------------------


def test_prune_skips_a_job_another_session_holds_instead_of_waiting(conn, connect):
    held, free = succeeded_job(conn), succeeded_job(conn)
    age(conn, held, free)
    # As a push depending on it holds it until it commits (FOR SHARE).
    other = connect()
    other.execute("SELECT 1 FROM lzq_jobs WHERE id = %s FOR SHARE", (held,))
    pruner = connect(autocommit=True)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pruned = pool.submit(prune, pruner)
        assert wait_until_done_or_blocked(conn, pruner, pruned) is False
        assert pruned.result(timeout=10) == 1
    assert remaining(conn, held, free) == [held]
    other.commit()
    assert prune(conn) == 1
    assert remaining(conn, held) == []


def test_a_push_that_depends_on_an_old_job_keeps_it_from_a_concurrent_prune(conn, connect):
    parent = succeeded_job(conn, "parent")
    age(conn, parent)
    pusher = connect()
    child = push(pusher, "child", depends_on=[parent])  # uncommitted: holds the parent FOR SHARE
    conn.execute("SET statement_timeout = '5s'")  # a prune that waited would fail, not hang
    assert prune(conn) == 0
    pusher.commit()
    assert dependencies(conn) == [(child, parent)]
    assert job(conn, child)["status"] == "ready"
    # A later prune takes the parent and its row; the child, ready already, is not affected.
    assert prune(conn) == 1
    assert dependencies(conn) == [] and job(conn, child)["status"] == "ready"


def test_a_push_waits_for_an_uncommitted_prune_of_its_dependency_then_finds_it_gone(conn, connect):
    parent = succeeded_job(conn, "parent")
    age(conn, parent)
    pruner = connect()
    assert prune(pruner) == 1
    pusher = connect(autocommit=True)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pushed = pool.submit(push, pusher, "child", depends_on=[parent])
        wait_until_blocked(conn, pusher)
        pruner.commit()
        with raises_invalid("depends_on", message=f"unknown job id {parent}"):
            pushed.result(timeout=10)


def test_pruners_take_turns_and_the_superqueuers_try_skips_a_busy_turn(conn, connect):
    jobs = [succeeded_job(conn) for _ in range(3)]
    age(conn, *jobs)
    first = connect()
    assert prune(first, max_jobs=1) == 1  # uncommitted: holds the pruners' advisory lock
    # The superqueuer's statement returns NULL at once instead of waiting in the claim loop...
    assert conn.execute(PRUNE_UNLESS_BUSY, ("1 day", 10)).fetchone()[0] is None
    # ...while a second `lzq prune` (or plain SQL) waits for its turn, then takes what is left.
    second = connect(autocommit=True)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pruned = pool.submit(prune, second)
        wait_until_blocked(conn, second)
        first.commit()
        assert pruned.result(timeout=10) == 2
    assert remaining(conn, *jobs) == []
    assert conn.execute(PRUNE_UNLESS_BUSY, ("1 day", 10)).fetchone()[0] == 0
