"""RabbitMQ access: the only module that imports pika (publishing with confirms, consuming).

RabbitMQ only delivers ``{"id", "token"}``; PostgreSQL holds every fact. So messages are transient
(a broker restart loses at most the in-flight ones, and the dispatch-lease sweep re-dispatches them)
and any message may be lost or duplicated without harm: the start fence rejects stale tokens.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Iterable

import pika
import pika.exceptions

#: Errors after which the connection is rebuilt and the work retried or handed back.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (pika.exceptions.AMQPError, OSError)

_PROPERTIES = pika.BasicProperties(content_type="application/json", delivery_mode=1)


def queue_for(prefix: str, queue_name: str) -> str:
    """The RabbitMQ queue that carries lzq queue ``queue_name``."""
    return f"{prefix}.{queue_name}"


def encode(job_id: int, token: str) -> bytes:
    return json.dumps({"id": job_id, "token": token}, separators=(",", ":")).encode()


def decode(body: bytes) -> tuple[int, str]:
    """(job id, dispatch token) from a message body; ValueError if it is not one of ours."""
    data = json.loads(body)
    job_id, token = data["id"], data["token"]
    if not isinstance(job_id, int) or not isinstance(token, str):
        raise ValueError("message must be {id: int, token: str}")
    return job_id, token


def _connect(url: str, name: str) -> pika.BlockingConnection:
    params = pika.URLParameters(url)
    params.client_properties = {"connection_name": name}
    params.heartbeat = 30
    params.blocked_connection_timeout = 60
    return pika.BlockingConnection(params)


def _declare(channel: pika.adapters.blocking_connection.BlockingChannel, queue: str) -> None:
    # Durable so the queue (and its binding to workers) outlives a broker restart.
    channel.queue_declare(queue=queue, durable=True)


class Publisher:
    """Publishes dispatches with publisher confirms and ``mandatory`` (unroutable → not confirmed)."""

    def __init__(self, url: str, prefix: str, name: str = "lzq-superqueuer") -> None:
        self._url, self._prefix, self._name = url, prefix, name
        self._connection: pika.BlockingConnection | None = None
        self._channel = None
        self._declared: set[str] = set()

    def publish_many(self, messages: Iterable[tuple[str, int, str]]) -> list[bool]:
        """Publish (queue_name, job_id, token) messages; True for each the broker confirmed.

        False means RabbitMQ refused or could not route it: the caller hands the job back. A
        connection error propagates; the caller treats every unconfirmed message as not sent.
        """
        channel = self._ensure_channel()
        results = []
        for queue_name, job_id, token in messages:
            queue = queue_for(self._prefix, queue_name)
            if queue not in self._declared:
                _declare(channel, queue)
                self._declared.add(queue)
            try:
                channel.basic_publish("", queue, encode(job_id, token), _PROPERTIES, mandatory=True)
                results.append(True)
            except (pika.exceptions.UnroutableError, pika.exceptions.NackError):
                results.append(False)
        return results

    def keepalive(self) -> None:
        """Let pika answer broker heartbeats between publishes."""
        if self._connection is not None and self._connection.is_open:
            self._connection.process_data_events(0)

    def _ensure_channel(self):
        if self._connection is None or not self._connection.is_open or not self._channel.is_open:
            self.close()
            self._connection = _connect(self._url, self._name)
            self._channel = self._connection.channel()
            self._channel.confirm_delivery()
            self._declared.clear()
        return self._channel

    def close(self) -> None:
        if self._connection is not None and self._connection.is_open:
            try:
                self._connection.close()
            except TRANSIENT_ERRORS:
                pass
        self._connection, self._channel = None, None


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One received message. ``generation`` ties its delivery tag to the channel that gave it."""

    tag: int
    generation: int
    body: bytes


class Consumer:
    """Consumes the worker's queues on the calling thread; ``ack`` may be called from any thread.

    ``prefetch`` bounds unacked messages for the whole channel: messages are acked only after
    their outcome is committed, so it bounds the jobs this worker holds.
    """

    def __init__(self, url: str, prefix: str, queues: list[str], prefetch: int,
                 on_message: Callable[[Delivery], None], name: str = "lzq-worker") -> None:
        self._url, self._prefix, self._name = url, prefix, name
        self._queues, self._prefetch, self._on_message = queues, prefetch, on_message
        self._connection: pika.BlockingConnection | None = None
        self._channel = None
        self._consumer_tags: list[str] = []
        self.generation = 0

    def connect(self) -> None:
        """(Re)connect, declare the queues and start consuming."""
        self.close()
        self._connection = _connect(self._url, self._name)
        self._channel = self._connection.channel()
        self._channel.basic_qos(prefetch_count=self._prefetch, global_qos=True)
        self.generation += 1
        generation = self.generation
        for queue_name in self._queues:
            queue = queue_for(self._prefix, queue_name)
            _declare(self._channel, queue)
            self._consumer_tags.append(self._channel.basic_consume(
                queue, lambda _ch, method, _props, body: self._on_message(
                    Delivery(method.delivery_tag, generation, body))))

    @property
    def is_open(self) -> bool:
        return self._connection is not None and self._connection.is_open and self._channel.is_open

    def process(self, time_limit_s: float) -> None:
        """Deliver messages and run queued acks for up to time_limit_s; raises on connection loss."""
        self._connection.process_data_events(time_limit=time_limit_s)

    def ack(self, delivery: Delivery) -> None:
        """Ack from any thread. A delivery from an earlier (dead) channel is skipped: RabbitMQ has
        already requeued it, and the start fence will drop the copy."""
        connection = self._connection
        if connection is None or delivery.generation != self.generation:
            return
        try:
            connection.add_callback_threadsafe(functools.partial(self._ack, delivery))
        except TRANSIENT_ERRORS:
            pass

    def _ack(self, delivery: Delivery) -> None:
        if delivery.generation == self.generation and self._channel is not None and self._channel.is_open:
            self._channel.basic_ack(delivery.tag)

    def cancel(self) -> None:
        """Stop receiving new messages; unacked ones stay ours until acked or the channel closes."""
        if self.is_open:
            for tag in self._consumer_tags:
                self._channel.basic_cancel(tag)
        self._consumer_tags.clear()

    def close(self) -> None:
        if self._connection is not None and self._connection.is_open:
            try:
                self._connection.close()
            except TRANSIENT_ERRORS:
                pass
        self._connection, self._channel = None, None
        self._consumer_tags.clear()


def queue_depth(url: str, prefix: str, queue_name: str) -> int:
    """Messages ready in the queue for ``queue_name`` (passive declare), for status and benchmarks."""
    connection = _connect(url, "lzq-status")
    try:
        channel = connection.channel()
        try:
            return channel.queue_declare(queue=queue_for(prefix, queue_name), passive=True).method.message_count
        except pika.exceptions.ChannelClosedByBroker:
            return 0
    finally:
        if connection.is_open:
            connection.close()
