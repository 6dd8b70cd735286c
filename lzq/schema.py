"""`lzq migrate`: install or upgrade schema.sql + functions/*.sql, idempotently, in one transaction."""

from __future__ import annotations

import hashlib
from pathlib import Path

from lzq import __version__, db

# Serializes concurrent migrations (two deploys starting at once); any constant unique to lzq.
_MIGRATE_LOCK_KEY = 0x6C7A71_6D6967  # "lzq" "mig"


def sql_root() -> Path:
    """Where schema.sql and functions/ are: inside the wheel, or the source checkout."""
    packaged = Path(__file__).parent / "_sql"
    return packaged if (packaged / "schema.sql").exists() else Path(__file__).parent.parent


def sql_files() -> list[Path]:
    """schema.sql first, then every function file (helpers `_lzq_*` sort before `lzq_*`)."""
    root = sql_root()
    return [root / "schema.sql", *sorted((root / "functions").glob("*.sql"))]


def checksum(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def migrate(dsn: str) -> bool:
    """Apply the schema and functions unless this exact version is already installed.

    Returns True if anything was applied. Runs in one transaction under an advisory lock, so a
    failure leaves the database as it was and concurrent migrations wait for each other.
    """
    files = sql_files()
    version_checksum = checksum(files)
    with db.connect(dsn, autocommit=False, application_name="lzq-migrate") as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK_KEY,))
        installed = conn.execute("SELECT to_regclass('lzq_migrations') IS NOT NULL").fetchone()
        if installed and installed[0]:
            seen = conn.execute("SELECT 1 FROM lzq_migrations WHERE checksum = %s", (version_checksum,))
            if seen.fetchone():
                conn.rollback()
                return False
        # Function bodies may call functions defined in later files; validate at call time instead.
        conn.execute("SET LOCAL check_function_bodies = off")
        for path in files:
            conn.execute(path.read_text())
        conn.execute(
            "INSERT INTO lzq_migrations (version, checksum) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (__version__, version_checksum),
        )
        conn.commit()
    return True
