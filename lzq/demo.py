"""`lzq demo`: a real workload end to end — migrate, start daemons, push a job mix, watch it, summarise."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lzq
from lzq import amqp, db, schema
from lzq.client import Client
from lzq.config import Settings
from lzq.errors import LzqError

# -- the demo's handlers: the daemons import this module with `--app lzq.demo` ----------------------


@lzq.handler
def resize_image(job_params: dict[str, Any], job_options: dict[str, Any]) -> None:
    """A plain function handler, registered under its own name: a few milliseconds of work."""
    time.sleep(job_params["work_ms"] / 1000)


@lzq.handler("send_digest")
def send_daily_digest(job_params: dict[str, Any]) -> None:
    """A one-argument function registered under another name; the demo schedules it '+2 seconds'."""
    time.sleep(0.002)


class SendEmail(lzq.Job):
    """A Job class, pushed by its dotted path "lzq.demo.SendEmail" (allowed because of --app lzq.demo).

    The first ``fail_attempts`` attempts fail: "busy" asks for a retry in ``retry_in_s`` seconds,
    "crash" raises a plain exception, which also means retry (after the 2^attempt s backoff).
    """

    def run(self, job_params: dict[str, Any], job_options: dict[str, Any]) -> None:
        time.sleep(0.003)
        if self.attempt is not None and self.attempt <= job_params.get("fail_attempts", 0):
            if job_params.get("how") == "crash":
                raise ConnectionResetError("SMTP connection reset by peer")
            raise self.retry("SMTP server busy", delay_s=job_params.get("retry_in_s", 0.5))


class ImportFeed(lzq.Job):
    """Fails for good on bad input: no retry can fix a feed URL."""

    def run(self, job_params: dict[str, Any], job_options: dict[str, Any]) -> None:
        if not job_params["url"].startswith("https://"):
            raise self.fail(f"refusing non-https feed {job_params['url']!r}")


class Reports:
    """A service object: job name "reports#build" calls ``build`` on the registered instance."""

    def build(self, job_params: dict[str, Any], job_options: dict[str, Any]) -> None:
        time.sleep(0.02)


lzq.service("reports", Reports())

# -- the workload ------------------------------------------------------------------------------------

QUEUES = ("default", "emails", "reports")
PUSH_BATCH = 500
#: How long the demo waits for every job to finish: this plus JOB_TIMEOUT_S per job.
BASE_TIMEOUT_S = 120.0
JOB_TIMEOUT_S = 0.01
#: Daemons get this long to exit after SIGTERM (they promise 10 s: supervisor's stopwaitsecs).
STOP_TIMEOUT_S = 15.0
POLL_S = 0.5
_UNFINISHED = "('waiting', 'scheduled', 'ready', 'dispatched')"


@dataclasses.dataclass(frozen=True)
class Kind:
    """One row of the demo's job mix, with the final state it must reach."""

    label: str
    expect_status: str
    expect_attempts: int


AVATAR = Kind("resize_image avatar [default, nice -5]", "succeeded", 1)
THUMBNAIL = Kind("resize_image thumbnail [default, nice 5]", "succeeded", 1)
EMAIL = Kind("SendEmail [emails]", "succeeded", 1)
EMAIL_BUSY = Kind("SendEmail retry(delay_s=0.5) once [emails]", "succeeded", 2)
EMAIL_CRASH = Kind("SendEmail exception once (backoff) [emails]", "succeeded", 2)
EMAIL_BOUNCE = Kind("SendEmail always busy, max_failures=2 [emails]", "failed", 2)
REPORT = Kind("reports#build service [reports, nice 10]", "succeeded", 1)
FEED = Kind("ImportFeed fail(), no retry [default]", "failed", 1)
DIGEST = Kind("send_digest start_time '+2 seconds' [emails]", "succeeded", 1)
KINDS = (AVATAR, THUMBNAIL, EMAIL, EMAIL_BUSY, EMAIL_CRASH, EMAIL_BOUNCE, REPORT, FEED, DIGEST)


