"""IVR menus: the model's rules (each broken one named as a field), what a key press means, menus reachable."""

from __future__ import annotations

import json
from typing import Any

import pytest
from callbridge.domain import requests as call_requests
from callbridge.domain.errors import InvalidRequest
from callbridge.domain.ivr import (
    ACTIONS,
    DIGITS,
    MAX_BODY,
    Chosen,
    DialAction,
    GiveUp,
    IvrMenu,
    MenuAction,
    Prompt,
    RepeatAction,
    Retry,
    SayAction,
    from_snapshot,
    parse_menu,
    pressed_keys,
    reachable,
    resolve,
    snapshot,
    valid_code,
)
from callbridge.domain.requests import IVR_CODE
from hypothesis import given
from hypothesis import strategies as st

SPEAK = {"speak": "Press 1 for sales, 2 for support.", "speak_lang": "en-US"}
MENU: dict[str, Any] = {
    "prompt": SPEAK,
    "options": {
        "1": {"action": "menu", "menu": "sales"},
        "2": {"action": "dial", "number": "1 (832) 345-6789", "caller_id": "12815550100"},
        "3": {"action": "say", "tts": "Goodbye.", "tts_voice": "en-US_AllisonVoice"},
        "*": {"action": "repeat"},
        "#": {"action": "say", "play": "https://example.com/bye.wav"},
    },
    "timeout": 7,
    "retries": 1,
    "invalid": {"speak": "That is not an option.", "speak_lang": "en-gb"},
    "no_input": {"play": "https://example.com/hello.wav"},
}


def problems(data: Any) -> dict[str, str]:
    with pytest.raises(InvalidRequest) as caught:
        parse_menu(data)
    return {p.field: p.message for p in caught.value.problems}


def with_(**changes: Any) -> dict[str, Any]:
    return {**MENU, **changes}


def option(action: dict[str, Any]) -> dict[str, Any]:
    return with_(options={"1": action})


# --- a valid menu


def test_a_menu_with_every_kind_of_option_is_normalized() -> None:
    menu = parse_menu(MENU)

    assert menu.prompt == Prompt(speak=SPEAK["speak"], speak_lang="en-US")
    assert menu.options["1"] == MenuAction(action="menu", menu="sales")
    assert menu.options["2"] == DialAction(action="dial", number="+18323456789", caller_id="+12815550100")
    assert menu.options["3"] == SayAction(action="say", tts="Goodbye.", tts_voice="Joanna")  # the seed's IBM name
    assert menu.options["*"] == RepeatAction(action="repeat")
    assert menu.options["#"] == SayAction(action="say", play="https://example.com/bye.wav")
    assert (menu.timeout, menu.retries) == (7, 1)
    assert menu.invalid == Prompt(speak="That is not an option.", speak_lang="en-GB")
    assert menu.targets() == {"sales"}


def test_json_text_and_bytes_are_accepted() -> None:
    assert parse_menu(json.dumps(MENU)) == parse_menu(json.dumps(MENU).encode()) == parse_menu(MENU)


def test_defaults() -> None:
    menu = parse_menu({"prompt": {"play": "https://example.com/a.wav"}, "options": {"0": {"action": "repeat"}}})

    assert (menu.timeout, menu.retries, menu.invalid, menu.no_input) == (5, 2, None, None)


def test_the_code_shape_is_answer_ivrs() -> None:
    assert IVR_CODE is call_requests.IVR_CODE  # one rule for a menu's code and answer_ivr
    assert valid_code("main-menu_2")
    assert not valid_code("")
    assert not valid_code("a" * 65)
    assert not valid_code("no spaces")


# --- every rule, named


@pytest.mark.parametrize(
    ("prompt", "field", "message"),
    [
        ({}, "prompt", "exactly one of play, speak"),
        ({"play": "https://example.com/a.wav", **SPEAK}, "prompt", "exactly one of"),
        ({"speak": "Hi"}, "prompt.speak_lang", "required with speak"),
        ({"tts": "Hi"}, "prompt.tts_voice", "required with tts"),
        ({"play": "https://example.com/a.wav", "speak_lang": "en-US"}, "prompt.speak_lang", "only valid together"),
        ({"play": "https://example.com/a.wav", "tts_voice": "Joanna"}, "prompt.tts_voice", "only valid together"),
        ({"speak": "Hi", "speak_lang": "xx-XX"}, "prompt.speak_lang", "must be one of en-GB"),
        ({"tts": "Hi", "tts_voice": "Nobody"}, "prompt.tts_voice", "Polly voice"),
        ({"play": "ftp://example.com/a.wav"}, "prompt.play", "http:// or https://"),
        ({"play": "https://example.com/a.wav", "loop": 2}, "prompt.loop", "unknown field"),
        ({"speak": "x" * 3001, "speak_lang": "en-US"}, "prompt.speak", "at most 3000"),
    ],
)
def test_prompt_rules(prompt: dict[str, Any], field: str, message: str) -> None:
    found = problems(with_(prompt=prompt))

    assert field in found, found
    assert message in found[field]


