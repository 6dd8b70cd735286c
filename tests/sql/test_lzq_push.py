"""lzq_push (and the rules of _lzq_new_job it shares with lzq_push_many), called as plain SQL.

Each test clones a database (~0.3 s), so families of bad values are looped inside one test;
`raises_invalid(..., case=value)` names the value that got through if one does.
"""

from __future__ import annotations

from psycopg.types.json import Jsonb

from tests.sql.helpers import count_jobs, job, push, raises_invalid, schema_snapshot, seconds_from_now

MIB = 1024 * 1024
# jsonb renders {"x": "<s>"} as the string plus 9 bytes of framing.
FRAMING = len('{"x": ""}')


def push_raw(conn, job_name, params, options):
    """lzq_push with the arguments exactly as given (None is SQL NULL)."""
    return conn.execute("SELECT lzq_push(%s, %s, %s)", (job_name, params, options)).fetchone()[0]


# -- the row it writes --------------------------------------------------------------------------------


def test_push_returns_id_and_writes_ready_row_with_defaults_for_missing_or_null_options(conn):
    job_id = conn.execute("SELECT lzq_push('mailer')").fetchone()[0]
    row = job(conn, job_id)
    assert row["job_name"] == "mailer"
    assert row["params"] == {}
    assert (row["queue_name"], row["priority"], row["max_failures"]) == ("default", 0, 3)
    assert row["fairness_key"] == "mailer"
    assert (row["status"], row["attempts"], row["last_error"]) == ("ready", 0, None)
    assert row["dispatch_token"] is None and row["worker_id"] is None and row["lease_expires_at"] is None
    assert row["started_at"] is None and row["finished_at"] is None and row["created_at"] is not None
    assert seconds_from_now(conn, job_id) <= 0
    assert push(conn) > job_id
    # SQL NULL arguments and JSON null option values mean "the default" too.
    row = job(conn, push_raw(conn, "job", None, None))
    assert (row["params"], row["status"], row["priority"]) == ({}, "ready", 0)
    row = job(
        conn,
        push(
            conn, "job", queue_name=None, priority=None, max_failures=None, fairness_key=None, start_time=None
        ),
    )
    assert (row["queue_name"], row["priority"], row["max_failures"], row["fairness_key"], row["status"]) == (
        "default",
        0,
        3,
        "job",
        "ready",
    )


def test_push_stores_params_and_every_option(conn):
    job_id = push(
        conn,
        "report",
        {"bucket": "b1", "n": [1, 2]},
        queue_name="emails",
        priority=-5,
        max_failures=7,
        fairness_key="tenant-42",
    )
    row = job(conn, job_id)
    assert row["params"] == {"bucket": "b1", "n": [1, 2]}
    assert (row["queue_name"], row["priority"], row["max_failures"], row["fairness_key"]) == (
        "emails",
        -5,
        7,
        "tenant-42",
    )


def test_push_accepts_values_at_their_limits(conn):
    for priority in (-20, 20, 1.0):
        assert job(conn, push(conn, priority=priority))["priority"] == int(priority)
    assert job(conn, push(conn, max_failures=1))["max_failures"] == 1
    row = job(conn, push(conn, "j" * 255, queue_name="q" * 200, fairness_key="f" * 255))
    assert (len(row["job_name"]), len(row["queue_name"]), len(row["fairness_key"])) == (255, 200, 255)
    # Lengths are characters, not bytes: 255 two-byte characters fit.
    assert job(conn, push(conn, "é" * 255))["job_name"] == "é" * 255
    big = push(conn, "big", {"x": "a" * (MIB - FRAMING)})
    assert (
        conn.execute("SELECT octet_length(params::text) FROM lzq_jobs WHERE id = %s", (big,)).fetchone()[0]
        == MIB
    )


# -- start_time: ready now or scheduled -----------------------------------------------------------------


def test_push_with_start_time_reached_is_ready(conn):
    for start_time in (
        "now",
        "NOW",
        " now ",
        "+0 seconds",
        "+-1 hour",
        "2014-07-20 00:15:00",
        "2014-07-20T00:15:00+02:00",
        "2000-01-01T00:00:00Z",
    ):
        job_id = push(conn, start_time=start_time)
        assert job(conn, job_id)["status"] == "ready", start_time
        assert seconds_from_now(conn, job_id) <= 0, start_time


def test_push_with_relative_start_time_is_scheduled_that_far_ahead(conn):
    for start_time, seconds in (("+1 hour", 3600), ("+00:00:05", 5), ("+90 seconds", 90), ("+1 day", 86400)):
        with conn.transaction():  # one now() for the push and the check
            job_id = push(conn, start_time=start_time)
            assert seconds_from_now(conn, job_id) == seconds, start_time
        assert job(conn, job_id)["status"] == "scheduled", start_time


def test_push_with_future_timestamp_is_scheduled_at_that_time_in_session_zone_if_none_given(conn):
    conn.execute("SET TimeZone = 'America/New_York'")
    for start_time, utc in (
        ("2099-07-20T00:15:00+02:00", "2099-07-19 22:15:00+00"),
        ("2099-07-20T00:15:00Z", "2099-07-20 00:15:00+00"),
        ("2099-01-01 03:00:00", "2099-01-01 08:00:00+00"),
    ):
        job_id = push(conn, start_time=start_time)
        assert job(conn, job_id)["status"] == "scheduled", start_time
        assert conn.execute(
            "SELECT run_at = %s::timestamptz FROM lzq_jobs WHERE id = %s", (utc, job_id)
        ).fetchone()[0], start_time


