"""The superqueuer promotes due jobs at most every PROMOTE_EVERY_S, and never sleeps past a skipped one."""

from __future__ import annotations

import dataclasses
import time

from lzq import superqueuer as superqueuer_module
from lzq.config import Settings
from lzq.superqueuer import Superqueuer


def status(conn, job_id: int) -> str:
    [(found,)] = conn.execute("SELECT status FROM lzq_jobs WHERE id = %s", (job_id,))
    return found


def test_a_job_falling_due_between_promotions_is_promoted_at_the_next_one(
    settings: Settings, conn, monkeypatch
):
    monkeypatch.setattr(superqueuer_module, "PROMOTE_EVERY_S", 0.5)
    superqueuer = Superqueuer(dataclasses.replace(settings, poll_interval_s=10.0, sweep_interval_s=60.0))
    try:
        superqueuer.run_once()  # promotes (nothing is due) and sweeps
        [(job_id,)] = conn.execute(
            "SELECT lzq_push('later', '{}', jsonb_build_object('start_time', now() + interval '50 ms'))"
        )
        time.sleep(0.1)
        started = time.monotonic()
        # A pass soon after a promotion only claims; the loop then sleeps until the next promotion
        # is due (0.5 s after the last), not for the 10 s polling interval.
        superqueuer._step()
        assert status(conn, job_id) == "scheduled"
        assert time.monotonic() - started < 2.0
        superqueuer.run_once()
        assert status(conn, job_id) == "ready"
    finally:
        superqueuer._close()
