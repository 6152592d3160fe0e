"""Time budgets add up: every wait and outside request on a path fits its function's Timeout and its caller's."""

from __future__ import annotations

from typing import Any

import pytest
from callbridge.adapters.aws import DEADLINE_MARGIN_SECONDS, attempt_seconds
from callbridge.adapters.pacing import LATE_AFTER
from callbridge.carrier.twilio import REQUEST_SECONDS, WEBHOOK_TIMEOUT, default_timeout
from callbridge.logic.webhooks import SECOND_LEG_PACING_SECONDS

from sandbox.template import load_template

# What the invocation must still have when the carrier answers, for the write that records the answer: the AWS
# clients start no attempt that could end later than DEADLINE_MARGIN_SECONDS before the function's timeout
# (adapters/aws.py), so one attempt's worst case and that margin, however fast DynamoDB answers in fact.
STORAGE_SECONDS = attempt_seconds() + DEADLINE_MARGIN_SECONDS


def _timeout(function: str) -> float:
    template: dict[str, Any] = load_template()
    props = template["Resources"][function]["Properties"]
    return float(props.get("Timeout", template["Globals"]["Function"]["Timeout"]))


def test_one_carrier_request_is_bounded_by_its_timeouts() -> None:
    timeout = default_timeout()
    parts = (timeout.pool, timeout.connect, timeout.write, timeout.read)
    assert all(part is not None for part in parts)
    assert sum(p for p in parts if p is not None) == pytest.approx(REQUEST_SECONDS)
    # Twilio answers a create within a second or two: a 10-s ceiling leaves room for a slow answer
    assert REQUEST_SECONDS <= 10


def test_the_dial_tone_bridge_fits_the_webhooks_timeout_and_the_carriers() -> None:
    # the hold webhook waits for a pacing slot, then dials the second leg, then stores it
    path = SECOND_LEG_PACING_SECONDS + REQUEST_SECONDS + STORAGE_SECONDS
    assert path <= _timeout("WebhooksFunction")
    # Lambda ends the function before the carrier gives up on the webhook, so the carrier never retries a
    # webhook that is still running
    assert _timeout("WebhooksFunction") < WEBHOOK_TIMEOUT


def test_the_placer_keeps_enough_for_its_carrier_request_after_waiting_for_a_slot() -> None:
    from functions.placer.app import SAFETY_SECONDS

    # its slot begins by the horizon, the request leaves at most LATE_AFTER later (or not at all)
    assert SAFETY_SECONDS >= LATE_AFTER + REQUEST_SECONDS + STORAGE_SECONDS
    # and still has time to wait for a slot: at CarrierCallsPerSecond=1 the next slot is a second away
    assert _timeout("PlacerFunction") - SAFETY_SECONDS >= 5


def test_the_scheduler_stops_starting_work_while_a_carrier_look_up_still_fits() -> None:
    from functions.scheduler.app import SAFETY_SECONDS

    # a reconciliation look-up started just before the run's deadline still ends, and is stored, in time
    assert SAFETY_SECONDS >= REQUEST_SECONDS + STORAGE_SECONDS
    assert _timeout("SchedulerFunction") - SAFETY_SECONDS >= 30
