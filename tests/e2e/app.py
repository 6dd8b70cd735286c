"""Handlers for the end-to-end tests. Each run is recorded in e2e_runs, independently of lzq's tables.

Every write of the record is fenced with the job's attempt (lzq.fence), as any side effect that
must never overlap another run of the same job should be: the record is what each run did.

The record (start and end by the database clock, pid) is what the tests check "ran exactly once" and
"never twice at the same time" against: it is written by the handler itself, not derived from lzq.
"""

from __future__ import annotations

import os
import threading
import time

import psycopg

import lzq

_local = threading.local()


def _conn() -> psycopg.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed or conn.broken:  # a PostgreSQL restart breaks it
        _local.conn = psycopg.connect(os.environ["LZQ_DSN"], autocommit=True)
    return _local.conn


def _fenced(options: dict, sql: str, params: tuple) -> list:
    """One write of the record, fenced with the job's attempt, as a handler whose side effects must
    never overlap another run of its job writes (lzq.fence). A write after a hand-over fails."""
    conn = _conn()
    with conn.transaction():
        lzq.fence(conn, options)
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


@lzq.handler
def record(params: dict, options: dict) -> None:
    """Record the run; sleep params["sleep_s"]; fail while attempt <= params["fail_attempts"]."""
    [(run_id,)] = _fenced(
        options,
        "INSERT INTO e2e_runs (job_id, attempt, pid) VALUES (%s, %s, %s) RETURNING run_id",
        (options["id"], options["attempt"], os.getpid()),
    )
    # Sleep in steps, noting we are alive: a run cut short by its process dying ends at its last step.
    deadline = time.monotonic() + params.get("sleep_s", 0)
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.05))
        _fenced(options, "UPDATE e2e_runs SET last_seen_at = clock_timestamp() WHERE run_id = %s", (run_id,))
    _fenced(options, "UPDATE e2e_runs SET finished_at = clock_timestamp() WHERE run_id = %s", (run_id,))
    if options["attempt"] <= params.get("fail_attempts", 0):
        raise lzq.Retry("planned failure", delay_s=0)


class Counted(lzq.Job):
    """A class handler; `Counted#twice` is a method handler."""

    def run(self, job_params: dict, job_options: dict) -> None:
        record(job_params, job_options)

    def twice(self, job_params: dict, job_options: dict) -> None:
        record(job_params, job_options)


@lzq.handler
def spawner(params: dict, options: dict) -> None:
    """Starts a long child process (and a grandchild), noting their pids, then waits for it."""
    import subprocess

    child = subprocess.Popen(["sh", "-c", "sleep 60 & echo $!; wait"], stdout=subprocess.PIPE, text=True)
    grandchild = int(child.stdout.readline())
    _conn().execute(
        "INSERT INTO e2e_children (job_id, pid) VALUES (%s, %s), (%s, %s)",
        (options["id"], child.pid, options["id"], grandchild),
    )
    record({"sleep_s": 0}, options)
    child.wait()


@lzq.handler
def poison(params: dict, options: dict) -> None:
    """Kills the worker process running it, as a segfault or the OOM killer would."""
    record({}, options)
    os._exit(137)


class Limited(lzq.Job):
    """At most 2 at once per bucket and 3 at once overall (measured from e2e_runs)."""

    def run(self, job_params: dict, job_options: dict) -> None:
        record(job_params, job_options)

    def is_ready_to_run(self, job_params: dict, job_options: dict) -> lzq.Readiness:
        return self.ready().limit_to(2, {"bucket": job_params["bucket"]}).limit_to(3)


class Gated(lzq.Job):
    """Runs once a row named params["gate"] exists in e2e_gates; a missing table means "not yet"."""

    def run(self, job_params: dict, job_options: dict) -> None:
        record(job_params, job_options)

    def is_ready_to_run(self, job_params: dict, job_options: dict) -> lzq.Readiness:
        return self.ready().check(
            lambda p, o: (
                _conn().execute("SELECT 1 FROM e2e_gates WHERE gate = %s", (p["gate"],)).fetchone()
                is not None
            )
        )

    def either(self, job_params: dict, job_options: dict) -> lzq.Readiness:
        never, always = (lambda p, o: False), (lambda p, o: True)
        return self.ready().any(self.ready().check(never), self.ready().check(always).check(always))

    def explodes(self, job_params: dict, job_options: dict) -> bool:
        raise RuntimeError("check blew up")


@lzq.handler
def raises(params: dict, options: dict) -> None:
    """Records the run, then raises RuntimeError(params["message"]) with "<NUL>" turned into a NUL
    character (which jsonb, and so a job's params, cannot hold), or a retry with params["delay_s"]."""
    record({}, options)
    if "delay_s" in params:
        raise lzq.Retry("retry with a strange delay", delay_s=float(params["delay_s"]))
    raise RuntimeError(params["message"].replace("<NUL>", "\x00"))
