"""Small helpers for the SQL tests: call lzq functions the way a plain-SQL user would, read rows back."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

Conn = psycopg.Connection


def push(conn: Conn, job_name: str = "job", params: dict | None = None, **options: Any) -> int:
    """lzq_push(job_name, params, options) -> id."""
    row = conn.execute(
        "SELECT lzq_push(%s, %s, %s)", (job_name, Jsonb(params or {}), Jsonb(options))
    ).fetchone()
    assert row is not None
    return row[0]


def push_many(conn: Conn, jobs: list[dict[str, Any]]) -> list[int]:
    """lzq_push_many(jobs) -> ids, in input order."""
    return [r[0] for r in conn.execute("SELECT * FROM lzq_push_many(%s)", (Jsonb(jobs),)).fetchall()]


def job(conn: Conn, job_id: int) -> dict[str, Any]:
    """The lzq_jobs row of one job, as a dict."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM lzq_jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None, f"job {job_id} not found"
    return row


def status(conn: Conn, job_id: int) -> str:
    return job(conn, job_id)["status"]


def count_jobs(conn: Conn) -> int:
    row = conn.execute("SELECT count(*) FROM lzq_jobs").fetchone()
    assert row is not None
    return row[0]


def seconds_from_now(conn: Conn, job_id: int, column: str = "run_at") -> float:
    """How far a job's timestamp column lies from the database's now(), in seconds."""
    row = conn.execute(
        f"SELECT extract(epoch FROM {column} - now())::float8 FROM lzq_jobs WHERE id = %s", (job_id,)
    ).fetchone()
    assert row is not None
    return row[0]


_NO_CASE = object()


@contextlib.contextmanager
def raises_invalid(
    column: str, *, message: str | None = None, prefix: str | None = None, case: Any = _NO_CASE
) -> Iterator[pytest.ExceptionInfo]:
    """Expect SQLSTATE 22023 naming `column` in diag.column_name (and, optionally, a message part).

    The message must start with `prefix` (default "<column>: "). `case` names the input being tried
    when one test loops over several bad values: a failure then says which one got through.
    """
    try:
        with pytest.raises(psycopg.errors.InvalidParameterValue) as excinfo:
            yield excinfo
        exc = excinfo.value
        assert exc.sqlstate == "22023"
        assert exc.diag.column_name == column, exc.diag.message_primary
        primary = exc.diag.message_primary or ""
        # The message leads with the field so it is readable without \errverbose.
        assert primary.startswith(prefix if prefix is not None else f"{column}: "), primary
        if message is not None:
            assert message in primary, primary
    except BaseException as failure:
        if case is not _NO_CASE:
            failure.add_note(f"while trying {case!r}")
        raise


def heartbeat(
    conn: Conn,
    worker_id: str = "w1",
    queues: tuple[str, ...] | list[str] = ("default",),
    slots: int = 1,
    stopping: bool = False,
) -> bool:
    """lzq_heartbeat: register (or refresh) a worker; returns whether the row was created."""
    row = conn.execute(
        "SELECT lzq_heartbeat(%s, %s, %s, %s, %s, %s)",
        (worker_id, "host", 1234, list(queues), slots, stopping),
    ).fetchone()
    assert row is not None
    return row[0]


def claim(
    conn: Conn, max_jobs: int = 100, lease_s: int = 60, margin_per_worker: int = 0, dead_after_s: int = 30
) -> list[tuple]:
    """lzq_claim rows: (id, dispatch_token, queue_name)."""
    return conn.execute(
        "SELECT * FROM lzq_claim(%s, %s, %s, %s)", (max_jobs, lease_s, margin_per_worker, dead_after_s)
    ).fetchall()


def inbox(conn: Conn, worker_id: str = "w1", name: str | None = None) -> bool:
    """lzq_worker_inbox: name the worker's inbox (default: "inbox-<worker_id>")."""
    row = conn.execute(
        "SELECT lzq_worker_inbox(%s, %s)", (worker_id, name or f"inbox-{worker_id}")
    ).fetchone()
    assert row is not None
    return row[0]


