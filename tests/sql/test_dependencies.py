"""depends_on job ids: validation at push, resolution when a dependency ends, and the push/finish race.

Covers _lzq_dependency_ids, _lzq_dependency_checks, _lzq_gate_on_dependencies, _lzq_insert_jobs and
_lzq_resolve_dependents through the functions that call them (lzq_push[_many], lzq_finish, lzq_cancel,
lzq_sweep). The random-DAG property and the 10,000-job graphs live in test_dependency_model.py and
test_dependency_scale.py.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from tests.sql.helpers import (
    claim,
    count_jobs,
    finish,
    job,
    notifications_until_sentinel,
    push,
    push_many,
    raises_invalid,
    running_job,
    seconds_from_now,
    start,
    sweep,
    wait_until_blocked,
    wait_until_done_or_blocked,
)


def report(job_id, outcome, attempt=1, **extra):
    return {"id": job_id, "attempt": attempt, "outcome": outcome, **extra}


def succeed(conn, *job_ids, worker_id="w1"):
    """Report running jobs of `worker_id` succeeded, in one lzq_finish call."""
    rows = finish(conn, worker_id, *(report(i, "succeeded") for i in job_ids))
    assert sorted(rows) == sorted((i, "succeeded") for i in job_ids)


def dependency_rows(conn, job_id):
    return [
        r[0]
        for r in conn.execute(
            "SELECT depends_on FROM lzq_dependencies WHERE job_id = %s ORDER BY depends_on", (job_id,)
        )
    ]


def state(conn, job_id):
    row = job(conn, job_id)
    return row["status"], row["unmet_deps"], row["last_error"]


# -- validation ---------------------------------------------------------------------------------------


def test_push_rejects_unknown_job_id_in_depends_on_and_writes_nothing(conn):
    parent = push(conn, "parent")
    with raises_invalid("depends_on", message="unknown job id 999999"):
        push(conn, "child", depends_on=[parent, 999999])
    # Unknown even when the rest is fine, or hidden behind a check reference.
    with raises_invalid("depends_on", message="unknown job id 424242"):
        push(conn, "child", depends_on=["#is_ready_to_run", 424242])
    assert count_jobs(conn) == 1
    assert conn.execute("SELECT count(*) FROM lzq_dependencies").fetchone()[0] == 0


def test_push_rejects_depends_on_that_is_not_a_list(conn):
    for value in ({"id": 1}, 5, "#is_ready_to_run", True):
        with raises_invalid("depends_on", message="must be a list", case=value):
            push(conn, depends_on=value)
    assert count_jobs(conn) == 0


def test_push_rejects_job_ids_that_are_not_positive_integers_and_elements_of_other_types(conn):
    parent = push(conn, "parent")
    for bad in (0, -1, 1.5, 2**63):
        with raises_invalid("depends_on", message="job ids must be positive integers", case=bad):
            push(conn, depends_on=[parent, bad])
    for bad in (True, False, {}, [parent], None):
        with raises_invalid("depends_on", message='must hold job ids and "#check" strings', case=bad):
            push(conn, depends_on=[parent, bad])
    assert count_jobs(conn) == 1


def test_push_rejects_malformed_check_references(conn):
    for bad in ("#", "noHash", "#_private", "a#b c", "#1abc", "a#b#c", "", "#method!", "x" * 256 + "#m"):
        with raises_invalid("depends_on", message="is not a check reference", case=bad):
            push(conn, depends_on=[bad])
    assert count_jobs(conn) == 0


def test_push_accepts_every_check_reference_form(conn):
    refs = ["#is_ready_to_run", "pkg.module.Class#method", "service#method2", "x" * 255 + "#m"]
    row = job(conn, push(conn, depends_on=refs))
    assert (row["status"], row["checks"], row["unmet_deps"]) == ("waiting", refs, 0)


def test_push_collapses_duplicate_ids_and_checks_keeping_first_order(conn):
    first, second = push(conn, "first"), push(conn, "second")
    child = push(conn, depends_on=[second, "#b", first, second, "#a", "#b", first])
    row = job(conn, child)
    assert (row["status"], row["unmet_deps"], row["checks"]) == ("waiting", 2, ["#b", "#a"])
    assert dependency_rows(conn, child) == [first, second]


def test_push_with_empty_or_null_depends_on_is_ready(conn):
    for value in ([], None):
        row = job(conn, push(conn, depends_on=value))
        assert (row["status"], row["unmet_deps"], row["checks"]) == ("ready", 0, [])


def test_push_mixing_ids_and_checks_waits_on_the_ids_first_then_the_checks(conn):
    parent, _ = running_job(conn, "w1", "parent")
    child = push(conn, "child", depends_on=[parent, "#is_ready_to_run", "svc#warm"])
    row = job(conn, child)
    assert (row["status"], row["unmet_deps"], row["checks"]) == (
        "waiting",
        1,
        ["#is_ready_to_run", "svc#warm"],
    )
    # The checks are not due while a dependency is unmet.
    assert conn.execute("SELECT * FROM lzq_checks_due(10)").fetchall() == []
    succeed(conn, parent)
    row = job(conn, child)
    assert (row["status"], row["unmet_deps"], row["checks"]) == (
        "waiting",
        0,
        ["#is_ready_to_run", "svc#warm"],
    )
    assert [r[0] for r in conn.execute("SELECT * FROM lzq_checks_due(10)")] == [child]


def test_push_depending_only_on_succeeded_jobs_is_ready_at_once(conn):
    parent, _ = running_job(conn, "w1", "parent")
    succeed(conn, parent)
    child = push(conn, "child", depends_on=[parent])
    assert state(conn, child) == ("ready", 0, None)
    # The dependency is still recorded; a succeeded job never counts again.
    assert dependency_rows(conn, child) == [parent]


def test_push_depending_on_a_failed_or_cancelled_job_is_created_cancelled_naming_it(conn):
    failed, _ = running_job(conn, "w1", "failed")
    assert finish(conn, "w1", report(failed, "failed", error="boom")) == [(failed, "failed")]
    cancelled = push(conn, "cancelled")
    assert conn.execute("SELECT lzq_cancel(%s)", (cancelled,)).fetchone()[0] is True
    pending = push(conn, "pending")

    on_failed = push(conn, depends_on=[failed])
    on_cancelled = push(conn, depends_on=[pending, cancelled, "#check"])
    on_both = push(conn, depends_on=[cancelled, failed])
    assert state(conn, on_failed)[::2] == ("cancelled", f"cancelled: dependency {failed} failed")
    assert state(conn, on_cancelled)[::2] == ("cancelled", f"cancelled: dependency {cancelled} cancelled")
    assert state(conn, on_both)[::2] == ("cancelled", f"cancelled: dependency {failed} failed")  # lowest id
    assert all(job(conn, i)["finished_at"] is not None for i in (on_failed, on_cancelled, on_both))


def test_push_many_attaches_dependencies_on_jobs_that_existed_before(conn):
    first, second = push(conn, "first"), push(conn, "second")
    ids = push_many(
        conn,
        [
            {"job_name": "a", "job_options": {"depends_on": [first]}},
            {"job_name": "b"},
            {"job_name": "c", "job_options": {"depends_on": [second, first, "#ok"]}},
        ],
    )
    assert [state(conn, i)[:2] for i in ids] == [("waiting", 1), ("ready", 0), ("waiting", 2)]
    assert [dependency_rows(conn, i) for i in ids] == [[first], [], [first, second]]
    assert job(conn, ids[2])["checks"] == ["#ok"]


def test_push_many_names_the_element_whose_depends_on_is_bad_and_writes_nothing(conn):
    parent = push(conn, "parent")
    good = {"job_name": "ok", "job_options": {"depends_on": [parent]}}
    cases = [
        [good, {"job_name": "x", "job_options": {"depends_on": [parent, 999999]}}],
        [good, good, {"job_name": "x", "job_options": {"depends_on": [0]}}],
        [{"job_name": "x", "job_options": {"depends_on": "nope"}}],
        [good, {"job_name": "x", "job_options": {"depends_on": ["noHash"]}}],
    ]
    for jobs in cases:
        index = len(jobs) - 1
        with raises_invalid(f"jobs[{index}].depends_on", prefix=f"jobs[{index}]: depends_on: ", case=jobs):
            push_many(conn, jobs)
    assert count_jobs(conn) == 1
    assert conn.execute("SELECT count(*) FROM lzq_dependencies").fetchone()[0] == 0


def test_dependency_rows_must_point_to_an_older_job_whoever_writes_them(conn):
    older, newer = push(conn, "older"), push(conn, "newer")
    for job_id, depends_on in ((older, newer), (newer, newer)):
        with pytest.raises(psycopg.errors.CheckViolation) as excinfo:
            conn.execute(
                "INSERT INTO lzq_dependencies (job_id, depends_on) VALUES (%s, %s)", (job_id, depends_on)
            )
        assert excinfo.value.sqlstate == "23514"
        assert excinfo.value.diag.constraint_name == "lzq_dependencies_acyclic"
    conn.execute("INSERT INTO lzq_dependencies (job_id, depends_on) VALUES (%s, %s)", (newer, older))


# -- resolution ---------------------------------------------------------------------------------------


def test_each_succeeded_dependency_decrements_unmet_and_the_last_one_readies_the_job(conn):
    parents = [running_job(conn, "w1", f"p{i}")[0] for i in range(3)]
    child = push(conn, "child", depends_on=parents)
    assert state(conn, child) == ("waiting", 3, None)
    succeed(conn, parents[1])
    assert state(conn, child) == ("waiting", 2, None)
    # Two dependencies finishing in one report batch count as two.
    succeed(conn, parents[0], parents[2])
    row = job(conn, child)
    assert (row["status"], row["unmet_deps"], row["check_at"], row["finished_at"]) == ("ready", 0, None, None)
    assert [r[0] for r in claim(conn)] == [child]


def test_released_dependent_with_a_future_start_time_is_scheduled_at_it(conn):
    parent, _ = running_job(conn, "w1", "parent")
    child = push(conn, "child", depends_on=[parent], start_time="+1 hour")
    # Its dependencies gate it first: it waits, not scheduled, while they are unmet.
    assert state(conn, child) == ("waiting", 1, None)
    with conn.transaction():
        succeed(conn, parent)
        assert state(conn, child) == ("scheduled", 0, None)
        assert round(seconds_from_now(conn, child)) == 3600
    # Once its start time passed while waiting, it is ready as soon as released.
    parent, _ = running_job(conn, "w1", "parent")
    late = push(conn, "late", depends_on=[parent], start_time="+1 hour")
    conn.execute("UPDATE lzq_jobs SET run_at = now() - interval '1 second' WHERE id = %s", (late,))
    succeed(conn, parent)
    assert state(conn, late) == ("ready", 0, None)


def test_released_dependent_with_checks_waits_on_them_with_check_at_set(conn):
    parent, _ = running_job(conn, "w1", "parent")
    child = push(conn, "child", depends_on=[parent, "#is_ready_to_run"])
    later = push(conn, "later", depends_on=[parent, "#is_ready_to_run"], start_time="+1 hour")
    with conn.transaction():
        succeed(conn, parent)
        row = job(conn, child)
        assert (row["status"], row["unmet_deps"], row["checks"]) == ("waiting", 0, ["#is_ready_to_run"])
        assert seconds_from_now(conn, child, "check_at") == 0
        # With a start time ahead it is scheduled first; its checks are due from its start time.
        row = job(conn, later)
        assert (row["status"], row["check_at"]) == ("scheduled", row["run_at"])


def test_release_wakes_a_sleeping_superqueuer_for_the_dependents_queue(conn, listener):
    parent, _ = running_job(conn, "w1", "parent", queue_name="emails")
    push(conn, "child", depends_on=[parent], queue_name="reports")
    conn.execute("SELECT lzq_superqueuer_idle('sq1', true)")
    notifications_until_sentinel(listener, conn)
    succeed(conn, parent)
    # The dependent is ready work in its queue; the parent's queue only got a slot back.
    assert sorted(notifications_until_sentinel(listener, conn)) == ["\x1femails", "reports"]


def test_failure_cancels_dependents_transitively_naming_each_ones_own_dependency(conn):
    root, _ = running_job(conn, "w1", "root", max_failures=1)
    other, _ = running_job(conn, "w1", "other")
    child = push(conn, "child", depends_on=[root])
    grandchild = push(conn, "grandchild", depends_on=[other, child])
    great = push(conn, "great", depends_on=[grandchild, "#check"])
    both = push(conn, "both", depends_on=[root, child])
    bystander = push(conn, "bystander", depends_on=[other])
    assert finish(conn, "w1", report(root, "failed", error="boom")) == [(root, "failed")]
    assert state(conn, child) == ("cancelled", 1, f"cancelled: dependency {root} failed")
    assert state(conn, grandchild) == ("cancelled", 2, f"cancelled: dependency {child} cancelled")
    assert state(conn, great) == ("cancelled", 1, f"cancelled: dependency {grandchild} cancelled")
    assert state(conn, both) == ("cancelled", 2, f"cancelled: dependency {root} failed")
    assert all(job(conn, i)["finished_at"] is not None for i in (child, grandchild, great, both))
    # Dependents of other jobs are untouched; the cancelled ones are no longer counted on.
    assert state(conn, bystander) == ("waiting", 1, None)
    succeed(conn, other)
    assert state(conn, bystander) == ("ready", 0, None)
    assert state(conn, grandchild)[0] == "cancelled"


def test_retries_running_out_fail_the_job_and_cancel_its_dependents(conn):
    parent, _ = running_job(conn, "w1", "parent", max_failures=1)
    child = push(conn, "child", depends_on=[parent])
    assert finish(conn, "w1", report(parent, "retry", error="flaky")) == [(parent, "failed")]
    assert state(conn, child) == ("cancelled", 1, f"cancelled: dependency {parent} failed")


def test_user_cancel_cascades_to_waiting_dependents_transitively(conn):
    root = push(conn, "root")
    child = push(conn, "child", depends_on=[root])
    grandchild = push(conn, "grandchild", depends_on=[child])
    assert conn.execute("SELECT lzq_cancel(%s)", (child,)).fetchone()[0] is True
    assert state(conn, grandchild) == ("cancelled", 1, f"cancelled: dependency {child} cancelled")
    assert state(conn, root)[0] == "ready"
    # Cancelling the root now reaches nothing still waiting.
    assert conn.execute("SELECT lzq_cancel(%s)", (root,)).fetchone()[0] is True
    assert job(conn, child)["last_error"] is None
    assert state(conn, grandchild)[2] == f"cancelled: dependency {child} cancelled"


def test_a_retry_does_not_release_dependents_but_the_later_success_does(conn):
    parent, _ = running_job(conn, "w1", "parent")
    child = push(conn, "child", depends_on=[parent])
    assert finish(conn, "w1", report(parent, "retry", retry_delay_s=0)) == [(parent, "ready")]
    assert state(conn, child) == ("waiting", 1, None)
    ((_, token, _),) = claim(conn)
    assert [r["attempt"] for r in start(conn, "w1", (parent, token))] == [2]
    assert finish(conn, "w1", report(parent, "retry", attempt=2, retry_delay_s=60)) == [(parent, "scheduled")]
    assert state(conn, child) == ("waiting", 1, None)
    conn.execute("UPDATE lzq_jobs SET run_at = now() WHERE id = %s", (parent,))
    conn.execute("SELECT * FROM lzq_promote(10)")
    ((_, token, _),) = claim(conn)
    assert [r["attempt"] for r in start(conn, "w1", (parent, token))] == [3]
    assert finish(conn, "w1", report(parent, "succeeded", attempt=3)) == [(parent, "succeeded")]
    assert state(conn, child) == ("ready", 0, None)


def test_sweep_failing_a_job_of_a_dead_worker_cancels_its_dependents(conn):
    spent, _ = running_job(conn, "w1", "spent", max_failures=1)
    retried, _ = running_job(conn, "w1", "retried", max_failures=2)
    on_spent = push(conn, "on_spent", depends_on=[spent])
    on_retried = push(conn, "on_retried", depends_on=[retried])
    conn.execute("UPDATE lzq_workers SET heartbeat_at = now() - interval '1 hour' WHERE worker_id = 'w1'")
    assert sorted(sweep(conn)) == sorted([(spent, "running", "failed"), (retried, "running", "ready")])
    assert state(conn, on_spent) == ("cancelled", 1, f"cancelled: dependency {spent} failed")
    assert state(conn, on_retried) == ("waiting", 1, None)


# -- the push/finish race -----------------------------------------------------------------------------
# A push reads its dependencies' statuses while their finish may be committing. The push locks them
# FOR SHARE, so one of the two waits for the other: the new job is never left waiting on a job that
# already ended.


@pytest.mark.parametrize(("outcome", "expected"), [("succeeded", "ready"), ("failed", "cancelled")])
def test_push_while_its_dependencys_finish_is_uncommitted_waits_and_sees_the_outcome(
    conn, connect, outcome, expected
):
    parent, _ = running_job(conn, "w1", "parent", max_failures=1)
    finisher = connect()
    assert finish(finisher, "w1", report(parent, outcome)) == [(parent, outcome)]
    pusher = connect(autocommit=True)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pushed = pool.submit(push, pusher, "child", depends_on=[parent])
        wait_until_blocked(conn, pusher)
        finisher.commit()
        child = pushed.result(timeout=10)
    last_error = f"cancelled: dependency {parent} failed" if expected == "cancelled" else None
    assert state(conn, child) == (expected, 0, last_error)


def test_push_many_while_its_dependencys_finish_is_uncommitted_waits_and_sees_the_outcome(conn, connect):
    parent, _ = running_job(conn, "w1", "parent")
    finisher = connect()
    succeed(finisher, parent)
    pusher = connect(autocommit=True)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pushed = pool.submit(push_many, pusher, [{"job_name": "c", "job_options": {"depends_on": [parent]}}])
        wait_until_blocked(conn, pusher)
        finisher.commit()
        (child,) = pushed.result(timeout=10)
    assert state(conn, child) == ("ready", 0, None)


@pytest.mark.parametrize(("outcome", "expected"), [("succeeded", "ready"), ("failed", "cancelled")])
def test_finish_while_a_dependent_push_is_uncommitted_waits_then_resolves_it(
    conn, connect, outcome, expected
):
    parent, _ = running_job(conn, "w1", "parent", max_failures=1)
    pusher = connect()
    child = push(pusher, "child", depends_on=[parent])
    assert state(pusher, child) == ("waiting", 1, None)
    finisher = connect(autocommit=True)
    with ThreadPoolExecutor(max_workers=1) as pool:
        finished = pool.submit(finish, finisher, "w1", report(parent, outcome))
        wait_until_blocked(conn, finisher)
        pusher.commit()
        assert finished.result(timeout=10) == [(parent, outcome)]
    assert state(conn, child)[0] == expected


def test_concurrent_finishes_of_two_dependencies_of_one_job_both_count(conn, connect):
    first, _ = running_job(conn, "w1", "first")
    second, _ = running_job(conn, "w2", "second")
    child = push(conn, "child", depends_on=[first, second])
    one, two = connect(), connect(autocommit=True)
    succeed(one, first, worker_id="w1")
    with ThreadPoolExecutor(max_workers=1) as pool:
        finished = pool.submit(succeed, two, second, worker_id="w2")
        wait_until_blocked(conn, two)  # on the dependent's row, which one has updated
        one.commit()
        finished.result(timeout=10)
    assert state(conn, child) == ("ready", 0, None)


def test_a_push_and_a_batched_finish_of_its_dependencies_do_not_deadlock(conn, connect):
    first, _ = running_job(conn, "w1", "first")
    second, _ = running_job(conn, "w1", "second")
    # A producer's open transaction already pushed a job depending on `first` (it holds it FOR SHARE).
    producer = connect()
    push(producer, "earlier", depends_on=[first])
    finisher, pusher = connect(autocommit=True), connect(autocommit=True)
    with ThreadPoolExecutor(max_workers=2) as pool:
        # The worker reports `second` before `first`: the finish waits for the producer on `first`.
        finished = pool.submit(
            finish, finisher, "w1", report(second, "succeeded"), report(first, "succeeded")
        )
        wait_until_blocked(conn, finisher)
        pushed = pool.submit(push, pusher, "child", depends_on=[first, second])
        wait_until_done_or_blocked(conn, pusher, pushed)
        producer.commit()
        child = pushed.result(timeout=10)
        assert sorted(finished.result(timeout=10)) == [(first, "succeeded"), (second, "succeeded")]
    status, unmet, _ = state(conn, child)
    assert unmet == 0 and status != "waiting"


def test_a_dependent_pushed_while_the_finish_waits_comes_out_ready(conn, connect):
    parent, _ = running_job(conn, "w1", "parent")
    # A producer's open transaction pushed a job depending on `parent`: the finish waits for it.
    producer = connect()
    earlier = push(producer, "earlier", depends_on=[parent])
    finisher, pusher = connect(autocommit=True), connect(autocommit=True)
    with ThreadPoolExecutor(max_workers=1) as pool:
        finished = pool.submit(succeed, finisher, parent)
        wait_until_blocked(conn, finisher)
        # Meanwhile (after the finish began) another job is pushed depending on it, and committed.
        child = push(pusher, "child", depends_on=[parent])
        assert state(conn, child) == ("waiting", 1, None)
        producer.commit()
        finished.result(timeout=10)
    assert state(conn, earlier) == ("ready", 0, None)
    assert state(conn, child) == ("ready", 0, None)