# -- bad input: 22023 naming the field, nothing written ------------------------------------------------


def test_push_rejects_unknown_option(conn):
    for options, column in (
        ({"bogus": 1}, "bogus"),
        ({"priority": 1, "delay": 5}, "delay"),
        ({"Priority": 1}, "Priority"),
    ):
        with raises_invalid(column, message="unknown option (known options: queue_name", case=options):
            push(conn, "job", **options)
    assert count_jobs(conn) == 0


def test_push_rejects_priority_out_of_range_or_not_an_integer(conn):
    for priority in (-21, 21, 1.5, "x", "5", True, [1], {"n": 1}, 1e30):
        with raises_invalid("priority", message="must be an integer between -20 and 20", case=priority):
            push(conn, priority=priority)
    with raises_invalid("priority") as excinfo:
        push(conn, priority=99)
    assert excinfo.value.diag.message_primary == "priority: must be an integer between -20 and 20, got 99"
    assert count_jobs(conn) == 0


def test_push_rejects_max_failures_below_one_or_not_an_integer(conn):
    for max_failures in (0, -1, 2.5, "3", 1_000_001):
        with raises_invalid("max_failures", case=max_failures):
            push(conn, max_failures=max_failures)
    assert count_jobs(conn) == 0


def test_push_rejects_empty_blank_too_long_or_non_string_names(conn):
    for job_name in ("", " ", "   "):
        with raises_invalid("job_name", message="must not be empty", case=job_name):
            push(conn, job_name)
    with raises_invalid("job_name"):
        push_raw(conn, None, Jsonb({}), Jsonb({}))
    with raises_invalid("job_name", message="at most 255 characters, got 256"):
        push(conn, "j" * 256)
    for queue_name in ("", " ", "q" * 201, 5, ["default"]):
        with raises_invalid("queue_name", case=queue_name):
            push(conn, queue_name=queue_name)
    for fairness_key in ("", "  ", "f" * 256, 42):
        with raises_invalid("fairness_key", case=fairness_key):
            push(conn, fairness_key=fairness_key)
    assert count_jobs(conn) == 0


def test_push_rejects_whitespace_only_names(conn):
    for name in ("\t", "\n", " \t\r\n "):
        with raises_invalid("job_name", case=name):
            push(conn, name)
        with raises_invalid("queue_name", case=name):
            push(conn, queue_name=name)
    assert count_jobs(conn) == 0


def test_push_rejects_unparsable_or_infinite_start_time(conn):
    for start_time in (
        "soon",
        "",
        "+",
        "+ten minutes",
        "2014-13-45 00:00:00",
        "-1 hour",
        "+1000000 years",
        "now'; DROP TABLE lzq_jobs; --",
    ):
        with raises_invalid("start_time", message="cannot parse", case=start_time):
            push(conn, start_time=start_time)
    for start_time in ("infinity", "-infinity", " Infinity "):
        with raises_invalid("start_time", message="is not a finite time", case=start_time):
            push(conn, start_time=start_time)
    for start_time in (3600, True, ["now"], {"in": "1 hour"}):
        with raises_invalid("start_time", message="must be a string", case=start_time):
            push(conn, start_time=start_time)
    assert count_jobs(conn) == 0


def test_push_rejects_params_or_options_that_are_not_a_json_object_or_params_over_one_mib(conn):
    for params in ([1, 2], "text", 5, True):
        with raises_invalid("job_params", message="must be a JSON object", case=params):
            push_raw(conn, "job", Jsonb(params), Jsonb({}))
    for options in ([1], "priority=5", 7):
        with raises_invalid("job_options", message="must be a JSON object", case=options):
            push_raw(conn, "job", Jsonb({}), Jsonb(options))
    with raises_invalid("job_params", message="must be at most 1048576 bytes of JSON, got 1048577"):
        push(conn, "big", {"x": "a" * (MIB - FRAMING + 1)})
    # 600k two-byte characters: fewer than a million characters, more than a MiB.
    with raises_invalid("job_params", message="at most 1048576 bytes"):
        push(conn, "big", {"x": "é" * 600_000})
    assert count_jobs(conn) == 0


def test_push_takes_json_null_params_and_options_as_not_given(conn):
    job_id = push_raw(conn, "job", Jsonb(None), Jsonb(None))
    assert (job(conn, job_id)["params"], job(conn, job_id)["queue_name"]) == ({}, "default")


# -- names are data ---------------------------------------------------------------------------------------


def test_push_stores_injection_looking_names_verbatim_and_leaves_schema_alone(conn):
    before = schema_snapshot(conn)
    texts = [
        "x'); DROP TABLE lzq_jobs; --",
        '"; DELETE FROM lzq_workers; --',
        "$$; DROP FUNCTION lzq_push; $$",
        "Robert'); TRUNCATE lzq_jobs CASCADE;--",
        "%s %L %I ${queue} \\x00",
        " spaced ",
        "名前 ☃",
    ]
    for text in texts:
        row = job(conn, push(conn, text, {"k": text}, queue_name=text, fairness_key=text))
        assert (row["job_name"], row["queue_name"], row["fairness_key"], row["params"]) == (
            text,
            text,
            text,
            {"k": text},
        )
    assert schema_snapshot(conn) == before
    assert count_jobs(conn) == len(texts)
