"""Sandbox sessions, each in its own process: `python -m bench.sessions NAME OUT.json`.

One sandbox per process: the handlers' modules cache boto3 clients and carrier credentials for the
life of the process (as a Lambda container does), so a second sandbox in the same process would talk
to the first one's moto. Each session writes its results as JSON, or {"error": ...}.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from bench.harness import running_sandbox
from bench.latency import isolated_time_to_dial, time_to_dial
from bench.machine import MachineLoad, process_seconds
from bench.pacing import pacing
from bench.requests_count import count_requests
from bench.schedule import rule_rate, schedule_precision

FAST_SCHEDULE_EVERY = 2.0
DIAL_CPS = 200
PACING_CPS = 2
BURST_CONCURRENCY = 8  # clients posting the burst's calls, each as soon as its previous call was answered
# The burst's 100 calls again, posted at these rates (calls a second) rather than as fast as the API answers:
# where the machine's capacity ends, for the burst's figures short of their targets.
OFFERED_RATES = (10.0, 20.0, 30.0, 40.0)
PACING_BACKLOG = 30
SPEED = 20
TEMPLATE_RATE_OFFSETS = [20.0, 40.0, 70.0, 85.0]
FAST_OFFSETS = [5.0 + i for i in range(16)]


def _function_cpu(sandbox: int, moto: int) -> dict[int, float]:
    """CPU seconds of each function process (the sandbox's descendants, moto and the client aside), by pid."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    family, frontier = set(), [sandbox]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier and pid not in family]
        family.update(children)
        frontier = children
    out = {}
    for pid in family - {moto}:
        try:
            out[pid] = process_seconds(pid)
        except (OSError, ValueError, IndexError):
            continue
    return out


def pacing_session(burst: int) -> dict[str, Any]:
    with running_sandbox(speed=SPEED, cps=PACING_CPS) as running:
        return {"pacing": pacing(running, cps=PACING_CPS, backlog=PACING_BACKLOG)}


def template_rate_session(burst: int) -> dict[str, Any]:
    with running_sandbox(speed=SPEED, cps=DIAL_CPS, schedule_every=None) as running:
        result = schedule_precision(running, offsets=TEMPLATE_RATE_OFFSETS, label="template rate", schedule_every=None)
        result["rule_rate"] = rule_rate(running)
        return {"template_rate": result}


def main_session(burst: int) -> dict[str, Any]:
    """Requests per call, time to dial (isolated, steady) and the fast schedule set, in one sandbox."""
    out: dict[str, Any] = {}
    with running_sandbox(speed=SPEED, cps=DIAL_CPS, schedule_every=FAST_SCHEDULE_EVERY) as running:
        out["requests"] = count_requests(running, runs=3, schedule_every=FAST_SCHEDULE_EVERY)
        ttd: dict[str, Any] = {"carrier_cps": DIAL_CPS}
        ttd["isolated"] = isolated_time_to_dial(running, calls=10)
        ttd["steady"] = time_to_dial(running, calls=30, concurrency=4, cps=DIAL_CPS, rate=2.0, label="steady")
        out["time_to_dial"] = ttd
        out["schedule_fast"] = schedule_precision(
            running, offsets=FAST_OFFSETS, label="fast", schedule_every=FAST_SCHEDULE_EVERY
        )
    return out


def burst_session(burst: int) -> dict[str, Any]:
    """Time to dial under a burst, twice in one sandbox as deployed (no probes, the scheduler at the template's
    rate): first with the containers the sandbox started with, so most requests wait for a new container (a cold
    start); then, once quiet, on the containers that burst left warm, measuring CPU per call as well. Then the same
    number of calls at each of OFFERED_RATES."""
    out: dict[str, Any] = {}
    with running_sandbox(speed=SPEED, cps=DIAL_CPS, schedule_every=None, probes=False) as running:
        out["first_burst"] = time_to_dial(
            running, calls=burst, concurrency=BURST_CONCURRENCY, cps=DIAL_CPS, label="first burst"
        )
        running.recorder.wait_quiet(1.5, timeout=120)
        moto_pid = running.sandbox._moto.pid
        before = (process_seconds(moto_pid), process_seconds(os.getpid()))
        functions_before = _function_cpu(os.getpid(), moto_pid)
        with MachineLoad(processes={"moto": moto_pid}) as load:
            out["burst"] = time_to_dial(running, calls=burst, concurrency=BURST_CONCURRENCY, cps=DIAL_CPS, load=load)
        running.recorder.wait_quiet(1.5, timeout=120)
        dialed = max(1, out["burst"]["dialed"])
        out["burst"]["cpu_seconds_per_call"] = {
            "moto": round((process_seconds(moto_pid) - before[0]) / dialed, 3),
            "sandbox": round((process_seconds(os.getpid()) - before[1]) / dialed, 3),
            "functions": round(
                sum(cpu - functions_before.get(pid, 0.0) for pid, cpu in _function_cpu(os.getpid(), moto_pid).items())
                / dialed,
                3,
            ),
        }
        out["offered"] = []
        for rate in OFFERED_RATES:
            with MachineLoad(processes={"moto": moto_pid}) as load:
                offered = time_to_dial(
                    running,
                    calls=burst,
                    concurrency=BURST_CONCURRENCY,
                    cps=DIAL_CPS,
                    rate=rate,
                    label=f"{rate:g}/s",
                    load=load,
                )
            out["offered"].append(offered)
            running.recorder.wait_quiet(1.5, timeout=120)
    return out


SESSIONS = {
    "main": main_session,
    "burst": burst_session,
    "pacing": pacing_session,
    "template-rate": template_rate_session,
}


def main(argv: list[str]) -> int:
    name, out = argv[0], Path(argv[1])
    burst = int(argv[2]) if len(argv) > 2 else 100
    try:
        result = SESSIONS[name](burst)
    except Exception as exc:  # the parent writes the error into the results instead of inventing numbers
        traceback.print_exc()
        result = {"error": f"{type(exc).__name__}: {exc}"}
    out.write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
