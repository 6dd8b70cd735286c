"""End to end: recurring jobs with real daemons run on their slots, once per slot, through restarts."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from tests.conftest import wait_until

pytestmark = pytest.mark.e2e


def _runs(conn) -> list[tuple]:
    """(slot, started_at) of every run of the recurring job, from the handler's own record."""
    return conn.execute(
        """SELECT j.recur_slot, r.started_at FROM e2e_runs r JOIN lzq_jobs j ON j.id = r.job_id
            ORDER BY j.recur_slot"""
    ).fetchall()


def test_two_second_job_runs_on_its_slots_once_each_with_two_superqueuers(daemons, client, runs_table):
    base = dt.datetime.now(dt.UTC).replace(microsecond=0)
    client.recur("record", {}, "tick", "00:00:02", base)
    client.recur("record", {}, "tick", "00:00:02", base)  # again: no duplicate definition or run
    daemons.superqueuer()
    daemons.superqueuer()
    daemons.worker(2)

    wait_until(lambda: len(_runs(runs_table)) >= 5, 30, message="five runs")

    runs = _runs(runs_table)
    slots = [slot for slot, _ in runs]
    assert len(slots) == len(set(slots))  # one run per slot
    assert all((slot - base) % dt.timedelta(seconds=2) == dt.timedelta(0) for slot in slots)
    assert all(started >= slot for slot, started in runs)  # never before its slot
    assert runs_table.execute("SELECT count(*) FROM lzq_recurring").fetchone()[0] == 1
    pending = runs_table.execute(
        "SELECT count(*) FROM lzq_jobs WHERE status IN ('scheduled', 'ready', 'dispatched', 'running')"
    ).fetchone()[0]
    assert pending <= 1


def test_recurring_job_survives_the_superqueuer_being_down_across_slots(daemons, client, runs_table):
    base = dt.datetime.now(dt.UTC).replace(microsecond=0)
    client.recur("record", {}, "tick", "00:00:01", base)
    superqueuer = daemons.superqueuer()
    daemons.worker(2)
    wait_until(lambda: len(_runs(runs_table)) >= 2, 20, message="two runs")

    code, _ = daemons.terminate(superqueuer)
    assert code == 0
    down_at = dt.datetime.now(dt.UTC)
    time.sleep(4)  # four slots pass with nobody dispatching
    daemons.superqueuer()
    wait_until(
        lambda: (
            sum(1 for _, started in _runs(runs_table) if started > down_at + dt.timedelta(seconds=4)) >= 2
        ),
        20,
        message="runs after the restart",
    )

    slots = [slot for slot, _ in _runs(runs_table)]
    assert len(slots) == len(set(slots))
    # The missed slots collapsed into one late run, not four back-to-back catch-up runs.
    late = [
        s for s, started in _runs(runs_table) if down_at < started and started - s > dt.timedelta(seconds=2)
    ]
    assert len(late) <= 1
