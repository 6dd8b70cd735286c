"""Backlog: what one ``lzq_assign`` and one ``lzq_push`` cost as the ready backlog and the flows grow.

    python benchmarks/backlog.py                         # 10k/100k/1M ready x 10/1000/100000 flows (~4 min)
    python benchmarks/backlog.py --smoke                 # 10k ready, 10 flows, 1 run: a few seconds
    python benchmarks/backlog.py --backlogs 1000000 --flows 10 --batch 16 --runs 5

Per backlog size a fresh scratch database (all of them alive at once); per flow count each one's
table is emptied (TRUNCATE) and seeded with that many ready jobs, spread round-robin over the flows
(a flow is (queue_name, fairness_key, priority): distinct fairness keys ``k0``, ``k1``, ..., nice
levels 0, 5, -5, 10 in turn; with more flows than jobs every flow holds one job). Seeding is
``INSERT ... SELECT`` in chunks with the real ``_lzq_stamp_ready`` trigger stamping every row
(``--seed push_many``: through ``lzq_push_many``, slower), then every tag is checked (the k-th job
of a flow must carry k x ``_lzq_cost(priority)``), then ``VACUUM ANALYZE``.

Claims: one worker with ``max(--batch)`` slots and an inbox; ``SELECT * FROM lzq_assign(batch, 0,
30)`` (the superqueuer's claim) in autocommit (one transaction each, commit included: the session has
``synchronous_commit = off`` as the superqueuer's, and lzq_assign makes its own commit durable),
timed as a client round trip. Between claims, untimed, one transaction marks the
claimed jobs succeeded and pushes one new job into each claimed job's flow, so the backlog and every
flow's depth stay constant (a producer keeping up with the workers). Each run of a cell starts with
a ``VACUUM`` (autovacuum may be off on the server; each run then starts from the same state), then
``--warmup`` claims, then ``--claims`` timed ones. Backlog sizes take turns run by run, so the
cells a ratio compares ran minutes apart at most. The server-side mean comes from
``pg_stat_user_functions`` (``track_functions = 'all'`` on the scratch database). An instrumented
claim after the warm-up and another after the run report how many buffers the pick's scan of the
dispatch index touched: it grows run-long when the index entries of claimed jobs are not marked
dead (see README). ``--vacuum threshold`` also VACUUMs (untimed) whenever the dead rows reach
autovacuum's trigger for lzq_jobs, as an autovacuum that is never late would.

Pushes: ``--pushes`` single ``lzq_push`` calls, each into a random existing flow (the trigger reads
that flow's last tag from ``lzq_jobs_flow_hashed_idx``), timed the same way.

Then, for the largest backlog, the plans (EXPLAIN ANALYZE, BUFFERS via auto_explain with nested
statements) of the claim's pick right after a VACUUM and of the push's tail lookup.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import random
import re
import sys
import time
from pathlib import Path

import psycopg

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (  # noqa: E402
    ScratchDatabase,
    add_dsn_option,
    maintenance_conninfo,
    median,
    percentile,
    print_environment,
    say,
    server_settings,
)

#: Nice levels given to flows in turn: flow i has NICE[i % len(NICE)].
NICE = (0, 5, -5, 10)
QUEUE = "default"
WORKER = "bench-backlog-worker"
#: Dead row versions each claimed job leaves here: its ready version (assignment) and its running
#: one (settle), as through real workers (ready -> running -> final).
DEAD_PER_JOB = 2
CLAIM_SQL = "SELECT * FROM lzq_assign(%s, 0, 30)"  # max_jobs, margin, dead_after_s
#: The function whose server time pg_stat_user_functions reports (lzq_assign is its SQL wrapper).
CLAIM_FUNCTION = "_lzq_claim"
PUSH_SQL = "SELECT lzq_push('bench', %s, %s)"
#: Settings that decide plans and vacuum behaviour here (printed next to print_environment's).
EXTRA_SETTINGS = ("autovacuum", "work_mem", "effective_cache_size", "random_page_cost", "jit")


class BenchmarkFailed(Exception):
    """Wrong results (a claim took the wrong number of jobs, seeded tags disagree), not slow ones."""


@dataclasses.dataclass
class Timings:
    """One cell (backlog, flows, batch or push): per-run medians, every sample, server means (ms)."""

    run_medians: list[float] = dataclasses.field(default_factory=list)
    samples: list[float] = dataclasses.field(default_factory=list)
    server_means: list[float] = dataclasses.field(default_factory=list)
    #: Claims only: shared buffers the pick's dispatch-index scan touched, probed after each run.
    pick_buffers: list[int] = dataclasses.field(default_factory=list)

    def add_run(
        self, samples_ms: list[float], server_ms: float | None, pick_buffers: int | None = None
    ) -> None:
        self.run_medians.append(median(samples_ms))
        self.samples.extend(samples_ms)
        if server_ms is not None:
            self.server_means.append(server_ms)
        if pick_buffers is not None:
            self.pick_buffers.append(pick_buffers)

    @property
    def median(self) -> float:
        return median(self.run_medians)

    @property
    def p90(self) -> float:
        return percentile(self.samples, 0.9)

    @property
    def server(self) -> float:
        return median(self.server_means)


# -- seeding ---------------------------------------------------------------------------------------


def flow_columns(g: str, flows: int) -> str:
    """SQL for (fairness_key, priority) of job number ``g``: flow g % flows, round-robin (``%`` doubled:
    the text goes through psycopg's placeholders)."""
    nice = ", ".join(map(str, NICE))
    return f"'k' || ({g} %% {flows}), ((ARRAY[{nice}])[({g} %% {flows}) %% {len(NICE)} + 1])::smallint"


def seed(conn: psycopg.Connection, backlog: int, flows: int, mode: str, chunk: int) -> None:
    """Empty lzq_jobs and the queue clocks, then ``backlog`` ready jobs over ``flows`` flows."""
    conn.execute("TRUNCATE lzq_jobs CASCADE")
    conn.execute("DELETE FROM lzq_queues")
    for first in range(0, backlog, chunk):
        count = min(chunk, backlog - first)
        if mode == "push_many":
            jobs = [
                {
                    "job_name": "bench",
                    "job_params": {"n": g},
                    "job_options": {
                        "queue_name": QUEUE,
                        "fairness_key": f"k{g % flows}",
                        "priority": flow_nice(g % flows),
                    },
                }
                for g in range(first, first + count)
            ]
            conn.execute("SELECT count(*) FROM lzq_push_many(%s)", (json.dumps(jobs),))
        else:  # one INSERT per chunk; the BEFORE INSERT trigger stamps each row as it does for a push
            conn.execute(
                f"INSERT INTO lzq_jobs (job_name, params, queue_name, fairness_key, priority, status) "
                f"SELECT 'bench', jsonb_build_object('n', g), %s, {flow_columns('g', flows)}, 'ready' "
                f"FROM generate_series(%s::bigint, %s::bigint) AS g",
                (QUEUE, first, first + count - 1),
            )


def flow_nice(flow: int) -> int:
    return NICE[flow % len(NICE)]


def verify_seed(conn: psycopg.Connection, backlog: int) -> None:
    """Fair tags of a queue whose clock is 0: the k-th job of a flow (in id order) has k x cost."""
    ready, wrong = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE vtag IS DISTINCT FROM k * _lzq_cost(priority)) "
        "FROM (SELECT vtag, priority, row_number() OVER (PARTITION BY queue_name, fairness_key, priority "
        "ORDER BY id) AS k FROM lzq_jobs WHERE status = 'ready') AS s"
    ).fetchone()
    if ready != backlog or wrong:
        raise BenchmarkFailed(f"seed: {ready} ready jobs (expected {backlog}), {wrong} with a wrong vtag")


