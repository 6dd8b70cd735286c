"""lzq.Client.recur / unrecur / recurring: recurring jobs from Python, against a real database."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from croniter import croniter

import lzq
from lzq import Client, InvalidArgument, Recurring, Status
from lzq.recurrence import CRON_REFILL_BELOW, CRON_TIMES_AHEAD
from tests.conftest import module_database

UTC = dt.UTC
BASE = dt.datetime(2014, 7, 20, 3, tzinfo=UTC)


def recorded_at(conn: psycopg.Connection, known_as: str) -> dt.datetime:
    """The database time of the recur call that created the definition (its transaction's now())."""
    return conn.execute("SELECT created_at FROM lzq_recurring WHERE known_as = %s", (known_as,)).fetchone()[0]


def counts(conn: psycopg.Connection) -> tuple[int, int]:
    """(definitions, jobs)."""
    return conn.execute(
        "SELECT (SELECT count(*) FROM lzq_recurring), (SELECT count(*) FROM lzq_jobs)"
    ).fetchone()


def first_slot_at_or_after(base: dt.datetime, every: dt.timedelta, t: dt.datetime) -> dt.datetime:
    return base + max(0, -((base - t) // every)) * every


# -- defining ------------------------------------------------------------------------------------


def test_recur_returns_the_definition_with_its_pending_run(client: Client, conn: psycopg.Connection) -> None:
    defined = client.recur(
        "report", {"to": "ops"}, "report:every_6_hours", "06:00:00", "2014-07-20 03:00:00+00", priority=3
    )

    assert isinstance(defined, Recurring)
    assert (defined.known_as, defined.job_name, defined.params, defined.options) == (
        "report:every_6_hours",
        "report",
        {"to": "ops"},
        {"priority": 3},
    )
    assert (defined.interval, defined.base_time, defined.cron, defined.timezone) == (
        dt.timedelta(hours=6),
        BASE,
        None,
        "UTC",
    )
    slot = first_slot_at_or_after(BASE, dt.timedelta(hours=6), recorded_at(conn, "report:every_6_hours"))
    assert defined.next_run_at == slot
    run = client.get(defined.next_job_id)
    assert (run.job_name, run.params, run.priority, run.run_at) == ("report", {"to": "ops"}, 3, slot)


@pytest.mark.parametrize(
    ("interval", "every"),
    [
        (dt.timedelta(minutes=90), dt.timedelta(minutes=90)),
        (3600, dt.timedelta(hours=1)),
        (0.5, dt.timedelta(milliseconds=500)),
        ("12:00:00", dt.timedelta(hours=12)),
        ("1 day", dt.timedelta(days=1)),
    ],
)
def test_recur_takes_the_interval_as_timedelta_seconds_or_text(
    client: Client, interval: Any, every: Any
) -> None:
    assert client.recur("tick", {}, "tick", interval).interval == every


def test_recur_without_base_time_first_runs_at_once(client: Client, conn: psycopg.Connection) -> None:
    defined = client.recur("tick", {}, "tick", dt.timedelta(hours=1))

    assert defined.next_run_at == recorded_at(conn, "tick")
    assert client.get(defined.next_job_id).status is Status.READY


def test_recur_without_base_time_first_runs_at_the_start_time_option(
    client: Client, conn: psycopg.Connection
) -> None:
    defined = client.recur("tick", {}, "tick", 3600, start_time=dt.timedelta(minutes=10))

    assert defined.next_run_at == recorded_at(conn, "tick") + dt.timedelta(minutes=10)
    assert client.get(defined.next_job_id).status is Status.SCHEDULED


def test_recur_with_a_zoned_datetime_base_time_runs_on_its_grid(
    client: Client, conn: psycopg.Connection
) -> None:
    base = dt.datetime(2014, 7, 20, 5, 30, tzinfo=zoneinfo.ZoneInfo("Asia/Kolkata"))  # 00:00 UTC
    defined = client.recur("tick", {}, "tick", dt.timedelta(hours=6), base)

    assert defined.base_time == base
    slot = first_slot_at_or_after(base, dt.timedelta(hours=6), recorded_at(conn, "tick"))
    assert defined.next_run_at == slot
    assert slot.astimezone(UTC).hour in (0, 6, 12, 18)


def test_recur_with_cron_first_runs_at_the_next_croniter_fire_time(
    client: Client, conn: psycopg.Connection
) -> None:
    defined = client.recur("cleanup", {}, "cleanup", cron="*/5 * * * *")

    now = recorded_at(conn, "cleanup")
    expected = croniter("*/5 * * * *", now - dt.timedelta(microseconds=1)).get_next(dt.datetime)
    assert defined.next_run_at == expected
    assert (defined.interval, defined.cron) == (None, "*/5 * * * *")
    # Fire times are kept ahead for the completions to pick from, well above the refill threshold.
    (fire_times,) = conn.execute("SELECT cron_slots FROM lzq_recurring WHERE known_as = 'cleanup'").fetchone()
    assert len(fire_times) == CRON_TIMES_AHEAD
    assert fire_times == sorted(fire_times)
    assert expected in fire_times
    assert conn.execute("SELECT * FROM lzq_recur_cron_due(%s)", (CRON_REFILL_BELOW,)).fetchall() == []


def test_recur_with_cron_in_a_timezone_fires_at_that_local_time(
    client: Client, conn: psycopg.Connection
) -> None:
    defined = client.recur("nightly", {}, "nightly", cron="30 3 * * *", timezone="Europe/Paris")

    local = defined.next_run_at.astimezone(zoneinfo.ZoneInfo("Europe/Paris"))
    assert (local.hour, local.minute) == (3, 30)
    assert dt.timedelta(0) < defined.next_run_at - recorded_at(conn, "nightly") <= dt.timedelta(hours=25)
    assert defined.timezone == "Europe/Paris"


def test_recur_again_with_the_same_name_updates_the_definition_and_never_duplicates_it(
    client: Client, conn: psycopg.Connection
) -> None:
    first = client.recur("report", {"v": 1}, "report", "01:00:00", BASE)
    again = client.recur("report", {"v": 1}, "report", "01:00:00", BASE)
    assert again == first

    changed = client.recur("report", {"v": 2}, "report", "01:00:00", BASE, {"priority": -5})
    assert (changed.id, changed.next_job_id, changed.next_run_at) == (
        first.id,
        first.next_job_id,
        first.next_run_at,
    )
    assert (changed.params, changed.options) == ({"v": 2}, {"priority": -5})
    run = client.get(changed.next_job_id)
    assert (run.params, run.priority) == ({"v": 2}, -5)
    assert counts(conn) == (1, 1)


def test_recurring_lists_every_definition_by_known_as_with_its_pending_run(
    client: Client, conn: psycopg.Connection
) -> None:
    b = client.recur("job", {}, "b", "01:00:00")
    a = client.recur("job", {}, "a", "00:10:00", start_time="+1 hour")
    conn.execute("SELECT lzq_recur('job', '{}', 'c', NULL, cron => '0 3 * * *')")  # no fire times yet

    listed = client.recurring()

    assert [r.known_as for r in listed] == ["a", "b", "c"]
    assert listed[:2] == [a, b]
    assert (listed[2].cron, listed[2].next_run_at, listed[2].next_job_id) == ("0 3 * * *", None, None)


def test_recurring_is_empty_without_definitions(client: Client) -> None:
    assert client.recurring() == []


def test_unrecur_removes_the_definition_and_cancels_its_pending_run(client: Client) -> None:
    defined = client.recur("job", {}, "tick", "01:00:00")
    kept = client.recur("job", {}, "other", "01:00:00")

    assert client.unrecur("tick") is True
    assert client.unrecur("tick") is False
    assert client.unrecur("never-defined") is False
    assert client.get(defined.next_job_id).status is Status.CANCELLED
    assert client.recurring() == [kept]


def test_recur_in_a_rolled_back_transaction_leaves_nothing(
    client: Client, conn: psycopg.Connection, dsn: str
) -> None:
    with psycopg.connect(dsn) as txn_conn:
        defined = client.recur("job", {}, "tick", "01:00:00", conn=txn_conn)
        assert client.recurring(conn=txn_conn) == [defined]
        txn_conn.rollback()

    assert counts(conn) == (0, 0)


def test_recur_takes_interval_and_base_time_as_keywords_as_the_spec_shows(client: Client) -> None:
    defined = client.recur("report", {}, "report", interval="12:00:00", base_time="2014-07-20 03:00:00+00")

    assert (defined.interval, defined.base_time) == (dt.timedelta(hours=12), BASE)


# -- bad input -----------------------------------------------------------------------------------
# These cases write nothing, so they share one database cloned once for this module from the same
# migrated template as the `conn` fixture, instead of paying for a fresh clone per case.


@pytest.fixture(scope="module")
def _shared_db(postgresql_noproc: Any) -> Iterator[tuple[Client, psycopg.Connection]]:
    with (
        module_database(postgresql_noproc, "client_recur") as dsn,
        Client(dsn=dsn) as client,
        psycopg.connect(dsn, autocommit=True) as conn,
    ):
        yield client, conn


@pytest.fixture
def empty_db(_shared_db: tuple[Client, psycopg.Connection]) -> Iterator[tuple[Client, psycopg.Connection]]:
    """A client and connection on a database with no jobs or definitions; emptied again after."""
    client, conn = _shared_db
    assert counts(conn) == (0, 0)
    yield client, conn
    conn.execute("DELETE FROM lzq_jobs")
    conn.execute("DELETE FROM lzq_recurring")


def recur_call(*args: Any, **kwargs: Any) -> Callable[[Client], Any]:
    """client.recur("job", {}, *args, **kwargs), to call later."""
    return lambda client: client.recur("job", {}, *args, **kwargs)


BAD_RECURS = [
    pytest.param(recur_call("k", cron="61 * * * *"), "cron", id="cron-minute-61"),
    pytest.param(recur_call("k", cron="x"), "cron", id="cron-not-an-expression"),
    pytest.param(recur_call("k", "01:00:00", cron="0 3 * * *"), "interval", id="interval-and-cron"),
    pytest.param(recur_call("k"), "interval", id="neither-interval-nor-cron"),
    pytest.param(recur_call("k", dt.timedelta(0)), "interval", id="interval-zero"),
    pytest.param(recur_call("k", -5), "interval", id="interval-negative"),
    pytest.param(recur_call("k", "blah"), "interval", id="interval-unparsable"),
    pytest.param(recur_call("k", True), "interval", id="interval-a-bool"),
    pytest.param(recur_call("k", [1]), "interval", id="interval-a-list"),
    pytest.param(recur_call("", 60), "known_as", id="empty-known-as"),
    pytest.param(recur_call("k", 60, "whenever"), "base_time", id="base-time-unparsable"),
    pytest.param(recur_call("k", None, BASE, cron="0 3 * * *"), "base_time", id="base-time-with-cron"),
    pytest.param(
        recur_call("k", 60, BASE, start_time="+1 hour"), "start_time", id="start-time-with-base-time"
    ),
    pytest.param(
        recur_call("k", cron="0 3 * * *", start_time="now"), "start_time", id="start-time-with-cron"
    ),
    pytest.param(recur_call("k", 60, timezone="Mars/Olympus"), "timezone", id="unknown-timezone"),
    pytest.param(
        recur_call("k", cron="0 3 * * *", timezone="Mars/Olympus"), "timezone", id="unknown-timezone-cron"
    ),
    pytest.param(recur_call("k", 60, priority=99), "priority", id="priority-out-of-range"),
    pytest.param(recur_call("k", 60, None, {"colour": "red"}), "colour", id="unknown-option"),
    pytest.param(recur_call("k", 60, colour="red"), "colour", id="unknown-keyword-option"),
    pytest.param(recur_call("k", 60, None, {"priority": 1}, priority=2), "priority", id="option-given-twice"),
]


@pytest.mark.parametrize(("call", "field"), BAD_RECURS)
def test_recur_rejects_bad_input_naming_the_field_and_writes_nothing(
    empty_db: tuple[Client, psycopg.Connection], call: Callable[[Client], Any], field: str
) -> None:
    client, conn = empty_db
    with pytest.raises(InvalidArgument) as excinfo:
        call(client)

    assert excinfo.value.field == field
    assert str(excinfo.value).startswith(f"{field}:")
    assert counts(conn) == (0, 0)


def test_recur_rejects_params_that_are_not_json(empty_db: tuple[Client, psycopg.Connection]) -> None:
    client, conn = empty_db
    with pytest.raises(InvalidArgument) as excinfo:
        client.recur("job", {"tags": {1, 2}}, "k", 60)

    assert excinfo.value.field == "job_params"
    assert counts(conn) == (0, 0)


def test_recur_rejects_a_base_time_of_the_wrong_type_naming_base_time(
    empty_db: tuple[Client, psycopg.Connection],
) -> None:
    client, conn = empty_db
    with pytest.raises(InvalidArgument) as excinfo:
        client.recur("job", {}, "k", 3600, dt.date(2014, 7, 20))

    assert excinfo.value.field == "base_time"
    assert counts(conn) == (0, 0)


def test_recur_rejects_runs_depending_on_jobs(empty_db: tuple[Client, psycopg.Connection]) -> None:
    client, conn = empty_db
    other = client.push("other", {})
    with pytest.raises(InvalidArgument) as excinfo:
        client.recur("job", {}, "k", 60, depends_on=[other])

    assert excinfo.value.field == "depends_on"
    assert counts(conn) == (0, 1)


# -- module-level API ----------------------------------------------------------------------------


@pytest.mark.usefixtures("env_default_client")
def test_module_level_recur_uses_lzq_dsn_from_the_environment(conn: psycopg.Connection) -> None:
    defined = lzq.recur("report", {"to": "ops"}, "report:hourly", "01:00:00", max_failures=2)

    assert isinstance(defined, Recurring)
    assert conn.execute("SELECT id, known_as FROM lzq_recurring").fetchall() == [
        (defined.id, "report:hourly")
    ]
    run = lzq.get(defined.next_job_id)
    assert (run.status, run.max_failures) == (Status.READY, 2)
