"""lzq-buffer: write pushes made with via="buffer" from RabbitMQ into PostgreSQL, acking after commit."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from typing import Any

from lzq import amqp, db, log
from lzq.backoff import Backoff
from lzq.client import jsonb_problem
from lzq.config import Settings

#: How long ``run`` waits on an empty queue before it looks at ``stop()`` again.
IDLE_WAIT_S = 0.2


class Buffer:
    """Drains RabbitMQ queue ``<prefix>.buffer`` into PostgreSQL, a batch per transaction.

    One pass (``run_once``): take up to ``buffer_batch`` messages (the consumer's prefetch, so
    RabbitMQ never hands over more), waiting ``buffer_linger_s`` for more once the first is in;
    write them in with one ``lzq_push_buffered`` call, which commits; then ack them all with one
    ``multiple`` ack. A message is acked only after its push is committed, so a crash anywhere
    loses nothing: RabbitMQ redelivers what was not acked, and the push uuid turns a second copy
    into a no-op. Invalid pushes are recorded and acked (``buffered_push_rejected``), never retried.

    PostgreSQL down: stop consuming. The channel is closed, so RabbitMQ puts the unacked batch
    back in the queue (for any other lzq-buffer that can still write it in); this one takes
    messages again only once it has a database connection. RabbitMQ down: reconnect with backoff;
    what was not acked is redelivered. Any number may run at once. ``stop()`` (SIGTERM) ends after
    the pass in progress; unacked messages go back to the queue when the connection closes.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.buffer_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.log = log.get("buffer").bind(buffer_id=self.buffer_id)
        self._stop = threading.Event()
        self._conn: Any = None
        # Delivered and not yet acked, in delivery-tag order; only touched on the thread that runs
        # the consumer (pika's BlockingConnection calls _pending_append from process()).
        self._pending: list[amqp.Delivery] = []
        self._consumer = amqp.Consumer(
            settings.amqp_url,
            settings.amqp_prefix,
            [amqp.BUFFER_QUEUE],
            prefetch=settings.buffer_batch,
            on_message=self._pending_append,
            name=f"lzq-buffer {self.buffer_id}",
        )

    # -- lifecycle ---------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish its pass and return (safe from a signal handler)."""
        self._stop.set()

    def run(self) -> int:
        """Loop until ``stop()``; database and broker outages are waited out with backoff."""
        self.log.info(
            "buffer_started",
            queue=amqp.queue_for(self.settings.amqp_prefix, amqp.BUFFER_QUEUE),
            batch=self.settings.buffer_batch,
        )
        backoff = Backoff()
        while not self._stop.is_set():
            try:
                self.run_once(IDLE_WAIT_S)
                backoff.reset()
            except db.TRANSIENT_ERRORS as exc:
                self._retry_later("database_unavailable", exc, backoff)
            except amqp.TRANSIENT_ERRORS as exc:
                self._retry_later("amqp_unavailable", exc, backoff)
            except Exception as exc:  # noqa: BLE001 - e.g. an unmigrated database: retry, never ack
                self._retry_later("buffer_insert_failed", exc, backoff)
        returned = self._release()
        self._close_db()
        self.log.info("buffer_stopped", returned=returned)
        return 0

    def run_once(self, wait_s: float = 0.0) -> int:
        """One batch: wait up to ``wait_s`` for a first message, linger for more, write them in,
        ack. Returns how many messages it acked (0 when the queue was empty).

        Connects to PostgreSQL before it takes any message: a buffer that cannot write holds none.
        """
        self._conn = db.reopened(self._conn, self.settings.dsn, application_name="lzq-buffer")
        if not self._consumer.is_open:
            self._consumer.connect()
            self._pending.clear()  # deliveries of a closed channel are back in the queue
            self.log.info("amqp_connected")
        if not self._pending:
            self._consumer.process(wait_s)  # returns as soon as messages arrive
        deadline = time.monotonic() + self.settings.buffer_linger_s
        while self._pending and len(self._pending) < self.settings.buffer_batch:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._consumer.process(left)
        if not self._pending:
            return 0
        batch = self._pending[: self.settings.buffer_batch]
        self._write(batch)
        # Committed: now, and only now, the messages may go. One ack covers the whole batch.
        del self._pending[: len(batch)]
        self._consumer.ack(batch[-1], multiple=True)
        self._consumer.process(0)  # send it now
        return len(batch)

    # -- writing a batch ---------------------------------------------------------------------------

    def _write(self, batch: list[amqp.Delivery]) -> None:
        """Write the batch in (one statement, so one transaction) and log what became of it."""
        started = time.monotonic()
        pushes: list[str] = []
        for delivery in batch:
            text, problem, push_uuid = _parse(delivery.body)
            if problem is None:
                pushes.append(text)
            else:
                # Not something Client.push publishes; nothing in PostgreSQL can record it.
                self.log.warning("buffered_push_rejected", uuid=push_uuid, error=problem, recorded=False)
        if not pushes:
            return
        rows = db.fetch(
            self._conn, "SELECT * FROM lzq_push_buffered(%s::jsonb)", ("[" + ",".join(pushes) + "]",)
        )
        counts = {"inserted": 0, "duplicate": 0, "rejected": 0}
        for push_uuid, job_id, outcome, error, field in rows:
            counts[outcome] += 1
            if outcome == "rejected":
                self.log.warning(
                    "buffered_push_rejected",
                    uuid=str(push_uuid) if push_uuid else None,
                    error=error,
                    field=field,
                    recorded=push_uuid is not None,
                )
            elif outcome == "duplicate":
                self.log.debug("buffered_push_duplicate", uuid=str(push_uuid), job_id=job_id)
        self.log.info(
            "buffered_jobs_inserted",
            count=counts["inserted"],
            duplicates=counts["duplicate"],
            rejected=counts["rejected"],
            duration_ms=round((time.monotonic() - started) * 1000, 2),
        )

    # -- plumbing ----------------------------------------------------------------------------------

    def _pending_append(self, delivery: amqp.Delivery) -> None:
        self._pending.append(delivery)

    def _retry_later(self, event: str, exc: BaseException, backoff: Backoff) -> None:
        """Give back every unacked message, drop both connections, log, and wait (or stop)."""
        returned = self._release()
        self._close_db()
        delay = backoff.next_delay()
        level = self.log.error if event == "buffer_insert_failed" else self.log.warning
        level(event, error=str(exc) or type(exc).__name__, retry_in_s=round(delay, 2), returned=returned)
        self._stop.wait(delay)

    def _release(self) -> int:
        """Close the consumer: RabbitMQ requeues what it delivered and we did not ack. Returns how
        many messages that was (none of them committed: the ack follows each commit at once)."""
        returned = len(self._pending)
        self._pending.clear()
        self._consumer.close()
        return returned

    def _close_db(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


def _parse(body: bytes) -> tuple[str, str | None, str | None]:
    """(the body as text, why it cannot go to lzq_push_buffered or None, its uuid if readable).

    lzq_push_buffered judges everything about a push; this only keeps out what would make the
    whole batch's JSON unparsable for PostgreSQL, which no single element could be blamed for.
    """
    try:
        text = body.decode("utf-8")
        value = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        return "", f"not JSON: {exc}", None
    if not isinstance(value, dict):
        return "", f"must be a JSON object, got {type(value).__name__}", None
    push_uuid = value.get("uuid") if isinstance(value.get("uuid"), str) else None
    return text, jsonb_problem(value), push_uuid


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
