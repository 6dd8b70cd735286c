"""The worker's ledger against a real database: a batch PostgreSQL refuses is split so that only
the culprit's report changes (to a plain `failed` saying why) and every other job goes on."""

from __future__ import annotations

import psycopg

from lzq.client import Client
from lzq.config import Settings
from lzq.worker import _REFUSED_REPORT, Worker


def test_a_refused_report_fails_only_its_own_job(
    settings: Settings, client: Client, conn: psycopg.Connection
):
    worker = Worker(settings, ["default"], concurrency=4)
    worker._register()
    ids = [ref.id for ref in client.push_many([("noop", {}), ("noop", {}), ("noop", {})])]
    claimed = conn.execute("SELECT id, dispatch_token::text FROM lzq_claim(10)").fetchall()
    assert sorted(job_id for job_id, _ in claimed) == ids

    applied, started = worker._commit_ledger_batch([], claimed[:2])
    assert (applied, sorted(started)) == ({}, sorted(ids[:2]))

    # One transaction: two reports (one of them unacceptable to lzq_finish) and the third start.
    reports = [
        {"id": ids[0], "attempt": 1, "outcome": "succeeded"},
        {"id": ids[1], "attempt": 1, "outcome": "exploded", "error": "handler trace"},
    ]
    applied, started = worker._commit_ledger_batch(reports, claimed[2:])

    assert applied == {ids[0]: "succeeded", ids[1]: "failed"}
    assert list(started) == [ids[2]]
    [(error,)] = conn.execute("SELECT last_error FROM lzq_jobs WHERE id = %s", (ids[1],)).fetchall()
    assert error.startswith(_REFUSED_REPORT)
    assert "outcome" in error and error.endswith("the handler said: handler trace")
    statuses = dict(conn.execute("SELECT id, status FROM lzq_jobs").fetchall())
    assert statuses == {ids[0]: "succeeded", ids[1]: "failed", ids[2]: "running"}
