"""A worker frozen past its lease (SIGSTOP) has its jobs run elsewhere, and exits as soon as it thaws.

Job threads cannot be preempted: on thawing, one may get a few instructions in before the process
dies (the SIGCONT handler exits at once, without even logging). So the handler's writes are fenced
with the job's attempt (lzq.fence, see tests/e2e/app.py): once the job was given to another worker,
a late write of the frozen run fails instead of overlapping the new run.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.conftest import wait_until
from tests.e2e.conftest import overlapping_runs, status_counts

pytestmark = pytest.mark.e2e


_OPEN_TRANSACTIONS = """
    SELECT count(*) FROM pg_stat_activity
     WHERE datname = current_database() AND state LIKE 'idle in transaction%'"""


def freeze_outside_a_transaction(proc, conn) -> None:
    """SIGSTOP, but not while a handler holds its fence (an open transaction with the job's row
    FOR SHARE): frozen there, it would block the sweep for as long as it stays frozen, by design,
    and this test would wait for a hand-over that cannot come. Thawed and tried again if so."""
    for _ in range(50):
        proc.send_signal(signal.SIGSTOP)
        time.sleep(0.1)  # a statement the server was running ends; its transaction stays open
        if conn.execute(_OPEN_TRANSACTIONS).fetchone()[0] == 0:
            return
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.02)
    raise AssertionError("could not freeze the worker outside a fenced transaction")


def test_a_worker_frozen_past_its_lease_exits_when_it_thaws(daemons, client, runs_table):
    client.push_many([("record", {"sleep_s": 3}) for _ in range(2)])
    daemons.superqueuer()
    frozen = daemons.worker(2)
    wait_until(
        lambda: runs_table.execute("SELECT count(*) FROM e2e_runs").fetchone()[0] == 2,
        20,
        message="both jobs to start on the first worker",
    )

    freeze_outside_a_transaction(frozen, runs_table)
    frozen_at = runs_table.execute("SELECT clock_timestamp()").fetchone()[0]
    daemons.worker(2)
    # Past worker_dead_after_s (3 s in tests) the sweep gives its jobs to the other worker.
    wait_until(
        lambda: runs_table.execute("SELECT count(*) FROM e2e_runs").fetchone()[0] == 4,
        30,
        message="the jobs to start again elsewhere",
    )
    thawed_at = runs_table.execute("SELECT clock_timestamp()").fetchone()[0]
    frozen.send_signal(signal.SIGCONT)

    assert frozen.wait(timeout=10) == 70  # declared dead: it exits rather than carry on
    wait_until(lambda: status_counts(runs_table) == {"succeeded": 2}, 30, message="both jobs to finish")
    old_runs = runs_table.execute(
        "SELECT last_seen_at, finished_at FROM e2e_runs WHERE pid = %s", (frozen.pid,)
    ).fetchall()
    assert len(old_runs) == 2
    for last_seen, finished in old_runs:
        assert finished is None  # never completed: the process died
        assert last_seen < frozen_at  # nothing written after the freeze: the fence held
    assert overlapping_runs(runs_table) == []
    assert thawed_at > frozen_at
