"""Processes started by a handler do not outlive a worker that stops with the job unfinished."""

from __future__ import annotations

import os

import pytest

from tests.conftest import wait_until

pytestmark = pytest.mark.e2e


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_sigterm_leaves_no_orphans_of_abandoned_jobs(daemons, client, runs_table):
    runs_table.execute("CREATE TABLE e2e_children (job_id bigint, pid integer)")
    client.push("spawner", {})
    daemons.superqueuer()
    worker = daemons.worker(2)
    wait_until(
        lambda: runs_table.execute("SELECT count(*) FROM e2e_children").fetchone()[0] == 2,
        20,
        message="the handler's processes to start",
    )
    pids = [pid for (pid,) in runs_table.execute("SELECT pid FROM e2e_children")]
    assert all(_alive(pid) for pid in pids)

    code, took_s = daemons.terminate(worker)  # the grace period (2 s in tests) ends first

    assert code == 0 and took_s < 10
    wait_until(lambda: not any(_alive(pid) for pid in pids), 5, message="the handler's processes to be gone")
    assert runs_table.execute("SELECT status, attempts FROM lzq_jobs").fetchone() == (
        "ready",
        0,
    )  # handed back
