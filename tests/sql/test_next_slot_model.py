"""Properties of the recurrence math (_lzq_next_slot, cron fire times) against a Python reference."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lzq.recurrence import cron_fire_times
from tests.model import next_slot

UTC = dt.UTC
moments = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(UTC)
)
fixed_intervals = st.builds(
    dt.timedelta, seconds=st.integers(min_value=1, max_value=10**7), microseconds=st.integers(0, 999_999)
)
PROPERTY = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def sql_next_slot(conn: psycopg.Connection, every, base_time, after, timezone: str = "UTC") -> dt.datetime:
    return conn.execute(
        "SELECT _lzq_next_slot(%s, %s, %s, %s)", (every, base_time, after, timezone)
    ).fetchone()[0]


@PROPERTY
@given(every=fixed_intervals, base_time=st.none() | moments, after=moments)
def test_next_slot_matches_the_reference_model(conn, every, base_time, after):
    result = sql_next_slot(conn, every, base_time, after)

    assert result == next_slot(every, base_time, after)
    assert result > after
    if base_time is not None:
        assert (result - base_time) % every == dt.timedelta(0)  # on the grid
        assert result >= base_time
        if after >= base_time:
            assert result - after <= every  # never more than one interval ahead of the completion


@PROPERTY
@given(
    base_time=st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2030, 1, 1)),
    after=st.datetimes(
        min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2031, 1, 1), timezones=st.just(UTC)
    ),
    zone=st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Sydney", "UTC"]),
)
def test_daily_slots_keep_their_wall_clock_time_across_dst(conn, base_time, after, zone):
    tz = zoneinfo.ZoneInfo(zone)
    local_base = base_time.replace(hour=12, tzinfo=tz)  # noon exists on every day, DST or not

    result = sql_next_slot(conn, dt.timedelta(days=1), local_base, after, zone)

    assert result > after
    assert result.astimezone(tz).time() == local_base.time()
    if after >= local_base:
        assert result - after <= dt.timedelta(hours=25)  # a day, plus the hour a DST change may add


@settings(max_examples=150, deadline=None)
@given(
    cron=st.sampled_from(["30 2 * * *", "0 * * * *", "*/15 1-3 * * *", "0 3 * * 0", "45 23 L * *"]),
    zone=st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC"]),
    after=st.datetimes(
        min_value=dt.datetime(2024, 1, 1), max_value=dt.datetime(2030, 1, 1), timezones=st.just(UTC)
    ),
)
def test_cron_fire_times_only_move_forward_across_dst(cron, zone, after):
    times = cron_fire_times(cron, zone, after, count=30)

    assert times[0] > after
    instants = [t.astimezone(UTC) for t in times]  # compare instants: Python ignores fold within a zone
    assert all(a < b for a, b in zip(instants, instants[1:], strict=False))


def test_completion_takes_the_first_cron_time_after_it(conn):
    after = dt.datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
    times = cron_fire_times("30 2 * * *", "Europe/Berlin", after, count=5)
    conn.execute(
        "SELECT lzq_recur('c', '{}', 'c', NULL, cron => '30 2 * * *', timezone => 'Europe/Berlin',"
        " cron_slots => %s)",
        (times,),
    )
    for completion, expected in [
        (after, times[0]),
        (times[0], times[1]),
        (times[2] - dt.timedelta(seconds=1), times[2]),
    ]:
        got = conn.execute(
            "SELECT _lzq_recur_after(r, %s) FROM lzq_recurring AS r WHERE known_as = 'c'", (completion,)
        ).fetchone()[0]
        assert got == expected
