"""Pacing: with a configured CPS and a backlog, create-call requests in any one-second window and the drain rate."""

from __future__ import annotations

from typing import Any

from bench.harness import Running, callid_of
from bench.latency import send_calls
from bench.stats import achieved_rate, max_in_window, summarize


def pacing(running: Running, *, cps: float, backlog: int) -> dict[str, Any]:
    """Post `backlog` calls at once and watch the carrier receive them."""
    mark = running.recorder.mark()
    before = len(running.create_requests())
    sent = send_calls(running, backlog, concurrency=8)
    accepted = {r["callid"] for r in sent if r["status"] == 200}
    expected = before + len(accepted)
    # The backlog drains at about HEADROOM × CPS: wait that long, and then some.
    arrived = running.wait_create_requests(expected, timeout=backlog / (cps * 0.85) + 30)[before:]
    times = [r.monotonic for r in arrived if callid_of(r) in accepted]
    running.carrier.wait_idle(60)
    running.recorder.wait_quiet(1.5, timeout=60)
    placer = [i for i in running.recorder.since(mark) if i.function == "PlacerFunction" and i.trigger == "sqs"]
    busiest = max_in_window(times, 1.0)
    rate = achieved_rate(times)
    gaps = [b - a for a, b in zip(sorted(times), sorted(times)[1:], strict=False)]
    return {
        "carrier_cps": cps,
        "backlog": backlog,
        "accepted": len(accepted),
        "placed": len(times),
        "max_in_any_1s_window": busiest,
        "within_limit": busiest <= cps,
        "achieved_rate": round(rate, 3),
        "share_of_limit": round(rate / cps, 3) if cps else None,
        "gap_ms": summarize(gaps, 1000),
        "placer_invocations": len(placer),
        "placer_seconds_per_call": round(sum(i.duration for i in placer) / len(times), 3) if times else None,
        "offsets_s": [round(t - min(times), 3) for t in sorted(times)] if times else [],
    }
