"""lzq_recur / lzq_unrecur and the life of a recurring job: first run, one next run per completion
(in the completion's transaction), at most one pending run and one run per slot, the sweep's
repairs, cron fire times precomputed by the superqueuer.

Runs are driven as the daemons drive them: lzq_claim, lzq_start, lzq_finish, lzq_sweep. Time is never
waited for: checks compare with now() inside one transaction, or move the rows' times instead.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from tests.conftest import module_database
from tests.sql.helpers import (
    claim,
    finish,
    heartbeat,
    job,
    push,
    raises_invalid,
    start,
    sweep,
    wait_until_blocked,
)

HOUR = dt.timedelta(hours=1)
BASE = "2014-07-20 03:00:00+00"  # an hourly grid on the hour
BASE_DT = dt.datetime(2014, 7, 20, 3, tzinfo=dt.UTC)
PENDING = ("waiting", "scheduled", "ready", "dispatched", "running")


# -- helpers -------------------------------------------------------------------------------------


def recur(
    conn: psycopg.Connection,
    known_as: str = "tick",
    interval: str | None = "01:00:00",
    base_time: str | None = None,
    *,
    job_name: str = "job",
    params: Any = None,
    cron: str | None = None,
    timezone: str | None = "UTC",
    cron_slots: list[dt.datetime] | None = None,
    **options: Any,
) -> int:
    """lzq_recur as a plain-SQL user calls it -> the definition's id."""
    row = conn.execute(
        "SELECT lzq_recur(%s, %s, %s, %s, %s, %s, cron => %s, timezone => %s, cron_slots => %s)",
        (
            job_name,
            Jsonb(params if params is not None else {}),
            known_as,
            interval,
            base_time,
            Jsonb(options),
            cron,
            timezone,
            cron_slots,
        ),
    ).fetchone()
    assert row is not None
    return row[0]


def definition(conn: psycopg.Connection, recurring_id: int) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM lzq_recurring WHERE id = %s", (recurring_id,)).fetchone()
    assert row is not None, f"recurring job {recurring_id} not found"
    return row


def runs(conn: psycopg.Connection, recurring_id: int, *statuses: str) -> list[dict[str, Any]]:
    """The runs of a definition (only those in `statuses` if given), oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM lzq_jobs WHERE recurring_id = %s AND (%s::text[] = '{}' OR status = ANY (%s))"
            " ORDER BY id",
            (recurring_id, list(statuses), list(statuses)),
        ).fetchall()


def pending(conn: psycopg.Connection, recurring_id: int) -> list[dict[str, Any]]:
    return runs(conn, recurring_id, *PENDING)


def the_pending_run(conn: psycopg.Connection, recurring_id: int) -> dict[str, Any]:
    rows = pending(conn, recurring_id)
    assert len(rows) == 1, f"expected one pending run, got {rows}"
    return rows[0]


def counts(conn: psycopg.Connection) -> tuple[int, int]:
    """(definitions, jobs)."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM lzq_recurring), (SELECT count(*) FROM lzq_jobs)"
    ).fetchone()
    assert row is not None
    return row


def db_now(conn: psycopg.Connection) -> dt.datetime:
    return conn.execute("SELECT now()").fetchone()[0]


