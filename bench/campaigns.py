"""Campaigns: time to accept 10,000 calls, fan-out rate, a 1,000-call campaign end to end, AWS cost per campaign call.

`python -m bench.campaigns [--calls 1000] [--cps 20] [--accept 10000]` starts its own sandbox in this process
(bench/harness.py records every AWS request and handler invocation) and prints a JSON summary; with `--out
FILE` it writes it too. Separate from `make bench`'s main run, which it does not change.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench import cost
from bench.harness import EVENT_SOURCE, Invocation, Running, callid_of, running_sandbox
from bench.requests_count import Window, per_call
from bench.stats import max_in_window, summarize

PLAY = "http://example.com/a.wav"
# The carrier simulator's outcome by the last digit of `to` (README, "The sandbox").
OUTCOMES = {"1": "COMPLETED", "2": "BUSY", "3": "NO_ANSWER", "4": "FAILED"}
# How often the campaign is read while it runs: each read is a moto request or two more on the loaded sandbox,
# and the end is timed to within this.
POLL_SECONDS = 2.0


def _log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} bench.campaigns: {message}", flush=True)


def _event_source_trouble(line: str) -> None:
    """The sandbox's log, only what its event sources say went wrong (a poller's error, a dropped stream batch)."""
    if line.startswith(("stream ", "poller ", "schedule ")):
        _log(f"sandbox: {line}")


def _body(calls: int, prefix: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": f"bench {calls}",
        "defaults": {"answer_play": PLAY, "answermachine_play": PLAY},
        "calls": [{"to": f"{prefix}{n:06d}", "metadata": {"row": str(n)}} for n in range(calls)],
        **fields,
    }


def _stored(running: Running, campaign_id: str) -> int:
    """Calls the fan-out has stored so far (their counted items, written just before each call)."""
    assert running.sandbox.stack is not None
    table = running.sandbox.stack.refs["CampaignsTable"]
    # the sandbox's moto enforces IAM: read as its administrator
    db = running.sandbox.admin.session().client("dynamodb", endpoint_url=running.sandbox.aws_endpoint)
    total, start = 0, None
    while True:
        params: dict[str, Any] = {
            "TableName": table,
            "KeyConditionExpression": "pk = :c AND begins_with(sk, :p)",
            "ExpressionAttributeValues": {":c": {"S": campaign_id}, ":p": {"S": "CALL#"}},
            "Select": "COUNT",
        }
        if start:
            params["ExclusiveStartKey"] = start
        page = db.query(**params)
        total += int(page["Count"])
        start = page.get("LastEvaluatedKey")
        if not start:
            return total


def accept_and_fan_out(running: Running, calls: int, fan_out_window: float) -> dict[str, Any]:
    """POST a campaign of `calls` calls, time the 200, then its fan-out (for at most `fan_out_window` s); cancel it.

    It starts in 300 days, so nothing is dialed while it is measured.
    """
    later = datetime.now(UTC) + timedelta(days=300)  # not started while it is measured
    body = json.dumps(_body(calls, "12815", calls_per_second=1, start_at=later.strftime("%Y-%m-%dT%H:%M:%SZ")))
    started = time.monotonic()
    response = running.client.post("/pcall/campaigns", content=body, headers={"Content-Type": "application/json"})
    accepted = time.monotonic() - started
    if response.status_code != 200:
        raise RuntimeError(f"POST /pcall/campaigns → {response.status_code}: {response.text[:300]}")
    campaign_id = response.json()["data"]["campaign"]["id"]
    _log(f"accepted in {accepted:.2f} s; watching the fan-out for at most {fan_out_window:.0f} s")
    fan_started = time.monotonic()
    deadline = fan_started + fan_out_window
    stored = 0
    while stored < calls and time.monotonic() < deadline:
        time.sleep(1.0)
        stored = _stored(running, campaign_id)
    fan_seconds = time.monotonic() - fan_started
    running.client.delete(f"/pcall/campaigns/{campaign_id}")
    return {
        "calls": calls,
        "body_bytes": len(body),
        "accept_seconds": round(accepted, 3),
        "stored": stored,
        "fan_out_seconds": round(fan_seconds, 1),
        "fan_out_calls_per_second": round(stored / fan_seconds, 1) if fan_seconds else None,
    }


def end_to_end(
    running: Running, calls: int, cps: float, memory_mb: dict[str, int], timeout: float | None = None
) -> dict[str, Any]:
    """A campaign of `calls` mixed outcomes at `cps` to FINISHED: time, carrier CPS held, counts, cost."""
    recorder = running.recorder
    recorder.wait_quiet(1.5, timeout=120)
    mark = recorder.mark()
    outside_before = recorder.outside_snapshot()[EVENT_SOURCE]
    before = len(running.create_requests())
    body = _body(calls, "17135", calls_per_second=cps)
    started = time.monotonic()
    response = running.client.post("/pcall/campaigns", json=body)
    if response.status_code != 200:
        raise RuntimeError(f"POST /pcall/campaigns → {response.status_code}: {response.text[:300]}")
    campaign_id = response.json()["data"]["campaign"]["id"]
    single_waits: list[float] = []
    campaign: dict[str, Any] = {}
    deadline = started + (timeout if timeout is not None else calls / cps * 3 + 120)
    loads: list[float] = []
    while time.monotonic() < deadline:
        loads.append(os.getloadavg()[0])
        if len(single_waits) < 5 and time.monotonic() - started > 5 * (len(single_waits) + 1):
            try:  # a single call meanwhile: how long it waits behind the campaign
                callid, posted = running.post_call({"to": "17135550100", "answer_play": PLAY})
            except httpx.TimeoutException:
                continue
            request = _wait_request(running, callid, 60)
            if request is not None:
                single_waits.append(request.monotonic - posted)
        try:
            answer = running.client.get(f"/pcall/campaigns/{campaign_id}")
        except httpx.TimeoutException:  # a loaded sandbox: ask again
            continue
        if answer.status_code != 200:  # a 503 (storage slower than the API's deadline): ask again
            time.sleep(0.5)
            continue
        campaign = answer.json()["data"]["campaign"]
        if campaign["status"] == "FINISHED":
            break
        time.sleep(POLL_SECONDS)
    seconds = time.monotonic() - started
    _log(f"campaign {campaign.get('status')} after {seconds:.1f} s")
    try:  # the costs include the last webhooks and stream records
        running.carrier.wait_idle(120)
        recorder.wait_quiet(2.0, timeout=120)
    except TimeoutError as exc:
        _log(f"not quiet yet ({exc}); the cost below misses what was still running")
    window = Window(
        invocations=recorder.since(mark),
        outside=recorder.outside_snapshot()[EVENT_SOURCE] - outside_before,
        dial_seconds=None,
        seconds=seconds,
    )
    times = sorted(r.monotonic for r in running.create_requests()[before:])
    stored = _stored(running, campaign_id)
    calls_now = _report_statuses(running, campaign_id)
    expected = Counter(OUTCOMES.get(n[-1], "COMPLETED") for n in (c["to"] for c in body["calls"]))
    counts = {k: v for k, v in campaign.get("counts", {}).items() if v}
    usage = cost.usage_from_counts(per_call([window], None), memory_mb, model_aws=True)
    per_campaign = cost.per_million(usage, cost.prices())
    return {
        "calls": calls,
        "calls_per_second": cps,
        "status": campaign.get("status"),
        "seconds": round(seconds, 1),
        "stored": stored,
        "carrier_requests": len(times),
        "max_carrier_requests_in_any_1s": max_in_window(times, 1.0),
        "counts_exact": counts == dict(expected),  # the final outcomes: false until FINISHED
        # the counts against the calls themselves (the report's status column), read after the run
        "counts_match_calls": counts == calls_now,
        "calls_by_status": calls_now,
        "counts_add_up": sum(counts.values()) == calls,
        "counts": counts,
        "single_call_accept_to_dial_ms": summarize(single_waits, 1000),
        "usd_per_million_campaign_calls": round(per_campaign["usd_per_million"] / calls, 2),
        "cost_items_per_million_campaign_calls": {
            row["item"]: round(row["usd_per_million"] / calls, 3) for row in per_campaign["items"]
        },
        "load_average_1min": {"min": min(loads), "mean": round(sum(loads) / len(loads), 1), "max": max(loads)},
        "aws": where_time_went(window.invocations, window.outside),
    }


def where_time_went(invocations: list[Invocation], outside: Counter[str]) -> dict[str, Any]:
    """Per function and trigger: invocations, records, errors, handler and AWS seconds, AWS requests by operation.

    What the end-to-end campaign cost the sandbox's AWS (one moto process): where its time went.
    """
    rows: dict[str, dict[str, Any]] = {}
    for inv in invocations:
        if inv.trigger == "init":
            continue
        row = rows.setdefault(
            f"{inv.function} {inv.trigger}",
            {
                "invocations": 0,
                "records": 0,
                "errors": Counter(),
                "seconds": 0.0,
                "aws_seconds": 0.0,
                "requests": Counter(),
            },
        )
        row["invocations"] += 1
        row["records"] += inv.records
        row["seconds"] += inv.duration
        row["aws_seconds"] += inv.aws_seconds
        row["requests"].update(inv.requests)
        if inv.error:
            row["errors"][inv.error] += 1
    ordered = sorted(rows.items(), key=lambda kv: -kv[1]["aws_seconds"])
    return {
        "by_function": {
            name: {
                **row,
                "seconds": round(row["seconds"], 1),
                "aws_seconds": round(row["aws_seconds"], 1),
                "aws_requests": sum(row["requests"].values()),
                "requests": dict(row["requests"].most_common()),
                "errors": dict(row["errors"]),
            }
            for name, row in ordered
        },
        "event_source_requests": dict(outside.most_common()),
    }


def _report_statuses(running: Running, campaign_id: str) -> dict[str, int]:
    """The campaign's calls by their stored status, from its report (one row per call)."""
    response = running.client.get(f"/pcall/campaigns/{campaign_id}/report.csv")
    if response.status_code != 200:
        _log(f"report.csv → {response.status_code}: {response.text[:200]}")
        return {}
    return dict(Counter(row["status"] for row in csv.DictReader(io.StringIO(response.text))))


