"""lzq.Client against a real PostgreSQL: push, schedule, push_many, get, cancel, transactional enqueue."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import lzq
from lzq import Client, InvalidArgument, JobNotFound, JobRef, LzqError, Status
from tests.conftest import module_database

#: A client and an autocommit connection on the shared empty database of the bad-input cases.
EmptyDb = tuple[Client, psycopg.Connection]

ROW = "job_name, params, queue_name, priority, fairness_key, max_failures, status, attempts"


def row(conn: psycopg.Connection, job: JobRef | int) -> tuple:
    return conn.execute(f"SELECT {ROW} FROM lzq_jobs WHERE id = %s", (int(job),)).fetchone()


def count(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM lzq_jobs").fetchone()[0]


def db_now(conn: psycopg.Connection) -> dt.datetime:
    return conn.execute("SELECT now()").fetchone()[0]


# -- push ----------------------------------------------------------------------------------------


def test_push_returns_a_job_ref_with_the_new_row_id(client: Client, conn: psycopg.Connection) -> None:
    job = client.push("mailer", {"to": "a@b.c"})

    assert isinstance(job, JobRef)
    assert isinstance(job.id, int)
    assert conn.execute("SELECT id FROM lzq_jobs").fetchall() == [(job.id,)]


def test_a_producer_pushing_from_one_thread_uses_one_server_connection(
    client: Client, conn: psycopg.Connection
) -> None:
    # The pool hands out its connections in turn: had the first push found it still opening (and
    # grown it), each push would go to a backend left idle by the one before, 7% slower.
    for n in range(10):
        client.push("noop", {"n": n})
    backends = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'lzq-client'"
        " AND datname = current_database()"
    ).fetchone()[0]
    assert backends == 1
    assert count(conn) == 10


def test_push_applies_defaults(client: Client, conn: psycopg.Connection) -> None:
    job = client.push("mailer")

    assert row(conn, job) == ("mailer", {}, "default", 0, "mailer", 3, "ready", 0)


def test_push_options_as_dict_and_as_keywords_give_the_same_row(
    client: Client, conn: psycopg.Connection
) -> None:
    options = {"queue_name": "emails", "priority": -5, "max_failures": 7, "fairness_key": "tenant-1"}

    as_dict = client.push("mailer", {"n": 1}, options)
    as_keywords = client.push("mailer", {"n": 1}, **options)
    mixed = client.push(
        "mailer", {"n": 1}, {"queue_name": "emails", "priority": -5}, max_failures=7, fairness_key="tenant-1"
    )

    expected = ("mailer", {"n": 1}, "emails", -5, "tenant-1", 7, "ready", 0)
    assert row(conn, as_dict) == row(conn, as_keywords) == row(conn, mixed) == expected


def test_push_accepts_the_same_value_in_dict_and_keyword(client: Client, conn: psycopg.Connection) -> None:
    job = client.push("mailer", {}, {"priority": 4}, priority=4)

    assert row(conn, job)[3] == 4


def test_push_stores_the_dict_job_name_in_canonical_form(client: Client, conn: psycopg.Connection) -> None:
    service = client.push({"type": "pimple", "name": "mailer", "method": "send"})
    cls = client.push({"type": "class", "name": "app.jobs.Report"})

    assert row(conn, service)[0] == "mailer#send"
    assert row(conn, cls)[0] == "app.jobs.Report"


def test_push_with_future_aware_datetime_is_scheduled_at_that_time(
    client: Client, conn: psycopg.Connection
) -> None:
    start = db_now(conn).replace(microsecond=123456) + dt.timedelta(days=1)

    info = client.get(client.push("report", {}, start_time=start))

    assert info.status is Status.SCHEDULED
    assert info.run_at == start


def test_push_with_datetime_in_another_zone_keeps_the_instant(
    client: Client, conn: psycopg.Connection
) -> None:
    tokyo = dt.timezone(dt.timedelta(hours=9))
    start = (db_now(conn) + dt.timedelta(hours=2)).astimezone(tokyo)

    info = client.get(client.push("report", {}, start_time=start))

    assert info.run_at == start


def test_push_with_past_datetime_is_ready_now(client: Client, conn: psycopg.Connection) -> None:
    info = client.get(client.push("report", {}, start_time=db_now(conn) - dt.timedelta(days=1)))

    assert info.status is Status.READY


def test_push_with_timedelta_runs_that_long_after_the_push(client: Client, conn: psycopg.Connection) -> None:
    job = client.push("report", {}, start_time=dt.timedelta(hours=1, milliseconds=500))

    info = client.get(job)
    assert info.status is Status.SCHEDULED
    # run_at and created_at both come from now() of the pushing transaction.
    assert info.run_at - info.created_at == dt.timedelta(hours=1, milliseconds=500)
    assert dt.timedelta(minutes=59) < info.run_at - db_now(conn) <= dt.timedelta(hours=1, seconds=1)


@pytest.mark.parametrize(
    ("start_time", "offset"),
    [
        ("+1 hour", dt.timedelta(hours=1)),
        ("+90 seconds", dt.timedelta(seconds=90)),
        ("+00:00:05", dt.timedelta(seconds=5)),
        ("now", dt.timedelta(0)),
    ],
)
def test_push_with_relative_start_time_text(client: Client, start_time: str, offset: dt.timedelta) -> None:
    info = client.get(client.push("report", {}, start_time=start_time))

    assert info.run_at - info.created_at == offset
    assert info.status is (Status.SCHEDULED if offset else Status.READY)


def test_push_with_timestamp_text_uses_that_time(client: Client) -> None:
    info = client.get(client.push("report", {}, start_time="2099-07-20 00:15:00+00"))

    assert info.run_at == dt.datetime(2099, 7, 20, 0, 15, tzinfo=dt.UTC)
    assert info.status is Status.SCHEDULED


# -- schedule ------------------------------------------------------------------------------------


def test_schedule_queues_the_job_for_start_time(client: Client, conn: psycopg.Connection) -> None:
    start = db_now(conn) + dt.timedelta(hours=3)

    job = client.schedule("report", {"day": "mon"}, start, {"priority": 2}, queue_name="reports")

    info = client.get(job)
    assert (info.status, info.run_at, info.priority, info.queue_name, info.params) == (
        Status.SCHEDULED,
        start,
        2,
        "reports",
        {"day": "mon"},
    )


def test_schedule_accepts_relative_text(client: Client) -> None:
    info = client.get(client.schedule("report", None, "+2 hours"))

    assert info.run_at - info.created_at == dt.timedelta(hours=2)
    assert info.params == {}


# -- push_many -----------------------------------------------------------------------------------


def test_push_many_returns_refs_in_input_order(client: Client, conn: psycopg.Connection) -> None:
    refs = client.push_many(
        [
            ("first", {"n": 1}),
            ("second", {"n": 2}, {"priority": 3}),
            {"job_name": "third", "job_params": {"n": 3}, "job_options": {"queue_name": "other"}},
            ("fourth",),
        ]
    )

    assert [row(conn, ref)[:4] for ref in refs] == [
        ("first", {"n": 1}, "default", 0),
        ("second", {"n": 2}, "default", 3),
        ("third", {"n": 3}, "other", 0),
        ("fourth", {}, "default", 0),
    ]
    assert [ref.id for ref in refs] == sorted(ref.id for ref in refs)


def test_push_many_of_jobs_with_plain_options_takes_every_form(
    client: Client, conn: psycopg.Connection
) -> None:
    # Str names and no options but queue_name, priority, max_failures and fairness_key: the batch is
    # encoded in one call (client._plain_batch) and built set-based in SQL.
    refs = client.push_many(
        [
            ("a", {"n": 1}),
            {"job_name": "b", "job_options": {"queue_name": "q", "priority": 3}},
            ("c",),
            ["d", None, {}],
            ("e", {"n": 5}, {"max_failures": 9, "fairness_key": "t"}),
        ]
    )

    assert [row(conn, ref)[:4] for ref in refs] == [
        ("a", {"n": 1}, "default", 0),
        ("b", {}, "q", 3),
        ("c", {}, "default", 0),
        ("d", {}, "default", 0),
        ("e", {"n": 5}, "default", 0),
    ]
    assert conn.execute(
        "SELECT max_failures, fairness_key FROM lzq_jobs WHERE id = %s", (refs[4].id,)
    ).fetchone() == (9, "t")
    assert [ref.id for ref in refs] == sorted(ref.id for ref in refs)


def test_push_many_of_plain_jobs_still_names_bad_params(empty_db: EmptyDb) -> None:
    client, conn = empty_db
    with pytest.raises(InvalidArgument) as excinfo:
        client.push_many([("ok", {}), ("ok", {}), ("bad", [1, 2])])
    assert excinfo.value.field == "jobs[2].job_params"
    with pytest.raises(InvalidArgument) as excinfo:
        client.push_many([("ok", {}), ("bad", {}, {"queue_name": "q", "priority": 21})])
    assert excinfo.value.field == "jobs[1].priority"
    assert count(conn) == 0


def test_push_many_of_nothing_returns_nothing(client: Client, conn: psycopg.Connection) -> None:
    assert client.push_many([]) == []
    assert count(conn) == 0


# -- get and cancel ------------------------------------------------------------------------------


def test_get_returns_every_field_of_the_row(client: Client, conn: psycopg.Connection) -> None:
    job = client.push(
        "mailer", {"to": "a@b.c"}, queue_name="emails", priority=-3, max_failures=5, fairness_key="tenant-9"
    )

    info = client.get(job)

    assert (info.id, info.job_name, info.params, info.queue_name, info.priority, info.fairness_key) == (
        job.id,
        "mailer",
        {"to": "a@b.c"},
        "emails",
        -3,
        "tenant-9",
    )
    assert (info.attempts, info.max_failures, info.last_error) == (0, 5, None)
    assert (info.started_at, info.finished_at) == (None, None)
    assert info.status is Status.READY
    assert isinstance(info.status, Status)
    assert info.created_at.tzinfo is not None and info.run_at.tzinfo is not None
    assert info.created_at <= db_now(conn)


def test_get_accepts_a_job_ref_or_an_int(client: Client) -> None:
    job = client.push("mailer")

    assert client.get(job) == client.get(job.id)


@pytest.mark.parametrize("start_time", ["now", "+1 day"])
def test_cancel_of_a_pending_job_returns_true_and_cancels_it(client: Client, start_time: str) -> None:
    job = client.push("mailer", {}, start_time=start_time)

    assert client.cancel(job) is True

    info = client.get(job)
    assert info.status is Status.CANCELLED
    assert info.finished_at is not None


def test_cancel_of_a_finished_job_returns_false(client: Client) -> None:
    job = client.push("mailer")
    client.cancel(job)

    assert client.cancel(job.id) is False
    assert client.get(job).status is Status.CANCELLED


def test_cancel_of_a_running_job_returns_false_and_leaves_it_running(
    client: Client, conn: psycopg.Connection
) -> None:
    job = client.push("mailer")
    conn.execute("UPDATE lzq_jobs SET status = 'running', started_at = now() WHERE id = %s", (job.id,))

    assert client.cancel(job) is False
    assert client.get(job).status is Status.RUNNING


# -- transactional enqueue -----------------------------------------------------------------------


@pytest.fixture
def txn_conn(dsn: str) -> Iterator[psycopg.Connection]:
    """A non-autocommit connection: the caller's own transaction."""
    with psycopg.connect(dsn) as c:
        yield c


