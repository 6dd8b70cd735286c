"""PostgreSQL access: the only module that imports psycopg (connections, pools, LISTEN, error mapping)."""

from __future__ import annotations

import contextlib
import select
import time
import weakref
from collections.abc import Iterator
from typing import Any

import psycopg
import psycopg_pool
from psycopg.types.json import Jsonb

from lzq.errors import InvalidArgument, JobNotFound, LeaseLost, LzqError

#: Errors a daemon survives by reconnecting and trying again (server restart, network, pool starved).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg_pool.PoolTimeout,
)

#: A value PostgreSQL cannot read as its type (SQLSTATE class 22: an unparsable interval, an overflow).
#: 22023, lzq's own bad-input error, is raised as InvalidArgument by the functions below instead.
DATA_ERRORS: tuple[type[BaseException], ...] = (psycopg.DataError,)

NOTIFY_CHANNEL = "lzq"


def json(value: Any) -> Jsonb:
    """Adapt a Python value to a jsonb parameter."""
    return Jsonb(value)


def connect(dsn: str, *, autocommit: bool = True, application_name: str = "lzq") -> psycopg.Connection:
    """A new connection. Autocommit by default: every lzq function is one statement, one transaction."""
    return psycopg.connect(dsn, autocommit=autocommit, application_name=application_name)


def reopened(conn: psycopg.Connection | None, dsn: str, *, application_name: str) -> psycopg.Connection:
    """``conn`` if it is open, else a new connection (``connect``): how a daemon's long-lived
    connection comes back after an outage closed it (or before its first use, when None)."""
    if conn is not None and not conn.closed:
        return conn
    return connect(dsn, application_name=application_name)


def pool(dsn: str, *, max_size: int = 4, application_name: str = "lzq") -> psycopg_pool.ConnectionPool:
    """An autocommit pool that checks connections idle for a second or more on checkout, so a
    restarted server is survived. Returned with its first connection open.

    Why wait for it: a checkout that finds the pool empty makes it grow, and psycopg_pool hands its
    connections out in turn (first in, first out), so a single-threaded producer whose first push
    raced the pool's opening then alternated between two server backends, each idle every other
    push: 40 us more a push (7%) than with one connection, measured with 300-push rounds.
    """
    opened = psycopg_pool.ConnectionPool(
        dsn,
        min_size=1,
        max_size=max_size,
        kwargs={"autocommit": True, "application_name": application_name},
        check=_check_if_idle,
        open=True,
    )
    try:
        opened.wait()  # PoolTimeout after 30 s if the server cannot be reached, as a checkout would
    except BaseException:
        opened.close()
        raise
    return opened


# A connection used less than this long ago is not checked again: the check is a round trip (a
# third of a push's time), and a connection that just worked is almost surely alive. One that
# waited longer (where a server restart or a dropped link shows up) is. Its last use is taken to
# be its last checkout (lzq runs one statement per checkout), noted by the check itself: psycopg_pool
# runs a `reset` callback on a worker thread, and that hop cost each push 70-90 us.
_CHECK_IDLE_AFTER_S = 1.0
_checked_out_at: weakref.WeakKeyDictionary[psycopg.Connection, float] = weakref.WeakKeyDictionary()


def _check_if_idle(conn: psycopg.Connection) -> None:
    now = time.monotonic()
    last = _checked_out_at.get(conn, float("-inf"))
    _checked_out_at[conn] = now
    if now - last >= _CHECK_IDLE_AFTER_S:
        psycopg_pool.ConnectionPool.check_connection(conn)


@contextlib.contextmanager
def translated_errors() -> Iterator[None]:
    """Map lzq's SQLSTATEs to LzqError subclasses: 22023 → InvalidArgument, P0002 → JobNotFound,
    55000 → LeaseLost."""
    try:
        yield
    except psycopg.errors.InvalidParameterValue as exc:
        raise InvalidArgument(exc.diag.column_name, exc.diag.message_primary or str(exc)) from None
    except psycopg.errors.NoDataFound as exc:
        message = exc.diag.message_primary or ""
        job_id = int(message.split()[1]) if message.startswith("job ") else -1
        raise JobNotFound(job_id) from None
    except psycopg.errors.ObjectNotInPrerequisiteState as exc:
        raise LeaseLost(exc.diag.message_primary or str(exc)) from None
    except psycopg.errors.UndefinedFunction as exc:
        raise LzqError(f"{exc.diag.message_primary}: is the database migrated? run `lzq migrate`") from None


def fetch(conn: psycopg.Connection, sql: str, params: Any = None) -> list[tuple]:
    """Run one statement and return all its rows, with lzq errors translated."""
    with translated_errors(), conn.cursor() as cur:
        cur.execute(sql, params)
        return _rows(cur)


def _rows(cur: psycopg.Cursor) -> list[tuple]:
    """The current result's rows; none for a statement that returns no result set.

    Asked of ``rownumber``, not ``description``: that builds a Column per column on each access
    (8 us for the ledger's ten, 4% of a worker's CPU in a drain).
    """
    return cur.fetchall() if cur.rownumber is not None else []


def fetch_together(conn: psycopg.Connection, statements: list[tuple[str, Any]]) -> list[list[tuple]]:
    """Run several statements in one round trip; rows of each. They run in order and in one
    transaction, even on an autocommit connection (an error in any of them undoes all).

    One simple-protocol query with the parameters bound client-side (psycopg's ClientCursor), not
    libpq's pipeline mode: psycopg drives a pipeline from Python, and for the superqueuer's pass
    (promote, due checks, claim) that cost 190-280 us of client CPU against 100-115, in the same
    wall time. Parameters are ints, booleans and ids of our own, quoted by psycopg.
    """
    if len(statements) == 1:  # server-side binding: psycopg prepares a statement it runs often
        return [fetch(conn, *statements[0])]
    sql = "; ".join(statement for statement, _ in statements)
    params = [param for _, values in statements for param in values]
    results = []
    with translated_errors(), psycopg.ClientCursor(conn) as cur:
        cur.execute(sql, params)
        while True:
            results.append(_rows(cur))
            if not cur.nextset():
                return results


class Listener:
    """A dedicated connection LISTENing on the lzq channel; ``wait`` returns the payloads received."""

    def __init__(self, dsn: str, application_name: str = "lzq-listener") -> None:
        self._conn = connect(dsn, application_name=application_name)
        self._conn.execute(f"LISTEN {NOTIFY_CHANNEL}")

    def wait(self, timeout_s: float) -> list[str]:
        """Block up to timeout_s for notifications; returns their payloads (possibly none)."""
        payloads = [n.payload for n in self._drain()]
        if payloads or timeout_s <= 0:
            return payloads
        # Sleep on the socket, not in Python: wakes as soon as the server sends something.
        ready, _, _ = select.select([self._conn.fileno()], [], [], timeout_s)
        if ready:
            payloads = [n.payload for n in self._drain()]
        return payloads

    def _drain(self) -> list[psycopg.Notify]:
        return list(self._conn.notifies(timeout=0))

    def close(self) -> None:
        self._conn.close()
