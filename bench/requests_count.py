"""AWS requests per call, by function, service and operation: one call at a time, counted as deltas.

Each scenario posts one call, waits for everything it sets off (placement, the carrier's webhooks,
SMS, the outcome callback, stream records) and for the handlers to go quiet, then takes what the
recorder saw since the call was posted. The scheduler's rule fires whether or not a call is due: its
runs are a fixed monthly cost (priced per run at the template's rate in cost.py), so runs that fall
inside the window are counted less what an idle run costs (measured first from at least two idle runs,
else from the idle runs among the windows), and a call pays only for the work done for it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.harness import EVENT_SOURCE, Invocation, Running, callid_of

PLAY = "http://example.com/bench.wav"
SCHEDULER = "SchedulerFunction"
NOTIFIER = "NotifierFunction"
# What Lambda's event source mapping does for SQS and bills to the queue's owner (stream reads are free).
BILLED_POLLER_OPERATIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessageBatch", "sqs:DeleteMessage")


@dataclass
class CallbackReceiver:
    """A local endpoint for callback_url that records what it receives."""

    received: list[tuple[float, bytes]] = field(default_factory=list)
    url: str = ""

    @contextmanager
    def serving(self) -> Iterator[CallbackReceiver]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.received.append((time.monotonic(), body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, name="bench-callback", daemon=True)
        thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}/callbridge-outcome"
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()


def _call_date(seconds_ahead: float) -> str:
    due = datetime.now(UTC) + timedelta(seconds=seconds_ahead)
    return due.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def scenarios(callback_url: str) -> dict[str, Callable[[], dict[str, str]]]:
    """The calls the issue names, as request parameters (built when posted: call_date is relative)."""
    return {
        "immediate answered": lambda: {"to": "12812345670", "answer_play": PLAY},
        "scheduled": lambda: {"to": "12812345670", "answer_play": PLAY, "call_date": _call_date(4)},
        "voicemail with SMS": lambda: {
            "to": "12812345671",
            "answer_play": PLAY,
            "answermachine_speak": "Sorry we missed you",
            "answermachine_speak_lang": "en-US",
            "answermachine_sms": "We tried to call you",
        },
        "with callback": lambda: {"to": "12812345670", "answer_play": PLAY, "callback_url": callback_url},
    }


@dataclass
class Window:
    """What the recorder saw while one call ran."""

    invocations: list[Invocation]
    outside: Counter[str]
    dial_seconds: float | None
    seconds: float


# What an idle scheduler run asks AWS: its due-index queries (one per shard) and an empty look at the queue.
IDLE_SCHEDULER_OPERATIONS = frozenset({"dynamodb:Query", "sqs:ReceiveMessage(empty)"})


def idle_baseline(runs: list[Invocation]) -> dict[str, Any] | None:
    """The mean of scheduler runs that found nothing to do: requests, units, duration, log bytes (None: no runs)."""
    if not runs:
        return None
    requests: Counter[str] = Counter()
    units: Counter[str] = Counter()
    for run in runs:
        requests.update(run.requests)
        units.update(run.units)
    n = len(runs)
    return {
        "runs": n,
        "requests": {k: v / n for k, v in requests.items()},
        "units": {k: v / n for k, v in units.items()},
        "duration": sum(r.duration for r in runs) / n,
        "aws_seconds": sum(r.aws_seconds for r in runs) / n,
        "log_bytes": sum(r.log_bytes for r in runs) / n,
        "log_lines": sum(r.log_lines for r in runs) / n,
    }


def idle_runs(invocations: list[Invocation]) -> list[Invocation]:
    """The scheduler's rule-fired runs that only looked (no message sent, nothing written)."""
    return [
        i
        for i in invocations
        if i.function == SCHEDULER and i.trigger == "schedule" and set(i.requests) <= IDLE_SCHEDULER_OPERATIONS
    ]


