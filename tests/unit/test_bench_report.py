"""The benchmark report judges each target of docs/targets.md from the numbers alone (arithmetic, no timing)."""

from __future__ import annotations

from typing import Any

from bench.report import markdown, targets, with_previous


def _results(*, dial_p50: float, requests: float, ratio: float, busiest: int, botocore: bool = False) -> dict[str, Any]:
    return {
        "meta": {
            "started": "2026-11-26 00:00 UTC",
            "machine": "test",
            "command": "make bench",
            "seconds": 1.0,
            "load_start": "0",
            "load_end": "0",
        },
        "schedule": {"fast": {"lateness_ms": {"p50": 4.0, "p99": 90.0}, "placed": 4, "calls": 4}},
        "time_to_dial": {"burst": {"dial_ms": {"p50": dial_p50, "p99": 300.0}, "api_ms": {"p50": 50.0, "p99": 150.0}}},
        "requests": {"scenarios": {"immediate answered": {"aws_requests": requests, "event_source_requests": {}}}},
        "cost": {
            "scenarios": {"immediate answered": {"measured": {"usd_per_million": 14.99}}},
            "fixed_monthly": {"usd_per_month": 1.01, "items": [{"item": "scheduler idle runs", "usd_per_month": 1.01}]},
            "tracing": "PassThrough",
        },
        "cold_start": {"functions": {"A": {"ratio_to_boto3": 1.2}, "B": {"ratio_to_boto3": ratio}}},
        "deployment": {
            "built": True,
            "layers": {"L": {"bytes": 20 * 1024**2, "zipped": 1}},
            "aws_sdk_in_layer": ["botocore"] if botocore else [],
            "layer_largest_packages": [],
            "seconds": 1.0,
            "functions": {},
        },
        "pacing": {
            "max_in_any_1s_window": busiest,
            "within_limit": busiest <= 2,
            "carrier_cps": 2,
            "share_of_limit": 0.92,
            "backlog": 30,
        },
    }


KEYS = ["requests", "cost", "fixed", "import", "layer", "pacing", "dial", "api", "schedule"]


def test_each_target_is_judged_from_its_numbers() -> None:
    rows = targets(_results(dial_p50=80.0, requests=8, ratio=1.5, busiest=2))
    assert [r["key"] for r in rows] == KEYS
    assert [r["met"] for r in rows] == [True] * len(KEYS)
    rows = targets(_results(dial_p50=120.0, requests=9, ratio=1.6, busiest=3, botocore=True))
    met = {r["key"]: r["met"] for r in rows}
    assert [k for k in KEYS if not met[k]] == ["requests", "import", "layer", "pacing", "dial"]
    assert "B" in next(r["measured"] for r in rows if r["key"] == "import")


def test_missing_measurements_are_reported_as_such_not_as_passes() -> None:
    results = _results(dial_p50=80.0, requests=8, ratio=1.0, busiest=1)
    results["schedule"] = {}
    del results["pacing"]
    results["deployment"] = {"built": False}
    rows = {r["key"]: r for r in targets(results)}
    for key in ("schedule", "pacing", "layer"):
        assert rows[key]["met"] is None
        assert rows[key]["measured"] == "not measured"


def test_the_change_against_the_previous_run() -> None:
    now = _results(dial_p50=80.0, requests=6, ratio=1.2, busiest=2)
    before = _results(dial_p50=80.0, requests=21, ratio=2.5, busiest=3)

    rows = {r["key"]: r for r in with_previous(targets(now), before)}

    assert rows["requests"]["change"] == -15
    assert rows["import"]["change"] == 1.2 - 2.5
    assert rows["requests"]["previous"].startswith("21 ")


def test_markdown_leads_with_the_targets_table() -> None:
    results = _results(dial_p50=80.0, requests=8, ratio=1.0, busiest=1)
    results["targets"] = with_previous(targets(results), _results(dial_p50=80.0, requests=21, ratio=1.0, busiest=1))
    results["previous_run"] = {"started": "2026-11-25 00:00 UTC", "commit": "abc1234"}
    text = markdown(results)
    assert text.startswith("# callbridge benchmarks")
    assert "| AWS requests per immediate answered call | ≤ 8 | 8 (inside the functions; + 0 by" in text
    assert "previous run (2026-11-25 00:00 UTC, commit abc1234)" in text
    assert "| -13 |" in text


def test_the_burst_at_each_offered_rate_is_a_row_of_the_time_to_dial_table() -> None:
    results = _results(dial_p50=80.0, requests=8, ratio=1.0, busiest=1)
    results["targets"] = targets(results)
    results["time_to_dial"]["offered"] = [
        {"calls": 100, "offered_rate": rate, "dial_ms": {"p50": p50}, "api_ms": {"p99": 40.0}}
        for rate, p50 in ((10.0, 31.0), (40.0, 1234.0))
    ]
    results["time_to_dial"]["offered"][1].update(machine_busy=0.768, moto_busy=0.991)
    text = markdown(results)
    assert "| offered 10/s (warm containers) | 100 calls, offered 10/s |" in text
    assert "| 77 % | 99 % |" in text  # how busy the machine and moto were while the 40/s ran
    assert "| offered 40/s (warm containers) | 100 calls, offered 40/s |" in text
    assert "1,234 ms" in text


def test_the_header_says_how_fast_the_machine_ran_python_in_this_run_and_the_previous() -> None:
    results = _results(dial_p50=80.0, requests=8, ratio=1.0, busiest=1)
    results["meta"] |= {"reference_ms_start": 49.6, "reference_ms_end": 51.0}
    results["previous"] = _results(dial_p50=80.0, requests=8, ratio=1.0, busiest=1)
    results["previous"]["meta"] |= {"reference_ms_start": 24.8, "reference_ms_end": 25.3}
    results["targets"] = with_previous(targets(results), results["previous"])

    header = markdown(results).split("## Against the targets")[0]

    assert "took 49.6 / 51.0 ms at start / end (24.8 / 25.3 ms in the previous run)" in header
    previous_lacks_it = results | {"previous": _results(dial_p50=80.0, requests=8, ratio=1.0, busiest=1)}
    assert "took 49.6 / 51.0 ms at start / end: the same" in markdown(previous_lacks_it)


def test_the_reference_work_is_fixed_and_its_time_a_positive_figure() -> None:
    from bench.machine import _reference_work, reference_ms

    assert _reference_work() == _reference_work()
    assert reference_ms(repeats=1) > 0
