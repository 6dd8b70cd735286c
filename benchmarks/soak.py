"""Soak: a million no-op jobs at a steady rate; throughput, table size and daemon memory over time.

    python benchmarks/soak.py                       # 1,000,000 jobs at 1,000/s (~17 min), sample every 10 s
    python benchmarks/soak.py --smoke               # 3,000 jobs at 500/s, 2 s samples: proves it still works
    python benchmarks/soak.py --jobs 200000 --rate 500 --retention '1 minute' --workers 2 --concurrency 16

Issue 7's claims: "a soak run of 1,000,000 jobs shows steady throughput and table size" and
"worker and superqueuer memory flat over the 1M soak". On a fresh scratch database and RabbitMQ
prefix, 1 superqueuer and ``--workers`` workers x ``--concurrency`` slots (``--app benchmarks.noop``)
run with ``LZQ_RETENTION=--retention`` (30 seconds), so the superqueuer's pruner keeps deleting the
finished jobs and ``lzq_jobs`` should stay small. A producer thread pushes ``--jobs`` jobs with
``Client.push_many`` in batches of ``--batch`` on an open-loop schedule: batch k is due at
t0 + k x batch / rate whatever earlier batches took, and a late batch goes out at once (catching up).

Every ``--sample-s`` one line, all counts from one snapshot:

- ``pushed``: jobs the producer has committed (it increments its counter under a lock after each
  commit; the sampler takes its REPEATABLE READ snapshot under the same lock, so the snapshot holds
  exactly those jobs);
- ``done``, ``done/s``: jobs finished, as ``pushed`` minus the jobs not finished yet (ready,
  scheduled, dispatched, running: each counted through its partial index, so the cost follows the
  backlog, not the table; no-op jobs without dependencies, checks or limits never wait). Pruned jobs
  count as done: pruning deletes final jobs only. done/s is over the window since the last line;
- ``ready``: the ready backlog; ``rows~``, ``dead~``, ``pruned~``: ``n_live_tup``, ``n_dead_tup``
  and ``n_tup_del`` of ``pg_stat_user_tables`` (estimates; a backend reports its counts up to 10 s
  late); ``MB``: ``pg_total_relation_size('lzq_jobs')`` (heap, indexes, TOAST);
- RSS (``VmRSS``) of the superqueuer and each worker.

When autovacuum cannot vacuum lzq_jobs (``lzq.maintenance.autovacuum_on``: ``autovacuum = off`` on
the server, as here, while a production server has it on), the script runs
``VACUUM (ANALYZE) lzq_jobs`` every ``--vacuum-s`` (30) as a stand-in and prints each one;
``--no-vacuum`` leaves the table unvacuumed.

At the end (every job done), a summary and one verdict per claim, with these thresholds:

- throughput steady: done/s over the last tenth of the pushing phase >= 0.9 x the first tenth (a
  tenth = a tenth of the sample windows that ended while the producer was pushing, at least one).
  The summary also shows the slowest window, which the tenths can miss (a dip before a VACUUM);
- table size bounded: the largest ``MB`` in the second half of the run (by time) <= 1.25 x the
  largest in the first half. Not a single point against a point: once caught up, the pruner waits a
  while (``PRUNE_INTERVAL_S``, 10 s), so the table swings between one retention of finished jobs and
  one retention plus 10 s worth, and its file keeps its high-water mark. A table that stops
  growing sets that mark in the first half; one the pruner cannot keep up with grows ~2x from the
  first half's maximum to the second's;
- memory flat: every daemon's RSS at the last sample <= its RSS at the first sample after the start
  (one ``--sample-s`` in, past start-up) + 10 MB.

A missed threshold is a finding, not a failure. Runs shorter than a minute see little or no
pruning (nothing is older than the retention yet), so their verdicts mean little.

Correctness: every pushed job finished; every row left in ``lzq_jobs`` is ``succeeded`` with
``attempts = 1``; the rest (pushed minus left) were pruned, so they were final; and no daemon logged
``job_failed``, ``job_retry`` or ``job_recovered`` (every attempt that does not succeed, and every
job the sweep takes back, logs one of these at warning level), so the pruned jobs too succeeded on
their first attempt. Anything else, a daemon that dies or does not stop cleanly (exit 0), or
``--stall-s`` without a finished job prints ``!!!`` and exits 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import threading
import time
from pathlib import Path

import psycopg

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (  # noqa: E402
    Daemons,
    ScratchDatabase,
    add_dsn_option,
    fmt_rate,
    new_amqp_prefix,
    print_environment,
    process_cpu_s,
    process_rss_mb,
    say,
)
from lzq import maintenance  # noqa: E402
from lzq.client import Client  # noqa: E402

#: Verdict thresholds (see the module docstring).
STEADY_MIN_RATIO = 0.9
TABLE_MAX_RATIO = 1.25
RSS_MAX_GROWTH_MB = 10.0
#: A push_many batch begun later than this after its scheduled time counts as late.
LATE_S = 0.1
#: How often the main loop looks at the producer and the daemons; how often it checks for the
#: last job once the producer is done.
TICK_S = 0.05
DRAIN_POLL_S = 0.25
#: Each one is logged at warning level by a worker (an attempt that did not succeed) or by the
#: superqueuer's sweep (a job taken back from a lost dispatch or a dead worker).
BAD_EVENTS = ("job_failed", "job_retry", "job_recovered")

_SAMPLE_SQL = """
SELECT (SELECT count(*) FROM lzq_jobs WHERE status = 'ready'),
       (SELECT count(*) FROM lzq_jobs WHERE status IN ('dispatched', 'running')),
       (SELECT count(*) FROM lzq_jobs WHERE status = 'scheduled'),
       s.n_live_tup, s.n_dead_tup, s.n_tup_del,
       pg_total_relation_size(s.relid)
  FROM pg_stat_user_tables AS s
 WHERE s.relid = 'lzq_jobs'::regclass