def workload(count: int) -> Iterator[tuple[Kind, tuple[Any, dict[str, Any], dict[str, Any]]]]:
    """The demo's jobs: (kind, (job_name, job_params, job_options)), a fixed mix repeating every 40."""
    for i in range(count):
        slot = i % 40
        if slot < 4:
            yield AVATAR, ("resize_image", {"image_id": i, "size": 64, "work_ms": 2}, {"priority": -5})
        elif slot < 20:
            yield THUMBNAIL, ("resize_image", {"image_id": i, "size": 256, "work_ms": 5}, {"priority": 5})
        elif slot < 30:
            params: dict[str, Any] = {"to": f"user{i}@example.com"}
            kind = EMAIL
            options: dict[str, Any] = {"queue_name": "emails"}
            if slot == 20:
                kind, params = EMAIL_BUSY, {**params, "fail_attempts": 1, "how": "busy"}
            elif slot == 21 and i % 80 == 21:
                kind, params = EMAIL_CRASH, {**params, "fail_attempts": 1, "how": "crash"}
            elif slot == 22 and i % 200 == 22:
                kind, params = EMAIL_BOUNCE, {**params, "fail_attempts": 99, "how": "busy", "retry_in_s": 0.2}
                options["max_failures"] = 2
            yield kind, ("lzq.demo.SendEmail", params, options)
        elif slot < 34:
            # Both spellings of a service method: "service#method" and the seed's dict form.
            name: Any = (
                "reports#build" if slot % 2 else {"type": "service", "name": "reports", "method": "build"}
            )
            yield REPORT, (name, {"report_id": i}, {"queue_name": "reports", "priority": 10})
        elif slot < 36:
            yield FEED, ("lzq.demo.ImportFeed", {"url": f"ftp://feeds.example.com/{i}.xml"}, {})
        else:
            yield (
                DIGEST,
                ("send_digest", {"user_id": i}, {"queue_name": "emails", "start_time": "+2 seconds"}),
            )


# -- running it ----------------------------------------------------------------------------------------


class Interrupted(KeyboardInterrupt):
    """SIGTERM/SIGHUP/SIGINT reached the demo: stop the daemons and leave.

    A KeyboardInterrupt, so psycopg cancels a query it interrupts and the connection stays usable.
    """


