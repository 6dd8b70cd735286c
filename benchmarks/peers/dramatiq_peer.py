"""Dramatiq under the peer scenarios (RabbitMQ broker via pika, default middleware).

Mapping: ``dramatiq benchmarks.peers.dramatiq_peer --processes 2 --threads 8`` (Dramatiq's defaults
otherwise: prefetch 2 × threads, ack after the actor, persistent messages, no publisher confirms
unless ``PEER_CONFIRMS=1``: ``confirm_delivery``, each publish waits for RabbitMQ's confirm);
single enqueue = ``Actor.send``; bulk = ``dramatiq.group(...).run()`` of 1000 (enqueues one by
one: Dramatiq has no bulk publish); its own queue (+ ``.DQ``/``.XQ``) named after the run.
"""

from __future__ import annotations

import argparse
import os
import sys

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from benchmarks.peers._base import record

noop: dramatiq.Actor | None = None
CONFIRMS = os.environ.get("PEER_CONFIRMS") == "1"


def setup(url: str, queue: str) -> None:
    """The broker and the actor (the worker imports this module with PEER_* set; the adapter calls it)."""
    global noop
    dramatiq.set_broker(RabbitmqBroker(url=url, confirm_delivery=CONFIRMS))

    def _noop(n: int = 0, t: float | None = None) -> None:
        record(t)

    noop = dramatiq.actor(_noop, actor_name="noop", queue_name=queue)


if "PEER_QUEUE" in os.environ:
    setup(os.environ["PEER_AMQP_URL"], os.environ["PEER_QUEUE"])


async def run(args: argparse.Namespace) -> dict[str, object]:
    from benchmarks.peers._base import Scenarios, Workers, delete_amqp

    setup(args.amqp_url, args.name)
    try:

        def start_workers(workers: Workers) -> None:
            workers.spawn(
                [
                    sys.executable,
                    "-m",
                    "dramatiq",
                    "benchmarks.peers.dramatiq_peer",
                    "--processes",
                    str(args.workers),
                    "--threads",
                    str(args.concurrency),
                    "--queues",
                    args.name,
                ],
                env={"PEER_AMQP_URL": args.amqp_url, "PEER_QUEUE": args.name},
            )

        return await Scenarios(args).run(
            lambda p: noop.send(**p),
            lambda batch: dramatiq.group([noop.message(**p) for p in batch]).run(),
            start_workers,
            notes="publishes with confirms" if CONFIRMS else "publishes without confirms (Dramatiq default)",
        )
    finally:
        dramatiq.get_broker().close()
        delete_amqp(args.amqp_url, queues=[args.name, f"{args.name}.DQ", f"{args.name}.XQ"])


if __name__ == "__main__":
    from benchmarks.peers._base import main

    main(run)
