"""Readiness checks: lzq_checks_due leases due ones, lzq_checks_done records what the superqueuer found.

A job pushed with "#method" references waits (after its dependencies and start time) until the
superqueuer's evaluation passes; not_ready backs off (0.5 s doubling to 30 s) and is re-woken when a
job of the same class finishes; invalid fails the job. Times are moved by updating rows, never slept.
"""

from __future__ import annotations

from psycopg.rows import dict_row

from tests.sql.helpers import (
    checks_done,
    count_jobs,
    finish,
    job,
    notifications_until_sentinel,
    push,
    raises_invalid,
    running_job,
    seconds_from_now,
)

CHECK = "#is_ready_to_run"


def checks_due(conn, max_jobs=100, lease_s=30):
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM lzq_checks_due(%s, %s)", (max_jobs, lease_s)).fetchall()


def due_ids(conn, max_jobs=100, lease_s=30):
    return [r["id"] for r in checks_due(conn, max_jobs, lease_s)]


def make_due(conn, *job_ids):
    conn.execute(
        "UPDATE lzq_jobs SET check_at = now() - interval '1 second' WHERE id = ANY(%s)", (list(job_ids),)
    )


def test_push_with_checks_waits_with_its_checks_due_at_its_start_time(conn):
    with conn.transaction():
        now_job = push(conn, "now", depends_on=[CHECK, "svc#warm"])
        row = job(conn, now_job)
        assert (row["status"], row["checks"], row["check_attempts"], row["limits"]) == (
            "waiting",
            [CHECK, "svc#warm"],
            0,
            [],
        )
        assert seconds_from_now(conn, now_job, "check_at") == 0
    later = push(conn, "later", depends_on=[CHECK], start_time="+1 hour")
    row = job(conn, later)
    assert (row["status"], row["check_at"]) == ("scheduled", row["run_at"])


# -- lzq_checks_due -------------------------------------------------------------------------------


def test_checks_due_returns_only_waiting_jobs_with_met_dependencies_pending_checks_and_check_at_come(conn):
    parent = push(conn, "parent")
    due = push(conn, "due", {"n": 1}, depends_on=[CHECK], priority=-3, queue_name="q", fairness_key="t1")
    push(conn, "blocked", depends_on=[parent, CHECK])
    push(conn, "not_yet", depends_on=[CHECK])
    push(conn, "scheduled", depends_on=[CHECK], start_time="+1 hour")
    cancelled = push(conn, "cancelled", depends_on=[CHECK])
    conn.execute("SELECT lzq_cancel(%s)", (cancelled,))
    conn.execute("UPDATE lzq_jobs SET check_at = now() + interval '1 minute' WHERE job_name = 'not_yet'")
    # Not waiting on checks at all: ready, or waiting on unmet dependencies only.
    push(conn, "plain")
    push(conn, "dep_only", depends_on=[parent])
    make_due(conn, *[r[0] for r in conn.execute("SELECT id FROM lzq_jobs WHERE job_name <> 'not_yet'")])

    assert checks_due(conn) == [
        {
            "id": due,
            "job_name": "due",
            "params": {"n": 1},
            "queue_name": "q",
            "priority": -3,
            "fairness_key": "t1",
            "max_failures": 3,
            "checks": [CHECK],
        }
    ]


def test_checks_due_leases_what_it_returns_so_a_second_call_gets_nothing(conn):
    first, second = push(conn, depends_on=[CHECK]), push(conn, depends_on=[CHECK])
    with conn.transaction():
        assert sorted(due_ids(conn, lease_s=45)) == [first, second]
        assert seconds_from_now(conn, first, "check_at") == seconds_from_now(conn, second, "check_at") == 45
    assert due_ids(conn) == []
    row = job(conn, first)
    assert (row["status"], row["check_attempts"]) == ("waiting", 0)
    # The lease runs out: a superqueuer that died mid-evaluation only delayed them.
    make_due(conn, first)
    assert due_ids(conn) == [first]


def test_checks_due_takes_at_most_max_jobs_longest_due_first(conn):
    ids = [push(conn, f"j{i}", depends_on=[CHECK]) for i in range(4)]
    for offset, job_id in zip((3, 1, 4, 2), ids, strict=True):
        conn.execute(
            "UPDATE lzq_jobs SET check_at = now() - make_interval(secs => %s) WHERE id = %s", (offset, job_id)
        )
    assert due_ids(conn, max_jobs=2) == [ids[2], ids[0]]
    assert due_ids(conn, max_jobs=2) == [ids[3], ids[1]]
    assert due_ids(conn, max_jobs=2) == []


def test_checks_due_skips_jobs_another_superqueuer_holds(conn, connect):
    first, second = push(conn, depends_on=[CHECK]), push(conn, depends_on=[CHECK])
    one, two = connect(), connect()
    two.execute("SET statement_timeout = '5s'")  # waiting on one's locks would fail here
    assert due_ids(one, max_jobs=1) == [first]
    assert due_ids(two) == [second]
    one.commit()
    two.commit()
    assert due_ids(conn) == []


