"""The benchmark scripts still run end to end (their --smoke mode), so their numbers stay reproducible."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "script",
    [
        "benchmarks.throughput",
        "benchmarks.limits",
        # --hops too: its trigger and hop table ride on the same run.
        "benchmarks.latency --hops",
        # Fair mode only: the FIFO comparison doubles the time and proves nothing more about the script.
        "benchmarks.fairness --modes fair",
        "benchmarks.soak",
        "benchmarks.amqp_hop",
    ],
)
def test_benchmark_smoke_run_passes(script):
    module, *options = script.split()
    result = subprocess.run(
        [sys.executable, "-m", module, "--smoke", *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "!!!" not in result.stdout
    if "--hops" in options:
        assert "hop: row -> assigned" in result.stdout
