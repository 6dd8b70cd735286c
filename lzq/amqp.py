"""RabbitMQ access: the only module that imports pika (publishing with confirms, consuming).

The superqueuer publishes each job to the inbox of the worker it was assigned to (lzq_assign): a
queue the worker declares, server-named and exclusive to its connection, so RabbitMQ delivers it
to that worker or to nobody (the queue and whatever it holds go when the connection closes). A
message carries everything the worker needs to run its jobs (``encode_jobs``); PostgreSQL holds
every fact. Messages are transient and not acked: a message lost to a broker restart or a dropped
connection is found by the worker in PostgreSQL (lzq_undelivered) and its jobs handed back.

The one exception is the buffer queue (``push(..., via="buffer")``): until lzq-buffer has written a
push into PostgreSQL, its message is the only copy. It is published persistent, with confirms, to a
quorum queue, and may be duplicated (never lost): its uuid makes the second copy a no-op.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pika
import pika.exceptions

#: Errors after which the connection is rebuilt and the work retried or handed back.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (pika.exceptions.AMQPError, OSError)

#: The lzq queue name of the buffer: pushes made with ``via="buffer"`` wait in RabbitMQ queue
#: ``<prefix>.buffer`` until lzq-buffer writes them into PostgreSQL. No job queue may use this name.
BUFFER_QUEUE = "buffer"
#: Quorum queues drop a message returned this many times (RabbitMQ 4 drops after 20 by default, and
#: a closed channel counts as a return). lzq-buffer gives its batch back at every database outage and
#: a crash of it returns one too: a push must never be dropped for that, so the limit is out of reach.
BUFFER_DELIVERY_LIMIT = 1_000_000


@dataclasses.dataclass(frozen=True)
class Message:
    """A message for ``Publisher.publish``: ``body`` to the queue of lzq queue ``queue_name``.

    ``message_id`` identifies it if RabbitMQ returns it unroutable. ``persistent`` messages
    (delivery_mode 2) are written to disk before the broker confirms them.
    """

    queue_name: str
    body: bytes
    message_id: str
    persistent: bool = False


def queue_for(prefix: str, queue_name: str) -> str:
    """The RabbitMQ queue that carries lzq queue ``queue_name``."""
    return f"{prefix}.{queue_name}"


#: The fields of a job in a message, in order (``encode_jobs``): what the worker passes to the handler.
JOB_FIELDS = (
    "id",
    "token",
    "job_name",
    "params",
    "queue_name",
    "priority",
    "fairness_key",
    "max_failures",
    "attempt",
)


def encode_jobs(jobs: Sequence[bytes]) -> bytes:
    """A message body for jobs already encoded one by one as JSON arrays of ``JOB_FIELDS`` (the
    superqueuer has PostgreSQL build them: the params are never decoded and encoded again)."""
    return b"[" + b",".join(jobs) + b"]"


def decode_jobs(body: bytes) -> list[tuple]:
    """The jobs of a message body, each a tuple of ``JOB_FIELDS``; ValueError if it is not one of ours."""
    jobs = json.loads(body)
    if not isinstance(jobs, list) or not jobs:
        raise ValueError("message must be a non-empty list of jobs")
    for job in jobs:
        if (
            not isinstance(job, list)
            or len(job) != len(JOB_FIELDS)
            or type(job[0]) is not int
            or not isinstance(job[1], str)
        ):
            raise ValueError(f"each job must be a list of {len(JOB_FIELDS)} fields: {', '.join(JOB_FIELDS)}")
    return [tuple(job) for job in jobs]


def _parameters(url: str, name: str) -> pika.URLParameters:
    params = pika.URLParameters(url)
    params.client_properties = {"connection_name": name}
    params.heartbeat = 30
    params.blocked_connection_timeout = 60
    return params


def _connect(url: str, name: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(_parameters(url, name))


def queue_arguments(queue_name: str) -> dict[str, Any] | None:
    """Declaration arguments of the queue for lzq queue ``queue_name`` (every declarer uses these).

    Job queues are classic: their messages are disposable hints. The buffer is a quorum queue: it
    holds the only copy of each push until lzq-buffer commits it, and a quorum queue confirms a
    message only once a majority of its replicas have it on disk, so losing a broker node of a
    cluster loses no push (classic queues are not replicated).
    """
    if queue_name == BUFFER_QUEUE:
        return {"x-queue-type": "quorum", "x-delivery-limit": BUFFER_DELIVERY_LIMIT}
    return None


def _declare(
    channel: pika.adapters.blocking_connection.BlockingChannel, queue: str, arguments: dict | None
) -> None:
    # Durable so the queue outlives a broker restart.
    channel.queue_declare(queue=queue, durable=True, arguments=arguments)


class Publisher:
    """Publishes jobs to workers' inboxes (and buffered pushes to the buffer queue) with publisher
    confirms and ``mandatory``, a whole batch per round trip.

    pika's BlockingConnection waits for each confirm in turn (one broker round trip per message).
    This runs pika's asynchronous SelectConnection on its own I/O thread instead: ``publish_to_inboxes``
    hands the batch to that thread, which publishes every message and collects the broker's acks
    (RabbitMQ acks many at once with ``multiple``); the caller waits once for the whole batch.
    """

    def __init__(
        self, url: str, prefix: str, name: str = "lzq-superqueuer", confirm_timeout_s: float = 30.0
    ) -> None:
        self._url, self._prefix, self._name = url, prefix, name
        self._confirm_timeout_s = confirm_timeout_s
        self._connection: pika.SelectConnection | None = None
        self._channel: Any = None
        self._thread: threading.Thread | None = None
        self._opened = threading.Event()
        self._failure: BaseException | None = None
        self._declared: set[str] = set()
        # State of the batch in flight; touched only on the I/O thread until `_batch_done` is set.
        self._next_tag = 0
        self._pending: dict[int, int] = {}  # delivery tag -> index in the batch
        self._index_by_key: dict[Any, int] = {}  # first job id or message_id -> index in the batch
        self._returned: set[int] = set()
        self._results: list[bool] = []
        self._batch_done = threading.Event()

    def publish_to_inboxes(self, messages: Sequence[tuple[str, bytes, str]]) -> list[bool | None]:
        """Publish ``(inbox, body, message_id)`` messages to workers' inboxes, which are never
        declared here: a worker's inbox exists only while the worker is connected. For each
        message: True if the broker confirmed it, None if it returned it unroutable (the inbox is
        gone: nobody received it), False if it nacked it (an internal error of the broker: the
        message may be lost, or, for all we know, delivered).

        A connection error or a confirm timeout raises: then any message may have arrived.
        """
        results = self._send(
            [
                (inbox, body, pika.BasicProperties(content_type="application/json", message_id=message_id))
                for inbox, body, message_id in messages
            ],
            [message_id for _, _, message_id in messages],
            declare={},
        )
        return [None if i in self._returned else ok for i, ok in enumerate(results)]

    def publish(self, messages: Iterable[Message]) -> list[bool]:
        """Publish messages to lzq queues (declared durable first), with confirms and
        ``mandatory``; True for each confirmed.

        False means RabbitMQ refused (nack) or could not route it; a message that was returned
        unroutable is matched by its ``message_id``. A connection error or a confirm timeout
        raises; the caller then treats every message of the batch as not sent.
        """
        batch = list(messages)
        return self._send(
            [
                (
                    queue_for(self._prefix, m.queue_name),
                    m.body,
                    pika.BasicProperties(
                        content_type="application/json",
                        delivery_mode=2 if m.persistent else 1,
                        message_id=m.message_id,
                    ),
                )
                for m in batch
            ],
            [m.message_id for m in batch],
            declare={queue_for(self._prefix, m.queue_name): queue_arguments(m.queue_name) for m in batch},
        )

    def _send(self, batch: list[tuple[str, bytes, Any]], keys: list[Any], declare: dict) -> list[bool]:
        if not batch:
            return []
        self._ensure_open()
        self._batch_done.clear()
        self._connection.ioloop.add_callback_threadsafe(
            functools.partial(self._publish_batch, batch, keys, declare)
        )
        if not self._batch_done.wait(self._confirm_timeout_s):
            self.close()
            raise pika.exceptions.AMQPConnectionError(
                f"no publisher confirms within {self._confirm_timeout_s}s"
            )
        if self._failure is not None:
            failure = self._failure
            self.close()
            raise failure
        return self._results

    def close(self) -> None:
        connection, thread = self._connection, self._thread
        self._connection, self._thread = None, None
        if connection is not None:

            def shut() -> None:
                if connection.is_closing or connection.is_closed:
                    connection.ioloop.stop()
                else:
                    connection.close()

            with contextlib.suppress(Exception):  # the loop may already be gone
                connection.ioloop.add_callback_threadsafe(shut)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    # -- I/O thread ----------------------------------------------------------------------------------

    def _ensure_open(self) -> None:
        if self._connection is not None and self._failure is None and self._channel is not None:
            return
        self.close()
        self._failure, self._channel, self._next_tag = None, None, 0
        self._declared.clear()
        self._opened.clear()
        self._connection = pika.SelectConnection(
            _parameters(self._url, self._name),
            on_open_callback=lambda conn: conn.channel(on_open_callback=self._on_channel_open),
            on_open_error_callback=self._on_connection_lost,
            on_close_callback=self._on_connection_lost,
        )
        self._thread = threading.Thread(
            target=self._connection.ioloop.start, name="lzq-amqp-publisher", daemon=True
        )
        self._thread.start()
        if not self._opened.wait(self._confirm_timeout_s) or self._failure is not None:
            failure = self._failure or pika.exceptions.AMQPConnectionError("timed out connecting to RabbitMQ")
            self.close()
            raise failure

    def _on_channel_open(self, channel: Any) -> None:
        channel.add_on_return_callback(self._on_return)
        channel.add_on_close_callback(lambda _ch, reason: self._on_connection_lost(None, reason))
        channel.confirm_delivery(self._on_confirm, callback=lambda _frame: self._on_confirm_mode(channel))

    def _on_confirm_mode(self, channel: Any) -> None:
        self._channel = channel
        self._opened.set()

    def _on_connection_lost(self, connection: Any, reason: BaseException | str) -> None:
        if not isinstance(reason, BaseException):
            reason = pika.exceptions.AMQPConnectionError(str(reason))
        self._failure = reason
        self._opened.set()
        self._batch_done.set()
        if connection is not None:
            connection.ioloop.stop()

    def _publish_batch(self, batch: list[tuple[str, bytes, Any]], keys: list[Any], declare: dict) -> None:
        if self._failure is not None or self._channel is None:
            self._batch_done.set()
            return
        for queue, arguments in declare.items():
            if queue not in self._declared:
                # Durable so the queue outlives a broker restart; publish once it surely exists.
                def declared(_frame: Any, queue: str = queue) -> None:
                    self._declared.add(queue)
                    self._publish_batch(batch, keys, declare)

                self._channel.queue_declare(queue=queue, durable=True, arguments=arguments, callback=declared)
                return
        self._results = [False] * len(batch)
        self._returned.clear()
        self._pending.clear()
        self._index_by_key = {key: i for i, key in enumerate(keys)}
        for index, (queue, body, properties) in enumerate(batch):
            self._channel.basic_publish("", queue, body, properties, mandatory=True)
            self._next_tag += 1
            self._pending[self._next_tag] = index

    def _on_return(self, _channel: Any, _method: Any, properties: Any, body: bytes) -> None:
        # RabbitMQ sends basic.return before the ack of the same message: remember it as refused.
        if properties.message_id in self._index_by_key:
            self._returned.add(self._index_by_key[properties.message_id])

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        acked = isinstance(method, pika.spec.Basic.Ack)
        tags = (
            [t for t in self._pending if t <= method.delivery_tag]
            if method.multiple
            else [method.delivery_tag]
        )
        for tag in tags:
            index = self._pending.pop(tag, None)
            if index is not None:
                self._results[index] = acked and index not in self._returned
        if not self._pending:
            self._batch_done.set()


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One received message. ``generation`` ties its delivery tag to the channel that gave it."""

    tag: int
    generation: int
    body: bytes


