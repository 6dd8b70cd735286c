"""Celery under the peer scenarios (RabbitMQ broker via py-amqp, no result backend).

Mapping: 2 worker processes ``celery -A benchmarks.peers.celery_peer worker -P threads -c 8``
(``--without-gossip --without-mingle --without-heartbeat``, otherwise Celery's defaults:
prefetch multiplier 4, ack on receipt, persistent messages, no publisher confirms unless
``PEER_CONFIRMS=1``: transport option ``confirm_publish``, each publish waits for RabbitMQ's
confirm); single enqueue =
``apply_async``; bulk = ``apply_async`` in a loop on one acquired producer (Celery has no bulk publish;
``group`` does the same loop); its own queue (and exchange) named after the run, deleted afterwards.
"""

from __future__ import annotations

import argparse
import os

from celery import Celery

from benchmarks.peers._base import record

app = Celery(
    "lzqpeer",
    broker=os.environ.get("PEER_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"),
)
CONFIRMS = os.environ.get("PEER_CONFIRMS") == "1"
app.conf.update(
    broker_transport_options={"confirm_publish": True} if CONFIRMS else {},
    task_default_queue=os.environ.get("PEER_QUEUE", "lzqpeer"),
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="noop")
def noop(n: int = 0, t: float | None = None) -> None:
    record(t)


async def run(args: argparse.Namespace) -> dict[str, object]:
    from benchmarks.peers._base import Scenarios, Workers, delete_amqp, python

    app.conf.update(broker_url=args.amqp_url, task_default_queue=args.name)
    try:

        def start_workers(workers: Workers) -> None:
            for i in range(args.workers):
                workers.spawn(
                    [
                        python(),
                        "-m",
                        "celery",
                        "-A",
                        "benchmarks.peers.celery_peer",
                        "worker",
                        "-P",
                        "threads",
                        "-c",
                        str(args.concurrency),
                        "-Q",
                        args.name,
                        "-n",
                        f"w{i}-{args.name}@%h",
                        "--without-gossip",
                        "--without-mingle",
                        "--without-heartbeat",
                        "-l",
                        "warning",
                    ],
                    env={"PEER_AMQP_URL": args.amqp_url, "PEER_QUEUE": args.name},
                )

        def push_many(batch: list[dict]) -> None:
            with app.producer_or_acquire() as producer:
                for p in batch:
                    noop.apply_async(kwargs=p, producer=producer)

        return await Scenarios(args).run(
            lambda p: noop.apply_async(kwargs=p),
            push_many,
            start_workers,
            notes="publishes with confirms" if CONFIRMS else "publishes without confirms (Celery default)",
        )
    finally:
        delete_amqp(args.amqp_url, queues=[args.name], exchanges=[args.name])


if __name__ == "__main__":
    from benchmarks.peers._base import main

    main(run)
