"""Latency: push→start and push→done percentiles at fixed push rates, through real daemons.

    python benchmarks/latency.py                        # 50, 200, 500 jobs/s, 10 s each, 3 runs (~3 min)
    python benchmarks/latency.py --smoke                # a few seconds: proves it still works
    python benchmarks/latency.py --rates 100,1000 --duration-s 20 --runs 5

Per run and rate: a fresh scratch database and RabbitMQ prefix, 1 superqueuer and ``--workers``
workers × ``--concurrency`` slots (``--app benchmarks.peers.lzq_peer``: the no-op handler plus the
peers' recorder), then one producer thread pushes no-op jobs with single ``Client.push`` calls (one
commit each) on an open-loop schedule (push i is due at t0 + i/rate, whatever earlier pushes took, so
a slow push does not hide the delay it causes: no coordinated omission). The first ``--warmup-s``
are not measured. Rates take turns within each run; the table shows the medians of the runs.

Three latencies per job, each timed on one clock:

- push→start, handler clock: ``time.time()`` just before the push call (carried in the params as
  ``t``) to ``time.time()`` when the handler starts, exactly as ``peers.py`` times every system
  (same host, so the same clock in every process);
- push→assigned, database clock: ``created_at`` to ``started_at``. Both are ``now()``, the start
  of their transaction: the push's statement (before its commit) and the superqueuer's
  ``lzq_assign`` (before its commit). So it leaves out the assignment's commit, the publish,
  RabbitMQ and the worker's hand-off to a job thread, which the handler clock includes;
- push→done, database clock: ``created_at`` to ``finished_at`` (``now()`` of the ``lzq_finish``
  batch that records the outcome, just before its commit).

With ``--hops``, where the time goes: a trigger in the scratch database stamps every job's insert
and status change with ``clock_timestamp()`` (at the end of the statement that made it, so a
commit and its reply fall into the next hop), and the table adds, per job:

- client -> row: ``t`` to the push's INSERT (client work, the pool, the round trip, validation);
- row -> assigned: the rest of the push and its commit, the NOTIFY, the superqueuer waking, its
  pass up to the assignment's UPDATE;
- assigned -> done: the assignment's commit, the publish, RabbitMQ, the worker's consumer and job
  thread, the (no-op) handler, the ledger's report up to the finish's UPDATE.

The trigger costs each of those statements an insert, so the other rows read a little higher with it.

Also per rate: how many pushes began more than 1 ms after their scheduled time (the producer fell
behind; they are pushed at once, back to back, to catch up) and the worst lag. Every measured job
must have succeeded on its first attempt and every daemon must stop cleanly (exit 0), else exit 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pika.exceptions
import psycopg

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (  # noqa: E402
    Daemons,
    ScratchDatabase,
    add_dsn_option,
    add_prefetch_margin_option,
    daemon_settings,
    describe_margin,
    median,
    new_amqp_prefix,
    print_environment,
    say,
)
from benchmarks.peers._base import DIR_ENV, FLUSH_S, Workers  # noqa: E402
from benchmarks.stats import percentile  # noqa: E402
from lzq.client import Client  # noqa: E402

#: The daemons' handlers: lzq_peer's ``noop`` records its start like every system in peers.py.
APP = "benchmarks.peers.lzq_peer"
POLL_S = 0.05
#: A server restarted under us (shared machine): the rate is measured again, at most ATTEMPTS times.
OUTAGES = (psycopg.OperationalError, pika.exceptions.AMQPError)
ATTEMPTS = 2
RETRY_S = 10.0
#: A push that begins later than this after its scheduled time counts as behind schedule.
LATE_S = 0.001
PERCENTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("max", 1.0))
#: (key, label): the three latencies of every measured job.
MEASURES = (
    ("start_handler", "push->start (handler clock)"),
    ("start_db", "push->assigned (db created_at->started_at)"),
    ("done_db", "push->done (db created_at->finished_at)"),
)
#: (key, label, from status, to status) of ``--hops``; "t" is the producer's clock before the push.
HOPS = (
    ("hop_row", "  hop: client -> row inserted", "t", "ready"),
    ("hop_assign", "  hop: row -> assigned", "ready", "running"),
    ("hop_done", "  hop: assigned -> done", "running", "succeeded"),
)
#: A trigger that stamps each job's insert and status changes (``--hops``); scratch databases only.
_HOPS_DDL = """
    CREATE UNLOGGED TABLE lzq_bench_hops (id bigint NOT NULL, status text NOT NULL, at float8 NOT NULL);
    CREATE FUNCTION lzq_bench_hop() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO lzq_bench_hops VALUES (NEW.id, NEW.status, extract(epoch FROM clock_timestamp()));
        RETURN NULL;
    END $$;
    CREATE TRIGGER lzq_bench_hop AFTER INSERT OR UPDATE OF status ON lzq_jobs
        FOR EACH ROW EXECUTE FUNCTION lzq_bench_hop();"""


class BenchmarkFailed(Exception):
    """A run produced wrong results (not just slow ones)."""


@dataclasses.dataclass
class RateResult:
    rate: float
    jobs: int
    #: measure key -> {"p50": ms, ...}
    stats: dict[str, dict[str, float]]
    behind: int
    max_lag_ms: float
    achieved_per_s: float
    loadavg: float


def stats_ms(seconds: list[float]) -> dict[str, float]:
    return {name: percentile(seconds, pct) * 1000 for name, pct in PERCENTILES}


def hop_stats(conn: psycopg.Connection, first_id: int, last_id: int) -> dict[str, dict[str, float]]:
    """``--hops``: percentiles of each hop over the measured jobs, from ``lzq_bench_hops``."""
    stamps: dict[int, dict[str, float]] = {}
    rows = conn.execute(
        """SELECT j.id, (j.params ->> 't')::float8, h.status, h.at
             FROM lzq_jobs AS j JOIN lzq_bench_hops AS h ON h.id = j.id
            WHERE j.id BETWEEN %s AND %s""",
        (first_id, last_id),
    ).fetchall()
    for job_id, t, status, at in rows:
        stamps.setdefault(job_id, {"t": t})[status] = at
    return {
        key: stats_ms([s[to] - s[since] for s in stamps.values() if since in s and to in s])
        for key, _, since, to in HOPS
    }


def push_on_schedule(
    client: Client, rate: float, warmup: int, count: int
) -> tuple[int, int, list[float], float]:
    """Push ``warmup + count`` jobs, job i due at t0 + i/rate; the last ``count`` carry ``t``.

    Returns (first measured id, last measured id, lag in seconds of each measured push behind its
    scheduled time, achieved rate of the measured pushes).
    """
    period = 1.0 / rate
    lags: list[float] = []
    first_id = last_id = 0
    t0 = time.perf_counter() + 0.01
    measured_t0 = t0 + warmup * period
    for i in range(warmup + count):
        due = t0 + i * period
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        if i < warmup:
            client.push("noop", {"n": i})
            continue
        lags.append(time.perf_counter() - due)
        job = client.push("noop", {"n": i, "t": time.time()})
        if i == warmup:
            first_id = job.id
        last_id = job.id
    achieved = count / max(time.perf_counter() - measured_t0, 1e-9)
    return first_id, last_id, lags, achieved


def wait_until(
    what: str,
    ready: Callable[[], bool],
    daemons: Daemons,
    stall_s: float,
    progress: Callable[[], object] | None = None,
) -> None:
    """Poll ``ready()`` until true; fail if a daemon exits or ``progress()`` stops moving for stall_s."""
    last, last_change = None, time.monotonic()
    while not ready():
        now = time.monotonic()
        current = progress() if progress else None
        if current != last:
            last, last_change = current, now
        dead = daemons.dead()
        if dead or now - last_change > stall_s:
            why = f"daemons exited: {dead}" if dead else f"no progress for {stall_s:.0f} s"
            say(f"!!! {what}: {why}")
            for name in daemons.pids():
                say(f"--- {name} log (last lines):\n{daemons.log_tail(name)}")
            raise BenchmarkFailed(f"{what} did not finish (logs in {daemons.log_dir})")
        time.sleep(POLL_S)


def measure_rate(args: argparse.Namespace, rate: float, index: int) -> RateResult:
    """One rate on a fresh database and RabbitMQ prefix, with fresh daemons."""
    warmup, count = round(rate * args.warmup_s), max(1, round(rate * args.duration_s))
    prefix = new_amqp_prefix()
    settings = daemon_settings(args)
    with (
        ScratchDatabase(args.dsn) as scratch,
        scratch.connect() as conn,
        Workers() as recorder,  # only its report directory: the daemons are ours
        Daemons(scratch.dsn, prefix, app=APP, settings=settings) as daemons,
        Client(dsn=scratch.dsn) as client,
    ):
        daemons.env[DIR_ENV] = str(recorder.dir)
        if args.hops:
            conn.execute(_HOPS_DDL)
        daemons.start_superqueuer()
        for _ in range(args.workers):
            daemons.start_worker(args.concurrency)

        def scalar(sql: str, *params: object) -> int:
            return conn.execute(sql, params).fetchone()[0]

        # Ready: every worker registered and one job went all the way through.
        primer = client.push("noop", {})
        wait_until(
            "start-up",
            lambda: (
                scalar("SELECT count(*) FROM lzq_workers") >= args.workers
                and scalar("SELECT count(*) FROM lzq_jobs WHERE id = %s AND status = 'succeeded'", primer.id)
            ),
            daemons,
            args.stall_s,
        )
        first_id, last_id, lags, achieved = push_on_schedule(client, rate, warmup, count)

        def handler_latencies() -> list[float]:
            return [x for report in recorder.reports() for x in report["latencies"]]

        def done() -> int:
            return scalar(
                "SELECT count(*) FROM lzq_jobs WHERE id BETWEEN %s AND %s AND status = 'succeeded'",
                first_id,
                last_id,
            )

        wait_until(
            f"{rate:g}/s",
            lambda: done() >= count and len(handler_latencies()) >= count,
            daemons,
            args.stall_s,
            progress=lambda: (done(), len(handler_latencies())),
        )
        time.sleep(FLUSH_S * 3)  # the recorders' last flush
        handler = handler_latencies()
        rows = conn.execute(
            """SELECT status, attempts, extract(epoch FROM started_at - created_at)::float8,
                      extract(epoch FROM finished_at - created_at)::float8
                 FROM lzq_jobs WHERE id BETWEEN %s AND %s""",
            (first_id, last_id),
        ).fetchall()
        hops = hop_stats(conn, first_id, last_id) if args.hops else {}
        loadavg = os.getloadavg()[0]
        codes = daemons.stop()
    bad = [(status, attempts) for status, attempts, _, _ in rows if (status, attempts) != ("succeeded", 1)]
    if len(rows) != count or bad or len(handler) != count:
        say(
            f"!!! CORRECTNESS: expected {count} jobs succeeded once and {count} handler starts, got "
            f"{len(rows)} jobs ({len(bad)} not succeeded once, e.g. {bad[:3]}) and {len(handler)} starts"
        )
        raise BenchmarkFailed("not every measured job succeeded exactly once")
    bad_exits = {name: code for name, code in codes.items() if code != 0}
    if bad_exits:
        raise BenchmarkFailed(f"daemons did not stop cleanly: {bad_exits}")
    late = [lag for lag in lags if lag > LATE_S]
    result = RateResult(
        rate=rate,
        jobs=count,
        stats={
            "start_handler": stats_ms(handler),
            "start_db": stats_ms([row[2] for row in rows]),
            "done_db": stats_ms([row[3] for row in rows]),
            **hops,
        },
        behind=len(late),
        max_lag_ms=max(lags) * 1000,
        achieved_per_s=achieved,
        loadavg=loadavg,
    )
    s = result.stats
    say(
        f"  run {index} {rate:g}/s: {count} jobs ({achieved:.1f}/s achieved, {len(late)} behind schedule, "
        f"worst {result.max_lag_ms:.1f} ms late); push->start p50/p99/max "
        f"{fmt3(s['start_handler'])} ms (handler), {fmt3(s['start_db'])} ms (db); "
        f"push->done {fmt3(s['done_db'])} ms (db); load {loadavg:.2f}"
    )
    if hops:
        hop_parts = [f"{label.split(': ')[1]} {fmt3(s[key])}" for key, label, *_ in HOPS]
        say("    hops p50/p99/max ms: " + "; ".join(hop_parts))
    return result


def measure_with_retry(args: argparse.Namespace, rate: float, index: int) -> RateResult:
    """``measure_rate``, tried again on a fresh database when a server went away meanwhile (a shared
    server may be restarted under us); wrong results are never retried."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return measure_rate(args, rate, index)
        except OUTAGES as exc:
            if attempt == ATTEMPTS:
                raise BenchmarkFailed(f"{rate:g}/s: {type(exc).__name__}: {exc}") from exc
            why = f"{type(exc).__name__}: {str(exc).strip()[:200]}"
            say(f"  run {index} {rate:g}/s: {why}; measuring again in {RETRY_S:g} s")
            time.sleep(RETRY_S)
    raise AssertionError("unreachable")


