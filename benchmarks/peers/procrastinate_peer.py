"""Procrastinate under the peer scenarios (psycopg 3 connector, async no-op task).

Mapping: 2 worker processes (``python -m benchmarks.peers.procrastinate_peer worker``, i.e.
``App.run_worker(concurrency=8)``, the same call as ``procrastinate worker --concurrency 8``), with
its defaults (LISTEN/NOTIFY on, jobs kept); single enqueue = ``Task.defer_async``; bulk =
``Task.batch_defer_async`` of 1000; its own scratch database and queue name.
"""

from __future__ import annotations

import argparse
import os
import sys

import procrastinate

from benchmarks.peers._base import record


def make_app(dsn: str, queue: str) -> tuple[procrastinate.App, object]:
    """The app and its one task (created at run time: the database is the run's scratch one)."""
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))

    @app.task(name="noop", queue=queue)
    async def noop(n: int = 0, t: float | None = None) -> None:
        record(t)

    return app, noop


def worker(concurrency: int) -> None:
    app, _ = make_app(os.environ["PEER_DSN"], os.environ["PEER_QUEUE"])
    with app.open():
        app.run_worker(concurrency=concurrency, queues=[os.environ["PEER_QUEUE"]], name=f"w{os.getpid()}")


async def run(args: argparse.Namespace) -> dict[str, object]:
    from benchmarks.peers._base import Scenarios, Workers, python, scratch_database

    with scratch_database(args.dsn, args.name) as dsn:
        app, noop = make_app(dsn, args.name)
        async with app.open_async():
            await app.schema_manager.apply_schema_async()

            def start_workers(workers: Workers) -> None:
                for _ in range(args.workers):
                    workers.spawn(
                        [
                            python(),
                            "-m",
                            "benchmarks.peers.procrastinate_peer",
                            "worker",
                            str(args.concurrency),
                        ],
                        env={"PEER_DSN": dsn, "PEER_QUEUE": args.name},
                    )

            return await Scenarios(args).run(
                lambda p: noop.defer_async(**p),
                lambda batch: noop.batch_defer_async(*batch),
                start_workers,
            )


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker(int(sys.argv[2]))
    else:
        from benchmarks.peers._base import main

        main(run)
