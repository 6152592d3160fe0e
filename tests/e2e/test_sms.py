"""The voicemail SMS end to end: `sms_status` follows the carrier's message status callbacks to the handset."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.conftest import RunningSandbox

pytestmark = pytest.mark.e2e


def sms_of(sandbox: RunningSandbox, callid: str, until: set[str], timeout: float = 30) -> dict[str, Any]:
    """The call once its SMS status is one of `until`."""
    deadline = time.monotonic() + timeout
    with sandbox.client() as client:
        while True:
            call = dict(client.get(f"/pcall/calls/{callid}").json()["data"]["call"])
            if call["sms_status"] in until or time.monotonic() > deadline:
                return call
            time.sleep(0.2)


def test_the_voicemail_sms_status_reaches_delivered(sandbox: RunningSandbox) -> None:
    # given: a call a voicemail answers (the simulator's numbers ending in 1), with the vendor's SMS option
    params = {"to": "17134567891", "answer_play": "https://example.com/a.wav", "answermachine_sms": "Call us back"}
    with sandbox.client() as client:
        response = client.post("/pcall/call", data=params)
    assert response.status_code == 200, response.text
    callid = response.json()["data"]["callid"]
    sandbox.wait_final(callid)

    # when: the carrier reports the message's progress
    call = sms_of(sandbox, callid, {"delivered"})

    # then: the call's sms_status followed it to the handset
    assert call["answered_by"] == "Machine"
    assert call["sms_status"] == "delivered"
    statuses = [e["detail"]["MessageStatus"] for e in call["timeline"] if e["event"] == "sms.status"]
    assert statuses == ["sent", "delivered"]
