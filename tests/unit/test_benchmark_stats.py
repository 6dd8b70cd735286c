"""The benchmarks' nearest-rank percentile, against its definition."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from benchmarks.stats import percentile


@given(values=st.lists(st.integers(-50, 50), min_size=1, max_size=60), fraction=st.floats(0.01, 1.0))
def test_percentile_is_the_smallest_value_with_that_share_at_or_below_it(values, fraction):
    # Nearest rank: the smallest v such that at least ceil(fraction * n) values are <= v.
    wanted = math.ceil(fraction * len(values))
    expected = min(v for v in values if sum(x <= v for x in values) >= wanted)
    assert percentile(values, fraction) == expected


def test_percentile_of_nothing_is_nan():
    assert math.isnan(percentile([], 0.5))
