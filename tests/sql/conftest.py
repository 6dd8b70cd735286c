"""Fixtures for the SQL tests: extra connections to the test database, closed before it is dropped."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest


@pytest.fixture
def connect(dsn: str) -> Iterator[Callable[..., psycopg.Connection]]:
    """Open more connections to this test's database (for interleaving two sessions by hand).

    Non-autocommit by default, so a test holds a transaction open between steps; all are closed
    (rolling back whatever is still open) before the database goes away.
    """
    opened: list[psycopg.Connection] = []

    def _connect(autocommit: bool = False) -> psycopg.Connection:
        conn = psycopg.connect(dsn, autocommit=autocommit)
        opened.append(conn)
        return conn

    yield _connect
    for conn in opened:
        conn.close()


@pytest.fixture
def listener(connect: Callable[..., psycopg.Connection]) -> psycopg.Connection:
    """A session LISTENing on channel lzq."""
    conn = connect(autocommit=True)
    conn.execute("LISTEN lzq")
    return conn
