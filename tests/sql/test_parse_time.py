"""_lzq_parse_time: start times as users write them, in database time; 22023 naming the given field."""

from __future__ import annotations

from tests.sql.helpers import raises_invalid


def parse(conn, value, field="start_time"):
    return conn.execute("SELECT _lzq_parse_time(%s, %s)", (value, field)).fetchone()[0]


def is_true(conn, sql, params=()):
    return conn.execute(sql, params).fetchone()[0] is True


def test_parse_time_reads_now_and_null_as_transaction_time(conn):
    for value in (None, "now", "NOW", "  Now\t"):
        assert is_true(conn, "SELECT _lzq_parse_time(%s, 'f') = now()", (value,)), value


def test_parse_time_adds_any_postgresql_interval_after_plus(conn):
    for value, interval in (
        ("+1 hour", "1 hour"),
        ("+00:00:05", "5 seconds"),
        ("+90 seconds", "90 seconds"),
        ("+1 day 2 hours", "26 hours"),
        ("+P1D", "1 day"),
        (" +-5 minutes ", "-5 minutes"),
        ("+1.5 seconds", "1500 milliseconds"),
    ):
        assert is_true(conn, "SELECT _lzq_parse_time(%s, 'f') = now() + %s::interval", (value, interval)), (
            value
        )


def test_parse_time_reads_timestamps_with_zone_exactly_and_without_zone_in_session_time_zone(conn):
    conn.execute("SET TimeZone = 'Europe/Paris'")
    for value, utc in (
        ("2014-07-20 00:15:00", "2014-07-19 22:15:00+00"),
        ("2014-07-20T00:15:00", "2014-07-19 22:15:00+00"),
        ("2014-07-20T00:15:00Z", "2014-07-20 00:15:00+00"),
        ("2014-07-20 00:15:00+05:30", "2014-07-19 18:45:00+00"),
        ("2014-07-20T00:15:00.250-03:00", "2014-07-20 03:15:00.25+00"),
    ):
        assert is_true(conn, "SELECT _lzq_parse_time(%s, 'f') = %s::timestamptz", (value, utc)), value


def test_parse_time_rejects_unparsable_values_naming_the_callers_field(conn):
    for value in (
        "soon",
        "",
        "   ",
        "+",
        "+soon",
        "2014-02-30 00:00:00",
        "1 hour",
        "+1000000 years",
        "now(); DROP TABLE lzq_jobs",
    ):
        with raises_invalid("run_after", message="cannot parse", case=value):
            parse(conn, value, "run_after")
    with raises_invalid("base_time") as excinfo:
        parse(conn, "soon", "base_time")
    assert excinfo.value.diag.message_primary == (
        "base_time: cannot parse 'soon' as a time: use 'now', '+<interval>' or a timestamp"
    )


def test_parse_time_rejects_infinite_times(conn):
    for value in ("infinity", "-infinity", "+infinity"):
        with raises_invalid("start_time", case=value):
            parse(conn, value)