# -- lzq_checks_done ------------------------------------------------------------------------------


def test_checks_done_passed_makes_the_job_ready_with_its_limits_and_no_checks_left(conn, listener):
    limited = push(conn, "limited", depends_on=[CHECK, "svc#warm"], queue_name="emails")
    plain = push(conn, "plain", depends_on=[CHECK])
    assert due_ids(conn) == [limited, plain]
    conn.execute("SELECT lzq_superqueuer_idle('sq1', true)")
    limits = [{"key": "pkg.Mailer|{}", "count": 5}, {"key": 'pkg.Mailer|{"bucket":"b"}', "count": 2}]
    assert checks_done(
        conn, {"id": limited, "outcome": "passed", "limits": limits}, {"id": plain, "outcome": "passed"}
    ) == [limited, plain]
    for job_id, stored in ((limited, limits), (plain, [])):
        row = job(conn, job_id)
        assert (row["status"], row["checks"], row["check_at"], row["check_attempts"], row["limits"]) == (
            "ready",
            [],
            None,
            1,
            stored,
        )
        assert row["finished_at"] is None and row["last_error"] is None
    assert sorted(notifications_until_sentinel(listener, conn)) == ["default", "emails"]


def test_checks_done_not_ready_keeps_the_job_waiting_and_backs_off_doubling_from_half_a_second(conn):
    job_id = push(conn, depends_on=[CHECK])
    expected = [0.5, 1, 2, 4, 8, 16, 30, 30]
    seen = []
    for attempt, _ in enumerate(expected):
        with conn.transaction():
            assert checks_done(conn, {"id": job_id, "outcome": "not_ready"}) == []  # nothing moved
            seen.append(seconds_from_now(conn, job_id, "check_at"))
        row = job(conn, job_id)
        assert (row["status"], row["checks"], row["check_attempts"]) == ("waiting", [CHECK], attempt + 1)
    assert seen == expected
    # Far along, the backoff stays capped at 30 s.
    conn.execute("UPDATE lzq_jobs SET check_attempts = 1000 WHERE id = %s", (job_id,))
    with conn.transaction():
        checks_done(conn, {"id": job_id, "outcome": "not_ready"})
        assert seconds_from_now(conn, job_id, "check_at") == 30
    # Not due during the backoff; due once it has passed.
    assert due_ids(conn) == []
    make_due(conn, job_id)
    assert due_ids(conn) == [job_id]


def test_checks_done_invalid_fails_the_job_with_the_error_and_cancels_its_dependents(conn):
    job_id = push(conn, "job", depends_on=["#nope"])
    dependent = push(conn, "dependent", depends_on=[job_id])
    further = push(conn, "further", depends_on=[dependent])
    assert checks_done(
        conn, {"id": job_id, "outcome": "invalid", "error": "check '#nope': no such method"}
    ) == [job_id]
    row = job(conn, job_id)
    assert (row["status"], row["last_error"], row["checks"], row["check_at"]) == (
        "failed",
        "check '#nope': no such method",
        [],
        None,
    )
    assert row["finished_at"] is not None
    assert (job(conn, dependent)["status"], job(conn, dependent)["last_error"]) == (
        "cancelled",
        f"cancelled: dependency {job_id} failed",
    )
    assert job(conn, further)["last_error"] == f"cancelled: dependency {dependent} cancelled"


def test_checks_done_rejects_unknown_or_missing_outcomes_and_changes_nothing(conn):
    job_id = push(conn, depends_on=[CHECK])
    for bad in ("maybe", "PASSED", "", None):
        result = {"id": job_id} if bad is None else {"id": job_id, "outcome": bad}
        with raises_invalid("outcome", message="must be passed, not_ready or invalid", case=bad):
            checks_done(conn, {"id": job_id, "outcome": "passed"}, result)
    row = job(conn, job_id)
    assert (row["status"], row["check_attempts"]) == ("waiting", 0)


def test_checks_done_leaves_jobs_no_longer_waiting_on_checks_alone(conn):
    cancelled = push(conn, "cancelled", depends_on=[CHECK])
    conn.execute("SELECT lzq_cancel(%s)", (cancelled,))
    parent = push(conn, "parent")
    blocked = push(conn, "blocked", depends_on=[parent, CHECK])
    ready = push(conn, "ready")
    passed = push(conn, "passed", depends_on=[CHECK])
    assert checks_done(conn, {"id": passed, "outcome": "passed"}) == [passed]
    results = [
        {"id": i, "outcome": o} for i in (cancelled, blocked, ready, passed) for o in ("passed", "invalid")
    ]
    for result in results:
        assert checks_done(conn, result) == []
    assert [
        (job(conn, i)["status"], job(conn, i)["check_attempts"]) for i in (cancelled, blocked, ready, passed)
    ] == [
        ("cancelled", 0),
        ("waiting", 0),
        ("ready", 0),
        ("ready", 1),
    ]
    assert checks_done(conn, {"id": 999999, "outcome": "passed"}) == []
    assert count_jobs(conn) == 5