def test_push_in_a_rolled_back_transaction_leaves_no_job(
    client: Client, conn: psycopg.Connection, txn_conn: psycopg.Connection
) -> None:
    txn_conn.execute("SELECT 1")  # the caller's transaction is already open
    job = client.push("mailer", {"n": 1}, conn=txn_conn)
    assert client.get(job, conn=txn_conn).job_name == "mailer"  # visible inside the transaction
    assert count(conn) == 0  # and to nobody else yet

    txn_conn.rollback()

    assert count(conn) == 0
    with pytest.raises(JobNotFound):
        client.get(job)


def test_push_in_a_committed_transaction_creates_the_job(
    client: Client, conn: psycopg.Connection, txn_conn: psycopg.Connection
) -> None:
    refs = [
        client.push("mailer", {}, conn=txn_conn),
        client.schedule("report", {}, "+1 hour", conn=txn_conn),
        *client.push_many([("a", {}), ("b", {})], conn=txn_conn),
    ]
    assert count(conn) == 0

    txn_conn.commit()

    assert sorted(r[0] for r in conn.execute("SELECT id FROM lzq_jobs")) == sorted(r.id for r in refs)


def test_cancel_in_a_rolled_back_transaction_leaves_the_job_pending(
    client: Client, txn_conn: psycopg.Connection
) -> None:
    job = client.push("mailer")

    assert client.cancel(job, conn=txn_conn) is True
    txn_conn.rollback()

    assert client.get(job).status is Status.READY


