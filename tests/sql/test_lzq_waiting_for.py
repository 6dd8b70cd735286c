"""lzq_waiting_for(job): why a waiting job waits, in words (dependencies, limit, checks); NULL otherwise."""

from __future__ import annotations

from tests.sql.helpers import checks_done, claim, finish, heartbeat, limited_job, push, running_job


def waiting_for(conn, job_id):
    return conn.execute("SELECT lzq_waiting_for(j) FROM lzq_jobs AS j WHERE j.id = %s", (job_id,)).fetchone()[
        0
    ]


def test_waiting_for_lists_unmet_dependencies_in_id_order(conn):
    done, _ = running_job(conn, "w1", "done")
    assert finish(conn, "w1", {"id": done, "attempt": 1, "outcome": "succeeded"}) == [(done, "succeeded")]
    first, second = push(conn, "first"), push(conn, "second")
    child = push(conn, "child", depends_on=[second, done, first, "#is_ready_to_run"])
    # The succeeded dependency is not listed; the checks come after the dependencies.
    assert waiting_for(conn, child) == f"dependencies: 2 unmet ({first}, {second})"


def test_waiting_for_lists_at_most_five_unmet_dependencies_then_an_ellipsis(conn):
    parents = [push(conn, f"p{i}") for i in range(7)]
    five = push(conn, "five", depends_on=parents[:5])
    six = push(conn, "six", depends_on=list(reversed(parents[:6])))
    seven = push(conn, "seven", depends_on=parents)
    listed = ", ".join(str(p) for p in parents[:5])
    assert waiting_for(conn, five) == f"dependencies: 5 unmet ({listed})"
    assert waiting_for(conn, six) == f"dependencies: 6 unmet ({listed}, ...)"
    assert waiting_for(conn, seven) == f"dependencies: 7 unmet ({listed}, ...)"


def test_waiting_for_names_the_full_limit(conn):
    heartbeat(conn, "w1", slots=10)
    key = 'pkg.Mailer|{"bucket":"b1"}'
    holder = limited_job(conn, [{"key": key, "count": 1}], "holder")
    parked = limited_job(conn, [{"key": key, "count": 1}], "parked")
    assert [r[0] for r in claim(conn)] == [holder]
    assert waiting_for(conn, parked) == f"limit: every slot of {key} is taken"


def test_waiting_for_names_pending_checks_and_how_often_they_were_evaluated(conn):
    job_id = push(conn, "job", depends_on=["#is_ready_to_run", "svc#warm"])
    assert waiting_for(conn, job_id) == "check: #is_ready_to_run, svc#warm not met yet (0 evaluations)"
    checks_done(conn, {"id": job_id, "outcome": "not_ready"})
    checks_done(conn, {"id": job_id, "outcome": "not_ready"})
    assert waiting_for(conn, job_id) == "check: #is_ready_to_run, svc#warm not met yet (2 evaluations)"


def test_waiting_for_is_null_unless_the_job_waits(conn):
    running, _ = running_job(conn, "w1", "running")
    done, _ = running_job(conn, "w1", "done")
    finish(conn, "w1", {"id": done, "attempt": 1, "outcome": "succeeded"})
    dispatched = push(conn, "dispatched")
    assert [r[0] for r in claim(conn)] == [dispatched]
    ready = push(conn, "ready")
    scheduled = push(conn, "scheduled", depends_on=["#is_ready_to_run"], start_time="+1 hour")
    passed = push(conn, "passed", depends_on=["#is_ready_to_run"])
    checks_done(conn, {"id": passed, "outcome": "passed"})
    cancelled = push(conn, "cancelled", depends_on=[ready])
    conn.execute("SELECT lzq_cancel(%s)", (cancelled,))
    for job_id in (running, dispatched, ready, scheduled, passed, cancelled, done):
        assert waiting_for(conn, job_id) is None, job_id


def test_waiting_for_follows_the_job_through_its_gates(conn):
    heartbeat(conn, "w1", slots=10)
    blocker = limited_job(conn, [{"key": "K", "count": 1}], "blocker")
    assert [r[0] for r in claim(conn)] == [blocker]
    parent, _ = running_job(conn, "w1", "parent")
    child = push(conn, "child", depends_on=[parent, "#is_ready_to_run"])
    assert waiting_for(conn, child) == f"dependencies: 1 unmet ({parent})"
    finish(conn, "w1", {"id": parent, "attempt": 1, "outcome": "succeeded"})
    assert waiting_for(conn, child) == "check: #is_ready_to_run not met yet (0 evaluations)"
    checks_done(conn, {"id": child, "outcome": "passed", "limits": [{"key": "K", "count": 1}]})
    assert waiting_for(conn, child) is None
    assert claim(conn) == []
    assert waiting_for(conn, child) == "limit: every slot of K is taken"
