"""Settings: the only reader of LZQ_* environment variables."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
#: LZQ_RETENTION values that switch automatic pruning off (compared lower-cased).
RETENTION_OFF = frozenset({"", "0", "off", "never", "none"})
#: LZQ_PREFETCH_MARGIN=auto queues at most this many jobs per slot (jobs of a millisecond or less;
#: see lzq.superqueuer.auto_margin). The margin also sizes the RabbitMQ messages (superqueuer.pack),
#: so it sets the batches of the whole pipeline: a drain of no-op jobs on 2 x 8 slots
#: (benchmarks/throughput.py) ran at 3,700 jobs/s with 1 per slot, 4,300 with 2 and 5,300 with 4;
#: four jobs of 1 ms are still only 4 ms of work queued per slot.
AUTO_MARGIN_MAX_PER_SLOT = 4


@dataclasses.dataclass(frozen=True)
class Settings:
    """Connection strings and timings shared by the client and the daemons.

    Built from ``LZQ_<FIELD>`` environment variables (``Settings.from_env``); CLI options override them.
    """

    #: PostgreSQL conninfo or URL; empty means libpq's defaults (PGHOST, PGDATABASE, ...).
    dsn: str = ""
    amqp_url: str = DEFAULT_AMQP_URL
    #: RabbitMQ queue for lzq queue NAME is "<amqp_prefix>.NAME" (lets tests and tenants share a broker).
    amqp_prefix: str = "lzq"
    #: A job assigned to a worker whose message it has not received within this time is handed back
    #: by that worker (one dispatched by lzq_claim that nobody started, by the sweep).
    dispatch_lease_s: int = 60
    #: Workers heartbeat this often...
    heartbeat_s: float = 2.0
    #: ...and are declared dead (their running jobs re-run) after this long without one.
    worker_dead_after_s: int = 30
    #: Superqueuer backstop poll when no NOTIFY arrives (LISTEN is only a hint).
    poll_interval_s: float = 1.0
    #: How often the superqueuer sweeps expired leases and dead workers.
    sweep_interval_s: float = 5.0
    #: Most jobs one claim or promote statement moves (bounds transaction size).
    claim_batch: int = 500
    #: Extra credit per live worker beyond its slots, so a message waits ready when a slot frees: a
    #: number of jobs, or "auto" (see ``fixed_prefetch_margin``).
    prefetch_margin: str = "auto"
    #: Worker graceful stop: how long running jobs get after SIGTERM before they are handed back.
    stop_grace_s: float = 7.0
    #: lzq-buffer: most buffered pushes written in per transaction (also its RabbitMQ prefetch)...
    buffer_batch: int = 500
    #: ...and how long it waits for more messages to fill a batch once the first one is in.
    buffer_linger_s: float = 0.005
    #: Chaos testing only: "name:probability,..." (see lzq/failpoints.py). Empty in production.
    failpoints: str = ""
    #: Finished jobs (and buffer records) older than this PostgreSQL interval are deleted by the
    #: superqueuers (``lzq_prune``); "0", "off" or "never" keeps them. A day, as River keeps
    #: completed jobs: a failure stays readable for a day, dependents pushed within the day find
    #: their parents, and the table holds one day of history, not all of it.
    retention: str = "1 day"

    def __post_init__(self) -> None:
        self.fixed_prefetch_margin  # noqa: B018 - raises ConfigurationError now, not in a daemon later

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``LZQ_*`` variables, then ``overrides`` (None values are ignored)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            raw = environ.get(f"LZQ_{field.name.upper()}")
            if raw is not None and raw != "":
                values[field.name] = _convert(field.name, raw, type(field.default))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def fixed_prefetch_margin(self) -> int | None:
        """``prefetch_margin`` as a number of jobs, or None for "auto": the superqueuer then sizes the
        margin from recent job durations (short jobs get more queued, up to four per slot; long ones
        one per worker), and each worker lets RabbitMQ hand it up to five messages per slot.

        Raises ConfigurationError for anything else than "auto" or an integer from 0.
        """
        value = str(self.prefetch_margin).strip().lower()
        if value == "auto":
            return None
        if not value.isdigit():
            from lzq.errors import ConfigurationError

            raise ConfigurationError(
                f"LZQ_PREFETCH_MARGIN={self.prefetch_margin!r} must be auto or a whole number of jobs"
            )
        return int(value)

    @property
    def retention_interval(self) -> str | None:
        """``retention`` as an interval for ``lzq_prune``, or None when automatic pruning is off."""
        value = self.retention.strip()
        return None if value.lower() in RETENTION_OFF else value


def _convert(name: str, raw: str, kind: type) -> Any:
    try:
        return kind(raw)
    except ValueError:
        from lzq.errors import ConfigurationError

        raise ConfigurationError(f"LZQ_{name.upper()}={raw!r} is not a valid {kind.__name__}") from None