# -- bad input -----------------------------------------------------------------------------------
# These cases write nothing (or delete what they write), so they share one migrated database, cloned
# once for this module from the same template as the `conn` fixture, instead of paying for a fresh
# clone per case. Each test still checks the table is empty afterwards; the fixture empties it.


@pytest.fixture(scope="module")
def _bad_input_db(postgresql_noproc: Any) -> Iterator[EmptyDb]:
    with (
        module_database(postgresql_noproc, "bad_input") as dsn,
        Client(dsn=dsn) as client,
        psycopg.connect(dsn, autocommit=True) as conn,
    ):
        yield client, conn


@pytest.fixture
def empty_db(_bad_input_db: EmptyDb) -> Iterator[EmptyDb]:
    """A client and connection on a database with no jobs; jobs written by the test are deleted after."""
    client, conn = _bad_input_db
    assert count(conn) == 0
    yield client, conn
    conn.execute("DELETE FROM lzq_jobs")


class Unserialisable:
    pass


BAD_PUSHES = [
    pytest.param("mailer", {}, {"colour": "red"}, "colour", id="unknown-option"),
    pytest.param("mailer", {}, {"priority": 21}, "priority", id="priority-above-20"),
    pytest.param("mailer", {}, {"priority": -21}, "priority", id="priority-below-minus-20"),
    pytest.param("mailer", {}, {"priority": 1.5}, "priority", id="priority-not-integer"),
    pytest.param("mailer", {}, {"priority": "high"}, "priority", id="priority-not-a-number"),
    pytest.param("mailer", {}, {"max_failures": 0}, "max_failures", id="max-failures-zero"),
    pytest.param("mailer", {}, {"queue_name": ""}, "queue_name", id="empty-queue-name"),
    pytest.param("mailer", {}, {"queue_name": "   "}, "queue_name", id="blank-queue-name"),
    pytest.param("mailer", {}, {"queue_name": 5}, "queue_name", id="queue-name-not-text"),
    pytest.param("mailer", {}, {"fairness_key": ""}, "fairness_key", id="empty-fairness-key"),
    pytest.param("mailer", {}, {"start_time": "whenever"}, "start_time", id="unparsable-start-time"),
    pytest.param("mailer", {}, {"start_time": "+3 fortnights"}, "start_time", id="unparsable-interval"),
    pytest.param("mailer", {}, {"start_time": "infinity"}, "start_time", id="infinite-start-time"),
    pytest.param("mailer", {}, {"start_time": 5}, "start_time", id="start-time-not-text"),
    pytest.param("mailer", [1, 2], {}, "job_params", id="params-a-list"),
    pytest.param("mailer", "text", {}, "job_params", id="params-a-string"),
    pytest.param("mailer", {"blob": "x" * (1024 * 1024)}, {}, "job_params", id="params-over-1-mib"),
    pytest.param("", {}, {}, "job_name", id="empty-job-name"),
    pytest.param("x" * 256, {}, {}, "job_name", id="job-name-too-long"),
    pytest.param({"type": "widget", "name": "x"}, {}, {}, "job_name", id="bad-dict-job-name"),
    pytest.param(42, {}, {}, "job_name", id="job-name-not-text"),
]


