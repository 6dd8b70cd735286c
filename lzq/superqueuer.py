"""lzq-superqueuer: assign ready jobs to free worker slots, publish them, promote due ones; sweep beside."""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
import uuid
from typing import Any

from lzq import amqp, db, failpoints, log, maintenance
from lzq.backoff import Backoff
from lzq.config import AUTO_MARGIN_MAX_PER_SLOT, Settings
from lzq.errors import UnknownHandler
from lzq.readiness import Readiness
from lzq.registry import Registry, default_registry

#: Readiness checks evaluated per pass, and how long other superqueuers leave them alone meanwhile.
CHECKS_BATCH = 100
CHECK_LEASE_S = 30

#: Promotion of due scheduled jobs and the due readiness checks run at most this often. A busy
#: superqueuer passes every few milliseconds (a pass per freed slot), and those two statements
#: cost a pass that only claims about half again; a job falling due waits at most this much longer.
PROMOTE_EVERY_S = 0.01

#: LZQ_PREFETCH_MARGIN=auto keeps about this much work queued on each slot beyond its running job:
#: the time a freed slot takes to be refilled (finish, claim, publish, start) on a loaded machine.
#: Measured (benchmarks/fairness.py, 20 ms jobs, 2 x 8 slots): a margin of 1 left slots idle 40% of
#: the time with work waiting, 4 (10 ms of work) hardly less, 8 left them idle 1%; but every job
#: queued on a worker is one the fair order can no longer reorder, and long jobs need no margin.
AUTO_MARGIN_REFILL_S = 0.025
#: It is recomputed this often, from the durations of the latest finished jobs (a fraction of a
#: millisecond of SQL): a burst that starts on an idle system gets its margin within this time.
AUTO_MARGIN_EVERY_S = 0.2
AUTO_MARGIN_SAMPLE = 200
#: NOTIFY payloads starting with this (from lzq_finish): a slot freed, nothing made ready.
FREED_SLOT = "\x1f"
#: Woken only by freed slots: are ready jobs waiting for one (out of credit, or parked by another
#: superqueuer's claim)? Then a pass. (A queue whose name starts with chr(31) would have its
#: pushes taken for freed slots and, with nothing else ready, wait for the polling backstop.)
#: In the dispatch index's order, not as EXISTS: the planner drops an EXISTS's order and, with
#: statistics taken during a backlog, scanned the whole table (4 ms after a 20,000-job drain).
_READY_LEFT = "SELECT 1 FROM lzq_jobs WHERE status = 'ready' ORDER BY queue_name, vtag, priority, id LIMIT 1"

_RECENT_DURATIONS = """
    SELECT (SELECT avg(extract(epoch FROM j.finished_at - j.started_at))::float8
              FROM (SELECT f.finished_at, f.started_at FROM lzq_jobs AS f
                     WHERE f.status IN ('succeeded', 'failed', 'cancelled') AND f.started_at IS NOT NULL
                     ORDER BY f.finished_at DESC LIMIT %s) AS j),
           (SELECT avg(w.slots)::float8 FROM lzq_workers AS w WHERE NOT w.stopping)"""


def auto_margin(mean_duration_s: float | None, mean_slots: float | None) -> int:
    """Jobs to queue on a worker beyond its slots: enough for AUTO_MARGIN_REFILL_S of work on every
    slot, at least 1 and at most AUTO_MARGIN_MAX_PER_SLOT per slot. With nothing finished yet, 1
    (as for long jobs)."""
    if not mean_slots or mean_duration_s is None:
        return 1
    wanted = math.ceil(mean_slots * AUTO_MARGIN_REFILL_S / max(mean_duration_s, 1e-6))
    return max(1, min(wanted, AUTO_MARGIN_MAX_PER_SLOT * math.ceil(mean_slots)))


#: A job as its message carries it (amqp.JOB_FIELDS), built by PostgreSQL: the params go from jsonb
#: to the message without being decoded and encoded again in Python.
_ASSIGN = """
    SELECT a.inbox, a.id, a.dispatch_token::text,
           json_build_array(a.id, a.dispatch_token, a.job_name, a.params, a.queue_name, a.priority,
                            a.fairness_key, a.max_failures, a.attempt)::text
      FROM lzq_assign(%s, %s, %s) AS a"""


