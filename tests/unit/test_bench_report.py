"""The benchmark report judges each DESIGN.md target from the numbers alone (arithmetic, no timing)."""

from __future__ import annotations

from typing import Any

from bench.report import markdown, targets


def _results(*, dial_p50: float, requests: float, ratio: float, busiest: int) -> dict[str, Any]:
    return {
        "meta": {
            "started": "2026-11-26 00:00 UTC",
            "machine": "test",
            "command": "make bench",
            "seconds": 1.0,
            "load_start": "0",
            "load_end": "0",
        },
        "schedule": {"fast": {"lateness_ms": {"p50": 400.0, "p99": 900.0}, "placed": 4, "calls": 4}},
        "time_to_dial": {"burst": {"dial_ms": {"p50": dial_p50, "p99": 300.0}}},
        "requests": {"scenarios": {"immediate answered": {"aws_requests": requests, "event_source_requests": {}}}},
        "cost": {"scenarios": {"immediate answered": {"measured": {"usd_per_million": 14.99}}}},
        "cold_start": {"functions": {"A": {"ratio_to_boto3": 1.2}, "B": {"ratio_to_boto3": ratio}}},
        "pacing": {
            "max_in_any_1s_window": busiest,
            "within_limit": busiest <= 2,
            "carrier_cps": 2,
            "share_of_limit": 0.92,
            "backlog": 30,
        },
    }


def test_each_target_is_judged_from_its_numbers() -> None:
    rows = targets(_results(dial_p50=80.0, requests=8, ratio=1.5, busiest=2))
    assert [r["met"] for r in rows] == [True, True, True, True, True, True]
    rows = targets(_results(dial_p50=120.0, requests=9, ratio=1.6, busiest=3))
    assert [r["met"] for r in rows] == [True, False, False, True, False, False]
    assert "B" in rows[4]["measured"]


def test_missing_measurements_are_reported_as_such_not_as_passes() -> None:
    results = _results(dial_p50=80.0, requests=8, ratio=1.0, busiest=1)
    results["schedule"] = {}
    del results["pacing"]
    rows = targets(results)
    assert rows[0]["met"] is None
    assert rows[0]["measured"] == "not measured"
    assert rows[-1]["met"] is None


def test_markdown_leads_with_the_targets_table() -> None:
    results = _results(dial_p50=80.0, requests=8, ratio=1.0, busiest=1)
    results["targets"] = targets(results)
    text = markdown(results)
    assert text.startswith("# callbridge benchmarks")
    assert "| AWS requests per immediate answered call | ≤ 8 | 8 (inside the functions; + 0 by" in text