def _scheduler_baseline(running: Running, wait: float, *, runs: int = 2, timeout: float = 60) -> dict[str, Any] | None:
    """What one scheduler run costs when there is nothing to do, from at least `runs` idle runs (a busy machine
    may fire the rule late, so this waits for them rather than a fixed time)."""
    if SCHEDULER not in running.sandbox.functions:
        return None
    running.recorder.wait_quiet(1.0)
    mark = running.recorder.mark()
    deadline = time.monotonic() + max(wait, timeout)
    seen = idle_runs(running.recorder.since(mark))
    while len(seen) < runs and time.monotonic() < deadline:
        time.sleep(0.2)
        seen = idle_runs(running.recorder.since(mark))
    return idle_baseline(seen)


def run_one(
    running: Running, params: dict[str, str], *, receiver: CallbackReceiver | None, timeout: float = 40
) -> Window:
    """Post one call and wait until everything it set off is done; what happened meanwhile."""
    recorder = running.recorder
    recorder.wait_quiet(1.5)
    mark = recorder.mark()
    outside_before = recorder.outside_snapshot()[EVENT_SOURCE]
    callbacks_before = len(receiver.received) if receiver else 0
    started = time.monotonic()
    callid, accepted = running.post_call(params)
    deadline = time.monotonic() + timeout
    request = None
    while request is None and time.monotonic() < deadline:
        request = next((r for r in running.create_requests() if callid_of(r) == callid), None)
        if request is None:
            time.sleep(0.02)
    if request is not None and request.sid:
        running.carrier.wait_for(request.sid, max(1.0, deadline - time.monotonic()))
        running.carrier.wait_idle(max(1.0, deadline - time.monotonic()))
    if receiver is not None and "callback_url" in params:
        while len(receiver.received) <= callbacks_before and time.monotonic() < deadline:
            time.sleep(0.05)
    recorder.wait_quiet(2.0, timeout=max(5.0, deadline - time.monotonic()))
    outside = recorder.outside_snapshot()[EVENT_SOURCE] - outside_before
    return Window(
        invocations=recorder.since(mark),
        outside=outside,
        dial_seconds=(request.monotonic - accepted) if request is not None else None,
        seconds=time.monotonic() - started,
    )


