"""The benchmark's arithmetic: percentiles, summaries, one-second windows, drain rates (never timings)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.stats import achieved_rate, max_in_window, percentile, summarize


def test_percentile_interpolates_between_closest_ranks_like_numpy() -> None:
    values = [15.0, 20.0, 35.0, 40.0, 50.0]
    assert percentile(values, 0) == 15.0
    assert percentile(values, 50) == 35.0
    assert percentile(values, 100) == 50.0
    assert percentile(values, 40) == pytest.approx(29.0)  # numpy.percentile(values, 40) == 29.0
    assert percentile(values, 99) == pytest.approx(49.6)


def test_percentile_does_not_depend_on_order() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0


@pytest.mark.parametrize("q", [-1, 101])
def test_percentile_refuses_out_of_range(q: float) -> None:
    with pytest.raises(ValueError, match="q must be"):
        percentile([1.0], q)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_summary_scales_and_rounds() -> None:
    summary = summarize([0.010, 0.020, 0.030, 0.040], scale=1000)
    assert summary == {"n": 4, "min": 10.0, "p50": 25.0, "p95": 38.5, "p99": 39.7, "max": 40.0, "mean": 25.0}
    assert summarize([]) == {"n": 0}


def test_window_counts_events_in_any_one_second_however_placed() -> None:
    # given: paced at 0.55 s, except one request 0.1 s late at the start
    times = [0.10, 0.55, 1.10, 1.65, 2.20]
    # then: [0.10, 1.10) holds 2; [0.55, 1.55) holds 2; but [0.10, 1.10] is half-open, so 1.10 is excluded
    assert max_in_window(times) == 2
    # when the first one is 0.2 s late instead, it shares a window with the next two
    assert max_in_window([0.2, 0.55, 1.10, 1.65]) == 3


def test_window_is_half_open_so_exactly_one_second_apart_is_one_per_window() -> None:
    assert max_in_window([0.0, 1.0, 2.0, 3.0]) == 1
    assert max_in_window([]) == 0
    assert max_in_window([5.0, 5.0, 5.0]) == 3


@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=60))
def test_window_matches_brute_force(times: list[float]) -> None:
    brute = max((sum(1 for u in times if t <= u < t + 1.0) for t in times), default=0)
    assert max_in_window(times) == brute


def test_achieved_rate_is_intervals_over_span() -> None:
    assert achieved_rate([0.0, 0.5, 1.0, 1.5, 2.0]) == 2.0
    assert achieved_rate([3.0]) == 0.0
    assert achieved_rate([1.0, 1.0]) == 0.0