def assign(conn: Conn, max_jobs: int = 100, margin_per_worker: int = 0, dead_after_s: int = 30) -> list[dict]:
    """lzq_assign rows as dicts, in dispatch order."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM lzq_assign(%s, %s, %s)", (max_jobs, margin_per_worker, dead_after_s)
        ).fetchall()


def claimed_ids(conn: Conn, max_jobs: int = 100) -> list[int]:
    """Ids lzq_claim dispatched (no slot margin), in dispatch order: it returns them in that order."""
    return [row[0] for row in claim(conn, max_jobs=max_jobs)]


def deliveries(*pairs: tuple[int, Any]) -> Jsonb:
    """[{"id": ..., "token": ...}] as the worker sends it."""
    return Jsonb([{"id": job_id, "token": str(token)} for job_id, token in pairs])


def start(conn: Conn, worker_id: str, *pairs: tuple[int, Any]) -> list[dict[str, Any]]:
    """lzq_start rows as dicts."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM lzq_start(%s, %s)", (worker_id, deliveries(*pairs))).fetchall()


def finish(conn: Conn, worker_id: str, *reports: dict[str, Any]) -> list[tuple[int, str]]:
    """lzq_finish rows: (id, status)."""
    return conn.execute("SELECT * FROM lzq_finish(%s, %s)", (worker_id, Jsonb(list(reports)))).fetchall()


def handback(conn: Conn, worker_id: str | None, *pairs: tuple[int, Any]) -> list[int]:
    rows = conn.execute("SELECT * FROM lzq_handback(%s, %s)", (worker_id, deliveries(*pairs))).fetchall()
    return [r[0] for r in rows]


def sweep(conn: Conn, dead_after_s: int = 30) -> list[tuple[int, str, str]]:
    return conn.execute("SELECT * FROM lzq_sweep(%s)", (dead_after_s,)).fetchall()


def dispatched_job(
    conn: Conn, worker_id: str = "w1", job_name: str = "job", **options: Any
) -> tuple[int, Any]:
    """A job pushed and claimed for a live worker: (id, dispatch_token).

    The claim must take this job alone: push other ready jobs only after calling this.
    """
    heartbeat(conn, worker_id, queues=[options.get("queue_name", "default")], slots=10)
    job_id = push(conn, job_name, **options)
    claimed = claim(conn)
    assert [row[0] for row in claimed] == [job_id], f"claimed {claimed}, wanted job {job_id} alone"
    return job_id, claimed[0][1]


def running_job(conn: Conn, worker_id: str = "w1", job_name: str = "job", **options: Any) -> tuple[int, Any]:
    """A job pushed, claimed and started by `worker_id`: (id, dispatch_token); its attempt is 1."""
    job_id, token = dispatched_job(conn, worker_id, job_name, **options)
    assert [r["id"] for r in start(conn, worker_id, (job_id, token))] == [job_id]
    return job_id, token


def schema_snapshot(conn: Conn, schema: str = "public") -> dict[str, list[tuple]]:
    """Tables, columns, indexes, constraints and functions of a schema: equal means unchanged.

    Nothing in it names the schema itself, so two installs in different schemas compare equal.
    """
    queries = {
        "columns": """SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                             pg_get_expr(d.adbin, d.adrelid)
                        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                        LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
                       WHERE n.nspname = %(s)s ORDER BY 1, 2""",
        "relations": """SELECT c.relname, c.relkind
                          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                         WHERE n.nspname = %(s)s ORDER BY 1""",
        "indexes": """SELECT indexname, replace(indexdef, 'ON ' || %(s)s || '.', 'ON ')
                        FROM pg_indexes WHERE schemaname = %(s)s ORDER BY 1""",
        "constraints": """SELECT conname, replace(pg_get_constraintdef(co.oid), %(s)s || '.', '')
                            FROM pg_constraint co
                            JOIN pg_namespace n ON n.oid = co.connamespace
                           WHERE n.nspname = %(s)s ORDER BY 1""",
        "functions": """SELECT p.proname || '('
                                   || replace(pg_get_function_identity_arguments(p.oid), %(s)s || '.', '')
                                   || ')',
                               replace(pg_get_function_result(p.oid), %(s)s || '.', ''), md5(p.prosrc),
                               obj_description(p.oid, 'pg_proc')
                          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                         WHERE n.nspname = %(s)s ORDER BY 1""",
    }
    return {name: conn.execute(sql, {"s": schema}).fetchall() for name, sql in queries.items()}


