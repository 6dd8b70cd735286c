"""lzq.backoff.Backoff: delays double from first_s, are capped at max_s (±20% jitter) and reset."""

from __future__ import annotations

from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lzq.backoff import Backoff


@pytest.fixture
def no_jitter():
    with mock.patch("lzq.backoff.random.uniform", return_value=1.0):
        yield


@pytest.mark.usefixtures("no_jitter")
def test_delays_double_from_first_s_until_the_cap() -> None:
    backoff = Backoff(first_s=0.5, max_s=15.0)

    assert [backoff.next_delay() for _ in range(8)] == [0.5, 1, 2, 4, 8, 15, 15, 15]


@pytest.mark.usefixtures("no_jitter")
def test_reset_starts_again_from_first_s() -> None:
    backoff = Backoff(first_s=1, max_s=60)
    for _ in range(5):
        backoff.next_delay()

    backoff.reset()

    assert backoff.failures == 0
    assert backoff.next_delay() == 1


def test_defaults_start_at_half_a_second_and_cap_at_fifteen() -> None:
    backoff = Backoff()

    assert (backoff.first_s, backoff.max_s) == (0.5, 15.0)


def test_jitter_stays_within_twenty_percent() -> None:
    backoff = Backoff(first_s=10, max_s=10)

    delays = [backoff.next_delay() for _ in range(200)]

    assert all(8 <= d <= 12 for d in delays)
    assert len(set(delays)) > 1  # jittered, so daemons that failed together do not retry together


@given(
    first_s=st.floats(min_value=0.001, max_value=10),
    max_s=st.floats(min_value=0.001, max_value=100),
    failures=st.integers(min_value=1, max_value=200),
)
def test_delay_never_exceeds_max_s_with_jitter_and_never_shrinks_before_jitter(
    first_s: float, max_s: float, failures: int
) -> None:
    jittered = Backoff(first_s, max_s)
    assert all(0 < jittered.next_delay() <= max_s * 1.2 for _ in range(failures))

    with mock.patch("lzq.backoff.random.uniform", return_value=1.0):
        plain = Backoff(first_s, max_s)
        delays = [plain.next_delay() for _ in range(failures)]
    assert all(d <= max_s for d in delays)
    assert delays == sorted(delays)
