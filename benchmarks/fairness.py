"""Fair dispatch on real daemons: issue 5's six metrics, each scenario under fair and FIFO queues.

    .venv/bin/python benchmarks/fairness.py                    # every scenario, fair + fifo (~12 min)
    .venv/bin/python benchmarks/fairness.py --smoke            # a few seconds per scenario
    .venv/bin/python benchmarks/fairness.py --scenarios share,starvation --modes fair,fifo,priority

Each scenario runs once per queue mode (``lzq_queue_mode``: fair, fifo, priority) on a fresh scratch
database with 1 superqueuer and 2 workers x 8 slots running ``benchmarks.sleepy`` (a job that sleeps
``params["s"]``). Times come from the database: a job waits from ``created_at`` (its push) to
``started_at`` (its start fence); a *dispatch* is a start. Backlogs are pushed before the daemons
start, tenant after tenant (what FIFO makes unfair), and sized so every flow stays backlogged for
the whole measured window whatever the policy.

1. ``jain``: 4 tenants (fairness_key), equal nice, deep backlogs of 50 ms jobs; Jain's index of
   their dispatches over the ``--window-s`` window (default 60 s), and the worst 10 s sub-window.
   Target >= 0.95.
2. ``noisy``: a small tenant pushes 20 ms jobs at 5% of capacity for ``--phase-s``, alone; then
   again after a tenant 100x heavier queued its jobs. p99 wait with / alone (target <= 2). Also
   run in 'priority' mode with the small tenant at nice -20, always first: the best a policy that
   never preempts a running job can do, the yardstick for the fair figure.
3. ``share``: nice 0 vs nice 5, both backlogged: dispatch ratio vs 1.25**5 = 3.05. Target +-10%.
4. ``starvation``: nice +20 under a saturating nice -20 flow (no-op jobs): dispatches of nice +20
   vs its weighted share 1 / (1 + 1.25**40); never zero.
5. ``limits``: ``benchmarks/limits.py`` (limit_to(2, bucket) + limit_to(3)): the most in progress
   at once vs the limits, and utilisation of the overall limit.
6. work conservation, measured during 1-4: a sampler reads every 20 ms whether jobs are ready and
   how many are assigned to workers (dispatched or running). *Dispatch idle* = free credit (slots -
   assigned, at least 0) while a job is ready, over slot-time: what the scheduler leaves unused
   (target <= 1%). (Whether a worker's slot is busy is not in PostgreSQL: an assigned job counts as
   running from its assignment, while it may wait on its worker behind the margin.)
``backlog`` (fair mode only): ``--backlog-jobs`` (1,000,000) no-op jobs queued, daemons run
``--phase-s`` x 3; RabbitMQ's ready count and the workers' RSS sampled every 0.5 s (credit-based
dispatch keeps the broker shallow and the workers flat).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pika
import psycopg

from benchmarks import limits
from benchmarks._common import (
    AMQP_URL,
    Daemons,
    ScratchDatabase,
    add_dsn_option,
    new_amqp_prefix,
    percentile,
    print_environment,
    say,
)
from lzq import Client
from tests.fairness_model import COST

WORKERS, SLOTS_PER_WORKER = 2, 8
SLOTS = WORKERS * SLOTS_PER_WORKER
JOB = "sleepy"
NICE_RATIO_5 = 1.25**5
#: Share of dispatches nice +20 is owed next to a saturating nice -20 flow (the integer costs of SQL).
STARVATION_SHARE = 1 / (1 + COST[20] / COST[-20])
TARGETS = {"jain": 0.95, "noisy": 2.0, "share": 0.10, "conservation": 0.01}


# -- one scenario run: a scratch database, a queue mode, daemons, a sampler ------------------------


@dataclass
class Samples:
    """What the sampler saw, every 20 ms (work conservation) and every 0.5 s (broker, memory)."""

    at: list[float] = field(default_factory=list)
    ready: list[bool] = field(default_factory=list)
    inflight: list[int] = field(default_factory=list)
    broker_ready: list[int] = field(default_factory=list)
    worker_rss_mb: list[float] = field(default_factory=list)

    def dispatch_idle(self, start: float, end: float) -> float:
        """Free credit while a job was ready, as a fraction of slot-time in [start, end]."""
        picked = [i for i, t in enumerate(self.at) if start <= t <= end]
        if not picked:
            return float("nan")
        return sum(max(0, SLOTS - self.inflight[i]) for i in picked if self.ready[i]) / (SLOTS * len(picked))


class Run:
    """One scenario in one queue mode: scratch database + RabbitMQ prefix + daemons + sampler."""

    def __init__(self, args: argparse.Namespace, mode: str) -> None:
        self.args, self.mode = args, mode
        self.prefix = new_amqp_prefix()
        self.scratch = ScratchDatabase(args.dsn)
        self.samples = Samples()
        self._stop = threading.Event()

    def __enter__(self) -> Run:
        self.scratch.__enter__()
        self.conn = self.scratch.connect()
        self.client = Client(dsn=self.scratch.dsn)
        self.client.queue_mode("default", self.mode)
        self.daemons = Daemons(self.scratch.dsn, self.prefix, app="benchmarks.sleepy")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        codes = self.daemons.stop() if self.daemons.procs else {}
        if any(code != 0 for code in codes.values()):
            say(f"  !!! daemon exit codes {codes}")
        self.client.close()
        self.conn.close()
        self.scratch.__exit__(*exc)

    def push(self, jobs: list[tuple], batch: int = 5000) -> None:
        for first in range(0, len(jobs), batch):
            self.client.push_many(jobs[first : first + batch])

    def start(self) -> float:
        """Start the daemons and the sampler; returns the wall-clock time."""
        # A checkpoint first: the previous scenario's writes (80,000 jobs and a dropped database)
        # would otherwise be flushed in the middle of this one's window (seen: half the throughput).
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            self.conn.execute("CHECKPOINT")
        self.daemons.start_superqueuer()
        for _ in range(WORKERS):
            self.daemons.start_worker(SLOTS_PER_WORKER)
        threading.Thread(target=self._sample, daemon=True).start()
        return time.time()

    def wait_for_workers(self, timeout_s: float = 30.0) -> None:
        """Until every worker has registered its slots (Python start-up takes a second or two)."""
        deadline = time.monotonic() + timeout_s
        while self.conn.execute("SELECT coalesce(sum(slots), 0) FROM lzq_workers").fetchone()[0] < SLOTS:
            if time.monotonic() > deadline or self.daemons.dead():
                raise RuntimeError(f"workers did not register: {self.daemons.dead()}")
            time.sleep(0.1)

    def _sample(self) -> None:
        with psycopg.connect(self.scratch.dsn, autocommit=True) as conn:
            broker = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
            channel, next_slow = broker.channel(), 0.0
            try:
                while not self._stop.wait(0.02):
                    ready, inflight = conn.execute(_SAMPLE).fetchone()
                    s = self.samples
                    s.at.append(time.time())
                    s.ready.append(ready)
                    s.inflight.append(inflight)
                    if time.monotonic() >= next_slow:
                        next_slow = time.monotonic() + 0.5
                        # Messages waiting in the workers' inboxes (lzq_assign publishes there).
                        waiting = 0
                        for (inbox,) in conn.execute("SELECT inbox FROM lzq_workers WHERE inbox IS NOT NULL"):
                            try:
                                waiting += channel.queue_declare(inbox, passive=True).method.message_count
                            except pika.exceptions.ChannelClosedByBroker:  # gone with its worker
                                channel = broker.channel()
                        s.broker_ready.append(waiting)
                        s.worker_rss_mb.append(self._worker_rss_mb())
            except (pika.exceptions.AMQPError, psycopg.Error):
                pass  # the run is being torn down
            finally:
                if broker.is_open:
                    broker.close()

    def _worker_rss_mb(self) -> float:
        total = 0.0
        for name, pid in self.daemons.pids().items():
            if name.startswith("worker"):
                try:
                    with open(f"/proc/{pid}/status") as status:
                        rss = next(line for line in status if line.startswith("VmRSS:"))
                    total += int(rss.split()[1]) / 1024
                except (OSError, StopIteration):
                    pass
        return total

    def wait_until(self, deadline: float) -> None:
        while time.time() < deadline:
            if self.daemons.dead():
                raise RuntimeError(f"daemon died: {self.daemons.dead()}")
            time.sleep(0.2)

    def starts(self, where: str = "true") -> list[tuple]:
        """(fairness_key, priority, params, created epoch, started epoch) of started jobs."""
        return self.conn.execute(
            f"""SELECT fairness_key, priority, params, extract(epoch FROM created_at)::float8,
                       extract(epoch FROM started_at)::float8
                  FROM lzq_jobs WHERE started_at IS NOT NULL AND {where} ORDER BY started_at"""
        ).fetchall()

    def window(self, warm_up_s: float, length_s: float) -> tuple[float, float]:
        """[first start + warm_up_s, + length_s]: the measured window, in epoch seconds."""
        (first,) = self.conn.execute(
            "SELECT extract(epoch FROM min(started_at))::float8 FROM lzq_jobs"
        ).fetchone()
        return first + warm_up_s, first + warm_up_s + length_s

    def conservation(self, start: float, end: float) -> dict[str, float]:
        return {"dispatch_idle": self.samples.dispatch_idle(start, end)}


_SAMPLE = """
    SELECT EXISTS (SELECT 1 FROM lzq_jobs WHERE status = 'ready'),
           (SELECT count(*) FROM lzq_jobs WHERE status IN ('dispatched', 'running'))"""


def jain(counts: list[int]) -> float:
    """Jain's fairness index: 1 when all equal, 1/n when one flow gets everything."""
    return sum(counts) ** 2 / (len(counts) * sum(c * c for c in counts)) if any(counts) else float("nan")


