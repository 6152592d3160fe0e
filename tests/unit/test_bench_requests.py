"""The requests a call causes are counted to the call; the scheduler's idle runs are a fixed cost, not per call."""

from __future__ import annotations

from collections import Counter

from bench.harness import Invocation
from bench.requests_count import SCHEDULER, Window, per_call


def scheduler_run(**requests: float) -> Invocation:
    counted = Counter({"dynamodb:Query": 16, "sqs:ReceiveMessage(empty)": 1})
    counted.update({k.replace("_", ":", 1): int(v) for k, v in requests.items()})
    return Invocation(SCHEDULER, "schedule", 0, 0.0, 0.4, counted, Counter({"CallsTable:read": 8}))


def window(*invocations: Invocation) -> Window:
    return Window(invocations=list(invocations), outside=Counter(), dial_seconds=None, seconds=1.0)


def placer() -> Invocation:
    return Invocation("PlacerFunction", "sqs", 1, 0.0, 0.1, Counter({"dynamodb:UpdateItem": 3}))


def test_idle_scheduler_runs_are_not_counted_to_the_calls_even_without_a_measured_baseline() -> None:
    # given two calls whose windows each saw idle scheduler runs (the idle baseline could not be measured apart)
    windows = [window(placer(), scheduler_run(), scheduler_run()), window(placer(), scheduler_run())]

    # when they are counted per call
    result = per_call(windows, None)

    # then only the placer's requests are the calls'
    assert result["aws_requests"] == 3
    assert SCHEDULER not in result["functions"]
    assert "CallsTable:read" not in result["dynamodb_units"]


def test_a_scheduler_run_that_works_for_a_call_counts_only_what_it_adds() -> None:
    # given a window with an idle run and a run that sent the call's message
    windows = [window(placer(), scheduler_run(), scheduler_run(sqs_SendMessage=1))]

    result = per_call(windows, None)

    assert result["functions"][SCHEDULER]["requests"] == {"sqs:SendMessage": 1}
    assert result["aws_requests"] == 4
