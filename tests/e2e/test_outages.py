"""Daemons ride out a RabbitMQ restart and a PostgreSQL crash-restart: every job still runs, none twice
at once. These restart the local services, so they run only where this test run may do that (root,
local PostgreSQL cluster and RabbitMQ node), which CI is.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from tests.conftest import wait_until
from tests.e2e.conftest import overlapping_runs, status_counts

pytestmark = pytest.mark.e2e

_PG_CLUSTERS = sorted(Path("/etc/postgresql").glob("*/main")) if Path("/etc/postgresql").exists() else []


def _restart_rabbitmq_app() -> None:
    subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=60)
    time.sleep(2)
    subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True, timeout=60)


def _crash_restart_postgresql() -> None:
    version = _PG_CLUSTERS[0].parent.name
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart", "-m", "immediate"],
        check=True,
        capture_output=True,
        timeout=60,
    )


def _succeeded(dsn: str) -> int:
    """Jobs succeeded so far, on a new connection (a crash-restart breaks the old ones)."""
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=2) as conn:
            return status_counts(conn).get("succeeded", 0)
    except psycopg.OperationalError:
        return -1


def _run_through(daemons, client, dsn: str, outage, noticed: str, jobs: int = 150) -> None:
    # 150 jobs of 0.2 s on 8 slots last ~4 s: the outage (a second or two to begin) must land mid-run.
    refs = client.push_many([("record", {"sleep_s": 0.2}, {"max_failures": 10}) for _ in range(jobs)])
    daemons.superqueuer()
    daemons.worker(4)
    daemons.worker(4)
    wait_until(lambda: _succeeded(dsn) >= jobs // 5, 30, message="a first part")

    outage()

    wait_until(
        lambda: _succeeded(dsn) == jobs, 120, interval_s=0.5, message="every job to succeed after the outage"
    )
    assert all(proc.poll() is None for proc in daemons.procs), daemons.logs()
    assert all(noticed in proc.log_path.read_text() for proc in daemons.procs)  # the outage was real
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert overlapping_runs(conn) == []
        finished = "SELECT count(DISTINCT job_id) FROM e2e_runs WHERE finished_at IS NOT NULL"
        assert conn.execute(finished).fetchone()[0] == len(refs)


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("rabbitmqctl"), reason="needs a local RabbitMQ node"
)
def test_daemons_survive_a_rabbitmq_restart(daemons, client, runs_table, dsn):
    _run_through(daemons, client, dsn, _restart_rabbitmq_app, noticed="amqp_unavailable")


@pytest.mark.skipif(
    os.geteuid() != 0 or not _PG_CLUSTERS or not shutil.which("pg_ctlcluster"),
    reason="needs a local PostgreSQL cluster",
)
def test_daemons_survive_a_postgresql_crash_restart(daemons, client, runs_table, dsn):
    # Heartbeats cannot be written while PostgreSQL is down: give workers more than the outage
    # before they count as dead (production's default is 30 s).
    daemons.settings = dataclasses.replace(daemons.settings, worker_dead_after_s=20)
    _run_through(daemons, client, dsn, _crash_restart_postgresql, noticed="database_unavailable")
