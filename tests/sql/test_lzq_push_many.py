"""lzq_push_many: many jobs in one statement, ids in input order, all or nothing."""

from __future__ import annotations

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from tests.sql.helpers import count_jobs, job, push_many, raises_invalid


def test_push_many_returns_ids_in_input_order_with_each_jobs_options(conn):
    ids = push_many(
        conn,
        [
            {"job_name": "c", "job_params": {"n": 1}},
            {"job_name": "a", "job_options": {"priority": 5, "queue_name": "emails"}},
            {
                "job_name": "b",
                "job_options": {"start_time": "+1 hour", "fairness_key": "t1", "max_failures": 9},
            },
            {"job_name": "a", "job_options": {}},
        ],
    )
    assert len(ids) == len(set(ids)) == 4
    rows = [job(conn, i) for i in ids]
    assert [r["job_name"] for r in rows] == ["c", "a", "b", "a"]
    assert [
        (r["status"], r["queue_name"], r["priority"], r["fairness_key"], r["max_failures"]) for r in rows
    ] == [
        ("ready", "default", 0, "c", 3),
        ("ready", "emails", 5, "a", 3),
        ("scheduled", "default", 0, "t1", 9),
        ("ready", "default", 0, "a", 3),
    ]
    assert rows[0]["params"] == {"n": 1} and rows[3]["params"] == {}
    assert count_jobs(conn) == 4


def test_push_many_of_nothing_writes_nothing(conn):
    assert push_many(conn, []) == []
    assert count_jobs(conn) == 0


def test_push_many_is_all_or_nothing_naming_the_bad_element_and_field(conn):
    good = {"job_name": "ok"}
    cases = [
        ([good, {"job_name": "b", "job_options": {"priority": 21}}], "jobs[1].priority"),
        # Values the set-based path's casts would choke on: it checks every element before any cast.
        ([good, {"job_name": "b", "job_options": {"priority": "high"}}], "jobs[1].priority"),
        ([good, {"job_name": "b", "job_options": {"max_failures": "lots"}}], "jobs[1].max_failures"),
        ([{"job_name": ""}, good], "jobs[0].job_name"),
        ([good, good, {"job_name": "x", "job_options": {"bogus": 1}}], "jobs[2].bogus"),
        ([good, {"job_name": "x", "job_params": [1]}], "jobs[1].job_params"),
        ([good, {"job_name": "x", "job_options": "fast"}], "jobs[1].job_options"),
        ([good, {"job_name": "x", "job_options": {"start_time": "whenever"}}], "jobs[1].start_time"),
        ([good, {"job_name": "x", "job_options": {"queue_name": " "}}], "jobs[1].queue_name"),
        ([good, {"job_params": {}}], "jobs[1].job_name"),
        ([good, {"job_name": 5}], "jobs[1].job_name"),
        ([good, "job"], "jobs[1].job"),
        ([good, {"job_name": "x", "params": {}}], "jobs[1].job"),
    ]
    for jobs, column in cases:
        index = column[len("jobs[") : column.index("]")]
        with raises_invalid(column, prefix=f"jobs[{index}]: ", case=jobs):
            push_many(conn, jobs)
    assert count_jobs(conn) == 0


def test_push_many_message_carries_the_element_index_then_the_field_message(conn):
    with raises_invalid("jobs[1].priority", prefix="jobs[1]: ") as excinfo:
        push_many(conn, [{"job_name": "a"}, {"job_name": "b", "job_options": {"priority": 21}}])
    assert excinfo.value.diag.message_primary == (
        "jobs[1]: priority: must be an integer between -20 and 20, got 21"
    )


def test_push_many_rejects_anything_but_an_array(conn):
    for jobs in ({"job_name": "a"}, "a", None):
        with raises_invalid("jobs", message="must be a JSON array", case=jobs):
            conn.execute("SELECT * FROM lzq_push_many(%s)", (Jsonb(jobs),))
    with raises_invalid("jobs"):
        conn.execute("SELECT * FROM lzq_push_many(NULL)")
    assert count_jobs(conn) == 0


_names = st.text(st.sampled_from("ab #é\t"), min_size=0, max_size=6) | st.sampled_from(["x" * 255, "x" * 256])
_params = st.none() | st.dictionaries(st.sampled_from("kn"), st.integers(-3, 3) | st.text("ab", max_size=2))
# Options lzq_push_many takes set-based (_lzq_batchable_options): valid values, then also invalid ones.
_valid_options = {
    "queue_name": [None, "q", "default", "x" * 200],
    "priority": [None, 0, 5, -20, 20, 3.0],
    "max_failures": [None, 1, 7, 1000000, 2.0],
    "fairness_key": [None, "k", "a", "x" * 255],
}
_invalid_options = {
    "queue_name": [" ", "x" * 201, 5],
    "priority": [21, 2.5, "1"],
    "max_failures": [0, 1000001, True],
    "fairness_key": ["\t", "x" * 256],
}


