"""IVR menus as TwiML: presenting a menu, every action, nested menus, retries on no or a wrong key, the size cap."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from callbridge.domain.answered import PERSON
from callbridge.domain.ivr import MAX_STEPS, MAX_TWIML, IvrMenu, parse_menu, resolve
from callbridge.domain.requests import parse_call_request
from callbridge.flow.ivr_twiml import WORST_URLS, gather_url, render_menu, render_next, size_problems
from callbridge.flow.twiml import XML_DECLARATION, FlowUrls, render_answer
from hypothesis import example, given, settings
from hypothesis import strategies as st

Node = tuple[str, dict[str, str], str | None, list[Any]]

URLS = FlowUrls(
    gather="https://hooks.example/carrier/twilio/c1/gather",
    dial_action="https://hooks.example/carrier/twilio/c1/dial",
    hold="https://hooks.example/carrier/twilio/c1/hold",
    conference_name="callbridge-c1",
)
TO = "+17134567890"
MAIN = parse_menu(
    {
        "prompt": {"speak": "Press 1 for sales, 2 for support, star to hear this again.", "speak_lang": "en-US"},
        "options": {
            "1": {"action": "menu", "menu": "sales"},
            "2": {"action": "dial", "number": "18323456789"},
            "*": {"action": "repeat"},
            "#": {"action": "menu", "menu": "gone"},
        },
        "timeout": 8,
        "retries": 2,
        "invalid": {"speak": "That is not an option.", "speak_lang": "en-US"},
        "no_input": {"play": "https://example.com/hello-are-you-there.wav"},
    }
)
SALES = parse_menu(
    {
        "prompt": {"tts": "Sales. Press 2 to hear our hours, 3 to talk to us.", "tts_voice": "Matthew"},
        "options": {
            "2": {"action": "say", "speak": "We are open 9 to 5.", "speak_lang": "en-GB"},
            "3": {"action": "dial", "number": "12815550123", "caller_id": "12815550100"},
            "0": {"action": "menu", "menu": "main"},
        },
        "retries": 0,
    }
)
MENUS = {"main": MAIN, "sales": SALES}
REQUEST = parse_call_request({"to": "17134567890", "answer_ivr": "main"})
WITH_DIAL = parse_call_request({"to": "17134567890", "answer_ivr": "main", "answer_dial_to": "18005550100"})


def node(tag: str, text: str | None = None, children: list[Node] | None = None, **attrs: str) -> Node:
    return (tag, attrs, text, children or [])


def shape(element: ET.Element) -> Node:
    text = element.text if element.text and element.text.strip() else None
    return (element.tag, dict(element.attrib), text, [shape(child) for child in element])


def verbs(document: str) -> list[Node]:
    assert document.startswith(XML_DECLARATION)
    root = ET.fromstring(document.encode("utf-8"))  # noqa: S314 - our own output
    assert root.tag == "Response"
    return [shape(child) for child in root]


def presented(code: str, prompt: Node, *, attempt: int = 0, step: int = 1, timeout: str = "5") -> list[Node]:
    """The two verbs that present a menu: the Gather around its prompt, and the no-input Redirect."""
    url = gather_url(URLS.gather, code, attempt, step)
    gather = node(
        "Gather",
        None,
        [prompt],
        input="dtmf",
        numDigits="1",
        finishOnKey="",
        timeout=timeout,
        action=url,
        method="POST",
    )
    return [gather, node("Redirect", url, method="POST")]


MAIN_PROMPT = node(
    "Say", "Press 1 for sales, 2 for support, star to hear this again.", language="en-US", voice="Polly.Joanna"
)
SALES_PROMPT = node("Say", "Sales. Press 2 to hear our hours, 3 to talk to us.", voice="Polly.Matthew")
INVALID = node("Say", "That is not an option.", language="en-US", voice="Polly.Joanna")
NO_INPUT = node("Play", "https://example.com/hello-are-you-there.wav")


def after(code: str, pressed: str, *, attempt: int = 0, step: int = 1, request: Any = REQUEST) -> list[Node]:
    """What the carrier hears back after `pressed` at presentation `step` of menu `code`."""
    resolution = resolve(MENUS[code], pressed, attempt)
    return verbs(render_next(resolution, code, MENUS, request, URLS, step=step))


# --- presenting a menu


def test_a_menu_is_a_one_key_gather_around_its_prompt_then_a_redirect_for_no_input() -> None:
    assert verbs(render_menu("main", MAIN, URLS)) == presented("main", MAIN_PROMPT, timeout="8")


def test_the_gather_url_names_menu_attempt_and_step() -> None:
    url = gather_url(URLS.gather, "sales", 2, 7)

    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == URLS.gather
    assert parse_qs(parts.query) == {"menu": ["sales"], "try": ["2"], "step": ["7"]}


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ({"play": "https://example.com/menu.wav?a=1&b=2"}, node("Play", "https://example.com/menu.wav?a=1&b=2")),
        ({"speak": "Hola", "speak_lang": "es-ES"}, node("Say", "Hola", language="es-ES", voice="Polly.Conchita")),
        ({"tts": "Hello", "tts_voice": "en-US_AllisonVoice"}, node("Say", "Hello", voice="Polly.Joanna")),
    ],
)
def test_each_kind_of_prompt(prompt: dict[str, str], expected: Node) -> None:
    menu = parse_menu({"prompt": prompt, "options": {"1": {"action": "repeat"}}})

    assert verbs(render_menu("m", menu, URLS))[0][3] == [expected]


def test_the_menu_follows_play_speak_and_tts_and_precedes_answer_dial_to() -> None:
    request = parse_call_request(
        {
            "to": "17134567890",
            "answer_play": "https://example.com/hi.wav",
            "answer_speak": "Hello",
            "answer_speak_lang": "en-US",
            "answer_tts": "A message",
            "answer_tts_voice": "Joanna",
            "answer_ivr": "main",
            "answer_dial_to": "18005550100",
        }
    )
    document = render_answer(request, PERSON, URLS, ivr=render_menu("main", MAIN, URLS))

    assert [v[0] for v in verbs(document)] == ["Play", "Say", "Say", "Gather", "Redirect", "Dial"]
    assert verbs(document)[3:5] == presented("main", MAIN_PROMPT, timeout="8")


def test_text_and_urls_are_escaped() -> None:
    nasty = 'Press 1 <b>now</b> & "quickly" ]]>'
    menu = parse_menu({"prompt": {"speak": nasty, "speak_lang": "en-US"}, "options": {"1": {"action": "repeat"}}})

    document = render_menu("m", menu, URLS)
    assert "<b>" not in document
    assert "&amp;try=0&amp;step=1" in document
    assert verbs(document)[0][3] == [node("Say", nasty, language="en-US", voice="Polly.Joanna")]


# --- every action


def test_menu_goes_to_the_other_menu_with_fresh_retries() -> None:
    assert after("main", "1", attempt=1, step=3) == presented("sales", SALES_PROMPT, step=4)


def test_repeat_presents_the_same_menu_again_with_fresh_retries() -> None:
    assert after("main", "*", attempt=2, step=5) == presented("main", MAIN_PROMPT, step=6, timeout="8")


def test_say_speaks_then_hangs_up() -> None:
    assert after("sales", "2") == [
        node("Say", "We are open 9 to 5.", language="en-GB", voice="Polly.Amy"),
        node("Hangup"),
    ]


def test_dial_bridges_with_the_called_number_as_caller_id_by_default() -> None:
    dial = node("Dial", None, [node("Number", "+18323456789")], callerId=TO, action=URLS.dial_action)

    assert after("main", "2") == [dial]


def test_dial_with_its_own_caller_id() -> None:
    dial = node("Dial", None, [node("Number", "+12815550123")], callerId="+12815550100", action=URLS.dial_action)

    assert after("sales", "3") == [dial]


def test_a_menu_the_call_does_not_know_goes_on_with_the_seed_flow() -> None:
    assert after("main", "#") == [node("Hangup")]


# --- nested menus


def test_a_walk_through_two_levels_and_back() -> None:
    # given the flow's first presentation of main (step 1)
    assert verbs(render_menu("main", MAIN, URLS)) == presented("main", MAIN_PROMPT, step=1, timeout="8")
    # 1 at main → sales (step 2); 0 at sales → main again (step 3); 2 at main → the dial; all fresh attempts
    assert after("main", "1", step=1) == presented("sales", SALES_PROMPT, step=2)
    assert after("sales", "0", step=2) == presented("main", MAIN_PROMPT, step=3, timeout="8")
    assert after("main", "2", step=3)[0][0] == "Dial"


# --- retries


def test_a_wrong_key_says_invalid_and_presents_the_menu_again() -> None:
    assert after("main", "7", attempt=0, step=1) == [
        INVALID,
        *presented("main", MAIN_PROMPT, attempt=1, step=2, timeout="8"),
    ]


def test_no_key_says_no_input_and_presents_the_menu_again() -> None:
    assert after("main", "", attempt=1, step=2) == [
        NO_INPUT,
        *presented("main", MAIN_PROMPT, attempt=2, step=3, timeout="8"),
    ]


def test_after_the_last_retry_the_seed_flow_goes_on_hang_up() -> None:
    assert after("main", "7", attempt=2, step=3) == [INVALID, node("Hangup")]
    assert after("main", "", attempt=2, step=3) == [NO_INPUT, node("Hangup")]


def test_after_the_last_retry_the_seed_flow_goes_on_answer_dial_to() -> None:
    dial = node("Dial", None, [node("Number", "+18005550100")], callerId=TO, action=URLS.dial_action)

    assert after("main", "", attempt=2, step=3, request=WITH_DIAL) == [NO_INPUT, dial]


def test_answer_dial_to_with_a_dial_tone_waits_in_the_bridge_after_the_menu() -> None:
    request = parse_call_request(
        {
            "to": "17134567890",
            "answer_ivr": "main",
            "answer_dial_to": "18005550100",
            "answer_dial_tone_url": "https://example.com/tone.wav",
        }
    )
    tags = after("sales", "9", request=request)  # sales has no retries: straight on

    assert [t[0] for t in tags] == ["Dial"]
    assert tags[0][3][0][0] == "Conference"


def test_without_prompts_a_retry_is_just_the_menu_again() -> None:
    assert after("sales", "") == [node("Hangup")]  # no retries
    menu = parse_menu({"prompt": {"speak": "Hi", "speak_lang": "en-US"}, "options": {"1": {"action": "repeat"}}})
    document = render_next(resolve(menu, "5", 0), "m", {"m": menu}, REQUEST, URLS, step=1)
    assert [v[0] for v in verbs(document)] == ["Gather", "Redirect"]


def test_presentations_stop_at_max_steps() -> None:
    assert after("main", "*", step=MAX_STEPS - 1)[0][0] == "Gather"
    assert after("main", "*", step=MAX_STEPS) == [node("Hangup")]
    assert after("main", "", step=MAX_STEPS) == [NO_INPUT, node("Hangup")]


# --- the carrier's size limit


def big(text_size: int) -> IvrMenu:
    return parse_menu(
        {"prompt": {"speak": "x" * text_size, "speak_lang": "en-US"}, "options": {"1": {"action": "repeat"}}}
    )


def test_a_usual_menu_is_well_within_the_limit() -> None:
    assert size_problems("main", MAIN) == []
    assert size_problems("sales", SALES) == []


def test_a_prompt_too_long_for_the_limit_is_named() -> None:
    # 3000 characters fit; escaped, "&" is five ("&amp;"), so 800 of them do not
    assert size_problems("m", big(3000)) == []
    menu = parse_menu({"prompt": {"speak": "&" * 800, "speak_lang": "en-US"}, "options": {"1": {"action": "repeat"}}})

    (problem,) = size_problems("m", menu)
    assert problem.field == "prompt"
    assert "the carrier's limit is 4000" in problem.message


def test_each_part_too_long_is_named() -> None:
    long_text = {"speak": "y" * 2500, "speak_lang": "en-US"}
    menu = parse_menu(
        {
            "prompt": {"speak": "z" * 1500, "speak_lang": "en-US"},
            "options": {
                "1": {"action": "say", "speak": "<w>" * 1000, "speak_lang": "en-US"},
                "2": {"action": "repeat"},
            },
            "invalid": long_text,
            "no_input": {"play": "https://example.com/a.wav"},
        }
    )

    assert {p.field for p in size_problems("m", menu)} == {"invalid", "options.1"}
    assert "4000" in size_problems("m", menu)[0].message


@settings(max_examples=60, deadline=None)
@given(
    prompt=st.integers(1, 3000),
    lead=st.one_of(st.none(), st.integers(1, 3000)),
    say=st.integers(1, 3000),
    code=st.text("abc-_1", min_size=1, max_size=64),
)
# found by hypothesis: the retry after a wrong key at the last step carries step=100, one digit more than 99
@example(prompt=230, lead=3000, say=1, code="11111")
def test_a_menu_that_passes_the_check_renders_every_document_within_the_limit(
    prompt: int, lead: int | None, say: int, code: str
) -> None:
    menu = parse_menu(
        {
            "prompt": {"speak": "p" * prompt, "speak_lang": "en-US"},
            "options": {
                "1": {"action": "say", "speak": "s" * say, "speak_lang": "en-US"},
                "2": {"action": "repeat"},
                "3": {"action": "dial", "number": "18323456789"},
            },
            "retries": 5,
            **({"invalid": {"speak": "i" * lead, "speak_lang": "en-US"}} if lead else {}),
        }
    )
    if size_problems(code, menu):
        return
    for pressed in ("1", "2", "3", "9", ""):
        for attempt in range(6):
            resolution = resolve(menu, pressed, attempt)
            document = render_next(resolution, code, {code: menu}, REQUEST, WORST_URLS, step=MAX_STEPS - 1)
            assert len(document) <= MAX_TWIML, (pressed, attempt)
