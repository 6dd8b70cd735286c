"""The worker's admission of the jobs a message brings (no broker: the inbox is never connected):
each starts at once while a slot is free, the rest wait in arrival order; a job held already, or
handed back as never received, is dropped."""

from __future__ import annotations

import json

from lzq import amqp
from lzq.config import Settings
from lzq.worker import Worker


def message(*jobs: tuple[int, str]) -> bytes:
    return amqp.encode_jobs(
        [json.dumps([job_id, token, "job", {}, "default", 0, None, 3, 1]).encode() for job_id, token in jobs]
    )


def started(worker: Worker) -> list[int]:
    ids = []
    while not worker._started_jobs.empty():
        ids.append(worker._started_jobs.get()[0])
    return ids


def test_jobs_start_while_slots_are_free_and_the_rest_wait_in_arrival_order():
    worker = Worker(Settings(), ["default"], concurrency=2)
    worker._on_message(message((1, "a")))
    worker._on_message(message((2, "b"), (3, "c"), (4, "d")))
    assert started(worker) == [1, 2]
    assert [row[0] for row in worker._waiting] == [3, 4]
    assert {job_id: f.running for job_id, f in worker._inflight.items()} == {
        1: True,
        2: True,
        3: False,
        4: False,
    }
    # A finished job's thread takes the next waiting one itself.
    worker.registry.resolve = lambda _name: lambda _params, _options: None  # type: ignore[method-assign]
    next_row = worker._run_job((1, "a", "job", {}, "default", 0, None, 3, 1))
    assert next_row is not None and next_row[0] == 3
    assert [r["id"] for r in worker._reports] == [1]
    assert worker._busy_slots == 2


def test_a_job_held_already_or_handed_back_is_dropped():
    worker = Worker(Settings(), ["default"], concurrency=4)
    worker._given_back.add("late")
    worker._on_message(message((1, "a"), (2, "late")))
    worker._on_message(message((1, "a")))
    assert started(worker) == [1]
    assert list(worker._inflight) == [1]


def test_no_job_starts_once_the_worker_is_stopping():
    worker = Worker(Settings(), ["default"], concurrency=4)
    worker.stop()
    worker._on_message(message((1, "a")))
    assert started(worker) == []
    assert [row[0] for row in worker._waiting] == [1]