def _options(values: dict[str, list]) -> st.SearchStrategy:
    return st.none() | st.fixed_dictionaries({}, optional={k: st.sampled_from(v) for k, v in values.items()})


_valid_element = st.fixed_dictionaries(
    {"job_name": st.sampled_from(["a", "b", "é #", "x" * 255])},
    optional={"job_params": _params, "job_options": _options(_valid_options)},
)
_element = st.fixed_dictionaries(
    {"job_name": _names},
    optional={
        "job_params": _params,
        "job_options": _options({k: v + _invalid_options[k] for k, v in _valid_options.items()}),
    },
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    # Half the batches valid throughout, so they take the set-based path; the rest mostly do not.
    batch=st.lists(_valid_element, min_size=1, max_size=6) | st.lists(_element, min_size=1, max_size=6),
    queued=st.integers(0, 2),
    mode=st.sampled_from(["fair", "priority", "fifo"]),
)
def test_a_batch_built_set_based_gets_the_rows_and_errors_the_per_job_validation_gives(
    conn, batch, queued, mode
):
    # lzq_push_many builds a batch set-based when its options are at most queue_name, priority,
    # max_failures and fairness_key, all valid; any other option sends the whole batch through the
    # per-job loop. Here the same jobs go both ways from the same state (the loop forced by an
    # option that changes nothing: no dependencies): rows (ids aside) and errors must be equal.
    conn.execute("TRUNCATE lzq_jobs CASCADE")
    # Fair: tagged in the batch; priority and fifo: by the trigger, from a sequence.
    conn.execute("SELECT lzq_queue_mode('default', %s)", (mode,))
    push_many(conn, [{"job_name": "a"}] * queued)  # a flow with a tail: its tags continue from it
    looped = [
        {**element, "job_options": {**(element.get("job_options") or {}), "depends_on": []}}
        for element in batch
    ]

    def outcome(jobs):
        conn.execute("BEGIN")
        try:
            ids = push_many(conn, jobs)
            # Tags of priority and fifo queues come from a sequence, which a rollback does not
            # rewind: there only whether a job is tagged is compared.
            rows = conn.execute(
                "SELECT to_jsonb(j) - 'id' - 'created_at' - 'run_at'"
                "       - CASE WHEN %s = 'fair' THEN '' ELSE 'vtag' END"
                "       || jsonb_build_object('tagged', j.vtag IS NOT NULL)"
                "  FROM lzq_jobs AS j WHERE id = ANY (%s) ORDER BY id",
                (mode, ids),
            ).fetchall()
            assert ids == sorted(ids)
            return [row[0] for row in rows]
        except psycopg.errors.InvalidParameterValue as exc:
            return (exc.diag.column_name, exc.diag.message_primary)
        finally:
            conn.execute("ROLLBACK")

    assert outcome(batch) == outcome(looped)


def test_push_many_stamps_a_fifo_queues_jobs_in_input_order_on_both_paths(conn):
    # Tags of fifo (and priority) queues come from a sequence, in the order rows are inserted; a
    # batch's rows must go in in input order, not grouped by flow.
    conn.execute("SELECT lzq_queue_mode('default', 'fifo')")
    names = ["b", "a", "b", "c", "a"]
    for options in ({}, {"depends_on": []}):  # set-based, then the per-job loop
        ids = push_many(conn, [{"job_name": n, "job_options": options} for n in names])
        tags = [job(conn, i)["vtag"] for i in ids]
        assert tags == sorted(tags), (options, tags)


def test_push_many_with_queue_and_priority_options_tags_each_flow_from_its_own_tail(conn):
    # Set-based with options: each (queue, fairness key, priority) is a flow of its own, continuing
    # from its tail; the cost of a step is the priority's.
    push_many(conn, [{"job_name": "a", "job_options": {"queue_name": "q", "priority": 5}}])
    ids = push_many(
        conn,
        [
            {"job_name": "a", "job_options": {"queue_name": "q", "priority": 5}},
            {"job_name": "a"},
            {"job_name": "a", "job_options": {"queue_name": "q", "priority": 5}},
            {"job_name": "b", "job_options": {"queue_name": "q", "fairness_key": "a", "max_failures": 9}},
        ],
    )
    rows = [job(conn, i) for i in ids]
    cost5 = conn.execute("SELECT _lzq_cost(5::smallint), _lzq_cost(0::smallint)").fetchone()
    first = conn.execute(
        "SELECT vtag FROM lzq_jobs WHERE queue_name = 'q' AND NOT (id = ANY (%s))", (ids,)
    ).fetchone()[0]
    assert [(r["queue_name"], r["priority"], r["fairness_key"], r["max_failures"]) for r in rows] == [
        ("q", 5, "a", 3),
        ("default", 0, "a", 3),
        ("q", 5, "a", 3),
        ("q", 0, "a", 9),
    ]
    assert rows[0]["vtag"] == first + cost5[0] and rows[2]["vtag"] == first + 2 * cost5[0]
    assert rows[1]["vtag"] == cost5[1] and rows[3]["vtag"] == cost5[1]