def _wait_request(running: Running, callid: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = next((r for r in running.create_requests() if callid_of(r) == callid), None)
        if found is not None:
            return found
        time.sleep(0.02)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.campaigns", description=__doc__)
    parser.add_argument("--accept", type=int, default=10_000, help="calls in the campaign timed at intake (0: none)")
    parser.add_argument("--calls", type=int, default=1_000, help="calls in the end-to-end campaign")
    parser.add_argument("--cps", type=float, default=20, help="the carrier's (and the campaign's) calls per second")
    parser.add_argument("--fan-out-window", type=float, default=300, help="seconds the fan-out is watched at most")
    parser.add_argument(
        "--timeout", type=float, help="seconds the end-to-end campaign is given (default: 3 × calls / cps + 120)"
    )
    parser.add_argument("--out", type=Path, help="also write the JSON summary here")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with running_sandbox(speed=50, cps=args.cps, log=_event_source_trouble) as running:
        assert running.sandbox.stack is not None
        template = running.sandbox.stack.template
        default = int(template.get("Globals", {}).get("Function", {}).get("MemorySize", 128))
        memory = {
            name: int(r["Properties"].get("MemorySize", default))
            for name, r in template["Resources"].items()
            if r.get("Type") == "AWS::Serverless::Function"
        }
        # End to end first: the big campaign's fan-out would keep the stream and the queues busy for a while.
        _log(f"running a {args.calls}-call campaign at {args.cps} calls/s")
        results["end_to_end"] = end_to_end(running, args.calls, args.cps, memory, args.timeout)
        _log(json.dumps(results["end_to_end"]))
        if args.accept:
            _log(f"accepting a {args.accept}-call campaign")
            results["accept"] = accept_and_fan_out(running, args.accept, args.fan_out_window)
            _log(json.dumps(results["accept"]))
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
