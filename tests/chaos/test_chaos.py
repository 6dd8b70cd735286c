"""A seeded chaos run: real daemons killed at random and at failpoints, services restarted, while an
independent record says what actually ran; then a checker of lzq's invariants.

CI runs a short version. By hand, for a long one:
    LZQ_CHAOS_SECONDS=600 LZQ_CHAOS_SEED=7 bin/test tests/chaos -s
The seed and every fault are printed, so a failing run can be replayed.

Faults: kill -9 of a random worker or superqueuer; failpoints between claim and ack
(lzq/failpoints.py) armed in every daemon; a RabbitMQ restart and a PostgreSQL crash-restart (where
this run may restart the local services); SIGSTOP of a worker for longer than its lease, then
SIGCONT. A supervisor loop restarts whatever died, as
supervisord would.
Invariants: no lost job; no two runs of a job at the same time; limit_to never exceeded; one job per
recurring slot and no two recurring runs at once; dependencies respected; legal transitions only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import random
import shutil
import signal
import time

import psycopg
import pytest

from tests.e2e.conftest import overlapping_runs
from tests.e2e.test_outages import _PG_CLUSTERS, _crash_restart_postgresql, _restart_rabbitmq_app

pytestmark = pytest.mark.e2e

SEED = int(os.environ.get("LZQ_CHAOS_SEED", random.randrange(1_000_000)))
CHAOS_S = float(os.environ.get("LZQ_CHAOS_SECONDS", "25"))
#: Frozen workers (SIGSTOP past the lease, then SIGCONT): on by default; LZQ_CHAOS_SIGSTOP=0 leaves
#: them out. The handlers fence their writes (lzq.fence), so a thawing thread cannot overlap.
SIGSTOP = os.environ.get("LZQ_CHAOS_SIGSTOP", "1") == "1"
#: Failpoint probability per pass; every job passes three worker failpoints and two superqueuer ones.
FAILPOINT_P = 0.004
MAX_FAILURES = 1000  # crashes count as attempts: never let the chaos itself fail a job

#: Every (from, to) status move the state machine in schema.sql allows (None: the row was inserted).
LEGAL = {
    (None, "ready"), (None, "scheduled"), (None, "waiting"), (None, "cancelled"),
    ("waiting", "scheduled"), ("waiting", "ready"), ("waiting", "cancelled"), ("waiting", "failed"),
    ("scheduled", "ready"), ("scheduled", "waiting"), ("scheduled", "cancelled"),
    ("ready", "dispatched"), ("ready", "running"), ("ready", "waiting"), ("ready", "cancelled"),
    ("dispatched", "running"), ("dispatched", "ready"), ("dispatched", "cancelled"),
    ("running", "succeeded"), ("running", "scheduled"), ("running", "ready"), ("running", "failed"),
}  # fmt: skip

_TRANSITION_LOG = """
    CREATE TABLE chaos_transitions (job_id bigint, from_status text, to_status text,
                                    at timestamptz NOT NULL DEFAULT clock_timestamp());
    CREATE FUNCTION chaos_log() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO chaos_transitions (job_id, from_status, to_status)
        VALUES (NEW.id, CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END, NEW.status);
        RETURN NULL;
    END $$;
    CREATE TRIGGER chaos_insert AFTER INSERT ON lzq_jobs FOR EACH ROW EXECUTE FUNCTION chaos_log();
    CREATE TRIGGER chaos_update AFTER UPDATE OF status ON lzq_jobs
        FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION chaos_log();
