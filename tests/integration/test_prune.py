"""Pruning from Python: the superqueuer's Pruner (a batch per turn, every interval, quiet when idle),
a running superqueuer, and `lzq prune` on the command line."""

from __future__ import annotations

import dataclasses
from typing import Any

import psycopg
import pytest
import structlog
from click.testing import CliRunner

from lzq import db
from lzq.cli import cli
from lzq.config import Settings
from lzq.errors import ConfigurationError
from lzq.maintenance import Pruner
from lzq.superqueuer import Superqueuer
from tests.conftest import wait_until
from tests.integration.helpers import running


class Recorder:
    """Stands in for a structlog logger: keeps (event, fields)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))


def old_final_jobs(conn: psycopg.Connection, n: int, age: str = "2 days") -> list[int]:
    """n cancelled jobs that finished `age` ago."""
    ids = [conn.execute("SELECT lzq_push('job')").fetchone()[0] for _ in range(n)]
    for job_id in ids:
        conn.execute("SELECT lzq_cancel(%s)", (job_id,))
    conn.execute(
        "UPDATE lzq_jobs SET finished_at = finished_at - %s::interval WHERE id = ANY (%s)", (age, ids)
    )
    return ids


def job_count(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM lzq_jobs").fetchone()[0]


# -- Pruner ---------------------------------------------------------------------------------------


def test_pruner_deletes_a_batch_per_turn_sooner_while_batches_come_back_full(dsn, conn):
    old_final_jobs(conn, 3)
    recorder = Recorder()
    pruner = Pruner("1 day", recorder, batch=2, interval_s=3600, backlog_interval_s=0)
    with db.connect(dsn) as pruner_conn:
        assert pruner.run_once(pruner_conn) == 2  # full: the next turn comes at once
        assert pruner.run_once(pruner_conn) == 1  # short: the next one in an hour
        assert pruner.run_once(pruner_conn) == 0
    assert job_count(conn) == 0
    assert recorder.events == [
        ("jobs_pruned", {"count": 2, "older_than": "1 day"}),
        ("jobs_pruned", {"count": 1, "older_than": "1 day"}),
    ]


def test_pruner_stays_quiet_when_nothing_is_old_enough(dsn, conn):
    old_final_jobs(conn, 2, age="1 hour")
    recorder = Recorder()
    with db.connect(dsn) as pruner_conn:
        assert Pruner("1 day", recorder).run_once(pruner_conn) == 0
    assert job_count(conn) == 2 and recorder.events == []


def test_pruner_with_retention_off_does_nothing(dsn, conn):
    old_final_jobs(conn, 2)
    assert Settings(retention="off").retention_interval is None
    with db.connect(dsn) as pruner_conn:
        assert Pruner(None, Recorder()).run_once(pruner_conn) == 0
    assert job_count(conn) == 2


@pytest.mark.parametrize("retention", ["a fortnight", "-1 day"])
def test_pruner_with_an_unusable_retention_raises_configuration_error(dsn, retention):
    with db.connect(dsn) as pruner_conn, pytest.raises(ConfigurationError, match="LZQ_RETENTION="):
        Pruner(retention, Recorder()).run_once(pruner_conn)


def test_pruner_skips_its_turn_while_another_pruner_works(dsn, conn):
    old_final_jobs(conn, 3)
    with db.connect(dsn, autocommit=False) as other, db.connect(dsn) as pruner_conn:
        assert other.execute("SELECT lzq_prune('1 day', 1)").fetchone()[0] == 1  # holds the lock
        pruner = Pruner("1 day", Recorder(), interval_s=3600)
        assert pruner.run_once(pruner_conn) == 0  # at once, not waiting for `other`
        other.commit()
        assert pruner.run_once(pruner_conn) == 0  # a skipped turn waits for the next interval
    assert job_count(conn) == 2


def test_a_running_superqueuer_prunes_with_the_retention_setting(settings, conn):
    old = old_final_jobs(conn, 2, age="2 hours")
    recent = old_final_jobs(conn, 1, age="10 minutes")
    superqueuer = Superqueuer(dataclasses.replace(settings, retention="1 hour"))
    assert superqueuer.run_once() == 0  # a pass leaves pruning to the upkeep thread
    assert job_count(conn) == 3
    with running(superqueuer):
        wait_until(lambda: job_count(conn) == 1, 10, message="the old jobs pruned")
    remaining = [r[0] for r in conn.execute("SELECT id FROM lzq_jobs ORDER BY id")]
    assert remaining == recent and not set(old) & set(remaining)


def test_a_superqueuer_with_an_unusable_retention_stops_with_configuration_error(settings):
    superqueuer = Superqueuer(dataclasses.replace(settings, retention="a fortnight"))
    with pytest.raises(ConfigurationError, match="LZQ_RETENTION="):
        superqueuer.run()  # raised by the loop, from the upkeep thread's first turn


# -- lzq prune ------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _unconfigure_logging():
    """The CLI configures structlog to print to the stderr CliRunner lends it, closed afterwards."""
    yield
    structlog.reset_defaults()


def test_lzq_prune_deletes_in_batches_until_none_is_left_and_prints_the_count(dsn, conn):
    old_final_jobs(conn, 5, age="2 hours")
    kept = old_final_jobs(conn, 1, age="10 minutes")
    result = CliRunner().invoke(cli, ["prune", "--dsn", dsn, "--older-than", "1 hour", "--batch", "2"])
    assert result.exit_code == 0, result.output
    assert result.output == "pruned 5 rows (finished jobs and buffer records) older than 1 hour\n"
    assert [r[0] for r in conn.execute("SELECT id FROM lzq_jobs")] == kept


def test_lzq_prune_defaults_to_lzq_retention(dsn, conn):
    old_final_jobs(conn, 1, age="2 hours")
    result = CliRunner().invoke(cli, ["prune", "--dsn", dsn], env={"LZQ_RETENTION": "90 minutes"})
    assert result.exit_code == 0, result.output
    assert "pruned 1 rows" in result.output and "older than 90 minutes" in result.output
    assert job_count(conn) == 0


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--older-than", "a fortnight"], {}, "Invalid value for --older-than: older_than: cannot read"),
        (["--older-than", "-1 day"], {}, "older_than: must be an interval of 0 or more"),
        ([], {"LZQ_RETENTION": "never"}, "LZQ_RETENTION='never' keeps jobs: give --older-than"),
    ],
)
def test_lzq_prune_refuses_an_unusable_or_missing_interval(dsn, conn, args, env, message):
    old_final_jobs(conn, 1)
    result = CliRunner().invoke(cli, ["prune", "--dsn", dsn, *args], env=env)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert job_count(conn) == 1
