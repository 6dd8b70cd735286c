"""Fixtures for the integration tests (one daemon's code in this process, real services)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest

from lzq import amqp
from tests.conftest import AMQP_URL


@pytest.fixture
def sql_worker(conn: psycopg.Connection) -> Iterator[Callable[..., str]]:
    """Register workers played in SQL: ``sql_worker("w1", slots=8, queues=("default",))`` registers
    one with a real inbox (connected here, never read, closed after the test), so the superqueuer's
    publishes to it are confirmed; the test moves its jobs itself. Returns the inbox's name."""
    inboxes: list[amqp.Inbox] = []

    def register(worker_id: str = "w1", slots: int = 8, queues: tuple[str, ...] = ("default",)) -> str:
        inbox = amqp.Inbox(AMQP_URL, lambda _body: None, name=f"test {worker_id}")
        inbox.connect()
        inboxes.append(inbox)
        conn.execute("SELECT lzq_heartbeat(%s, 'h', 1, %s, %s)", (worker_id, list(queues), slots))
        conn.execute("SELECT lzq_worker_inbox(%s, %s)", (worker_id, inbox.name))
        return inbox.name

    yield register
    for inbox in inboxes:
        inbox.close()