class Daemons:
    """The superqueuer and worker processes the demo starts; each logs to its own file."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.env = {**os.environ, "LZQ_LOG_LEVEL": "warning", "PYTHONUNBUFFERED": "1"}
        # Every setting, so the daemons see exactly what this process was given (CLI options included).
        for field in dataclasses.fields(settings):
            self.env[f"LZQ_{field.name.upper()}"] = str(getattr(settings, field.name))
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *args: str) -> None:
        with open(self.log_dir / f"{name}.log", "wb") as log_file:
            # A session of their own: a Ctrl-C in the terminal reaches only the demo, which then
            # stops the daemons in order (SIGTERM, as supervisor would).
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "lzq", *args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def dead(self) -> str | None:
        """A description of the first daemon that exited on its own, with its last log lines."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace").splitlines()[-8:]
                return f"{name} exited with code {proc.returncode}:\n    " + "\n    ".join(tail)
        return None

    def stop(self) -> dict[str, int | None]:
        """SIGTERM all, wait up to STOP_TIMEOUT_S, SIGKILL stragglers; exit codes (None: killed)."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        codes: dict[str, int | None] = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                codes[name] = None
        return codes


def run(settings: Settings, jobs: int, workers: int, concurrency: int) -> int:
    """Run the demo; 0 when every job reached its expected final state and every daemon exited 0."""
    log_dir = Path.cwd() / ".lzq-run" / "demo"
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"lzq demo: {jobs} jobs, {workers} worker(s) x {concurrency} slots, queues {', '.join(QUEUES)}")
    print(f"  PostgreSQL: {_redact(settings.dsn) or '(libpq defaults: PGHOST, PGDATABASE, ...)'}")
    print(f"  RabbitMQ:   {_redact(settings.amqp_url)} (queues {settings.amqp_prefix}.<name>)")
    print(f"  logs:       {_relative(log_dir)}/")

    try:
        schema.migrate(settings.dsn)
        amqp.queue_depth(settings.amqp_url, settings.amqp_prefix, QUEUES[0])  # reachable, login works
    except db.TRANSIENT_ERRORS as exc:
        print(f"cannot use PostgreSQL: {exc}".strip(), file=sys.stderr)
        return 1
    except amqp.TRANSIENT_ERRORS as exc:
        print(f"cannot use RabbitMQ at {_redact(settings.amqp_url)}: {exc!r}", file=sys.stderr)
        return 1
    except LzqError as exc:
        print(f"lzq demo: {exc}", file=sys.stderr)
        return 1

    kinds: dict[int, Kind] = {}  # this run's jobs by id, filled in as they are pushed
    daemons = Daemons(settings, log_dir)
    previous_handlers = _catch_signals()
    ok: bool | None = False
    try:
        daemons.start("superqueuer", "superqueuer", "--app", "lzq.demo")
        queue_args = [arg for queue in QUEUES for arg in ("--queue", queue)]
        for n in range(1, workers + 1):
            daemons.start(
                f"worker-{n}", "worker", "--app", "lzq.demo", *queue_args, "--concurrency", str(concurrency)
            )
        ok = _drive(settings, daemons, jobs, kinds)
    except Interrupted:
        print("\ninterrupted")
        ok = None
    except db.TRANSIENT_ERRORS as exc:
        print(f"\nFAIL: lost PostgreSQL: {exc}")
    finally:
        # Stopping must not be cut short by a second Ctrl-C: the daemons exit within 10 s.
        for signum in previous_handlers:
            signal.signal(signum, signal.SIG_IGN)
        stop_started = time.monotonic()
        codes = daemons.stop()
        stop_s = time.monotonic() - stop_started
        if not ok:
            # After the stop, so jobs the workers handed back are caught too.
            _cancel_unfinished(settings, kinds)
        _restore_signals(previous_handlers)
    described = ", ".join(
        f"{name} {'killed' if code is None else f'exit {code}'}" for name, code in codes.items()
    )
    print(f"daemons stopped with SIGTERM in {stop_s:.1f} s: {described}")
    if ok is None:
        return 130
    if any(code != 0 for code in codes.values()):
        print(f"FAIL: a daemon did not exit 0 within {STOP_TIMEOUT_S:.0f} s of SIGTERM; see the logs")
        return 1
    return 0 if ok else 1


def _drive(settings: Settings, daemons: Daemons, count: int, kinds: dict[int, Kind]) -> bool:
    """Push the workload, show progress until every job is final, print the summary."""
    with db.connect(settings.dsn, application_name="lzq-demo") as conn, Client(settings=settings) as client:
        leftovers = db.fetch(conn, f"SELECT count(*) FROM lzq_jobs WHERE status IN {_UNFINISHED}")[0][0]
        if leftovers:
            print(
                f"  note: {leftovers} unfinished job(s) from earlier runs are in this database; "
                "the workers run them too, the counts below leave them out"
            )
        push_started = time.monotonic()
        pending: list[tuple[Kind, tuple]] = []
        for kind, job in workload(count):
            pending.append((kind, job))
            if len(pending) == PUSH_BATCH:
                _push(client, pending, kinds)
        _push(client, pending, kinds)
        push_s = time.monotonic() - push_started
        first_id, last_id = min(kinds), max(kinds)
        print(
            f"pushed {count} jobs (ids {first_id}..{last_id}) with push_many in {push_s:.2f} s "
            f"({count / push_s:,.0f} jobs/s)"
        )
        finished, peak = _watch(conn, daemons, first_id, last_id, count)
        rows = db.fetch(
            conn,
            """SELECT id, status, attempts, extract(epoch FROM finished_at - created_at),
                      extract(epoch FROM max(finished_at) OVER () - min(created_at) OVER ())
                 FROM lzq_jobs WHERE id BETWEEN %s AND %s""",
            (first_id, last_id),
        )
    rows = [row for row in rows if row[0] in kinds]
    _summarise(rows, kinds, peak)
    if not finished:
        return False
    wrong = [(row[0], kinds[row[0]], row[1]) for row in rows if row[1] != kinds[row[0]].expect_status]
    for job_id, kind, status in wrong[:10]:
        print(f"  job {job_id} ({kind.label}) ended {status}, expected {kind.expect_status}")
    if wrong:
        print(f"FAIL: {len(wrong)} job(s) did not reach their expected final state")
        return False
    print(f"OK: all {count} jobs reached their expected final state")
    return True


def _cancel_unfinished(settings: Settings, kinds: dict[int, Kind]) -> None:
    """Cancel this run's jobs that never started, so they don't hold up the next run."""
    if not kinds:
        return
    try:
        with db.connect(settings.dsn, application_name="lzq-demo") as conn:
            cancelled = db.fetch(
                conn,
                f"""SELECT count(*) FILTER (WHERE lzq_cancel(j.id))
                      FROM lzq_jobs AS j WHERE j.id BETWEEN %s AND %s AND j.status IN {_UNFINISHED}""",
                (min(kinds), max(kinds)),
            )[0][0]
    except (*db.TRANSIENT_ERRORS, LzqError) as exc:
        print(f"could not cancel this run's unfinished jobs: {exc}")
        return
    if cancelled:
        print(f"cancelled {cancelled} job(s) of this run that had not started")


def _push(client: Client, pending: list[tuple[Kind, tuple]], kinds: dict[int, Kind]) -> None:
    if pending:
        refs = client.push_many([job for _, job in pending])
        kinds.update((ref.id, kind) for ref, (kind, _) in zip(refs, pending, strict=True))
        pending.clear()


def _watch(conn: Any, daemons: Daemons, first_id: int, last_id: int, count: int) -> tuple[bool, float]:
    """Poll lzq_jobs, print progress until all `count` jobs are final: (all final?, peak jobs/s)."""
    tty = sys.stdout.isatty()
    timeout_s = BASE_TIMEOUT_S + JOB_TIMEOUT_S * count

    def poll() -> tuple[Counter, int]:
        rows = db.fetch(
            conn,
            "SELECT status, count(*) FROM lzq_jobs WHERE id BETWEEN %s AND %s GROUP BY status",
            (first_id, last_id),
        )
        counts = Counter(dict(rows))
        return counts, counts["succeeded"] + counts["failed"] + counts["cancelled"]

    started = last_print = time.monotonic()
    _, last_final = poll()  # some finished while the rest were being pushed
    peak = 0.0
    while True:
        time.sleep(POLL_S)
        counts, final = poll()
        now = time.monotonic()
        done = final >= count
        if now - last_print >= (POLL_S if tty else 2.0) or done:
            rate = (final - last_final) / (now - last_print)
            peak = max(peak, rate)
            # Most telling first: a narrow terminal cuts the end off.
            line = (
                f"{now - started:5.1f}s {rate:>6,.0f} jobs/s  final {final}/{count} "
                f"({counts['succeeded']} ok, {counts['failed']} failed)  "
                f"ready {counts['ready']}  scheduled {counts['scheduled']}  "
                f"running {counts['running']}"
            )
            if tty:  # one line, rewritten in place: it must not wrap
                width = shutil.get_terminal_size().columns - 1
                print(f"\r{line[:width]}\x1b[K", end="\n" if done else "", flush=True)
            else:
                print(line, flush=True)
            last_print, last_final = now, final
        if done:
            return True, peak
        problem = daemons.dead()
        if problem:
            print(f"\nFAIL: {problem}")
            return False, peak
        if now - started > timeout_s:
            print(f"\nFAIL: timed out after {timeout_s:.0f} s with {count - final} job(s) not final")
            return False, peak


def _summarise(rows: list[tuple], kinds: dict[int, Kind], peak: float) -> None:
    """Per kind: outcomes, attempts, and how long after its push each job was done."""
    by_kind: dict[Kind, list[tuple]] = {kind: [] for kind in KINDS}
    for row in rows:
        by_kind[kinds[row[0]]].append(row)
    width = max(len(kind.label) for kind in KINDS)
    print(
        f"\n{'kind':<{width}}  {'jobs':>5} {'succeeded':>9} {'failed':>6} {'attempts':>8} "
        f"{'retries':>7} {'done p50':>8} {'done p95':>8}  expected"
    )
    for kind, kind_rows in by_kind.items():
        if not kind_rows:
            continue
        statuses = Counter(row[1] for row in kind_rows)
        attempts = sum(row[2] for row in kind_rows)
        done_s = sorted(float(row[3]) for row in kind_rows if row[3] is not None)
        p50 = f"{statistics.median(done_s):.2f}s" if done_s else "-"
        p95 = f"{done_s[min(len(done_s) - 1, int(len(done_s) * 0.95))]:.2f}s" if done_s else "-"
        print(
            f"{kind.label:<{width}}  {len(kind_rows):>5} {statuses['succeeded']:>9} {statuses['failed']:>6} "
            f"{attempts:>8} {attempts - len(kind_rows):>7} {p50:>8} {p95:>8}  "
            f"{kind.expect_status}, {kind.expect_attempts} attempt(s)"
        )
    wall_s = max((float(row[4]) for row in rows if row[4] is not None), default=0.0)
    if wall_s:
        print(
            f"\n{len(rows)} jobs from first push to last finish in {wall_s:.2f} s: "
            f"{len(rows) / wall_s:,.0f} jobs/s (includes the '+2 seconds' schedule and the retry backoffs; "
            f"peak {peak:,.0f} jobs/s)"
        )


def _catch_signals() -> dict[int, Any]:
    """Turn SIGTERM/SIGHUP/SIGINT into Interrupted so the daemons are always stopped."""

    def interrupt(signum: int, _frame: Any) -> None:
        raise Interrupted(signal.Signals(signum).name)

    previous = {}
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        try:
            previous[signum] = signal.signal(signum, interrupt)
        except ValueError:  # not the main thread: leave signals alone
            break
    return previous


def _restore_signals(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def _redact(text: str) -> str:
    """Hide passwords in URLs (user:secret@) and conninfo strings (password=secret)."""
    text = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", text)
    return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", text)


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