class Consumer:
    """Consumes lzq queues on the calling thread (lzq-buffer: the buffer queue); ``ack`` may be
    called from any thread. The worker's ``Inbox`` is one too.

    ``prefetch`` bounds unacked messages for the whole channel: messages are acked only after
    their outcome is committed, so it bounds what the consumer holds. (On the quorum buffer
    queue, which refuses channel-wide prefetch, it is per consumer: the same bound for one queue.)
    """

    def __init__(
        self,
        url: str,
        prefix: str,
        queues: list[str],
        prefetch: int,
        on_message: Callable[[Delivery], None],
        name: str = "lzq-worker",
    ) -> None:
        self._url, self._prefix, self._name = url, prefix, name
        self._queues, self._prefetch, self._on_message = queues, prefetch, on_message
        self._connection: pika.BlockingConnection | None = None
        self._channel = None
        self._consumer_tags: list[str] = []
        # time.monotonic() at which our wake-up timer (see ``process``) fires; None: none armed.
        self._wake_at: float | None = None
        self.generation = 0

    def connect(self) -> None:
        """(Re)connect, declare the queues and start consuming."""
        self._open()
        quorum = any(queue_arguments(queue_name) for queue_name in self._queues)
        self._channel.basic_qos(prefetch_count=self._prefetch, global_qos=not quorum)
        for queue_name in self._queues:
            queue = queue_for(self._prefix, queue_name)
            _declare(self._channel, queue, queue_arguments(queue_name))
            self._consumer_tags.append(
                self._channel.basic_consume(queue, functools.partial(self._deliver, self.generation))
            )

    def _open(self) -> None:
        self.close()
        self._connection = _connect(self._url, self._name)
        self._channel = self._connection.channel()
        self.generation += 1
        self._wake_at = None  # a timer of the old connection never fires

    def _deliver(self, generation: int, _channel: Any, method: Any, _properties: Any, body: bytes) -> None:
        self._on_message(Delivery(method.delivery_tag, generation, body))

    @property
    def is_open(self) -> bool:
        return self._connection is not None and self._connection.is_open and self._channel.is_open

    def process(self, time_limit_s: float) -> None:
        """Deliver messages and run queued acks; returns once some were handled, or after at most
        time_limit_s (0: only what is ready now). Raises on connection loss."""
        if time_limit_s <= 0:
            self._connection.process_data_events(time_limit=0)
            return
        # pika's time_limit arms and cancels an I/O-loop timer on every call, and a busy worker
        # calls once per message: 5-6% of its CPU in a drain. Keep one wake-up timer instead, armed
        # only when none is due soon enough, and block until I/O or a timer has work.
        deadline = time.monotonic() + time_limit_s
        if self._wake_at is None or self._wake_at > deadline:
            self._wake_at = deadline
            self._connection.call_later(time_limit_s, self._on_wake)
        self._connection.process_data_events(time_limit=None)

    def _on_wake(self) -> None:
        self._wake_at = None

    def ack(self, delivery: Delivery, multiple: bool = False) -> None:
        """Ack from any thread (with ``multiple``, also every earlier delivery of its channel).

        A delivery from an earlier (dead) channel is skipped: RabbitMQ has already requeued it, and
        the buffer's uuid will make the copy a no-op."""
        connection = self._connection
        if connection is None or delivery.generation != self.generation:
            return
        with contextlib.suppress(TRANSIENT_ERRORS):
            connection.add_callback_threadsafe(functools.partial(self._ack, delivery, multiple))

    def _ack(self, delivery: Delivery, multiple: bool = False) -> None:
        if delivery.generation == self.generation and self._channel is not None and self._channel.is_open:
            self._channel.basic_ack(delivery.tag, multiple=multiple)

    def cancel(self) -> None:
        """Stop receiving new messages; unacked ones stay ours until acked or the channel closes."""
        if self.is_open:
            for tag in self._consumer_tags:
                self._channel.basic_cancel(tag)
        self._consumer_tags.clear()

    def close(self) -> None:
        if self._connection is not None and self._connection.is_open:
            with contextlib.suppress(TRANSIENT_ERRORS):
                self._connection.close()
        self._connection, self._channel = None, None
        self._consumer_tags.clear()


