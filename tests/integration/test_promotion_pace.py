"""The superqueuer promotes due jobs at most every PROMOTE_EVERY_S, never sleeps past a skipped one,
and publishes what a pass claimed before it promotes."""

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
        superqueuer.run_once()  # promotes (nothing is due)
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


def test_a_pass_publishes_what_it_claimed_before_it_promotes_and_claims_the_promoted_next(
    sql_worker, settings: Settings, conn, monkeypatch
):
    sql_worker("w1", slots=8)
    [(due,)] = conn.execute(
        "SELECT lzq_push('later', '{}', jsonb_build_object('start_time', now() + interval '20 ms'))"
    )
    [(pushed,)] = conn.execute("SELECT lzq_push('now')")
    time.sleep(0.1)  # `due` is due now, not yet promoted
    superqueuer = Superqueuer(settings)
    published = []
    publish = superqueuer._publish

    def watch(claimed: list[tuple]) -> int:
        published.append(([row[1] for row in claimed], status(conn, due)))
        return publish(claimed)

    monkeypatch.setattr(superqueuer, "_publish", watch)
    try:
        assert superqueuer.run_once() == 2
    finally:
        superqueuer._close()
    # The pushed job did not wait for the promotion: published first, on its own.
    assert published == [([pushed], "scheduled"), ([due], "running")]
