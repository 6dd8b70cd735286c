"""Maintenance: sweep up after crashes (lzq_sweep) and precompute cron fire times, delete finished
jobs older than the retention (lzq_prune), a small batch at a time, and refresh lzq_jobs statistics
far out of date; a superqueuer does all of it on a thread of its own."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from typing import Any

from lzq import db, recurrence
from lzq.backoff import Backoff
from lzq.errors import ConfigurationError, InvalidArgument, first_line

#: How often a superqueuer prunes while the previous batch left nothing behind: the table holds one
#: retention plus up to this long of finished jobs (an empty turn costs one ~1 ms statement).
PRUNE_INTERVAL_S = 10.0
#: Rows per superqueuer batch: about 25 ms of deleting (1,000 jobs with dependency rows, PostgreSQL
#: 15 on the development machine), short enough to slip in between two claim passes.
PRUNE_BATCH = 1000
#: A full batch means more is due: the next comes this soon, so one superqueuer deletes up to
#: PRUNE_BATCH / PRUNE_BACKLOG_INTERVAL_S = 10,000 rows a second (a quarter of its time at most),
#: well above the rate it can dispatch jobs at: the table cannot outgrow the pruner.
PRUNE_BACKLOG_INTERVAL_S = 0.1
#: `lzq prune`: rows per transaction (lzq_prune's own default).
CLI_BATCH = 10_000

#: The superqueuer's call: NULL at once while another pruner holds lzq_prune's advisory lock, instead
#: of waiting in the claim loop; lzq_prune then takes the same lock again, which a session holding it
#: already gets at once. The key is the one in functions/lzq_prune.sql.
PRUNE_UNLESS_BUSY = """SELECT CASE WHEN pg_try_advisory_xact_lock(hashtextextended('lzq_prune', 0))
                                    THEN lzq_prune(%s::interval, %s) END"""


class Pruner:
    """Deletes finished jobs older than ``retention`` for a superqueuer, one batch per ``run_once``.

    ``Upkeep`` calls ``run_once`` at ``next_at``; it does something every ``interval_s``, or
    every ``backlog_interval_s`` while batches come back full, so a backlog (pruning switched on
    for an old table) drains in small transactions between claims instead of one long one. Among
    several superqueuers, whoever gets lzq_prune's advisory lock prunes and the others skip.
    ``retention`` None (LZQ_RETENTION=off) makes it do nothing.
    """

    def __init__(
        self,
        retention: str | None,
        log: Any,
        *,
        batch: int = PRUNE_BATCH,
        interval_s: float = PRUNE_INTERVAL_S,
        backlog_interval_s: float = PRUNE_BACKLOG_INTERVAL_S,
    ) -> None:
        self.retention = retention
        self.batch = batch
        self.interval_s = interval_s
        self.backlog_interval_s = backlog_interval_s
        self.log = log
        self.next_at = 0.0  # monotonic; the first pass prunes at once

    def run_once(self, conn: Any) -> int:
        """Prune one batch if it is time; returns the rows deleted (0 if not due, off or busy).

        Logs ``jobs_pruned`` (``count``, ``older_than``) when it deleted something. Raises
        ConfigurationError if PostgreSQL cannot use the retention as an interval (or it is negative).
        """
        if self.retention is None or time.monotonic() < self.next_at:
            return 0
        try:
            [(deleted,)] = db.fetch(conn, PRUNE_UNLESS_BUSY, (self.retention, self.batch))
        except (InvalidArgument, *db.DATA_ERRORS) as exc:
            raise ConfigurationError(
                f"LZQ_RETENTION={self.retention!r} is not a usable PostgreSQL interval: {first_line(exc)}"
            ) from None
        full = deleted is not None and deleted >= self.batch
        self.next_at = time.monotonic() + (self.backlog_interval_s if full else self.interval_s)
        if deleted:
            self.log.info("jobs_pruned", count=deleted, older_than=self.retention)
        return deleted or 0


#: lzq_jobs grown past twice its size at the last ANALYZE plus this many rows: statistics that
#: stale are refreshed by the superqueuers (autovacuum, with lzq's 2% setting, does it long before
#: where it runs). PL/pgSQL keeps a generic plan per statement for a session's life and replans only
#: when statistics change: daemons that started on an empty table kept sequential scans for their
#: primary-key lookups as it grew (start 9 ms, finish 20 ms, claim 5.8 ms at 20,000 rows instead of
#: 0.7, 0.7 and 0.9), and benchmarks/soak.py's drain fell from 1,000 to 200 jobs/s within a minute.
#: (Those three now never scan lzq_jobs sequentially, whatever the statistics, since the refresh
#: came too late for the first thousand jobs; other statements still gain from it.)
#: Growth, not churn: a queue table of steady size rewrites its rows all day (four or more changes
#: per job), and counting those re-analyzed a 1,000-row table every 2 s at 200 jobs/s, 60 ms of
#: CPU each time, which on a 2-core machine stalled every claim and start meanwhile.
STALE_STATISTICS_ROWS = 1000
#: How often a superqueuer looks (one ~0.1 ms query on pg_class and pg_stat_user_tables).
STATISTICS_CHECK_EVERY_S = 1.0
_STALENESS = """
    SELECT s.n_live_tup > %s + 2 * greatest(c.reltuples, 0)
      FROM pg_class AS c JOIN pg_stat_user_tables AS s ON s.relid = c.oid
     WHERE c.oid = 'lzq_jobs'::regclass"""


#: Whether autovacuum can vacuum lzq_jobs: the server runs it (and counts rows, which it needs) and the
#: table does not opt out.
_AUTOVACUUM_ON = """
    SELECT current_setting('autovacuum')::boolean AND current_setting('track_counts')::boolean
           AND coalesce((SELECT o.option_value::boolean FROM pg_options_to_table(c.reloptions) AS o
                          WHERE o.option_name = 'autovacuum_enabled'), true)
      FROM pg_class AS c
     WHERE c.oid = 'lzq_jobs'::regclass"""


def autovacuum_on(conn: Any) -> bool:
    """Whether autovacuum can vacuum lzq_jobs (server settings and the table's own)."""
    [(on,)] = db.fetch(conn, _AUTOVACUUM_ON)
    return bool(on)


def analyze_if_stale(conn: Any) -> bool:
    """ANALYZE lzq_jobs if its statistics are far out of date; True if it did. ``conn`` autocommit.

    Without the privilege (only the table's owner may), PostgreSQL skips it with a warning.
    """
    [(stale,)] = db.fetch(conn, _STALENESS, (STALE_STATISTICS_ROWS,))
    if stale:
        db.fetch(conn, "ANALYZE lzq_jobs")
    return bool(stale)


def prune_all(conn: Any, older_than: str, batch: int = CLI_BATCH) -> int:
    """Call lzq_prune until a batch comes back short, each batch its own transaction (``conn`` is
    autocommit); returns the rows deleted in all (jobs and buffer records).

    Raises InvalidArgument naming ``older_than`` for an interval PostgreSQL cannot read, or a
    negative one.
    """
    total = 0
    while True:
        try:
            [(deleted,)] = db.fetch(conn, "SELECT lzq_prune(%s::interval, %s)", (older_than, batch))
        except db.DATA_ERRORS as exc:
            raise InvalidArgument(
                "older_than",
                f"older_than: cannot read {older_than!r} as a PostgreSQL interval ({first_line(exc)})",
            ) from None
        total += deleted
        if deleted < batch:
            return total


class Sweeper:
    """Repairs what crashes leave behind for a superqueuer, every ``interval_s``: ``lzq_sweep``
    (expired dispatch leases, jobs of dead workers, stray limit slots; one superqueuer at a time)
    and more precomputed fire times for cron recurrences running short, computed with croniter
    in their time zone (the next sweep creates any run that was waiting for them).

    Logs ``job_recovered`` for each job the sweep moved and, once per recurrence and expression,
    ``recurring_cron_invalid`` for a cron stored by plain SQL that croniter cannot read.
    """

    def __init__(self, interval_s: float, dead_after_s: int, log: Any) -> None:
        self.interval_s = interval_s
        self.dead_after_s = dead_after_s
        self.log = log
        self.next_at = 0.0  # monotonic; the first turn sweeps at once
        self._reported_crons: set[tuple[int, str]] = set()

    def run_once(self, conn: Any) -> None:
        """Sweep and top up cron fire times if it is time."""
        if time.monotonic() < self.next_at:
            return
        self.next_at = time.monotonic() + self.interval_s
        due, swept = db.fetch_together(
            conn,
            [
                ("SELECT * FROM lzq_recur_cron_due(%s)", (recurrence.CRON_REFILL_BELOW,)),
                ("SELECT * FROM lzq_sweep(%s)", (self.dead_after_s,)),
            ],
        )
        for job_id, from_status, to_status in swept:
            self.log.warning("job_recovered", job_id=job_id, from_status=from_status, to_status=to_status)
        for recurring_id, cron, timezone, continue_after in due:
            try:
                times = recurrence.cron_fire_times(cron, timezone, continue_after)
            except InvalidArgument as exc:  # stored by plain SQL, which cannot check croniter syntax
                if (recurring_id, cron) not in self._reported_crons:  # say it once, not every sweep
                    self._reported_crons.add((recurring_id, cron))
                    self.log.error(
                        "recurring_cron_invalid", recurring_id=recurring_id, cron=cron, error=str(exc)
                    )
                continue
            db.fetch(conn, "SELECT lzq_recur_cron_extend(%s, %s)", (recurring_id, times))


#: How long ``Upkeep.stop`` lets a running statement finish before cancelling it.
STOP_WAIT_S = 1.0


class Upkeep:
    """A superqueuer's upkeep, on a thread and a connection of its own: each of its ``turns`` (a
    ``Sweeper``, a ``Pruner``: anything with ``run_once(conn)`` and ``next_at``) when due and,
    every ``STATISTICS_CHECK_EVERY_S``, ``analyze_if_stale``.

    Off the dispatch loop because each can take a while: an ANALYZE of a table that a burst
    just grew (or one waiting on another ANALYZE's lock), a full batch of deletes, a session's
    first sweep (25-30 ms to plan its statements over a 100,000-job table; 11-59 ms on average
    in 100,000-job drains). In the loop they held up every claim meanwhile: after a 20,000-job
    drain on a 2-core machine, push->start p99 at 200 jobs/s was 110 ms with the loop's ANALYZE and
    35 ms without (benchmarks/peers.py). Database errors are logged and retried with backoff; an
    unusable retention stops the thread and is kept in ``failure`` for the superqueuer to raise.
    """

    def __init__(self, dsn: str, log: Any, turns: Sequence[Sweeper | Pruner]) -> None:
        self.dsn = dsn
        self.turns = turns
        self.log = log
        self.failure: ConfigurationError | None = None
        self._conn: Any = None
        self._next_statistics_check = 0.0  # monotonic; the first turn looks at once
        self._autovacuum_checked = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Run turns on a daemon thread until ``stop()``."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="lzq-upkeep", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the thread and close its connection. A statement still running after
        ``STOP_WAIT_S`` (an ANALYZE waiting on a lock) is cancelled: a stopping superqueuer does
        not wait for upkeep."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_WAIT_S)
            if self._thread.is_alive() and self._conn is not None:
                with contextlib.suppress(Exception):  # psycopg's cancel is safe from another thread
                    self._conn.cancel()
                self._thread.join(timeout=STOP_WAIT_S)
            self._thread = None
        self._close()

    def run_once(self) -> None:
        """One turn: each of ``turns`` (which does its work only when due), then the statistics if
        it is time to look (and they are stale).

        The first turn also warns (``autovacuum_off``) when autovacuum cannot vacuum lzq_jobs.
        """
        self._conn = db.reopened(self._conn, self.dsn, application_name="lzq-superqueuer-upkeep")
        if not self._autovacuum_checked:
            on = autovacuum_on(self._conn)
            self._autovacuum_checked = True
            if not on:
                # Nothing vacuums the dead row versions every job leaves (three or more each), and the
                # claim, start and finish slow down as they pile up (push->start p50 1.3-3.3 ms
                # higher over 20,000 unvacuumed finished jobs here). Said once per superqueuer:
                # lzq does not override the DBA.
                self.log.warning(
                    "autovacuum_off",
                    table="lzq_jobs",
                    advice="turn autovacuum on, or run VACUUM lzq_jobs regularly",
                )
        for turn in self.turns:
            turn.run_once(self._conn)
        if time.monotonic() >= self._next_statistics_check:
            # Once a second: a burst of pushes right after the daemons started would otherwise run
            # on plans made for an empty table for a long while.
            self._next_statistics_check = time.monotonic() + STATISTICS_CHECK_EVERY_S
            if analyze_if_stale(self._conn):
                self.log.info("statistics_refreshed", table="lzq_jobs")

    def _loop(self) -> None:
        backoff = Backoff()
        while not self._stop.is_set():
            try:
                self.run_once()
                backoff.reset()
                due = min([self._next_statistics_check, *(turn.next_at for turn in self.turns)])
                delay = due - time.monotonic()
            except db.TRANSIENT_ERRORS as exc:
                if self._stop.is_set():  # cancelled by stop()
                    return
                delay = backoff.next_delay()
                self.log.warning(
                    "database_unavailable",
                    step="upkeep",
                    error=str(exc) or type(exc).__name__,
                    retry_in_s=round(delay, 2),
                )
                self._close()
            except ConfigurationError as exc:
                self.failure = exc
                return
            self._stop.wait(max(0.0, delay))

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(db.TRANSIENT_ERRORS):
                self._conn.close()
            self._conn = None
