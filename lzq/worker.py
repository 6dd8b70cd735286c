"""lzq-worker: consume {id, token} messages, fence, run handlers, report, ack after the report commits."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import queue
import signal
import socket
import threading
import time
import traceback
import uuid
from typing import Any

from lzq import amqp, db, failpoints, log
from lzq.backoff import Backoff
from lzq.config import AUTO_MARGIN_MAX_PER_SLOT, Settings
from lzq.errors import Fail, Retry, UnknownHandler, first_line
from lzq.job import Job
from lzq.registry import Registry, default_registry

#: Exit code when the sweep declared this worker dead (it froze past its lease): its jobs may be
#: running elsewhere, so it must not go on. A supervisor restarts it.
EXIT_DECLARED_DEAD = 70
_MAX_ERROR_CHARS = 4000
#: Opens the error of a report PostgreSQL refused, which the worker then records as failed.
_REFUSED_REPORT = "lzq could not record this attempt's outcome"


@dataclasses.dataclass
class _InFlight:
    delivery: amqp.Delivery
    token: str
    #: Holds a slot: its start is being committed, its handler runs, or its report awaits the commit.
    running: bool = False


class Worker:
    """Runs jobs from one or more lzq queues with ``concurrency`` slots (threads).

    Life of a job: decode its ``{id, token}`` from a message (which may carry several) → start
    fence (``lzq_start``) once a slot is free → run the handler on a job thread → report
    (``lzq_finish``) → ack the message once the reports of all its jobs are committed.
    A stale or duplicate delivery fails the fence and is acked and dropped. ``stop()`` (SIGTERM)
    cancels the consumer, gives running jobs ``stop_grace_s``, hands the rest back and returns 0.

    One thread, the ledger, talks to PostgreSQL for all jobs: each of its transactions (one
    ``lzq_finish_and_start`` statement) records every report waiting and starts as many waiting
    deliveries as there are free slots (a slot freed by a report in the batch counts), so a busy
    worker pays one commit per batch, not two per job, and a slot goes from one job to the next in
    a single round trip. An idle worker's lone delivery or report goes at once: there is no timer.
    """

    def __init__(
        self, settings: Settings, queues: list[str], concurrency: int, registry: Registry | None = None
    ) -> None:
        self.settings = settings
        self.queues = queues
        self.concurrency = concurrency
        self.registry = registry or default_registry
        failpoints.configure(settings.failpoints)
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.log = log.get("worker").bind(worker_id=self.worker_id)
        self._inflight: dict[int, _InFlight] = {}
        # Messages not acked yet → how many of their jobs are still in _inflight (under _lock).
        self._open_jobs: dict[amqp.Delivery, int] = {}
        self._lock = threading.Lock()
        # Under _lock: deliveries not started yet (arrival order), reports not committed yet, and
        # the slots taken. The ledger waits on _ledger_wake for either to have something to do.
        self._waiting: collections.deque[int] = collections.deque()
        self._reports: list[dict[str, Any]] = []
        self._busy_slots = 0
        self._ledger_wake = threading.Condition(self._lock)
        self._ledger_conn: Any = None
        self._stop = threading.Event()
        self._stopping_credit = False
        self._heartbeat_wake = threading.Event()
        self._heartbeat_conn: Any = None
        self._last_heartbeat_s = time.monotonic()
        # Rows of started jobs, for the job threads. Not a ThreadPoolExecutor: its Future per job
        # (a Condition, a lock) cost a worker as much CPU as the rest of a no-op job's hand-offs.
        self._started_jobs: queue.SimpleQueue[tuple] = queue.SimpleQueue()
        self._consumer = amqp.Consumer(
            settings.amqp_url,
            settings.amqp_prefix,
            queues,
            prefetch=concurrency + _margin_or(settings, AUTO_MARGIN_MAX_PER_SLOT * concurrency),
            on_message=self._on_message,
            name=f"lzq-worker {self.worker_id}",
        )

    # -- lifecycle ---------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the worker to stop gracefully (safe from a signal handler)."""
        self._stop.set()

    def run(self) -> int:
        """Register, consume until ``stop()``, then stop gracefully. Returns the exit code (0)."""
        self._register()
        self._last_heartbeat_s = time.monotonic()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGCONT, lambda *_: self._exit_if_lease_may_be_lost("resumed"))
        threading.Thread(target=self._ledger_loop, name="lzq-ledger", daemon=True).start()
        for slot in range(self.concurrency):
            threading.Thread(target=self._job_loop, name=f"lzq-job-{slot}", daemon=True).start()
        threading.Thread(target=self._heartbeat_loop, name="lzq-heartbeat", daemon=True).start()
        self.log.info("worker_started", queues=self.queues, concurrency=self.concurrency)
        backoff = Backoff()
        while not self._stop.is_set():
            try:
                if not self._consumer.is_open:
                    self._consumer.connect()
                    self.log.info("amqp_connected")
                    backoff.reset()
                self._consumer.process(0.1)
            except amqp.TRANSIENT_ERRORS as exc:
                delay = backoff.next_delay()
                self.log.warning(
                    "amqp_unavailable", error=str(exc) or type(exc).__name__, retry_in_s=round(delay, 2)
                )
                self._consumer.close()
                self._stop.wait(delay)
        self._shutdown()
        return 0

    def _register(self) -> None:
        backoff = Backoff()
        while True:
            try:
                self._heartbeat()
                return
            except db.TRANSIENT_ERRORS as exc:
                delay = backoff.next_delay()
                self.log.warning(
                    "database_unavailable", step="register", error=str(exc), retry_in_s=round(delay, 2)
                )
                self._heartbeat_conn = None
                if self._stop.wait(delay):
                    raise SystemExit(0) from None

    def _shutdown(self) -> None:
        started = time.monotonic()
        self.log.info("worker_stopping", running=self._count_running())
        with contextlib.suppress(amqp.TRANSIENT_ERRORS):
            self._consumer.cancel()
        # Withdraw this worker's credit now; keep heartbeating so running jobs keep their lease.
        self._stopping_credit = True
        self._heartbeat_wake.set()
        deadline = started + self.settings.stop_grace_s
        while self._count_running() and time.monotonic() < deadline:
            self._pump(0.05)
        self._pump(0.05)  # send the acks of jobs that just finished
        with self._lock:
            leftovers = dict(self._inflight)
        # Processes the abandoned handlers started must not outlive them (nor act once their jobs
        # run elsewhere): freeze them now, kill them once the jobs are handed back.
        children = _descendants(os.getpid())
        _signal_all(children, signal.SIGSTOP)
        handed = self._handback_and_exit(
            [{"id": job_id, "token": f.token} for job_id, f in leftovers.items()]
        )
        _signal_all(children, signal.SIGKILL)
        # Return straight away: the caller exits the process, ending job threads still running past
        # the grace period. Their jobs are already `ready` again, so every moment here could overlap
        # with a new run elsewhere. Unacked messages are requeued when the connection drops; the
        # start fence drops those copies.
        self.log.info(
            "worker_stopped",
            handed_back=sorted(handed),
            duration_ms=round((time.monotonic() - started) * 1000),
        )

    def _pump(self, seconds: float) -> None:
        """Let pika send queued acks (or just wait, if the broker is gone)."""
        try:
            if self._consumer.is_open:
                self._consumer.process(seconds)
                return
        except amqp.TRANSIENT_ERRORS:
            self._consumer.close()
        time.sleep(seconds)

    def _count_running(self) -> int:
        with self._lock:
            return sum(1 for f in self._inflight.values() if f.running)

    def _handback_and_exit(self, deliveries: list[dict]) -> list[int]:
        """Give unfinished jobs back and deregister, in one transaction."""
        backoff = Backoff(max_s=1.0)
        for _ in range(5):
            try:
                with (
                    db.connect(self.settings.dsn, application_name="lzq-worker-exit") as conn,
                    conn.transaction(),
                ):
                    rows = db.fetch(
                        conn, "SELECT * FROM lzq_handback(%s, %s)", (self.worker_id, db.json(deliveries))
                    )
                    db.fetch(conn, "SELECT lzq_worker_exit(%s)", (self.worker_id,))
                return [row[0] for row in rows]
            except db.TRANSIENT_ERRORS as exc:
                self.log.warning("database_unavailable", step="handback", error=str(exc))
                time.sleep(backoff.next_delay())
        # Not lost: the sweep returns them once this worker's heartbeat expires.
        return []

    # -- heartbeat ---------------------------------------------------------------------------------

    def _heartbeat_db(self) -> Any:
        if self._heartbeat_conn is None or self._heartbeat_conn.closed:
            self._heartbeat_conn = db.connect(self.settings.dsn, application_name="lzq-worker-heartbeat")
        return self._heartbeat_conn

    def _heartbeat(self) -> bool:
        """Register or heartbeat; True if the row had to be (re)created."""
        rows = db.fetch(
            self._heartbeat_db(),
            "SELECT lzq_heartbeat(%s, %s, %s, %s, %s, %s)",
            (
                self.worker_id,
                socket.gethostname(),
                os.getpid(),
                self.queues,
                self.concurrency,
                self._stopping_credit,
            ),
        )
        return bool(rows[0][0])

    def _heartbeat_loop(self) -> None:
        while True:
            self._heartbeat_wake.wait(self.settings.heartbeat_s)
            self._heartbeat_wake.clear()
            self._exit_if_lease_may_be_lost("heartbeat_gap")
            try:
                if self._heartbeat():
                    # We were swept as dead (frozen, or cut off past worker_dead_after_s): our jobs
                    # may already run elsewhere. Stop at once rather than run them twice.
                    self._exit_declared_dead("swept")
                self._last_heartbeat_s = time.monotonic()
            except db.TRANSIENT_ERRORS as exc:
                self.log.warning("database_unavailable", step="heartbeat", error=str(exc))
                self._heartbeat_conn = None

    def _exit_if_lease_may_be_lost(self, reason: str) -> None:
        """Exit if we went without a heartbeat for half the time after which the sweep hands our jobs
        to others: a process that was frozen (SIGSTOP, a paused VM) must not resume them. Called on
        SIGCONT and by the heartbeat thread. Exiting early is safe: our jobs are then re-run after
        the sweep, never concurrently."""
        if time.monotonic() - self._last_heartbeat_s > self.settings.worker_dead_after_s / 2:
            if reason == "resumed":
                # Thawing: any I/O here (even a log line) would hand the GIL to a job thread that
                # could act on a job already running elsewhere. Die first; exit code 70 says why.
                os._exit(EXIT_DECLARED_DEAD)
            self._exit_declared_dead(reason)

    def _exit_declared_dead(self, reason: str) -> None:
        self.log.error("worker_declared_dead", reason=reason, action="exiting", exit_code=EXIT_DECLARED_DEAD)
        os._exit(EXIT_DECLARED_DEAD)

    # -- messages and jobs -------------------------------------------------------------------------

    def _on_message(self, delivery: amqp.Delivery) -> None:
        """On pika's thread: admit the delivery's jobs and queue them for slots (the ledger starts
        them). The message is acked once every one of its jobs is done with."""
        try:
            dispatches = dict(amqp.decode(delivery.body))
        except (ValueError, KeyError, TypeError):
            self.log.warning("message_malformed", body=delivery.body[:200].decode(errors="replace"))
            self._consumer.ack(delivery)
            return
        with self._lock:
            for job_id in [job_id for job_id in dispatches if job_id in self._inflight]:
                # A redelivery of a job this process already holds (e.g. after a channel reconnect).
                self.log.info("message_duplicate", job_id=job_id)
                del dispatches[job_id]
            if not dispatches:
                self._consumer.ack(delivery)
                return
            self._open_jobs[delivery] = len(dispatches)
            for job_id, token in dispatches.items():
                self._inflight[job_id] = _InFlight(delivery, token)
                self._waiting.append(job_id)
            self._ledger_wake.notify()

    def _job_loop(self) -> None:
        while True:  # daemon thread: ends with the process (see _shutdown)
            row = self._started_jobs.get()
            try:
                self._run_job(row)
            except Exception:  # noqa: BLE001 - a bug of ours, not the handler's (_execute catches those)
                # The thread stays for the next job; this one keeps its slot until the worker exits
                # and hands it back.
                self.log.exception("job_thread_error", job_id=row[0])

    def _run_job(self, row: tuple) -> None:
        """On a job thread: run the handler, free the slot and queue the report for the ledger."""
        failpoints.hit("after_start")
        report = self._execute(row)
        failpoints.hit("after_run")
        with self._lock:
            self._busy_slots -= 1
            self._reports.append(report)
            self._ledger_wake.notify()

    # -- the ledger: every start fence and report, batched -----------------------------------------

    def _ledger_loop(self) -> None:
        while True:  # daemon thread: ends with the process
            reports, starts = self._next_ledger_batch()
            applied, started = self._commit_ledger_batch(reports, starts)
            if reports:
                failpoints.hit("after_finish_commit")
            for row in started.values():  # first: the handlers need not wait for the bookkeeping
                self._started_jobs.put(row)
            done = []
            for report in reports:
                if applied.get(report["id"]) is None:
                    # Our attempt was taken from us (swept or handed back); its outcome no longer counts.
                    self.log.warning("report_rejected", job_id=report["id"], attempt=report["attempt"])
                done.append(report["id"])
            for job_id, _token in starts:
                if job_id not in started:
                    self.log.info("message_stale", job_id=job_id)
                    done.append(job_id)
            with self._lock:
                self._busy_slots -= len(starts) - len(started)
                acks = [d for d in (self._done_with(job_id) for job_id in done) if d is not None]
            self._consumer.ack_many(acks)

    def _done_with(self, job_id: int) -> amqp.Delivery | None:
        """Forget a job (under _lock); its message, if that was the last of its jobs here."""
        delivery = self._inflight.pop(job_id).delivery
        self._open_jobs[delivery] -= 1
        if self._open_jobs[delivery]:
            return None
        del self._open_jobs[delivery]
        return delivery

    def _next_ledger_batch(self) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
        """Wait for work; take every report and as many deliveries as there are free slots."""
        with self._lock:
            while not self._reports and not self._may_start():
                self._ledger_wake.wait()
            reports, self._reports = self._reports, []
            starts = []
            while self._may_start():
                job_id = self._waiting.popleft()
                flight = self._inflight[job_id]
                # Taken under the lock _shutdown counts under: a stop either prevents this start or
                # sees the slot taken and waits for the job.
                flight.running = True
                self._busy_slots += 1
                starts.append((job_id, flight.token))
            return reports, starts

    def _may_start(self) -> bool:
        return bool(self._waiting) and self._busy_slots < self.concurrency and not self._stop.is_set()

    def _commit_ledger_batch(
        self, reports: list[dict[str, Any]], starts: list[tuple[int, str]]
    ) -> tuple[dict[int, str], dict[int, tuple]]:
        """One statement, one transaction: ``lzq_finish_and_start`` (reports, then deliveries).

        Returns (job id → new status of each report applied, job id → row of each job started).
        Outages are waited out with backoff on a new connection: the function is idempotent for a
        retry by the same worker.
        """
        deliveries = [{"id": job_id, "token": token} for job_id, token in starts]
        backoff = Backoff()
        while True:
            try:
                if self._ledger_conn is None or self._ledger_conn.closed:
                    self._ledger_conn = db.connect(self.settings.dsn, application_name="lzq-worker-ledger")
                rows = db.fetch(
                    self._ledger_conn,
                    "SELECT * FROM lzq_finish_and_start(%s, %s, %s)",
                    (self.worker_id, db.json(reports), db.json(deliveries)),
                )
                applied = {row[0]: row[1] for row in rows if row[1] != "running"}
                return applied, {row[0]: row for row in rows if row[1] == "running"}
            except db.TRANSIENT_ERRORS as exc:
                delay = backoff.next_delay()
                self.log.warning(
                    "database_unavailable", step="ledger", error=str(exc), retry_in_s=round(delay, 2)
                )
                self._ledger_conn = None
                time.sleep(delay)
            except Exception as exc:  # noqa: BLE001 - refused, not an outage: isolate the culprit
                if len(reports) + len(starts) == 1:
                    return self._refused(reports, starts, exc)
                applied: dict[int, str] = {}
                started_rows: dict[int, tuple] = {}
                for report in reports:
                    applied |= self._commit_ledger_batch([report], [])[0]
                for start in starts:
                    started_rows |= self._commit_ledger_batch([], [start])[1]
                return applied, started_rows

    def _refused(
        self, reports: list[dict[str, Any]], starts: list[tuple[int, str]], exc: Exception
    ) -> tuple[dict[int, str], dict[int, tuple]]:
        """PostgreSQL refused one job's report or start (a bug, or a report it cannot store).

        A refused report is replaced by a plain ``failed`` one saying why, so the job ends and its
        slot frees; if even that is refused the job stays running here until this worker exits and
        hands it back. A refused start is dropped like a stale delivery: the dispatch lease
        expires and the sweep makes the job ready again.
        """
        reason = first_line(exc)
        if reports:
            report = reports[0]
            self.log.error("report_refused", job_id=report["id"], error=reason)
            if not report.get("error", "").startswith(_REFUSED_REPORT):
                substitute = {"id": report["id"], "attempt": report["attempt"], "outcome": "failed"}
                substitute["error"] = (
                    f"{_REFUSED_REPORT} ({reason}); the handler said: {report.get('error', '')}"
                )
                return self._commit_ledger_batch([_storable(substitute)], [])
        else:
            self.log.error("start_refused", job_id=starts[0][0], error=reason)
        return {}, {}

    def _execute(self, row: tuple) -> dict[str, Any]:
        (
            job_id,
            _status,
            _token,
            job_name,
            params,
            queue_name,
            priority,
            fairness_key,
            max_failures,
            attempt,
        ) = row
        options = {
            "id": job_id,
            "attempt": attempt,
            "queue_name": queue_name,
            "priority": priority,
            "fairness_key": fairness_key,
            "max_failures": max_failures,
        }
        report: dict[str, Any] = {"id": job_id, "attempt": attempt, "outcome": "succeeded"}
        job_log = self.log.bind(job_id=job_id, job_name=job_name, queue=queue_name, attempt=attempt)
        started = time.monotonic()
        try:
            status = self.registry.resolve(job_name)(params, options)
            if status == Job.STATUS_RETRY:
                report.update(outcome="retry", error="handler set STATUS_RETRY")
            elif status == Job.STATUS_FAIL:
                report.update(outcome="failed", error="handler set STATUS_FAIL")
        except UnknownHandler as exc:
            report.update(outcome="failed", error=f"refused to run: {exc}")
        except Retry as exc:
            report.update(outcome="retry", error=str(exc), retry_delay_s=exc.delay_s)
        except Fail as exc:
            report.update(outcome="failed", error=str(exc))
        except BaseException as exc:  # noqa: BLE001 - any escape from a handler is a failed attempt
            report.update(outcome="retry", error=_describe(exc))
        duration_ms = round((time.monotonic() - started) * 1000, 2)
        if report["outcome"] == "succeeded":
            # Debug, not info: a line per job, written by eight job threads into one stream, cost a
            # third of a drain's throughput at the default level (4,300-4,500 jobs/s against 6,500).
            job_log.debug("job_succeeded", duration_ms=duration_ms)
        else:
            job_log.warning(
                f"job_{report['outcome']}",
                duration_ms=duration_ms,
                error=report["error"][:500],
                max_failures=max_failures,
            )
        return _storable(report)


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, grandchildren, ...), read from /proc; empty elsewhere."""
    parents: dict[int, list[int]] = {}
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return []
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                ppid = int(stat.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def _margin_or(settings: Settings, auto: int) -> int:
    """The prefetch margin, or ``auto`` when the superqueuer sizes it (never above its maximum)."""
    margin = settings.fixed_prefetch_margin
    return auto if margin is None else margin


def _storable(report: dict[str, Any]) -> dict[str, Any]:
    """The report with its error text as PostgreSQL can store it (jsonb refuses NUL characters)."""
    if "\x00" in report.get("error", ""):
        report = {**report, "error": report["error"].replace("\x00", "\\x00")}
    return report


def _describe(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(exc))
    return text if len(text) <= _MAX_ERROR_CHARS else text[-_MAX_ERROR_CHARS:]
