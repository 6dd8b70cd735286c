"""A worker's jobs end to end: what the superqueuer assigns it arrives in its inbox and runs there
(at most slots at a time, the rest waiting on the worker), a message that never came is handed
back and a copy of it arriving later is dropped, and a report PostgreSQL cannot store fails only
its own job."""

from __future__ import annotations

import dataclasses

import pytest

from lzq import amqp
from tests.conftest import wait_until
from tests.e2e.conftest import overlapping_runs, status_counts

pytestmark = pytest.mark.e2e

_ON_WORKER = "SELECT count(*) FROM lzq_jobs WHERE status = 'running'"
_INBOX = "SELECT worker_id, inbox FROM lzq_workers WHERE inbox IS NOT NULL"


def test_a_worker_is_given_its_slots_plus_the_margin_and_runs_them_a_slot_at_a_time(
    daemons, client, runs_table, settings
):
    daemons.settings = dataclasses.replace(settings, prefetch_margin=3)
    refs = client.push_many([("record", {"sleep_s": 0.3}) for _ in range(6)])
    daemons.worker(1)
    wait_until(lambda: runs_table.execute(_INBOX).fetchall(), 30, message="the worker's inbox")
    daemons.superqueuer()

    # One slot plus a margin of 3: four jobs are the worker's at once, one of them running.
    wait_until(lambda: runs_table.execute(_ON_WORKER).fetchone() == (4,), 30, message="4 jobs assigned")
    wait_until(lambda: status_counts(runs_table) == {"succeeded": 6}, 30, message="6 jobs to succeed")
    assert overlapping_runs(runs_table) == []
    runs = runs_table.execute(
        "SELECT job_id, started_at, finished_at FROM e2e_runs ORDER BY started_at"
    ).fetchall()
    assert sorted(job_id for job_id, _, _ in runs) == [ref.id for ref in refs]
    assert all(earlier[2] <= later[1] for earlier, later in zip(runs, runs[1:], strict=False))  # one slot
    assert runs_table.execute("SELECT max(attempts) FROM lzq_jobs").fetchone() == (1,)


def test_a_job_whose_message_never_came_is_handed_back_and_a_late_copy_is_dropped(
    daemons, client, runs_table, settings
):
    # No superqueuer at first: the job is assigned in SQL and its message is not sent.
    ref = client.push("record", {})
    daemons.worker(2)
    wait_until(lambda: runs_table.execute(_INBOX).fetchall(), 30, message="the worker's inbox")
    [(inbox, token, body)] = runs_table.execute(
        "SELECT inbox, dispatch_token::text, json_build_array(id, dispatch_token, job_name, params,"
        " queue_name, priority, fairness_key, max_failures, attempt)::text FROM lzq_assign(10, 0, 30)"
    ).fetchall()
    assert client.get(ref).status == "running"

    # Older than the dispatch lease and not received: the worker gives it back, attempt uncounted.
    wait_until(lambda: client.get(ref).status == "ready", settings.dispatch_lease_s + 10, message="hand-back")
    assert client.get(ref).attempts == 0
    assert "jobs_undelivered" in daemons.logs()

    # The message turns up after all (a superqueuer that froze between commit and publish).
    publisher = amqp.Publisher(settings.amqp_url, settings.amqp_prefix)
    try:
        assert publisher.publish_to_inboxes([(inbox, amqp.encode_jobs([body.encode()]), token)]) == [True]
    finally:
        publisher.close()
    wait_until(lambda: "message_stale" in daemons.logs(), 10, message="the late copy dropped")
    assert runs_table.execute("SELECT count(*) FROM e2e_runs").fetchone() == (0,)

    daemons.superqueuer()
    wait_until(lambda: client.get(ref).status == "succeeded", 30, message="the job to run")
    assert runs_table.execute("SELECT attempt FROM e2e_runs").fetchall() == [(1,)]


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
