"""limit_to slots: _lzq_take_slots at claim, _lzq_release_slots when a job leaves dispatched/running.

A job carries its limits as [{"key": ..., "count": n}] (stored by lzq_checks_done when its readiness
checks pass). lzq_claim takes one lzq_slots row per limit or parks the job as `waiting` on the full
limit, outside the ready index; lzq_finish, lzq_handback, lzq_cancel and lzq_sweep free the slots and
ready as many parked jobs as slots freed. The sweep also repairs slots and parked jobs left stray.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.sql.helpers import (
    claim,
    finish,
    handback,
    heartbeat,
    job,
    limited_job,
    notifications_until_sentinel,
    push,
    start,
    sweep,
    wait_until_done_or_blocked,
)


def limit(key="K", count=2):
    return [{"key": key, "count": count}]


def claimed(conn, **kwargs):
    return sorted(r[0] for r in claim(conn, **kwargs))


def slots(conn, key="K"):
    """{slot: job_id or None} of one limit key."""
    return dict(conn.execute("SELECT slot, job_id FROM lzq_slots WHERE limit_key = %s", (key,)).fetchall())


def held_by(conn, job_id):
    return conn.execute(
        "SELECT limit_key, slot FROM lzq_slots WHERE job_id = %s ORDER BY 1, 2", (job_id,)
    ).fetchall()


def statuses(conn, *job_ids):
    return [job(conn, i)["status"] for i in job_ids]


def parked_on(conn, job_id):
    row = job(conn, job_id)
    return row["status"], row["waiting_on_limit"]


def tokens(conn, *job_ids):
    return [(i, job(conn, i)["dispatch_token"]) for i in job_ids]


def run(conn, worker_id, *job_ids):
    """Start dispatched jobs on `worker_id`."""
    assert sorted(r["id"] for r in start(conn, worker_id, *tokens(conn, *job_ids))) == sorted(job_ids)


def holders_and_parked(conn, count, parked_priorities, key="K"):
    """`count` jobs dispatched holding every slot of a limit of `count`, then jobs of the given
    priorities parked on it (claimed while it is full). Returns (holder ids, parked ids)."""
    heartbeat(conn, "w1", slots=100)
    held = [limited_job(conn, limit(key, count), f"holder{i}") for i in range(count)]
    assert claimed(conn) == held
    parked = [
        limited_job(conn, limit(key, count), f"parked{i}", priority=p)
        for i, p in enumerate(parked_priorities)
    ]
    assert claimed(conn) == []
    assert all(parked_on(conn, i) == ("waiting", key) for i in parked)
    return held, parked


# -- taking slots at claim ------------------------------------------------------------------------


def test_claim_takes_a_slot_per_limited_job_and_parks_the_job_over_the_count(conn):
    heartbeat(conn, "w1", slots=10)
    a, b, c = (limited_job(conn, limit("K", 2), n) for n in "abc")
    assert claimed(conn) == [a, b]
    assert slots(conn) == {1: a, 2: b}
    row = job(conn, c)
    assert (row["status"], row["waiting_on_limit"], row["dispatch_token"]) == ("waiting", "K", None)
    # Parked outside the ready index: later claims do not even look at it.
    assert conn.execute("SELECT count(*) FROM lzq_jobs WHERE status = 'ready'").fetchone()[0] == 0
    assert claimed(conn) == []
    assert parked_on(conn, c) == ("waiting", "K")


def test_limits_of_different_keys_do_not_share_slots(conn):
    heartbeat(conn, "w1", slots=10)
    k1 = [limited_job(conn, limit("K1", 1), "k1") for _ in range(2)]
    k2 = [limited_job(conn, limit("K2", 1), "k2") for _ in range(2)]
    assert claimed(conn) == [k1[0], k2[0]]
    assert (slots(conn, "K1"), slots(conn, "K2")) == ({1: k1[0]}, {1: k2[0]})
    assert (parked_on(conn, k1[1]), parked_on(conn, k2[1])) == (("waiting", "K1"), ("waiting", "K2"))


def test_a_full_limit_gives_its_credit_to_the_next_jobs_and_jobs_without_limits_run_alongside(conn):
    heartbeat(conn, "w1", slots=3)
    # Nice -5 costs a third of nice 0: all three limited jobs come before the first free one.
    limited = [limited_job(conn, limit("K", 2), "limited", priority=-5) for _ in range(3)]
    free = [push(conn, "free") for _ in range(2)]
    assert claimed(conn, margin_per_worker=0) == [limited[0], limited[1], free[0]]
    assert parked_on(conn, limited[2]) == ("waiting", "K")
    assert statuses(conn, free[1]) == ["ready"]
    assert held_by(conn, free[0]) == []


def test_a_job_with_two_limits_gives_back_the_first_slot_when_the_second_is_full(conn):
    heartbeat(conn, "w1", slots=10)
    both = limit("A", 5) + limit("B", 1)
    first = limited_job(conn, both, "first")
    assert claimed(conn) == [first]
    assert held_by(conn, first) == [("A", 1), ("B", 1)]
    second = limited_job(conn, both, "second")
    only_a = limited_job(conn, limit("A", 5), "only_a")
    assert claimed(conn) == [only_a]
    assert parked_on(conn, second) == ("waiting", "B")
    assert held_by(conn, second) == []
    assert slots(conn, "A") == {1: first, 2: only_a, 3: None, 4: None, 5: None}


def test_a_job_uses_only_slots_up_to_its_own_count_of_a_shared_key(conn):
    heartbeat(conn, "w1", slots=10)
    wide = limited_job(conn, limit("K", 2), "wide")
    assert claimed(conn) == [wide]
    assert slots(conn) == {1: wide, 2: None}
    narrow = limited_job(conn, limit("K", 1), "narrow")
    assert claimed(conn) == []
    assert parked_on(conn, narrow) == ("waiting", "K")
    wide2 = limited_job(conn, limit("K", 2), "wide2")
    assert claimed(conn) == [wide2]
    assert slots(conn) == {1: wide, 2: wide2}
    # A wider count creates the extra slot rows on first use.
    widest = limited_job(conn, limit("K", 3), "widest")
    assert claimed(conn) == [widest]
    assert slots(conn) == {1: wide, 2: wide2, 3: widest}


def test_a_retried_job_gives_its_slot_back_and_takes_one_again_on_its_next_claim(conn):
    (holder,), (parked,) = holders_and_parked(conn, 1, [0])
    run(conn, "w1", holder)
    assert finish(conn, "w1", {"id": holder, "attempt": 1, "outcome": "retry", "retry_delay_s": 60}) == [
        (holder, "scheduled")
    ]
    assert slots(conn) == {1: None}
    assert claimed(conn) == [parked]
    conn.execute("UPDATE lzq_jobs SET run_at = now() WHERE id = %s", (holder,))
    conn.execute("SELECT * FROM lzq_promote(10)")
    assert claimed(conn) == []
    assert parked_on(conn, holder) == ("waiting", "K")


# -- freeing slots --------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["succeeded", "failed", "retry"])
def test_finish_frees_the_slot_and_readies_one_parked_job_best_priority_first(conn, outcome):
    (holder,), (p5, m5a, m5b) = holders_and_parked(conn, 1, [5, -5, -5])
    run(conn, "w1", holder)
    report = {"id": holder, "attempt": 1, "outcome": outcome, "retry_delay_s": 60}
    assert len(finish(conn, "w1", report)) == 1
    assert slots(conn) == {1: None}
    assert statuses(conn, p5, m5a, m5b) == ["waiting", "ready", "waiting"]
    assert claimed(conn) == [m5a]
    assert slots(conn) == {1: m5a}


def test_finishing_several_holders_readies_as_many_parked_jobs_as_slots_freed(conn):
    holders, parked = holders_and_parked(conn, 3, [0, 0, 0, -1])
    run(conn, "w1", *holders)
    reports = [{"id": i, "attempt": 1, "outcome": "succeeded"} for i in holders[:2]]
    assert len(finish(conn, "w1", *reports)) == 2
    assert statuses(conn, *parked) == ["ready", "waiting", "waiting", "ready"]
    assert claimed(conn) == [parked[0], parked[3]]
    assert sorted(slots(conn).values()) == sorted([holders[2], parked[0], parked[3]])


def test_freeing_a_slot_wakes_a_sleeping_superqueuer_for_the_readied_jobs_queue(conn, listener):
    heartbeat(conn, "w1", queues=["emails", "reports"], slots=10)
    holder = limited_job(conn, limit("K", 1), "holder", queue_name="emails")
    assert claimed(conn) == [holder]
    parked = limited_job(conn, limit("K", 1), "parked", queue_name="reports")
    assert claimed(conn) == []
    conn.execute("SELECT lzq_superqueuer_idle('sq1', true)")
    notifications_until_sentinel(listener, conn)
    assert handback(conn, None, *tokens(conn, holder)) == [holder]
    assert statuses(conn, parked) == ["ready"]
    assert sorted(notifications_until_sentinel(listener, conn)) == ["emails", "reports"]


def test_handback_of_a_dispatched_or_running_job_frees_its_slot_for_one_parked_job(conn):
    (holder,), (first, second, third) = holders_and_parked(conn, 1, [0, 0, 0])
    assert handback(conn, None, *tokens(conn, holder)) == [holder]
    assert statuses(conn, holder, first, second) == ["ready", "ready", "waiting"]
    # The handed-back job is older, so it wins the slot again and the readied one parks again.
    assert claimed(conn) == [holder]
    assert parked_on(conn, first) == ("waiting", "K")
    run(conn, "w1", holder)
    assert handback(conn, "w1", *tokens(conn, holder)) == [holder]
    assert slots(conn) == {1: None}
    assert statuses(conn, first, second, third) == ["ready", "waiting", "waiting"]


def test_cancel_of_a_dispatched_job_frees_its_slot_but_cancel_of_a_parked_one_frees_nothing(conn):
    (holder,), (first, second, third) = holders_and_parked(conn, 1, [0, 0, 0])
    assert conn.execute("SELECT lzq_cancel(%s)", (third,)).fetchone()[0] is True
    assert slots(conn) == {1: holder}
    assert statuses(conn, first, second) == ["waiting", "waiting"]
    assert conn.execute("SELECT lzq_cancel(%s)", (holder,)).fetchone()[0] is True
    assert slots(conn) == {1: None}
    assert statuses(conn, first, second) == ["ready", "waiting"]


def crash(conn, how, holder):
    """Leave `holder` (dispatched, holding a slot) for the sweep to repair, as `how` says."""
    if how == "expired_dispatch":
        conn.execute(
            "UPDATE lzq_jobs SET lease_expires_at = now() - interval '1 second' WHERE id = %s", (holder,)
        )
    elif how == "dead_worker":
        run(conn, "w1", holder)
        heartbeat(conn, "w2", slots=100)
        conn.execute("UPDATE lzq_workers SET heartbeat_at = now() - interval '1 hour' WHERE worker_id = 'w1'")
    else:  # a path that forgot to free the slot (or a hand edit) left it held by a finished job
        conn.execute("UPDATE lzq_jobs SET status = 'succeeded', finished_at = now() WHERE id = %s", (holder,))


@pytest.mark.parametrize("how", ["expired_dispatch", "dead_worker"])
def test_sweep_of_an_expired_dispatch_or_a_dead_workers_job_frees_its_slot_for_a_parked_job(conn, how):
    (holder,), (parked,) = holders_and_parked(conn, 1, [0])
    crash(conn, how, holder)
    from_status = "dispatched" if how == "expired_dispatch" else "running"
    assert sweep(conn) == [(holder, from_status, "ready")]
    assert slots(conn) == {1: None}
    assert statuses(conn, holder, parked) == ["ready", "ready"]
    # The limit still holds: one of the two is dispatched, the other parks again.
    assert claimed(conn) == [holder]
    assert parked_on(conn, parked) == ("waiting", "K")


def test_sweep_frees_a_slot_held_by_a_job_no_longer_dispatched_or_running(conn):
    (holder,), (parked,) = holders_and_parked(conn, 1, [0])
    crash(conn, "stray_slot", holder)
    assert sweep(conn) == []
    assert slots(conn) == {1: None}
    assert statuses(conn, parked) == ["ready"]
    assert claimed(conn) == [parked]


def test_sweep_readies_jobs_parked_on_a_limit_with_free_slots_as_many_as_free_best_priority_first(conn):
    holders, parked = holders_and_parked(conn, 2, [3, -3, 0])
    # A slot freed while the job was being parked did not wake it.
    conn.execute("UPDATE lzq_slots SET job_id = NULL WHERE job_id = %s", (holders[0],))
    conn.execute("UPDATE lzq_jobs SET status = 'succeeded', finished_at = now() WHERE id = %s", (holders[0],))
    assert sweep(conn) == []
    assert statuses(conn, *parked) == ["waiting", "ready", "waiting"]
    assert claimed(conn) == [parked[1]]
    assert slots(conn) == {1: parked[1], 2: holders[1]}
    assert sweep(conn) == []
    assert statuses(conn, *parked) == ["waiting", "dispatched", "waiting"]


def test_sweep_leaves_jobs_parked_on_a_full_limit_alone(conn):
    holders, parked = holders_and_parked(conn, 2, [0])
    run(conn, "w1", holders[0])
    assert sweep(conn) == []
    assert parked_on(conn, parked[0]) == ("waiting", "K")
    assert slots(conn) == {1: holders[0], 2: holders[1]}


@pytest.mark.parametrize(
    "how", ["expired_dispatch", "dead_worker", "stray_slot", "cancelled_before_the_sweep"]
)
def test_sweep_readies_no_more_parked_jobs_than_slots_freed(conn, how):
    (holder,), (first, second) = holders_and_parked(conn, 1, [0, 0])
    if how == "cancelled_before_the_sweep":
        # The slot was freed the ordinary way and one parked job readied; no claim has run since.
        assert conn.execute("SELECT lzq_cancel(%s)", (holder,)).fetchone()[0] is True
        assert statuses(conn, first, second) == ["ready", "waiting"]
    else:
        crash(conn, how, holder)
    sweep(conn)
    assert slots(conn) == {1: None}
    readied = {i for i in (holder, first, second) if statuses(conn, i) == ["ready"]}
    # One slot freed: one parked job is readied for it (next to the job that held it, if that one
    # runs again).
    assert readied == ({holder, first} if how in ("expired_dispatch", "dead_worker") else {first})


def test_a_freed_slot_readies_a_parked_job_whose_count_reaches_it(conn):
    heartbeat(conn, "w1", slots=10)
    low, high = limited_job(conn, limit("K", 2), "low"), limited_job(conn, limit("K", 2), "high")
    assert claimed(conn) == [low, high]
    narrow = limited_job(conn, limit("K", 1), "narrow", priority=-5)
    wide = limited_job(conn, limit("K", 2), "wide")
    assert claimed(conn) == []
    run(conn, "w1", high)
    assert finish(conn, "w1", {"id": high, "attempt": 1, "outcome": "succeeded"}) == [(high, "succeeded")]
    # Slot 2 is free: `wide` may use it, `narrow` (count 1) may not.
    assert statuses(conn, narrow, wide) == ["waiting", "ready"]
    assert claimed(conn) == [wide]
    assert slots(conn) == {1: low, 2: wide}


# -- concurrency ----------------------------------------------------------------------------------
# lzq_claim spends each worker group's credit under a try-lock, so two superqueuers claim for
# different groups at once. Here `one` sees only the group of queue a (wb's heartbeat is too old for
# its dead_after_s) and `two` sees both, skips a (one holds it) and claims for b.


def two_groups(conn):
    heartbeat(conn, "wa", queues=["a"], slots=10)
    heartbeat(conn, "wb", queues=["b"], slots=10)
    conn.execute("UPDATE lzq_workers SET heartbeat_at = now() - interval '20 seconds' WHERE worker_id = 'wb'")


def claim_a(conn):
    return claimed(conn, dead_after_s=10)


def claim_b(conn):
    return claimed(conn, dead_after_s=30)


def test_concurrent_claims_skip_slots_the_other_holds_and_never_exceed_the_count(conn, connect):
    two_groups(conn)
    # The slot rows exist already (an earlier job used them).
    warm = limited_job(conn, limit("K", 2), "warm", queue_name="a")
    assert claim_a(conn) == [warm]
    conn.execute("SELECT lzq_cancel(%s)", (warm,))
    in_a = limited_job(conn, limit("K", 2), "in_a", queue_name="a")
    in_b = [limited_job(conn, limit("K", 2), "in_b", queue_name="b") for _ in range(3)]
    one, two = connect(), connect()
    two.execute("SET statement_timeout = '5s'")  # a claim waiting on one's slot row would fail here
    assert claim_a(one) == [in_a]
    # Slot 1 looks free to two (one has not committed) but is locked: two skips it, takes slot 2
    # and parks the rest.
    assert claim_b(two) == [in_b[0]]
    one.commit()
    two.commit()
    assert slots(conn) == {1: in_a, 2: in_b[0]}
    assert [parked_on(conn, i) for i in in_b[1:]] == [("waiting", "K")] * 2
    # Both want the last free slot: one takes it, two sees it locked and parks its job again.
    conn.execute("SELECT lzq_cancel(%s)", (in_a,))
    assert statuses(conn, in_b[1]) == ["ready"]
    late_a = limited_job(conn, limit("K", 2), "late_a", queue_name="a")
    assert claim_a(one) == [late_a]
    assert claim_b(two) == []
    one.commit()
    two.commit()
    assert slots(conn) == {1: late_a, 2: in_b[0]}
    assert [parked_on(conn, i) for i in in_b[1:]] == [("waiting", "K")] * 2


def test_concurrent_first_use_of_a_limit_key_never_exceeds_the_count(conn, connect):
    two_groups(conn)
    in_a = [limited_job(conn, limit("K", 2), "in_a", queue_name="a") for _ in range(2)]
    in_b = [limited_job(conn, limit("K", 2), "in_b", queue_name="b") for _ in range(2)]
    one, two = connect(), connect()
    assert claim_a(one) == in_a  # creates the slot rows, not committed yet
    with ThreadPoolExecutor(max_workers=1) as pool:
        from_two = pool.submit(claim_b, two)
        # two may wait for one's new slot rows (it cannot skip rows it does not see yet).
        wait_until_done_or_blocked(conn, two, from_two)
        one.commit()
        assert from_two.result(timeout=10) == []
    two.commit()
    assert slots(conn) == {1: in_a[0], 2: in_a[1]}
    assert [parked_on(conn, i) for i in in_b] == [("waiting", "K")] * 2
