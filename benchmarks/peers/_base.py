"""Shared parts of the peer adapters: the job recorder, the worker processes, the scenario driver.

Every adapter runs in its own process (``python -m benchmarks.peers.<system> --name N ...``), runs
every scenario once against its system and prints one ``RESULT {json}`` line for ``peers.py``.

The handler of every system calls :func:`record` and nothing else. It counts jobs and, for
latency jobs (params carry ``t``, the producer's ``time.time()`` just before the enqueue call),
keeps ``time.time() - t`` at handler start. A daemon thread per worker process writes the counts
to ``$LZQ_PEER_DIR/<pid>.json`` and appends new latencies to ``<pid>.lat`` every 20 ms, so the hot
path makes no extra I/O and every system is measured the same way, on the same clock, with no
database or broker of its own telling us.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path

from benchmarks.stats import percentile

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
#: Directory where worker processes report (set by the adapter for its workers).
DIR_ENV = "LZQ_PEER_DIR"
FLUSH_S = 0.02
POLL_S = 0.02

# -- the handler side (runs in the worker processes) -----------------------------------------------

_lock = threading.Lock()
_state: dict[str, object] = {"pid": None}


def _reset() -> None:
    _state.update(pid=os.getpid(), count=0, first=None, last=None, latencies=[])
    threading.Thread(target=_flush_loop, name="peer-recorder", daemon=True).start()


def record(t: float | None = None) -> None:
    """Called first thing by every handler: count the job; with ``t``, keep its push→start latency."""
    now = time.time()
    if _state["pid"] != os.getpid():  # first job in this (possibly forked) process
        with _lock:
            if _state["pid"] != os.getpid():
                _reset()
    with _lock:
        _state["count"] += 1
        if _state["first"] is None:
            _state["first"] = now
        _state["last"] = now
        if t is not None:
            _state["latencies"].append(now - t)


def _flush_loop() -> None:
    """Every FLUSH_S: append the latencies recorded since the last flush to ``<pid>.lat`` (float64s),
    then replace ``<pid>.json`` (counts, and how many latencies the .lat file holds). Only new
    latencies are written: rewriting all of them each time (JSON) cost the worker processes CPU that
    grew with the run, during the very latency measurement."""
    out_dir = Path(os.environ[DIR_ENV])
    path, tmp = out_dir / f"{os.getpid()}.json", out_dir / f".{os.getpid()}.tmp"
    written = -1
    latencies_written = 0
    with open(out_dir / f"{os.getpid()}.lat", "ab") as latency_file:
        while True:
            time.sleep(FLUSH_S)
            with _lock:
                if _state["count"] == written:
                    continue
                written = _state["count"]
                counts = {k: _state[k] for k in ("count", "first", "last")}
                new, _state["latencies"] = _state["latencies"], []
            if new:
                array.array("d", new).tofile(latency_file)
                latency_file.flush()
                latencies_written += len(new)
            tmp.write_text(json.dumps(counts | {"latencies": latencies_written}))
            os.replace(tmp, path)  # atomic: the reader never sees half a file


# -- the adapter side -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options peers.py passes to every adapter."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True, help="scratch database and queue name of this run")
    parser.add_argument("--dsn", required=True, help="maintenance conninfo (CREATE DATABASE from here)")
    parser.add_argument("--amqp-url", required=True)
    parser.add_argument("--jobs", type=int, default=20000, help="backlog to drain")
    parser.add_argument("--push-jobs", type=int, default=2000, help="single enqueues (part of the backlog)")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=200.0, help="latency scenario: jobs/s")
    parser.add_argument("--latency-s", type=float, default=10.0)
    parser.add_argument("--stall-s", type=float, default=60.0)
    return parser.parse_args(argv)


class Workers:
    """The worker processes of one system, all reporting into one temp directory."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="lzq-peer-"))
        self.env = {
            **os.environ,
            DIR_ENV: str(self.dir),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        }
        self.procs: list[subprocess.Popen] = []

    def spawn(self, argv: Sequence[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.dir / f"worker{len(self.procs)}.log", "wb")  # noqa: SIM115 - the child keeps it
        proc = subprocess.Popen(
            list(argv), cwd=REPO_ROOT, env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self.procs.append(proc)
        return proc

    def reports(self) -> list[dict]:
        """Each worker process's counts, with ``latencies`` as the list of seconds it recorded."""
        out = []
        for path in self.dir.glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                report = json.loads(path.read_text())
                latencies = array.array("d")
                # Only as many as the .json says: the .lat file may already hold a flush more.
                latencies.frombytes(path.with_suffix(".lat").read_bytes()[: 8 * report["latencies"]])
                out.append(report | {"latencies": latencies.tolist()})
        return out

    def count(self) -> int:
        return sum(r["count"] for r in self.reports())

    def wait_for(self, total: int, stall_s: float) -> None:
        """Until the workers have started ``total`` jobs; raises if a worker died or nothing moved."""
        last, last_change = -1, time.monotonic()
        while (done := self.count()) < total:
            now = time.monotonic()
            if done != last:
                last, last_change = done, now
            dead = [p.returncode for p in self.procs if p.poll() is not None]
            if dead or now - last_change > stall_s:
                why = f"workers exited {dead}" if dead else f"no progress for {stall_s:.0f} s"
                raise RuntimeError(f"{why} at {done}/{total} jobs; {self.log_tail()}")
            time.sleep(POLL_S)

    def log_tail(self, lines: int = 6) -> str:
        tails = []
        for path in sorted(self.dir.glob("*.log")):
            text = path.read_text(errors="replace").strip().splitlines()[-lines:]
            if text:
                tails.append(f"{path.name}: " + " | ".join(text))
        return "; ".join(tails)

    def stop(self, timeout_s: float = 10.0) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.stop()
        if exc_type is None:  # kept after a failure, for the worker logs
            shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def scratch_database(maintenance_dsn: str, name: str) -> Iterator[str]:
    """CREATE DATABASE ``name`` (dropping a leftover first), yield its conninfo, drop it WITH (FORCE)."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    def drop() -> None:
        with psycopg.connect(maintenance_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    drop()
    with psycopg.connect(maintenance_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(maintenance_dsn, dbname=name)
    finally:
        drop()


def delete_amqp(url: str, queues: Sequence[str] = (), exchanges: Sequence[str] = ()) -> None:
    """Delete RabbitMQ queues and exchanges (missing ones are fine)."""
    import pika
    import pika.exceptions

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        for kind, names in (("queue", queues), ("exchange", exchanges)):
            for name in names:
                channel = connection.channel()
                try:
                    getattr(channel, f"{kind}_delete")(name)
                    channel.close()
                except pika.exceptions.ChannelClosedByBroker:
                    pass
    finally:
        connection.close()


def conninfo_to_url(conninfo: str) -> str:
    """``host=… dbname=…`` → ``postgresql://user:password@host:port/dbname`` (asyncpg wants URLs)."""
    from urllib.parse import quote

    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(conninfo)
    auth = quote(str(parts.get("user", "postgres")))
    if parts.get("password"):
        auth += ":" + quote(str(parts["password"]))
    host, port = parts.get("host", "127.0.0.1"), parts.get("port", "5432")
    return f"postgresql://{auth}@{host}:{port}/{quote(str(parts.get('dbname', 'postgres')))}"


class Scenarios:
    """What one adapter measures, in order, with the system-specific parts passed in.

    ``push(params)`` enqueues one job, ``push_many(list_of_params)`` one batch with the system's bulk
    API, ``start_workers(workers)`` spawns 2 × 8 (or ``--workers`` × ``--concurrency``). Sync or async
    callables both work (``run`` awaits what returns awaitables).
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.result: dict[str, object] = {}

    async def run(
        self,
        push: Callable[[dict], object],
        push_many: Callable[[list[dict]], object],
        start_workers: Callable[[Workers], None],
        notes: str = "",
    ) -> dict[str, object]:
        args = self.args

        async def call(fn: Callable, arg: object) -> None:
            value = fn(arg)
            if isinstance(value, Awaitable):
                await value

        # 1. single enqueues: the first --push-jobs of the backlog, one call each.
        await call(push, {"n": -1})  # connect outside the timing; counted in the backlog
        singles = args.push_jobs
        started = time.perf_counter()
        for i in range(singles):
            await call(push, {"n": i})
        self.result["push_per_s"] = singles / (time.perf_counter() - started)
        # 2. the rest of the backlog through the bulk API, in batches of --batch.
        rest = max(0, args.jobs - singles - 1)
        started = time.perf_counter()
        for first in range(0, rest, args.batch):
            await call(push_many, [{"n": i} for i in range(first, min(rest, first + args.batch))])
        if rest:
            self.result["push_many_per_s"] = rest / (time.perf_counter() - started)
        backlog = singles + 1 + rest
        with Workers() as workers:
            # 3. drain: first handler start to last handler start over all workers (the handlers
            # are no-ops, so the last start is the last job's run).
            spawned = time.time()
            start_workers(workers)
            workers.wait_for(backlog, args.stall_s)
            reports = workers.reports()
            first = min(r["first"] for r in reports if r["first"])
            last = max(r["last"] for r in reports if r["last"])
            self.result["drain_per_s"] = backlog / max(last - first, 1e-9)
            self.result["drain_from_spawn_per_s"] = backlog / (last - spawned)
            # 4. latency: one job every 1/rate s against the now idle, warm workers.
            count = max(1, int(args.rate * args.latency_s))
            t0 = time.perf_counter()
            for i in range(count):
                delay = t0 + i / args.rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await call(push, {"n": i, "t": time.time()})
            self.result["latency_rate_achieved"] = count / (time.perf_counter() - t0)
            workers.wait_for(backlog + count, args.stall_s)
            time.sleep(FLUSH_S * 3)
            latencies = [x for r in workers.reports() for x in r["latencies"]]
            self.result["latency_p50_ms"] = percentile(latencies, 0.50) * 1000
            self.result["latency_p99_ms"] = percentile(latencies, 0.99) * 1000
            self.result["latency_samples"] = len(latencies)
        self.result["backlog"] = backlog
        if notes:
            self.result["notes"] = notes
        return self.result


def emit(result: dict[str, object]) -> None:
    """The one line peers.py reads."""
    print("RESULT " + json.dumps(result), flush=True)


def main(run: Callable[[argparse.Namespace], Awaitable[dict[str, object]]]) -> None:
    """Adapter entry point: parse the options, run, print the result (or the error, exit 1)."""
    args = parse_args()
    try:
        result = asyncio.run(run(args))
    except Exception as exc:  # reported as n/a by peers.py, with this reason
        print(f"ERROR {type(exc).__name__}: {exc}"[:2000], flush=True)
        sys.exit(1)
    emit(result)


def python() -> str:
    """The interpreter the workers run under (the benchmark virtualenv)."""
    return sys.executable
