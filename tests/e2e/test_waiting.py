"""End to end: jobs that wait on other jobs, on readiness checks, and on limit_to slots."""

from __future__ import annotations

import time

import pytest
from psycopg.types.json import Jsonb

import lzq
import tests.e2e.app  # noqa: F401 - registers nothing, but lets the client see the handler classes
from tests.conftest import wait_until
from tests.e2e.conftest import status_counts

pytestmark = pytest.mark.e2e

LIMITED = "tests.e2e.app.Limited"
GATED = "tests.e2e.app.Gated"


def _final(conn, ids: list[int]) -> bool:
    return conn.execute(
        "SELECT count(*) FROM lzq_jobs WHERE id = ANY(%s) AND status IN ('succeeded', 'failed', 'cancelled')",
        (ids,),
    ).fetchone()[0] == len(ids)


def _max_concurrency(conn, bucket: str | None = None) -> int:
    """Most runs in progress at once, from the handlers' own start/end records."""
    return conn.execute(
        """SELECT coalesce(max(running), 0) FROM (
               SELECT sum(delta) OVER (ORDER BY at, delta) AS running FROM (
                   SELECT r.started_at AS at, 1 AS delta FROM e2e_runs r JOIN lzq_jobs j ON j.id = r.job_id
                    WHERE %(bucket)s::text IS NULL OR j.params ->> 'bucket' = %(bucket)s
                   UNION ALL
                   SELECT r.finished_at, -1 FROM e2e_runs r JOIN lzq_jobs j ON j.id = r.job_id
                    WHERE %(bucket)s::text IS NULL OR j.params ->> 'bucket' = %(bucket)s) AS events
           ) AS timeline""",
        {"bucket": bucket},
    ).fetchone()[0]


def test_limit_to_holds_across_superqueuers_and_workers(daemons, client, runs_table):
    jobs = client.push_many(
        [
            (LIMITED, {"bucket": "abc"[i % 3], "sleep_s": 0.3}, {"depends_on": ["#is_ready_to_run"]})
            for i in range(30)
        ]
    )
    daemons.superqueuer()
    daemons.superqueuer()
    daemons.worker(6)
    daemons.worker(6)

    wait_until(lambda: _final(runs_table, [j.id for j in jobs]), 90, message="30 limited jobs to finish")

    assert status_counts(runs_table) == {"succeeded": 30}
    assert _max_concurrency(runs_table) == 3  # limit_to(3): reached, never exceeded
    for bucket in "abc":
        assert _max_concurrency(runs_table, bucket) <= 2  # limit_to(2, bucket)
    assert runs_table.execute("SELECT count(*) FROM lzq_slots WHERE job_id IS NOT NULL").fetchone()[0] == 0


def test_dependencies_run_in_order_and_a_failure_cancels_the_chain(daemons, client, runs_table):
    first = client.push("record", {})
    second = client.push("record", {}, depends_on=[first])
    third = client.push("record", {}, depends_on=[second, first])
    doomed = client.push("record", {"fail_attempts": 99}, max_failures=1, depends_on=[first])
    after_doomed = client.push("record", {}, depends_on=[doomed])
    last = client.push("record", {}, depends_on=[after_doomed, third])
    assert client.get(last).waiting_for.startswith("dependencies: 2 unmet")
    daemons.superqueuer()
    daemons.worker(4)
    ids = [r.id for r in (first, second, third, doomed, after_doomed, last)]

    wait_until(lambda: _final(runs_table, ids), 30, message="the graph to settle")

    statuses = [client.get(i).status for i in ids]
    assert statuses == ["succeeded", "succeeded", "succeeded", "failed", "cancelled", "cancelled"]
    assert client.get(after_doomed).last_error == f"cancelled: dependency {doomed.id} failed"
    assert client.get(last).last_error == f"cancelled: dependency {after_doomed.id} cancelled"
    spans = dict(
        runs_table.execute(
            "SELECT job_id, tstzrange(started_at, finished_at, '[]') FROM e2e_runs WHERE job_id = ANY(%s)",
            ([first.id, second.id, third.id],),
        ).fetchall()
    )
    assert spans[first.id].upper <= spans[second.id].lower
    assert spans[second.id].upper <= spans[third.id].lower


def test_check_waits_for_its_condition_then_runs(daemons, client, runs_table):
    runs_table.execute("CREATE TABLE e2e_gates (gate text PRIMARY KEY)")
    job = client.push(GATED, {"gate": "open-sesame"}, depends_on=["#is_ready_to_run"])
    daemons.superqueuer()
    daemons.worker(2)
    time.sleep(2)
    info = client.get(job)
    assert info.status == "waiting"
    assert info.waiting_for.startswith("check: #is_ready_to_run not met yet")

    runs_table.execute("INSERT INTO e2e_gates VALUES ('open-sesame')")

    wait_until(lambda: _final(runs_table, [job.id]), 30, message="the gated job to run")
    assert client.get(job).status == "succeeded"


def test_any_of_chains_is_an_or(daemons, client, runs_table):
    job = client.push(GATED, {}, depends_on=["#either"])
    daemons.superqueuer()
    daemons.worker(2)
    wait_until(lambda: _final(runs_table, [job.id]), 20, message="the job to run")
    assert client.get(job).status == "succeeded"


def test_a_check_that_raises_means_not_ready_and_is_logged(daemons, client, runs_table):
    job = client.push(GATED, {}, depends_on=["#explodes"])
    superqueuer = daemons.superqueuer()
    daemons.worker(2)
    wait_until(
        lambda: "check_error" in superqueuer.log_path.read_text(), 20, message="the check error to be logged"
    )

    assert superqueuer.poll() is None
    assert client.get(job).status == "waiting"


def test_a_check_naming_a_missing_method_is_refused(daemons, client, conn):
    # The client knows the class (imported above), so it refuses at once...
    with pytest.raises(lzq.InvalidArgument) as excinfo:
        client.push(GATED, {}, depends_on=["#no_such_check"])
    assert excinfo.value.field == "depends_on"
    assert conn.execute("SELECT count(*) FROM lzq_jobs").fetchone()[0] == 0
    # ...and a producer that does not (plain SQL) gets the job failed by the superqueuer.
    job_id = conn.execute(
        "SELECT lzq_push(%s, '{}', %s)", (GATED, Jsonb({"depends_on": ["#no_such_check"]}))
    ).fetchone()[0]
    daemons.superqueuer()
    wait_until(lambda: client.get(job_id).status == "failed", 20, message="the job to fail")
    assert "no method 'no_such_check'" in client.get(job_id).last_error