def notifications_until_sentinel(listener: Conn, sender: Conn, timeout_s: float = 5.0) -> list[str]:
    """Payloads `listener` received on channel lzq before a sentinel NOTIFY sent now by `sender`.

    Notifications are delivered in commit order, so whatever earlier transactions sent arrives before
    the sentinel: no sleeping and no guessing how long to wait for a NOTIFY that should not come.
    """
    sender.execute("SELECT pg_notify('lzq', '--sentinel--')")
    if not sender.autocommit:
        sender.commit()
    payloads = []
    for notify in listener.notifies(timeout=timeout_s):
        if notify.channel == "lzq" and notify.payload == "--sentinel--":
            return payloads
        payloads.append(notify.payload)
    raise AssertionError(f"sentinel not received within {timeout_s}s (got {payloads})")


def wait_until_blocked(conn: Conn, blocked: Conn, timeout_s: float = 5.0) -> None:
    """Wait until `blocked`'s backend waits on a lock (it runs a statement in another thread)."""
    pid = blocked.info.backend_pid
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if conn.execute("SELECT cardinality(pg_blocking_pids(%s)) > 0", (pid,)).fetchone()[0]:
            return
        time.sleep(0.01)
    raise AssertionError(f"backend {pid} did not block within {timeout_s}s")


def checks_done(conn: Conn, *results: dict[str, Any]) -> list[int]:
    """lzq_checks_done(results) as the superqueuer reports its readiness evaluations: the ids that moved."""
    rows = conn.execute("SELECT * FROM lzq_checks_done(%s)", (Jsonb(list(results)),)).fetchall()
    return sorted(r[0] for r in rows)


def limited_job(conn: Conn, limits: list[dict[str, Any]], job_name: str = "job", **options: Any) -> int:
    """A ready job carrying limit_to `limits` ([{"key": ..., "count": n}]), as the superqueuer leaves it:
    pushed with a readiness check, which then passed with those limits."""
    job_id = push(conn, job_name, depends_on=["#is_ready_to_run"], **options)
    assert checks_done(conn, {"id": job_id, "outcome": "passed", "limits": limits}) == [job_id]
    return job_id


def wait_until_done_or_blocked(conn: Conn, blocked: Conn, future: Any, timeout_s: float = 5.0) -> bool:
    """Wait until `future` (a statement of `blocked` run in another thread) is done or waits on a lock.

    For steps that may or may not have to wait: returns whether it was blocked.
    """
    pid = blocked.info.backend_pid
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if future.done():
            return False
        if conn.execute("SELECT cardinality(pg_blocking_pids(%s)) > 0", (pid,)).fetchone()[0]:
            return True
        time.sleep(0.01)
    raise AssertionError(f"backend {pid} neither finished nor blocked within {timeout_s}s")


def explained(conn: Conn, sql: str, params: object = None) -> tuple[list, list[str]]:
    """Run one statement with auto_explain reporting, as NOTICEs, the plan of every statement it
    runs (those inside PL/pgSQL functions too); returns (its rows, those plans)."""
    notices: list[str] = []

    def collect(diag: psycopg.errors.Diagnostic) -> None:
        notices.append(diag.message_primary or "")

    conn.add_notice_handler(collect)
    conn.execute("LOAD 'auto_explain'")
    conn.execute("SET auto_explain.log_min_duration = 0")
    conn.execute("SET auto_explain.log_nested_statements = on")
    conn.execute("SET auto_explain.log_level = 'notice'")
    try:
        rows = conn.execute(sql, params).fetchall()
    finally:
        conn.execute("SET auto_explain.log_min_duration = -1")
        conn.remove_notice_handler(collect)
    return rows, notices
