"""The superqueuer and workers' inboxes: a job published to an inbox that is gone comes back at once,
and that worker gets no more jobs until it names a new inbox."""

from __future__ import annotations

from structlog.testing import capture_logs

from lzq import amqp
from lzq.config import Settings
from lzq.superqueuer import Superqueuer
from tests.conftest import AMQP_URL


def test_a_job_sent_to_an_inbox_that_is_gone_is_handed_back_and_the_inbox_forgotten(
    settings: Settings, conn, sql_worker
):
    gone = amqp.Inbox(AMQP_URL, lambda _body: None)
    gone.connect()
    gone_name = gone.name
    gone.close()  # the worker's connection dropped: RabbitMQ deleted its inbox
    conn.execute("SELECT lzq_heartbeat('w1', 'h', 1, '{default}', 4)")
    conn.execute("SELECT lzq_worker_inbox('w1', %s)", (gone_name,))
    [(job_id,)] = conn.execute("SELECT lzq_push('j')").fetchall()
    superqueuer = Superqueuer(settings)
    try:
        with capture_logs() as logs:
            assert superqueuer.run_once() == 0
        assert conn.execute("SELECT status, attempts, worker_id FROM lzq_jobs").fetchall() == [
            ("ready", 0, None)
        ]
        assert conn.execute("SELECT inbox FROM lzq_workers").fetchall() == [(None,)]
        [returned] = [e for e in logs if e["event"] == "publish_returned"]
        assert (returned["count"], returned["gone_inboxes"]) == (1, [gone_name])

        assert superqueuer.run_once() == 0  # no inbox, no jobs: nothing comes back again and again
        assert conn.execute("SELECT status FROM lzq_jobs").fetchall() == [("ready",)]

        sql_worker("w2")  # a worker with an inbox takes it
        assert superqueuer.run_once() == 1
        assert conn.execute("SELECT status, worker_id FROM lzq_jobs WHERE id = %s", (job_id,)).fetchall() == [
            ("running", "w2")
        ]
    finally:
        superqueuer._close()