def relation_sizes(conn: psycopg.Connection) -> str:
    """Heap and the claim/push indexes: size and B-tree height (if pageinspect is available)."""
    parts = []
    levels = {}
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
        for name in ("lzq_jobs_dispatch_idx", "lzq_jobs_flow_hashed_idx", "lzq_jobs_pkey"):
            levels[name] = conn.execute("SELECT level FROM bt_metap(%s)", (name,)).fetchone()[0]
    except psycopg.Error:
        pass
    for name in ("lzq_jobs", "lzq_jobs_dispatch_idx", "lzq_jobs_flow_hashed_idx", "lzq_jobs_pkey"):
        size = conn.execute("SELECT pg_size_pretty(pg_relation_size(%s::regclass))", (name,)).fetchone()[0]
        height = f", {levels[name] + 1} levels" if name in levels else ""
        parts.append(f"{name} {size}{height}")
    return "; ".join(parts)


# -- measuring -------------------------------------------------------------------------------------


def function_ms(conn: psycopg.Connection, name: str) -> tuple[int, float] | None:
    """(calls, total ms) of a SQL function so far, this session's pending counts flushed first
    (pg_stat_force_next_flush, PostgreSQL 15+); None when not tracked or not available."""
    try:
        conn.execute("SELECT pg_stat_force_next_flush()")  # flushed when the session goes idle
        row = conn.execute(
            "SELECT coalesce(sum(calls), 0), coalesce(sum(total_time), 0) FROM pg_stat_user_functions "
            "WHERE funcname = %s",
            (name,),
        ).fetchone()
    except psycopg.errors.UndefinedFunction:
        return None
    return int(row[0]), float(row[1])


