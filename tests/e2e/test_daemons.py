"""End to end: real superqueuer and worker processes, real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.e2e.conftest import overlapping_runs, status_counts

pytestmark = pytest.mark.e2e


def _all_final(conn, total: int) -> bool:
    counts = status_counts(conn)
    return sum(counts.get(s, 0) for s in ("succeeded", "failed", "cancelled")) == total


def test_thousand_jobs_each_run_exactly_once(daemons, client, runs_table):
    names = ["record", "tests.e2e.app.Counted", "tests.e2e.app.Counted#twice"]
    refs = client.push_many([(names[i % 3], {"n": i}, {"priority": i % 5}) for i in range(1000)])
    daemons.superqueuer()
    daemons.worker(8)
    daemons.worker(8)

    wait_until(lambda: _all_final(runs_table, 1000), 90, message="1000 jobs to finish")

    assert status_counts(runs_table) == {"succeeded": 1000}
    runs = runs_table.execute("SELECT job_id, count(*) FROM e2e_runs GROUP BY job_id").fetchall()
    assert len(runs) == 1000
    assert {count for _, count in runs} == {1}
    assert {job_id for job_id, _ in runs} == {ref.id for ref in refs}
    assert runs_table.execute("SELECT max(attempts), min(attempts) FROM lzq_jobs").fetchone() == (1, 1)


def test_retries_until_success_and_fails_after_max_failures(daemons, client, runs_table):
    flaky = client.push("record", {"fail_attempts": 1})
    hopeless = client.push("record", {"fail_attempts": 99}, max_failures=3)
    daemons.superqueuer()
    daemons.worker(2)

    wait_until(lambda: _all_final(runs_table, 2), 30, message="both jobs to finish")

    flaky_info, hopeless_info = client.get(flaky), client.get(hopeless)
    assert (flaky_info.status, flaky_info.attempts) == ("succeeded", 2)
    assert (hopeless_info.status, hopeless_info.attempts) == ("failed", 3)
    assert hopeless_info.last_error == "planned failure"
    runs = dict(runs_table.execute("SELECT job_id, count(*) FROM e2e_runs GROUP BY job_id").fetchall())
    assert runs == {flaky.id: 2, hopeless.id: 3}


def test_sigterm_mid_run_exits_cleanly_and_loses_nothing(daemons, client, runs_table):
    long_jobs = client.push_many([("record", {"sleep_s": 6}) for _ in range(4)])
    short_jobs = client.push_many([("record", {"sleep_s": 0.2}) for _ in range(20)])
    daemons.superqueuer()
    first = daemons.worker(4)
    wait_until(
        lambda: (
            runs_table.execute(
                "SELECT count(*) FROM lzq_jobs WHERE status = 'running' AND id = ANY(%s)",
                ([r.id for r in long_jobs],),
            ).fetchone()[0]
            == 4
        ),
        20,
        message="the long jobs to run",
    )

    code, took_s = daemons.terminate(first)

    assert code == 0
    assert took_s < 10
    # The long jobs outlived the grace period: handed back at once, their attempt not counted.
    handed_back = runs_table.execute(
        "SELECT status, attempts FROM lzq_jobs WHERE id = ANY(%s)", ([r.id for r in long_jobs],)
    ).fetchall()
    assert all(status in ("ready", "dispatched") and attempts == 0 for status, attempts in handed_back)

    daemons.worker(4)
    wait_until(lambda: _all_final(runs_table, 24), 40, message="every job to finish on the second worker")
    assert status_counts(runs_table) == {"succeeded": 24}
    assert overlapping_runs(runs_table) == []
    finished = runs_table.execute(
        "SELECT count(DISTINCT job_id) FROM e2e_runs WHERE finished_at IS NOT NULL"
    ).fetchone()[0]
    assert finished == len(long_jobs) + len(short_jobs)
    assert "worker_stopped" in first.log_path.read_text()


def test_killed_worker_jobs_are_recovered_and_never_overlap(daemons, client, runs_table):
    jobs = client.push_many([("record", {"sleep_s": 1.5}) for _ in range(4)])
    daemons.superqueuer()
    victim = daemons.worker(4)
    wait_until(
        lambda: runs_table.execute("SELECT count(*) FROM e2e_runs").fetchone()[0] == 4,
        20,
        message="all jobs to start",
    )

    victim.send_signal(signal.SIGKILL)
    victim.wait()
    daemons.worker(4)

    # Recovery waits for the dead worker's heartbeat to expire (worker_dead_after_s = 3 in tests).
    wait_until(lambda: _all_final(runs_table, 4), 40, message="the killed worker's jobs to re-run")
    assert status_counts(runs_table) == {"succeeded": 4}
    assert overlapping_runs(runs_table) == []
    attempts = runs_table.execute(
        "SELECT attempts FROM lzq_jobs WHERE id = ANY(%s)", ([j.id for j in jobs],)
    ).fetchall()
    assert {a for (a,) in attempts} == {2}  # the crash counted as an attempt


def test_two_superqueuers_never_double_dispatch_or_exceed_credit(daemons, client, runs_table, dsn, settings):
    daemons.settings = dataclasses.replace(settings, prefetch_margin="1")  # a fixed credit to check
    client.push_many([("record", {"sleep_s": 0.01}) for _ in range(1000)])
    inflight_samples: list[int] = []
    stop_sampling = threading.Event()

    def sample() -> None:
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            while not stop_sampling.is_set():
                inflight_samples.append(
                    conn.execute(
                        "SELECT count(*) FROM lzq_jobs WHERE status IN ('dispatched', 'running')"
                    ).fetchone()[0]
                )
                time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        daemons.worker(4)
        daemons.worker(4)
        daemons.superqueuer()
        daemons.superqueuer()
        wait_until(lambda: _all_final(runs_table, 1000), 90, message="1000 jobs to finish")
    finally:
        stop_sampling.set()
        sampler.join()

    assert status_counts(runs_table) == {"succeeded": 1000}
    counts = runs_table.execute("SELECT count(*) FROM e2e_runs GROUP BY job_id").fetchall()
    assert len(counts) == 1000 and {c for (c,) in counts} == {1}
    # Credit: 2 workers x (4 slots + 1 margin). Never more in flight, whatever the superqueuers race.
    assert max(inflight_samples) <= 10
    assert max(inflight_samples) >= 4  # and the slots were actually used


def test_unregistered_handlers_are_refused_not_imported(daemons, client, runs_table, tmp_path: Path):
    marker = tmp_path / "pwned"
    refused = [
        client.push("os#system", {"command": f"touch {marker}"}),
        client.push("subprocess.run", {"args": ["touch", str(marker)]}),
        client.push("no_such_handler"),
    ]
    daemons.superqueuer()
    daemons.worker(2)

    wait_until(lambda: _all_final(runs_table, 3), 30, message="refused jobs to fail")
    for ref in refused:
        info = client.get(ref)
        assert info.status == "failed"
        assert info.attempts == 1  # refused at once, no retries
        assert "refused to run" in info.last_error
    assert not marker.exists()


def test_scheduled_job_waits_for_its_start_time(daemons, client, runs_table):
    daemons.superqueuer()
    daemons.worker(2)
    ref = client.push("record", {}, start_time="+2 seconds")

    wait_until(lambda: _all_final(runs_table, 1), 20, message="the scheduled job to run")
    info = client.get(ref)
    assert info.status == "succeeded"
    assert (info.started_at - info.created_at).total_seconds() >= 2


@pytest.mark.parametrize("broken", ["database", "broker"])
def test_daemons_wait_out_unreachable_services(daemons, broken):
    if broken == "database":
        daemons.settings = daemons.settings.__class__(
            **{**daemons.settings.__dict__, "dsn": "host=127.0.0.1 port=1 user=postgres connect_timeout=1"}
        )
        expected = "database_unavailable"
    else:
        daemons.settings = daemons.settings.__class__(
            **{**daemons.settings.__dict__, "amqp_url": "amqp://guest:guest@127.0.0.1:1/%2F"}
        )
        expected = "amqp_unavailable"
    procs = [daemons.superqueuer(), daemons.worker(1)]
    time.sleep(4)

    for proc in procs:
        assert proc.poll() is None, f"{proc.args} exited with {proc.returncode}"
    logs = [proc.log_path.read_text() for proc in procs]
    if broken == "database":
        assert all(expected in text and "retry_in_s" in text for text in logs)
    else:
        assert expected in logs[1] and "retry_in_s" in logs[1]  # only workers talk to RabbitMQ while idle
    for proc in procs:
        code, took_s = daemons.terminate(proc)
        assert code == 0 and took_s < 10


def test_a_superqueuer_idle_longer_than_the_dead_after_window_is_still_woken_at_once(
    daemons, client, runs_table
):
    """Its idle flag doubles as its heartbeat: a superqueuer asleep on LISTEN for longer than
    worker_dead_after_s keeps its row, so a push still NOTIFYs it (the poll here is 60 s)."""
    daemons.settings = dataclasses.replace(
        daemons.settings, worker_dead_after_s=3, sweep_interval_s=0.5, poll_interval_s=60
    )
    daemons.superqueuer()
    daemons.worker(2)
    first = client.push("record")
    wait_until(lambda: client.get(first).status == "succeeded", 10, message="a first job")
    time.sleep(5)  # well past worker_dead_after_s with nothing to do
    assert runs_table.execute("SELECT idle FROM lzq_superqueuers").fetchall() == [(True,)]
    job = client.push("record")
    wait_until(
        lambda: client.get(job).status == "succeeded", 5, message="the job pushed after the quiet spell"
    )
