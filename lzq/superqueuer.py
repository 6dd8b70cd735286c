"""lzq-superqueuer: promote due jobs, claim ready ones into free worker slots, publish them, sweep."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from typing import Any

from lzq import amqp, db, log
from lzq.backoff import Backoff
from lzq.config import Settings


class Superqueuer:
    """Feeds RabbitMQ from PostgreSQL, never faster than workers have free slots.

    One pass (``run_once``): sweep (every ``sweep_interval_s``, one superqueuer at a time), promote
    due scheduled jobs, claim up to the free credit (``lzq_claim``, committed), publish each
    ``{id, token}`` with publisher confirms, hand back what RabbitMQ refused. ``run`` repeats passes
    while there is work and sleeps on LISTEN otherwise, with a polling backstop. Any number may run
    at once: claims are fenced by SKIP LOCKED and a per-queue advisory lock.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.superqueuer_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.log = log.get("superqueuer").bind(superqueuer_id=self.superqueuer_id)
        self._stop = threading.Event()
        self._conn: Any = None
        self._listener: db.Listener | None = None
        self._publisher = amqp.Publisher(settings.amqp_url, settings.amqp_prefix,
                                         name=f"lzq-superqueuer {self.superqueuer_id}")
        self._next_sweep = 0.0
        self._next_due_in_s: float | None = None

    def stop(self) -> None:
        """Ask the loop to finish its pass and return (safe from a signal handler)."""
        self._stop.set()

    def run(self) -> int:
        """Loop until ``stop()``; database and broker outages are waited out with backoff."""
        self.log.info("superqueuer_started")
        backoff = Backoff()
        while not self._stop.is_set():
            try:
                self._connect()
                if self.run_once() < self.settings.claim_batch:
                    self._sleep()
                backoff.reset()
            except db.TRANSIENT_ERRORS as exc:
                self._retry_later("database_unavailable", exc, backoff)
            except amqp.TRANSIENT_ERRORS as exc:
                self._retry_later("amqp_unavailable", exc, backoff)
        self._close()
        self.log.info("superqueuer_stopped")
        return 0

    def run_once(self) -> int:
        """One pass; returns how many jobs were published (a full batch means: go again at once)."""
        self._connect()
        now = time.monotonic()
        if now >= self._next_sweep:
            self._sweep()
            self._next_sweep = now + self.settings.sweep_interval_s
        promoted, self._next_due_in_s = self._fetch("SELECT * FROM lzq_promote(%s)",
                                                    (self.settings.claim_batch,))[0]
        if promoted:
            self.log.debug("jobs_promoted", count=promoted)
        claimed = self._fetch("SELECT * FROM lzq_claim(%s, %s, %s, %s)",
                              (self.settings.claim_batch, self.settings.dispatch_lease_s,
                               self.settings.prefetch_margin, self.settings.worker_dead_after_s))
        if not claimed:
            return 0
        return self._publish(claimed)

    def _publish(self, claimed: list[tuple]) -> int:
        messages = [(queue_name, job_id, str(token)) for job_id, token, queue_name in claimed]
        try:
            confirmed = self._publisher.publish_many(messages)
        except amqp.TRANSIENT_ERRORS:
            # We cannot know which messages got through: hand all back. Any that did arrive carry a
            # token that no longer matches, so the start fence drops them.
            self._handback(messages)
            raise
        refused = [m for m, ok in zip(messages, confirmed, strict=True) if not ok]
        if refused:
            self.log.warning("publish_refused", count=len(refused), queues=sorted({m[0] for m in refused}))
            self._handback(refused)
        published = len(messages) - len(refused)
        self.log.debug("jobs_dispatched", count=published)
        return published

    def _handback(self, messages: list[tuple[str, int, str]]) -> None:
        deliveries = [{"id": job_id, "token": token} for _, job_id, token in messages]
        try:
            self._fetch("SELECT * FROM lzq_handback(NULL, %s)", (db.json(deliveries),))
        except db.TRANSIENT_ERRORS as exc:
            # Still safe: their dispatch lease expires and the sweep makes them ready again.
            self.log.warning("database_unavailable", step="handback", error=str(exc))

    def _sweep(self) -> None:
        rows = self._fetch("SELECT * FROM lzq_sweep(%s)", (self.settings.worker_dead_after_s,))
        for job_id, from_status, to_status in rows:
            self.log.warning("job_recovered", job_id=job_id, from_status=from_status, to_status=to_status)

    def _sleep(self) -> None:
        """Sleep until NOTIFY, the next scheduled job, the next sweep or the backstop poll."""
        self._set_idle(True)
        try:
            # Re-check after the flag is visible: a push that committed just before it did not NOTIFY.
            if self.run_once():
                return
            timeout = min(self.settings.poll_interval_s, max(0.0, self._next_sweep - time.monotonic()))
            if self._next_due_in_s is not None:
                timeout = min(timeout, self._next_due_in_s)
            self._publisher.keepalive()
            self._listener.wait(timeout)
        finally:
            self._set_idle(False)

    def _set_idle(self, idle: bool) -> None:
        self._fetch("SELECT lzq_superqueuer_idle(%s, %s)", (self.superqueuer_id, idle))

    # -- plumbing ----------------------------------------------------------------------------------

    def _connect(self) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = db.connect(self.settings.dsn, application_name="lzq-superqueuer")
            # Losing one of our commits in a server crash is harmless (a lost claim leaves the job
            # ready; its published token then fails the start fence), so we don't wait for fsync.
            self._conn.execute("SET synchronous_commit = off")
            self._listener = db.Listener(self.settings.dsn, application_name="lzq-superqueuer-listen")
            self.log.info("database_connected")

    def _fetch(self, sql: str, params: Any) -> list[tuple]:
        return db.fetch(self._conn, sql, params)

    def _retry_later(self, event: str, exc: BaseException, backoff: Backoff) -> None:
        delay = backoff.next_delay()
        self.log.warning(event, error=str(exc) or type(exc).__name__, retry_in_s=round(delay, 2))
        self._close()
        self._stop.wait(delay)

    def _close(self) -> None:
        for closeable in (self._listener, self._conn):
            if closeable is not None:
                try:
                    closeable.close()
                except db.TRANSIENT_ERRORS:
                    pass
        self._listener, self._conn = None, None
        self._publisher.close()
