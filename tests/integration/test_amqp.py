"""lzq.amqp against a real RabbitMQ: confirms, mandatory routing, workers' inboxes, acks from other
threads, reconnects."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator

import pika
import pytest

from lzq import amqp
from tests.conftest import AMQP_URL


def _drain(consumer: amqp.Consumer, received: list, want: int, timeout_s: float = 5) -> None:
    deadline = time.monotonic() + timeout_s
    while len(received) < want and time.monotonic() < deadline:
        consumer.process(0.05)


def _message(job_id: int, queue_name: str = "default") -> amqp.Message:
    return amqp.Message(queue_name, json.dumps([job_id]).encode(), str(job_id))


def _ids(received: list[amqp.Delivery]) -> list[int]:
    return [json.loads(d.body)[0] for d in received]


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
        assert publisher.publish([_message(i) for i in range(5)]) == [True] * 5
        _drain(consumer, received, 5)
        assert _ids(received) == list(range(5))


def test_unroutable_message_is_reported_not_confirmed(amqp_prefix):
    publisher = amqp.Publisher(AMQP_URL, amqp_prefix)
    try:
        assert publisher.publish([_message(1)]) == [True]
        # Someone deletes the queue behind our back: mandatory publishing must say so.
        _delete_queue(amqp_prefix, "default")
        assert publisher.publish([_message(2), _message(3, "other")]) == [False, True]
    finally:
        publisher.close()
        _delete_queue(amqp_prefix, "other")


@contextlib.contextmanager
def _inbox() -> Iterator[tuple[amqp.Inbox, list[bytes]]]:
    received: list[bytes] = []
    inbox = amqp.Inbox(AMQP_URL, received.append)
    inbox.connect()
    try:
        yield inbox, received
    finally:
        inbox.close()


def _drain_inbox(inbox: amqp.Inbox, received: list, want: int, timeout_s: float = 5) -> None:
    deadline = time.monotonic() + timeout_s
    while len(received) < want and time.monotonic() < deadline:
        inbox.process(0.05)


def test_an_inbox_gets_what_is_published_to_it_and_no_other_connection_can_consume_it(amqp_prefix):
    publisher = amqp.Publisher(AMQP_URL, amqp_prefix)
    try:
        with _inbox() as (inbox, received):
            assert inbox.name.startswith("amq.gen-")
            assert publisher.publish_to_inboxes([(inbox.name, b"[1]", "1"), (inbox.name, b"[2]", "2")]) == [
                True,
                True,
            ]
            _drain_inbox(inbox, received, 2)
            assert received == [b"[1]", b"[2]"]
            other = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
            try:
                with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="RESOURCE_LOCKED"):
                    other.channel().queue_declare(inbox.name, passive=True)
            finally:
                other.close()
    finally:
        publisher.close()


def test_a_message_to_an_inbox_that_is_gone_comes_back_and_others_in_the_batch_arrive(amqp_prefix):
    publisher = amqp.Publisher(AMQP_URL, amqp_prefix)
    try:
        with _inbox() as (gone, _), _inbox() as (alive, received):
            old_name = gone.name
            gone.connect()  # a new connection: a new inbox, and the old one is deleted with its connection
            assert gone.name != old_name
            outcomes = publisher.publish_to_inboxes(
                [(old_name, b"[1]", "1"), (alive.name, b"[2]", "2"), (gone.name, b"[3]", "3")]
            )
            assert outcomes == [None, True, True]  # None: returned unroutable, nobody got it
            _drain_inbox(alive, received, 1)
            assert received == [b"[2]"]
    finally:
        publisher.close()


def test_prefetch_bounds_unacked_messages_and_acks_work_from_other_threads(amqp_prefix):
    with _broker(amqp_prefix, prefetch=3) as (publisher, consumer, received):
        publisher.publish([_message(i) for i in range(6)])
        _drain(consumer, received, 6, timeout_s=1)
        assert len(received) == 3  # the rest wait in RabbitMQ until these are acked

        acker = threading.Thread(target=lambda: [consumer.ack(d) for d in list(received)])
        acker.start()
        acker.join()
        _drain(consumer, received, 6)
        assert len(received) == 6


def test_acks_for_a_previous_channel_are_skipped_after_reconnect(amqp_prefix):
    with _broker(amqp_prefix, prefetch=5) as (publisher, consumer, received):
        publisher.publish([_message(1)])
        _drain(consumer, received, 1)
        old = received.pop()
        consumer.connect()  # the old channel is gone; RabbitMQ requeues its unacked message
        _drain(consumer, received, 1)
        assert _ids(received) == [1]  # the requeued copy, on the new channel
        assert received[0].generation == old.generation + 1
        consumer.ack(old)  # must not raise nor ack the new delivery by its (reused) tag
        consumer.process(0.2)
        assert consumer.is_open
        consumer.ack(received[0])
        consumer.process(0.2)
        assert _ready_count(amqp_prefix) == 0


def test_process_returns_with_the_first_messages_and_keeps_to_each_calls_time_limit(amqp_prefix):
    # process() keeps one wake-up timer across calls: a short call must not sit out the timer an
    # earlier, longer call armed and left behind when a message cut it short.
    with _broker(amqp_prefix, prefetch=5) as (publisher, consumer, received):
        publisher.publish([_message(1)])
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
