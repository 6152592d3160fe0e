"""Schedule precision: lateness of the carrier's create-call request against call_date.

Calls are posted with `call_date` a little ahead (ISO 8601, whole seconds, UTC), spread over a
window; lateness is the simulator's wall-clock arrival time (`time.time()`) minus call_date, so
negative means early.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from bench.harness import Running, callid_of
from bench.requests_count import PLAY
from bench.stats import summarize


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def schedule_precision(
    running: Running, *, offsets: list[float], label: str, schedule_every: float | None
) -> dict[str, Any]:
    """Post one call per offset (seconds ahead, rounded up to whole seconds) and measure each one's lateness."""
    functions = set(running.sandbox.functions)
    due: dict[str, float] = {}
    now = time.time()
    for offset in offsets:
        at = float(int(now + offset) + 1)
        callid, _ = running.post_call({"to": "12812345670", "answer_play": PLAY, "call_date": _iso(at)})
        due[callid] = at
    deadline = max(due.values()) + 30
    lateness: dict[str, float] = {}
    while time.time() < deadline and len(lateness) < len(due):
        for request in running.create_requests():
            callid = callid_of(request)
            if callid in due and callid not in lateness:
                lateness[callid] = request.at - due[callid]
        time.sleep(0.05)
    paths, claimed_at = _dispatch_paths(running, list(lateness))
    # When the placer claimed each call (its "dialing" event) against call_date: where the lateness comes from,
    # the queue delivering the message (claim late) or the way from claim to carrier.
    claimed = {c: claimed_at[c] - due[c] for c in lateness if c in claimed_at}
    running.carrier.wait_idle(30)
    return {
        "label": label,
        "schedule_every": schedule_every,
        "scheduler_function": "SchedulerFunction" in functions,
        "calls": len(due),
        "placed": len(lateness),
        "never_placed": len(due) - len(lateness),
        "offsets_s": offsets,
        "lateness_ms": summarize(list(lateness.values()), 1000),
        "claimed_vs_due_ms": summarize(list(claimed.values()), 1000),
        "claim_to_carrier_ms": summarize([lateness[c] - claimed[c] for c in claimed], 1000),
        "lateness_seconds": sorted(round(v, 3) for v in lateness.values()),
        "dispatched_by": paths,
    }


def _dispatch_paths(running: Running, callids: list[str]) -> tuple[dict[str, int], dict[str, float]]:
    """How each call reached the queue (its timeline: a scheduler run, or the intake directly); when it was claimed."""
    paths: dict[str, int] = {}
    claimed: dict[str, float] = {}
    for callid in callids:
        call = running.client.get(f"/pcall/calls/{callid}").json().get("data", {}).get("call", {})
        events = [e.get("event") for e in call.get("timeline", [])]
        path = "scheduler run" if "dispatched" in events else "intake (queued with DelaySeconds)"
        paths[path] = paths.get(path, 0) + 1
        dialing = next((e.get("at") for e in call.get("timeline", []) if e.get("event") == "dialing"), None)
        if dialing:
            claimed[callid] = datetime.fromisoformat(str(dialing).replace("Z", "+00:00")).timestamp()
    return paths, claimed


def rule_rate(running: Running) -> str | None:
    """The template's schedule expression for the scheduler (e.g. rate(1 minute))."""
    for resource in running.sandbox.stack.template["Resources"].values():
        for event in resource.get("Properties", {}).get("Events", {}).values():
            if isinstance(event, dict) and event.get("Type") == "Schedule":
                return str(event["Properties"]["Schedule"])
    return None