# -- re-waking ------------------------------------------------------------------------------------


def test_finish_of_a_job_of_the_same_class_makes_its_checks_due_now(conn):
    running, _ = running_job(conn, "w1", "report#send")
    same_class = push(conn, "report#build", depends_on=["#quota_left"])
    bare_class = push(conn, "report", depends_on=[CHECK])
    other_class = push(conn, "mailer", depends_on=[CHECK])
    for job_id in (same_class, bare_class, other_class):
        checks_done(conn, {"id": job_id, "outcome": "not_ready"})
    assert due_ids(conn) == []
    before = job(conn, other_class)["check_at"]

    assert finish(conn, "w1", {"id": running, "attempt": 1, "outcome": "succeeded"}) == [
        (running, "succeeded")
    ]

    assert sorted(due_ids(conn)) == [same_class, bare_class]
    assert job(conn, other_class)["check_at"] == before


def test_finish_that_re_wakes_checks_notifies_a_sleeping_superqueuer(conn, listener):
    running, _ = running_job(conn, "w1", "report#send", queue_name="emails")
    waiting = push(conn, "report#build", depends_on=[CHECK], queue_name="reports")
    checks_done(conn, {"id": waiting, "outcome": "not_ready"})
    conn.execute("SELECT lzq_superqueuer_idle('sq1', true)")
    notifications_until_sentinel(listener, conn)
    finish(conn, "w1", {"id": running, "attempt": 1, "outcome": "succeeded"})
    assert notifications_until_sentinel(listener, conn) != []
    assert seconds_from_now(conn, waiting, "check_at") <= 0
    # Nobody asleep: nothing is sent.
    conn.execute("SELECT lzq_superqueuer_idle('sq1', false)")
    running, _ = running_job(conn, "w1", "report#send")
    checks_done(conn, {"id": waiting, "outcome": "not_ready"})
    finish(conn, "w1", {"id": running, "attempt": 1, "outcome": "succeeded"})
    assert notifications_until_sentinel(listener, conn) == []


# -- promote --------------------------------------------------------------------------------------


def test_promote_moves_a_due_scheduled_job_with_checks_to_waiting_with_its_checks_due(conn):
    checked = push(conn, "checked", depends_on=[CHECK], start_time="+1 hour")
    plain = push(conn, "plain", start_time="+1 hour")
    assert due_ids(conn) == []
    conn.execute("UPDATE lzq_jobs SET run_at = now() - interval '1 second'")
    with conn.transaction():
        assert conn.execute("SELECT promoted FROM lzq_promote(10)").fetchone()[0] == 2
        assert seconds_from_now(conn, checked, "check_at") == 0
    assert (job(conn, checked)["status"], job(conn, plain)["status"]) == ("waiting", "ready")
    assert due_ids(conn) == [checked]


def test_promote_reports_a_pending_check_as_the_next_thing_due(conn):
    job_id = push(conn, depends_on=[CHECK])
    checks_done(conn, {"id": job_id, "outcome": "not_ready"})
    conn.execute("UPDATE lzq_jobs SET check_at = now() + interval '20 seconds' WHERE id = %s", (job_id,))
    promoted, next_due_in_s = conn.execute("SELECT * FROM lzq_promote(10)").fetchone()
    assert promoted == 0 and 19 < next_due_in_s <= 20


def test_results_of_a_batch_apply_each_to_its_own_job(conn):
    a, b, c = (push(conn, n, depends_on=[CHECK]) for n in "abc")
    assert checks_done(
        conn,
        {"id": a, "outcome": "passed"},
        {"id": b, "outcome": "not_ready"},
        {"id": c, "outcome": "invalid", "error": "bad"},
    ) == [a, c]
    assert [job(conn, i)["status"] for i in (a, b, c)] == ["ready", "waiting", "failed"]


def test_checks_done_rejects_malformed_limits_and_changes_nothing(conn):
    job_id = push(conn, depends_on=[CHECK])
    bad_limits = [
        {"key": "K", "count": 1},
        ["K"],
        [{"count": 1}],
        [{"key": "", "count": 1}],
        [{"key": "K"}],
        [{"key": "K", "count": 0}],
        [{"key": "K", "count": 1.5}],
        [{"key": "K", "count": "x"}],
    ]
    for limits in bad_limits:
        with raises_invalid("limits", case=limits):
            checks_done(conn, {"id": job_id, "outcome": "passed", "limits": limits})
    row = job(conn, job_id)
    assert (row["status"], row["limits"], row["check_attempts"]) == ("waiting", [], 0)


def test_push_with_checks_due_at_once_wakes_a_sleeping_superqueuer(conn, listener):
    conn.execute("SELECT lzq_superqueuer_idle('sq1', true)")
    push(conn, "later", depends_on=[CHECK], start_time="+1 hour")
    assert notifications_until_sentinel(listener, conn) == []
    push(conn, "now", depends_on=[CHECK], queue_name="emails")
    assert notifications_until_sentinel(listener, conn) != []