def fmt3(stats: dict[str, float]) -> str:
    return "/".join(f"{stats[k]:.1f}" for k in ("p50", "p99", "max"))


def print_table(rates: list[float], results: dict[float, list[RateResult]], hops: bool) -> None:
    headers = [
        "rate",
        "measure",
        *(name + " ms" for name, _ in PERCENTILES),
        "pushes late (median), achieved rate",
    ]
    rows = []
    for rate in rates:
        runs = results[rate]
        for key, label in [*MEASURES, *((key, label) for key, label, *_ in HOPS if hops)]:
            row = [f"{rate:g}/s" if key == MEASURES[0][0] else "", label]
            row += [f"{median([r.stats[key][name] for r in runs]):.1f}" for name, _ in PERCENTILES]
            if key == MEASURES[0][0]:
                row.append(
                    f"{median([r.behind for r in runs]):g} of {runs[0].jobs} "
                    f"(worst {max(r.max_lag_ms for r in runs):.0f} ms), "
                    f"{median([r.achieved_per_s for r in runs]):.0f}/s"
                )
            else:
                row.append("")
            rows.append(row)
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    say("")
    say("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in rows:
        say("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    say(
        f"medians of {len(results[rates[0]])} run(s) (max: of each run's maximum); late: pushes begun over "
        f"{LATE_S * 1000:g} ms after their scheduled time (worst lag of all runs); achieved: pushes/s"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default="50,200,500", help="push rates in jobs/s (default 50,200,500)")
    parser.add_argument(
        "--duration-s", type=float, default=10.0, help="measured pushing per rate (default 10)"
    )
    parser.add_argument(
        "--warmup-s", type=float, default=2.0, help="pushing at the rate before measuring (default 2)"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs; the table shows medians (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--concurrency", type=int, default=8, help="slots per worker (default 8)")
    add_prefetch_margin_option(parser)
    parser.add_argument(
        "--stall-s", type=float, default=30.0, help="give up after this long without progress"
    )
    parser.add_argument(
        "--hops",
        action="store_true",
        help="also time each hop (push, assignment, run) with a trigger's clock_timestamp()",
    )
    parser.add_argument("--smoke", action="store_true", help="one run at 200/s for 1 s: a few seconds")
    add_dsn_option(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.rates, args.duration_s, args.warmup_s, args.runs, args.stall_s = "200", 1.0, 0.5, 1, 15.0
    try:
        args.rate_list = [float(r) for r in args.rates.split(",") if r.strip()]
    except ValueError:
        parser.error(f"--rates: expected numbers separated by commas, got {args.rates!r}")
    if not args.rate_list or min(args.rate_list) <= 0:
        parser.error("--rates: need at least one rate above 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print_environment(args.dsn)
    margin = describe_margin(args)
    say(
        f"latency: single pushes at {', '.join(f'{r:g}' for r in args.rate_list)} jobs/s for "
        f"{args.duration_s:g} s each after {args.warmup_s:g} s warm-up; 1 superqueuer + {args.workers} "
        f"workers x {args.concurrency} slots (prefetch margin {margin}); {args.runs} run(s)"
    )
    results: dict[float, list[RateResult]] = {rate: [] for rate in args.rate_list}
    try:
        for index in range(1, args.runs + 1):
            for rate in args.rate_list:  # rates take turns: drift on a shared machine hits all alike
                results[rate].append(measure_with_retry(args, rate, index))
    except BenchmarkFailed as exc:
        say(f"!!! FAILED: {exc}")
        return 1
    print_table(args.rate_list, results, args.hops)
    parts = []
    for rate in args.rate_list:
        runs = results[rate]
        p = {key: {n: median([r.stats[key][n] for r in runs]) for n in ("p50", "p99")} for key, _ in MEASURES}
        parts.append(
            f"{rate:g}/s start p50 {p['start_handler']['p50']:.1f} p99 {p['start_handler']['p99']:.1f}, "
            f"done p50 {p['done_db']['p50']:.1f} p99 {p['done_db']['p99']:.1f}"
        )
    behind = "/".join(f"{median([r.behind for r in results[rate]]):g}" for rate in args.rate_list)
    say(
        f"latency (ms; start on the handler clock, done on the database clock): {'; '.join(parts)}; "
        f"pushes behind schedule {behind} (median per run)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
