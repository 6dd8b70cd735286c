"""Shared benchmark helpers: scratch databases, real daemon processes, server settings, medians."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import lzq
from benchmarks.stats import median, percentile  # noqa: F401 - the scripts' one import
from lzq import schema
from lzq.config import DEFAULT_AMQP_URL

#: The checkout root: daemons run from here so `--app benchmarks.noop` imports.
REPO_ROOT = Path(__file__).resolve().parent.parent
AMQP_URL = os.environ.get("LZQ_AMQP_URL", DEFAULT_AMQP_URL)
#: The settings that decide what a commit costs and how far a run can scale.
PG_SETTINGS = (
    "server_version",
    "fsync",
    "synchronous_commit",
    "shared_buffers",
    "wal_level",
    "max_connections",
    "autovacuum",
)


# -- numbers ---------------------------------------------------------------------------------------


def fmt_rate(value: float) -> str:
    """A rate as a short integer string, e.g. 12345."""
    return f"{value:,.0f}".replace(",", "")


def say(*parts: object) -> None:
    """Print and flush, so progress shows up when stdout is a pipe."""
    print(*parts, flush=True)


# -- PostgreSQL ------------------------------------------------------------------------------------


def add_dsn_option(parser: argparse.ArgumentParser) -> None:
    """``--dsn``, the same in every script: where scratch databases are created."""
    parser.add_argument(
        "--dsn",
        default=None,
        help="conninfo of an existing maintenance database (default: PGHOST/PGPORT/PGUSER, "
        "dbname postgres); a scratch database is created next to it",
    )


def add_prefetch_margin_option(parser: argparse.ArgumentParser) -> None:
    """``--prefetch-margin K``: ``LZQ_PREFETCH_MARGIN`` for the daemons (see ``daemon_settings``)."""
    parser.add_argument(
        "--prefetch-margin",
        type=int,
        help="LZQ_PREFETCH_MARGIN for the daemons: extra jobs per worker beyond its slots (default: auto)",
    )


def daemon_settings(args: argparse.Namespace) -> dict[str, object]:
    """lzq Settings the command line overrides for the daemons (sent as LZQ_* variables): only
    ``--prefetch-margin``, and only when given; otherwise lzq's default applies."""
    return {} if args.prefetch_margin is None else {"prefetch_margin": args.prefetch_margin}


def describe_margin(args: argparse.Namespace) -> object:
    """``--prefetch-margin`` as the scripts print it in their first line."""
    return daemon_settings(args).get("prefetch_margin", "lzq default")


def maintenance_conninfo(dsn: str | None) -> str:
    """Conninfo of a database we may CREATE DATABASE from: ``--dsn`` or PGHOST/PGPORT/PGUSER."""
    if dsn:
        return dsn
    return make_conninfo(
        host=os.environ.get("PGHOST", "127.0.0.1"),
        port=os.environ.get("PGPORT", "5432"),
        user=os.environ.get("PGUSER", "postgres"),
        dbname=os.environ.get("PGDATABASE", "postgres"),
    )


class ScratchDatabase:
    """A database of our own (``lzq_bench_<pid>``), created fresh and migrated; dropped on exit.

    A previous run's leftover with the same name is dropped first (same pid, crashed run).
    """

    def __init__(self, maintenance_dsn: str | None = None, suffix: str = "", migrate: bool = True) -> None:
        self.maintenance_dsn = maintenance_conninfo(maintenance_dsn)
        self.name = f"lzq_bench_{os.getpid()}{suffix}"
        self.dsn = make_conninfo(self.maintenance_dsn, dbname=self.name)
        self._migrate = migrate

    def __enter__(self) -> ScratchDatabase:
        self.drop()
        with psycopg.connect(self.maintenance_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        if self._migrate:
            schema.migrate(self.dsn)
        return self

    def __exit__(self, *exc: object) -> None:
        self.drop()

    def drop(self) -> None:
        """DROP DATABASE IF EXISTS … WITH (FORCE): daemons that outlived a crash must not block it."""
        with psycopg.connect(self.maintenance_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))

    def connect(self) -> psycopg.Connection:
        """An autocommit connection to the scratch database."""
        return psycopg.connect(self.dsn, autocommit=True, application_name="lzq-bench")

    def track_functions(self) -> bool:
        """Count calls and time of every SQL function in sessions opened from now on
        (``pg_stat_user_functions``). Needs superuser; False if not allowed."""
        try:
            with psycopg.connect(self.maintenance_dsn, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("ALTER DATABASE {} SET track_functions = 'all'").format(sql.Identifier(self.name))
                )
            return True
        except psycopg.errors.InsufficientPrivilege:
            return False

    def function_stats(self, wait_s: float = 5.0) -> dict[str, tuple[int, float, float]]:
        """name → (calls, total ms, self ms) from ``pg_stat_user_functions``.

        Waits (up to ``wait_s``) for other sessions to end first: a backend flushes its counters
        when it exits, so the daemons' numbers are complete only then.
        """
        with self.connect() as conn:
            deadline = time.monotonic() + wait_s
            while (
                time.monotonic() < deadline
                and conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid()"
                ).fetchone()[0]
            ):
                time.sleep(0.1)
            time.sleep(0.2)  # the exiting backends' last flush
            rows = conn.execute("SELECT funcname, calls, total_time, self_time FROM pg_stat_user_functions")
            return {name: (calls, total, own) for name, calls, total, own in rows}


