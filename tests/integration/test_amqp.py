"""lzq.amqp against a real RabbitMQ: confirms, mandatory routing, acks from other threads, reconnects."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pika

from lzq import amqp
from tests.conftest import AMQP_URL


def _drain(consumer: amqp.Consumer, received: list, want: int, timeout_s: float = 5) -> None:
    deadline = time.monotonic() + timeout_s
    while len(received) < want and time.monotonic() < deadline:
        consumer.process(0.05)


def _ready_count(prefix: str, queue_name: str = "default") -> int:
    return amqp.queue_depth(AMQP_URL, prefix, queue_name)


@contextlib.contextmanager
def _broker(
    prefix: str, prefetch: int
) -> Iterator[tuple[amqp.Publisher, amqp.Consumer, list[amqp.Delivery]]]:
    """A publisher and a connected consumer of queue "default" (what it receives lands in the list),
    both closed afterwards."""
    publisher = amqp.Publisher(AMQP_URL, prefix)
    received: list[amqp.Delivery] = []
    consumer = amqp.Consumer(AMQP_URL, prefix, ["default"], prefetch=prefetch, on_message=received.append)
    consumer.connect()
    try:
        yield publisher, consumer, received
    finally:
        publisher.close()
        consumer.close()


def _delete_queue(prefix: str, queue_name: str) -> None:
    """Someone deletes a queue behind the publisher's back (it declared it once, on first use)."""
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    connection.channel().queue_delete(amqp.queue_for(prefix, queue_name))
    connection.close()


def test_published_messages_are_confirmed_and_consumed(amqp_prefix):
    with _broker(amqp_prefix, prefetch=10) as (publisher, consumer, received):
        assert publisher.publish_many([("default", [(i, f"t{i}")]) for i in range(5)]) == [True] * 5
        _drain(consumer, received, 5)
        assert [amqp.decode(d.body) for d in received] == [[(i, f"t{i}")] for i in range(5)]


def test_a_message_carries_several_jobs_and_a_refused_one_is_reported_by_its_first_job(amqp_prefix):
    with _broker(amqp_prefix, prefetch=10) as (publisher, consumer, received):
        batch = [
            ("default", [(1, "a"), (2, "b")]),
            ("default", [(3, "c")]),
            ("nowhere", [(4, "d"), (5, "e")]),
        ]
        # `nowhere` is declared by the publisher on first use: delete it to make it unroutable.
        assert publisher.publish_many(batch[:1]) == [True]
        assert publisher.publish_many([batch[2]]) == [True]
        _delete_queue(amqp_prefix, "nowhere")
        assert publisher.publish_many(batch) == [True, True, False]
        _drain(consumer, received, 3)
        assert [amqp.decode(d.body) for d in received] == [[(1, "a"), (2, "b")]] * 2 + [[(3, "c")]]


def test_unroutable_message_is_reported_not_confirmed(amqp_prefix):
    publisher = amqp.Publisher(AMQP_URL, amqp_prefix)
    try:
        assert publisher.publish_many([("default", [(1, "t")])]) == [True]
        # Someone deletes the queue behind our back: mandatory publishing must say so.
        _delete_queue(amqp_prefix, "default")
        assert publisher.publish_many([("default", [(2, "t")])]) == [False]
    finally:
        publisher.close()


def test_prefetch_bounds_unacked_messages_and_acks_work_from_other_threads(amqp_prefix):
    with _broker(amqp_prefix, prefetch=3) as (publisher, consumer, received):
        publisher.publish_many([("default", [(i, "t")]) for i in range(6)])
        _drain(consumer, received, 6, timeout_s=1)
        assert len(received) == 3  # the rest wait in RabbitMQ until these are acked

        acker = threading.Thread(target=lambda: [consumer.ack(d) for d in list(received)])
        acker.start()
        acker.join()
        _drain(consumer, received, 6)
        assert len(received) == 6


def test_acks_for_a_previous_channel_are_skipped_after_reconnect(amqp_prefix):
    with _broker(amqp_prefix, prefetch=5) as (publisher, consumer, received):
        publisher.publish_many([("default", [(1, "t")])])
        _drain(consumer, received, 1)
        old = received.pop()
        consumer.connect()  # the old channel is gone; RabbitMQ requeues its unacked message
        _drain(consumer, received, 1)
        assert amqp.decode(received[0].body) == [(1, "t")]  # the requeued copy, on the new channel
        assert received[0].generation == old.generation + 1
        consumer.ack(old)  # must not raise nor ack the new delivery by its (reused) tag
        consumer.process(0.2)
        assert consumer.is_open
        consumer.ack(received[0])
        consumer.process(0.2)
        assert _ready_count(amqp_prefix) == 0


def test_ack_many_acks_exactly_the_deliveries_given_in_any_order(amqp_prefix):
    # It acks the oldest run with one `multiple` frame: that must never cover a delivery not given.
    with _broker(amqp_prefix, prefetch=10) as (publisher, consumer, received):
        publisher.publish_many([("default", [(i, "t")]) for i in range(8)])
        _drain(consumer, received, 8)
        by_id = {amqp.decode(d.body)[0][0]: d for d in received}
        acked = threading.Thread(target=consumer.ack_many, args=([by_id[i] for i in (1, 0, 3, 6)],))
        acked.start()
        acked.join()
        consumer.process(0.2)
        consumer.ack_many([by_id[4]])
        consumer.process(0.2)
        consumer.close()  # RabbitMQ requeues what is still unacked
        received.clear()
        consumer.connect()
        _drain(consumer, received, 3)
        consumer.process(0.2)
        assert sorted(amqp.decode(d.body)[0][0] for d in received) == [2, 5, 7]
        consumer.ack_many(received)
        consumer.process(0.2)
        consumer.close()
        assert _ready_count(amqp_prefix) == 0


def test_process_returns_with_the_first_messages_and_keeps_to_each_calls_time_limit(amqp_prefix):
    # process() keeps one wake-up timer across calls: a short call must not sit out the timer an
    # earlier, longer call armed and left behind when a message cut it short.
    with _broker(amqp_prefix, prefetch=5) as (publisher, consumer, received):
        publisher.publish_many([("default", [(1, "t")])])
        started = time.monotonic()
        consumer.process(30.0)
        assert len(received) == 1 and time.monotonic() - started < 10
        started = time.monotonic()
        consumer.process(0.1)  # nothing more to deliver
        assert time.monotonic() - started < 5
        consumer.process(0)
        assert len(received) == 1


def test_queue_depth_of_missing_queue_is_zero(amqp_prefix):
    assert _ready_count(amqp_prefix, "never-declared") == 0
