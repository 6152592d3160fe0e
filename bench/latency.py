"""Time to dial: from the API's 200 to the carrier simulator receiving the create-call request."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from bench.harness import ROOT, Running, callid_of
from bench.machine import MachineLoad
from bench.stats import summarize


def send_calls(
    running: Running, count: int, concurrency: int, params: list[dict[str, str]] | None = None, rate: float = 0.0
) -> list[dict[str, Any]]:
    """POST `count` calls from a separate client process; one record per call (callid, sent, done, status)."""
    key, password = running.sandbox.account
    command = [
        sys.executable,
        "-m",
        "bench.loadgen",
        running.sandbox.base_url,
        key,
        password,
        str(count),
        str(concurrency),
    ]
    command += [json.dumps(params) if params is not None else "-", str(rate)]
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    return [json.loads(line) for line in finished.stdout.splitlines() if line.startswith("{")]


def time_to_dial(
    running: Running,
    *,
    calls: int,
    concurrency: int,
    cps: float,
    rate: float = 0.0,
    label: str = "burst",
    load: MachineLoad | None = None,
) -> dict[str, Any]:
    """Immediate calls (a burst, or `rate` per second): API latency, intake rate, time to dial (p50/p95/p99/max);
    with `load`, how busy the machine (all cores) and moto (on its one) were from the first call posted to the last
    carrier request."""
    before = len(running.create_requests())
    mark = running.recorder.mark()
    sent = send_calls(running, calls, concurrency, rate=rate)
    accepted = {r["callid"]: r for r in sent if r["status"] == 200}
    arrived = running.wait_create_requests(before + len(accepted), timeout=60)[before:]
    dial: list[float] = []
    for request in arrived:
        record = accepted.get(callid_of(request))
        if record is not None:
            dial.append(request.monotonic - record["done"])
    ok = [r for r in sent if r["status"] == 200]
    span = max(r["done"] for r in ok) - min(r["sent"] for r in ok) if ok else 0.0
    running.carrier.wait_idle(60)
    time.sleep(0.5)
    busy: dict[str, Any] = {}
    if load is not None and ok and arrived:  # the clients' and the simulator's clocks are both the system's
        start, end = min(r["sent"] for r in ok), max(r.monotonic for r in arrived)
        busy = {"machine_busy": load.busy(start, end), "moto_busy": load.process_busy("moto", start, end)}
    return {
        "http_errors": http_errors(running.recorder.since(mark)),
        "label": label,
        "calls": calls,
        "offered_rate": rate or None,
        "concurrency": concurrency,
        "carrier_cps": cps,
        "accepted": len(ok),
        "errors": len(sent) - len(ok),
        "error_samples": sorted({f"{r['status']} {r.get('error', '')}"[:160] for r in sent if r["status"] != 200})[:3],
        "dialed": len(dial),
        "intake_rps": round(len(ok) / span, 1) if span else None,
        **{name: round(share, 3) for name, share in busy.items() if share is not None},
        "api_ms": summarize([r["done"] - r["sent"] for r in ok], 1000),
        "dial_ms": summarize(dial, 1000),
        "dial_seconds": [round(d, 4) for d in dial],
    }


def isolated_time_to_dial(running: Running, *, calls: int) -> dict[str, Any]:
    """One call at a time, each after the previous one has finished: the path's own latency, without queueing."""
    dial: list[float] = []
    api: list[float] = []
    for _ in range(calls):
        running.recorder.wait_quiet(1.0)
        before = len(running.create_requests())
        sent = time.monotonic()
        callid, done = running.post_call({"to": "12812345670", "answer_play": "http://example.com/bench.wav"})
        api.append(done - sent)
        found = running.wait_create_requests(before + 1, timeout=30)[before:]
        dial += [r.monotonic - done for r in found if callid_of(r) == callid]
        running.carrier.wait_idle(30)
    running.recorder.wait_quiet(1.0)
    return {
        "label": "isolated",
        "calls": calls,
        "concurrency": 1,
        "accepted": len(api),
        "dialed": len(dial),
        "api_ms": summarize(api, 1000),
        "dial_ms": summarize(dial, 1000),
        "dial_seconds": [round(d, 4) for d in dial],
    }


def http_errors(invocations: list[Any]) -> dict[str, int]:
    """HTTP API invocations that answered 4xx/5xx (or raised), by function, route and status."""
    found: dict[str, int] = {}
    for inv in invocations:
        if inv.trigger.startswith(("carrier ", "GET ", "POST ", "DELETE ", "PUT ")) and (
            inv.status is None or inv.status >= 400
        ):
            key = f"{inv.function} {inv.trigger} → {inv.status or inv.error}"
            found[key] = found.get(key, 0) + 1
    return found
