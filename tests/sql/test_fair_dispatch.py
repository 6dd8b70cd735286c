"""Fair dispatch: _lzq_stamp_ready's tags and lzq_claim's order, against tests/fairness_model.py.

A flow is (queue, fairness_key, nice); flows share a queue in proportion to their weights
(1.25x per nice step), FIFO inside a flow, lone jobs in exact nice order, nothing starves.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fairness_model import COST, Job, TagPolicy
from tests.sql.helpers import claimed_ids, heartbeat, job, limited_job, push, push_many

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")


def test_cost_is_the_models_table_for_every_nice_level(conn):
    rows = conn.execute("SELECT n, _lzq_cost(n::smallint) FROM generate_series(-20, 20) AS n").fetchall()
    assert dict(rows) == COST
    assert COST[0] / COST[-5] == pytest.approx(1.25**5, rel=1e-5)  # rounded to integers


def test_push_many_stamps_a_batch_as_one_push_at_a_time_would(conn):
    # _lzq_insert_jobs tags a batch set-based; lzq_push goes through the trigger. Same jobs, two
    # fresh queues (both clocks at 0), one with a job already waiting: the tags must be equal.
    specs = [("a", 0), ("b", 5), ("a", 0), ("a", -3), ("b", 5), ("c", 20), ("a", 0), ("b", 0)]
    for queue in ("batch", "single"):
        push(conn, "a", queue_name=queue)
    batch = [{"job_name": k, "job_options": {"priority": n, "queue_name": "batch"}} for k, n in specs]
    push_many(conn, batch)
    for k, n in specs:
        push(conn, k, priority=n, queue_name="single")

    def tags(queue: str) -> list[int]:
        rows = conn.execute("SELECT vtag FROM lzq_jobs WHERE queue_name = %s ORDER BY id", (queue,))
        return [vtag for (vtag,) in rows]

    assert tags("batch") == tags("single")
    assert len(set(tags("batch"))) < len(specs) + 1  # lone flows share tag values: a real comparison


def test_flows_whose_queue_and_key_concatenate_alike_keep_their_own_tails(conn):
    # The flow index is keyed by a hash of queue and key; hashing their concatenation would give
    # these two flows one hash. Each must continue from its own tail, pushed one at a time (the
    # trigger) or in a batch (_lzq_flow_tails).
    first, second = ("qx", "k"), ("q", "xk")
    for _ in range(3):
        push(conn, "job", queue_name=first[0], fairness_key=first[1])
    lone = push(conn, "job", queue_name=second[0], fairness_key=second[1])
    [batched] = push_many(
        conn, [{"job_name": "job", "job_options": {"queue_name": second[0], "fairness_key": second[1]}}]
    )
    assert [job(conn, i)["vtag"] for i in (lone, batched)] == [COST[0], 2 * COST[0]]


def test_two_backlogged_flows_share_in_proportion_to_their_weights(conn):
    heartbeat(conn, slots=10_000)
    nice0 = push_many(conn, [{"job_name": "a"}] * 300)
    nice5 = push_many(conn, [{"job_name": "b", "job_options": {"priority": 5}}] * 300)
    first = claimed_ids(conn, 200)
    share = sum(1 for i in first if i in set(nice0)) / sum(1 for i in first if i in set(nice5))
    assert share == pytest.approx(1.25**5, rel=0.05)  # 151 : 49
    # FIFO inside each flow.
    assert [i for i in first if i in set(nice0)] == nice0[: len([i for i in first if i in set(nice0)])]


def test_a_flooding_job_type_does_not_hold_back_another(conn):
    heartbeat(conn, slots=10_000)
    push_many(conn, [{"job_name": "flood"}] * 1000)
    claimed_ids(conn, 10)
    late = push(conn, "other")
    # Level with the flood's next job (tie: the older id), not behind its 990 waiting jobs.
    assert claimed_ids(conn, 2)[1] == late


def test_fairness_key_makes_tenants_share_one_job_type(conn):
    heartbeat(conn, slots=10_000)
    big = push_many(conn, [{"job_name": "report", "job_options": {"fairness_key": "big"}}] * 50)
    small = push_many(conn, [{"job_name": "report", "job_options": {"fairness_key": "small"}}] * 5)
    first = claimed_ids(conn, 10)
    assert set(small) <= set(first)
    assert first[:4] == [big[0], small[0], big[1], small[1]]


def test_nice_20_gets_its_weighted_share_under_a_saturating_nice_minus_20_flow(conn):
    heartbeat(conn, slots=100_000)
    push_many(conn, [{"job_name": "hog", "job_options": {"priority": -20}}] * 9000)
    meek = push(conn, "meek", priority=20)
    order = claimed_ids(conn, 9001)
    # 1.25**40 = 7523 nice -20 jobs per nice +20 job: starved by nothing, delayed exactly that much.
    assert order.index(meek) == round(COST[20] / COST[-20])


def test_a_flow_back_from_idle_banks_no_credit(conn):
    heartbeat(conn, slots=10_000)
    push(conn, "sleeper")
    claimed_ids(conn, 1)
    busy = push_many(conn, [{"job_name": "busy"}] * 100)
    claimed_ids(conn, 50)  # the queue's clock moves on while "sleeper" has nothing ready
    back = push_many(conn, [{"job_name": "sleeper"}] * 3)
    # It interleaves with the busy flow from now on instead of running its 50 "missed" turns.
    assert claimed_ids(conn, 6) == [busy[50], back[0], busy[51], back[1], busy[52], back[2]]


def test_queues_of_one_worker_group_interleave_by_lag_behind_their_own_clocks(conn):
    heartbeat(conn, queues=["a", "b"], slots=10_000)
    push_many(conn, [{"job_name": "x", "job_options": {"queue_name": "a"}}] * 20)
    claimed_ids(conn, 20)  # queue a's clock is 20 jobs ahead of queue b's
    in_a = push_many(conn, [{"job_name": "x", "job_options": {"queue_name": "a"}}] * 3)
    in_b = push_many(conn, [{"job_name": "x", "job_options": {"queue_name": "b"}}] * 3)
    assert claimed_ids(conn, 6) == list(itertools.chain(*zip(in_a, in_b, strict=True)))


def test_a_job_woken_from_a_full_limit_keeps_its_place(conn):
    heartbeat(conn, slots=10)
    limits = [{"key": "K", "count": 1}]
    first, parked = limited_job(conn, limits, "lim"), limited_job(conn, limits, "lim")
    assert claimed_ids(conn, 10) == [first]
    tag = job(conn, parked)["vtag"]
    push_many(conn, [{"job_name": "other"}] * 5)
    claimed_ids(conn, 10)  # the other flow runs; the limited job stays parked
    assert job(conn, parked)["status"] == "waiting"
    conn.execute("UPDATE lzq_jobs SET status = 'succeeded' WHERE id = %s", (first,))
    conn.execute("SELECT _lzq_release_slots(%s)", ([first],))
    assert (job(conn, parked)["status"], job(conn, parked)["vtag"]) == ("ready", tag)


def test_concurrent_pushes_into_one_flow_never_wait_for_each_other(conn, connect):
    other = connect(autocommit=False)
    other.execute("SELECT lzq_push('same', '{}', '{}')")  # open transaction, same flow
    conn.execute("SET lock_timeout = '2s'")
    push(conn, "same")  # would raise LockNotAvailable if pushes serialized on a flow row
    other.commit()


# -- the reference model ----------------------------------------------------------------------------

FLOWS = [("a", 0), ("a", 5), ("b", 0), ("c", -3), ("d", 20), ("e", -20)]
operations = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.lists(st.sampled_from(FLOWS), min_size=1, max_size=12)),
        st.tuples(st.just("claim"), st.integers(min_value=1, max_value=10)),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_claim_order_equals_the_reference_model(conn, ops):
    """Random pushes (batches across flows) and claims: lzq_claim returns exactly the jobs, in
    exactly the order, that the model's tag policy (ties by nice, then id) dispatches."""
    conn.execute("DELETE FROM lzq_jobs; DELETE FROM lzq_queues")
    heartbeat(conn, slots=100_000)
    model = TagPolicy(tie_break="id")
    for op, arg in ops:
        if op == "push":
            ids = push_many(conn, [{"job_name": k, "job_options": {"priority": n}} for k, n in arg])
            for job_id, (key, nice) in zip(ids, arg, strict=True):
                model.ready(Job(job_id, nice=nice, key=key))
        else:
            assert claimed_ids(conn, arg) == [j.id for j in model.claim(arg)]
