"""Shared fixtures: a migrated template database cloned fresh per test, RabbitMQ names per test.

PostgreSQL comes from pytest-postgresql (``postgresql_noproc``) against the server named by the
usual libpq variables (PGHOST, PGPORT, PGUSER; default 127.0.0.1:5432, user postgres); bin/test
starts one if none answers. RabbitMQ comes from LZQ_AMQP_URL (default guest@127.0.0.1).
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from pytest_postgresql import factories
from pytest_postgresql.janitor import DatabaseJanitor

import lzq
from lzq import schema
from lzq.client import Client
from lzq.config import DEFAULT_AMQP_URL, Settings

PG_HOST = os.environ.get("PGHOST", "127.0.0.1")
PG_PORT = int(os.environ.get("PGPORT", "5432"))
PG_USER = os.environ.get("PGUSER", "postgres")
AMQP_URL = os.environ.get("LZQ_AMQP_URL", DEFAULT_AMQP_URL)


def _migrate(**conn_kwargs: object) -> None:
    """pytest-postgresql loader: install lzq into the template database once per session."""
    keys = ("host", "port", "user", "password", "dbname")
    schema.migrate(make_conninfo(**{k: conn_kwargs[k] for k in keys if conn_kwargs.get(k) is not None}))


postgresql_noproc = factories.postgresql_noproc(
    host=PG_HOST,
    port=PG_PORT,
    user=PG_USER,
    # A name of our own per run: never reuse (or trip over) a database a crashed run left behind.
    dbname=f"lzq_test_{os.getpid()}_{uuid.uuid4().hex[:6]}",
    load=[_migrate],
)
postgresql = factories.postgresql("postgresql_noproc")


@contextlib.contextmanager
def module_database(noproc: Any, suffix: str) -> Iterator[str]:
    """A database cloned from the migrated template for a whole module; yields its conninfo.

    For tests that write nothing (bad input), so they need not pay for a fresh clone per test.
    """
    dbname = f"{noproc.dbname}_{suffix}"
    janitor = DatabaseJanitor(
        user=noproc.user,
        host=noproc.host,
        port=noproc.port,
        password=noproc.password,
        dbname=dbname,
        template_dbname=noproc.template_dbname,
        maintenance_dbname=noproc.maintenance_dbname,
    )
    janitor.drop()  # a crashed run may have left it behind
    with janitor:
        yield make_conninfo(
            host=noproc.host, port=noproc.port, user=noproc.user, dbname=f"{noproc.dbname}_{suffix}"
        )


@pytest.fixture
def dsn(postgresql: psycopg.Connection) -> str:
    """Conninfo of this test's own freshly cloned, migrated database."""
    info = postgresql.info
    return make_conninfo(host=info.host, port=info.port, user=info.user, dbname=info.dbname)


@pytest.fixture
def conn(postgresql: psycopg.Connection) -> psycopg.Connection:
    """An autocommit connection to this test's database (each statement is its own transaction)."""
    postgresql.autocommit = True
    return postgresql


@pytest.fixture
def client(dsn: str) -> Iterator[Client]:
    with Client(dsn=dsn) as c:
        yield c


@pytest.fixture
def env_default_client(dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """LZQ_DSN points at this test's database and lzq builds a fresh default client from it."""
    monkeypatch.setenv("LZQ_DSN", dsn)
    monkeypatch.setattr(lzq, "_default_client", None)
    yield
    if lzq._default_client is not None:
        lzq._default_client.close()


@pytest.fixture
def amqp_prefix() -> Iterator[str]:
    """A RabbitMQ queue prefix of this test's own; its queues are deleted afterwards."""
    prefix = f"lzqtest-{uuid.uuid4().hex[:10]}"
    yield prefix
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        for name in ("default", "other", "emails", "reports", "buffer"):
            with contextlib.suppress(pika.exceptions.ChannelClosedByBroker):
                connection.channel().queue_delete(f"{prefix}.{name}")
    finally:
        connection.close()


@pytest.fixture
def settings(dsn: str, amqp_prefix: str) -> Settings:
    """Settings for this test's database and queues, with timings short enough for tests."""
    return Settings(
        dsn=dsn,
        amqp_url=AMQP_URL,
        amqp_prefix=amqp_prefix,
        dispatch_lease_s=5,
        heartbeat_s=0.5,
        worker_dead_after_s=3,
        poll_interval_s=0.5,
        sweep_interval_s=0.5,
        stop_grace_s=2.0,
    )


def wait_until(predicate, timeout_s: float, interval_s: float = 0.1, message: str = "condition") -> None:
    """Poll ``predicate`` until it is truthy; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {message}")