def server_mean(
    before: tuple[int, float] | None, after: tuple[int, float] | None, calls: int
) -> float | None:
    if before is None or after is None or after[0] - before[0] != calls:
        return None  # not tracked, or the counters did not flush in time
    return (after[1] - before[1]) / calls


def settle(conn: psycopg.Connection, ids: list[int]) -> None:
    """Untimed, one transaction: the claimed jobs succeed (credit comes back) and each one's flow gets
    a new ready job (the trigger stamps it), so the backlog and every flow's depth stay the same."""
    with conn.transaction():
        done = conn.execute(
            "UPDATE lzq_jobs SET status = 'succeeded', worker_id = %s, attempts = 1, started_at = now(), "
            "finished_at = now() WHERE id = ANY (%s) AND status = 'running'",
            (WORKER, ids),
        ).rowcount
        if done != len(ids):
            raise BenchmarkFailed(f"{len(ids)} claimed jobs, {done} of them assigned")
        conn.execute(
            "INSERT INTO lzq_jobs (job_name, params, queue_name, fairness_key, priority, status) "
            "SELECT 'bench', '{\"n\": 0}', j.queue_name, j.fairness_key, j.priority, 'ready' "
            "FROM lzq_jobs AS j WHERE j.id = ANY (%s) ORDER BY j.id",
            (ids,),
        )
        conn.execute("UPDATE lzq_workers SET heartbeat_at = now() WHERE worker_id = %s", (WORKER,))


def register_worker(conn: psycopg.Connection, slots: int) -> None:
    conn.execute("DELETE FROM lzq_workers")
    conn.execute("SELECT lzq_heartbeat(%s, 'bench', 0, %s, %s)", (WORKER, [QUEUE], slots))
    conn.execute("SELECT lzq_worker_inbox(%s, 'bench-inbox')", (WORKER,))


def claim_once(conn: psycopg.Connection, batch: int) -> tuple[float, list[int]]:
    started = time.perf_counter()
    rows = conn.execute(CLAIM_SQL, (batch,)).fetchall()
    elapsed_ms = (time.perf_counter() - started) * 1000
    if len(rows) != batch:
        raise BenchmarkFailed(f"lzq_assign({batch}) took {len(rows)} jobs")
    return elapsed_ms, [row[0] for row in rows]


@dataclasses.dataclass
class ClaimRun:
    samples: list[float]
    server_ms: float | None
    #: (rows, shared buffers) of the pick's dispatch-index scan in an instrumented claim after the
    #: warm-up and after the timed claims; None without auto_explain.
    probe_start: tuple[int, int] | None
    probe_end: tuple[int, int] | None
    #: The oldest transaction id held open in the whole cluster when the run ended: (age in xids, s).
    oldest_xid: tuple[int, float]
    #: The VACUUM before the run: (dead rows removed, dead rows not yet removable); None if unparsed.
    vacuumed: tuple[int, int, bool] | None
    #: VACUUMs during the timed claims (``--vacuum threshold``), and how many skipped the indexes.
    vacuums: int
    bypassed: int


