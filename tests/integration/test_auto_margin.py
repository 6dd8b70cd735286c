"""The superqueuer's automatic prefetch margin, read off a real database: recent durations and slots."""

from __future__ import annotations

import dataclasses

import psycopg
import pytest
from psycopg.types.json import Jsonb

from lzq.config import Settings
from lzq.superqueuer import Superqueuer


def finished_jobs(conn: psycopg.Connection, count: int, duration_s: float) -> None:
    conn.execute(
        """INSERT INTO lzq_jobs (job_name, fairness_key, status, attempts, started_at, finished_at)
           SELECT 'done', 'done', 'succeeded', 1, now() - make_interval(secs => %s), now()
             FROM generate_series(1, %s)""",
        (duration_s, count),
    )


@pytest.mark.parametrize(("duration_s", "margin"), [(0.0001, 32), (0.05, 4), (2.0, 1)])
def test_a_pass_sizes_the_margin_from_the_latest_durations_and_the_slots(
    sql_worker, settings, conn, duration_s, margin
):
    sql_worker("w1", slots=8)
    finished_jobs(conn, 300, duration_s)
    conn.execute("SELECT lzq_push_many(%s)", (Jsonb([{"job_name": "noop"}] * 50),))
    superqueuer = Superqueuer(settings)
    try:
        assert superqueuer.margin == 1  # nothing known yet
        superqueuer.run_once()  # claims with that, then sizes the margin for the next claims
        assert superqueuer.margin == margin
        superqueuer.run_once()
    finally:
        superqueuer._close()
    [(assigned,)] = conn.execute("SELECT count(*) FROM lzq_jobs WHERE status = 'running'")
    assert assigned == 8 + margin  # slots plus margin, assigned and published by the two passes


def test_a_fixed_margin_is_used_as_given(sql_worker, settings: Settings, conn):
    sql_worker("w1", slots=8)
    finished_jobs(conn, 10, 0.0001)
    superqueuer = Superqueuer(dataclasses.replace(settings, prefetch_margin="2"))
    try:
        superqueuer.run_once()
        assert superqueuer.margin == 2
    finally:
        superqueuer._close()
