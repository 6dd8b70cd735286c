"""Throughput: enqueue rates (push, push_many) and burn-down of N no-op jobs through real daemons.

    python benchmarks/throughput.py                      # 20000 jobs, 2 workers x 8 slots, 3 runs
    python benchmarks/throughput.py --smoke              # a few seconds: proves it still works
    python benchmarks/throughput.py --jobs 50000 --workers 4 --concurrency 16 --runs 5

Each run gets a fresh scratch database and its own RabbitMQ prefix. Per run: time single
``Client.push`` calls (one commit each), then ``Client.push_many`` in batches, then start one
superqueuer and W workers and poll until every job has succeeded. Afterwards every job must be
``succeeded`` with ``attempts = 1`` and every daemon must stop cleanly (exit 0), else exit 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (  # noqa: E402
    Daemons,
    ScratchDatabase,
    add_dsn_option,
    add_prefetch_margin_option,
    cpu_by_command,
    daemon_settings,
    describe_margin,
    fmt_rate,
    median,
    new_amqp_prefix,
    print_environment,
    process_cpu_s,
    say,
)
from lzq.client import Client  # noqa: E402

POLL_S = 0.05


class BenchmarkFailed(Exception):
    """A run produced wrong results (not just slow ones)."""


@dataclasses.dataclass
class RunResult:
    push_per_s: float
    push_notify_per_s: float
    push_many_per_s: float
    #: From daemon start (process spawn) until the last job was seen succeeded.
    drain_wall_s: float
    #: From the first job's started_at to the last job's finished_at (database clock).
    drain_db_s: float
    cpu_s: dict[str, float]
    #: pg_stat_user_functions: name -> (calls, total ms, self ms); empty if not tracked.
    functions: dict[str, tuple[int, float, float]]


def measure_push(client: Client, count: int) -> float:
    """Single pushes, one commit each, one thread: jobs/s."""
    started = time.perf_counter()
    for i in range(count):
        client.push("noop", {"n": i})
    return count / (time.perf_counter() - started)


def measure_push_many(client: Client, count: int, batch: int) -> float:
    """``push_many`` in batches of ``batch`` (one statement and one commit each): jobs/s."""
    started = time.perf_counter()
    for first in range(0, count, batch):
        client.push_many([("noop", {"n": i}) for i in range(first, min(count, first + batch))])
    return count / (time.perf_counter() - started)


def start_profilers(daemons: Daemons, out_dir: str, index: int, gil: bool) -> list[subprocess.Popen]:
    """py-spy record on every daemon until SIGINT: wall clock (idle threads included), or with
    ``gil`` only the thread holding the GIL (where the CPU goes)."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(
            [
                py_spy,
                "record",
                "--gil" if gil else "--idle",
                "--rate",
                "100",
                "--format",
                args_format,
                "--output",
                str(Path(out_dir, f"run{index}-{name}.{suffix}")),
                "--pid",
                str(pid),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in daemons.pids().items()
        for args_format, suffix in (("flamegraph", "svg"), ("raw", "txt"))
    ]


