"""The worker's ledger against a real database: a batch of reports PostgreSQL refuses is split so
that only the culprit's report changes (to a plain `failed` saying why) and every other job goes on."""

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
    conn.execute("SELECT lzq_worker_inbox(%s, 'inbox')", (worker.worker_id,))
    ids = [ref.id for ref in client.push_many([("noop", {}), ("noop", {}), ("noop", {})])]
    assigned = conn.execute("SELECT id FROM lzq_assign(10)").fetchall()
    assert sorted(job_id for (job_id,) in assigned) == ids

    reports = [
        {"id": ids[0], "attempt": 1, "outcome": "succeeded"},
        {"id": ids[1], "attempt": 1, "outcome": "exploded", "error": "handler trace"},
    ]
    assert worker._commit_reports(reports) == {ids[0]: "succeeded", ids[1]: "failed"}

    [(error,)] = conn.execute("SELECT last_error FROM lzq_jobs WHERE id = %s", (ids[1],)).fetchall()
    assert error.startswith(_REFUSED_REPORT)
    assert "outcome" in error and error.endswith("the handler said: handler trace")
    statuses = dict(conn.execute("SELECT id, status FROM lzq_jobs").fetchall())
    assert statuses == {ids[0]: "succeeded", ids[1]: "failed", ids[2]: "running"}
