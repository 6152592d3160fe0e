"""How busy the machine was over a window, from /proc/stat samples, and what the burst's closed loop implies
(arithmetic on given samples, no timing)."""

from __future__ import annotations

import itertools
import os

import pytest

from bench.__main__ import closed_loop
from bench.machine import MachineLoad, busy_between, process_busy_between, process_seconds, read_proc_stat

# (monotonic time, busy jiffies, all jiffies, CPU seconds of moto) of 2 cores: 200 jiffies a second in all
SAMPLES = [
    (10.0, 0.0, 0.0, {"moto": 1.0}),
    (10.5, 50.0, 100.0, {"moto": 1.25}),
    (11.0, 150.0, 200.0, {"moto": 1.75}),
    (11.5, 250.0, 300.0, {"moto": 2.25}),
    (12.0, 260.0, 400.0, {"moto": 2.3}),
]


def test_busy_spans_the_samples_around_the_window() -> None:
    # from the last sample at or before the start to the first at or after the end
    assert busy_between(SAMPLES, 10.5, 11.5) == pytest.approx(200 / 200)
    assert busy_between(SAMPLES, 10.6, 11.4) == pytest.approx(200 / 200)
    assert busy_between(SAMPLES, 10.0, 12.0) == pytest.approx(260 / 400)
    assert busy_between(SAMPLES, 11.5, 12.0) == pytest.approx(10 / 100)


def test_a_process_busy_is_its_share_of_one_core_over_the_same_samples() -> None:
    assert process_busy_between(SAMPLES, "moto", 10.5, 11.5) == pytest.approx(1.0)
    assert process_busy_between(SAMPLES, "moto", 10.0, 12.0) == pytest.approx(0.65)
    assert process_busy_between(SAMPLES, "moto", 11.6, 12.0) == pytest.approx(0.1)
    assert process_busy_between(SAMPLES, "sandbox", 10.0, 12.0) is None  # not watched


@pytest.mark.parametrize(("start", "end"), [(9.0, 11.0), (10.5, 12.5), (11.0, 10.0)])
def test_a_window_the_samples_do_not_cover_has_no_figure(start: float, end: float) -> None:
    assert busy_between(SAMPLES, start, end) is None
    assert process_busy_between(SAMPLES, "moto", start, end) is None


def test_the_sampler_judges_the_samples_it_took_while_open() -> None:
    counts = itertools.count()

    def read() -> tuple[float, float]:
        n = next(counts)
        return 30.0 * n, 100.0 * n  # a steady 30 % busy

    with MachineLoad(every=0.001, processes={"moto": 7}, read=read, seconds_of=lambda pid: float(next(counts))) as load:
        while next(counts) < 10:  # let the background thread take a few samples
            pass
    samples = load._samples  # what it sampled
    assert len(samples) >= 2
    assert load.busy(samples[0][0], samples[-1][0]) == pytest.approx(0.3)
    assert load.process_busy("moto", samples[0][0], samples[-1][0]) is not None


def test_this_machine_reports_its_own_process_seconds() -> None:
    assert process_seconds(os.getpid()) > 0


def test_this_machine_reports_busy_within_all() -> None:
    busy, everything = read_proc_stat()
    assert 0 <= busy <= everything


def test_the_closed_loop_says_what_the_intake_rate_makes_each_request_take() -> None:
    burst = {"intake_rps": 40.0, "concurrency": 8, "api_ms": {"mean": 197.0}, "machine_busy": 0.79, "moto_busy": 0.96}

    said = closed_loop(burst)

    assert "8 requests are always in flight: at 40.0 calls/s each takes 200 ms on average" in said
    assert "measured 197.0 ms" in said
    assert "79 % busy (all cores)" in said
    assert "used 96 % of its core" in said
    assert closed_loop({"concurrency": 8}) == ""