def per_call(windows: list[Window], baseline: dict[str, Any] | None) -> dict[str, Any]:
    """Mean per call over `windows`: requests, units, invocations, durations and log bytes, by function."""
    n = len(windows)
    requests: dict[str, Counter[str]] = defaultdict(Counter)
    units: Counter[str] = Counter()
    invocations: Counter[str] = Counter()
    filtered: Counter[str] = Counter()
    duration: Counter[str] = Counter()
    aws_time: Counter[str] = Counter()
    log_bytes: Counter[str] = Counter()
    log_lines: Counter[str] = Counter()
    http_api = 0
    http_errors: Counter[str] = Counter()
    triggers: dict[str, Counter[str]] = defaultdict(Counter)
    poller: Counter[str] = Counter()
    for window in windows:
        poller.update({k: v for k, v in window.outside.items() if k in BILLED_POLLER_OPERATIONS})
        for inv in window.invocations:
            if inv.trigger == "init":
                continue
            if not inv.billed:
                filtered[inv.function] += 1
                continue
            invocations[inv.function] += 1
            triggers[inv.function][inv.trigger] += 1
            requests[inv.function].update(inv.requests)
            units.update(inv.units)
            duration[inv.function] += inv.duration  # type: ignore[assignment]
            aws_time[inv.function] += inv.aws_seconds  # type: ignore[assignment]
            log_bytes[inv.function] += inv.log_bytes
            log_lines[inv.function] += inv.log_lines
            if inv.trigger.startswith(("carrier ", "GET ", "POST ", "DELETE ", "PUT ")):
                http_api += 1
                if inv.status is None or inv.status >= 400:
                    http_errors[f"{inv.function} {inv.trigger} → {inv.status or inv.error}"] += 1
    if baseline is None:  # not measured apart: the idle runs among the calls' own windows say what one costs
        baseline = idle_baseline([i for w in windows for i in idle_runs(w.invocations) if i.billed])
    if baseline is not None and invocations[SCHEDULER]:
        runs = invocations[SCHEDULER]
        for key, value in baseline["requests"].items():
            requests[SCHEDULER][key] = max(0, requests[SCHEDULER][key] - value * runs)
        for key, value in baseline["units"].items():
            units[key] = max(0, units[key] - value * runs)
        duration[SCHEDULER] = max(0.0, duration[SCHEDULER] - baseline["duration"] * runs)
        aws_time[SCHEDULER] = max(0.0, aws_time[SCHEDULER] - baseline["aws_seconds"] * runs)
        log_bytes[SCHEDULER] = max(0, log_bytes[SCHEDULER] - int(baseline["log_bytes"] * runs))
        log_lines[SCHEDULER] = max(0, log_lines[SCHEDULER] - int(baseline["log_lines"] * runs))
        # The rule fires whether or not calls are due: its invocations are a fixed monthly cost (see cost.py);
        # a call adds only the requests, duration and log lines above an idle run's.
        invocations[SCHEDULER] = 0
        triggers[SCHEDULER] = Counter()

    def mean(counter: Counter[str]) -> dict[str, float]:
        return {k: round(v / n, 3) for k, v in sorted(counter.items()) if v}

    by_function = {
        name: {
            "invocations": round(invocations[name] / n, 3),
            "triggers": mean(triggers[name]),
            "requests": mean(requests[name]),
            "requests_total": round(sum(requests[name].values()) / n, 3),
            "duration_ms": round(duration[name] / n * 1000, 1),
            "aws_wait_ms": round(aws_time[name] / n * 1000, 1),
            "log_bytes": round(log_bytes[name] / n),
            "log_lines": round(log_lines[name] / n, 2),
        }
        for name in sorted(set(invocations) | set(requests))
        if invocations[name] or any(requests[name].values())
    }
    operations: Counter[str] = Counter()
    for counter in requests.values():
        operations.update(counter)
    return {
        "calls": n,
        "aws_requests": round(sum(operations.values()) / n, 2),
        "by_operation": mean(operations),
        "dynamodb_units": mean(units),
        "event_source_requests": mean(poller),
        "http_api_requests": round(http_api / n, 2),
        "lambda_invocations": round(sum(invocations.values()) / n, 2),
        "filtered_invocations": mean(filtered),
        "http_errors": dict(http_errors),
        "functions": by_function,
        "dial_ms": [round(w.dial_seconds * 1000, 1) for w in windows if w.dial_seconds is not None],
    }


def count_requests(running: Running, *, runs: int = 3, schedule_every: float | None = None) -> dict[str, Any]:
    """Every scenario, `runs` times each, one call at a time; the first call of all is reported as cold."""
    results: dict[str, Any] = {"scenarios": {}, "missing": {}}
    functions = set(running.sandbox.functions)
    with CallbackReceiver().serving() as receiver:
        built = scenarios(receiver.url)
        baseline = _scheduler_baseline(running, wait=max(2.5, 2.2 * (schedule_every or 0)))
        results["scheduler_idle_run"] = baseline
        cold = run_one(running, built["immediate answered"](), receiver=receiver)
        results["cold_first_call"] = per_call([cold], baseline)
        for name, make in built.items():
            if name == "scheduled" and SCHEDULER not in functions:
                results["missing"][name] = "no SchedulerFunction in template.yaml: scheduled calls are never dispatched"
                continue
            windows = [run_one(running, make(), receiver=receiver) for _ in range(runs)]
            result = per_call(windows, baseline)
            if name == "scheduled":  # accepted → dialed includes the wait for call_date here
                result.pop("dial_ms")
            if name == "with callback":
                result["callbacks_received"] = len(receiver.received)
                if NOTIFIER not in functions:
                    results["missing"][name] = "no NotifierFunction in template.yaml: the callback_url is never called"
            results["scenarios"][name] = result
    return results