def stop_profilers(profilers: list[subprocess.Popen]) -> None:
    for proc in profilers:
        proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    for proc in profilers:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def drain(
    scratch: ScratchDatabase, prefix: str, args: argparse.Namespace, index: int
) -> tuple[float, dict[str, float]]:
    """Start the daemons and wait until all jobs succeeded; returns (wall seconds, CPU seconds by role)."""
    server_cpu_before = cpu_by_command(["beam.smp"])
    with scratch.connect() as conn, Daemons(scratch.dsn, prefix, settings=daemon_settings(args)) as daemons:
        started = time.perf_counter()
        daemons.start_superqueuer()
        for _ in range(args.workers):
            daemons.start_worker(args.concurrency)
        profilers = start_profilers(daemons, args.py_spy, index, args.py_spy_gil) if args.py_spy else []
        last_count, last_progress, next_report = -1, started, started + 5.0
        while True:
            done = conn.execute("SELECT count(*) FROM lzq_jobs WHERE status = 'succeeded'").fetchone()[0]
            now = time.perf_counter()
            if done >= args.jobs:
                elapsed = now - started
                break
            if done != last_count:
                last_count, last_progress = done, now
            if now >= next_report:
                say(f"    ... {done}/{args.jobs} succeeded after {now - started:.1f} s")
                next_report = now + 5.0
            dead = daemons.dead()
            stalled = now - last_progress > args.stall_s
            if dead or stalled:
                statuses = conn.execute(
                    "SELECT status, count(*) FROM lzq_jobs GROUP BY 1 ORDER BY 1"
                ).fetchall()
                say(
                    f"!!! {'daemons exited: ' + str(dead) if dead else f'no progress for {args.stall_s} s'}; "
                    f"jobs by status: {statuses}"
                )
                for name in daemons.pids():
                    say(f"--- {name} log (last lines):\n{daemons.log_tail(name)}")
                raise BenchmarkFailed(f"drain did not finish (logs in {daemons.log_dir})")
            time.sleep(POLL_S)
        # Before the stop: an exiting backend takes its CPU counters with it.
        cpu = {name: process_cpu_s(pid) for name, pid in daemons.pids().items()}
        backends = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
        # The daemons' backends were born with them, so their whole CPU time is this drain's.
        cpu["postgres backends"] = sum(process_cpu_s(pid) for (pid,) in backends)
        server_cpu_after = cpu_by_command(["beam.smp"])
        stop_profilers(profilers)
        codes = daemons.stop()
        cpu["rabbitmq (whole broker)"] = server_cpu_after["beam.smp"] - server_cpu_before["beam.smp"]
        bad_exits = {name: code for name, code in codes.items() if code != 0}
        for name in codes:
            tail = daemons.log_tail(name, lines=5)
            if tail.strip():
                say(f"  note: {name} logged warnings/errors (log level warning), last lines:\n{tail}")
        if bad_exits:
            raise BenchmarkFailed(f"daemons did not stop cleanly: {bad_exits} (logs in {daemons.log_dir})")
    return elapsed, cpu


def verify(scratch: ScratchDatabase, expected: int) -> float:
    """Every job succeeded on its first attempt; returns the database-clock drain seconds."""
    with scratch.connect() as conn:
        rows = conn.execute(
            "SELECT status, attempts, count(*) FROM lzq_jobs GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        span = conn.execute(
            "SELECT extract(epoch FROM max(finished_at) - min(started_at)) FROM lzq_jobs"
        ).fetchone()[0]
    if rows != [("succeeded", 1, expected)]:
        say(f"!!! CORRECTNESS: expected [('succeeded', 1, {expected})] (status, attempts, count), got {rows}")
        raise BenchmarkFailed("not every job succeeded exactly once")
    return float(span)


def run_once(args: argparse.Namespace, index: int) -> RunResult:
    """One run on a fresh database: enqueue rates, then the drain, then verification."""
    prefix = new_amqp_prefix()
    with ScratchDatabase(args.dsn) as scratch:
        tracked = not args.no_function_stats and scratch.track_functions()
        say(f"  run {index}: database {scratch.name}, RabbitMQ prefix {prefix}")
        with Client(dsn=scratch.dsn) as client:
            client.push("noop", {})  # open the pool outside the timing
            push_rate = measure_push(client, args.push_jobs)
            # Same again while a superqueuer says it sleeps on LISTEN: each push then NOTIFYs.
            with scratch.connect() as conn:
                conn.execute("SELECT lzq_superqueuer_idle('bench-fake-idle', true)")
                notify_rate = measure_push(client, args.push_jobs // 2)
                conn.execute("DELETE FROM lzq_superqueuers")
                conn.execute("TRUNCATE lzq_jobs CASCADE")  # also lzq_dependencies
            push_many_rate = measure_push_many(client, args.jobs, args.batch)
        wall_s, cpu = drain(scratch, prefix, args, index)
        db_s = verify(scratch, args.jobs)
        functions = scratch.function_stats() if tracked else {}
    result = RunResult(push_rate, notify_rate, push_many_rate, wall_s, db_s, cpu, functions)
    say(
        f"  run {index}: drain {fmt_rate(args.jobs / db_s)} jobs/s first start -> last finish "
        f"({db_s:.2f} s), {fmt_rate(args.jobs / wall_s)} jobs/s from daemon start ({wall_s:.2f} s); "
        f"push_many {fmt_rate(push_many_rate)} jobs/s (batch {args.batch}); "
        f"push {fmt_rate(push_rate)} jobs/s; "
        f"push with an idle superqueuer (NOTIFY) {fmt_rate(notify_rate)} jobs/s"
    )
    say(
        "    CPU seconds during drain: " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in cpu.items())
    )
    if functions:
        # Public functions only (helpers run inside them), busiest first.
        names = sorted(
            (n for n in functions if n.startswith("lzq_") and n not in CLIENT_FUNCTIONS),
            key=lambda n: -functions[n][1],
        )
        say("    SQL calls: " + "; ".join(describe_calls(n, functions[n], args.jobs) for n in names))
    return result


