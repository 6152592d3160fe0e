"""Pure arithmetic the benchmarks share: percentiles, summaries, one-second windows, rates."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return float(ordered[low])
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def summarize(values: Iterable[float], scale: float = 1.0, digits: int = 1) -> dict[str, float | int]:
    """n, min, p50, p95, p99, max and mean of `values` × `scale` (e.g. 1000 for seconds → ms), rounded."""
    scaled = [v * scale for v in values]
    if not scaled:
        return {"n": 0}
    return {
        "n": len(scaled),
        "min": round(min(scaled), digits),
        "p50": round(percentile(scaled, 50), digits),
        "p95": round(percentile(scaled, 95), digits),
        "p99": round(percentile(scaled, 99), digits),
        "max": round(max(scaled), digits),
        "mean": round(sum(scaled) / len(scaled), digits),
    }


def max_in_window(times: Iterable[float], window: float = 1.0) -> int:
    """The largest number of events in any half-open window [t, t + window), wherever it starts.

    A window holding the most events can always be slid right until it starts on an event, so
    only windows starting at an event need checking (two pointers over the sorted times).
    """
    ordered = sorted(times)
    best = 0
    end = 0
    for start, first in enumerate(ordered):
        end = max(end, start)
        while end < len(ordered) and ordered[end] < first + window:
            end += 1
        best = max(best, end - start)
    return best


def achieved_rate(times: Iterable[float]) -> float:
    """Events per second from the first to the last event: (n - 1) intervals over the time they span."""
    ordered = sorted(times)
    if len(ordered) < 2 or ordered[-1] == ordered[0]:
        return 0.0
    return (len(ordered) - 1) / (ordered[-1] - ordered[0])
