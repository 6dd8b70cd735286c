"""lzq_push_buffered: buffered pushes written in once per uuid; bad ones recorded, never blocking."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from psycopg.types.json import Jsonb

from tests.sql.helpers import (
    count_jobs,
    job,
    notifications_until_sentinel,
    push,
    raises_invalid,
    wait_until_blocked,
)


def buffered(conn, *pushes: dict[str, Any]) -> list[tuple]:
    """lzq_push_buffered rows: (uuid, job_id, outcome, error, field), uuids as strings."""
    rows = conn.execute("SELECT * FROM lzq_push_buffered(%s)", (Jsonb(list(pushes)),)).fetchall()
    return [(str(u) if u else None, *rest) for u, *rest in rows]


def a_push(job_name: str = "job", params: dict | None = None, **options: Any) -> dict[str, Any]:
    """A push as Client.push(..., via="buffer") publishes it, with a fresh uuid."""
    return {
        "uuid": str(uuid.uuid4()),
        "job_name": job_name,
        "job_params": params or {},
        "job_options": options,
    }


def recorded(conn) -> dict[str, tuple]:
    """lzq_buffered as {uuid: (job_id, error, error_field)}."""
    rows = conn.execute("SELECT uuid, job_id, error, error_field FROM lzq_buffered").fetchall()
    return {str(u): tuple(rest) for u, *rest in rows}


def test_push_buffered_creates_jobs_like_push_and_returns_their_ids_in_input_order(conn):
    pushes = [
        a_push("mailer", {"to": "a@b.c"}),
        a_push("report", priority=5, queue_name="emails", max_failures=9, fairness_key="t1"),
        a_push("later", start_time="+1 hour"),
    ]

    rows = buffered(conn, *pushes)

    assert [(u, outcome, error, field) for u, _, outcome, error, field in rows] == [
        (p["uuid"], "inserted", None, None) for p in pushes
    ]
    ids = [job_id for _, job_id, *_ in rows]
    assert ids == sorted(ids) and len(set(ids)) == 3
    jobs = [job(conn, i) for i in ids]
    assert [(j["job_name"], j["params"], j["status"]) for j in jobs] == [
        ("mailer", {"to": "a@b.c"}, "ready"),
        ("report", {}, "ready"),
        ("later", {}, "scheduled"),
    ]
    assert (jobs[1]["queue_name"], jobs[1]["priority"], jobs[1]["max_failures"], jobs[1]["fairness_key"]) == (
        "emails",
        5,
        9,
        "t1",
    )
    assert recorded(conn) == {p["uuid"]: (i, None, None) for p, i in zip(pushes, ids, strict=True)}


def test_push_buffered_twice_with_the_same_uuid_makes_one_job_and_writes_nothing_the_second_time(conn):
    one = a_push("mailer", {"n": 1})
    [(_, job_id, outcome, _, _)] = buffered(conn, one)
    assert outcome == "inserted"
    before = (count_jobs(conn), recorded(conn))

    # A redelivery, even with a body that differs: the uuid alone decides.
    again = buffered(conn, one, {**one, "job_params": {"n": 2}})

    assert again == [(one["uuid"], job_id, "duplicate", None, None)] * 2
    assert (count_jobs(conn), recorded(conn)) == before
    assert job(conn, job_id)["params"] == {"n": 1}


def test_push_buffered_repeated_within_one_batch_makes_one_job(conn):
    one, other = a_push("a"), a_push("b")

    rows = buffered(conn, one, other, one)

    assert [(u, outcome) for u, _, outcome, _, _ in rows] == [
        (one["uuid"], "inserted"),
        (other["uuid"], "inserted"),
        (one["uuid"], "duplicate"),
    ]
    assert rows[2][1] == rows[0][1]
    assert count_jobs(conn) == 2


def test_push_buffered_rejects_bad_pushes_records_them_and_inserts_the_rest(conn):
    good1, good2 = a_push("good1"), a_push("good2")
    bad = {
        "priority": a_push("x", priority=21),
        "job_name": a_push(""),
        "bogus": a_push("x", bogus=1),
        "job_params": {**a_push("x"), "job_params": [1]},
        "start_time": a_push("x", start_time="whenever"),
        "depends_on": a_push("x", depends_on=[999999]),
        "job": {**a_push("x"), "extra": True},
    }

    rows = buffered(conn, good1, *bad.values(), good2)

    assert [outcome for _, _, outcome, _, _ in rows] == ["inserted"] + ["rejected"] * len(bad) + ["inserted"]
    for (push_uuid, job_id, _, error, field), (expected_field, bad_push) in zip(
        rows[1:-1], bad.items(), strict=True
    ):
        assert (push_uuid, job_id, field) == (bad_push["uuid"], None, expected_field)
        assert error.startswith(f"{expected_field}: "), error
    assert {job(conn, rows[0][1])["job_name"], job(conn, rows[-1][1])["job_name"]} == {"good1", "good2"}
    # Nothing of the rejected ones but their record.
    assert count_jobs(conn) == 2
    assert conn.execute("SELECT count(*) FROM lzq_dependencies").fetchone()[0] == 0
    records = recorded(conn)
    assert {u: r for u, r in records.items() if r[0] is None} == {
        bad_push["uuid"]: (None, error, field)
        for (_, _, _, error, field), bad_push in zip(rows[1:-1], bad.values(), strict=True)
    }


def test_push_buffered_reports_a_rejected_push_again_on_redelivery_without_writing(conn):
    bad = a_push("x", priority=99)
    [first] = buffered(conn, bad)
    assert first[2] == "rejected"
    before = recorded(conn)

    [again] = buffered(conn, bad)

    assert again == (bad["uuid"], None, "duplicate", first[3], "priority")
    assert recorded(conn) == before and count_jobs(conn) == 0


def test_push_buffered_rejects_elements_without_a_uuid_without_recording_them(conn):
    good = a_push("good")
    cases = [
        {"job_name": "x"},
        {**a_push("x"), "uuid": "not-a-uuid"},
        {**a_push("x"), "uuid": 5},
        "a string",
        [1, 2],
    ]

    rows = buffered(conn, *cases, good)

    for push_uuid, job_id, outcome, error, field in rows[:-1]:
        assert (push_uuid, job_id, outcome, field) == (None, None, "rejected", "uuid")
        assert error.startswith("uuid: ")
    assert rows[-1][2] == "inserted"
    assert list(recorded(conn)) == [good["uuid"]]
    assert count_jobs(conn) == 1


def test_push_buffered_applies_dependencies_as_push_does(conn):
    parent = push(conn, "parent")
    failed = push(conn, "doomed")
    conn.execute("UPDATE lzq_jobs SET status = 'failed' WHERE id = %s", (failed,))

    rows = buffered(
        conn,
        a_push("child", depends_on=[parent]),
        a_push("orphan", depends_on=[failed]),
        a_push("checked", depends_on=["#is_ready_to_run"]),
    )

    child, orphan, checked = (job(conn, job_id) for _, job_id, *_ in rows)
    assert (child["status"], child["unmet_deps"]) == ("waiting", 1)
    assert conn.execute("SELECT job_id, depends_on FROM lzq_dependencies ORDER BY job_id").fetchall() == [
        (child["id"], parent),
        (orphan["id"], failed),
    ]
    assert (orphan["status"], orphan["last_error"]) == ("cancelled", f"cancelled: dependency {failed} failed")
    assert (checked["status"], checked["checks"]) == ("waiting", ["#is_ready_to_run"])


def test_push_buffered_of_nothing_returns_nothing(conn):
    assert buffered(conn) == []
    assert count_jobs(conn) == 0


def test_push_buffered_rejects_anything_but_an_array(conn):
    for value in ({"uuid": str(uuid.uuid4())}, "x", None):
        with raises_invalid("pushes", case=value):
            conn.execute("SELECT * FROM lzq_push_buffered(%s)", (Jsonb(value),))
    with raises_invalid("pushes"):
        conn.execute("SELECT * FROM lzq_push_buffered(NULL)")


def test_push_buffered_wakes_an_idle_superqueuer_for_ready_jobs(conn, listener):
    conn.execute("SELECT lzq_superqueuer_idle('sq1', true)")

    buffered(conn, a_push("a", queue_name="emails"), a_push("b", start_time="+1 hour", queue_name="later"))

    assert notifications_until_sentinel(listener, conn) == ["emails"]


def test_concurrent_calls_with_the_same_uuid_make_one_job(conn, connect):
    one = a_push("once")
    first = connect()
    (_, job_id, outcome, _, _), _ = buffered(first, one, a_push("other"))
    assert outcome == "inserted"
    second = connect(autocommit=True)
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The second call waits on the first's uncommitted uuid, then reports it a duplicate.
        pending = pool.submit(buffered, second, a_push("mine"), one)
        wait_until_blocked(conn, second)
        first.commit()
        rows = pending.result(timeout=10)

    assert [outcome for _, _, outcome, _, _ in rows] == ["inserted", "duplicate"]
    assert rows[1][1] == job_id
    names = sorted(r[0] for r in conn.execute("SELECT job_name FROM lzq_jobs").fetchall())
    assert names == ["mine", "once", "other"]
    # The job the second call had built for the lost uuid was dropped, with nothing left behind.
    assert conn.execute("SELECT count(*) FROM lzq_buffered").fetchone()[0] == 3


def test_concurrent_call_sees_the_uuid_free_again_when_the_first_rolls_back(conn, connect):
    one = a_push("once")
    first = connect()
    buffered(first, one)
    second = connect(autocommit=True)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(buffered, second, one)
        wait_until_blocked(conn, second)
        first.rollback()
        [(_, job_id, outcome, _, _)] = pending.result(timeout=10)

    assert outcome == "inserted"
    assert [r[0] for r in conn.execute("SELECT id FROM lzq_jobs").fetchall()] == [job_id]
