"""Call policies end to end, over HTTP against the sandbox: a busy number retried to its last attempt with one
callback, a call held to its calling window, the do-not-call list (a refusal, and a scheduled call cancelled), an
opt-out by keypress, metadata round-tripping to the callback, and a ringing and an in-progress call hung up.

The simulated carrier decides by the number's last digit: 2 is busy, 0 is a person (tests/e2e/test_sandbox.py). Each
test uses its own numbers: the do-not-call list lives as long as the sandbox.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest

from tests.e2e.conftest import Receiver, RunningSandbox, start_sandbox, stop_sandbox

pytestmark = pytest.mark.e2e
PLAY = "http://example.com/a.wav"


def post_call(sandbox: RunningSandbox, **params: Any) -> dict[str, Any]:
    with sandbox.client() as client:
        response = client.post("/pcall/call", json=params)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def get_call(sandbox: RunningSandbox, callid: str) -> dict[str, Any]:
    with sandbox.client() as client:
        call: dict[str, Any] = client.get(f"/pcall/calls/{callid}").json()["data"]["call"]
    return call


def wait_for(sandbox: RunningSandbox, callid: str, statuses: set[str], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        call = get_call(sandbox, callid)
        if call["status"] in statuses:
            return call
        time.sleep(0.1)
    raise AssertionError(f"{callid} never reached {statuses}: {get_call(sandbox, callid)['status']}")


def scheduled_ids(sandbox: RunningSandbox) -> list[str]:
    with sandbox.client() as client:
        return [c["callid"] for c in client.get("/pcall/scheduled", params={"limit": 100}).json()["data"]["calls"]]


OUTCOME = ("answered_by", "started_at", "answered_at", "ended_at", "error_code", "error_desc")


def listed(sandbox: RunningSandbox, callid: str) -> list[dict[str, Any]]:
    """The call as GET /pcall/calls and GET /pcall/scheduled list it."""
    found = []
    with sandbox.client() as client:
        for path in ("/pcall/calls", "/pcall/scheduled"):
            calls = client.get(path, params={"limit": 100}).json()["data"]["calls"]
            found += [c for c in calls if c["callid"] == callid]
    assert len(found) == 2, found
    return found


def callbacks_for(receiver: Receiver, callid: str) -> list[dict[str, str]]:
    return [r["form"] for r in receiver.requests if r["form"].get("callid") == callid]


def test_a_busy_number_is_retried_to_its_last_attempt_with_one_callback(
    sandbox: RunningSandbox, receiver: Receiver
) -> None:
    callid = post_call(
        sandbox,
        to="17134560012",
        answer_play=PLAY,
        retry_attempts="1",
        retry_interval="30",
        callback_url=receiver.url,
    )["callid"]

    # the first attempt is busy: the call waits, listed as scheduled, and nobody is told yet
    waiting = wait_for(sandbox, callid, {"RETRY_WAIT"}, timeout=30)
    assert waiting["next_attempt_at"] is not None
    (first,) = waiting["attempts"]
    assert first["status"] == "BUSY"
    assert callid in scheduled_ids(sandbox)
    assert callbacks_for(receiver, callid) == []
    # ... and shows its busy attempt's outcome as its own, wherever it is shown (the seconds: the sum, none)
    assert first["started_at"] is not None
    assert first["ended_at"] is not None
    assert (first["error_code"], first["answered_by"], first["answered_at"]) == ("SIP 486", "", None)
    for shown in (waiting, *listed(sandbox, callid)):
        assert shown["status"] == "RETRY_WAIT"
        assert {f: shown[f] for f in OUTCOME} == {f: first[f] for f in OUTCOME}
        assert shown["billed_seconds"] == 0

    # the second, last attempt is busy too: that is the outcome, told once
    final = sandbox.wait_final(callid, timeout=120)
    assert final["status"] == "BUSY"
    assert [(a["attempt"], a["status"]) for a in final["attempts"]] == [(1, "BUSY"), (2, "BUSY")]
    second_start = datetime.fromisoformat(final["attempts"][1]["started_at"])
    first_end = datetime.fromisoformat(final["attempts"][0]["ended_at"])
    assert second_start - first_end >= timedelta(seconds=30)
    receiver.wait_for(lambda r: r["form"].get("callid") == callid)
    time.sleep(1)  # a second callback would have come by now
    (callback,) = callbacks_for(receiver, callid)
    assert (callback["status"], callback["attempts"]) == ("BUSY", "2")


def test_an_unreachable_number_is_retried_on_failed(sandbox: RunningSandbox) -> None:
    # the simulator's digit 4 is a number unreachable now (SIP 480), which retry_on=FAILED tries again
    callid = post_call(
        sandbox, to="17134560014", answer_play=PLAY, retry_attempts="1", retry_interval="60", retry_on="FAILED"
    )["callid"]

    waiting = wait_for(sandbox, callid, {"RETRY_WAIT"}, timeout=30)

    assert [(a["status"], a["error_code"]) for a in waiting["attempts"]] == [("FAILED", "SIP 480")]
    with sandbox.client() as client:
        assert client.delete(f"/pcall/scheduled/{callid}").status_code == 200


def test_a_call_is_held_to_its_calling_window(sandbox: RunningSandbox) -> None:
    # a window that opens at the start of a coming minute, at least 20 s away (time to see the call held), in UTC
    now = datetime.now(UTC)
    opening = (now + timedelta(seconds=80)).replace(second=0, microsecond=0)
    closing = opening + timedelta(minutes=10)
    window = f"{opening:%H:%M}-{closing:%H:%M}"
    callid = post_call(sandbox, to="17134560020", answer_play=PLAY, call_window=window, recipient_timezone="UTC")[
        "callid"
    ]

    held = get_call(sandbox, callid)
    assert held["status"] == "SCHEDULED"
    assert held["next_attempt_at"] == opening.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert callid in scheduled_ids(sandbox)

    final = sandbox.wait_final(callid, timeout=200)
    assert final["status"] == "COMPLETED"
    assert datetime.fromisoformat(final["started_at"]) >= opening  # never rang before the window opened


def test_a_suppressed_number_is_refused_and_a_scheduled_call_to_it_cancelled(
    sandbox: RunningSandbox, receiver: Receiver
) -> None:
    with sandbox.client() as client:
        listed = client.put(f"/pcall/suppressions/{quote('+1 (713) 456-0030')}", json={"reason": "asked by mail"})
        assert listed.status_code == 200, listed.text
        assert listed.json()["data"]["created"] is True
        refused = client.post("/pcall/call", data={"to": "17134560030", "answer_play": PLAY})
        assert refused.status_code == 400
        assert refused.json()["data"]["errors"] == [{"field": "to", "message": "is on your do-not-call list"}]

        due = (datetime.now(UTC) + timedelta(seconds=20)).replace(microsecond=0)
        accepted = client.post(
            "/pcall/call",
            data={"to": "17134560040", "answer_play": PLAY, "call_date": due.isoformat(), "callback_url": receiver.url},
        )
        assert accepted.status_code == 200, accepted.text
        callid = accepted.json()["data"]["callid"]
        # listed after the call was accepted, before it is dialed
        bulk = client.post(
            "/pcall/suppressions",
            content=b"number,reason\n17134560040,changed their mind\n",
            headers={"Content-Type": "text/csv"},
        )
        assert bulk.json()["data"]["added"] == 1

    final = sandbox.wait_final(callid, timeout=60)
    assert (final["status"], final["error_code"]) == ("CANCELED", "suppressed")
    assert final["attempts"] == []  # never dialed
    callback = receiver.wait_for(lambda r: r["form"].get("callid") == callid)
    assert (callback["form"]["status"], callback["form"]["error_code"]) == ("CANCELED", "suppressed")


def test_an_opt_out_by_keypress(sandbox: RunningSandbox) -> None:
    # the sandbox's simulated person presses 1 at every menu
    menu = {
        "prompt": {"speak": "Press 1 to stop these calls.", "speak_lang": "en-US"},
        "options": {"1": {"action": "opt_out", "speak": "You will not be called again.", "speak_lang": "en-US"}},
    }
    with sandbox.client() as client:
        assert client.put("/pcall/ivr/stop-calls", json=menu).status_code == 200
    callid = post_call(sandbox, to="17134560050", answer_ivr="stop-calls")["callid"]

    final = sandbox.wait_final(callid, timeout=60)
    assert final["digits"] == "1"
    assert [e["detail"]["action"] for e in final["timeline"] if e["event"] == "ivr.digits"] == ["opt_out"]
    with sandbox.client() as client:
        entry = client.get("/pcall/suppressions/17134560050")
        assert entry.status_code == 200, entry.text
        assert entry.json()["data"]["suppression"] | {"created_at": ""} == {
            "number": "+17134560050",
            "reason": "opt-out by keypress",
            "callid": callid,
            "created_at": "",
        }
        again = client.post("/pcall/call", data={"to": "17134560050", "answer_play": PLAY})
        assert again.status_code == 400


def test_metadata_round_trips_to_the_callback(sandbox: RunningSandbox, receiver: Receiver) -> None:
    metadata = {"order": "A-17", "customer": "Zoë Ångström"}
    accepted = post_call(sandbox, to="17134560060", answer_play=PLAY, metadata=metadata, callback_url=receiver.url)
    assert accepted["metadata"] == metadata
    callid = accepted["callid"]

    callback = receiver.wait_for(lambda r: r["form"].get("callid") == callid, timeout=60)
    assert json.loads(callback["form"]["metadata"]) == metadata
    assert callback["form"]["attempts"] == "1"
    assert get_call(sandbox, callid)["metadata"] == metadata


@pytest.fixture(scope="module")
def real_time() -> Iterator[RunningSandbox]:
    """A sandbox whose simulated calls take real time (a 4 s ring), so a test can act while one rings."""
    running = start_sandbox("--speed", "1", "--schedule-every", "1")
    yield running
    stop_sandbox(running)


def test_a_ringing_and_an_in_progress_call_are_hung_up(real_time: RunningSandbox) -> None:
    long_text = "This message is long enough to be interrupted. " * 8
    # a number nobody answers rings until the ring timeout: the hang-up finds it ringing however slow the machine
    ringing = post_call(real_time, to="17134560073", answer_play=PLAY)["callid"]
    live = post_call(real_time, to="17134560080", answer_speak=long_text, answer_speak_lang="en-US")["callid"]

    # callbridge asks the carrier for the final status callback only: a ringing call reads DIALING until then
    deadline = time.monotonic() + 30
    while not get_call(real_time, ringing)["carrier_call_id"]:
        assert time.monotonic() < deadline, "the carrier never accepted the call"
        time.sleep(0.1)
    time.sleep(1.5)  # the simulated carrier sets the call up for a second, then it rings
    with real_time.client() as client:
        canceled = client.delete(f"/pcall/calls/{ringing}")
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["data"]["call"]["status"] == "CANCELED"

    wait_for(real_time, live, {"IN_PROGRESS"}, timeout=30)  # the carrier asked for its flow: answered
    time.sleep(2)
    with real_time.client() as client:
        hung_up = client.delete(f"/pcall/calls/{live}")
        assert hung_up.status_code == 200, hung_up.text
        again = client.delete(f"/pcall/calls/{live}")
    call = hung_up.json()["data"]["call"]
    assert call["status"] == "COMPLETED"
    assert call["billed_seconds"] >= 2
    assert again.status_code == 409
    # the carrier's own callbacks afterwards change nothing
    assert real_time.wait_final(ringing)["status"] == "CANCELED"
    final = real_time.wait_final(live)
    assert (final["status"], final["answered_by"]) == ("COMPLETED", "Person")
    assert final["billed_seconds"] == call["billed_seconds"]