"""


class BenchmarkFailed(Exception):
    """A run produced wrong results or could not finish (not just slow ones)."""


@dataclasses.dataclass
class Sample:
    elapsed_s: float
    pushed: int
    ready: int
    in_flight: int
    scheduled: int
    rows_est: int
    dead_est: int
    pruned_est: int
    table_mb: float
    rss_mb: dict[str, float]

    @property
    def unfinished(self) -> int:
        return self.ready + self.in_flight + self.scheduled

    @property
    def done(self) -> int:
        return self.pushed - self.unfinished


class Producer(threading.Thread):
    """Pushes ``jobs`` no-op jobs with push_many, batch k due at t0 + k x batch / rate (open loop)."""

    def __init__(self, client: Client, jobs: int, rate: float, batch: int, t0: float) -> None:
        super().__init__(name="soak-producer", daemon=True)
        self.client, self.jobs, self.rate, self.batch, self.t0 = client, jobs, rate, batch, t0
        #: Held across each push_many and the count that follows, so a sampler holding it sees
        #: ``pushed`` equal to the jobs committed.
        self.lock = threading.Lock()
        self.pushed = 0
        self.batches = 0
        self.late = 0
        self.max_lag_s = 0.0
        self.finished_at: float | None = None  # perf_counter
        self.error: BaseException | None = None
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        try:
            for first in range(0, self.jobs, self.batch):
                due = self.t0 + first / self.rate
                delay = due - time.perf_counter()
                if (delay > 0 and self._halt.wait(delay)) or self._halt.is_set():
                    return
                lag = time.perf_counter() - due
                self.late += lag > LATE_S
                self.max_lag_s = max(self.max_lag_s, lag)
                jobs = [("noop", {"n": i}) for i in range(first, min(self.jobs, first + self.batch))]
                with self.lock:
                    self.pushed += len(self.client.push_many(jobs))
                self.batches += 1
            self.finished_at = time.perf_counter()
        except BaseException as exc:  # noqa: BLE001 - reported by the main loop
            self.error = exc


class Sampler:
    """Takes one consistent sample: the producer's count and the table's, from one snapshot."""

    def __init__(self, dsn: str, producer: Producer, daemons: Daemons, t0: float) -> None:
        self.conn = psycopg.connect(dsn, application_name="lzq-bench-soak")
        self.conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        self.producer, self.daemons, self.t0 = producer, daemons, t0

    def take(self) -> Sample:
        with self.producer.lock:
            elapsed = time.perf_counter() - self.t0
            pushed = self.producer.pushed
            self.conn.execute("SELECT 1")  # the first statement takes the transaction's snapshot
        ready, in_flight, scheduled, live, dead, deleted, size = self.conn.execute(_SAMPLE_SQL).fetchone()
        self.conn.commit()
        rss = {name: process_rss_mb(pid) for name, pid in self.daemons.pids().items()}
        return Sample(elapsed, pushed, ready, in_flight, scheduled, live, dead, deleted, size / 2**20, rss)

    def close(self) -> None:
        self.conn.close()


def header(names: list[str]) -> str:
    return (
        f"{'t s':>7} {'pushed':>8} {'done':>8} {'done/s':>7} {'ready':>7} {'rows~':>8} {'MB':>7} "
        f"{'dead~':>8} {'pruned~':>8}  RSS MB {'/'.join(short(n) for n in names)}"
    )


def line(sample: Sample, previous: Sample | None) -> str:
    if previous is None or sample.elapsed_s <= previous.elapsed_s:
        rate = "-"
    else:
        rate = fmt_rate((sample.done - previous.done) / (sample.elapsed_s - previous.elapsed_s))
    return (
        f"{sample.elapsed_s:7.1f} {sample.pushed:8d} {sample.done:8d} {rate:>7} {sample.ready:7d} "
        f"{sample.rows_est:8d} {sample.table_mb:7.1f} {sample.dead_est:8d} {sample.pruned_est:8d}  "
        f"RSS MB {'/'.join(f'{mb:.1f}' for mb in sample.rss_mb.values())}"
    )


def short(name: str) -> str:
    """superqueuer -> sq, worker2 -> w2: column labels."""
    return "sq" if name == "superqueuer" else name.replace("worker", "w")


def soak(args: argparse.Namespace) -> int:
    """The whole run; returns the exit code."""
    prefix = new_amqp_prefix()
    with (
        ScratchDatabase(args.dsn) as scratch,
        scratch.connect() as admin,
        Daemons(scratch.dsn, prefix, settings={"retention": args.retention}) as daemons,
        Client(dsn=scratch.dsn) as client,
    ):
        say(f"database {scratch.name}, RabbitMQ prefix {prefix}")
        vacuum_s = math.inf
        if maintenance.autovacuum_on(admin):
            say("autovacuum is on: no stand-in VACUUM")
        elif args.no_vacuum:
            say("autovacuum is OFF for lzq_jobs and --no-vacuum: lzq_jobs is never vacuumed")
        else:
            vacuum_s = args.vacuum_s
            say(
                f"autovacuum is OFF for lzq_jobs (a production server has it on): this script "
                f"runs VACUUM (ANALYZE) lzq_jobs every {args.vacuum_s:g} s as a stand-in"
            )
        daemons.start_superqueuer()
        for _ in range(args.workers):
            daemons.start_worker(args.concurrency)
        wait_for_daemons(admin, daemons, args)
        t0 = time.perf_counter()
        producer = Producer(client, args.jobs, args.rate, args.batch, t0)
        sampler = Sampler(scratch.dsn, producer, daemons, t0)
        try:
            samples, vacuums = run_loop(args, producer, sampler, admin, daemons, vacuum_s)
        finally:
            producer.stop()
            producer.join(timeout=30)
            sampler.close()
        cpu = {name: process_cpu_s(pid) for name, pid in daemons.pids().items()}
        codes = daemons.stop()
        events = bad_events(daemons)
        for name in codes:
            tail = daemons.log_tail(name, lines=5)
            if tail.strip():
                say(f"  note: {name} logged warnings/errors (log level warning), last lines:\n{tail}")
        bad_exits = {name: code for name, code in codes.items() if code != 0}
        if bad_exits:
            raise BenchmarkFailed(f"daemons did not stop cleanly: {bad_exits} (logs in {daemons.log_dir})")
        verify(admin, producer, args.jobs, events)
    summarize(args, producer, samples, vacuums, cpu)
    return 0


def wait_for_daemons(conn: psycopg.Connection, daemons: Daemons, args: argparse.Namespace) -> None:
    """Until the superqueuer and every worker have registered, so start-up is not in the first window."""
    deadline = time.monotonic() + args.stall_s
    while True:
        workers = conn.execute("SELECT count(*) FROM lzq_workers").fetchone()[0]
        superqueuers = conn.execute("SELECT count(*) FROM lzq_superqueuers").fetchone()[0]
        if workers >= args.workers and superqueuers >= 1:
            return
        if daemons.dead() or time.monotonic() > deadline:
            fail_with_logs(daemons, f"start-up: daemons exited {daemons.dead()} or not registered in time")
        time.sleep(TICK_S)


def run_loop(
    args: argparse.Namespace,
    producer: Producer,
    sampler: Sampler,
    admin: psycopg.Connection,
    daemons: Daemons,
    vacuum_s: float,
) -> tuple[list[Sample], list[float]]:
    """Push, sample and vacuum until every job is done; returns the samples and each VACUUM's seconds."""
    samples = [sampler.take()]
    say(header(list(samples[0].rss_mb)))
    say(line(samples[0], None))
    producer.start()
    vacuums: list[float] = []
    next_sample, next_vacuum, next_poll = args.sample_s, vacuum_s, 0.0
    last_done, last_progress = 0, 0.0
    while True:
        time.sleep(TICK_S)
        if producer.error is not None:
            raise BenchmarkFailed(f"producer: {type(producer.error).__name__}: {producer.error}")
        if daemons.dead():
            fail_with_logs(daemons, f"daemons exited: {daemons.dead()}")
        now = time.perf_counter() - sampler.t0
        pushing = producer.finished_at is None
        if now >= next_sample or (not pushing and now >= next_poll):
            sample = sampler.take()
            next_poll = now + DRAIN_POLL_S
            if sample.done != last_done:
                last_done, last_progress = sample.done, now
            elif sample.unfinished and now - last_progress > args.stall_s:
                fail_with_logs(daemons, f"no job finished for {args.stall_s:g} s; last sample: {sample}")
            if now >= next_sample or (not pushing and sample.done >= args.jobs):
                say(line(sample, samples[-1]))
                samples.append(sample)
                while next_sample <= now:
                    next_sample += args.sample_s
            if not pushing and sample.done >= args.jobs:
                return samples, vacuums
        if now >= next_vacuum:
            vacuum_started = time.perf_counter()
            admin.execute("VACUUM (ANALYZE) lzq_jobs")
            vacuums.append(time.perf_counter() - vacuum_started)
            say(f"  vacuum: VACUUM (ANALYZE) lzq_jobs at {now:.1f} s took {vacuums[-1]:.2f} s (stand-in)")
            while next_vacuum <= now:
                next_vacuum += vacuum_s


