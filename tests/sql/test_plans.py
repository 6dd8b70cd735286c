"""Plan guard: over a large seeded backlog, the hot functions read lzq_jobs only through indexes.

auto_explain (nested statements, plans as NOTICEs) shows the plan of every statement inside the
PL/pgSQL functions; a sequential scan of lzq_jobs on a hot path would make every claim, start or
finish cost O(table), which is how queue tables fall over at scale.
"""

from __future__ import annotations

import re

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.sql.helpers import explained

# Mid-sized on purpose: at a few tens of thousands of rows a hash join over a sequential scan looks
# cheap to the planner, and that is where a statement without a usable index shows it.
BACKLOG = 10_000


@pytest.fixture
def seeded(conn: psycopg.Connection) -> psycopg.Connection:
    # Statistics from when the table was small, as after a quiet night: the planner must still not
    # choose a sequential scan once the table has grown (autovacuum's ANALYZE lags behind a burst).
    conn.execute(f"""
        ANALYZE lzq_jobs;
        INSERT INTO lzq_jobs (job_name, fairness_key, queue_name, status, run_at, finished_at)
        SELECT 'old', 'old', 'default', 'succeeded', now(), now() FROM generate_series(1, {BACKLOG});
        INSERT INTO lzq_jobs (job_name, fairness_key, queue_name, priority, status)
        SELECT 'backlog', 'backlog', CASE WHEN g % 2 = 0 THEN 'default' ELSE 'other' END, g % 5, 'ready'
          FROM generate_series(1, {BACKLOG}) AS g;
        INSERT INTO lzq_jobs (job_name, fairness_key, status, run_at)
        SELECT 'later', 'later', 'scheduled', now() + interval '1 hour'
          FROM generate_series(1, {BACKLOG // 10});""")
    conn.execute("SELECT lzq_heartbeat('w1', 'h', 1, '{default,other}', 16)")
    conn.execute("SELECT lzq_worker_inbox('w1', 'inbox-w1')")
    return conn


def _no_seq_scan_of_jobs(plans: list[str]) -> None:
    offending = [p for p in plans if "Seq Scan on lzq_jobs" in p]
    assert not offending, "sequential scan of lzq_jobs:\n" + "\n---\n".join(offending)


def test_assign_and_finish_use_indexes_only(seeded):
    assigned, plans = explained(seeded, "SELECT id, attempt FROM lzq_assign(500)")
    assert len(assigned) == 17  # 16 slots + 1 margin
    _no_seq_scan_of_jobs(plans)
    update = next(p for p in plans if p.startswith("duration") and "UPDATE lzq_jobs" in p and "running" in p)
    assert "lzq_jobs_pkey" in update  # the assigned rows by primary key, not by rescanning the ready index

    reports = Jsonb(
        [{"id": job_id, "attempt": attempt, "outcome": "succeeded"} for job_id, attempt in assigned]
    )
    finished, plans = explained(seeded, "SELECT * FROM lzq_finish('w1', %s)", (reports,))
    assert len(finished) == 17
    _no_seq_scan_of_jobs(plans)


def test_claim_start_finish_use_indexes_only(seeded):
    claimed, plans = explained(seeded, "SELECT * FROM lzq_claim(500)")
    assert len(claimed) == 17  # 16 slots + 1 margin
    _no_seq_scan_of_jobs(plans)
    update = next(
        p for p in plans if p.startswith("duration") and "UPDATE lzq_jobs" in p and "dispatched" in p
    )
    assert "lzq_jobs_pkey" in update  # the claimed rows by primary key, not by rescanning the ready index

    deliveries = Jsonb([{"id": i, "token": str(t)} for i, t, _ in claimed])
    started, plans = explained(seeded, "SELECT * FROM lzq_start('w1', %s)", (deliveries,))
    _no_seq_scan_of_jobs(plans)
    reports = Jsonb([{"id": row[0], "attempt": row[8], "outcome": "succeeded"} for row in started])
    _, plans = explained(seeded, "SELECT * FROM lzq_finish('w1', %s)", (reports,))
    _no_seq_scan_of_jobs(plans)