class Inbox(Consumer):
    """A worker's inbox: a server-named queue exclusive to this connection, consumed without acks.

    RabbitMQ deletes it, with whatever it still holds, when the connection closes, so a message
    published to it reaches this connection or nobody (a publish after that is returned as
    unroutable). Each ``connect`` makes a new one (``name``): the worker names it in PostgreSQL
    (lzq_worker_inbox) before any job is sent there. ``on_message`` gets each message's body.
    """

    def __init__(self, url: str, on_message: Callable[[bytes], None], name: str = "lzq-worker") -> None:
        super().__init__(url, "", [], 0, on_message, name)  # type: ignore[arg-type]
        self.name: str | None = None

    def connect(self) -> None:
        self._open()
        self.name = self._channel.queue_declare(queue="", exclusive=True).method.queue
        self._consumer_tags.append(
            self._channel.basic_consume(
                self.name, lambda _ch, _method, _props, body: self._on_message(body), auto_ack=True
            )
        )


def queue_depth(url: str, prefix: str, queue_name: str) -> int:
    """Messages ready in the queue for ``queue_name`` (passive declare), for status and benchmarks."""
    connection = _connect(url, "lzq-status")
    try:
        channel = connection.channel()
        try:
            return channel.queue_declare(
                queue=queue_for(prefix, queue_name), passive=True
            ).method.message_count
        except pika.exceptions.ChannelClosedByBroker:
            return 0
    finally:
        if connection.is_open:
            connection.close()
