"""_lzq_backoff: 2^attempts seconds before the next try, capped at one hour."""

from __future__ import annotations

import datetime as dt


def test_backoff_doubles_per_attempt_and_stops_at_one_hour(conn):
    delays = dict(
        conn.execute(
            "SELECT a, _lzq_backoff(a) FROM unnest(ARRAY[1, 2, 3, 10, 11, 12, 13, 1000]) AS a"
        ).fetchall()
    )
    assert delays == {
        1: dt.timedelta(seconds=2),
        2: dt.timedelta(seconds=4),
        3: dt.timedelta(seconds=8),
        10: dt.timedelta(seconds=1024),
        11: dt.timedelta(seconds=2048),
        12: dt.timedelta(hours=1),
        13: dt.timedelta(hours=1),
        1000: dt.timedelta(hours=1),
    }
