"""lzq under the peer scenarios, and its handler (the daemons run ``--app benchmarks.peers.lzq_peer``).

Mapping: the real daemons via ``_common.Daemons`` (1 superqueuer + 2 workers × 8 slots, lzq's
default prefetch margin); single enqueue = ``Client.push`` (one statement, one commit);
bulk = ``Client.push_many`` of 1000 (one statement); latency = ``Client.push`` at the fixed rate.
"""

from __future__ import annotations

import argparse

import lzq
from benchmarks.peers._base import record


@lzq.handler
def noop(params, options):
    """Record the start (and push→start latency when params carry ``t``), nothing else."""
    record(params.get("t"))


async def run(args: argparse.Namespace) -> dict[str, object]:
    from benchmarks._common import Daemons
    from benchmarks.peers._base import Scenarios, Workers, scratch_database
    from lzq import schema
    from lzq.client import Client

    prefix = f"lzqpeer-{args.name}"
    with scratch_database(args.dsn, args.name) as dsn:
        schema.migrate(dsn)
        with Client(dsn=dsn) as client:

            def start_workers(workers: Workers) -> None:
                daemons = Daemons(dsn, prefix, app="benchmarks.peers.lzq_peer")
                daemons.env.update(workers.env)
                daemons.env["LZQ_AMQP_URL"] = args.amqp_url
                daemons.log_dir.rmdir()  # log next to the workers' reports instead
                daemons.log_dir = workers.dir
                daemons.start_superqueuer()
                for _ in range(args.workers):
                    daemons.start_worker(args.concurrency)
                workers.procs.extend(proc for _, proc in daemons.procs)

            return await Scenarios(args).run(
                lambda p: client.push("noop", p),
                lambda batch: client.push_many([("noop", p) for p in batch]),
                start_workers,
            )


if __name__ == "__main__":
    from benchmarks.peers._base import main

    main(run)