@pytest.mark.parametrize(("job_name", "params", "options", "field"), BAD_PUSHES)
def test_push_rejects_bad_input_naming_the_field_and_writes_nothing(
    empty_db: EmptyDb, job_name: Any, params: Any, options: dict, field: str
) -> None:
    client, conn = empty_db
    with pytest.raises(InvalidArgument) as excinfo:
        client.push(job_name, params, options)

    assert excinfo.value.field == field
    assert str(excinfo.value).startswith(f"{field}:")
    assert count(conn) == 0


def test_push_rejects_an_unknown_keyword_option_naming_it(empty_db: EmptyDb) -> None:
    client, conn = empty_db
    with pytest.raises(InvalidArgument) as excinfo:
        client.push("mailer", {}, prioritty=3)

    assert excinfo.value.field == "prioritty"
    assert count(conn) == 0


def test_push_rejects_job_options_that_are_not_a_dict(empty_db: EmptyDb) -> None:
    client, conn = empty_db
    with pytest.raises(InvalidArgument) as excinfo:
        client.push("mailer", {}, [("priority", 1)])  # type: ignore[arg-type]

    assert excinfo.value.field == "job_options"
    assert count(conn) == 0


def test_push_rejects_conflicting_dict_and_keyword_values(empty_db: EmptyDb) -> None:
    client, conn = empty_db
    with pytest.raises(InvalidArgument) as excinfo:
        client.push("mailer", {}, {"priority": 4}, priority=5)

    assert excinfo.value.field == "priority"
    assert count(conn) == 0


