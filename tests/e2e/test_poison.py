"""A job that kills its worker is counted as an attempt each time and ends failed; others still run."""

from __future__ import annotations

import time

import pytest

from tests.conftest import wait_until
from tests.e2e.conftest import status_counts

pytestmark = pytest.mark.e2e


def test_a_job_that_kills_its_worker_fails_after_max_failures_without_wedging_the_queue(
    daemons, client, runs_table
):
    poison = client.push("poison", {}, max_failures=2)
    others = client.push_many([("record", {"sleep_s": 0.05}) for _ in range(40)])
    daemons.superqueuer()
    workers = [daemons.worker(4)]
    deaths = 0

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if client.get(poison).status == "failed" and status_counts(runs_table).get("succeeded", 0) == len(
            others
        ):
            break
        for i, proc in enumerate(workers):
            if proc.poll() is not None:  # the supervisor's job: start a new worker
                assert proc.returncode == 137
                deaths += 1
                workers[i] = daemons.worker(4)
        time.sleep(0.2)

    info = client.get(poison)
    assert info.status == "failed"
    assert info.attempts == 2  # each crash counted as an attempt
    assert "stopped heartbeating" in info.last_error
    assert deaths == 2
    assert status_counts(runs_table) == {"succeeded": len(others), "failed": 1}
    wait_until(
        lambda: (
            runs_table.execute("SELECT count(*) FROM e2e_runs WHERE job_id = %s", (poison.id,)).fetchone()[0]
            == 2
        ),
        5,
        message="two recorded poison runs",
    )
