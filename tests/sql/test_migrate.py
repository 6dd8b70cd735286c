"""lzq.schema.migrate: installs schema.sql + functions/ once; running it again changes nothing."""

from __future__ import annotations

import threading

from psycopg.conninfo import make_conninfo

from lzq import schema
from tests.sql.helpers import job, push, schema_snapshot


def fresh_schema_dsn(conn, dsn, name):
    """A DSN whose search_path is a new, empty schema: migrate then installs there from scratch."""
    conn.execute(f"CREATE SCHEMA {name}")
    return make_conninfo(dsn, options=f"-c search_path={name}")


def test_migrate_on_a_migrated_database_does_nothing(conn, dsn):
    before = schema_snapshot(conn)
    migrations = conn.execute("SELECT version, checksum, applied_at FROM lzq_migrations").fetchall()
    assert len(migrations) == 1
    assert schema.migrate(dsn) is False
    assert schema_snapshot(conn) == before
    assert conn.execute("SELECT version, checksum, applied_at FROM lzq_migrations").fetchall() == migrations


def test_migrate_installs_into_an_empty_schema_once(conn, dsn):
    fresh = fresh_schema_dsn(conn, dsn, "fresh")
    assert schema.migrate(fresh) is True
    installed = schema_snapshot(conn, "fresh")
    assert {"lzq_jobs", "lzq_workers", "lzq_superqueuers", "lzq_migrations"} <= {
        r[0] for r in installed["relations"]
    }
    assert any(f[0].startswith("lzq_push(") for f in installed["functions"])
    # Same tables, indexes, constraints and function bodies as the template the other tests use.
    assert installed == schema_snapshot(conn, "public")
    assert schema.migrate(fresh) is False
    assert schema_snapshot(conn, "fresh") == installed
    assert conn.execute("SELECT count(*) FROM fresh.lzq_migrations").fetchone()[0] == 1


def test_migrate_reapplied_over_an_install_keeps_data_and_schema(conn, dsn):
    job_id = push(conn, "kept", {"a": 1}, priority=3)
    conn.execute("SELECT lzq_heartbeat('w1', 'h', 1, ARRAY['default'], 2)")
    before = schema_snapshot(conn)
    # Forget the recorded checksum so every file runs again over the existing install.
    conn.execute("DELETE FROM lzq_migrations")
    assert schema.migrate(dsn) is True
    assert schema_snapshot(conn) == before
    row = job(conn, job_id)
    assert (row["job_name"], row["params"], row["priority"], row["status"]) == ("kept", {"a": 1}, 3, "ready")
    assert conn.execute("SELECT worker_id FROM lzq_workers").fetchall() == [("w1",)]
    assert push(conn) > job_id
    assert schema.migrate(dsn) is False


def test_concurrent_migrations_apply_once(conn, dsn):
    fresh = fresh_schema_dsn(conn, dsn, "fresh")
    results: list[bool] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(schema.migrate(fresh))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sorted(results) == [False, True]
    assert conn.execute("SELECT count(*) FROM fresh.lzq_migrations").fetchone()[0] == 1