def test_schedule_rejects_start_time_also_given_as_an_option(
    empty_db: EmptyDb,
) -> None:
    client, conn = empty_db
    with pytest.raises(InvalidArgument) as excinfo:
        client.schedule("report", {}, "+1 hour", start_time="+2 hours")

    assert excinfo.value.field == "start_time"
    assert count(conn) == 0


def test_schedule_rejects_unparsable_start_time(empty_db: EmptyDb) -> None:
    client, conn = empty_db
    with pytest.raises(InvalidArgument) as excinfo:
        client.schedule("report", {}, "next tuesday-ish")

    assert excinfo.value.field == "start_time"
    assert count(conn) == 0


def test_push_many_is_all_or_nothing_and_names_the_bad_job(empty_db: EmptyDb) -> None:
    client, conn = empty_db
    with pytest.raises(InvalidArgument) as excinfo:
        client.push_many([("ok", {}), ("bad", {}, {"priority": 99}), ("ok", {})])

    assert excinfo.value.field == "jobs[1].priority"
    assert str(excinfo.value).startswith("jobs[1]: priority:")
    assert count(conn) == 0


def test_push_many_names_a_bad_dict_job_name_by_index(empty_db: EmptyDb) -> None:
    client, conn = empty_db
    with pytest.raises(InvalidArgument) as excinfo:
        client.push_many([("ok", {}), ("ok", {}), ({"type": "widget", "name": "x"}, {})])

    assert excinfo.value.field == "jobs[2].job_name"
    assert count(conn) == 0


def test_push_many_rejects_an_element_that_is_not_a_job(empty_db: EmptyDb) -> None:
    client, conn = empty_db
    with pytest.raises(InvalidArgument) as excinfo:
        client.push_many([("ok", {}), "not-a-tuple"])

    assert excinfo.value.field == "jobs[1]"
    assert count(conn) == 0


def test_get_unknown_id_raises_job_not_found(empty_db: EmptyDb) -> None:
    client, _ = empty_db
    with pytest.raises(JobNotFound) as excinfo:
        client.get(424242)

    assert excinfo.value.job_id == 424242


