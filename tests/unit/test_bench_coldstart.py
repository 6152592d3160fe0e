"""The import-time ratio pairs each handler's sample with a boto3 sample taken just before it (no timing here:
the samples are made up, from a machine whose speed changes)."""

from __future__ import annotations

from itertools import count
from pathlib import Path
from typing import Any

import pytest

from bench import coldstart
from bench.harness import ROOT


def test_each_ratio_is_the_median_of_pairs_so_a_machine_slowing_between_samples_does_not_skew_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The machine slows down by 10 % at every sample; the handler takes 1.3x what boto3 takes at the same speed.
    ticks = count()

    def speed() -> float:
        return float(1.1 ** next(ticks))

    work = {coldstart.IMPORT_BOTO3: 0.200, coldstart.IMPORT_BY_PATH: 0.260}

    def sample(code: str, args: list[str], env: dict[str, str]) -> float:
        return work[code] * speed()

    handlers = {name: ROOT / f"functions/{name.lower()}/app.py" for name in ("Api", "Placer", "Webhooks")}
    monkeypatch.setattr(coldstart, "_functions", lambda template: handlers)
    monkeypatch.setattr(coldstart, "_environment", lambda template, logical, path: {})
    monkeypatch.setattr(coldstart, "_sample", sample)
    monkeypatch.setattr(coldstart, "_top_imports", lambda path, env: {})

    result: dict[str, Any] = coldstart.import_times({}, samples=5)

    # Each handler's ratio is 1.3 x the 10 % the machine slowed between the two samples of its pair, the last
    # handler of a round like the first (against one boto3 sample a round, the third would read 1.3 x 1.1^3).
    for name in handlers:
        assert result["functions"][name]["ratio_samples"] == [1.43] * 5
        assert result["functions"][name]["ratio_to_boto3"] == 1.43
    assert len(result["boto3_samples_ms"]) == 5 * len(handlers)
    assert result["functions"]["Webhooks"]["module"] == str(Path("functions/webhooks/app.py"))