#: Called by this script, not the daemons: left out of the per-drain SQL report.
CLIENT_FUNCTIONS = {"lzq_push", "lzq_push_many"}
#: Functions that move each job once: the jobs per call is their batch size.
BATCHED = {"lzq_assign", "lzq_finish"}


def describe_calls(name: str, stats: tuple[int, float, float] | None, jobs: int) -> str:
    if not stats or not stats[0]:
        return f"{name} 0 calls"
    calls, total_ms, _ = stats
    per_call = f", {jobs / calls:.1f} jobs/call" if name in BATCHED else ""
    return f"{name} {calls} calls ({total_ms / calls:.2f} ms avg, {total_ms / 1000:.1f} s total{per_call})"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=20000, help="no-op jobs to drain per run (default 20000)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--concurrency", type=int, default=8, help="slots per worker (default 8)")
    parser.add_argument("--runs", type=int, default=3, help="runs, each on a fresh database (default 3)")
    add_prefetch_margin_option(parser)
    parser.add_argument("--batch", type=int, default=1000, help="push_many batch size (default 1000)")
    parser.add_argument(
        "--push-jobs", type=int, default=2000, help="single pushes timed per run (default 2000)"
    )
    parser.add_argument(
        "--stall-s", type=float, default=60.0, help="give up after this long without progress"
    )
    parser.add_argument(
        "--py-spy",
        metavar="DIR",
        help="profile every daemon with py-spy (wall clock, --idle) into DIR: .svg + raw .txt",
    )
    parser.add_argument(
        "--py-spy-gil",
        action="store_true",
        help="with --py-spy: sample only the thread holding the GIL (a CPU profile) instead",
    )
    parser.add_argument(
        "--no-function-stats",
        action="store_true",
        help="don't set track_functions=all on the scratch database",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny and quick: 300 jobs, 200 pushes, 1 run")
    add_dsn_option(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.jobs, args.push_jobs, args.runs, args.stall_s = 300, 200, 1, 15.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print_environment(args.dsn)
    margin = describe_margin(args)
    say(
        f"throughput: {args.jobs} no-op jobs, 1 superqueuer + {args.workers} workers "
        f"x {args.concurrency} slots (prefetch margin {margin}), {args.runs} run(s)"
    )
    results: list[RunResult] = []
    try:
        for index in range(1, args.runs + 1):
            results.append(run_once(args, index))
    except BenchmarkFailed as exc:
        say(f"!!! FAILED: {exc}")
        return 1
    drains = [args.jobs / r.drain_db_s for r in results]
    walls = [args.jobs / r.drain_wall_s for r in results]
    say(
        f"throughput: drain median {fmt_rate(median(drains))} jobs/s "
        f"(runs: {', '.join(map(fmt_rate, drains))}; "
        f"from daemon start median {fmt_rate(median(walls))}); "
        f"push_many {fmt_rate(median([r.push_many_per_s for r in results]))} jobs/s; "
        f"push {fmt_rate(median([r.push_per_s for r in results]))} jobs/s "
        f"(with NOTIFY {fmt_rate(median([r.push_notify_per_s for r in results]))})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
