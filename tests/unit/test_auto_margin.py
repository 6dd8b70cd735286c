"""LZQ_PREFETCH_MARGIN=auto: jobs queued per worker beyond its slots, from recent job durations."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lzq.config import AUTO_MARGIN_MAX_PER_SLOT
from lzq.superqueuer import AUTO_MARGIN_REFILL_S, auto_margin


def test_short_jobs_get_one_per_slot_long_jobs_one_per_worker_and_between_in_proportion():
    assert auto_margin(0.0001, 8) == 32  # no-op jobs: four queued per slot, the most
    assert auto_margin(0.005, 8) == 32  # 5 ms jobs: 25 ms of work on each of 8 slots would be 40
    assert auto_margin(0.020, 8) == 10  # 20 ms jobs: 25 ms of work on each of 8 slots
    assert auto_margin(0.050, 8) == 4
    assert auto_margin(0.100, 8) == 2
    assert auto_margin(1.0, 8) == 1
    assert auto_margin(3600.0, 64) == 1


def test_without_history_or_workers_the_margin_is_one():
    assert auto_margin(None, 8) == 1
    assert auto_margin(0.001, None) == 1
    assert auto_margin(0.001, 0) == 1


@given(
    duration=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    slots=st.floats(min_value=0.5, max_value=1000, allow_nan=False),
)
def test_the_margin_is_between_one_and_four_per_slot_and_covers_the_refill_time(duration, slots):
    margin = auto_margin(duration, slots)
    assert 1 <= margin <= AUTO_MARGIN_MAX_PER_SLOT * max(1, -(-slots // 1))
    if margin < AUTO_MARGIN_MAX_PER_SLOT * slots:  # not capped: the queued jobs cover the refill time
        assert margin * max(duration, 1e-6) >= slots * AUTO_MARGIN_REFILL_S * (1 - 1e-9) or margin == 1