def test_assign_claim_start_finish_never_jit_compile(seeded):
    """Their statements run in well under a millisecond; compiling one with JIT takes tens (a generic
    plan over a big backlog costs past jit_above_cost: 20 ms per claim at 1M ready jobs). Here the
    session asks for JIT on every plan: the functions must still run theirs uncompiled."""
    seeded.execute("SET jit = on")
    seeded.execute("SET jit_above_cost = 0")
    _, plans = explained(seeded, "SELECT count(*) FROM lzq_jobs")
    if not any("JIT:" in p for p in plans):
        pytest.skip("this server has no JIT (llvmjit) to turn off")

    def nested(plans: list[str], call: str) -> list[str]:
        inner = [p for p in plans if call not in p]  # the call itself is the session's, JIT and all
        assert inner, f"auto_explain reported no statement inside {call}"
        return inner

    claimed, plans = explained(seeded, "SELECT * FROM lzq_claim(500)")
    deliveries = Jsonb([{"id": i, "token": str(t)} for i, t, _ in claimed])
    started, start_plans = explained(seeded, "SELECT * FROM lzq_start('w1', %s)", (deliveries,))
    reports = Jsonb([{"id": row[0], "attempt": row[8], "outcome": "succeeded"} for row in started])
    _, finish_plans = explained(seeded, "SELECT * FROM lzq_finish('w1', %s)", (reports,))
    seeded.execute("UPDATE lzq_jobs SET status = 'succeeded' WHERE status = 'running'")  # credit back
    _, assign_plans = explained(seeded, "SELECT id FROM lzq_assign(500)")
    compiled = [
        p
        for p in nested(plans, "lzq_claim(")
        + nested(start_plans, "lzq_start(")
        + nested(finish_plans, "lzq_finish(")
        + nested(assign_plans, "lzq_assign(")
        if "JIT:" in p
    ]
    assert not compiled, "JIT-compiled:\n" + "\n---\n".join(compiled)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT lzq_push('x', '{}', '{}')",
        "SELECT lzq_push('x', '{}', '{\"depends_on\": [1, 2]}')",
        'SELECT * FROM lzq_push_many(\'[{"job_name": "a"}, {"job_name": "b"}]\')',
        "SELECT * FROM lzq_promote(500)",
        "SELECT * FROM lzq_checks_due(100, 30)",
        "SELECT * FROM lzq_sweep(30)",
        "SELECT lzq_cancel(12000)",
        "SELECT * FROM lzq_handback(NULL, "
        '\'[{"id": 12001, "token": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}]\')',
    ],
)
def test_push_promote_sweep_cancel_use_indexes_only(seeded, sql):
    _, plans = explained(seeded, sql)
    assert plans, "auto_explain reported nothing"
    _no_seq_scan_of_jobs(plans)


def test_claim_reads_its_batch_and_a_push_one_flow_tail_whatever_the_backlog(seeded):
    """The fair order costs O(batch) per claim and O(log n) per push: the claim walks the dispatch
    index only as far as the batch it takes; a push reads its flow's last tag with one descent."""
    seeded.execute(f"""
        INSERT INTO lzq_jobs (job_name, fairness_key, queue_name, priority, status)
        SELECT 'tenant', 't' || (g % 1000), 'default', g % 3, 'ready' FROM generate_series(1, {BACKLOG}) AS g;
        """)  # no ANALYZE: statistics that missed the burst must not change the claim's plan
    seeded.execute("LOAD 'auto_explain'")
    seeded.execute("SET auto_explain.log_analyze = on")
    claimed, plans = explained(seeded, "SELECT * FROM lzq_claim(500)")
    assert len(claimed) == 17
    pick = next(p for p in plans if "lzq_jobs_dispatch_idx" in p)
    rows_read = [
        int(r) for r in re.findall(r"Index Scan using lzq_jobs_dispatch_idx .*?rows=\d+.*?rows=(\d+)", pick)
    ]
    assert rows_read and max(rows_read) <= 17, pick

    _, plans = explained(seeded, "SELECT lzq_push('tenant', '{}', '{\"fairness_key\": \"t7\"}')")
    tail = next(p for p in plans if "lzq_jobs_flow_hashed_idx" in p)
    assert re.search(r"Index Scan Backward using lzq_jobs_flow_hashed_idx .*actual .*rows=1 ", tail), tail
    _no_seq_scan_of_jobs(plans)
    # A batch reads each of its flows' tails the same way (_lzq_flow_tails, inlined).
    batch = '[{"job_name": "tenant", "job_options": {"fairness_key": "t7"}}, {"job_name": "tenant"}]'
    _, plans = explained(seeded, "SELECT count(*) FROM lzq_push_many(%s)", (batch,))
    tails = next(p for p in plans if "lzq_jobs_flow_hashed_idx" in p)
    assert re.search(r"Index Scan Backward using lzq_jobs_flow_hashed_idx .*actual .*loops=2", tails), tails
    _no_seq_scan_of_jobs(plans)


