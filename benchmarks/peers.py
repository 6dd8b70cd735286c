"""lzq against its peers (Procrastinate, PgQueuer, Celery, Dramatiq): the same scenarios, one table.
Celery and Dramatiq run twice: as they come (publishes without confirms) and with publisher confirms
on (``celery-confirm``, ``dramatiq-confirm``), the durability lzq's enqueue always has.

    python benchmarks/peers.py                         # all systems, 20000-job drain, 3 runs (~15 min)
    python benchmarks/peers.py --smoke                 # tiny, 1 run (well under a minute)
    python benchmarks/peers.py --peers lzq,pgqueuer --runs 5

Needs the optional extra: ``pip install -e '.[peers]'``. Per run, each system runs in its own
process (``python -m benchmarks.peers.<system>_peer``, a small adapter per system saying how it maps
the scenarios) with its own scratch database / queue names, and a timeout; afterwards this script
drops the database and deletes the queues whatever happened, and kills the adapter's process group.
Systems take turns within each run, so drift on a shared machine hits all of them alike.

Scenarios (issue 7), no-op jobs, handlers that only note their start time:

1. single enqueue: ``--push-jobs`` one-at-a-time enqueues from one producer, jobs/s;
2. batch enqueue: the rest of the backlog in batches of ``--batch`` with the system's bulk API;
3. drain: the ``--jobs`` backlog through ``--workers`` processes × ``--concurrency``, jobs/s from
   the first handler start to the last (every worker process's clock is this machine's);
4. push→start latency: ``--rate`` jobs/s for ``--latency-s`` against the warm, idle workers; each
   job carries ``time.time()`` taken just before its enqueue call, the handler subtracts it from
   ``time.time()`` at its start; p50 and p99.

The final table shows the median of the runs per system and, for each peer, lzq/peer: above 1 means
lzq is faster for rates; for latencies below 1 means lzq is quicker.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (  # noqa: E402
    AMQP_URL,
    REPO_ROOT,
    add_dsn_option,
    fmt_rate,
    maintenance_conninfo,
    median,
    print_environment,
    say,
)

#: system -> (module a worker needs, distributions whose versions we print).
SYSTEMS = {
    "lzq": ("lzq", ("lzq", "psycopg", "pika")),
    "procrastinate": ("procrastinate", ("procrastinate", "psycopg")),
    "pgqueuer": ("pgqueuer", ("pgqueuer", "asyncpg")),
    "celery": ("celery", ("celery", "kombu", "amqp")),
    "dramatiq": ("dramatiq", ("dramatiq", "pika")),
    "celery-confirm": ("celery", ("celery", "kombu", "amqp")),
    "dramatiq-confirm": ("dramatiq", ("dramatiq", "pika")),
}
#: Variants: a system's adapter run with publisher confirms on (``PEER_CONFIRMS=1``). Celery and
#: Dramatiq publish without them by default, so their enqueue returns before RabbitMQ has the job;
#: lzq's returns after a commit. The variants show what a durable enqueue costs them.
CONFIRM_VARIANTS = {"celery-confirm": "celery", "dramatiq-confirm": "dramatiq"}
#: Tries per system and run: a shared server may restart under us (other sessions' chaos tests);
#: a failure other than a timeout is retried once on a fresh database.
ATTEMPTS = 2
RETRY_DELAY_S = 15.0
#: (result key, row label, higher is better)
METRICS = (
    ("drain_per_s", "drain jobs/s", True),
    ("push_many_per_s", "batch enqueue jobs/s", True),
    ("push_per_s", "single enqueue jobs/s", True),
    ("latency_p50_ms", "push->start p50 ms", False),
    ("latency_p99_ms", "push->start p99 ms", False),
)


def versions(system: str) -> str:
    out = []
    for dist in SYSTEMS[system][1]:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out.append(f"{dist} {importlib.metadata.version(dist)}")
    return ", ".join(out)


def cleanup(name: str, conninfo: str) -> None:
    """Whatever the adapter left behind (it cleans up itself unless killed): database and queues."""
    import psycopg
    from psycopg import sql

    from benchmarks.peers._base import delete_amqp

    with contextlib.suppress(Exception), psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    with contextlib.suppress(Exception):
        delete_amqp(
            AMQP_URL,
            queues=[name, f"{name}.DQ", f"{name}.XQ", f"lzqpeer-{name}.default"],
            exchanges=[name],
        )


def run_system(system: str, index: int, args: argparse.Namespace) -> tuple[dict | None, str]:
    """One adapter process for one run: (result, "") or (None, reason)."""
    name = f"lzqpeer_{system.replace('-', '_')}_{os.getpid()}_{index}"
    conninfo = maintenance_conninfo(args.dsn)
    adapter = CONFIRM_VARIANTS.get(system, system)
    argv = [
        sys.executable, "-m", f"benchmarks.peers.{adapter}_peer",
        "--name", name, "--dsn", conninfo, "--amqp-url", AMQP_URL,
        "--jobs", str(args.jobs), "--push-jobs", str(args.push_jobs), "--batch", str(args.batch),
        "--workers", str(args.workers), "--concurrency", str(args.concurrency),
        "--rate", str(args.rate), "--latency-s", str(args.latency_s), "--stall-s", str(args.stall_s),
    ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        "PEER_CONFIRMS": "1" if system in CONFIRM_VARIANTS else "0",
    }
    with tempfile.TemporaryFile() as out:
        # Own session: on timeout we kill the adapter and every worker it started, by group.
        proc = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        reason = ""
        try:
            proc.wait(timeout=args.timeout_s)
        except subprocess.TimeoutExpired:
            reason = f"timed out after {args.timeout_s:.0f} s"
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # stragglers (normally none)
        proc.wait()
        cleanup(name, conninfo)
        out.seek(0)
        lines = out.read().decode(errors="replace").splitlines()
    for line in lines:
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :]), ""
    errors = [line[len("ERROR ") :] for line in lines if line.startswith("ERROR ")]
    tail = " | ".join(line.strip() for line in lines[-3:] if line.strip())
    return None, reason or (errors[-1] if errors else f"exit {proc.returncode}: {tail}")[:400]


def describe(system: str, result: dict) -> str:
    text = (
        f"drain {fmt_rate(result['drain_per_s'])} jobs/s "
        f"(from spawn {fmt_rate(result['drain_from_spawn_per_s'])}); "
        f"batch {fmt_rate(result.get('push_many_per_s', float('nan')))}; "
        f"single {fmt_rate(result['push_per_s'])}; "
        f"latency p50 {result['latency_p50_ms']:.2f} ms, p99 {result['latency_p99_ms']:.2f} ms "
        f"({result['latency_samples']} jobs at {result['latency_rate_achieved']:.0f}/s)"
    )
    return text + (f" [{result['notes']}]" if result.get("notes") else "")


def fmt_value(key: str, value: float) -> str:
    return f"{value:.2f}" if key.endswith("_ms") else fmt_rate(value)


def print_table(systems: list[str], results: dict[str, list[dict]], failures: dict[str, str]) -> None:
    medians = {
        system: {key: median([r[key] for r in results[system] if key in r]) for key, _, _ in METRICS}
        for system in systems
        if results[system]
    }
    lzq = medians.get("lzq")
    headers = ["scenario", *(s if s == "lzq" else f"{s} (lzq/{s})" for s in systems)]
    rows = []
    for key, label, _ in METRICS:
        row = [label]
        for system in systems:
            if system not in medians:
                row.append("n/a")
                continue
            cell = fmt_value(key, medians[system][key])
            if system != "lzq" and lzq:
                cell += f" ({lzq[key] / medians[system][key]:.2f}x)"
            row.append(cell)
        rows.append(row)
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    say("")
    say("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for row in rows:
        say("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    say("ratios are lzq/peer of the medians: rates above 1 and latencies below 1 favor lzq.")
    for system, reason in failures.items():
        state = f"{len(results[system])} of the runs succeeded" if results[system] else "n/a"
        say(f"{system}: {state}; last failure: {reason}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--peers", default=",".join(SYSTEMS), help=f"comma-separated systems (default {','.join(SYSTEMS)})"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs; the table shows medians (default 3)")
    parser.add_argument("--jobs", type=int, default=20000, help="backlog to drain per run (default 20000)")
    parser.add_argument(
        "--push-jobs", type=int, default=2000, help="single enqueues, part of the backlog (default 2000)"
    )
    parser.add_argument("--batch", type=int, default=1000, help="bulk enqueue batch size (default 1000)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--concurrency", type=int, default=8, help="slots/threads per worker (default 8)")
    parser.add_argument("--rate", type=float, default=200.0, help="latency scenario jobs/s (default 200)")
    parser.add_argument("--latency-s", type=float, default=10.0, help="latency scenario length (default 10)")
    parser.add_argument(
        "--stall-s", type=float, default=60.0, help="give up after this long without progress"
    )
    parser.add_argument("--timeout-s", type=float, default=600.0, help="per system and run (default 600)")
    parser.add_argument("--smoke", action="store_true", help="500 jobs, 100 pushes, 2 s latency, 1 run")
    add_dsn_option(parser)
    args = parser.parse_args(argv)
    args.systems = [s.strip() for s in args.peers.split(",") if s.strip()]
    unknown = set(args.systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems {sorted(unknown)}; choose from {','.join(SYSTEMS)}")
    if args.smoke:
        args.jobs, args.push_jobs, args.latency_s, args.runs = 500, 100, 2.0, 1
        args.stall_s, args.timeout_s = 15.0, 60.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print_environment(args.dsn)
    say(
        f"peers: {args.jobs}-job drain with {args.workers} workers x {args.concurrency}, "
        f"{args.push_jobs} single enqueues, batches of {args.batch}, latency at {args.rate:.0f} jobs/s "
        f"for {args.latency_s:.0f} s; {args.runs} run(s); systems {', '.join(args.systems)}"
    )
    results: dict[str, list[dict]] = {s: [] for s in args.systems}
    failures: dict[str, str] = {}
    for system in args.systems:
        if importlib.util.find_spec(SYSTEMS[system][0]) is None:
            failures[system] = "not installed (pip install -e '.[peers]')"
        else:
            say(f"  {system}: {versions(system)}")
    dropped: set[str] = set(failures)  # not installed, or timed out: don't keep paying for it
    for index in range(1, args.runs + 1):
        for system in args.systems:
            for attempt in range(1, ATTEMPTS + 1):
                if system in dropped:
                    break
                started = time.perf_counter()
                result, reason = run_system(system, index, args)
                took = time.perf_counter() - started
                if result is not None:
                    results[system].append(result)
                    say(f"  run {index} {system}: {describe(system, result)} ({took:.0f} s)")
                    break
                failures[system] = f"run {index} attempt {attempt}: {reason}"
                say(f"  run {index} {system}: FAILED (attempt {attempt}) after {took:.0f} s: {reason}")
                if reason.startswith("timed out"):
                    dropped.add(system)
                elif attempt < ATTEMPTS:
                    time.sleep(RETRY_DELAY_S)
    print_table(args.systems, results, failures)
    return 0 if "lzq" not in args.systems or results["lzq"] else 1


if __name__ == "__main__":
    sys.exit(main())