def measure_claims(scratch: ScratchDatabase, batch: int, args: argparse.Namespace) -> ClaimRun:
    """One run: VACUUM, warm-up claims, then ``--claims`` timed ones (ms each) and the server mean.

    Probes (untimed, a second session, auto_explain) before and after the timed claims show how much
    of the dispatch index the pick walks: its live batch plus the entries of jobs claimed since the
    VACUUM, as long as they are not marked dead in the index.
    """
    with scratch.connect() as conn, scratch.connect() as probe_conn:
        register_worker(conn, max(args.batch))  # also a fresh heartbeat: seeding may outlast dead_after_s
        vacuumed = vacuum(conn)
        threshold = autovacuum_threshold(conn) if args.vacuum == "threshold" else None
        vacuums = bypassed = 0
        dead = 0
        for session in (conn, probe_conn):
            session.execute("SET synchronous_commit = off")  # as the superqueuer's session
        for _ in range(args.warmup):
            _, ids = claim_once(conn, batch)
            settle(conn, ids)
            dead += DEAD_PER_JOB * batch
        probe_start = probe_pick(probe_conn, batch)
        function_ms(probe_conn, CLAIM_FUNCTION)  # flush the probe's call now, not inside the timed window
        dead += DEAD_PER_JOB * batch
        before = function_ms(conn, CLAIM_FUNCTION)
        samples = []
        for _ in range(args.claims):
            elapsed_ms, ids = claim_once(conn, batch)
            samples.append(elapsed_ms)
            settle(conn, ids)
            dead += DEAD_PER_JOB * batch
            if threshold is not None and dead > threshold:
                outcome = vacuum(conn, "AUTO")  # untimed: an autovacuum that is never late
                vacuums, dead = vacuums + 1, 0
                bypassed += bool(outcome and outcome[2])
        after = function_ms(conn, CLAIM_FUNCTION)
        probe_end = probe_pick(probe_conn, batch)
        oldest = conn.execute(
            "SELECT coalesce(max(age(backend_xid)), 0), "
            "coalesce(extract(epoch FROM max(now() - xact_start) FILTER (WHERE backend_xid IS NOT NULL)), 0) "
            "FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
        ).fetchone()
    return ClaimRun(
        samples,
        server_mean(before, after, args.claims),
        probe_start,
        probe_end,
        (int(oldest[0]), float(oldest[1])),
        vacuumed,
        vacuums,
        bypassed,
    )


def autovacuum_threshold(conn: psycopg.Connection) -> float:
    """Dead rows at which autovacuum would vacuum lzq_jobs now: its threshold + scale factor x
    reltuples (the table's own settings, else the server's)."""
    return conn.execute(
        "SELECT coalesce(o.threshold, current_setting('autovacuum_vacuum_threshold')::float8) "
        "+ coalesce(o.scale, current_setting('autovacuum_vacuum_scale_factor')::float8) "
        "* greatest(c.reltuples, 0) "
        "FROM pg_class AS c, LATERAL (SELECT "
        "max(option_value::float8) FILTER (WHERE option_name = 'autovacuum_vacuum_threshold') AS threshold, "
        "max(option_value::float8) FILTER (WHERE option_name = 'autovacuum_vacuum_scale_factor') AS scale "
        "FROM pg_options_to_table(c.reloptions)) AS o WHERE c.oid = 'lzq_jobs'::regclass"
    ).fetchone()[0]