def test_start_and_finish_read_only_their_own_jobs_whatever_is_in_flight(seeded):
    """A start or finish of one job probes that job by primary key: it never reads the other jobs
    in flight (a hash of lzq_jobs_inflight_idx cost 1.3 ms per call at 1,000 in flight)."""
    seeded.execute("SELECT lzq_heartbeat('w2', 'h', 1, '{default,other}', 2000)")
    claimed = seeded.execute("SELECT id, dispatch_token FROM lzq_claim(1000)").fetchall()
    assert len(claimed) == 1000  # no ANALYZE since: statistics say nothing is in flight
    seeded.execute("LOAD 'auto_explain'")
    seeded.execute("SET auto_explain.log_analyze = on")

    job_id, token = claimed[0]
    deliveries = Jsonb([{"id": job_id, "token": str(token)}])
    [started], plans = explained(seeded, "SELECT * FROM lzq_start('w2', %s)", (deliveries,))
    reports = Jsonb([{"id": job_id, "attempt": started[8], "outcome": "succeeded"}])
    [finished], finish_plans = explained(seeded, "SELECT * FROM lzq_finish('w2', %s)", (reports,))

    assert finished == (job_id, "succeeded")
    for plan in plans + finish_plans:
        if plan.startswith("duration") and "lzq_jobs" in plan:
            assert "lzq_jobs_inflight_idx" not in plan, plan
            rows_read = [int(r) for r in re.findall(r"on lzq_jobs \w+ .*?actual .*?rows=(\d+)", plan)]
            assert max(rows_read, default=0) <= 1, plan


def test_plans_made_on_an_empty_table_still_use_indexes_once_it_grows(conn):
    """Daemons start on a new, empty lzq_jobs and keep each statement's plan for the session's life
    (generic plans: made once; custom ones become generic after five calls). A plan made when a scan
    of the empty table looked cheapest would read every row on every later call (0.2 ms per scan at
    1,000 rows, growing) until an ANALYZE happened to replace it."""
    conn.execute("SELECT lzq_heartbeat('w1', 'h', 1, '{default}', 16)")
    conn.execute("SELECT lzq_worker_inbox('w1', 'inbox-w1')")

    def lifecycle() -> list[str]:
        plans = []
        [(job_id,)], found = explained(conn, "SELECT lzq_push('x', '{}', '{}')")
        plans += found
        [(attempt,)], found = explained(conn, "SELECT attempt FROM lzq_assign(500)")
        plans += found
        reports = Jsonb([{"id": job_id, "attempt": attempt, "outcome": "succeeded"}])
        _, found = explained(conn, "SELECT * FROM lzq_finish('w1', %s)", (reports,))
        plans += found
        for sql in ("SELECT * FROM lzq_promote(500)", "SELECT * FROM lzq_checks_due(100, 30)"):
            plans += explained(conn, sql)[1]
        return plans

    for _ in range(8):  # past the five custom plans after which PostgreSQL may settle on a generic one
        lifecycle()
    conn.execute(f"""
        INSERT INTO lzq_jobs (job_name, fairness_key, queue_name, status, run_at, finished_at)
        SELECT 'old', 'old', 'default', 'succeeded', now(), now() FROM generate_series(1, {BACKLOG})""")
    _no_seq_scan_of_jobs(lifecycle())
