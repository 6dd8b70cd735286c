"""End to end through the buffer: Client.push(via="buffer") → lzq buffer → superqueuer → worker."""

from __future__ import annotations

import dataclasses
import json

import pytest

from lzq import amqp
from lzq.client import Client
from tests.conftest import AMQP_URL, wait_until
from tests.e2e.conftest import status_counts

pytestmark = pytest.mark.e2e

#: Nothing listens on port 1: a buffer daemon pointed here finds PostgreSQL down.
DEAD_DSN = "host=127.0.0.1 port=1 dbname=lzq user=lzq connect_timeout=2"


def _succeeded(conn) -> int:
    return status_counts(conn).get("succeeded", 0)


def _log_events(proc) -> list[dict]:
    events = []
    for line in proc.log_path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


def _assert_each_ran_once(conn, total: int) -> None:
    assert status_counts(conn) == {"succeeded": total}
    runs = conn.execute("SELECT job_id, count(*) FROM e2e_runs GROUP BY job_id").fetchall()
    assert len(runs) == total and {count for _, count in runs} == {1}
    # Every push was written in exactly once, and its record names the job that ran.
    recorded = conn.execute("SELECT count(*), count(job_id) FROM lzq_buffered").fetchone()
    assert recorded == (total, total)
    assert conn.execute(
        "SELECT count(*) FROM lzq_buffered b JOIN e2e_runs r ON r.job_id = b.job_id"
    ).fetchone() == (total,)


@pytest.fixture
def producer(settings):
    """A producer whose database is unreachable: buffered pushes must not need it."""
    with Client(settings=dataclasses.replace(settings, dsn=DEAD_DSN)) as client:
        yield client


def test_two_hundred_buffered_pushes_each_run_exactly_once(daemons, producer, runs_table):
    before = producer.push_many([("record", {"n": i}) for i in range(100)], via="buffer")
    daemons.superqueuer()
    daemons.worker(8)
    buffer = daemons.buffer()
    during = [producer.push("record", {"n": i}, via="buffer") for i in range(100, 200)]

    wait_until(lambda: _succeeded(runs_table) == 200, 60, message="200 buffered jobs to run")

    _assert_each_ran_once(runs_table, 200)
    assert {str(p.uuid) for p in before + during} == {
        str(u) for (u,) in runs_table.execute("SELECT uuid FROM lzq_buffered").fetchall()
    }
    params = sorted(p["n"] for (p,) in runs_table.execute("SELECT params FROM lzq_jobs").fetchall())
    assert params == list(range(200))
    inserted = [e for e in _log_events(buffer) if e["event"] == "buffered_jobs_inserted"]
    assert sum(e["count"] for e in inserted) == 200


def test_pushes_wait_in_rabbitmq_while_postgresql_is_down_and_all_land_once_it_is_back(
    daemons, producer, settings, runs_table
):
    # A buffer daemon that cannot reach PostgreSQL: it must take nothing and lose nothing.
    stranded = daemons.buffer("--dsn", DEAD_DSN)
    wait_until(
        lambda: any(e["event"] == "database_unavailable" for e in _log_events(stranded)),
        15,
        message="the stranded buffer to report the database unavailable",
    )
    producer.push_many([("record", {"n": i}) for i in range(150)], via="buffer")
    for i in range(150, 200):
        producer.push("record", {"n": i}, via="buffer")

    assert amqp.queue_depth(AMQP_URL, settings.amqp_prefix, amqp.BUFFER_QUEUE) == 200
    assert runs_table.execute("SELECT count(*) FROM lzq_jobs").fetchone() == (0,)

    # PostgreSQL "comes back": a buffer daemon that can reach it drains the queue.
    daemons.superqueuer()
    daemons.worker(8)
    daemons.buffer()
    wait_until(lambda: _succeeded(runs_table) == 200, 60, message="200 buffered jobs to run")

    _assert_each_ran_once(runs_table, 200)
    assert amqp.queue_depth(AMQP_URL, settings.amqp_prefix, amqp.BUFFER_QUEUE) == 0
    code, took_s = daemons.terminate(stranded)
    assert (code, took_s < 10) == (0, True)
    stopped = [e for e in _log_events(stranded) if e["event"] == "buffer_stopped"]
    assert stopped and stopped[0]["returned"] == 0


def test_sigterm_stops_a_buffer_daemon_with_exit_0_and_pushes_still_queue_meanwhile(
    daemons, producer, settings
):
    buffer = daemons.buffer()
    wait_until(
        lambda: any(e["event"] == "amqp_connected" for e in _log_events(buffer)),
        15,
        message="the buffer daemon to connect",
    )

    code, took_s = daemons.terminate(buffer)

    assert code == 0 and took_s < 10
    assert [e["event"] for e in _log_events(buffer)][-1] == "buffer_stopped"
    producer.push("record", {}, via="buffer")
    assert amqp.queue_depth(AMQP_URL, settings.amqp_prefix, amqp.BUFFER_QUEUE) == 1