@pytest.mark.parametrize("key", ["x", "10", "", " ", "A", "+"])
def test_options_are_keyed_by_one_keypad_key(key: str) -> None:
    found = problems(with_(options={key: {"action": "repeat"}}))

    assert f"options.{key}" in found, found
    assert "0-9, * or #" in found[f"options.{key}"]


@pytest.mark.parametrize(
    ("action", "field", "message"),
    [
        ({"action": "jump"}, "options.1.action", "must be one of say, dial, menu, repeat"),
        ({}, "options.1.action", "required"),
        ({"action": "dial"}, "options.1.number", "required"),
        ({"action": "dial", "number": "123"}, "options.1.number", "international phone number"),
        ({"action": "dial", "number": "18323456789", "caller_id": "x"}, "options.1.caller_id", "international"),
        ({"action": "menu"}, "options.1.menu", "required"),
        ({"action": "menu", "menu": "no spaces"}, "options.1.menu", "1-64 letters"),
        ({"action": "say"}, "options.1", "exactly one of play"),
        ({"action": "say", "speak": "Bye"}, "options.1.speak_lang", "required with speak"),
        ({"action": "repeat", "menu": "x"}, "options.1.menu", "unknown field"),
    ],
)
def test_action_rules(action: dict[str, Any], field: str, message: str) -> None:
    found = problems(option(action))

    assert field in found, found
    assert message in found[field]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": 61}, "timeout"),
        ({"retries": -1}, "retries"),
        ({"retries": 6}, "retries"),
        ({"options": {}}, "options"),
        ({"invalid": {"speak": "Oops"}}, "invalid.speak_lang"),
        ({"no_input": {}}, "no_input"),
        ({"name": "Main"}, "name"),
    ],
)
def test_menu_rules(changes: dict[str, Any], field: str) -> None:
    assert field in problems(with_(**changes))


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"timeout": 0}, "timeout", "must be at least 1"),
        ({"timeout": 61}, "timeout", "must be at most 60"),
        ({"retries": -1}, "retries", "must be at least 0"),
        ({"retries": 6}, "retries", "must be at most 5"),
        ({"retries": True}, "retries", "must be a whole number"),  # not taken as 1
        ({"retries": False}, "retries", "must be a whole number"),
        ({"timeout": True}, "timeout", "must be a whole number"),
        ({"timeout": 2.5}, "timeout", "must be a whole number"),
        ({"timeout": "soon"}, "timeout", "must be a whole number"),
        ({"timeout": None}, "timeout", "must be a whole number"),
        ({"timeout": 1e100}, "timeout", "must be a whole number"),
        ({"timeout": float("nan")}, "timeout", "must be a whole number"),
        ({"options": []}, "options", "must be a JSON object"),
        (
            {"options": {"1": "repeat"}},
            "options.1",
            "must be a JSON object with an action: one of " + ", ".join(ACTIONS),
        ),
        ({"prompt": "Hello"}, "prompt", "must be a JSON object"),
        ({"invalid": "Oops"}, "invalid", "must be a JSON object"),
        ({"prompt": {"speak": 5, "speak_lang": "en-US"}}, "prompt.speak", "must be a string"),
        ({"prompt": {"tts": "x" * 3001, "tts_voice": "Joanna"}}, "prompt.tts", "must be at most 3000 characters"),
        ({"options": {"1": {"action": "dial", "number": 18323456789}}}, "options.1.number", "must be a string"),
        ({"options": {"1": {"action": "menu", "menu": 5}}}, "options.1.menu", "must be a string"),
    ],
)
def test_each_rule_is_worded_by_the_api_not_by_pydantic(changes: dict[str, Any], field: str, message: str) -> None:
    found = problems(with_(**changes))

    assert found == {field: message}


def test_whole_numbers_as_json_numbers_or_their_text_are_accepted() -> None:
    assert (parse_menu(with_(timeout=60, retries=0)).timeout, parse_menu(with_(retries="3")).retries) == (60, 3)


def test_missing_prompt_and_options_are_named() -> None:
    assert problems({}) == {"prompt": "required", "options": "required"}


def test_every_problem_is_reported_at_once() -> None:
    found = problems(with_(timeout=0, retries=9, options={"x": {"action": "repeat"}, "2": {"action": "nope"}}))

    assert {"timeout", "retries", "options.x", "options.2.action"} <= set(found)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "must be a JSON object (UTF-8)"),
        (b"\xff\xfe", "must be a JSON object (UTF-8)"),
        (b"[]", "must be a JSON object"),
        (b'"menu"', "must be a JSON object"),
        (b" " * (MAX_BODY + 1), f"must be at most {MAX_BODY} bytes"),
    ],
)
def test_a_body_that_is_not_a_json_object(body: bytes, message: str) -> None:
    assert problems(body) == {"body": message}


