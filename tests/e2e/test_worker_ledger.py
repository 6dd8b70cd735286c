"""The worker's ledger: every start fence and report of a worker goes through one batched
transaction, and a report PostgreSQL cannot store fails only its own job."""

from __future__ import annotations

import dataclasses
import itertools
import uuid

import pytest

from lzq import amqp
from tests.conftest import wait_until
from tests.e2e.conftest import status_counts

pytestmark = pytest.mark.e2e


def test_a_freed_slot_starts_the_next_job_in_the_transaction_that_reports_the_last(
    daemons, client, runs_table, settings
):
    # One slot and room for all four messages: each report and the next start share a commit, so
    # the next job's started_at is the same now() as the last one's finished_at.
    daemons.settings = dataclasses.replace(settings, prefetch_margin=4)
    refs = client.push_many([("record", {"sleep_s": 0.05}) for _ in range(4)])
    daemons.superqueuer()
    daemons.worker(1)

    wait_until(lambda: status_counts(runs_table) == {"succeeded": 4}, 30, message="4 jobs to succeed")

    rows = runs_table.execute(
        "SELECT id, started_at, finished_at FROM lzq_jobs WHERE id = ANY (%s) ORDER BY started_at",
        ([ref.id for ref in refs],),
    ).fetchall()
    hand_overs = [(earlier[2], later[1]) for earlier, later in itertools.pairwise(rows)]
    assert [finished == started for finished, started in hand_overs] == [True, True, True]
    assert runs_table.execute("SELECT max(attempts) FROM lzq_jobs").fetchone() == (1,)


def test_an_error_text_postgresql_cannot_store_is_recorded_escaped_and_other_jobs_go_on(
    daemons, client, runs_table
):
    nul = client.push("raises", {"message": "before<NUL>after"}, max_failures=1)
    bad_delay = client.push("raises", {"delay_s": "nan"}, max_failures=1)
    others = client.push_many([("record", {}) for _ in range(20)])
    daemons.superqueuer()
    daemons.worker(4)

    wait_until(
        lambda: status_counts(runs_table) == {"succeeded": len(others), "failed": 2},
        30,
        message="the two failing jobs to fail and the others to succeed",
    )
    nul_error = client.get(nul).last_error
    assert "RuntimeError: before\\x00after" in nul_error
    assert "ValueError: delay_s: must be a number of seconds from 0 to" in client.get(bad_delay).last_error
    assert "report_refused" not in daemons.logs()


def test_a_message_of_several_jobs_runs_each_that_passes_the_fence_and_is_acked_once_all_are_done(
    daemons, client, runs_table, settings
):
    # A message as the superqueuer packs it for a margin of 3, one of its tokens stale. No
    # superqueuer runs: the jobs are claimed in SQL and the message is published by hand.
    refs = client.push_many([("record", {}) for _ in range(3)])
    daemons.worker(4)
    registered = "SELECT count(*) FROM lzq_workers"
    wait_until(lambda: runs_table.execute(registered).fetchone() == (1,), 30, message="the worker")
    claimed = runs_table.execute("SELECT id, dispatch_token FROM lzq_claim(10, 60, 0, 30)").fetchall()
    assert sorted(job_id for job_id, _ in claimed) == [ref.id for ref in refs]
    dispatches = [(job_id, str(token)) for job_id, token in claimed]
    stale = dispatches[1][0]
    dispatches[1] = (stale, str(uuid.uuid4()))
    publisher = amqp.Publisher(settings.amqp_url, settings.amqp_prefix)
    try:
        assert publisher.publish_many([("default", dispatches)]) == [True]
    finally:
        publisher.close()

    wait_until(lambda: status_counts(runs_table) == {"succeeded": 2, "dispatched": 1}, 30, message="2 runs")
    assert client.get(stale).status == "dispatched"  # its lease expires; the sweep re-dispatches it
    # Acked, not just consumed: once the worker is gone, nothing comes back to the queue.
    assert daemons.terminate(daemons.procs[0])[0] == 0
    assert amqp.queue_depth(settings.amqp_url, settings.amqp_prefix, "default") == 0
    assert "message_stale" in daemons.logs()
