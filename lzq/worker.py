"""lzq-worker: run the jobs the superqueuer assigned to it (received in its inbox), report each outcome."""

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
from lzq.config import Settings
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
    token: str
    #: Holds a slot: its handler runs, or its report awaits the commit.
    running: bool = False


class Worker:
    """Runs jobs from one or more lzq queues with ``concurrency`` slots (threads).

    The superqueuer assigns each job to one worker in PostgreSQL (``lzq_assign``: the job is
    `running` on it from then on, its attempt counted) and publishes it, with its name and params,
    to that worker's inbox, a RabbitMQ queue only this worker's connection consumes (``amqp.Inbox``).
    So whatever arrives is this worker's to run: a job starts on arrival if a slot is free, else
    when one frees, with no round trip to PostgreSQL first. Its outcome is reported with
    ``lzq_finish``. ``stop()`` (SIGTERM) cancels the consumer, gives running jobs ``stop_grace_s``,
    hands the rest back (``lzq_worker_exit``) and returns 0.

    A message can be lost (a dropped connection takes its inbox along, a broker restart, a publish
    whose outcome the superqueuer could not know): after each connect, and every ``heartbeat_s``
    for jobs assigned over ``dispatch_lease_s`` ago, the worker asks PostgreSQL for the jobs assigned
    to it that it never received (``lzq_undelivered``), remembers their tokens, so that a copy
    arriving late is dropped, and hands them back. That runs on the consuming thread, so no
    message is admitted meanwhile.

    One thread, the ledger, reports for all jobs: each of its transactions records every report
    waiting, so a busy worker pays one commit per batch, not one per job; an idle worker's lone
    report goes at once: there is no timer.
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
        # Jobs received and not reported yet (under _lock).
        self._inflight: dict[int, _InFlight] = {}
        # Under _lock: rows of jobs received and not started yet (arrival order), reports not
        # committed yet, and the slots taken. The ledger waits on _ledger_wake for reports.
        self._waiting: collections.deque[tuple] = collections.deque()
        self._reports: list[dict[str, Any]] = []
        self._busy_slots = 0
        self._lock = threading.Lock()
        self._ledger_wake = threading.Condition(self._lock)
        self._ledger_conn: Any = None
        # Tokens of jobs handed back as never received (see _reconcile): a copy arriving later
        # is dropped. Only the consuming thread touches it; it grows only when messages are lost.
        self._given_back: set[str] = set()
        self._inbox_conn: Any = None
        self._next_reconcile_at = 0.0
        self._stop = threading.Event()
        self._stopping_credit = False
        self._heartbeat_wake = threading.Event()
        self._heartbeat_conn: Any = None
        self._last_heartbeat_s = time.monotonic()
        # Rows of jobs to start, for the job threads. Not a ThreadPoolExecutor: its Future per job
        # (a Condition, a lock) cost a worker as much CPU as the rest of a no-op job's hand-offs.
        self._started_jobs: queue.SimpleQueue[tuple] = queue.SimpleQueue()
        self._inbox = amqp.Inbox(settings.amqp_url, self._on_message, name=f"lzq-worker {self.worker_id}")

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
                if not self._inbox.is_open:
                    self._inbox.connect()
                    self._reconcile(0.0, inbox=self._inbox.name)
                    self.log.info("amqp_connected", inbox=self._inbox.name)
                    backoff.reset()
                elif time.monotonic() >= self._next_reconcile_at:
                    self._reconcile(self.settings.dispatch_lease_s)
                self._inbox.process(0.1)
            except amqp.TRANSIENT_ERRORS + db.TRANSIENT_ERRORS as exc:
                delay = backoff.next_delay()
                event = "database_unavailable" if isinstance(exc, db.TRANSIENT_ERRORS) else "amqp_unavailable"
                self.log.warning(event, error=str(exc) or type(exc).__name__, retry_in_s=round(delay, 2))
                # A new inbox, named again, once both answer (its jobs are handed back meanwhile).
                self._inbox.close()
                self._inbox_conn = None
                self._stop.wait(delay)
        self._shutdown()
        return 0

    def _reconcile(self, older_than_s: float, inbox: str | None = None) -> None:
        """Hand back the jobs assigned to us over ``older_than_s`` ago that never arrived, first
        remembering their tokens (a copy arriving late is dropped, whether or not the hand-back
        commits); then name our ``inbox``, if given. On the consuming thread: nothing is admitted
        meanwhile, so what we hold cannot change under the query but by reports."""
        self._next_reconcile_at = time.monotonic() + self.settings.heartbeat_s
        self._inbox_conn = db.reopened(
            self._inbox_conn, self.settings.dsn, application_name="lzq-worker-inbox"
        )
        with self._lock:
            held = [flight.token for flight in self._inflight.values()]
        lost = db.fetch(
            self._inbox_conn,
            "SELECT id, dispatch_token::text FROM lzq_undelivered(%s, %s::uuid[], %s)",
            (self.worker_id, held, older_than_s),
        )
        if lost:
            self._given_back.update(token for _, token in lost)
            handed = db.fetch(
                self._inbox_conn,
                "SELECT * FROM lzq_handback(%s, %s)",
                (self.worker_id, db.json([{"id": job_id, "token": token} for job_id, token in lost])),
            )
            self.log.warning(
                "jobs_undelivered", job_ids=[job_id for job_id, _ in lost], handed_back=len(handed)
            )
        if inbox is not None:
            [(registered,)] = db.fetch(
                self._inbox_conn, "SELECT lzq_worker_inbox(%s, %s)", (self.worker_id, inbox)
            )
            if not registered:
                self._exit_declared_dead("swept")

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
            self._inbox.cancel()
        # Withdraw this worker's credit now; keep heartbeating so running jobs keep their lease.
        self._stopping_credit = True
        self._heartbeat_wake.set()
        deadline = started + self.settings.stop_grace_s
        while self._count_running() and time.monotonic() < deadline:
            self._pump(0.05)
        # Processes the abandoned handlers started must not outlive them (nor act once their jobs
        # run elsewhere): freeze them now, kill them once the jobs are handed back.
        children = _descendants(os.getpid())
        _signal_all(children, signal.SIGSTOP)
        handed = self._handback_and_exit()
        _signal_all(children, signal.SIGKILL)
        # Return straight away: the caller exits the process, ending job threads still running past
        # the grace period. Their jobs are already `ready` again, so every moment here could overlap
        # with a new run elsewhere. The inbox goes with the connection, and what it still held
        # with it (those jobs were handed back too).
        self.log.info(
            "worker_stopped",
            handed_back=sorted(handed),
            duration_ms=round((time.monotonic() - started) * 1000),
        )

    def _pump(self, seconds: float) -> None:
        """Keep the broker connection serviced while we wait (or just wait, if it is gone)."""
        try:
            if self._inbox.is_open:
                self._inbox.process(seconds)
                return
        except amqp.TRANSIENT_ERRORS:
            self._inbox.close()
        time.sleep(seconds)

    def _count_running(self) -> int:
        with self._lock:
            return sum(1 for f in self._inflight.values() if f.running)

    def _handback_and_exit(self) -> list[int]:
        """Give back every job still assigned to us (running past the grace period, received and
        not started, or on its way) and deregister, in one transaction (``lzq_worker_exit``)."""
        backoff = Backoff(max_s=1.0)
        for _ in range(5):
            try:
                with db.connect(self.settings.dsn, application_name="lzq-worker-exit") as conn:
                    rows = db.fetch(conn, "SELECT * FROM lzq_worker_exit(%s)", (self.worker_id,))
                return [row[0] for row in rows]
            except db.TRANSIENT_ERRORS as exc:
                self.log.warning("database_unavailable", step="handback", error=str(exc))
                time.sleep(backoff.next_delay())
        # Not lost: the sweep returns them once this worker's heartbeat expires.
        return []

    # -- heartbeat ---------------------------------------------------------------------------------

    def _heartbeat(self) -> bool:
        """Register or heartbeat; True if the row had to be (re)created."""
        self._heartbeat_conn = db.reopened(
            self._heartbeat_conn, self.settings.dsn, application_name="lzq-worker-heartbeat"
        )
        rows = db.fetch(
            self._heartbeat_conn,
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

    def _on_message(self, body: bytes) -> None:
        """On the consuming thread: take the message's jobs; each starts at once if a slot is free,
        else waits for one (in arrival order)."""
        try:
            jobs = amqp.decode_jobs(body)
        except (ValueError, TypeError):
            self.log.warning("message_malformed", body=body[:200].decode(errors="replace"))
            return
        starting = []
        with self._lock:
            for row in jobs:
                job_id, token = row[0], row[1]
                if token in self._given_back or job_id in self._inflight:
                    # Handed back as never received (it came too late), or a job we hold already.
                    self.log.info("message_stale", job_id=job_id)
                    continue
                self._inflight[job_id] = _InFlight(token)
                self._waiting.append(row)
            while (row := self._next_start()) is not None:
                starting.append(row)
        for row in starting:
            self._started_jobs.put(row)

    def _next_start(self) -> tuple | None:
        """Under _lock: the next waiting job, its slot taken, if a slot is free and we are not
        stopping. Taken under the lock _shutdown counts under: a stop either prevents this start
        or sees the slot taken and waits for the job."""
        if not self._waiting or self._busy_slots >= self.concurrency or self._stop.is_set():
            return None
        row = self._waiting.popleft()
        self._inflight[row[0]].running = True
        self._busy_slots += 1
        return row

    def _job_loop(self) -> None:
        while True:  # daemon thread: ends with the process (see _shutdown)
            row: tuple | None = self._started_jobs.get()
            while row is not None:
                try:
                    row = self._run_job(row)
                except Exception:  # noqa: BLE001 - a bug of ours, not the handler's (_execute catches those)
                    # The thread stays for the next job; this one keeps its slot until the worker exits
                    # and hands it back.
                    self.log.exception("job_thread_error", job_id=row[0])
                    row = None

    def _run_job(self, row: tuple) -> tuple | None:
        """On a job thread: run the handler, free the slot, queue the report for the ledger; returns
        the next waiting job, which this thread then runs (its slot taken)."""
        # No fence stands between a frozen-and-thawed worker and a job the sweep gave to another
        # worker meanwhile: this check, and the one on SIGCONT, are that fence.
        self._exit_if_lease_may_be_lost("heartbeat_gap")
        failpoints.hit("after_start")
        report = self._execute(row)
        failpoints.hit("after_run")
        with self._lock:
            self._busy_slots -= 1
            self._reports.append(report)
            self._ledger_wake.notify()
            return self._next_start()

    # -- the ledger: every report, batched ---------------------------------------------------------

    def _ledger_loop(self) -> None:
        while True:  # daemon thread: ends with the process
            with self._lock:
                while not self._reports:
                    self._ledger_wake.wait()
                reports, self._reports = self._reports, []
            applied = self._commit_reports(reports)
            failpoints.hit("after_finish_commit")
            for report in reports:
                if applied.get(report["id"]) is None:
                    # Our attempt was taken from us (swept or handed back); its outcome no longer counts.
                    self.log.warning("report_rejected", job_id=report["id"], attempt=report["attempt"])
            with self._lock:
                for report in reports:
                    self._inflight.pop(report["id"], None)

    def _commit_reports(self, reports: list[dict[str, Any]]) -> dict[int, str]:
        """One statement, one transaction: ``lzq_finish``. Returns job id → new status of each
        report applied. Outages are waited out with backoff on a new connection: the function is
        idempotent for a retry by the same worker."""
        backoff = Backoff()
        while True:
            try:
                self._ledger_conn = db.reopened(
                    self._ledger_conn, self.settings.dsn, application_name="lzq-worker-ledger"
                )
                rows = db.fetch(
                    self._ledger_conn, "SELECT * FROM lzq_finish(%s, %s)", (self.worker_id, db.json(reports))
                )
                return dict(rows)
            except db.TRANSIENT_ERRORS as exc:
                delay = backoff.next_delay()
                self.log.warning(
                    "database_unavailable", step="ledger", error=str(exc), retry_in_s=round(delay, 2)
                )
                self._ledger_conn = None
                time.sleep(delay)
            except Exception as exc:  # noqa: BLE001 - refused, not an outage: isolate the culprit
                if len(reports) == 1:
                    return self._refused(reports[0], exc)
                applied: dict[int, str] = {}
                for report in reports:
                    applied |= self._commit_reports([report])
                return applied

    def _refused(self, report: dict[str, Any], exc: Exception) -> dict[int, str]:
        """PostgreSQL refused one job's report (a bug, or a report it cannot store).

        It is replaced by a plain ``failed`` one saying why, so the job ends and its slot frees; if
        even that is refused the job stays running here until this worker exits and hands it back.
        """
        reason = first_line(exc)
        self.log.error("report_refused", job_id=report["id"], error=reason)
        if report.get("error", "").startswith(_REFUSED_REPORT):
            return {}
        substitute = {"id": report["id"], "attempt": report["attempt"], "outcome": "failed"}
        substitute["error"] = f"{_REFUSED_REPORT} ({reason}); the handler said: {report.get('error', '')}"
        return self._commit_reports([_storable(substitute)])

    def _execute(self, row: tuple) -> dict[str, Any]:
        (
            job_id,
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


def _storable(report: dict[str, Any]) -> dict[str, Any]:
    """The report with its error text as PostgreSQL can store it (jsonb refuses NUL characters)."""
    if "\x00" in report.get("error", ""):
        report = {**report, "error": report["error"].replace("\x00", "\\x00")}
    return report


def _describe(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(exc))
    return text if len(text) <= _MAX_ERROR_CHARS else text[-_MAX_ERROR_CHARS:]