def server_settings(dsn: str, names: Iterable[str] = PG_SETTINGS) -> dict[str, str]:
    """The PostgreSQL settings that matter for these numbers (``names``), as the server reports them."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return {
            name: conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()[0]
            for name in names
        }


def machine_info() -> dict[str, str]:
    """nproc, load average, Python and lzq versions."""
    info = {"nproc": str(os.cpu_count()), "python": platform.python_version(), "lzq": lzq.__version__}
    with contextlib.suppress(OSError):
        info["loadavg"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return info


def print_environment(dsn: str | None) -> None:
    """One block saying what the numbers ran under: server settings and machine."""
    conninfo = maintenance_conninfo(dsn)
    parts = conninfo_to_dict(conninfo)
    say(f"server: {parts.get('host', 'local')}:{parts.get('port', '5432')}")
    say("postgresql: " + ", ".join(f"{k}={v}" for k, v in server_settings(conninfo).items()))
    say("machine: " + ", ".join(f"{k}={v}" for k, v in machine_info().items()))


# -- RabbitMQ --------------------------------------------------------------------------------------


def new_amqp_prefix() -> str:
    """A RabbitMQ queue prefix of this run's own (LZQ_AMQP_PREFIX), so runs never share queues."""
    return f"lzqbench-{os.getpid()}-{uuid.uuid4().hex[:8]}"


# -- daemons ---------------------------------------------------------------------------------------


class Daemons:
    """Real ``python -m lzq superqueuer|worker`` processes; logs go to a temp dir.

    ``stop()`` sends SIGTERM to all, waits ``timeout_s``, then SIGKILLs stragglers; it returns the
    exit codes so a benchmark can insist on a clean (0) graceful stop. ``settings`` become ``LZQ_*``
    variables of the daemons (``{"prefetch_margin": 8}`` → ``LZQ_PREFETCH_MARGIN=8``).
    """

    def __init__(
        self,
        dsn: str,
        amqp_prefix: str,
        app: str = "benchmarks.noop",
        log_level: str = "warning",
        settings: dict[str, object] | None = None,
    ) -> None:
        self.env = {
            **os.environ,
            "LZQ_DSN": dsn,
            "LZQ_AMQP_PREFIX": amqp_prefix,
            "LZQ_AMQP_URL": AMQP_URL,
            "LZQ_LOG_LEVEL": log_level,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
            **{f"LZQ_{name.upper()}": str(value) for name, value in (settings or {}).items()},
        }
        self.app = app
        self.log_dir = Path(tempfile.mkdtemp(prefix="lzq-bench-"))
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start_superqueuer(self) -> subprocess.Popen:
        return self._spawn("superqueuer", ["superqueuer", "--app", self.app])

    def start_worker(self, concurrency: int, queues: Sequence[str] = ("default",)) -> subprocess.Popen:
        args = ["worker", "--app", self.app, "--concurrency", str(concurrency)]
        for queue_name in queues:
            args += ["--queue", queue_name]
        return self._spawn(f"worker{sum(1 for n, _ in self.procs if n.startswith('worker')) + 1}", args)

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log_file = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "lzq", *args],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        log_file.close()  # the child holds its own descriptor
        self.procs.append((name, proc))
        return proc

    def dead(self) -> list[tuple[str, int]]:
        """(name, exit code) of daemons that exited on their own."""
        return [(name, proc.returncode) for name, proc in self.procs if proc.poll() is not None]

    def stop(self, timeout_s: float = 15.0) -> dict[str, int]:
        """SIGTERM all, wait, SIGKILL what is left; returns name → exit code (-9: killed)."""
        for _, proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        codes: dict[str, int] = {}
        for name, proc in self.procs:
            try:
                codes[name] = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = proc.wait()
        return codes

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.log_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.procs}

    def __enter__(self) -> Daemons:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if any(proc.poll() is None for _, proc in self.procs):
            self.stop()
        if exc_type is None:
            shutil.rmtree(self.log_dir, ignore_errors=True)  # kept after a failure, for the post-mortem


# -- CPU accounting --------------------------------------------------------------------------------

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def process_rss_mb(pid: int) -> float:
    """Resident memory (``VmRSS`` in /proc/PID/status) of one process in MB; nan if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def cpu_by_command(names: Iterable[str]) -> dict[str, float]:
    """CPU seconds so far of every local process whose command is one of ``names`` (e.g. RabbitMQ's
    ``beam.smp``: the whole broker, so other users' load on it is included)."""
    wanted = set(names)
    totals = dict.fromkeys(wanted, 0.0)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm in wanted:
            totals[comm] += process_cpu_s(int(entry.name))
    return totals


@contextlib.contextmanager
def stopwatch() -> Iterator[list[float]]:
    """``with stopwatch() as t: ...`` then ``t[0]`` is the elapsed seconds."""
    result: list[float] = []
    started = time.perf_counter()
    try:
        yield result
    finally:
        result.append(time.perf_counter() - started)