"""


# Most runs of the Limited job in progress at once (optionally in one bucket), from the record.
_LIMITED_IN_PROGRESS = """
    WITH runs AS (
        SELECT r.started_at, coalesce(r.finished_at, r.last_seen_at) AS ended_at
          FROM e2e_runs r JOIN lzq_jobs j ON j.id = r.job_id
         WHERE j.job_name = 'tests.e2e.app.Limited' AND (%(b)s::text IS NULL OR j.params ->> 'bucket' = %(b)s)
    ), events AS (
        SELECT started_at AS at, 1 AS d FROM runs UNION ALL SELECT ended_at, -1 FROM runs
    )
    SELECT coalesce(max(n), 0) FROM (SELECT sum(d) OVER (ORDER BY at, d) AS n FROM events) AS t"""


def _fresh(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True, connect_timeout=3)


def _try_count(dsn: str, sql: str) -> int:
    try:
        with _fresh(dsn) as conn:
            return conn.execute(sql).fetchone()[0]
    except psycopg.OperationalError:
        return -1


class Chaos:
    """Runs the daemons like a supervisor would, and injects faults from a seeded generator."""

    def __init__(self, daemons, rng: random.Random) -> None:
        self.daemons, self.rng = daemons, rng
        self.faults: dict[str, int] = {}
        self.exits: dict[int, int] = {}
        self.last_fault_at = time.monotonic()
        self.frozen: list[tuple[object, float]] = []  # (worker, when to SIGCONT it)
        self.service_restarts_left = (
            ["rabbitmq"] if os.geteuid() == 0 and shutil.which("rabbitmqctl") else []
        ) + (["postgresql"] if os.geteuid() == 0 and _PG_CLUSTERS and shutil.which("pg_ctlcluster") else [])

    def start(self) -> None:
        for kind in ("superqueuer", "superqueuer", "worker", "worker", "worker"):
            self._spawn(kind)

    def _spawn(self, kind: str):
        return self.daemons.superqueuer() if kind == "superqueuer" else self.daemons.worker(4)

    def supervise(self) -> None:
        """Resume frozen workers whose time is up; restart every daemon that exited (counted)."""
        for proc, resume_at in list(self.frozen):
            if time.monotonic() >= resume_at:
                proc.send_signal(signal.SIGCONT)
                self.frozen.remove((proc, resume_at))
        for proc in list(self.daemons.procs):
            if proc.poll() is not None and not getattr(proc, "replaced", False):
                self.exits[proc.returncode] = self.exits.get(proc.returncode, 0) + 1
                proc.replaced = True  # type: ignore[attr-defined]
                self._spawn(proc.args[3])

    def inject(self) -> None:
        alive = [p for p in self.daemons.procs if p.poll() is None]
        roll = self.rng.random()
        if self.service_restarts_left and roll < 0.12:
            service = self.service_restarts_left.pop(self.rng.randrange(len(self.service_restarts_left)))
            (_restart_rabbitmq_app if service == "rabbitmq" else _crash_restart_postgresql)()
            self._count(f"restart {service}")
        elif (
            SIGSTOP
            and roll < 0.3
            and (workers := [p for p in alive if p.args[3] == "worker" and not self._is_frozen(p)])
        ):
            victim = self.rng.choice(workers)
            victim.send_signal(signal.SIGSTOP)  # past its lease: its jobs are swept and run elsewhere
            self.frozen.append((victim, time.monotonic() + self.daemons.settings.worker_dead_after_s + 3))
            self._count("SIGSTOP worker")
        elif alive:
            victim = self.rng.choice(alive)
            victim.send_signal(signal.SIGKILL)  # a frozen process dies of SIGKILL too
            self.frozen = [(p, t) for p, t in self.frozen if p is not victim]
            self._count(f"kill -9 {victim.args[3]}")
        self.last_fault_at = time.monotonic()

    def _is_frozen(self, proc: object) -> bool:
        return any(p is proc for p, _ in self.frozen)

    def _count(self, fault: str) -> None:
        self.faults[fault] = self.faults.get(fault, 0) + 1
        print(f"chaos: {fault}", flush=True)


def test_chaos_run_keeps_every_invariant(daemons, client, runs_table, dsn):
    rng = random.Random(SEED)
    print(f"\nchaos: seed {SEED}, {CHAOS_S:.0f} s of faults", flush=True)
    runs_table.execute(_TRANSITION_LOG)
    daemons.settings = dataclasses.replace(
        daemons.settings,
        dispatch_lease_s=3,
        worker_dead_after_s=4,
        failpoints=",".join(
            f"{name}:{FAILPOINT_P}"
            for name in (
                "after_claim_commit",
                "after_publish",
                "after_start",
                "after_run",
                "after_finish_commit",
            )
        ),
    )
    options = {"max_failures": MAX_FAILURES}
    plain = client.push_many([("record", {"sleep_s": rng.uniform(0, 0.2)}, options) for _ in range(300)])
    chain = [client.push("record", {"sleep_s": 0.05}, options)]
    for _ in range(14):
        chain.append(client.push("record", {"sleep_s": 0.05}, {**options, "depends_on": [chain[-1]]}))
    limited = client.push_many(
        [
            ("tests.e2e.app.Limited", {"bucket": "ab"[i % 2], "sleep_s": 0.1},
             {**options, "depends_on": ["#is_ready_to_run"]})
            for i in range(30)
        ]
    )  # fmt: skip
    base = dt.datetime.now(dt.UTC).replace(microsecond=0)
    client.recur("record", {}, "chaos-tick", "00:00:01", base, options)
    expected = [j.id for j in plain + chain + limited]

    chaos = Chaos(daemons, rng)
    chaos.start()
    started = time.monotonic()
    next_fault = started + rng.uniform(1, 3)
    more = 0
    while time.monotonic() - started < CHAOS_S:
        chaos.supervise()
        if time.monotonic() >= next_fault:
            chaos.inject()
            next_fault = time.monotonic() + rng.uniform(1, 3)
        if more < 8 * CHAOS_S and rng.random() < 0.3:  # producers keep pushing through the chaos
            try:
                expected += [j.id for j in client.push_many([("record", {"sleep_s": 0.01}, options)] * 10)]
                more += 10
            except psycopg.OperationalError:
                pass  # PostgreSQL is restarting: a producer would retry
        time.sleep(0.2)
    client.unrecur("chaos-tick")

    ids = ",".join(map(str, expected))
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        chaos.supervise()
        if _try_count(
            dsn, f"SELECT count(*) FROM lzq_jobs WHERE id IN ({ids}) AND status = 'succeeded'"
        ) == len(expected):
            break
        time.sleep(0.5)
    recovery_s = time.monotonic() - chaos.last_fault_at

    with _fresh(dsn) as conn:
        # No lost job.
        lost = conn.execute(
            f"SELECT id, status FROM lzq_jobs WHERE id IN ({ids}) AND status <> 'succeeded'"
        ).fetchall()
        # No two runs of one job at the same time (nor of two runs of the recurring job).
        overlaps = overlapping_runs(conn)
        recurring_overlaps = conn.execute("""
            SELECT count(*) FROM e2e_runs a JOIN e2e_runs b ON a.run_id < b.run_id
              JOIN lzq_jobs ja ON ja.id = a.job_id JOIN lzq_jobs jb ON jb.id = b.job_id
             WHERE ja.recur_slot IS NOT NULL AND jb.recur_slot IS NOT NULL
               AND tstzrange(a.started_at, coalesce(a.finished_at, a.last_seen_at), '[]')
                && tstzrange(b.started_at, coalesce(b.finished_at, b.last_seen_at), '[]')""").fetchone()[0]
        slots = conn.execute(
            "SELECT count(*), count(DISTINCT recur_slot) FROM lzq_jobs WHERE recur_slot IS NOT NULL"
        ).fetchone()
        # limit_to never exceeded: most Limited runs in progress at once, overall and per bucket.
        limits = {
            bucket: conn.execute(_LIMITED_IN_PROGRESS, {"b": bucket}).fetchone()[0]
            for bucket in (None, "a", "b")
        }
        # Dependencies respected: no link started before its predecessor's successful run ended.
        early = conn.execute(
            """SELECT count(*) FROM lzq_dependencies d
                 JOIN e2e_runs c ON c.job_id = d.job_id
                 JOIN lzq_jobs p ON p.id = d.depends_on
                WHERE c.started_at < p.finished_at"""
        ).fetchone()[0]
        transitions = {
            tuple(row)
            for row in conn.execute("SELECT DISTINCT from_status, to_status FROM chaos_transitions")
        }
        runs, jobs_run = conn.execute("SELECT count(*), count(DISTINCT job_id) FROM e2e_runs").fetchone()

    print(
        f"chaos: seed {SEED}; {len(expected)} jobs (+ recurring runs {slots[0]}); faults {chaos.faults}; "
        f"daemon exits {chaos.exits}; lost {len(lost)}; concurrent duplicates {len(overlaps)}; "
        f"runs {runs} for {jobs_run} jobs (sequential re-runs {runs - jobs_run}); "
        f"max in progress limited {limits}; recovery after the last fault {recovery_s:.1f} s",
        flush=True,
    )
    assert lost == [], f"lost jobs (seed {SEED}): {lost[:20]}"
    assert overlaps == [], f"overlapping runs (seed {SEED}): {overlaps[:20]}"
    assert recurring_overlaps == 0
    assert slots[0] == slots[1], "a recurring slot got two jobs"
    assert limits[None] <= 3 and limits["a"] <= 2 and limits["b"] <= 2, limits
    assert early == 0, "a dependent started before its dependency finished"
    illegal = transitions - LEGAL
    assert not illegal, f"illegal transitions: {illegal}"
    assert sum(chaos.faults.values()) >= 3
