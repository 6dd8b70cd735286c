"""Failpoints for chaos tests: named places between claim and ack where a daemon may be told to die.

``LZQ_FAILPOINTS="after_claim_commit:0.02,after_start:0.01"`` makes the process exit at once
(``os._exit``: no cleanup, as a kill -9 or a power cut would) with that probability each time it
passes the named place. Off by default; production never sets it.
"""

from __future__ import annotations

import os
import random

#: Exit code of a process stopped by a failpoint (a supervisor restarts it like any crash).
EXIT_FAILPOINT = 86

#: The places, in the order a job passes them.
NAMES = (
    "after_claim_commit",  # superqueuer: assigned and committed, nothing published yet
    "after_publish",  # superqueuer: published and confirmed, hand-backs not done yet
    "after_start",  # worker: job received and given a slot, handler not called yet
    "after_run",  # worker: handler returned, outcome not reported yet
    "after_finish_commit",  # worker: outcome committed, job not forgotten yet
)

_armed: dict[str, float] = {}


def configure(spec: str) -> None:
    """Arm failpoints from ``"name:probability,..."`` (Settings.failpoints); empty disarms all."""
    armed = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, probability = part.partition(":")
        if name not in NAMES:
            raise ValueError(f"unknown failpoint {name!r} (known: {', '.join(NAMES)})")
        armed[name] = float(probability or 1)
    _armed.clear()
    _armed.update(armed)


def hit(name: str) -> None:
    """Die here if this failpoint is armed and the dice say so."""
    probability = _armed.get(name)
    if probability and random.random() < probability:
        os._exit(EXIT_FAILPOINT)
