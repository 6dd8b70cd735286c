"""lzq.schema.migrate: installs schema.sql + functions/ once; running it again changes nothing."""

from __future__ import annotations

import threading

import psycopg
import pytest
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


def check_constraints(conn) -> list[str]:
    return [
        name
        for (name,) in conn.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'lzq_jobs'::regclass AND contype = 'c'"
            " ORDER BY conname"
        )
    ]


def test_migrate_replaces_the_six_old_checks_of_lzq_jobs_by_the_status_check(conn, dsn):
    job_id = push(conn, "kept")
    # lzq_jobs as installs before 2026-11-29 have it: six CHECKs, re-prepared by every statement.
    conn.execute(
        """ALTER TABLE lzq_jobs DROP CONSTRAINT lzq_jobs_status_known,
            ADD CONSTRAINT lzq_jobs_job_name_check CHECK (length(job_name) BETWEEN 1 AND 255),
            ADD CONSTRAINT lzq_jobs_params_check CHECK (jsonb_typeof(params) = 'object'),
            ADD CONSTRAINT lzq_jobs_queue_name_check CHECK (length(queue_name) BETWEEN 1 AND 200),
            ADD CONSTRAINT lzq_jobs_priority_check CHECK (priority BETWEEN -20 AND 20),
            ADD CONSTRAINT lzq_jobs_max_failures_check CHECK (max_failures >= 1),
            ADD CONSTRAINT lzq_jobs_status_check CHECK (status IN ('waiting', 'scheduled', 'ready',
                'dispatched', 'running', 'succeeded', 'failed', 'cancelled'))"""
    )
    conn.execute("DELETE FROM lzq_migrations")
    assert schema.migrate(dsn) is True
    assert check_constraints(conn) == ["lzq_jobs_status_known"]
    assert job(conn, job_id)["status"] == "ready"


def test_migrate_drops_the_old_foreign_key_on_recurring_id(conn, dsn):
    job_id = push(conn, "kept")
    # As installs before 2026-11-29 have it: every insert queued and fired its check.
    conn.execute(
        "ALTER TABLE lzq_jobs ADD CONSTRAINT lzq_jobs_recurring_id_fkey FOREIGN KEY (recurring_id)"
        " REFERENCES lzq_recurring (id) ON DELETE SET NULL"
    )
    conn.execute("DELETE FROM lzq_migrations")
    assert schema.migrate(dsn) is True
    foreign_keys = conn.execute(
        "SELECT count(*) FROM pg_constraint WHERE conrelid = 'lzq_jobs'::regclass AND contype = 'f'"
    ).fetchone()[0]
    assert foreign_keys == 0
    assert job(conn, job_id)["status"] == "ready"


def test_lzq_jobs_refuses_a_status_outside_the_state_machine(conn):
    job_id = push(conn)
    with pytest.raises(psycopg.errors.InvalidTextRepresentation, match="lzq_job_status"):
        conn.execute("UPDATE lzq_jobs SET status = 'done' WHERE id = %s", (job_id,))


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
