"""What a worker logs per job at each level: nothing for a success at the default level (a line per
job cost a third of the throughput of short jobs), every retry and failure at warning."""

from __future__ import annotations

import json

import pytest
import structlog

from lzq import log
from lzq.config import Settings
from lzq.errors import Retry
from lzq.registry import Registry
from lzq.worker import Worker

registry = Registry()


@registry.handler
def fine(params, options):
    return None


@registry.handler
def busy(params, options):
    raise Retry("later", delay_s=1)


def _run(job_name: str, level: str, capsys) -> list[dict]:
    log.configure(level, json=True)
    try:
        worker = Worker(Settings(), ["default"], concurrency=1, registry=registry)
        capsys.readouterr()
        worker._execute((7, "token", job_name, {}, "default", 0, job_name, 3, 1))
        return [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    finally:
        structlog.reset_defaults()  # as the other tests expect it


@pytest.mark.parametrize("level", ["info", "warning"])
def test_a_success_logs_nothing_at_the_default_level_or_above(level, capsys):
    assert _run("fine", level, capsys) == []


def test_a_success_logs_its_duration_at_debug(capsys):
    [line] = _run("fine", "debug", capsys)
    assert line["event"] == "job_succeeded" and line["job_id"] == 7 and "duration_ms" in line


def test_a_retry_logs_at_warning(capsys):
    [line] = _run("busy", "warning", capsys)
    assert line["event"] == "job_retry" and line["level"] == "warning" and line["error"] == "later"
