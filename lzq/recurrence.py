"""Recurring jobs on the Python side: schedule arguments as SQL takes them, cron via croniter."""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo
from typing import Any

from croniter import croniter

from lzq.errors import InvalidArgument

#: Cron fire times kept precomputed per definition, and the refill threshold (superqueuer sweeps).
CRON_TIMES_AHEAD = 50
CRON_REFILL_BELOW = 10


@dataclasses.dataclass(frozen=True)
class Recurring:
    """A recurring job definition and its pending run, as ``Client.recurring()`` lists them."""

    id: int
    known_as: str
    job_name: str
    params: dict[str, Any]
    options: dict[str, Any]
    interval: dt.timedelta | None
    base_time: dt.datetime | None
    cron: str | None
    timezone: str
    next_run_at: dt.datetime | None
    next_job_id: int | None

    #: The select list that builds a Recurring from ``lzq_recurring AS r`` joined to its pending run ``j``.
    COLUMNS = (
        "r.id, r.known_as, r.job_name, r.params, r.options, r.every, r.base_time, r.cron, r.timezone, "
        "j.run_at, j.id"
    )
    FROM = (
        "lzq_recurring AS r LEFT JOIN lzq_jobs AS j ON j.recurring_id = r.id "
        "AND j.status IN ('waiting', 'scheduled', 'ready', 'dispatched', 'running')"
    )


def interval_text(interval: Any) -> str | None:
    """timedelta or seconds → seconds text; strings ('12:00:00', '1 day') pass through for SQL."""
    if interval is None or isinstance(interval, str):
        return interval
    if isinstance(interval, dt.timedelta):
        return repr(interval.total_seconds())
    if isinstance(interval, int | float) and not isinstance(interval, bool):
        return repr(float(interval))
    raise InvalidArgument("interval", f"interval: must be a timedelta, seconds or a string, got {interval!r}")


def zone(timezone: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidArgument("timezone", f"timezone: unknown time zone {timezone!r}") from None


def cron_fire_times(
    cron: str, timezone: str, after: dt.datetime, count: int = CRON_TIMES_AHEAD
) -> list[dt.datetime]:
    """The next ``count`` fire times of a croniter expression strictly after ``after``, computed on
    the wall clock of ``timezone`` (croniter handles DST), as aware datetimes."""
    if not isinstance(cron, str) or not croniter.is_valid(cron):
        raise InvalidArgument("cron", f"cron: {cron!r} is not a valid cron expression")
    times = croniter(cron, after.astimezone(zone(timezone)))
    return [times.get_next(dt.datetime) for _ in range(count)]