def first_slot_at_or_after(base: dt.datetime, every: dt.timedelta, t: dt.datetime) -> dt.datetime:
    return base + max(0, -((base - t) // every)) * every


def report(job_id: int, outcome: str, attempt: int = 1, **extra: Any) -> dict[str, Any]:
    return {"id": job_id, "attempt": attempt, "outcome": outcome, **extra}


def start_run(conn: psycopg.Connection, job_id: int, worker_id: str = "w1") -> None:
    """Run a pending run as the daemons do once it is due: promoted, claimed, started. A run due
    later is made due by moving its definition's times back (its slot must not lie after its
    completion: the next run is the first slot after the completion)."""
    row = conn.execute(
        "SELECT recurring_id, greatest(run_at - now(), '0') FROM lzq_jobs"
        " WHERE id = %s AND status = 'scheduled'",
        (job_id,),
    ).fetchone()
    if row is not None:
        travel(conn, row[0], row[1])
    conn.execute("SELECT lzq_promote(100)")
    heartbeat(conn, worker_id, slots=10)
    tokens = {row[0]: row[1] for row in claim(conn)}
    assert job_id in tokens, f"job {job_id} was not claimed: {job(conn, job_id)}"
    assert [r["id"] for r in start(conn, worker_id, (job_id, tokens[job_id]))] == [job_id]


def complete_run(conn: psycopg.Connection, job_id: int, outcome: str = "succeeded", **extra: Any) -> None:
    start_run(conn, job_id)
    assert finish(conn, "w1", report(job_id, outcome, **extra)) == [(job_id, outcome)]


def travel(conn: psycopg.Connection, recurring_id: int, by: dt.timedelta) -> None:
    """As if `by` had passed: move every time of a definition and its runs that far back."""
    conn.execute(
        """UPDATE lzq_recurring
              SET base_time = base_time - %(by)s,
                  cron_slots = ARRAY(SELECT s - %(by)s FROM unnest(cron_slots) AS s ORDER BY s)
            WHERE id = %(id)s""",
        {"by": by, "id": recurring_id},
    )
    conn.execute(
        """UPDATE lzq_jobs
              SET run_at = run_at - %(by)s, recur_slot = recur_slot - %(by)s,
                  created_at = created_at - %(by)s, started_at = started_at - %(by)s,
                  finished_at = finished_at - %(by)s
            WHERE recurring_id = %(id)s""",
        {"by": by, "id": recurring_id},
    )


def cancel(conn: psycopg.Connection, job_id: int) -> bool:
    return conn.execute("SELECT lzq_cancel(%s)", (job_id,)).fetchone()[0]


def recur_run(conn: psycopg.Connection, recurring_id: int, slot: dt.datetime) -> int | None:
    """_lzq_recur_run(definition, slot) -> the new run's id, or None."""
    return conn.execute(
        "SELECT _lzq_recur_run(r, %s) FROM lzq_recurring AS r WHERE r.id = %s", (slot, recurring_id)
    ).fetchone()[0]


# -- bad input -----------------------------------------------------------------------------------
# These cases write nothing that outlives them, so they share one database cloned once for this
# module from the same migrated template as the `conn` fixture, instead of a fresh clone per case.


@pytest.fixture(scope="module")
def _shared_db(postgresql_noproc: Any) -> Iterator[psycopg.Connection]:
    with module_database(postgresql_noproc, "recur") as dsn, psycopg.connect(dsn, autocommit=True) as shared:
        yield shared


@pytest.fixture
def empty(_shared_db: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """An autocommit connection to a database with no jobs and no definitions; emptied again after."""
    assert counts(_shared_db) == (0, 0)
    yield _shared_db
    _shared_db.execute("DELETE FROM lzq_jobs")
    _shared_db.execute("DELETE FROM lzq_recurring")


BAD_RECURS = [
    pytest.param({"known_as": ""}, "known_as", id="empty-known-as"),
    pytest.param({"known_as": " \t "}, "known_as", id="blank-known-as"),
    pytest.param({"known_as": "k" * 256}, "known_as", id="known-as-too-long"),
    pytest.param({"cron": "0 3 * * *"}, "interval", id="interval-and-cron"),
    pytest.param({"interval": None}, "interval", id="neither-interval-nor-cron"),
    pytest.param({"interval": "0"}, "interval", id="interval-zero-seconds"),
    pytest.param({"interval": "00:00:00"}, "interval", id="interval-zero"),
    pytest.param({"interval": "-5"}, "interval", id="interval-negative-seconds"),
    pytest.param({"interval": "-00:00:01"}, "interval", id="interval-negative"),
    pytest.param({"interval": "blah"}, "interval", id="interval-unparsable"),
    pytest.param({"interval": None, "cron": "x"}, "cron", id="cron-one-field"),
    pytest.param({"interval": None, "cron": "* * *"}, "cron", id="cron-three-fields"),
    pytest.param({"base_time": "whenever"}, "base_time", id="base-time-unparsable"),
    pytest.param(
        {"interval": None, "cron": "0 3 * * *", "base_time": BASE}, "base_time", id="base-time-with-cron"
    ),
    pytest.param({"base_time": BASE, "start_time": "+1 hour"}, "start_time", id="start-time-with-base-time"),
    pytest.param(
        {"interval": None, "cron": "0 3 * * *", "start_time": "+1 hour"},
        "start_time",
        id="start-time-with-cron",
    ),
    pytest.param({"start_time": "whenever"}, "start_time", id="start-time-unparsable"),
    pytest.param({"timezone": "Mars/Olympus_Mons"}, "timezone", id="unknown-timezone"),
    pytest.param({"timezone": None}, "timezone", id="no-timezone"),
    pytest.param({"priority": 99}, "priority", id="priority-out-of-range"),
    pytest.param({"colour": "red"}, "colour", id="unknown-option"),
    pytest.param({"job_name": " "}, "job_name", id="blank-job-name"),
    pytest.param({"params": [1, 2]}, "job_params", id="params-not-an-object"),
    pytest.param({"depends_on": [999_999]}, "depends_on", id="depends-on-unknown-job"),
]


@pytest.mark.parametrize(("arguments", "field"), BAD_RECURS)
def test_recur_rejects_bad_input_naming_the_field_and_writes_nothing(empty, arguments, field):
    with raises_invalid(field):
        recur(empty, **arguments)
    assert counts(empty) == (0, 0)


def test_recur_rejects_runs_depending_on_job_ids(empty):
    other = push(empty, "other")
    with raises_invalid("depends_on", message="readiness checks, not on job ids"):
        recur(empty, depends_on=[other, "#is_ready_to_run"])
    assert counts(empty) == (0, 1)


def test_recur_rejecting_a_redefinition_leaves_the_definition_and_its_run_as_they_were(empty):
    rid = recur(empty, base_time=BASE, priority=3)
    before = (definition(empty, rid), runs(empty, rid))
    with raises_invalid("priority"):
        recur(empty, interval="00:30:00", base_time=BASE, priority=99)
    assert (definition(empty, rid), runs(empty, rid)) == before


# -- definitions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "every"),
    [
        ("12:00:00", dt.timedelta(hours=12)),
        ("01:30:00", dt.timedelta(minutes=90)),
        ("90 minutes", dt.timedelta(minutes=90)),
        ("3600", dt.timedelta(hours=1)),
        (" 1.5 ", dt.timedelta(seconds=1.5)),
        ("1 day", dt.timedelta(days=1)),
    ],
)
def test_recur_accepts_hh_mm_ss_postgresql_intervals_and_seconds(empty, interval, every):
    rid = recur(empty, interval=interval)
    assert definition(empty, rid)["every"] == every


def test_recur_is_callable_with_named_arguments(conn):
    rid = conn.execute(
        """SELECT lzq_recur('report', '{"to": "ops"}', 'report:hourly', "interval" => '01:00:00',
                            base_time => %s, job_options => '{"priority": 5, "queue_name": "reports"}')""",
        (BASE,),
    ).fetchone()[0]
    row = definition(conn, rid)
    assert (row["known_as"], row["job_name"], row["params"], row["every"], row["base_time"]) == (
        "report:hourly",
        "report",
        {"to": "ops"},
        HOUR,
        BASE_DT,
    )
    assert row["options"] == {"priority": 5, "queue_name": "reports"}
    run = the_pending_run(conn, rid)
    assert (run["job_name"], run["params"], run["priority"], run["queue_name"]) == (
        "report",
        {"to": "ops"},
        5,
        "reports",
    )


def test_recur_runs_may_wait_on_readiness_checks(conn):
    rid = recur(conn, depends_on=["#is_ready_to_run"])
    run = the_pending_run(conn, rid)
    assert (run["status"], run["checks"]) == ("waiting", ["#is_ready_to_run"])


# -- the first run -------------------------------------------------------------------------------


def test_recur_with_base_time_first_runs_on_the_first_grid_slot_after_now(conn):
    every = dt.timedelta(minutes=7)
    base = dt.datetime(2014, 7, 20, 3, 0, 7, tzinfo=dt.UTC)
    with conn.transaction():
        rid = recur(conn, interval="00:07:00", base_time=base.isoformat())
        now = db_now(conn)
        run = the_pending_run(conn, rid)
    slot = first_slot_at_or_after(base, every, now)
    assert now <= slot < now + every
    assert (run["run_at"], run["recur_slot"], run["recurring_id"]) == (slot, slot, rid)
    assert run["status"] == ("scheduled" if slot > now else "ready")


def test_recur_with_base_time_now_first_runs_at_once(conn):
    with conn.transaction():
        now = db_now(conn)
        rid = recur(conn, base_time=now.isoformat())
        run = the_pending_run(conn, rid)
    assert (run["status"], run["run_at"], run["recur_slot"]) == ("ready", now, now)


def test_recur_with_base_time_in_the_future_first_runs_at_base_time(conn):
    rid = recur(conn, base_time="2100-01-01 00:00:00+00")
    run = the_pending_run(conn, rid)
    assert (run["status"], run["run_at"]) == ("scheduled", dt.datetime(2100, 1, 1, tzinfo=dt.UTC))


def test_recur_without_base_time_first_runs_at_once(conn):
    with conn.transaction():
        rid = recur(conn, interval="12:00:00")
        now = db_now(conn)
        run = the_pending_run(conn, rid)
    assert (run["status"], run["run_at"], run["recur_slot"]) == ("ready", now, now)


@pytest.mark.parametrize(
    ("start_time", "offset"),
    [("+10 minutes", dt.timedelta(minutes=10)), ("now", dt.timedelta(0))],
)
def test_recur_without_base_time_first_runs_at_the_start_time_option(conn, start_time, offset):
    with conn.transaction():
        rid = recur(conn, start_time=start_time)
        now = db_now(conn)
        run = the_pending_run(conn, rid)
    assert (run["run_at"], run["recur_slot"]) == (now + offset, now + offset)
    assert "start_time" not in definition(conn, rid)["options"]  # the first run's, not every run's


def test_recur_with_cron_first_runs_at_the_first_precomputed_fire_time_from_now(conn):
    now = db_now(conn)
    fire_times = [now - dt.timedelta(minutes=1), now + dt.timedelta(minutes=1), now + dt.timedelta(minutes=2)]
    rid = recur(conn, interval=None, cron="* * * * *", cron_slots=fire_times)
    run = the_pending_run(conn, rid)
    assert (run["status"], run["run_at"], run["recur_slot"]) == ("scheduled", fire_times[1], fire_times[1])
    assert definition(conn, rid)["cron_slots"] == fire_times


def test_recur_with_cron_from_plain_sql_creates_the_run_once_the_superqueuer_adds_fire_times(conn):
    rid = recur(conn, interval=None, cron="0 3 * * *", timezone="Europe/Paris")
    assert runs(conn, rid) == []
    sweep(conn)
    assert runs(conn, rid) == []  # nothing to go on yet
    due = conn.execute("SELECT id, cron, timezone FROM lzq_recur_cron_due(10)").fetchall()
    assert due == [(rid, "0 3 * * *", "Europe/Paris")]
    now = db_now(conn)
    fire_times = [now + dt.timedelta(days=d, hours=1) for d in range(3)]
    conn.execute("SELECT lzq_recur_cron_extend(%s, %s)", (rid, fire_times))
    sweep(conn)
    sweep(conn)
    (run,) = runs(conn, rid)
    assert (run["status"], run["run_at"], run["recur_slot"]) == ("scheduled", fire_times[0], fire_times[0])


# -- calling it again ----------------------------------------------------------------------------


@pytest.mark.parametrize("base_time", [None, BASE])
def test_recur_again_with_the_same_definition_changes_nothing(conn, base_time):
    rid = recur(conn, base_time=base_time, params={"a": 1}, priority=2)
    before = ({**definition(conn, rid), "updated_at": None}, runs(conn, rid))
    assert recur(conn, base_time=base_time, params={"a": 1}, priority=2) == rid
    assert ({**definition(conn, rid), "updated_at": None}, runs(conn, rid)) == before
    assert counts(conn) == (1, 1)


def test_recur_again_does_not_move_a_later_run_of_a_plain_interval_to_now(conn):
    rid = recur(conn, start_time="+10 minutes")
    (first,) = runs(conn, rid)
    # An application start re-declaring it, with or without its start_time: same definition.
    recur(conn)
    recur(conn, start_time="+20 minutes")
    assert runs(conn, rid) == [first]

    complete_run(conn, first["id"])
    later = the_pending_run(conn, rid)
    assert later["status"] == "scheduled"
    recur(conn)
    assert the_pending_run(conn, rid) == later
    assert counts(conn) == (1, 2)


def test_recur_with_a_changed_definition_updates_the_pending_run_in_place(conn):
    rid = recur(conn, base_time=BASE, params={"v": 1}, priority=0)
    (before,) = runs(conn, rid)
    every = dt.timedelta(minutes=20)
    base = dt.datetime(2014, 7, 20, 3, 5, tzinfo=dt.UTC)  # a grid that never falls on the hour
    with conn.transaction():
        assert (
            recur(conn, interval="00:20:00", base_time=base.isoformat(), params={"v": 2}, priority=5) == rid
        )
        now = db_now(conn)
    slot = first_slot_at_or_after(base, every, now)
    (after,) = runs(conn, rid)
    assert after["id"] == before["id"]
    assert (after["params"], after["priority"], after["run_at"], after["recur_slot"]) == (
        {"v": 2},
        5,
        slot,
        slot,
    )
    row = definition(conn, rid)
    assert (row["every"], row["base_time"], row["params"], row["options"]) == (
        every,
        base,
        {"v": 2},
        {"priority": 5},
    )
    assert row["updated_at"] > row["created_at"]


def test_recur_with_a_changed_plain_interval_reschedules_the_pending_run_as_a_first_run(conn):
    rid = recur(conn, start_time="+1 hour")
    (before,) = runs(conn, rid)
    with conn.transaction():
        recur(conn, interval="00:30:00", params={"v": 2}, start_time="+5 minutes")
        now = db_now(conn)
    (after,) = runs(conn, rid)
    assert after["id"] == before["id"]
    assert (after["params"], after["run_at"], after["status"]) == (
        {"v": 2},
        now + dt.timedelta(minutes=5),
        "scheduled",
    )


def test_recur_with_a_changed_definition_leaves_a_running_run_alone_and_its_successor_follows_it(conn):
    rid = recur(conn, params={"v": 1})
    (first,) = runs(conn, rid)
    start_run(conn, first["id"])
    running = job(conn, first["id"])
    recur(conn, interval="00:10:00", params={"v": 2}, priority=-5)
    assert job(conn, first["id"]) == running
    assert (running["status"], running["params"]) == ("running", {"v": 1})
    with conn.transaction():
        assert finish(conn, "w1", report(first["id"], "succeeded")) == [(first["id"], "succeeded")]
        now = db_now(conn)
        nxt = the_pending_run(conn, rid)
    assert (nxt["params"], nxt["priority"], nxt["run_at"]) == ({"v": 2}, -5, now + dt.timedelta(minutes=10))


def test_recur_redefined_onto_a_cancelled_slot_does_not_fail_and_does_not_revive_it(conn):
    with conn.transaction():  # one now(): the slots below cannot drift across an hour
        rid = recur(conn, base_time=BASE)
        (skipped,) = runs(conn, rid)
        assert cancel(conn, skipped["id"])  # "skip the next run"
        recur(conn, interval="00:10:00", base_time="2014-07-20 03:05:00+00")  # never on the hour
        assert len(pending(conn, rid)) == 1
        recur(conn, base_time=BASE)  # back to hourly: its first slot is the skipped one
    assert len(pending(conn, rid)) <= 1
    assert [r["status"] for r in runs(conn, rid) if r["recur_slot"] == skipped["recur_slot"]] == ["cancelled"]


def test_recur_runs_are_scheduled_on_their_slot_whatever_the_sessions_datestyle(conn):
    with conn.transaction():
        conn.execute("SET LOCAL DateStyle = 'SQL, DMY'")  # 'IST', not '+05:30'
        conn.execute("SET LOCAL TimeZone = 'Asia/Kolkata'")
        rid = recur(conn, base_time=BASE)
        conn.execute("SET LOCAL DateStyle = 'ISO'")  # the only one psycopg reads
        slot = first_slot_at_or_after(BASE_DT, HOUR, db_now(conn))
    run = the_pending_run(conn, rid)
    assert (run["recur_slot"], run["run_at"]) == (slot, slot)


# -- completion ----------------------------------------------------------------------------------


def test_finishing_a_run_creates_the_next_run_in_the_same_transaction(conn, connect):
    rid = recur(conn)
    (first,) = runs(conn, rid)
    start_run(conn, first["id"])
    worker = connect()  # not autocommit: the report's transaction stays open
    assert finish(worker, "w1", report(first["id"], "succeeded")) == [(first["id"], "succeeded")]
    nxt = the_pending_run(worker, rid)
    assert nxt["run_at"] == db_now(worker) + HOUR
    assert [r["id"] for r in pending(conn, rid)] == [first["id"]]  # nothing visible before the commit
    worker.commit()
    assert the_pending_run(conn, rid) == nxt


@pytest.mark.parametrize(
    ("outcome", "options", "status"),
    [
        ("succeeded", {}, "succeeded"),
        ("failed", {}, "failed"),
        ("retry", {"max_failures": 1}, "failed"),  # attempts spent: failed for good
    ],
)
def test_a_run_that_completes_gets_exactly_one_next_run(conn, outcome, options, status):
    rid = recur(conn, **options)
    (first,) = runs(conn, rid)
    start_run(conn, first["id"])
    assert finish(conn, "w1", report(first["id"], outcome, error="boom")) == [(first["id"], status)]
    nxt = the_pending_run(conn, rid)
    assert nxt["id"] != first["id"]
    assert (nxt["status"], nxt["recurring_id"], nxt["attempts"]) == ("scheduled", rid, 0)
    assert len(runs(conn, rid)) == 2


def test_a_run_retried_with_attempts_left_gets_no_next_run(conn):
    rid = recur(conn, max_failures=3)
    (first,) = runs(conn, rid)
    start_run(conn, first["id"])
    assert finish(conn, "w1", report(first["id"], "retry", retry_delay_s=5)) == [(first["id"], "scheduled")]
    assert [r["id"] for r in runs(conn, rid)] == [first["id"]]


def test_next_run_without_base_time_is_the_completion_time_plus_the_interval(conn):
    rid = recur(conn, interval="00:45:00")
    (first,) = runs(conn, rid)
    start_run(conn, first["id"])
    with conn.transaction():
        finish(conn, "w1", report(first["id"], "succeeded"))
        now = db_now(conn)
        nxt = the_pending_run(conn, rid)
    assert (nxt["run_at"], nxt["recur_slot"]) == (now + dt.timedelta(minutes=45),) * 2
    assert job(conn, first["id"])["finished_at"] == now


def test_next_run_with_base_time_is_the_first_slot_strictly_after_the_completion(conn):
    rid = recur(conn, base_time=BASE)
    (first,) = runs(conn, rid)
    start_run(conn, first["id"])
    with conn.transaction():
        # Put a slot exactly on the completion time: the next run is the one after it.
        now = db_now(conn)
        conn.execute("UPDATE lzq_recurring SET base_time = %s WHERE id = %s", (now - 5 * HOUR, rid))
        finish(conn, "w1", report(first["id"], "succeeded"))
        nxt = the_pending_run(conn, rid)
    assert (nxt["run_at"], nxt["recur_slot"], nxt["status"]) == (now + HOUR, now + HOUR, "scheduled")


def test_missed_slots_collapse_into_one_next_run_after_the_completion(conn):
    rid = recur(conn, base_time=BASE)
    (first,) = runs(conn, rid)
    # The run was due six slots ago (superqueuers down): it runs late, once.
    conn.execute(
        "UPDATE lzq_jobs SET run_at = run_at - interval '6 hours',"
        " recur_slot = recur_slot - interval '6 hours' WHERE id = %s",
        (first["id"],),
    )
    start_run(conn, first["id"])
    with conn.transaction():
        finish(conn, "w1", report(first["id"], "succeeded"))
        now = db_now(conn)
    slot = first_slot_at_or_after(BASE_DT, HOUR, now + dt.timedelta(microseconds=1))
    nxt = the_pending_run(conn, rid)
    assert (nxt["run_at"], nxt["recur_slot"]) == (slot, slot)
    assert now < slot <= now + HOUR
    assert len(runs(conn, rid)) == 2


def test_a_five_hour_run_of_an_hourly_job_without_base_time_does_not_run_again_at_once(conn):
    rid = recur(conn)
    (first,) = runs(conn, rid)
    start_run(conn, first["id"])
    conn.execute(
        "UPDATE lzq_jobs SET run_at = now() - interval '5 hours', recur_slot = now() - interval '5 hours',"
        " started_at = now() - interval '5 hours' WHERE id = %s",
        (first["id"],),
    )
    with conn.transaction():
        finish(conn, "w1", report(first["id"], "succeeded"))
        now = db_now(conn)
        nxt = the_pending_run(conn, rid)
    assert (nxt["status"], nxt["run_at"]) == ("scheduled", now + HOUR)


def test_a_run_failed_by_the_sweep_for_a_dead_worker_gets_its_next_run(conn):
    rid = recur(conn, max_failures=1)
    (first,) = runs(conn, rid)
    start_run(conn, first["id"])
    conn.execute("UPDATE lzq_workers SET heartbeat_at = now() - interval '1 hour' WHERE worker_id = 'w1'")
    with conn.transaction():
        assert sweep(conn) == [(first["id"], "running", "failed")]
        now = db_now(conn)
        nxt = the_pending_run(conn, rid)
    assert nxt["run_at"] == now + HOUR


def test_a_run_whose_readiness_check_cannot_run_fails_and_gets_its_next_run(conn):
    rid = recur(conn, depends_on=["#nope"])
    (first,) = runs(conn, rid)
    with conn.transaction():
        moved = conn.execute(
            "SELECT * FROM lzq_checks_done(%s)",
            (Jsonb([{"id": first["id"], "outcome": "invalid", "error": "no such method"}]),),
        ).fetchall()
        assert moved == [(first["id"],)]
        now = db_now(conn)
        nxt = the_pending_run(conn, rid)
    assert job(conn, first["id"])["status"] == "failed"
    assert (nxt["status"], nxt["run_at"]) == ("scheduled", now + HOUR)


# -- one pending run, one run per slot -----------------------------------------------------------


def test_recur_run_creates_nothing_for_a_taken_slot_or_while_a_run_is_pending(conn):
    rid = recur(conn, base_time=BASE)
    (first,) = runs(conn, rid)
    assert recur_run(conn, rid, first["recur_slot"]) is None
    assert recur_run(conn, rid, first["recur_slot"] + HOUR) is None
    assert runs(conn, rid) == [first]
    complete_run(conn, first["id"])
    first = job(conn, first["id"])  # its times moved back to run it
    nxt = the_pending_run(conn, rid)
    conn.execute("DELETE FROM lzq_jobs WHERE id = %s", (nxt["id"],))
    # Nothing pending now, but a slot that already had its run gets no second one.
    assert recur_run(conn, rid, first["recur_slot"]) is None
    assert [r["id"] for r in runs(conn, rid)] == [first["id"]]
    assert recur_run(conn, rid, nxt["recur_slot"]) is not None


def test_finish_while_the_sweep_runs_elsewhere_gives_exactly_one_next_run(conn, connect):
    rid = recur(conn)
    (first,) = runs(conn, rid)
    start_run(conn, first["id"])
    worker = connect()
    sweeper = connect()
    finish(worker, "w1", report(first["id"], "succeeded"))
    sweep(sweeper)  # sees the run still running: nothing to repair
    worker.commit()
    sweep(sweeper)  # its transaction began before the commit; statements see it now
    sweeper.commit()
    sweep(conn)
    assert len(pending(conn, rid)) == 1
    assert len(runs(conn, rid)) == 2


def test_sweep_failing_a_run_while_its_late_finish_waits_gives_exactly_one_next_run(conn, connect):
    rid = recur(conn, max_failures=1)
    (first,) = runs(conn, rid)
    start_run(conn, first["id"])
    conn.execute("UPDATE lzq_workers SET heartbeat_at = now() - interval '1 hour' WHERE worker_id = 'w1'")
    sweeper = connect()
    assert sweep(sweeper) == [(first["id"], "running", "failed")]
    worker = connect(autocommit=True)
    with ThreadPoolExecutor(max_workers=1) as pool:
        late = pool.submit(finish, worker, "w1", report(first["id"], "succeeded"))
        wait_until_blocked(conn, worker)  # on the run's row lock
        sweeper.commit()
        assert late.result(timeout=10) == []  # the fence: the run is no longer running
    assert job(conn, first["id"])["status"] == "failed"
    assert len(pending(conn, rid)) == 1
    assert len(runs(conn, rid)) == 2


def test_sweep_waiting_on_a_finish_of_a_dead_workers_run_gives_exactly_one_next_run(conn, connect):
    rid = recur(conn, max_failures=1)
    (first,) = runs(conn, rid)
    start_run(conn, first["id"])
    conn.execute("UPDATE lzq_workers SET heartbeat_at = now() - interval '1 hour' WHERE worker_id = 'w1'")
    worker = connect()
    assert finish(worker, "w1", report(first["id"], "succeeded")) == [(first["id"], "succeeded")]
    sweeper = connect(autocommit=True)
    with ThreadPoolExecutor(max_workers=1) as pool:
        swept = pool.submit(sweep, sweeper)
        wait_until_blocked(conn, sweeper)
        worker.commit()
        assert swept.result(timeout=10) == []
    assert job(conn, first["id"])["status"] == "succeeded"
    assert len(pending(conn, rid)) == 1
    assert len(runs(conn, rid)) == 2


def test_sweep_racing_a_redefinition_that_creates_the_run_waits_and_creates_none(conn, connect):
    rid = recur(conn, params={"v": 1})
    (first,) = runs(conn, rid)
    conn.execute("DELETE FROM lzq_jobs WHERE id = %s", (first["id"],))
    redefiner = connect()
    recur(redefiner, params={"v": 2})  # creates the missing run, uncommitted
    sweeper = connect(autocommit=True)
    with ThreadPoolExecutor(max_workers=1) as pool:
        swept = pool.submit(sweep, sweeper)
        wait_until_blocked(conn, sweeper)  # on the unique index: one pending run per definition
        redefiner.commit()
        swept.result(timeout=10)
    assert [r["params"] for r in runs(conn, rid)] == [{"v": 2}]


# -- the sweep -----------------------------------------------------------------------------------


def test_sweep_recreates_a_deleted_run_on_the_grid(conn):
    rid = recur(conn, base_time=BASE)
    (first,) = runs(conn, rid)
    conn.execute("DELETE FROM lzq_jobs WHERE id = %s", (first["id"],))
    with conn.transaction():
        sweep(conn)
        slot = first_slot_at_or_after(BASE_DT, HOUR, db_now(conn))
    run = the_pending_run(conn, rid)
    assert (run["run_at"], run["recur_slot"]) == (slot, slot)


def test_sweep_recreates_a_deleted_first_run_of_a_plain_interval_at_once(conn):
    rid = recur(conn, start_time="+10 minutes")
    conn.execute("DELETE FROM lzq_jobs")
    with conn.transaction():
        sweep(conn)
        now = db_now(conn)
    run = the_pending_run(conn, rid)
    assert (run["status"], run["run_at"]) == ("ready", now)


@pytest.mark.parametrize("finished_ago", [dt.timedelta(minutes=10), dt.timedelta(hours=3)])
def test_sweep_recreates_a_deleted_run_of_a_plain_interval_an_interval_after_the_last_finish(
    conn, finished_ago
):
    rid = recur(conn)
    (first,) = runs(conn, rid)
    complete_run(conn, first["id"])
    conn.execute("UPDATE lzq_jobs SET finished_at = now() - %s WHERE id = %s", (finished_ago, first["id"]))
    conn.execute("DELETE FROM lzq_jobs WHERE id <> %s", (first["id"],))
    with conn.transaction():
        sweep(conn)
        now = db_now(conn)
    run = the_pending_run(conn, rid)
    finished_at = job(conn, first["id"])["finished_at"]
    if finished_at + HOUR > now:
        assert (run["status"], run["run_at"]) == ("scheduled", finished_at + HOUR)
    else:  # that time has passed: at once
        assert (run["status"], run["run_at"]) == ("ready", now)


@pytest.mark.parametrize("running", [False, True])
def test_sweep_creates_nothing_for_a_definition_with_a_pending_run(conn, running):
    rid = recur(conn, base_time=BASE)
    (first,) = runs(conn, rid)
    if running:
        start_run(conn, first["id"])
    before = runs(conn, rid)
    sweep(conn)
    assert runs(conn, rid) == before


def test_a_cancelled_run_is_not_recreated_but_the_following_slot_is_once_its_time_comes(conn):
    rid = recur(conn, base_time=BASE)
    (skipped,) = runs(conn, rid)
    assert cancel(conn, skipped["id"])
    sweep(conn)
    assert pending(conn, rid) == []
    # Time passes the cancelled slot (by a second).
    by = conn.execute("SELECT %s - now() + interval '1 second'", (skipped["recur_slot"],)).fetchone()[0]
    travel(conn, rid, by)
    sweep(conn)
    run = the_pending_run(conn, rid)
    assert run["recur_slot"] == job(conn, skipped["id"])["recur_slot"] + HOUR
    assert [r["status"] for r in runs(conn, rid)] == ["cancelled", "scheduled"]


def test_a_cancelled_cron_run_is_not_recreated_but_the_next_fire_time_is_once_its_time_comes(conn):
    now = db_now(conn)
    fire_times = [now + dt.timedelta(minutes=m) for m in (1, 2, 3)]
    rid = recur(conn, interval=None, cron="* * * * *", cron_slots=fire_times)
    (skipped,) = runs(conn, rid)
    assert cancel(conn, skipped["id"])
    sweep(conn)
    assert pending(conn, rid) == []
    by = conn.execute("SELECT %s - now() + interval '1 second'", (skipped["recur_slot"],)).fetchone()[0]
    travel(conn, rid, by)
    sweep(conn)
    run = the_pending_run(conn, rid)
    assert run["recur_slot"] == fire_times[1] - by


def test_a_cancelled_run_of_a_plain_interval_is_followed_an_interval_after_the_cancel(conn):
    rid = recur(conn)
    (skipped,) = runs(conn, rid)
    assert cancel(conn, skipped["id"])
    sweep(conn)
    run = the_pending_run(conn, rid)
    assert (run["status"], run["run_at"]) == ("scheduled", job(conn, skipped["id"])["finished_at"] + HOUR)


# -- cron fire times -----------------------------------------------------------------------------


def test_cron_due_lists_definitions_short_of_future_fire_times(conn):
    now = db_now(conn)
    past = [now - dt.timedelta(minutes=m) for m in (30, 20, 10)]
    future = [now + dt.timedelta(minutes=m) for m in (10, 20)]
    short = recur(conn, "short", interval=None, cron="*/10 * * * *", cron_slots=past + future)
    bare = recur(conn, "empty", interval=None, cron="0 3 * * *")
    recur(
        conn,
        "plenty",
        interval=None,
        cron="* * * * *",
        cron_slots=[now + dt.timedelta(minutes=m) for m in range(1, 4)],
    )
    recur(conn, "interval")
    with conn.transaction():
        due = conn.execute("SELECT * FROM lzq_recur_cron_due(3) ORDER BY id").fetchall()
        now = db_now(conn)
    assert due == [(short, "*/10 * * * *", "UTC", future[-1]), (bare, "0 3 * * *", "UTC", now)]
    assert [r[0] for r in conn.execute("SELECT * FROM lzq_recur_cron_due(2)")] == [bare]


def test_cron_extend_merges_sorts_deduplicates_and_drops_past_fire_times(conn):
    now = db_now(conn)
    at = [now + dt.timedelta(minutes=m) for m in range(6)]
    rid = recur(conn, interval=None, cron="* * * * *", cron_slots=[at[1], at[3]])
    long_ago = now - dt.timedelta(days=1)
    conn.execute("SELECT lzq_recur_cron_extend(%s, %s)", (rid, [at[5], long_ago, at[3], at[2], at[4], at[2]]))
    assert definition(conn, rid)["cron_slots"] == at[1:6]
    conn.execute("UPDATE lzq_recurring SET cron_slots = %s WHERE id = %s", ([long_ago, at[1]], rid))
    conn.execute("SELECT lzq_recur_cron_extend(%s, %s)", (rid, []))
    assert definition(conn, rid)["cron_slots"] == [at[1]]


def test_a_cron_run_completion_takes_the_first_stored_fire_time_after_it(conn):
    now = db_now(conn)
    fire_times = [now + dt.timedelta(minutes=m) for m in (1, 2, 3, 4)]
    rid = recur(conn, interval=None, cron="* * * * *", cron_slots=fire_times)
    (first,) = runs(conn, rid)
    # It ran late: two fire times passed meanwhile (a minute and a half from now, say).
    travel(conn, rid, dt.timedelta(seconds=150))
    complete_run(conn, first["id"])
    nxt = the_pending_run(conn, rid)
    assert nxt["recur_slot"] == fire_times[2] - dt.timedelta(seconds=150)
    assert nxt["run_at"] == nxt["recur_slot"]


def test_a_cron_run_completing_beyond_the_stored_fire_times_is_followed_once_they_are_extended(conn):
    now = db_now(conn)
    rid = recur(conn, interval=None, cron="* * * * *", cron_slots=[now + dt.timedelta(minutes=1)])
    (first,) = runs(conn, rid)
    complete_run(conn, first["id"])
    assert pending(conn, rid) == []  # nothing known to run next
    later = db_now(conn) + dt.timedelta(minutes=5)
    conn.execute("SELECT lzq_recur_cron_extend(%s, %s)", (rid, [later]))
    sweep(conn)
    assert the_pending_run(conn, rid)["run_at"] == later


def test_recur_again_from_plain_sql_keeps_the_cron_fire_times_for_the_next_completion(conn):
    now = db_now(conn)
    fire_times = [now + dt.timedelta(minutes=m) for m in (1, 2, 3)]
    rid = recur(conn, interval=None, cron="* * * * *", cron_slots=fire_times)
    (first,) = runs(conn, rid)
    recur(conn, interval=None, cron="* * * * *")  # same definition, declared again from plain SQL
    complete_run(conn, first["id"])
    kept = definition(conn, rid)["cron_slots"]  # as start_run moved them
    assert len(kept) == len(fire_times)
    assert the_pending_run(conn, rid)["recur_slot"] == kept[1]


# -- lzq_unrecur ---------------------------------------------------------------------------------


def test_unrecur_removes_the_definition_and_cancels_its_pending_run(conn):
    rid = recur(conn, "nightly", base_time=BASE)
    keep = recur(conn, "other")
    (run,) = runs(conn, rid)
    assert conn.execute("SELECT lzq_unrecur('nightly')").fetchone()[0] is True
    assert conn.execute("SELECT lzq_unrecur('nightly')").fetchone()[0] is False
    assert conn.execute("SELECT lzq_unrecur('never-defined')").fetchone()[0] is False
    assert [r[0] for r in conn.execute("SELECT id FROM lzq_recurring")] == [keep]
    row = job(conn, run["id"])
    assert (row["status"], row["recurring_id"]) == ("cancelled", None)
    sweep(conn)
    assert (
        conn.execute("SELECT count(*) FROM lzq_jobs WHERE status = ANY (%s)", (list(PENDING),)).fetchone()[0]
        == 1
    )


def test_unrecur_racing_the_finish_of_a_running_run_waits_instead_of_deadlocking(conn, connect):
    # lzq_finish locks its run, then reads the definition to create the next run. lzq_unrecur used
    # to lock the definition first and the runs last (the foreign key's SET NULL): a deadlock.
    rid = recur(conn)
    (run,) = runs(conn, rid)
    start_run(conn, run["id"])
    worker = connect()
    worker.execute("SELECT FROM lzq_jobs WHERE id = %s FOR UPDATE", (run["id"],))  # finish's first lock
    remover = connect(autocommit=True)
    with ThreadPoolExecutor(max_workers=1) as pool:
        removed = pool.submit(lambda: remover.execute("SELECT lzq_unrecur('tick')").fetchone()[0])
        wait_until_blocked(conn, remover)
        assert finish(worker, "w1", report(run["id"], "succeeded")) == [(run["id"], "succeeded")]
        worker.commit()
        assert removed.result(timeout=10) is True
    assert conn.execute("SELECT count(*) FROM lzq_recurring").fetchone()[0] == 0
    statuses = conn.execute("SELECT status FROM lzq_jobs WHERE id > %s", (run["id"],)).fetchall()
    assert statuses == [("cancelled",)]  # the run the finish created, cancelled with its definition


def test_a_run_created_while_its_definition_is_being_removed_waits_and_is_not_created(conn, connect):
    # The sweep (or a finish) has read the definition; lzq_unrecur, not yet committed, holds its
    # row. recurring_id is no foreign key: _lzq_recur_run itself waits, then finds it gone.
    rid = recur(conn, "nightly", base_time=BASE)
    (first,) = runs(conn, rid)
    cancel(conn, first["id"])  # no pending run: only the removal can stop the next one
    as_read = conn.execute("SELECT r::text FROM lzq_recurring AS r WHERE r.id = %s", (rid,)).fetchone()[0]
    remover = connect()
    assert remover.execute("SELECT lzq_unrecur('nightly')").fetchone()[0] is True
    creator = connect(autocommit=True)
    with ThreadPoolExecutor(max_workers=1) as pool:
        created = pool.submit(
            lambda: creator.execute(
                "SELECT _lzq_recur_run(%s::lzq_recurring, %s)", (as_read, BASE_DT + dt.timedelta(days=1))
            ).fetchone()[0]
        )
        wait_until_blocked(conn, creator)
        remover.commit()
        assert created.result(timeout=10) is None
    assert conn.execute("SELECT count(*) FROM lzq_jobs WHERE recurring_id = %s", (rid,)).fetchone()[0] == 0


def test_unrecur_lets_a_running_run_finish_with_no_successor(conn):
    rid = recur(conn)
    (run,) = runs(conn, rid)
    start_run(conn, run["id"])
    assert conn.execute("SELECT lzq_unrecur('tick')").fetchone()[0] is True
    row = job(conn, run["id"])
    assert (row["status"], row["recurring_id"]) == ("running", None)
    assert finish(conn, "w1", report(run["id"], "succeeded")) == [(run["id"], "succeeded")]
    sweep(conn)
    assert counts(conn) == (0, 1)
