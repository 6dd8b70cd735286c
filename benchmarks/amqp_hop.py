"""One RabbitMQ hop: publish -> consumer callback latency with pika, the floor under every queue
that runs jobs through RabbitMQ (lzq's assignment -> worker, Celery's and Dramatiq's whole path).

    python benchmarks/amqp_hop.py                    # 2000 messages at 200/s, 3 runs
    python benchmarks/amqp_hop.py --smoke            # 100 messages, 1 run
    python benchmarks/amqp_hop.py --rate 20 --messages 500

A consumer process (pika BlockingConnection, prefetch 16, acks each message) receives what this
process publishes to a fresh queue at a fixed rate; each message carries ``time.time()`` taken
just before ``basic_publish``, the consumer subtracts it on arrival. Prints p50 / p99 per run and
their medians. lzq's push -> start at the same rate contains this hop, plus the push's and the
assignment's PostgreSQL commits and the worker's hand-off to a job thread.
"""

from __future__ import annotations

import argparse
import multiprocessing
import struct
import sys
import time
import uuid
from pathlib import Path

import pika

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import AMQP_URL, machine_info, median, percentile, say  # noqa: E402


def consume(
    url: str, queue: str, count: int, ready: multiprocessing.Event, results: multiprocessing.Queue
) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=16)
    latencies: list[float] = []

    def on_message(ch, method, _properties, body: bytes) -> None:
        latencies.append(time.time() - struct.unpack("d", body)[0])
        ch.basic_ack(method.delivery_tag)
        if len(latencies) >= count:
            ch.stop_consuming()

    channel.basic_consume(queue, on_message)
    ready.set()
    channel.start_consuming()
    connection.close()
    results.put(latencies)


def one_run(url: str, messages: int, rate: float) -> list[float]:
    """Latencies (s) of ``messages`` publishes at ``rate`` per second to a fresh queue."""
    queue = f"lzq-bench-hop-{uuid.uuid4().hex[:8]}"
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.queue_declare(queue, auto_delete=True)
    ready, results = multiprocessing.Event(), multiprocessing.Queue()
    consumer = multiprocessing.Process(target=consume, args=(url, queue, messages, ready, results))
    consumer.start()
    try:
        if not ready.wait(30):
            raise SystemExit("!!! the consumer did not start")
        time.sleep(0.2)
        interval = 1.0 / rate
        due = time.monotonic()
        for _ in range(messages):
            due += interval
            time.sleep(max(0.0, due - time.monotonic()))
            channel.basic_publish("", queue, struct.pack("d", time.time()))
        latencies = results.get(timeout=60)
    finally:
        consumer.join(10)
        if consumer.is_alive():
            consumer.terminate()
        connection.close()
    if len(latencies) != messages:
        raise SystemExit(f"!!! received {len(latencies)} of {messages} messages")
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--amqp-url", default=AMQP_URL, help="RabbitMQ URL (default: LZQ_AMQP_URL or local)")
    parser.add_argument("--messages", type=int, default=2000, help="messages per run (default 2000)")
    parser.add_argument("--rate", type=float, default=200.0, help="publishes per second (default 200)")
    parser.add_argument("--runs", type=int, default=3, help="runs; medians are printed (default 3)")
    parser.add_argument("--smoke", action="store_true", help="100 messages, 1 run: proves it still works")
    args = parser.parse_args()
    if args.smoke:
        args.messages, args.runs = 100, 1
    say("machine: " + ", ".join(f"{k}={v}" for k, v in machine_info().items()))
    say(f"one RabbitMQ hop (pika publish -> consumer), {args.messages} messages at {args.rate:.0f}/s")
    p50s, p99s = [], []
    for run in range(1, args.runs + 1):
        latencies = one_run(args.amqp_url, args.messages, args.rate)
        p50s.append(percentile(latencies, 0.5) * 1000)
        p99s.append(percentile(latencies, 0.99) * 1000)
        say(f"  run {run}: p50 {p50s[-1]:.2f} ms, p99 {p99s[-1]:.2f} ms")
    say(
        f"publish -> consume at {args.rate:.0f}/s: p50 {median(p50s):.2f} ms, "
        f"p99 {median(p99s):.2f} ms (medians of {args.runs})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