def in_window(rows: list[tuple], start: float, end: float) -> list[tuple]:
    return [r for r in rows if start <= r[4] < end]


# -- scenarios -------------------------------------------------------------------------------------


def scenario_jain(args: argparse.Namespace, mode: str) -> dict[str, float]:
    duration_s, tenants = 0.05, 4
    per_tenant = int(SLOTS / duration_s * (args.window_s + args.warm_up_s) * 1.2)
    with Run(args, mode) as run:
        for tenant in range(tenants):
            run.push([(JOB, {"s": duration_s}, {"fairness_key": f"t{tenant}"})] * per_tenant)
        run.start()
        run.wait_until(time.time() + args.warm_up_s + args.window_s + 3)
        start, end = run.window(args.warm_up_s, args.window_s)
        rows = in_window(run.starts(), start, end)
        counts = Counter(r[0] for r in rows)
        whole = jain([counts[f"t{t}"] for t in range(tenants)])
        sub_s = min(10.0, args.window_s)
        subs = []
        for k in range(int(args.window_s // sub_s)):
            part = Counter(r[0] for r in in_window(rows, start + k * sub_s, start + (k + 1) * sub_s))
            subs.append(jain([part[f"t{t}"] for t in range(tenants)]))
        say(f"    dispatches per tenant in {args.window_s:g} s: {[counts[f't{t}'] for t in range(tenants)]}")
        return {"jain": whole, "jain_worst_10s": min(subs), **run.conservation(start, end)}


def scenario_noisy(args: argparse.Namespace, mode: str) -> dict[str, float]:
    duration_s = 0.02
    rate = 0.05 * SLOTS / duration_s  # the small tenant: 5% of capacity
    with Run(args, mode) as run:
        run.start()
        run.wait_for_workers()
        time.sleep(args.warm_up_s)

        def small_tenant(phase: int) -> None:
            # Open loop: pushes keep their schedule whatever the queue does.
            t0 = time.monotonic()
            for i in itertools.count():
                due = t0 + i / rate
                if due > t0 + args.phase_s:
                    return
                time.sleep(max(0.0, due - time.monotonic()))
                # In 'priority' mode the small tenant runs at nice -20: always first, the best any
                # non-preemptive policy can do for it (the oracle the fair ratio is compared with).
                run.client.push(
                    JOB,
                    {"s": duration_s, "phase": phase},
                    fairness_key="small",
                    priority=-20 * (mode == "priority"),
                )

        small_tenant(1)
        # The heavy tenant queues 100x the small one's jobs for the phase, in bulk, before it starts
        # (pushing 80,000 jobs takes CPU this 2-core machine shares with the daemons: measured
        # while pushing, the small tenant's wait is mostly that CPU contention, not the order).
        run.push([(JOB, {"s": duration_s}, {"fairness_key": "heavy"})] * int(100 * rate * args.phase_s))
        small_tenant(2)
        time.sleep(1.0)  # let the last small jobs start
        # A job not started yet (FIFO: stuck behind the flood) counts as waiting until now, a lower
        # bound of its wait: leaving it out would make the stuck tail look fast.
        (now,) = run.conn.execute("SELECT extract(epoch FROM now())::float8").fetchone()
        waits: dict[int, list[float]] = {1: [], 2: []}
        for params, created, started in run.conn.execute(
            "SELECT params, extract(epoch FROM created_at)::float8, extract(epoch FROM started_at)::float8"
            "  FROM lzq_jobs WHERE fairness_key = 'small'"
        ):
            waits[params["phase"]].append(((started or now) - created) * 1000)
        (unstarted,) = run.conn.execute(
            "SELECT count(*) FROM lzq_jobs WHERE fairness_key = 'small' AND started_at IS NULL"
        ).fetchone()
        alone, crowded = percentile(waits[1], 0.99), percentile(waits[2], 0.99)
        (phase2_start,) = run.conn.execute(
            "SELECT extract(epoch FROM min(created_at))::float8 FROM lzq_jobs WHERE fairness_key = 'heavy'"
        ).fetchone()
        say(
            f"    small tenant p99 wait: alone {alone:.1f} ms ({len(waits[1])} jobs), next to the heavy "
            f"tenant {crowded:.1f} ms ({len(waits[2])} jobs, {unstarted} not started; "
            f"p50 {statistics.median(waits[2]):.1f} ms)"
        )
        return {
            "noisy": crowded / alone,
            "small_p99_ms": crowded,
            **run.conservation(phase2_start + 1, phase2_start + args.phase_s),
        }


def scenario_share(args: argparse.Namespace, mode: str) -> dict[str, float]:
    duration_s = 0.02
    per_flow = int(SLOTS / duration_s * (args.phase_s + args.warm_up_s) * 1.2)
    with Run(args, mode) as run:
        run.push([(JOB, {"s": duration_s}, {"fairness_key": "nice0"})] * per_flow)
        run.push([(JOB, {"s": duration_s}, {"fairness_key": "nice5", "priority": 5})] * per_flow)
        run.start()
        run.wait_until(time.time() + args.warm_up_s + args.phase_s + 3)
        start, end = run.window(args.warm_up_s, args.phase_s)
        counts = Counter(r[1] for r in in_window(run.starts(), start, end))
        ratio = counts[0] / counts[5] if counts[5] else float("inf")
        say(f"    dispatches nice 0 : nice 5 = {counts[0]} : {counts[5]}")
        return {"share": ratio / NICE_RATIO_5 - 1, **run.conservation(start, end)}


def scenario_starvation(args: argparse.Namespace, mode: str) -> dict[str, float]:
    length_s = args.phase_s
    hogs = int(2000 * (length_s + args.warm_up_s) * 1.5)  # no-op jobs: well above any drain rate here
    with Run(args, mode) as run:
        run.push([(JOB, {}, {"fairness_key": "hog", "priority": -20})] * hogs)
        run.push([(JOB, {}, {"fairness_key": "meek", "priority": 20})] * 100)
        run.start()
        run.wait_until(time.time() + args.warm_up_s + length_s + 3)
        start, end = run.window(args.warm_up_s, length_s)
        counts = Counter(r[1] for r in in_window(run.starts(), start, end))
        owed = (counts[-20] + counts[20]) * STARVATION_SHARE
        say(f"    dispatches nice -20 : nice +20 = {counts[-20]} : {counts[20]} (owed {owed:.1f})")
        return {"meek_dispatches": counts[20], "meek_owed": owed, **run.conservation(start, end)}


def scenario_limits(args: argparse.Namespace, mode: str) -> dict[str, float]:
    jobs = 30 if args.smoke else 300
    result = limits.run_once(
        argparse.Namespace(jobs=jobs, sleep_s=0.1, timeout_s=300, dsn=args.dsn, queue_mode=mode), 1
    )
    if not result:
        raise RuntimeError("limits run did not finish")
    return {
        "limit_max": f"{result['overall_max']}/{limits.CLASS_LIMIT} overall, "
        f"{result['bucket_max']}/{limits.BUCKET_LIMIT} per bucket",
        "limit_use": result["utilisation"],
    }


def scenario_backlog(args: argparse.Namespace, mode: str) -> dict[str, float]:
    with Run(args, mode) as run:
        t0 = time.monotonic()
        run.push([(JOB, {}, {"fairness_key": f"t{i % 100}"}) for i in range(args.backlog_jobs)], batch=10_000)
        say(f"    pushed {args.backlog_jobs} jobs in {time.monotonic() - t0:.0f} s")
        run.start()
        run.wait_until(time.time() + 3 * args.phase_s)
        (done,) = run.conn.execute("SELECT count(*) FROM lzq_jobs WHERE status = 'succeeded'").fetchone()
        s = run.samples
        rss = s.worker_rss_mb[len(s.worker_rss_mb) // 10 :] or [float("nan")]  # after start-up
        say(
            f"    {done} jobs done in {3 * args.phase_s:g} s; "
            f"RabbitMQ ready messages max {max(s.broker_ready)}, median {statistics.median(s.broker_ready)}; "
            f"worker RSS {rss[0]:.1f} -> {rss[-1]:.1f} MB "
            f"(max {max(rss):.1f})"
        )
        return {"broker_ready_max": max(s.broker_ready), "rss_growth_mb": rss[-1] - rss[0]}


SCENARIOS: dict[str, Callable[[argparse.Namespace, str], dict]] = {
    "jain": scenario_jain,
    "noisy": scenario_noisy,
    "share": scenario_share,
    "starvation": scenario_starvation,
    "limits": scenario_limits,
    "backlog": scenario_backlog,
}


# -- report ----------------------------------------------------------------------------------------


def verdict(name: str, value: object) -> str:
    if not isinstance(value, float):
        return ""
    ok = {
        "jain": value >= TARGETS["jain"],
        "noisy": value <= TARGETS["noisy"],
        "share": abs(value) <= TARGETS["share"],
        "dispatch_idle": value <= TARGETS["conservation"],
    }.get(name)
    return "" if ok is None else (" ok" if ok else " MISSED")


def fmt(name: str, value: object) -> str:
    if isinstance(value, float):
        text = (
            f"{value:+.1%}"
            if name == "share"
            else f"{value:.1%}"
            if "idle" in name or "use" in name
            else f"{value:.3g}"
        )
    else:
        text = str(value)
    return text + verdict(name, value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help="Comma-separated, from: " + ", ".join(SCENARIOS)
    )
    parser.add_argument("--modes", default="fair,fifo", help="Queue modes to compare: fair, fifo, priority.")
    parser.add_argument("--window-s", type=float, default=60.0, help="Jain's window.")
    parser.add_argument("--phase-s", type=float, default=20.0, help="Length of the other scenarios' phases.")
    parser.add_argument("--warm-up-s", type=float, default=2.0)
    parser.add_argument("--backlog-jobs", type=int, default=1_000_000)
    add_dsn_option(parser)
    parser.add_argument("--smoke", action="store_true", help="Seconds per scenario; numbers mean little.")
    args = parser.parse_args(argv)
    if args.smoke:
        args.window_s, args.phase_s, args.warm_up_s, args.backlog_jobs = 4.0, 3.0, 1.0, 20_000
    print_environment(args.dsn)
    say(f"fairness: 1 superqueuer, {WORKERS} workers x {SLOTS_PER_WORKER} slots; modes {args.modes}")
    results: dict[str, dict[str, dict]] = {}
    for name in args.scenarios.split(","):
        modes = args.modes.split(",") if name != "backlog" else ["fair"]
        if name == "noisy" and "priority" not in modes:
            modes.append("priority")  # the oracle: the small tenant always first
        for mode in modes:
            say(f"  {name} [{mode}]")
            results.setdefault(name, {})[mode] = result = SCENARIOS[name](args, mode)
            say("    " + "; ".join(f"{k} {fmt(k, v)}" for k, v in result.items()))
    say("fairness summary:")
    for name, by_mode in results.items():
        say(
            f"  {name:<11}"
            + " | ".join(
                f"{mode}: " + ", ".join(f"{k} {fmt(k, v)}" for k, v in r.items())
                for mode, r in by_mode.items()
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
