"""limit_to fidelity under a backlog: real daemons, limits measured from the jobs' own records.

Pushes N jobs of ``benchmarks.limited.Limited`` (``limit_to(2, {"bucket": b}).limit_to(3)``) over
three buckets, runs 2 superqueuers and 2 workers of 6 slots (12 slots, so only the limits hold the
jobs back) and reads, from the start/end times each job records itself:

- fidelity: the most runs ever in progress at once, per bucket (limit 2) and overall (limit 3);
- utilisation: the time-averaged number of runs in progress, over the limit, from the first start
  to the last end (the backlog never runs dry in between, so 100% is the best possible).

Prints each run and the medians, with the PostgreSQL settings. ``--smoke`` is a few seconds.
"""

from __future__ import annotations

import argparse
import sys
import time

from benchmarks._common import (
    Daemons,
    ScratchDatabase,
    add_dsn_option,
    median,
    new_amqp_prefix,
    print_environment,
    say,
)
from benchmarks.limited import BUCKET_LIMIT, CLASS_LIMIT
from lzq import Client

JOB = "benchmarks.limited.Limited"

# Most runs in progress at once (runs end before their slot is released, so no tie handling needed),
# and the time integral of the number in progress.
_CONCURRENCY = """
    WITH runs AS (
        SELECT * FROM bench_runs WHERE %(bucket)s::text IS NULL OR bucket = %(bucket)s
    ), events AS (
        SELECT started_at AS at, 1 AS delta FROM runs UNION ALL SELECT finished_at, -1 FROM runs
    ), timeline AS (
        SELECT at, sum(delta) OVER (ORDER BY at, delta) AS running,
               lead(at) OVER (ORDER BY at, delta) AS next_at
          FROM events
    )
    SELECT max(running),
           sum(running * extract(epoch FROM next_at - at)) / extract(epoch FROM max(at) - min(at))
      FROM timeline"""


def run_once(args: argparse.Namespace, index: int) -> dict[str, float]:
    prefix = new_amqp_prefix()
    with ScratchDatabase(args.dsn) as scratch, scratch.connect() as conn:
        conn.execute(
            """CREATE TABLE bench_runs (run_id bigserial PRIMARY KEY, job_id bigint, bucket text,
               started_at timestamptz NOT NULL DEFAULT clock_timestamp(), finished_at timestamptz)"""
        )
        with Client(dsn=scratch.dsn) as client:
            client.queue_mode("default", args.queue_mode)
            client.push_many(
                [
                    (
                        JOB,
                        {"bucket": "abc"[i % 3], "sleep_s": args.sleep_s},
                        {"depends_on": ["#is_ready_to_run"]},
                    )
                    for i in range(args.jobs)
                ]
            )
        with Daemons(scratch.dsn, prefix, app="benchmarks.limited") as daemons:
            daemons.start_superqueuer()
            daemons.start_superqueuer()
            daemons.start_worker(6)
            daemons.start_worker(6)
            deadline = time.monotonic() + args.timeout_s
            while (
                conn.execute("SELECT count(*) FROM lzq_jobs WHERE status = 'succeeded'").fetchone()[0]
                < args.jobs
            ):
                if time.monotonic() > deadline or daemons.dead():
                    statuses = conn.execute("SELECT status, count(*) FROM lzq_jobs GROUP BY 1").fetchall()
                    say(f"!!! not finished: {statuses}")
                    return {}
                time.sleep(0.2)
            codes = daemons.stop()
        overall_max, overall_avg = conn.execute(_CONCURRENCY, {"bucket": None}).fetchone()
        bucket_max = max(conn.execute(_CONCURRENCY, {"bucket": b}).fetchone()[0] for b in "abc")
        runs = conn.execute("SELECT count(*), count(DISTINCT job_id) FROM bench_runs").fetchone()
    result = {
        "overall_max": overall_max,
        "bucket_max": bucket_max,
        "utilisation": float(overall_avg) / CLASS_LIMIT,
    }
    say(
        f"  run {index}: max in progress overall {overall_max} (limit {CLASS_LIMIT}), "
        f"per bucket {bucket_max} (limit {BUCKET_LIMIT}); "
        f"utilisation of the overall limit {result['utilisation']:.1%}; "
        f"{runs[0]} runs of {runs[1]} jobs; daemon exits {sorted(set(codes.values()))}"
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--sleep-s", type=float, default=0.1, help="How long each job runs.")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout-s", type=float, default=300)
    parser.add_argument("--queue-mode", choices=["fair", "priority", "fifo"], default="fair")
    add_dsn_option(parser)
    parser.add_argument("--smoke", action="store_true", help="30 jobs, 1 run.")
    args = parser.parse_args(argv)
    if args.smoke:
        args.jobs, args.runs = 30, 1
    print_environment(args.dsn)
    say(
        f"limits: {args.jobs} jobs of {args.sleep_s} s, limit_to({BUCKET_LIMIT}, bucket) + "
        f"limit_to({CLASS_LIMIT}); 2 superqueuers, 2 workers x 6 slots"
    )
    results = [run_once(args, i + 1) for i in range(args.runs)]
    if not all(results):
        return 1
    over = [r for r in results if r["overall_max"] > CLASS_LIMIT or r["bucket_max"] > BUCKET_LIMIT]
    utilisations = [r["utilisation"] for r in results]
    say(
        f"limits: max in progress overall {max(r['overall_max'] for r in results)}/{CLASS_LIMIT}, "
        f"per bucket {max(r['bucket_max'] for r in results)}/{BUCKET_LIMIT}; "
        f"utilisation median {median(utilisations):.1%} (runs: {', '.join(f'{u:.1%}' for u in utilisations)})"
    )
    if over:
        say("!!! a limit was exceeded")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
