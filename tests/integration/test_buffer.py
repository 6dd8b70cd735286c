"""The buffer path against real RabbitMQ and PostgreSQL: Client.push(via="buffer") and lzq.buffer.Buffer."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from uuid import UUID

import pika
import psycopg
import pytest
from structlog.testing import capture_logs

from lzq import InvalidArgument, JobRef, amqp, db
from lzq.buffer import Buffer
from lzq.client import BufferedPush, Client
from lzq.config import Settings
from tests.conftest import AMQP_URL

#: Nothing listens on port 1: connecting fails at once, as with PostgreSQL down.
DEAD_DSN = "host=127.0.0.1 port=1 dbname=lzq user=lzq connect_timeout=2"


@pytest.fixture
def buffer_client(settings: Settings) -> Iterator[Client]:
    """A client whose database is unreachable: buffered pushes must not need it."""
    with Client(settings=dataclasses.replace(settings, dsn=DEAD_DSN)) as client:
        yield client


@pytest.fixture
def buffers(settings: Settings) -> Iterator[list[Buffer]]:
    """Buffer daemons made by a test, closed afterwards (their unacked messages go back)."""
    made: list[Buffer] = []
    yield made
    for buffer in made:
        buffer._release()
        buffer._close_db()


def make_buffer(buffers: list[Buffer], settings: Settings, **overrides) -> Buffer:
    buffer = Buffer(dataclasses.replace(settings, **overrides))
    buffers.append(buffer)
    return buffer


def depth(prefix: str) -> int:
    """Messages ready in the buffer queue (not counting those delivered and unacked)."""
    return amqp.queue_depth(AMQP_URL, prefix, amqp.BUFFER_QUEUE)


def drain(buffer: Buffer, want: int, timeout_s: float = 10) -> int:
    """run_once until `want` messages were acked."""
    acked = 0
    deadline = time.monotonic() + timeout_s
    while acked < want and time.monotonic() < deadline:
        acked += buffer.run_once(wait_s=0.5)
    assert acked == want
    return acked


def get_messages(prefix: str) -> list[tuple[pika.BasicProperties, dict]]:
    """Take every ready message off the buffer queue (acked: they are gone afterwards)."""
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        messages = []
        while True:
            method, properties, body = channel.basic_get(amqp.queue_for(prefix, amqp.BUFFER_QUEUE))
            if method is None:
                return messages
            channel.basic_ack(method.delivery_tag)
            messages.append((properties, json.loads(body)))
    finally:
        connection.close()


def publish_raw(prefix: str, *bodies: bytes) -> None:
    """Publish bodies to the buffer queue as some other program might (persistent, confirmed)."""
    publisher = amqp.Publisher(AMQP_URL, prefix, name="lzq-test")
    try:
        messages = [
            amqp.Message(amqp.BUFFER_QUEUE, body, f"raw-{i}", persistent=True)
            for i, body in enumerate(bodies)
        ]
        assert publisher.publish(messages) == [True] * len(bodies)
    finally:
        publisher.close()


def jobs(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("SELECT id, job_name, params, priority FROM lzq_jobs ORDER BY id").fetchall()


# -- the producer side -----------------------------------------------------------------------------


def test_push_via_buffer_publishes_a_persistent_message_with_the_push_and_its_uuid(
    buffer_client, amqp_prefix
):
    pushed = buffer_client.push(
        "mailer", {"to": "a@b.c"}, {"priority": -5}, queue_name="emails", via="buffer"
    )

    assert isinstance(pushed, BufferedPush) and isinstance(pushed.uuid, UUID)
    [(properties, body)] = get_messages(amqp_prefix)
    assert body == {
        "uuid": str(pushed.uuid),
        "job_name": "mailer",
        "job_params": {"to": "a@b.c"},
        "job_options": {"priority": -5, "queue_name": "emails"},
    }
    assert properties.delivery_mode == 2
    assert properties.message_id == str(pushed.uuid)
    assert properties.content_type == "application/json"


def test_the_buffer_queue_is_a_durable_quorum_queue(buffer_client, amqp_prefix):
    buffer_client.push("mailer", via="buffer")
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        # Declaring it as anything else is refused: it exists, durable, with x-queue-type quorum
        # and a delivery limit no outage can reach.
        queue = amqp.queue_for(amqp_prefix, amqp.BUFFER_QUEUE)
        quorum = {"x-queue-type": "quorum", "x-delivery-limit": amqp.BUFFER_DELIVERY_LIMIT}
        connection.channel().queue_declare(queue, durable=True, arguments=quorum)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="x-queue-type"):
            connection.channel().queue_declare(queue, durable=True)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="x-delivery-limit"):
            connection.channel().queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    finally:
        connection.close()


def test_push_via_buffer_needs_no_database(buffer_client, amqp_prefix):
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(DEAD_DSN).close()  # the client's database really is unreachable

    buffer_client.push("mailer", via="buffer")
    buffer_client.push_many([("a", {}), ("b", {})], via="buffer")

    assert depth(amqp_prefix) == 3
    assert buffer_client._pool is None  # no connection was even tried


def test_push_many_via_buffer_publishes_each_push_in_order(buffer_client, amqp_prefix):
    pushed = buffer_client.push_many(
        [("a", {"n": 1}), {"job_name": "b", "job_options": {"priority": 3}}, ("pkg.mod.C#run", None)],
        via="buffer",
    )

    assert len({p.uuid for p in pushed}) == 3
    bodies = [body for _, body in get_messages(amqp_prefix)]
    assert [(b["uuid"], b["job_name"], b["job_params"], b["job_options"]) for b in bodies] == [
        (str(pushed[0].uuid), "a", {"n": 1}, {}),
        (str(pushed[1].uuid), "b", {}, {"priority": 3}),
        (str(pushed[2].uuid), "pkg.mod.C#run", {}, {}),
    ]


@pytest.mark.parametrize(
    ("args", "options", "field"),
    [
        (({"type": "martian", "name": "x"}, {}), {}, "job_name"),
        (("mailer", {"x": object()}), {}, "job_params"),
        (("mailer", {"x": "nul \x00 inside"}), {}, "job_params"),
        (("mailer", {"x": "\ud800"}), {}, "job_params"),
        (("mailer", {"x": "y" * (1 << 20)}), {}, "job_params"),
        (("mailer", {}), {"start_time": 12}, "start_time"),
        (("mailer", {}), {"depends_on": "12"}, "depends_on"),
    ],
)
def test_push_via_buffer_checks_what_python_can_and_publishes_nothing_then(
    buffer_client, amqp_prefix, args, options, field
):
    with pytest.raises(InvalidArgument) as excinfo:
        buffer_client.push(*args, via="buffer", **options)
    assert excinfo.value.field == field
    with pytest.raises(InvalidArgument) as excinfo:
        buffer_client.push_many([("ok", {}), (*args, options)], via="buffer")
    assert excinfo.value.field == f"jobs[1].{field}"
    assert depth(amqp_prefix) == 0


def test_push_via_buffer_refuses_a_connection_and_unknown_ways(buffer_client, amqp_prefix):
    with pytest.raises(InvalidArgument) as excinfo:
        buffer_client.push("mailer", conn=object(), via="buffer")
    assert excinfo.value.field == "conn"
    with pytest.raises(InvalidArgument) as excinfo:
        buffer_client.push("mailer", via="pigeon")  # type: ignore[call-overload]
    assert excinfo.value.field == "via"
    assert depth(amqp_prefix) == 0


# -- the buffer daemon -----------------------------------------------------------------------------


def test_run_once_writes_the_pushes_in_and_acks_them(
    settings, buffer_client, client, conn, buffers, amqp_prefix
):
    pushed = buffer_client.push_many([("a", {"n": 1}), ("b", {"n": 2}, {"priority": 7})], via="buffer")
    assert client.buffered_job(pushed[0]) is None  # not written in yet
    buffer = make_buffer(buffers, settings)

    drain(buffer, 2)

    refs = [client.buffered_job(p) for p in pushed]
    assert all(isinstance(r, JobRef) for r in refs)
    assert jobs(conn) == [(refs[0].id, "a", {"n": 1}, 0), (refs[1].id, "b", {"n": 2}, 7)]
    assert client.get(refs[1]).status == "ready"
    # Acked, not merely delivered: closing the consumer puts nothing back.
    buffer._release()
    assert depth(amqp_prefix) == 0
    assert buffer.run_once(wait_s=0.3) == 0


def test_a_redelivered_push_becomes_one_job(settings, buffer_client, conn, buffers, amqp_prefix):
    pushed = buffer_client.push("once", {"n": 1}, via="buffer")
    [(_, body)] = get_messages(amqp_prefix)
    publish_raw(amqp_prefix, json.dumps(body).encode(), json.dumps(body).encode())
    buffer = make_buffer(buffers, settings)

    drain(buffer, 2)
    publish_raw(amqp_prefix, json.dumps(body).encode())  # a late copy, in another batch
    drain(buffer, 1)

    assert [(job_name, params) for _, job_name, params, _ in jobs(conn)] == [("once", {"n": 1})]
    assert conn.execute("SELECT uuid FROM lzq_buffered").fetchall() == [(pushed.uuid,)]


def test_a_nacked_and_requeued_push_becomes_one_job(settings, buffer_client, conn, buffers, amqp_prefix):
    buffer_client.push("once", via="buffer")
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        method, _, _ = channel.basic_get(amqp.queue_for(amqp_prefix, amqp.BUFFER_QUEUE))
        channel.basic_nack(method.delivery_tag, requeue=True)
    finally:
        connection.close()

    drain(make_buffer(buffers, settings), 1)

    assert [job_name for _, job_name, _, _ in jobs(conn)] == ["once"]


def test_a_crash_between_commit_and_ack_redelivers_and_the_copy_is_dropped(
    settings, buffer_client, conn, buffers, amqp_prefix, monkeypatch
):
    buffer_client.push_many([("a", {}), ("b", {})], via="buffer")
    crashing = make_buffer(buffers, settings)
    monkeypatch.setattr(crashing._consumer, "ack", lambda *a, **k: None)  # dies before acking
    drain(crashing, 2)
    crashing._release()
    assert depth(amqp_prefix) == 2  # RabbitMQ has them again

    with capture_logs() as logs:
        drain(make_buffer(buffers, settings), 2)

    assert sorted(job_name for _, job_name, _, _ in jobs(conn)) == ["a", "b"]
    [inserted] = [e for e in logs if e["event"] == "buffered_jobs_inserted"]
    assert (inserted["count"], inserted["duplicates"]) == (0, 2)


def test_an_invalid_push_is_recorded_logged_and_acked_and_the_rest_go_in(
    settings, buffer_client, client, conn, buffers, amqp_prefix
):
    good1 = buffer_client.push("good", {"n": 1}, via="buffer")
    bad = buffer_client.push("bad", priority=99, via="buffer")
    good2 = buffer_client.push("good", {"n": 2}, depends_on=[123456], via="buffer")
    publish_raw(amqp_prefix, b"not json", b'["a list"]', b'{"uuid": "x", "job_name": "nul \\u0000"}')
    buffer = make_buffer(buffers, settings)

    with capture_logs() as logs:
        drain(buffer, 6)

    assert isinstance(client.buffered_job(good1), JobRef)
    for rejected, field in ((bad, "priority"), (good2, "depends_on")):
        with pytest.raises(InvalidArgument) as excinfo:
            client.buffered_job(rejected)
        assert excinfo.value.field == field
    assert [job_name for _, job_name, _, _ in jobs(conn)] == ["good"]
    rejections = [e for e in logs if e["event"] == "buffered_push_rejected"]
    assert {(e["uuid"], e["recorded"]) for e in rejections} == {
        (str(bad.uuid), True),
        (str(good2.uuid), True),
        (None, False),
        ("x", False),
    }
    assert len(rejections) == 5
    assert next(e for e in rejections if e["uuid"] == str(bad.uuid))["error"].startswith("priority: ")
    inserted = [e for e in logs if e["event"] == "buffered_jobs_inserted"]
    assert sum(e["count"] for e in inserted) == 1 and sum(e["rejected"] for e in inserted) == 2
    buffer._release()
    assert depth(amqp_prefix) == 0


def test_with_the_database_down_a_buffer_takes_no_message_and_a_later_one_writes_them_all_in(
    settings, buffer_client, conn, buffers, amqp_prefix
):
    buffer_client.push_many([("job", {"n": i}) for i in range(5)], via="buffer")
    stranded = make_buffer(buffers, settings, dsn=DEAD_DSN)

    with pytest.raises(db.TRANSIENT_ERRORS):
        stranded.run_once(wait_s=0.5)

    assert not stranded._consumer.is_open and depth(amqp_prefix) == 5
    drain(make_buffer(buffers, settings), 5)
    assert sorted(params["n"] for _, _, params, _ in jobs(conn)) == [0, 1, 2, 3, 4]


def test_a_failed_write_gives_the_batch_back_and_run_writes_it_in_once_the_database_answers(
    settings, buffer_client, conn, buffers, amqp_prefix, monkeypatch
):
    buffer_client.push_many([("job", {"n": i}) for i in range(3)], via="buffer")
    buffer = make_buffer(buffers, settings)
    real_fetch, real_connect = db.fetch, db.connect
    failures = {"fetch": 1, "connect": 2}  # the write fails, then PostgreSQL is down for two tries

    def flaky(name, real):
        def call(*args, **kwargs):
            if failures[name] > 0 and (name == "connect" or "lzq_push_buffered" in args[1]):
                failures[name] -= 1
                if name == "fetch":
                    monkeypatch.setattr(db, "connect", flaky("connect", real_connect))
                raise psycopg.OperationalError(f"{name}: server closed the connection (simulated)")
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(db, "fetch", flaky("fetch", real_fetch))
    with capture_logs() as logs:
        runner = threading.Thread(target=buffer.run)
        runner.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(jobs(conn)) < 3:
            time.sleep(0.1)
        buffer.stop()
        runner.join(timeout=10)

    assert not runner.is_alive()
    assert sorted(params["n"] for _, _, params, _ in jobs(conn)) == [0, 1, 2]
    events = [e["event"] for e in logs]
    assert events[0] == "buffer_started" and events[-1] == "buffer_stopped"
    unavailable = [e for e in logs if e["event"] == "database_unavailable"]
    # The batch went back; then, with no database, no message was taken.
    assert unavailable[0]["returned"] >= 1 and [e["returned"] for e in unavailable[1:]] == [0, 0]
    buffer._release()
    assert depth(amqp_prefix) == 0
