"""superqueuer.pack: claimed jobs into RabbitMQ messages of at most `margin` jobs, order kept."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lzq.superqueuer import pack


def test_each_queue_in_dispatch_order_in_messages_as_even_as_possible():
    claimed = [(i, f"t{i}", "a") for i in range(1, 10)] + [(20, "t20", "b")]
    assert pack(claimed, 8) == [
        ("a", [(i, f"t{i}") for i in range(1, 5)]),
        ("a", [(i, f"t{i}") for i in range(5, 10)]),
        ("b", [(20, "t20")]),
    ]


def test_a_margin_of_one_keeps_one_job_per_message():
    claimed = [(1, "x", "a"), (2, "y", "a")]
    assert pack(claimed, 1) == [("a", [(1, "x")]), ("a", [(2, "y")])]


@given(
    claimed=st.lists(
        st.tuples(st.integers(1, 10**6), st.text(max_size=3), st.sampled_from("abc")), max_size=40
    ),
    most=st.integers(1, 12),
)
def test_every_job_goes_exactly_once_in_its_queue_order_within_the_bound(claimed, most):
    messages = pack(claimed, most)
    for queue_name in "abc":
        sent = [pair for name, pairs in messages if name == queue_name for pair in pairs]
        assert sent == [(job_id, token) for job_id, token, name in claimed if name == queue_name]
    sizes = [len(pairs) for _, pairs in messages]
    assert all(1 <= size <= most for size in sizes)
    for queue_name in "abc":  # even: a queue's messages differ by at most one job
        own = [len(pairs) for name, pairs in messages if name == queue_name]
        assert not own or max(own) - min(own) <= 1
        assert len(own) == -(-sum(own) // most)  # and no more messages than the bound needs