def vacuum(conn: psycopg.Connection, index_cleanup: str = "ON") -> tuple[int, int, bool] | None:
    """VACUUM lzq_jobs; (dead rows removed, dead rows not yet removable, index vacuuming bypassed)
    from its VERBOSE report, None if that did not parse.

    Rows stay "not yet removable" while a session of this database holds an older snapshot. With
    ``index_cleanup`` AUTO (what autovacuum does) VACUUM skips the indexes when fewer than 2% of the
    table's pages hold dead items, leaving the dispatch index's dead entries in place; ON (before
    each run) removes them, so every run starts from the same state."""
    messages: list[str] = []

    def collect(diag: psycopg.errors.Diagnostic) -> None:
        messages.append(diag.message_primary or "")

    conn.add_notice_handler(collect)
    try:
        conn.execute(f"VACUUM (VERBOSE, INDEX_CLEANUP {index_cleanup}) lzq_jobs")
    finally:
        conn.remove_notice_handler(collect)
    report = "\n".join(messages)
    match = re.search(r"tuples: (\d+) removed, \d+ remain, (\d+) are dead but not yet removable", report)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), "index scan bypassed" in report.split("pg_toast")[0]


def probe_pick(conn: psycopg.Connection, batch: int) -> tuple[int, int] | None:
    """One instrumented claim (then settled): (rows, shared buffers) of its dispatch-index scan."""
    try:
        rows, plans = nested_plans(conn, CLAIM_SQL, (batch,))
    except psycopg.errors.InsufficientPrivilege:
        return None
    settle(conn, [row[0] for row in rows])
    pick = next((p for p in plans if "lzq_jobs_dispatch_idx" in p), "")
    return index_scan_stats(pick, "lzq_jobs_dispatch_idx")


def index_scan_stats(plan: str, index: str) -> tuple[int, int] | None:
    """(actual rows, shared buffers hit + read) of the scan of ``index`` in an auto_explain plan."""
    match = re.search(
        rf"Scan using {index} .*?\(actual .*?rows=(\d+).*?\n(?:.*\n)*?\s*Buffers: shared ((?:\w+=\d+ ?)+)",
        plan,
    )
    if not match:
        return None
    counts = dict(part.split("=") for part in match.group(2).split())
    return int(match.group(1)), int(counts.get("hit", 0)) + int(counts.get("read", 0))


def measure_pushes(
    scratch: ScratchDatabase, active_flows: int, args: argparse.Namespace, rng: random.Random
) -> tuple[list[float], float | None]:
    """One run: ``--pushes`` single lzq_push calls, each into a random flow that holds jobs."""
    with scratch.connect() as conn:
        conn.execute("SET synchronous_commit = off")  # the lookup, not the WAL flush, is what grows
        for _ in range(5):  # plan cache and connection warm-up
            conn.execute(PUSH_SQL, ('{"n": 0}', push_options(rng.randrange(active_flows))))
        before = function_ms(conn, "lzq_push")
        samples = []
        for _ in range(args.pushes):
            options = push_options(rng.randrange(active_flows))
            started = time.perf_counter()
            conn.execute(PUSH_SQL, ('{"n": 0}', options)).fetchone()
            samples.append((time.perf_counter() - started) * 1000)
        after = function_ms(conn, "lzq_push")
    return samples, server_mean(before, after, args.pushes)


def push_options(flow: int) -> str:
    return json.dumps({"queue_name": QUEUE, "fairness_key": f"k{flow}", "priority": flow_nice(flow)})


# -- plans -----------------------------------------------------------------------------------------


def nested_plans(conn: psycopg.Connection, statement: str, params: object) -> tuple[list, list[str]]:
    """Run ``statement`` with auto_explain (ANALYZE, BUFFERS, nested statements) reporting every
    plan as a NOTICE, as tests/sql/test_plans.py does; returns (rows, plans)."""
    notices: list[str] = []

    def collect(diag: psycopg.errors.Diagnostic) -> None:
        notices.append(diag.message_primary or "")

    conn.add_notice_handler(collect)
    conn.execute("LOAD 'auto_explain'")
    for setting in ("log_analyze", "log_buffers", "log_nested_statements", "log_timing"):
        conn.execute(f"SET auto_explain.{setting} = on")
    conn.execute("SET auto_explain.log_level = 'notice'")
    conn.execute("SET auto_explain.log_min_duration = 0")
    try:
        rows = conn.execute(statement, params).fetchall()
    finally:
        conn.execute("SET auto_explain.log_min_duration = -1")
        conn.remove_notice_handler(collect)
    return rows, notices