def fail_with_logs(daemons: Daemons, why: str) -> None:
    say(f"!!! {why}")
    for name in daemons.pids():
        say(f"--- {name} log (last lines):\n{daemons.log_tail(name)}")
    raise BenchmarkFailed(f"{why} (logs in {daemons.log_dir})")


def bad_events(daemons: Daemons) -> dict[str, int]:
    """How often each of BAD_EVENTS appears in the daemons' logs (at level warning, nothing else should)."""
    counts = dict.fromkeys(BAD_EVENTS, 0)
    for name in daemons.pids():
        path = daemons.log_dir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        for event in BAD_EVENTS:
            counts[event] += text.count(f'"{event}"')
    return counts


def verify(conn: psycopg.Connection, producer: Producer, expected: int, events: dict[str, int]) -> None:
    """Every pushed job succeeded on its first attempt: left in the table, or pruned (see docstring)."""
    rows = conn.execute(
        "SELECT status, attempts, count(*) FROM lzq_jobs GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall()
    left = sum(count for *_, count in rows)
    wrong = [row for row in rows if row[:2] != ("succeeded", 1)]
    problems = []
    if producer.pushed != expected:
        problems.append(f"pushed {producer.pushed} of {expected}")
    if wrong:
        problems.append(f"rows left that did not succeed on attempt 1 (status, attempts, count): {wrong}")
    if left > producer.pushed:
        problems.append(f"{left} rows left, more than the {producer.pushed} pushed")
    if any(events.values()):
        problems.append(f"failed or repeated attempts in the daemons' logs: {events}")
    if problems:
        say("!!! CORRECTNESS: " + "; ".join(problems))
        raise BenchmarkFailed("not every job succeeded exactly once")
    say(
        f"verified: all {expected} jobs succeeded on their first attempt ({left} still in lzq_jobs, "
        f"{producer.pushed - left} pruned; none of {', '.join(BAD_EVENTS)} in the daemons' logs)"
    )


def window_rate(samples: list[Sample], first: int, last: int) -> float:
    """done/s from samples[first] to samples[last]."""
    span = samples[last].elapsed_s - samples[first].elapsed_s
    return (samples[last].done - samples[first].done) / span if span > 0 else float("nan")


def summarize(
    args: argparse.Namespace, producer: Producer, samples: list[Sample], vacuums: list[float], cpu: dict
) -> None:
    """The summary lines and one verdict per claim (thresholds in the module docstring)."""
    wall_s = samples[-1].elapsed_s
    push_s = (producer.finished_at or math.nan) - producer.t0
    last_due_s = (args.jobs - 1) // args.batch * args.batch / args.rate
    say("")
    say(
        f"summary: {args.jobs} jobs in {wall_s:.1f} s ({fmt_rate(args.jobs / wall_s)} jobs/s overall); "
        f"the last push_many returned at {push_s:.1f} s (due at {last_due_s:.1f} s); {producer.late} of "
        f"{producer.batches} batches began over {LATE_S * 1000:g} ms late "
        f"(worst {producer.max_lag_s * 1000:.0f} ms)"
    )
    # Sample windows that ended while the producer was pushing: after it stops the rate falls
    # with the work left, which says nothing about steadiness.
    pushing_end = max(1, sum(1 for s in samples[1:] if s.elapsed_s <= push_s + 1e-6))
    tenth = max(1, pushing_end // 10)
    first_rate = window_rate(samples, 0, tenth)
    last_rate = window_rate(samples, pushing_end - tenth, pushing_end)
    ratio = last_rate / first_rate if first_rate > 0 else float("nan")
    # The tenths can miss a dip in between (e.g. before a VACUUM): show the slowest window too.
    slowest = min(range(1, pushing_end + 1), key=lambda i: window_rate(samples, i - 1, i))
    backlog = max(samples, key=lambda s: s.ready)
    say(
        f"  throughput: first tenth {fmt_rate(first_rate)} jobs/s (0-{samples[tenth].elapsed_s:.0f} s), "
        f"last tenth {fmt_rate(last_rate)} jobs/s ({samples[pushing_end - tenth].elapsed_s:.0f}-"
        f"{samples[pushing_end].elapsed_s:.0f} s), slowest window "
        f"{fmt_rate(window_rate(samples, slowest - 1, slowest))} jobs/s "
        f"({samples[slowest - 1].elapsed_s:.0f}-{samples[slowest].elapsed_s:.0f} s); "
        f"ready backlog max {backlog.ready} (at {backlog.elapsed_s:.0f} s)"
    )
    # Halves by time: the first holds the climb to the pruner's rhythm, the second must not go higher.
    first_half = [s.table_mb for s in samples if s.elapsed_s <= wall_s / 2]
    second_half = [s.table_mb for s in samples if s.elapsed_s > wall_s / 2]
    table_first, table_second = max(first_half), max(second_half)
    table_ratio = table_second / table_first
    largest = max(samples, key=lambda s: s.table_mb)
    say(
        f"  lzq_jobs: max {table_first:.1f} MB in the first half, {table_second:.1f} MB in the second, "
        f"{samples[-1].table_mb:.1f} MB at the end (rows~ {samples[-1].rows_est}); largest at "
        f"{largest.elapsed_s:.0f} s with rows~ {largest.rows_est}; pruned~ {samples[-1].pruned_est} in all"
        + (f"; stand-in VACUUMs: {len(vacuums)}, {sum(vacuums):.1f} s in all" if vacuums else "")
    )
    first = samples[1] if len(samples) > 2 else samples[0]  # one --sample-s in: past start-up
    growth = {}
    parts = []
    for name, last_mb in samples[-1].rss_mb.items():
        growth[name] = last_mb - first.rss_mb[name]
        peak = max(s.rss_mb[name] for s in samples)
        parts.append(
            f"{name} {first.rss_mb[name]:.1f} -> {last_mb:.1f} (max {peak:.1f}, {growth[name]:+.1f})"
        )
    say(f"  RSS MB from {first.elapsed_s:.0f} s to the end: " + "; ".join(parts))
    say("  CPU s: " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in cpu.items()))
    if wall_s < 60:
        say(
            "  (under a minute: little or nothing was older than the retention yet, so this run "
            "saw little or no pruning and the verdicts below mean little)"
        )
    worst = max(growth, key=lambda name: growth[name])
    verdicts = [
        f"throughput steady: {yes(ratio >= STEADY_MIN_RATIO)} (last/first tenth = {ratio:.2f}: "
        f"{fmt_rate(last_rate)} vs {fmt_rate(first_rate)} jobs/s; threshold >= {STEADY_MIN_RATIO:g})",
        f"table size bounded: {yes(table_ratio <= TABLE_MAX_RATIO)} (second/first half max = "
        f"{table_ratio:.2f}: {table_second:.1f} vs {table_first:.1f} MB; threshold <= {TABLE_MAX_RATIO:g})",
        f"memory flat: {yes(growth[worst] <= RSS_MAX_GROWTH_MB)} ({growth[worst]:+.1f} MB at most, {worst}; "
        f"threshold <= +{RSS_MAX_GROWTH_MB:g} MB per daemon)",
    ]
    for verdict in verdicts:
        say(verdict)
    say(
        f"soak: {args.jobs} jobs at {args.rate:g}/s, {fmt_rate(args.jobs / wall_s)} jobs/s overall; "
        + "; ".join(v.split(" (")[0] for v in verdicts)
    )


def yes(condition: bool) -> str:
    return "yes" if condition else "NO"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1_000_000, help="no-op jobs to push (default 1000000)")
    parser.add_argument("--rate", type=float, default=1000.0, help="push rate in jobs/s (default 1000)")
    parser.add_argument("--batch", type=int, default=100, help="jobs per push_many call (default 100)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--concurrency", type=int, default=8, help="slots per worker (default 8)")
    parser.add_argument(
        "--retention", default="30 seconds", help="LZQ_RETENTION for the daemons (default '30 seconds')"
    )
    parser.add_argument("--sample-s", type=float, default=10.0, help="seconds between lines (default 10)")
    parser.add_argument(
        "--vacuum-s",
        type=float,
        default=30.0,
        help="with autovacuum off: VACUUM (ANALYZE) lzq_jobs this often (default 30)",
    )
    parser.add_argument("--no-vacuum", action="store_true", help="no stand-in VACUUM when autovacuum is off")
    parser.add_argument(
        "--stall-s", type=float, default=60.0, help="give up after this long without a finished job"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="3000 jobs at 500/s, 2 s samples, retention 2 s: a few seconds"
    )
    add_dsn_option(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.jobs, args.rate, args.sample_s, args.retention = 3000, 500.0, 2.0, "2 seconds"
        args.vacuum_s, args.stall_s = 3.0, 15.0
    if args.jobs < 1 or args.rate <= 0 or args.batch < 1 or args.sample_s <= 0 or args.vacuum_s <= 0:
        parser.error("--jobs, --rate, --batch, --sample-s and --vacuum-s must be above 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print_environment(args.dsn)
    say(
        f"soak: {args.jobs} no-op jobs at {args.rate:g}/s (push_many batches of {args.batch}, open loop); "
        f"1 superqueuer + {args.workers} workers x {args.concurrency} slots; "
        f"LZQ_RETENTION={args.retention!r}; a line every {args.sample_s:g} s"
    )
    try:
        return soak(args)
    except BenchmarkFailed as exc:
        say(f"!!! FAILED: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
