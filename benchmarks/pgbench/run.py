"""pgbench against lzq's SQL: lzq_push / lzq_push_many vs the same rows as plain INSERTs.

    python benchmarks/pgbench/run.py                 # -c 1,4,8 -j 2 -T 10, 3 runs each
    python benchmarks/pgbench/run.py --smoke         # -T 2, 1 run
    python benchmarks/pgbench/run.py --clients 1,16 --time 30 --runs 5 --scripts push,insert

Creates a scratch database (``lzq_bench_<pid>_pgbench``), migrates it, adds ``bench_plain_jobs``
(``LIKE lzq_jobs INCLUDING ALL``: same columns, indexes, checks), runs each script with
``pgbench -n -c C -j min(J, C) -T T`` starting from empty tables (TRUNCATE + CHECKPOINT before each
run), prints TPS medians and the ratios, and drops the database. Scripts take turns inside each
repetition, so drift in the machine's load hits them alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import re
import shutil
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from benchmarks._common import ScratchDatabase, add_dsn_option, fmt_rate, median, print_environment, say  # noqa: E402

HERE = Path(__file__).resolve().parent


@dataclasses.dataclass(frozen=True)
class Script:
    name: str
    file: str
    #: Jobs per transaction (jobs/s = tps x this).
    jobs_per_tx: int
    #: A superqueuer says it is idle, so every push NOTIFYs (commit-time global lock).
    idle_superqueuer: bool = False
    description: str = ""
    #: pgbench -D definitions.
    defines: tuple[str, ...] = ()
    #: Ready jobs to queue per second of -T before the run (and a worker to claim for): the
    #: lifecycle scripts consume a backlog. Their jobs/s is counted from succeeded rows.
    backlog_per_s: int = 0


SCRIPTS = {
    s.name: s
    for s in (
        Script("push", "push.sql", 1, description="SELECT lzq_push(...), nobody listening (no NOTIFY)"),
        Script(
            "push_notify",
            "push.sql",
            1,
            idle_superqueuer=True,
            description="SELECT lzq_push(...) while a superqueuer is idle: every push NOTIFYs",
        ),
        Script("insert", "insert.sql", 1, description="plain INSERT of the same row, no function"),
        Script("push_many", "push_many.sql", 100, description="SELECT lzq_push_many(100 jobs)"),
        Script(
            "insert_many", "insert_many.sql", 100, description="plain INSERT ... SELECT of the same 100 rows"
        ),
        Script(
            "lifecycle_1",
            "lifecycle.sql",
            1,
            defines=("batch=1",),
            backlog_per_s=3000,
            description="assign, finish of 1 job, 2 commits (SQL only; meaningful at -c 1)",
        ),
        Script(
            "lifecycle_100",
            "lifecycle.sql",
            100,
            defines=("batch=100",),
            backlog_per_s=60000,
            description="assign, finish of 100 jobs, 2 commits (SQL only; meaningful at -c 1)",
        ),
    )
}
RATIOS = (
    ("push", "insert"),
    ("push_notify", "push"),
    ("push_many", "insert_many"),
    ("push_many", "push"),
    ("lifecycle_100", "lifecycle_1"),
)
#: The worker the lifecycle scripts assign to and finish as (heartbeat refreshed per run).
BENCH_WORKER = "bench-worker"


def find_pgbench(explicit: str | None) -> str:
    """``--pgbench``, else ``$(pg_config --bindir)/pgbench``, else /usr/lib/postgresql/*/bin, else PATH."""
    if explicit:
        return explicit
    pg_config = shutil.which("pg_config")
    if pg_config:
        bindir = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True).stdout.strip()
        if bindir and Path(bindir, "pgbench").exists():
            return str(Path(bindir, "pgbench"))
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench")) or [shutil.which("pgbench") or ""]
    if not found[-1]:
        sys.exit("pgbench not found: pass --pgbench PATH")
    return found[-1]


@dataclasses.dataclass
class Sample:
    tps: float
    latency_ms: float
    failed: int
    jobs_per_s: float


def run_pgbench(
    pgbench: str, scratch: ScratchDatabase, script: Script, clients: int, threads: int, seconds: int
) -> Sample:
    cmd = [
        pgbench,
        "-n",
        "-c",
        str(clients),
        "-j",
        str(min(threads, clients)),
        "-T",
        str(seconds),
        *(arg for define in script.defines for arg in ("-D", define)),
        "-f",
        str(HERE / script.file),
        scratch.dsn,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    out = done.stdout + done.stderr
    tps = re.search(r"^tps = ([\d.]+)", out, re.M)
    if done.returncode != 0 or not tps:
        say(f"!!! pgbench failed ({done.returncode}): {' '.join(cmd)}\n{out}")
        sys.exit(1)
    latency = re.search(r"^latency average = ([\d.]+) ms", out, re.M)
    failed = re.search(r"^number of failed transactions: (\d+)", out, re.M)
    jobs_per_s = float(tps.group(1)) * script.jobs_per_tx
    if script.backlog_per_s:
        # Claims may return fewer than :batch jobs (credit, or another client holding the queue):
        # count what actually finished.
        with scratch.connect() as conn:
            succeeded, left = conn.execute(
                "SELECT count(*) FILTER (WHERE status = 'succeeded'),"
                " count(*) FILTER (WHERE status = 'ready') FROM lzq_jobs"
            ).fetchone()
        if not left:
            say(f"!!! {script.name} -c {clients}: the backlog ran out; raise backlog_per_s in run.py")
        jobs_per_s = succeeded / seconds
    return Sample(
        float(tps.group(1)),
        float(latency.group(1)) if latency else float("nan"),
        int(failed.group(1)) if failed else 0,
        jobs_per_s,
    )


def reset(scratch: ScratchDatabase, script: Script, clients: int, seconds: int, checkpoint: bool) -> None:
    """Empty tables, the idle flag or backlog the script wants, and (optionally) a fresh checkpoint."""
    with scratch.connect() as conn:
        conn.execute("TRUNCATE lzq_jobs, bench_plain_jobs, lzq_superqueuers, lzq_workers CASCADE")
        if script.idle_superqueuer:
            conn.execute("SELECT lzq_superqueuer_idle('bench-fake-idle', true)")
        if script.backlog_per_s:
            # Rows as lzq_push would write them, but inserted in bulk: the backlog is set-up, not
            # what is measured.
            conn.execute(
                "INSERT INTO lzq_jobs (job_name, params, fairness_key, status)"
                " SELECT 'noop', jsonb_build_object('n', i), 'noop', 'ready'"
                " FROM generate_series(1, %s) AS i",
                (script.backlog_per_s * seconds,),
            )
            conn.execute("VACUUM ANALYZE lzq_jobs")
            # Enough slots that credit never limits a claim of :batch per client.
            batch = int(dict(d.split("=", 1) for d in script.defines)["batch"])
            conn.execute(
                "SELECT lzq_heartbeat(%s, 'pgbench', 0, '{default}', %s)", (BENCH_WORKER, batch * clients)
            )
            conn.execute("SELECT lzq_worker_inbox(%s, 'pgbench-inbox')", (BENCH_WORKER,))
        if checkpoint:
            # Each run starts just after a checkpoint, so full-page writes weigh on all alike.
            conn.execute("CHECKPOINT")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", default="1,4,8", help="comma-separated -c values (default 1,4,8)")
    parser.add_argument("--threads", type=int, default=2, help="pgbench -j, capped at -c (default 2)")
    parser.add_argument("--time", type=int, default=10, help="pgbench -T seconds per run (default 10)")
    parser.add_argument("--runs", type=int, default=3, help="runs per script and client count (default 3)")
    parser.add_argument("--scripts", default=",".join(SCRIPTS), help=f"subset of {','.join(SCRIPTS)}")
    parser.add_argument("--no-checkpoint", action="store_true", help="skip CHECKPOINT before each run")
    parser.add_argument("--smoke", action="store_true", help="quick: -T 2, 1 run")
    parser.add_argument("--pgbench", help="path to pgbench (default: pg_config --bindir, then a glob)")
    add_dsn_option(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.time, args.runs = 2, 1
    args.clients = [int(c) for c in args.clients.split(",")]
    args.scripts = [SCRIPTS[s] for s in args.scripts.split(",")]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pgbench = find_pgbench(args.pgbench)
    print_environment(args.dsn)
    version = subprocess.run([pgbench, "--version"], capture_output=True, text=True).stdout.strip()
    say(
        f"pgbench: {pgbench} ({version}), -n -j {args.threads} -T {args.time}, clients {args.clients}, "
        f"{args.runs} run(s)"
    )
    for script in args.scripts:
        say(f"  {script.name:<12} {script.file:<16} {script.description}")
    results: dict[tuple[str, int], list[Sample]] = {}
    with ScratchDatabase(args.dsn, suffix="_pgbench") as scratch:
        with scratch.connect() as conn:
            conn.execute("CREATE TABLE bench_plain_jobs (LIKE lzq_jobs INCLUDING ALL)")
        for clients in args.clients:
            for rep in range(args.runs):
                # Rotate the order each repetition: no script always runs first after the checkpoint.
                order = args.scripts[rep % len(args.scripts) :] + args.scripts[: rep % len(args.scripts)]
                for script in order:
                    reset(scratch, script, clients, args.time, not args.no_checkpoint)
                    sample = run_pgbench(pgbench, scratch, script, clients, args.threads, args.time)
                    if sample.failed:
                        say(f"!!! {script.name} -c {clients}: {sample.failed} failed transactions")
                    results.setdefault((script.name, clients), []).append(sample)
            say(f"-c {clients}:")
            for script in args.scripts:
                samples = results[(script.name, clients)]
                tps = median([s.tps for s in samples])
                say(
                    f"  {script.name:<12} tps median {fmt_rate(tps):>6} "
                    f"(runs: {', '.join(fmt_rate(s.tps) for s in samples)}), "
                    f"latency median {median([s.latency_ms for s in samples]):.2f} ms, "
                    f"{fmt_rate(median([s.jobs_per_s for s in samples]))} jobs/s"
                )

    def jobs_per_s(name: str, clients: int) -> float:
        return median([s.jobs_per_s for s in results[(name, clients)]])

    names = {s.name for s in args.scripts}
    summary = []
    for a, b in RATIOS:
        if a in names and b in names:
            ratios = [jobs_per_s(a, c) / jobs_per_s(b, c) for c in args.clients]
            say(
                f"ratio {a} / {b} (jobs/s): "
                + ", ".join(f"-c {c}: {r:.2f}" for c, r in zip(args.clients, ratios, strict=True))
            )
            summary.append(f"{a}/{b} " + "/".join(f"{r:.2f}" for r in ratios))
    cells = "; ".join(
        f"{s.name} " + "/".join(fmt_rate(jobs_per_s(s.name, c)) for c in args.clients) for s in args.scripts
    )
    say(f"pgbench: jobs/s at -c {'/'.join(map(str, args.clients))}: {cells}; ratios {'; '.join(summary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