def show_plans(scratch: ScratchDatabase, batch: int, flows: int, active_flows: int) -> None:
    """The claim's pick and the push's flow-tail lookup, as executed inside the functions."""
    try:
        with scratch.connect() as conn:
            register_worker(conn, batch)
            vacuum(conn)  # the plan of a claim right after a VACUUM; the run lines show later ones
            conn.execute("SET synchronous_commit = off")
            rows, plans = nested_plans(conn, CLAIM_SQL, (batch,))
            settle(conn, [row[0] for row in rows])
            pick = next((p for p in plans if "lzq_jobs_dispatch_idx" in p), None)
            say(f"  plan of lzq_assign({batch})'s pick ({flows} flows), right after a VACUUM:")
            say(indent(pick) if pick else "    (no plan mentions lzq_jobs_dispatch_idx)")
            stats = index_scan_stats(pick or "", "lzq_jobs_dispatch_idx")
            if stats:
                say(f"    -> dispatch index scan: {stats[0]} rows for a batch of {batch}, {stats[1]} buffers")
            _, plans = nested_plans(conn, PUSH_SQL, ('{"n": 0}', push_options(active_flows // 2)))
            tail = next((p for p in plans if "lzq_jobs_flow_hashed_idx" in p), None)
            say(f"  plan of lzq_push's flow-tail lookup (flow k{active_flows // 2}):")
            say(indent(tail) if tail else "    (no plan mentions lzq_jobs_flow_hashed_idx)")
    except psycopg.errors.InsufficientPrivilege as exc:
        say(f"  plans: auto_explain not available ({exc})")


def indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


# -- driver ----------------------------------------------------------------------------------------


def run_all(args: argparse.Namespace, claims: dict, pushes: dict, rng: random.Random) -> None:
    """A fresh database per backlog size, all alive at once; per flow count each is re-seeded, then
    the sizes take turns claim run by claim run, so a ratio compares runs minutes apart at most
    (on a shared server the conditions drift: load, other sessions' open transactions).

    If the server goes away (someone restarts it), the flow count under way is measured again from
    its seeding, after the server is back (``--retries`` times)."""
    backlogs = sorted(args.backlogs)
    with contextlib.ExitStack() as stack:
        dbs = {b: stack.enter_context(ScratchDatabase(args.dsn, suffix=f"_{b}")) for b in backlogs}
        if not all([db.track_functions() for db in dbs.values()]):
            say("  (track_functions not allowed: no server-side times)")
        for flows in args.flows:
            for attempt in range(args.retries + 1):
                flow_claims: dict = {}
                flow_pushes: dict = {}
                try:
                    measure_flows(dbs, flows, args, rng, flow_claims, flow_pushes)
                except psycopg.OperationalError as exc:
                    if attempt == args.retries:
                        raise
                    say(f"!!! lost the server ({str(exc).strip().splitlines()[0]}); {flows} flows again")
                    wait_for_server(dbs[backlogs[0]].maintenance_dsn)
                    continue
                claims.update(flow_claims)
                pushes.update(flow_pushes)
                break


def wait_for_server(dsn: str, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with psycopg.connect(dsn, connect_timeout=5) as conn:
                conn.execute("SELECT 1")
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def measure_flows(
    dbs: dict[int, ScratchDatabase],
    flows: int,
    args: argparse.Namespace,
    rng: random.Random,
    claims: dict,
    pushes: dict,
) -> None:
    """Seed every backlog size with ``flows`` flows, then the claim and push runs, then the plans."""
    for backlog, scratch in dbs.items():
        with scratch.connect() as conn:
            started = time.perf_counter()
            seed(conn, backlog, flows, args.seed, args.seed_chunk)
            seeded_s = time.perf_counter() - started
            verify_seed(conn, backlog)
            conn.execute("VACUUM ANALYZE lzq_jobs")
            say(
                f"backlog {backlog}, {flows} flows ({min(flows, backlog)} with jobs): seeded in "
                f"{seeded_s:.1f} s ({args.seed}, tags verified); {relation_sizes(conn)}"
            )
    for run in range(1, args.runs + 1):
        for batch in args.batch:
            for backlog, scratch in dbs.items():
                result = measure_claims(scratch, batch, args)
                claims.setdefault((backlog, flows, batch), Timings()).add_run(
                    result.samples, result.server_ms, result.probe_end[1] if result.probe_end else None
                )
                say(f"  run {run}: {backlog} ready, {flows} flows, claim {batch}: {describe_claims(result)}")
        for backlog, scratch in dbs.items():
            samples, server_ms = measure_pushes(scratch, min(flows, backlog), args, rng)
            pushes.setdefault((backlog, flows), Timings()).add_run(samples, server_ms)
            server = f", server {server_ms:.3f} ms" if server_ms is not None else ""
            say(
                f"  run {run}: {backlog} ready, {flows} flows, push: median "
                f"{median(samples):.3f} ms, p90 {percentile(samples, 0.9):.3f} ms{server}"
            )
    top = max(dbs)
    show_plans(dbs[top], max(args.batch), flows, min(flows, top))


def describe_claims(result: ClaimRun) -> str:
    quarter = max(1, len(result.samples) // 4)
    parts = [
        f"median {median(result.samples):.3f} ms (first quarter {median(result.samples[:quarter]):.3f}, "
        f"last {median(result.samples[-quarter:]):.3f})",
        f"p90 {percentile(result.samples, 0.9):.3f} ms",
    ]
    if result.server_ms is not None:
        parts.append(f"server {result.server_ms:.3f} ms")
    if result.probe_start and result.probe_end:
        parts.append(
            f"pick's index scan {result.probe_start[1]} -> {result.probe_end[1]} buffers for "
            f"{result.probe_end[0]} rows (after the warm-up -> after the run)"
        )
    if result.vacuums:
        parts.append(f"{result.vacuums} VACUUMs during the run ({result.bypassed} skipped the indexes)")
    if result.vacuumed:
        parts.append(
            f"VACUUM before: {result.vacuumed[0]} dead removed, {result.vacuumed[1]} not yet removable"
        )
    parts.append(f"oldest open xid in the cluster: age {result.oldest_xid[0]}, {result.oldest_xid[1]:.0f} s")
    return ", ".join(parts)


def geometric_mean(values: list[float]) -> float:
    values = [v for v in values if v == v and v > 0]  # no nan (server times not tracked)
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def ratio(value: float, base: float | None) -> str:
    return f"{value / base:.2f}x" if base else "-"


HEADER = f"{'backlog':>9} {'flows':>7} {'active':>7} {'batch':>5} {'median':>8} {'p90':>8} {'server':>8}"


def report(args: argparse.Namespace, claims: dict, pushes: dict) -> tuple[float, float]:
    """The tables; returns the worst claim and push ratios of the largest backlog to the smallest."""
    base_backlog, top = min(args.backlogs), max(args.backlogs)
    say("")
    say(
        f"claim latency, ms: client round trip of SELECT * FROM lzq_assign(batch) in autocommit; median of "
        f"{args.runs} run medians ({args.claims} claims each), p90 of all claims; server = _lzq_claim's own "
        f"mean (pg_stat_user_functions); bufs = the pick's dispatch-index scan after a run (median); "
        f"ratio = median / the {base_backlog}-ready cell with the same flows and batch"
    )
    say(f"{HEADER} {'us/job':>7} {'bufs':>6} {'ratio':>6}")
    worst_claim = 0.0
    for (backlog, flows, batch), t in sorted(claims.items(), key=lambda kv: (kv[0][2], kv[0][1], kv[0][0])):
        base = claims.get((base_backlog, flows, batch))
        say(
            f"{row_start(backlog, flows, batch, t)} {t.median * 1000 / batch:>7.1f} "
            f"{median(t.pick_buffers):>6.0f} {ratio(t.median, base.median if base else None):>6}"
        )
        if backlog == top and base and top != base_backlog:
            worst_claim = max(worst_claim, t.median / base.median)
    say("")
    say(f"push latency, ms: one lzq_push into an existing flow, {args.pushes} per run; columns as above")
    say(f"{HEADER} {'ratio':>6}")
    worst_push = 0.0
    for (backlog, flows), t in sorted(pushes.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        base = pushes.get((base_backlog, flows))
        say(f"{row_start(backlog, flows, None, t)} {ratio(t.median, base.median if base else None):>6}")
        if backlog == top and base and top != base_backlog:
            worst_push = max(worst_push, t.median / base.median)
    return worst_claim, worst_push


def row_start(backlog: int, flows: int, batch: int | None, t: Timings) -> str:
    return (
        f"{backlog:>9} {flows:>7} {min(flows, backlog):>7} {batch or '':>5} {t.median:>8.3f} "
        f"{t.p90:>8.3f} {t.server:>8.3f}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )

    def ints(text: str) -> list[int]:
        return [int(part.replace("_", "")) for part in text.split(",") if part]

    parser.add_argument(
        "--backlogs",
        type=ints,
        default=[10_000, 100_000, 1_000_000],
        help="ready jobs (default 10000,100000,1000000)",
    )
    parser.add_argument(
        "--flows", type=ints, default=[10, 1000, 100_000], help="flows (default 10,1000,100000)"
    )
    parser.add_argument("--batch", type=ints, default=[16, 100], help="max_jobs per claim (default 16,100)")
    parser.add_argument("--runs", type=int, default=3, help="runs per cell, median reported (default 3)")
    parser.add_argument("--claims", type=int, default=200, help="timed claims per run (default 200)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed claims before each run (default 10)")
    parser.add_argument("--pushes", type=int, default=200, help="timed pushes per run (default 200)")
    parser.add_argument(
        "--seed",
        choices=("insert", "push_many"),
        default="insert",
        help="insert: INSERT ... SELECT, the trigger stamps each row (default); push_many: the SQL API",
    )
    parser.add_argument(
        "--seed-chunk", type=int, default=10_000, help="jobs per seeding statement (default 10000)"
    )
    parser.add_argument(
        "--vacuum",
        choices=("run", "threshold"),
        default="run",
        help="run: VACUUM before each run only (default); threshold: also whenever the dead rows since "
        "the last one reach autovacuum's trigger for lzq_jobs (threshold + scale factor x reltuples)",
    )
    parser.add_argument(
        "--retries", type=int, default=3, help="re-measure a flow count after losing the server (default 3)"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="10000 ready, 10 flows, 1 run, 30 claims: seconds"
    )
    add_dsn_option(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.backlogs, args.flows, args.runs, args.claims, args.pushes, args.warmup = (
            [10_000],
            [10],
            1,
            30,
            30,
            3,
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print_environment(args.dsn)
    extra = server_settings(maintenance_conninfo(args.dsn), EXTRA_SETTINGS)
    say("postgresql (plans, vacuum): " + ", ".join(f"{k}={v}" for k, v in extra.items()))
    say(
        f"backlog: {args.backlogs} ready x {args.flows} flows, batches {args.batch}, {args.runs} run(s) of "
        f"{args.claims} claims and {args.pushes} pushes, nice levels {list(NICE)}, seed {args.seed}"
    )
    claims: dict = {}
    pushes: dict = {}
    rng = random.Random(7)
    started = time.perf_counter()
    try:
        run_all(args, claims, pushes, rng)
    except BenchmarkFailed as exc:
        say(f"!!! FAILED: {exc}")
        return 1
    worst_claim, worst_push = report(args, claims, pushes)
    top, base = max(args.backlogs), min(args.backlogs)
    say("")
    if top != base:
        verdict = "met" if worst_claim <= 1.2 else "MISSED"
        client, server = (
            geometric_mean(
                [
                    getattr(t, field) / getattr(claims[(base, f, b)], field)
                    for (n, f, b), t in claims.items()
                    if n == top
                ]
            )
            for field in ("median", "server")
        )
        say(
            f"backlog: claim at {top} ready is at most {worst_claim:.2f}x the {base}-ready claim over all "
            f"flows and batches (target <= 1.2x: {verdict}; geometric mean {client:.2f}x, server-side "
            f"{server:.2f}x); push at most {worst_push:.2f}x; total {time.perf_counter() - started:.0f} s"
        )
    else:
        say(f"backlog: one backlog size ({top}), no ratios; total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
