"""Real daemons for end-to-end tests: `python -m lzq superqueuer|worker|buffer` processes on the test DB."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from lzq.config import Settings

pytestmark = pytest.mark.e2e

_ROOT = Path(__file__).resolve().parents[2]


class Daemons:
    """Starts and stops lzq daemon processes; their logs go to files in the test's tmp dir."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen] = []

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                f"LZQ_{f.name.upper()}": str(getattr(self.settings, f.name))
                for f in dataclasses.fields(Settings)
            }
        )
        env.update({"LZQ_LOG_LEVEL": "info", "PYTHONPATH": str(_ROOT)})
        return env

    def start(self, *args: str, app: bool = True) -> subprocess.Popen:
        name = f"{args[0]}-{len(self.procs)}"
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "lzq", *args, *(["--app", "tests.e2e.app"] if app else [])],
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=_ROOT,
        )
        proc.log_path = self.log_dir / f"{name}.log"  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def superqueuer(self) -> subprocess.Popen:
        return self.start("superqueuer")

    def worker(self, concurrency: int = 4, *queues: str) -> subprocess.Popen:
        queue_args = [arg for q in (queues or ("default",)) for arg in ("--queue", q)]
        return self.start("worker", "--concurrency", str(concurrency), *queue_args)

    def buffer(self, *args: str) -> subprocess.Popen:
        """An lzq-buffer (it runs no handlers, so no --app); ``--dsn ...`` overrides the database."""
        return self.start("buffer", *args, app=False)

    def terminate(self, proc: subprocess.Popen, timeout_s: float = 10) -> tuple[int, float]:
        """SIGTERM and wait; returns (exit code, seconds it took)."""
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=timeout_s)
        return code, time.monotonic() - started

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.log_path.read_text()[-4000:]}" for p in self.procs)


@pytest.fixture
def daemons(settings: Settings, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Daemons]:
    d = Daemons(settings, tmp_path)
    yield d
    d.stop_all()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(d.logs())


@pytest.fixture
def runs_table(conn: psycopg.Connection) -> psycopg.Connection:
    """The independent record of what ran (see tests/e2e/app.py)."""
    conn.execute("""CREATE TABLE e2e_runs (
        run_id bigserial PRIMARY KEY, job_id bigint NOT NULL, attempt integer NOT NULL, pid integer NOT NULL,
        started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        last_seen_at timestamptz NOT NULL DEFAULT clock_timestamp(), finished_at timestamptz)""")
    return conn


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # noqa: ARG001
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def status_counts(conn: psycopg.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT status, count(*) FROM lzq_jobs GROUP BY status").fetchall())


def overlapping_runs(conn: psycopg.Connection) -> list[tuple]:
    """Pairs of runs of the same job whose intervals overlap; a run cut short by its process dying
    ends when it was last seen alive (handlers note that every 50 ms)."""
    return conn.execute("""
        SELECT a.job_id, a.run_id, b.run_id
          FROM e2e_runs a JOIN e2e_runs b ON a.job_id = b.job_id AND a.run_id < b.run_id
         WHERE tstzrange(a.started_at, coalesce(a.finished_at, a.last_seen_at), '[]') &&
               tstzrange(b.started_at, coalesce(b.finished_at, b.last_seen_at), '[]')""").fetchall()
