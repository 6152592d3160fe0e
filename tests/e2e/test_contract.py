"""Contracts the issues spell out, checked from outside over HTTP as another team's client checks them: a 400 that
names every problem at once through the sandbox's gateway, and a call not dialed yet (a near `call_date`, a retry
waiting) cancelled by `DELETE /pcall/calls/{callid}` and notified once in the documented shape.

The simulated carrier decides by the number's last digit: 2 is busy (tests/e2e/test_sandbox.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.conftest import Receiver, RunningSandbox

pytestmark = pytest.mark.e2e
PLAY = "http://example.com/a.wav"
# Every time the API and the callbacks give: ISO 8601, UTC, with milliseconds (README, "Outcome callbacks").
TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
CALLBACK_FIELDS = {
    "event_id", "callid", "status", "answered_by", "billed_seconds", "from", "to", "call_date", "started_at",
    "answered_at", "ended_at", "recording_url", "digits", "sms_status", "error_code", "error_desc", "campaign",
    "attempts", "metadata",
}  # fmt: skip


def test_a_listing_names_every_problem_of_its_query_at_once(sandbox: RunningSandbox) -> None:
    # given: a misspelt filter, a limit out of range (checked before the route runs), a bad status and date
    query = "stauts=FAILED&limit=0&status=DONE&since=yesterday"

    with sandbox.client() as client:
        response = client.get(f"/pcall/calls?{query}")

    assert response.status_code == 400, response.text
    data = response.json()["data"]
    assert data["code"] == 400
    assert sorted(e["field"] for e in data["errors"]) == ["limit", "since", "status", "stauts"]
    assert data["code_desc"] == "; ".join(f"{e['field']}: {e['message']}" for e in data["errors"])


def _get(sandbox: RunningSandbox, callid: str) -> dict[str, Any]:
    with sandbox.client() as client:
        call: dict[str, Any] = client.get(f"/pcall/calls/{callid}").json()["data"]["call"]
    return call


def _wait_status(sandbox: RunningSandbox, callid: str, status: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        call = _get(sandbox, callid)
        if call["status"] == status:
            return call
        time.sleep(0.1)
    raise AssertionError(f"{callid} never reached {status}: {_get(sandbox, callid)['status']}")


def _for_call(callid: str) -> Callable[[dict[str, Any]], bool]:
    return lambda request: request["form"].get("callid") == callid


def test_calls_not_dialed_yet_are_cancelled_by_delete_and_notified_once(
    sandbox: RunningSandbox, receiver: Receiver
) -> None:
    # given: a call two minutes ahead (near enough to go straight to the queue with a delay) ...
    near = (datetime.now(UTC) + timedelta(minutes=2)).strftime("%Y-%m-%d %H:%M")
    with sandbox.client() as client:
        at_near = {"to": "12812345670", "answer_play": PLAY, "call_date": near, "callback_url": receiver.url}
        dated = client.post("/pcall/call", data=at_near).json()["data"]["callid"]
        # ... and a busy number with a retry an hour after its first attempt
        retried = client.post(
            "/pcall/call",
            data={
                "to": "12812345672",
                "answer_play": PLAY,
                "retry_attempts": "1",
                "retry_interval": "3600",
                "callback_url": receiver.url,
            },
        ).json()["data"]["callid"]
    waiting = _wait_status(sandbox, retried, "RETRY_WAIT")

    # then: the dated call reads SCHEDULED however near its time; the other waits with its next attempt's time
    assert _get(sandbox, dated)["status"] == "SCHEDULED"
    assert TIME.fullmatch(waiting["next_attempt_at"]), waiting["next_attempt_at"]
    assert [a["attempt"] for a in waiting["attempts"]] == [1]
    with sandbox.client() as client:
        listed = {c["callid"] for c in client.get("/pcall/scheduled", params={"limit": 100}).json()["data"]["calls"]}
    assert {dated, retried} <= listed

    # when: both are cancelled with DELETE /pcall/calls/{callid}
    with sandbox.client() as client:
        answers = [client.delete(f"/pcall/calls/{callid}") for callid in (dated, retried)]

    # then: 200 with the call CANCELED, never dialed (again), and each notified once, in the documented shape
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"]["call"]["status"] == "CANCELED"
    callbacks = {}
    for callid in (dated, retried):
        request = receiver.wait_for(_for_call(callid))
        assert request["headers"]["User-Agent"] == "callbridge-notifier/1.0"
        assert request["headers"]["X-Callbridge-Event-Id"] == f"{callid}.CANCELED"
        assert set(request["form"]) == CALLBACK_FIELDS
        callbacks[callid] = request["form"]
    assert (callbacks[dated]["status"], callbacks[dated]["attempts"]) == ("CANCELED", "0")
    assert TIME.fullmatch(callbacks[dated]["call_date"]), callbacks[dated]
    assert (callbacks[retried]["status"], callbacks[retried]["attempts"]) == ("CANCELED", "1")
    assert callbacks[retried]["call_date"] == ""
    # the one cancelled between its attempts reports its attempt's outcome as its own (no code of its own)
    (first,) = waiting["attempts"]
    outcome = ("answered_by", "started_at", "answered_at", "ended_at", "error_code", "error_desc")
    assert {f: callbacks[retried][f] for f in outcome} == {f: first[f] or "" for f in outcome}
    assert first["started_at"]
    for form in callbacks.values():
        assert form["event_id"] == f"{form['callid']}.CANCELED"
        assert TIME.fullmatch(form["ended_at"]), form
    with sandbox.client() as client:
        assert client.delete(f"/pcall/calls/{dated}").status_code == 409  # already final
        assert client.delete(f"/pcall/scheduled/{retried}").status_code == 409
    time.sleep(1)  # a second for a duplicate to show up: there must be none
    assert sorted(r["form"]["callid"] for r in receiver.requests) == sorted([dated, retried])
    assert len(_get(sandbox, retried)["attempts"]) == 1
