"""PgQueuer under the peer scenarios (asyncpg driver, async no-op entrypoint).

Mapping: 2 consumer processes (``python -m benchmarks.peers.pgqueuer_peer worker``: a
``QueueManager`` on one asyncpg connection, ``run(batch_size=8)``: each dequeue takes up to 8 jobs,
no cap on picked jobs, like PgQueuer's default of batch 10; see ``worker``); single enqueue =
``Queries.enqueue(name, payload)``; bulk = ``Queries.enqueue`` of lists (1000, one statement); its
own scratch database (default table names inside it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys

import asyncpg
from pgqueuer import AsyncpgDriver, QueueManager
from pgqueuer.queries import Queries

from benchmarks.peers._base import record


async def worker(concurrency: int) -> None:
    conn = await asyncpg.connect(os.environ["PEER_DSN"])
    qm = QueueManager(Queries(AsyncpgDriver(conn)))

    @qm.entrypoint("noop")
    async def noop(job) -> None:
        record(json.loads(job.payload).get("t"))

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, qm.shutdown.set)
    # batch_size = the concurrency; no max_concurrent_tasks: PgQueuer counts a job against that cap
    # until its buffered completion is flushed, so a cap of 8 measured ~1.9k jobs/s here against
    # ~7k uncapped (its default: batch 10, no cap). Override with PEER_PGQUEUER_BATCH / _MAX_TASKS.
    batch = int(os.environ.get("PEER_PGQUEUER_BATCH", concurrency))
    cap = int(os.environ.get("PEER_PGQUEUER_MAX_TASKS", 0)) or None
    await qm.run(batch_size=batch, max_concurrent_tasks=cap)


async def run(args: argparse.Namespace) -> dict[str, object]:
    from benchmarks.peers._base import Scenarios, Workers, conninfo_to_url, python, scratch_database

    with scratch_database(args.dsn, args.name) as conninfo:
        dsn = conninfo_to_url(conninfo)
        conn = await asyncpg.connect(dsn)
        try:
            queries = Queries(AsyncpgDriver(conn))
            await queries.install()

            def start_workers(workers: Workers) -> None:
                for _ in range(args.workers):
                    workers.spawn(
                        [python(), "-m", "benchmarks.peers.pgqueuer_peer", "worker", str(args.concurrency)],
                        env={"PEER_DSN": dsn},
                    )

            def push_many(batch: list[dict]):
                return queries.enqueue(
                    ["noop"] * len(batch), [json.dumps(p).encode() for p in batch], [0] * len(batch)
                )

            return await Scenarios(args).run(
                lambda p: queries.enqueue("noop", json.dumps(p).encode()), push_many, start_workers
            )
        finally:
            await conn.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        asyncio.run(worker(int(sys.argv[2])))
    else:
        from benchmarks.peers._base import main

        main(run)
