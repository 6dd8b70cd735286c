"""The worker's bookkeeping of messages that carry several jobs: each job admitted once, the message
acked only when the last of its jobs is done with (no broker: the consumer is never connected)."""

from __future__ import annotations

from lzq import amqp
from lzq.config import Settings
from lzq.worker import Worker


def delivery(tag: int, *dispatches: tuple[int, str]) -> amqp.Delivery:
    return amqp.Delivery(tag, 1, amqp.encode(list(dispatches)))


def test_a_message_is_done_with_when_its_last_job_is_and_duplicates_do_not_count():
    worker = Worker(Settings(), ["default"], concurrency=2)
    first = delivery(1, (1, "a"), (2, "b"))
    second = delivery(2, (2, "b"), (3, "c"))  # job 2 again (a redelivery): already held here
    worker._on_message(first)
    worker._on_message(second)
    assert list(worker._waiting) == [1, 2, 3]
    assert worker._open_jobs == {first: 2, second: 1}
    with worker._lock:
        assert worker._done_with(1) is None  # job 2 of the first message is still held
        assert worker._done_with(3) == second
        assert worker._done_with(2) == first
    assert worker._open_jobs == {} and worker._inflight == {}


def test_a_message_of_jobs_all_held_already_is_not_kept():
    worker = Worker(Settings(), ["default"], concurrency=2)
    worker._on_message(delivery(1, (1, "a")))
    worker._on_message(delivery(2, (1, "a")))
    assert list(worker._waiting) == [1]
    assert list(worker._open_jobs.values()) == [1]