def test_cancel_unknown_id_raises_job_not_found(empty_db: EmptyDb) -> None:
    client, _ = empty_db
    with pytest.raises(JobNotFound) as excinfo:
        client.cancel(424242)

    assert excinfo.value.job_id == 424242


def test_bad_input_errors_are_lzq_errors(empty_db: EmptyDb) -> None:
    client, _ = empty_db
    with pytest.raises(LzqError):
        client.push("mailer", {}, priority=100)


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"tags": {"a", "b"}}, id="set-value"),
        pytest.param({"a", "b"}, id="a-set"),
        pytest.param({"obj": Unserialisable()}, id="object-value"),
        pytest.param({"when": dt.datetime(2030, 1, 1)}, id="datetime-value"),
        pytest.param({"x": float("nan")}, id="nan"),
        pytest.param({"x": float("inf")}, id="infinity"),
    ],
)
def test_push_rejects_params_that_are_not_json_naming_job_params(empty_db: EmptyDb, params: Any) -> None:
    client, conn = empty_db
    with pytest.raises(InvalidArgument) as excinfo:
        client.push("mailer", params)

    assert excinfo.value.field == "job_params"
    assert count(conn) == 0


def test_push_many_rejects_non_json_params_naming_the_job(empty_db: EmptyDb) -> None:
    client, conn = empty_db
    with pytest.raises(InvalidArgument) as excinfo:
        client.push_many([("ok", {}), ("bad", {"tags": {"a"}})])

    assert excinfo.value.field == "jobs[1].job_params"
    assert count(conn) == 0


def test_push_rejects_a_date_start_time_as_invalid_argument(empty_db: EmptyDb) -> None:
    client, conn = empty_db
    with pytest.raises(InvalidArgument) as excinfo:
        client.push("mailer", {}, start_time=dt.date(2030, 1, 1))

    assert excinfo.value.field == "start_time"
    assert count(conn) == 0


def test_push_accepts_params_just_under_1_mib(empty_db: EmptyDb) -> None:
    client, conn = empty_db
    # {"blob": "..."} adds 12 bytes of JSON around the string.
    job = client.push("mailer", {"blob": "x" * (1024 * 1024 - 12)})

    assert (
        conn.execute("SELECT octet_length(params::text) FROM lzq_jobs WHERE id = %s", (job.id,)).fetchone()[0]
        == 1024 * 1024
    )


# -- module-level API ----------------------------------------------------------------------------


@pytest.mark.usefixtures("env_default_client")
def test_module_level_functions_use_lzq_dsn_from_the_environment(conn: psycopg.Connection, dsn: str) -> None:
    job = lzq.push("mailer", {"to": "a@b.c"}, priority=2)
    later = lzq.schedule("report", {}, "+1 hour")
    batch = lzq.push_many([("a", {}), ("b", {})])

    assert lzq.get(job).priority == 2
    assert lzq.get(later).status is Status.SCHEDULED
    assert lzq.cancel(job) is True
    assert lzq.get(job.id).status is Status.CANCELLED
    assert count(conn) == 2 + len(batch)
    assert lzq.default_client() is lzq.default_client()
    assert lzq.default_client().settings.dsn == dsn


@pytest.mark.usefixtures("env_default_client")
def test_module_level_get_and_cancel_raise_job_not_found() -> None:
    with pytest.raises(JobNotFound):
        lzq.get(424242)
    with pytest.raises(JobNotFound):
        lzq.cancel(424242)


def test_a_pooled_connection_killed_while_idle_is_replaced_without_an_error(client, dsn):
    """The pool checks a connection that sat idle for a second or more before handing it out
    (connections used just before are trusted: the check would cost a round trip per push)."""
    client.push("before")
    with psycopg.connect(dsn, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()[0]
    assert killed >= 1
    time.sleep(1.1)
    assert client.get(client.push("after")).status == "ready"
