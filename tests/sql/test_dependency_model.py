"""Property: random DAGs with random outcomes end exactly as the Python reference model says."""

from __future__ import annotations

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from tests.model import dependency_outcomes


@st.composite
def dags(draw: st.DrawFn) -> tuple[dict[int, list[int]], dict[int, bool], set[int]]:
    size = draw(st.integers(min_value=1, max_value=14))
    parents = {
        i: sorted(draw(st.sets(st.integers(min_value=0, max_value=i - 1), max_size=3))) if i else []
        for i in range(size)
    }
    succeeds = {i: draw(st.booleans()) for i in range(size)}
    cancelled = draw(st.sets(st.integers(min_value=0, max_value=size - 1), max_size=2))
    return parents, succeeds, cancelled


def _run_everything(conn: psycopg.Connection) -> None:
    """Play superqueuer and worker by hand until nothing is left to run; outcome from params."""
    conn.execute("SELECT lzq_heartbeat('w', 'h', 1, '{default}', 1000)")
    while True:
        claimed = conn.execute("SELECT id, dispatch_token FROM lzq_claim(1000)").fetchall()
        if not claimed:
            return
        started = conn.execute(
            "SELECT id, attempt, params FROM lzq_start('w', %s)",
            (Jsonb([{"id": i, "token": str(t)} for i, t in claimed]),),
        ).fetchall()
        reports = [
            {"id": i, "attempt": a, "outcome": "succeeded" if p["ok"] else "failed"} for i, a, p in started
        ]
        conn.execute("SELECT * FROM lzq_finish('w', %s)", (Jsonb(reports),))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dag=dags())
def test_random_dags_end_as_the_reference_model_says(conn: psycopg.Connection, dag) -> None:
    parents, succeeds, cancelled = dag
    conn.execute("TRUNCATE lzq_jobs, lzq_dependencies, lzq_workers CASCADE")
    ids: dict[int, int] = {}
    for job in sorted(parents):
        options = {"max_failures": 1, "depends_on": [ids[p] for p in parents[job]]}
        ids[job] = conn.execute(
            "SELECT lzq_push('model', %s, %s)", (Jsonb({"ok": succeeds[job]}), Jsonb(options))
        ).fetchone()[0]
    for job in sorted(cancelled):
        conn.execute("SELECT lzq_cancel(%s)", (ids[job],))

    _run_everything(conn)

    final = dict(conn.execute("SELECT id, status FROM lzq_jobs").fetchall())
    assert {job: final[ids[job]] for job in parents} == dependency_outcomes(parents, succeeds, cancelled)
