"""The dial-tone bridge end to end, against a carrier simulator that refuses what Twilio refuses.

`to` waits in a conference hearing answer_dial_tone_url while callbridge places the answer_dial_to leg from a
number the account owns; when that leg is busy or unanswered, `to` hears a message and the call ends.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import RunningSandbox

pytestmark = pytest.mark.e2e

TONE = "https://example.com/ringback.wav"
SIMULATED_PATIENCE = 120  # seconds a caller alone in a conference waits before hanging up (the simulator's rule)


def bridge(sandbox: RunningSandbox, to: str, dial_to: str) -> dict[str, Any]:
    params = {"to": to, "answer_play": "https://example.com/a.wav", "answer_dial_to": dial_to}
    with sandbox.client() as client:
        response = client.post("/pcall/call", data={**params, "answer_dial_tone_url": TONE})
    assert response.status_code == 200, response.text
    callid = response.json()["data"]["callid"]
    sandbox.wait_final(callid, timeout=90)
    with sandbox.client() as client:
        return dict(client.get(f"/pcall/calls/{callid}").json()["data"]["call"])


def events(call: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [e["detail"] for e in call["timeline"] if e["event"] == name]


def test_the_bridge_connects_from_the_accounts_number(sandbox: RunningSandbox) -> None:
    call = bridge(sandbox, "17134567890", "18323456789")

    assert (call["status"], call["answered_by"]) == ("COMPLETED", "Person")
    (leg,) = events(call, "dial.second_leg")
    assert leg.get("sid", "").startswith("CA"), leg  # the carrier accepted the second leg
    assert leg["from"] == "+12815550100"  # the account's caller id, not `to`'s number
    assert call["dial_status"] == "completed"
    assert events(call, "dial.not_bridged") == []


@pytest.mark.parametrize(("dial_to", "leg_status"), [("18323456782", "busy"), ("18323456783", "no-answer")])
def test_a_busy_or_unanswered_second_leg_ends_the_call_with_a_message(
    sandbox: RunningSandbox, dial_to: str, leg_status: str
) -> None:
    call = bridge(sandbox, "17134567890", dial_to)

    assert (call["status"], call["answered_by"]) == ("COMPLETED", "Person")
    assert call["dial_status"] == leg_status
    assert [e["reason"] for e in events(call, "dial.not_bridged")] == [leg_status]
    # ended by callbridge, well before the simulated person would have given up alone in the conference
    assert call["billed_seconds"] < SIMULATED_PATIENCE
