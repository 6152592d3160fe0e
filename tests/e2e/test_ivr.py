"""IVR menus end to end: menus created over HTTP, calls placed with answer_ivr, the simulated person pressing keys.

The sandbox is started with `--press 1`: at every <Gather> the person presses 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Receiver, RunningSandbox, start_sandbox, stop_sandbox

pytestmark = pytest.mark.e2e

SALES = {
    "prompt": {"speak": "Sales. Press 1 to hear our hours.", "speak_lang": "en-US"},
    "options": {"1": {"action": "say", "speak": "We are open nine to five. Goodbye.", "speak_lang": "en-US"}},
}
MAIN = {
    "prompt": {"tts": "Welcome. Press 1 for sales.", "tts_voice": "en-US_AllisonVoice"},
    "options": {"1": {"action": "menu", "menu": "sales"}},
    "timeout": 3,
}
ONLY_TWO = {
    "prompt": {"speak": "Press 2 to confirm.", "speak_lang": "en-US"},
    "options": {"2": {"action": "say", "speak": "Confirmed.", "speak_lang": "en-US"}},
    "retries": 2,
    "invalid": {"speak": "Sorry, that is not an option.", "speak_lang": "en-US"},
}


@pytest.fixture(scope="module")
def pressing_one() -> Iterator[RunningSandbox]:
    running = start_sandbox("--speed", "20", "--press", "1")
    yield running
    stop_sandbox(running)


def put_menu(sandbox: RunningSandbox, code: str, menu: dict[str, Any]) -> dict[str, Any]:
    with sandbox.client() as client:
        response = client.put(f"/pcall/ivr/{code}", json=menu)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def place(sandbox: RunningSandbox, **params: str) -> str:
    with sandbox.client() as client:
        response = client.post("/pcall/call", data=params)
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["callid"])


def key_presses(call: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (e["detail"]["menu"], e["detail"]["digit"], e["detail"]["action"])
        for e in call["timeline"]
        if e["event"] == "ivr.digits"
    ]


def test_the_person_walks_a_two_level_menu(pressing_one: RunningSandbox, receiver: Receiver) -> None:
    # given two menus, created over HTTP (the target first)
    assert put_menu(pressing_one, "sales", SALES)["created"] is True
    assert put_menu(pressing_one, "main", MAIN)["menu"]["options"] == {"1": {"action": "menu", "menu": "sales"}}

    # when a person answers a call with answer_ivr=main and presses 1 at each menu
    callid = place(
        pressing_one,
        to="17134567890",
        answer_play="https://example.com/hello.wav",
        answer_ivr="main",
        callback_url=receiver.url,
    )
    call = pressing_one.wait_final(callid)

    # then the call completed with both key presses, in order, across the menus
    assert call["status"] == "COMPLETED", call
    assert call["answered_by"] == "Person"
    assert call["digits"] == "11"
    assert key_presses(call) == [("main", "1", "menu"), ("sales", "1", "say")]
    # and the outcome callback carries them too
    callback = receiver.wait_for(lambda r: r["form"].get("callid") == callid)
    assert callback["form"]["status"] == "COMPLETED"
    assert callback["form"]["digits"] == "11"


def test_a_wrong_key_is_retried_then_the_call_goes_on(pressing_one: RunningSandbox) -> None:
    put_menu(pressing_one, "confirm", ONLY_TWO)

    call = pressing_one.wait_final(place(pressing_one, to="17134567890", answer_ivr="confirm"))

    # 1 is no option: the menu is presented three times (two retries), then the seed flow ends the call
    assert call["status"] == "COMPLETED", call
    assert call["digits"] == "111"
    assert key_presses(call) == [("confirm", "1", "invalid")] * 3
    assert [e["detail"]["reason"] for e in call["timeline"] if e["event"] == "ivr.ended"] == ["invalid"]


def test_an_unknown_menu_is_refused_over_http(pressing_one: RunningSandbox) -> None:
    with pressing_one.client() as client:
        response = client.post("/pcall/call", data={"to": "17134567890", "answer_ivr": "nope"})

    assert response.status_code == 400
    assert response.json()["data"]["errors"] == [
        {"field": "answer_ivr", "message": "unknown IVR menu code 'nope' for this account"}
    ]