PLAY_A = '{"play": "https://example.com/a.wav"}'
PLAY_B = '{"play": "https://example.com/b.wav"}'
REPEAT = '{"action": "repeat"}'


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (f'{{"prompt": {PLAY_A}, "prompt": {PLAY_B}, "options": {{"1": {REPEAT}}}}}', "prompt"),
        (
            f'{{"prompt": {{"play": "https://example.com/a.wav", "play": "https://example.com/b.wav"}}, '
            f'"options": {{"1": {REPEAT}}}}}',
            "prompt.play",
        ),
        (f'{{"prompt": {PLAY_A}, "options": {{"1": {REPEAT}, "1": {REPEAT}}}}}', "options.1"),
        (
            f'{{"prompt": {PLAY_A}, "options": {{"1": {{"action": "dial", "number": "5", "number": "18323456789"}}}}}}',
            "options.1.number",
        ),
        (f'{{"prompt": {PLAY_A}, "options": {{"1": {REPEAT}}}, "retries": 9, "retries": 1}}', "retries"),
    ],
)
def test_a_key_given_twice_is_refused_not_replaced_by_its_last_value(body: str, field: str) -> None:
    assert problems(body) == {field: "given more than once"}


def test_a_key_given_twice_is_reported_with_every_other_problem() -> None:
    body = f'{{"prompt": {PLAY_A}, "prompt": {PLAY_B}, "options": {{"x": {REPEAT}}}, "timeout": 0}}'

    assert set(problems(body)) == {"prompt", "options.x", "timeout"}


@given(st.text(min_size=1, max_size=2).filter(lambda k: k not in DIGITS))
def test_no_other_key_is_accepted(key: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_menu(with_(options={key: {"action": "repeat"}}))


@given(st.sets(st.sampled_from(list(DIGITS)), min_size=1))
def test_any_set_of_keypad_keys_is_accepted(keys: set[str]) -> None:
    menu = parse_menu(with_(options={k: {"action": "repeat"} for k in keys}))

    assert set(menu.options) == keys


# --- what a key press means

MENU_1 = parse_menu(MENU)


def test_an_option_is_chosen_whatever_the_attempt() -> None:
    assert resolve(MENU_1, "1", 0) == Chosen(MenuAction(action="menu", menu="sales"))
    assert resolve(MENU_1, "*", 1) == Chosen(RepeatAction(action="repeat"))


def test_a_wrong_key_retries_with_the_invalid_prompt_then_gives_up() -> None:
    assert resolve(MENU_1, "7", 0) == Retry(MENU_1.invalid, 1)
    assert resolve(MENU_1, "7", 1) == GiveUp(MENU_1.invalid)


def test_no_key_retries_with_the_no_input_prompt_then_gives_up() -> None:
    assert resolve(MENU_1, "", 0) == Retry(MENU_1.no_input, 1)
    assert resolve(MENU_1, "", 1) == GiveUp(MENU_1.no_input)


def test_without_retries_the_first_miss_gives_up_silently() -> None:
    menu = parse_menu({"prompt": SPEAK, "options": {"1": {"action": "repeat"}}, "retries": 0})

    assert resolve(menu, "", 0) == GiveUp(None)
    assert resolve(menu, "2", 0) == GiveUp(None)


@pytest.mark.parametrize(
    ("raw", "keys"), [("1", "1"), ("#", "#"), ("*1#", "*1#"), ("a1 b", "1"), ("", ""), ("9" * 20, "9" * 8)]
)
def test_pressed_keys_keeps_only_keypad_keys(raw: str, keys: str) -> None:
    assert pressed_keys(raw) == keys


# --- menus reachable from a menu


def goto(*targets: str) -> IvrMenu:
    return parse_menu(
        {"prompt": SPEAK, "options": {str(n): {"action": "menu", "menu": t} for n, t in enumerate(targets)}}
    )


def test_reachable_follows_menus_of_menus_and_survives_cycles() -> None:
    menus = {"a": goto("b", "c"), "b": goto("a", "d"), "c": goto("c"), "d": goto("e")}

    assert reachable("a", menus) == ({"a", "b", "c", "d"}, {"e"})
    assert reachable("c", menus) == ({"c"}, set())
    assert reachable("zz", menus) == (set(), {"zz"})


def test_a_snapshot_round_trips_and_drops_what_no_longer_validates() -> None:
    kept = snapshot({"main": MENU_1, "b": goto("main")})
    assert json.loads(json.dumps(kept)) == kept  # plain JSON values, as a DynamoDB item keeps them

    assert from_snapshot(kept) == {"main": MENU_1, "b": goto("main")}
    assert from_snapshot({**kept, "broken": {"prompt": {}}}) == {"main": MENU_1, "b": goto("main")}
