"""Small reference models in plain Python, for property tests of the SQL rules."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Set


def dependency_outcomes(
    parents: Mapping[int, list[int]], succeeds: Mapping[int, bool], cancelled: Set[int] = frozenset()
) -> dict[int, str]:
    """Final status of every job of a DAG (job ids ascending = a topological order).

    A job runs only once all its dependencies succeeded, and then succeeds or fails by
    ``succeeds``; a job depending on a failed or cancelled job is cancelled, as is every job in
    ``cancelled`` (cancelled by a user before anything ran).
    """
    status: dict[int, str] = {}
    for job in sorted(parents):
        if job in cancelled or any(status[p] in ("failed", "cancelled") for p in parents[job]):
            status[job] = "cancelled"
        else:
            status[job] = "succeeded" if succeeds[job] else "failed"
    return status


def next_slot(every: dt.timedelta, base_time: dt.datetime | None, after: dt.datetime) -> dt.datetime:
    """The seed's rule for the next run of a recurring job, for fixed-length intervals.

    Without a base time: the completion time plus the interval. With one: the first
    ``base_time + k * every`` (k >= 0) strictly after the completion.
    """
    if base_time is None:
        return after + every
    if after < base_time:
        return base_time
    return base_time + ((after - base_time) // every + 1) * every
