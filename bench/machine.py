"""How busy the machine was over a window of time: all of it (every process: the sandbox, moto, the functions'
containers, the load generator, the kernel) from /proc/stat, and chosen processes from /proc/<pid>/stat,
sampled in the background.

A burst's figures are set by whether the machine, and moto on its one core, had CPU to spare while the calls
came in: this says how much was in use from the first call posted to the last carrier request.
"""

from __future__ import annotations

import bisect
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

# (monotonic time, busy jiffies and all jiffies of every core together, CPU seconds of each watched process)
Sample = tuple[float, float, float, dict[str, float]]


def read_proc_stat() -> tuple[float, float]:
    """(busy, all) jiffies since boot of all cores: busy is all but idle and iowait (guest time is in user)."""
    fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    everything = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    return everything - fields[3] - fields[4], everything


def process_seconds(pid: int) -> float:
    """CPU seconds (user and system) a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _reference_work() -> int:
    """A fixed piece of plain Python of the kinds the sandbox spends its CPU on (moto's and the handlers' JSON,
    dictionaries, strings and integer loops)."""
    item = {f"attribute{i}": {"S": f"value {i} " * 4} for i in range(40)}
    total = 0
    for round_ in range(800):
        text = json.dumps({"Item": item, "Round": round_})
        copy = json.loads(text)
        total += sum(len(key) + len(value["S"]) for key, value in copy["Item"].items())
        total += sum(i * i for i in range(500))
    return total


def reference_ms(repeats: int = 5) -> float:
    """Milliseconds the fixed reference work takes here, best of `repeats`: how fast this machine runs Python
    at the time, to compare runs on machines, or hours, whose speed differs (the same code's CPU per call follows
    it)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        _reference_work()
        best = min(best, time.process_time() - started)
    return round(best * 1000, 1)


def _around(samples: list[Sample], start: float, end: float) -> tuple[Sample, Sample] | None:
    """The last sample at or before `start` and the first at or after `end`, if the samples cover the window."""
    times = [s[0] for s in samples]
    first = bisect.bisect_right(times, start) - 1
    last = bisect.bisect_left(times, end)
    if first < 0 or last >= len(samples) or last <= first:
        return None
    return samples[first], samples[last]


def busy_between(samples: list[Sample], start: float, end: float) -> float | None:
    """The fraction of all cores busy over the window (see `_around`); None if the samples do not cover it."""
    found = _around(samples, start, end)
    if found is None:
        return None
    before, after = found
    everything = after[2] - before[2]
    return (after[1] - before[1]) / everything if everything > 0 else None


def process_busy_between(samples: list[Sample], name: str, start: float, end: float) -> float | None:
    """The share of one core the process `name` used over the window; None if the samples do not cover it."""
    found = _around(samples, start, end)
    if found is None or name not in found[0][3] or name not in found[1][3]:
        return None
    before, after = found
    return (after[3][name] - before[3][name]) / (after[0] - before[0])


class MachineLoad:
    """Samples /proc every `every` seconds while open (`with MachineLoad() as load: ... load.busy(a, b)`);
    `processes`: names for pids whose own CPU is sampled too."""

    def __init__(
        self,
        every: float = 0.05,
        processes: Mapping[str, int] | None = None,
        read: Callable[[], tuple[float, float]] = read_proc_stat,
        seconds_of: Callable[[int], float] = process_seconds,
    ) -> None:
        self.every = every
        self._processes = dict(processes or {})
        self._read = read
        self._seconds_of = seconds_of
        self._samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="machine-load", daemon=True)

    def _sample(self) -> None:
        busy, everything = self._read()
        watched = {name: self._seconds_of(pid) for name, pid in self._processes.items()}
        self._samples.append((time.monotonic(), busy, everything, watched))

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def __enter__(self) -> MachineLoad:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *_exception: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def busy(self, start: float, end: float) -> float | None:
        """The fraction of all cores busy from `start` to `end` (monotonic times); None outside the samples."""
        return busy_between(list(self._samples), start, end)

    def process_busy(self, name: str, start: float, end: float) -> float | None:
        """The share of one core the watched process `name` used from `start` to `end`."""
        return process_busy_between(list(self._samples), name, start, end)