def by_inbox(assigned: list[tuple]) -> dict[str, list[tuple]]:
    """Assigned rows (inbox, id, token, job JSON) grouped by inbox, each group in dispatch order:
    one message per worker and pass carries all its jobs (a worker holds what it is given anyway:
    one publish, delivery and decode per batch instead of per job)."""
    groups: dict[str, list[tuple]] = {}
    for row in assigned:
        groups.setdefault(row[0], []).append(row)
    return groups


class Superqueuer:
    """Feeds RabbitMQ from PostgreSQL, never faster than workers have free slots.

    One pass (``run_once``): assign ready jobs to workers up to their free credit (``lzq_assign``,
    committed durably), publish them to each worker's inbox (one message per worker, see
    ``by_inbox``) with publisher confirms, hand back what RabbitMQ could not route;
    then, when due, promote due scheduled jobs and assign what that made ready, evaluate due
    readiness checks (user code from ``--app``). ``run``
    repeats passes while there is work and sleeps on LISTEN otherwise, with a polling backstop.
    Beside the loop, on a thread and connection of its own (``maintenance.Upkeep``), it sweeps
    up after crashes and tops up cron fire times every ``sweep_interval_s`` (one superqueuer at a
    time), deletes a small batch of finished jobs older than ``LZQ_RETENTION`` every 10 seconds
    and refreshes lzq_jobs statistics far out of date.
    Any number may run at once: claims are fenced by SKIP LOCKED and an advisory lock per worker
    group, and one superqueuer prunes at a time.
    """

    def __init__(self, settings: Settings, registry: Registry | None = None) -> None:
        self.settings = settings
        self.registry = registry or default_registry
        failpoints.configure(settings.failpoints)
        self.superqueuer_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.log = log.get("superqueuer").bind(superqueuer_id=self.superqueuer_id)
        self._stop = threading.Event()
        self._conn: Any = None
        self._listener: db.Listener | None = None
        self._publisher = amqp.Publisher(
            settings.amqp_url, settings.amqp_prefix, name=f"lzq-superqueuer {self.superqueuer_id}"
        )
        self._next_promote_at = 0.0
        self._promoted = False  # whether the last pass promoted and evaluated checks
        self._claim_next = True  # False: the next pass was woken only by a timer of ours (see _step)
        self._next_due_at: float | None = None  # monotonic time the next scheduled job falls due
        self._idle = False  # our lzq_superqueuers.idle, as last written
        self._backlog = False  # the last pass filled a claim batch
        # Ready jobs wait for credit: a look found some and every claim since took jobs. Freed
        # slots then go straight to a claim, without the look (see _step).
        self._waiting_for_credit = False
        self._idle_written_at = 0.0  # monotonic time of the last lzq_superqueuer_idle call
        self._upkeep = maintenance.Upkeep(
            settings.dsn,
            self.log,
            [
                maintenance.Sweeper(settings.sweep_interval_s, settings.worker_dead_after_s, self.log),
                maintenance.Pruner(settings.retention_interval, self.log),
            ],
        )
        self._fixed_margin = settings.fixed_prefetch_margin
        self.margin = 1 if self._fixed_margin is None else self._fixed_margin
        self._next_margin_at = 0.0

    def stop(self) -> None:
        """Ask the loop to finish its pass and return (safe from a signal handler)."""
        self._stop.set()

    def run(self) -> int:
        """Loop until ``stop()``; database and broker outages are waited out with backoff."""
        self.log.info("superqueuer_started")
        backoff = Backoff()
        self._upkeep.start()
        try:
            while not self._stop.is_set():
                if self._upkeep.failure is not None:
                    raise self._upkeep.failure
                try:
                    self._connect()
                    self._step()
                    backoff.reset()
                except db.TRANSIENT_ERRORS as exc:
                    self._retry_later("database_unavailable", exc, backoff)
                except amqp.TRANSIENT_ERRORS as exc:
                    self._retry_later("amqp_unavailable", exc, backoff)
        finally:
            self._upkeep.stop()
            self._close()
        self.log.info("superqueuer_stopped")
        return 0

    def _step(self) -> None:
        """A pass; then, unless it filled a whole claim batch, sleep on LISTEN.

        The idle flag (``lzq_superqueuer_idle``) makes pushes and finishes NOTIFY. It stays set
        across short passes: a finish that wakes us is answered by one pass (claim its
        replacement), not three. A pass that fills a batch means a backlog: the next pass clears
        the flag, so pushes stop paying for NOTIFY while we are busy anyway. Setting it again takes
        a second look, which closes the race: a push that committed while it was clear did not
        NOTIFY.
        """
        idle: bool | None = None
        if self._idle and self._backlog:
            idle = False
        elif self._idle and time.monotonic() >= self._idle_due_at():
            idle = True  # the flag doubles as our heartbeat: the sweep forgets a superqueuer without one
        found = self.run_once(idle=idle)
        self._backlog = found >= self.settings.claim_batch
        if self._backlog:
            return
        if not self._idle and self.run_once(idle=True):
            return
        wake_at = [] if self._next_due_at is None else [self._next_due_at]
        if not self._promoted:  # jobs may have fallen due since the last promotion
            wake_at.append(self._next_promote_at)
        if self._idle:  # in time to write the flag again, however long the polling interval
            wake_at.append(self._idle_due_at())
        timeout = self.settings.poll_interval_s
        if wake_at:
            timeout = min(timeout, max(0.0, min(wake_at) - time.monotonic()))
        deadline = time.monotonic() + timeout
        while True:
            payloads = self._listener.wait(max(0.0, deadline - time.monotonic()))
            # A slot freed by a finished job (FREED_SLOT) matters only while ready jobs wait
            # for credit; otherwise whatever makes a job ready next wakes us. Without this every
            # job cost two passes and two claims, one for its push and one for its finish; the
            # look costs a tenth of a claim.
            if not payloads or not all(p.startswith(FREED_SLOT) for p in payloads):
                break
            # During a backlog the look always says yes (1,360 looks in a 20,000-job drain): skip
            # it until a claim comes back empty.
            if self._waiting_for_credit or self._fetch(_READY_LEFT, None):
                self._waiting_for_credit = True
                break
        # Woken by a timer of ours (promotion, a due job, the idle flag): the next pass claims only if
        # it made jobs ready; whatever else makes jobs ready NOTIFYs. The polling backstop always
        # claims: LISTEN is only a hint.
        self._claim_next = bool(payloads) or timeout >= self.settings.poll_interval_s

    def _idle_due_at(self) -> float:
        """When our idle flag, which doubles as our heartbeat, is to be written again."""
        return self._idle_written_at + self.settings.worker_dead_after_s / 3

    def run_once(self, idle: bool | None = None) -> int:
        """One pass; returns how many jobs it published or moved on by readiness checks.

        The claim goes first, with the idle flag when ``idle`` is given, in one round trip, and
        its jobs are published at once. The rest waits for a second round trip, when due:
        promotion of due scheduled jobs and due readiness checks (at most every PROMOTE_EVERY_S),
        the margin's resizing; jobs the promotion made ready are claimed in a third. A pushed job
        so waits for none of those (together, 0.15-0.2 ms of a pass woken by its push).
        """
        self._connect()
        statements: list[tuple[str, object]] = []
        if idle is not None:
            statements.append(("SELECT lzq_superqueuer_idle(%s, %s)", (self.superqueuer_id, idle)))
            self._idle = idle
            self._idle_written_at = time.monotonic()
        claiming = self._claim_next
        self._claim_next = True
        if claiming:
            statements.append(self._claim_statement())
        published = 0
        if statements:
            results = db.fetch_together(self._conn, statements)
            if claiming:
                if not results[-1]:
                    self._waiting_for_credit = False
                published = self._publish_claimed(results[-1])
        made_ready, checks_due = self._after_claim()
        if made_ready:
            published += self._publish_claimed(self._fetch(*self._claim_statement()))
        moved = self._evaluate_checks(checks_due) if checks_due else 0
        return published + moved

    def _after_claim(self) -> tuple[bool, list[tuple]]:
        """The pass's second round trip, with whatever is due of: promotion and due checks (every
        PROMOTE_EVERY_S), the margin (every AUTO_MARGIN_EVERY_S). Returns (whether to claim
        again, the checks to evaluate)."""
        statements: list[tuple[str, object]] = []
        now = time.monotonic()
        self._promoted = now >= self._next_promote_at
        if self._promoted:
            self._next_promote_at = now + PROMOTE_EVERY_S
            statements.append(("SELECT * FROM lzq_promote(%s)", (self.settings.claim_batch,)))
            statements.append(("SELECT * FROM lzq_checks_due(%s, %s)", (CHECKS_BATCH, CHECK_LEASE_S)))
        sizing = self._fixed_margin is None and now >= self._next_margin_at
        if sizing:
            self._next_margin_at = now + AUTO_MARGIN_EVERY_S
            statements.append((_RECENT_DURATIONS, (AUTO_MARGIN_SAMPLE,)))
        if not statements:
            return False, []
        results = db.fetch_together(self._conn, statements)
        if sizing:
            [(mean_duration_s, mean_slots)] = results.pop()
            self._set_margin(auto_margin(mean_duration_s, mean_slots), mean_duration_s)
        if not self._promoted:
            return False, []
        checks_due = results.pop()
        [(promoted_count, next_due_in_s)] = results.pop()
        self._next_due_at = None if next_due_in_s is None else time.monotonic() + next_due_in_s
        if promoted_count:
            self.log.debug("jobs_promoted", count=promoted_count)
        return promoted_count > 0, checks_due

    def _claim_statement(self) -> tuple[str, object]:
        # Tokens as text: they only go into hand-backs, and a uuid.UUID made and printed again per
        # job was 3.5% of the superqueuer's CPU in a drain (py-spy).
        return _ASSIGN, (self.settings.claim_batch, self.margin, self.settings.worker_dead_after_s)

    def _publish_claimed(self, claimed: list[tuple]) -> int:
        """Publish the rows of a committed claim; how many jobs went out."""
        if not claimed:
            return 0
        failpoints.hit("after_claim_commit")
        return self._publish(claimed)

    def _set_margin(self, margin: int, mean_duration_s: float | None) -> None:
        """LZQ_PREFETCH_MARGIN=auto: the margin for the next claims, from recent durations."""
        if margin != self.margin:
            self.log.debug("prefetch_margin", margin=margin, mean_duration_s=mean_duration_s)
            self.margin = margin

    def _evaluate_checks(self, due: list[tuple]) -> int:
        """Run the readiness checks of waiting jobs (user code: a check that raises means "not
        ready" and is logged); record the outcomes. Returns how many jobs moved on."""
        results = []
        for job_id, job_name, params, queue_name, priority, fairness_key, max_failures, checks in due:
            options = {
                "id": job_id,
                "queue_name": queue_name,
                "priority": priority,
                "fairness_key": fairness_key,
                "max_failures": max_failures,
            }
            results.append({"id": job_id, **self._readiness(job_id, job_name, params, options, checks)})
        moved = self._fetch("SELECT * FROM lzq_checks_done(%s)", (db.json(results),))
        return len(moved)

    def _readiness(self, job_id: int, job_name: str, params: dict, options: dict, checks: list[str]) -> dict:
        limits: list[dict] = []
        for check in checks:
            try:
                evaluate = self.registry.resolve_check(job_name, check)
            except UnknownHandler as exc:
                missing = self.registry.missing_check_method(job_name, check)
                if missing:  # the handler is here and has no such method: it can never pass
                    self.log.warning("check_invalid", job_id=job_id, check=check, error=missing)
                    return {"outcome": "invalid", "error": f"check cannot run: {missing}"}
                # Not loadable in this superqueuer (is --app missing?): another may do better.
                self.log.warning("check_unresolved", job_id=job_id, check=check, error=str(exc))
                return {"outcome": "not_ready"}
            try:
                verdict = evaluate(params, options)
                if isinstance(verdict, Readiness):
                    limits += verdict.limits
                    verdict = verdict.is_ready(params, options)
                elif not isinstance(verdict, bool):
                    raise TypeError(
                        f"must return a readiness chain (self.ready()...) or a bool, got {verdict!r}"
                    )
            except Exception as exc:  # noqa: BLE001 - user code: not ready, not a crash
                self.log.warning(
                    "check_error", job_id=job_id, check=check, error=f"{type(exc).__name__}: {exc}"
                )
                return {"outcome": "not_ready"}
            if not verdict:
                return {"outcome": "not_ready"}
        return {"outcome": "passed", "limits": limits}

    def _publish(self, assigned: list[tuple]) -> int:
        groups = by_inbox(assigned)
        messages = [
            (inbox, amqp.encode_jobs([row[3].encode() for row in rows]), str(rows[0][1]))
            for inbox, rows in groups.items()
        ]
        # Only a message RabbitMQ returned unroutable surely reached nobody: its jobs go back now.
        # One that raises or is nacked (an internal error of the broker) may have been delivered:
        # its jobs stay assigned, and if the message was lost their worker finds them
        # (lzq_undelivered) and hands them back.
        outcomes = self._publisher.publish_to_inboxes(messages)
        failpoints.hit("after_publish")
        returned = [rows for rows, ok in zip(groups.values(), outcomes, strict=True) if ok is None]
        nacked = sum(len(rows) for rows, ok in zip(groups.values(), outcomes, strict=True) if ok is False)
        if returned:
            gone = [rows[0][0] for rows in returned]
            self.log.warning("publish_returned", count=sum(map(len, returned)), gone_inboxes=gone)
            self._handback([row for rows in returned for row in rows], gone)
        if nacked:
            self.log.warning("publish_refused", count=nacked)
        published = len(assigned) - sum(map(len, returned)) - nacked
        self.log.debug("jobs_dispatched", count=published, messages=len(messages))
        return published

    def _handback(self, undelivered: list[tuple], gone_inboxes: list[str]) -> None:
        """Give back jobs whose message nobody received; forget their inboxes (their workers'
        connections are gone: each job sent there would come back)."""
        deliveries = [{"id": row[1], "token": row[2]} for row in undelivered]
        try:
            self._fetch("SELECT * FROM lzq_handback(NULL, %s)", (db.json(deliveries),))
            if gone_inboxes:
                self._fetch("SELECT lzq_inbox_gone(%s)", (gone_inboxes,))
        except db.TRANSIENT_ERRORS as exc:
            # Still safe: their workers find them (lzq_undelivered) and hand them back.
            self.log.warning("database_unavailable", step="handback", error=str(exc))

    # -- plumbing ----------------------------------------------------------------------------------

    def _connect(self) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = db.connect(self.settings.dsn, application_name="lzq-superqueuer")
            # Losing one of our commits in a server crash is harmless (a promotion, a check's
            # outcome, the idle flag: done again), so we don't wait for fsync. Not an assignment's:
            # lzq_assign makes its own commit durable before we publish what it assigned.
            self._conn.execute("SET synchronous_commit = off")
            self._listener = db.Listener(self.settings.dsn, application_name="lzq-superqueuer-listen")
            self.log.info("database_connected")

    def _fetch(self, sql: str, params: Any) -> list[tuple]:
        return db.fetch(self._conn, sql, params)

    def _retry_later(self, event: str, exc: BaseException, backoff: Backoff) -> None:
        delay = backoff.next_delay()
        self.log.warning(event, error=str(exc) or type(exc).__name__, retry_in_s=round(delay, 2))
        self._close()
        self._stop.wait(delay)

    def _close(self) -> None:
        for closeable in (self._listener, self._conn):
            if closeable is not None:
                with contextlib.suppress(db.TRANSIENT_ERRORS):
                    closeable.close()
        self._listener, self._conn = None, None
        self._publisher.close()
