"""The seed's call flow as TwiML: every combination of options, in the seed's order, compared as parsed XML."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from callbridge.domain.answered import MACHINE, PERSON, answered_by_label
from callbridge.domain.requests import CallRequest, parse_call_request
from callbridge.flow.twiml import (
    XML_DECLARATION,
    FlowUrls,
    render_answer,
    render_hangup,
    render_hold,
    render_second_leg,
)

Node = tuple[str, dict[str, str], str | None, list[Any]]

URLS = FlowUrls(
    gather="https://hooks.example/carrier/gather/c1",
    dial_action="https://hooks.example/carrier/dial/c1?leg=1&x=2",
    hold="https://hooks.example/carrier/hold/c1",
    conference_name="callbridge-c1",
)
TO, TO_E164 = "17134567890", "+17134567890"
DIAL_TO, DIAL_TO_E164 = "1 (832) 345-6789", "+18323456789"
DIAL_FROM, DIAL_FROM_E164 = "12812345678", "+12812345678"
TONE = "https://example.com/ringback.wav"
PLAY = "https://example.com/file.mp3"
SPEAK = "Hello, this is a reminder."
TTS = "This text will be read it when file.mp3 ends"
MACHINE_PLAY = "https://example.com/voicemail.wav"
MACHINE_SPEAK = "It is a message for your voicemail"
MACHINE_TTS = "Please call us back."
ANSWER_AUDIO = "https://bucket.s3.amazonaws.com/tts/abc.mp3?X-Amz-Signature=1&X-Amz-Expires=3600"
MACHINE_AUDIO = "https://bucket.s3.amazonaws.com/tts/def.mp3?X-Amz-Signature=2"
AUDIO = {"answer_tts": ANSWER_AUDIO, "answermachine_tts": MACHINE_AUDIO}


def node(tag: str, text: str | None = None, children: list[Node] | None = None, **attrs: str) -> Node:
    return (tag, attrs, text, children or [])


def shape(element: ET.Element) -> Node:
    text = element.text if element.text and element.text.strip() else None
    return (element.tag, dict(element.attrib), text, [shape(child) for child in element])


def verbs(document: str) -> list[Node]:
    """The verbs of a TwiML document, after checking it is one."""
    assert document.startswith(XML_DECLARATION)
    root = ET.fromstring(document.encode("utf-8"))  # noqa: S314 - our own output
    assert root.tag == "Response"
    return [shape(child) for child in root]


def request(**params: str) -> CallRequest:
    return parse_call_request({"to": TO, **params})


# -- every combination of the seed's options -----------------------------------------------------------------

DIALS = ("none", "number", "number+from", "tone", "tone+from")
PERSON_CASES = [
    (play, speak, tts, dial)
    for play, speak, tts, dial in itertools.product((False, True), (False, True), (False, True), DIALS)
    if play or speak or tts or dial != "none"  # the seed needs at least one answer_ option
]
MACHINE_CASES = list(itertools.product((False, True), repeat=4))  # play, speak, tts, sms


def person_params(play: bool, speak: bool, tts: bool, dial: str) -> dict[str, str]:
    params: dict[str, str] = {}
    if play:
        params["answer_play"] = PLAY
    if speak:
        params |= {"answer_speak": SPEAK, "answer_speak_lang": "fr-FR"}
    if tts:
        params |= {"answer_tts": TTS, "answer_tts_voice": "en-US_AllisonVoice"}
    if dial != "none":
        params["answer_dial_to"] = DIAL_TO
    if "from" in dial:
        params["answer_dial_from"] = DIAL_FROM
    if "tone" in dial:
        params["answer_dial_tone_url"] = TONE
    return params


def machine_params(play: bool, speak: bool, tts: bool, sms: bool) -> dict[str, str]:
    params: dict[str, str] = {}
    if play:
        params["answermachine_play"] = MACHINE_PLAY
    if speak:
        params |= {"answermachine_speak": MACHINE_SPEAK, "answermachine_speak_lang": "es-US"}
    if tts:
        params |= {"answermachine_tts": MACHINE_TTS, "answermachine_tts_voice": "Matthew"}
    if sms:
        params |= {"answermachine_sms": "SMS message", "answermachine_sms_from": "12815550100"}
    return params


def expected_person(play: bool, speak: bool, tts: bool, dial: str, *, audio: bool) -> list[Node]:
    """The seed: play, speak, TTS, then dial last; without a dial the call ends."""
    expected: list[Node] = []
    if play:
        expected.append(node("Play", PLAY))
    if speak:
        expected.append(node("Say", SPEAK, language="fr-FR", voice="Polly.Celine"))
    if tts:
        expected.append(node("Play", ANSWER_AUDIO) if audio else node("Say", TTS, voice="Polly.Joanna"))
    caller_id = DIAL_FROM_E164 if "from" in dial else TO_E164
    if dial.startswith("number"):
        expected.append(node("Dial", None, [node("Number", DIAL_TO_E164)], callerId=caller_id, action=URLS.dial_action))
    elif dial.startswith("tone"):
        conference = node(
            "Conference",
            URLS.conference_name,
            waitUrl=URLS.hold,
            waitMethod="POST",
            startConferenceOnEnter="false",
            endConferenceOnExit="true",
            beep="false",
        )
        expected.append(node("Dial", None, [conference], callerId=caller_id, action=URLS.dial_action))
    else:
        expected.append(node("Hangup"))
    return expected


def expected_machine(play: bool, speak: bool, tts: bool, sms: bool, *, audio: bool) -> list[Node]:
    """The seed: play, speak, TTS (the SMS goes through the Messages API), then the call ends."""
    expected: list[Node] = []
    if play:
        expected.append(node("Play", MACHINE_PLAY))
    if speak:
        expected.append(node("Say", MACHINE_SPEAK, language="es-US", voice="Polly.Penelope"))
    if tts:
        expected.append(node("Play", MACHINE_AUDIO) if audio else node("Say", MACHINE_TTS, voice="Polly.Matthew"))
    expected.append(node("Hangup"))
    return expected


@pytest.mark.parametrize(
    "machine", MACHINE_CASES, ids=lambda m: "machine-" + "".join("pstS"[i] for i in range(4) if m[i])
)
@pytest.mark.parametrize(
    "person", PERSON_CASES, ids=lambda p: "person-" + "".join("pst"[i] for i in range(3) if p[i]) + p[3]
)
def test_every_combination(person: tuple[bool, bool, bool, str], machine: tuple[bool, bool, bool, bool]) -> None:
    call = request(**person_params(*person), **machine_params(*machine))
    for audio in (False, True):
        tts_audio = AUDIO if audio else {}
        assert verbs(render_answer(call, PERSON, URLS, tts_audio)) == expected_person(*person, audio=audio)
        assert verbs(render_answer(call, MACHINE, URLS, tts_audio)) == expected_machine(*machine, audio=audio)


def test_dial_comes_last_even_after_everything_else() -> None:
    call = request(**person_params(True, True, True, "tone+from"))
    tags = [tag for tag, *_ in verbs(render_answer(call, PERSON, URLS, ivr="<Gather numDigits='1'/>"))]
    assert tags == ["Play", "Say", "Say", "Gather", "Dial"]


# -- the seed's examples -------------------------------------------------------------------------------------

PHP_EXAMPLE = {
    "from": "12812345678",
    "to": "17134567890",
    "record": "YES",
    "answer_play": "https://example.com/file.mp3",
    "answer_tts": "This text will be read it when file.mp3 ends",
    "answer_tts_voice": "en-US_AllisonVoice",
    "answer_dial_to": "18323456789",
    "answermachine_speak": "It is a message for your voicemail",
    "answermachine_speak_lang": "en-US",
    "answermachine_sms": "SMS message",
}


def test_php_example_person() -> None:
    # 1. the file is played, 2. the TTS voice reads the text, 3. 18323456789 is called and bridged
    call = parse_call_request(PHP_EXAMPLE)
    assert verbs(render_answer(call, PERSON, URLS)) == [
        node("Play", "https://example.com/file.mp3"),
        node("Say", "This text will be read it when file.mp3 ends", voice="Polly.Joanna"),
        node("Dial", None, [node("Number", "+18323456789")], callerId="+17134567890", action=URLS.dial_action),
    ]


def test_php_example_person_with_premium_audio() -> None:
    call = parse_call_request(PHP_EXAMPLE)
    assert [v[:3] for v in verbs(render_answer(call, PERSON, URLS, {"answer_tts": ANSWER_AUDIO}))] == [
        ("Play", {}, "https://example.com/file.mp3"),
        ("Play", {}, ANSWER_AUDIO),
        ("Dial", {"callerId": "+17134567890", "action": URLS.dial_action}, None),
    ]


def test_php_example_machine() -> None:
    # 1. the basic TTS engine reads the text in en-US, 2. the SMS is sent (not TwiML), then the call ends
    call = parse_call_request(PHP_EXAMPLE)
    assert verbs(render_answer(call, MACHINE, URLS)) == [
        node("Say", "It is a message for your voicemail", language="en-US", voice="Polly.Joanna"),
        node("Hangup"),
    ]


def test_curl_example() -> None:
    call = parse_call_request({"to": "12812345670", "answer_play": "http://example.com/file.wav"})
    assert verbs(render_answer(call, PERSON, URLS)) == [node("Play", "http://example.com/file.wav"), node("Hangup")]
    # no answermachine_ options: the call ends
    assert verbs(render_answer(call, MACHINE, URLS)) == [node("Hangup")]


# -- IVR -----------------------------------------------------------------------------------------------------

GATHER = node(
    "Gather",
    None,
    [node("Say", "Press 1 for sales.", language="en-US")],
    numDigits="1",
    action=URLS.gather,
    method="POST",
)


@pytest.mark.parametrize(
    "ivr",
    [
        f'<Gather numDigits="1" action="{URLS.gather}" method="POST"><Say language="en-US">Press 1 for sales.</Say>'
        "</Gather>",
        f'<?xml version="1.0" encoding="UTF-8"?><Response><Gather numDigits="1" action="{URLS.gather}" method="POST">'
        '<Say language="en-US">Press 1 for sales.</Say></Gather></Response>',
        f'\n  <Gather numDigits="1" action="{URLS.gather}" method="POST">\n'
        '<Say language="en-US">Press 1 for sales.</Say></Gather>\n',
    ],
    ids=["verb", "document", "whitespace"],
)
def test_ivr_goes_after_tts_and_before_dial(ivr: str) -> None:
    call = request(
        answer_play=PLAY, answer_tts=TTS, answer_tts_voice="Joanna", answer_ivr="menu-1", answer_dial_to=DIAL_TO
    )
    assert [v[0] for v in verbs(render_answer(call, PERSON, URLS, ivr=ivr))] == ["Play", "Say", "Gather", "Dial"]
    assert verbs(render_answer(call, PERSON, URLS, ivr=ivr))[2] == GATHER


def test_ivr_of_several_verbs_keeps_their_order() -> None:
    call = request(answer_ivr="menu-1")
    ivr = '<Gather numDigits="1"><Say>Choose.</Say></Gather><Say>We did not get that.</Say><Redirect>x</Redirect>'
    assert [v[0] for v in verbs(render_answer(call, PERSON, URLS, ivr=ivr))] == ["Gather", "Say", "Redirect", "Hangup"]


def test_ivr_code_without_a_menu_renders_nothing_for_it() -> None:
    call = request(answer_ivr="menu-1", answer_speak=SPEAK, answer_speak_lang="en-GB")
    assert verbs(render_answer(call, PERSON, URLS)) == [
        node("Say", SPEAK, language="en-GB", voice="Polly.Amy"),
        node("Hangup"),
    ]


def test_ivr_is_only_for_a_person() -> None:
    call = request(answer_ivr="menu-1", answermachine_speak=MACHINE_SPEAK, answermachine_speak_lang="en-US")
    assert [v[0] for v in verbs(render_answer(call, MACHINE, URLS, ivr="<Gather/>"))] == ["Say", "Hangup"]


def test_ivr_that_is_not_xml_is_refused() -> None:
    with pytest.raises(ValueError, match="IVR"):
        render_answer(request(answer_ivr="m"), PERSON, URLS, ivr="<Gather>")


# -- escaping ------------------------------------------------------------------------------------------------

NASTY = "Tom & Jerry <b>say</b> \"hi\" 'there' ]]> &amp; done"


def test_text_is_escaped() -> None:
    call = request(answer_speak=NASTY, answer_speak_lang="en-US", answer_tts=NASTY, answer_tts_voice="Joanna")
    document = render_answer(call, PERSON, URLS)
    assert "<b>" not in document
    assert "&lt;b&gt;" in document
    assert "&amp;amp;" in document
    assert [v[2] for v in verbs(document)[:2]] == [NASTY, NASTY]


def test_machine_text_is_escaped() -> None:
    call = request(answer_play=PLAY, answermachine_speak=NASTY, answermachine_speak_lang="de-DE")
    assert verbs(render_answer(call, MACHINE, URLS))[0] == node("Say", NASTY, language="de-DE", voice="Polly.Marlene")


def test_attributes_are_escaped() -> None:
    urls = FlowUrls(
        gather="g",
        dial_action='https://hooks.example/dial?a=1&b="2"&c=<3>',
        hold='https://hooks.example/hold?x=1&y="2"',
        conference_name='room <&> "1"',
    )
    call = request(answer_dial_to=DIAL_TO, answer_dial_tone_url="https://example.com/tone.wav?a=1&b=2")
    document = render_answer(call, PERSON, urls)
    assert "&quot;2&quot;" in document
    dial = verbs(document)[0]
    assert dial[1]["action"] == urls.dial_action
    conference = dial[3][0]
    assert conference[1]["waitUrl"] == urls.hold
    assert conference[2] == urls.conference_name


# Text and a URL written to close their verb and open a <Dial> of their own (toll fraud, if it worked).
INJECTED_TEXT = "Hi</Say><Dial><Number>+19005550100</Number></Dial><Say>"
INJECTED_URL = "https://example.com/a.wav?x=</Play><Dial><Number>+19005550100</Number></Dial><Play>"


@pytest.mark.parametrize("answered_by", [PERSON, MACHINE])
def test_text_and_urls_cannot_add_verbs(answered_by: str) -> None:
    call = request(
        answer_play=INJECTED_URL,
        answer_speak=INJECTED_TEXT,
        answer_speak_lang="en-US",
        answer_tts=INJECTED_TEXT,
        answer_tts_voice="Joanna",
        answermachine_play=INJECTED_URL,
        answermachine_speak=INJECTED_TEXT,
        answermachine_speak_lang="en-US",
        answermachine_tts=INJECTED_TEXT,
        answermachine_tts_voice="Joanna",
    )
    document = render_answer(call, answered_by, URLS)
    shown = verbs(document)

    assert [v[0] for v in shown] == ["Play", "Say", "Say", "Hangup"]
    assert [v[2] for v in shown[:3]] == [INJECTED_URL, INJECTED_TEXT, INJECTED_TEXT]
    assert "<Dial>" not in document


def test_urls_with_query_strings_survive() -> None:
    call = request(answer_play="https://example.com/a.mp3?x=1&y=2", answer_dial_to=DIAL_TO)
    assert verbs(render_answer(call, PERSON, URLS))[0] == node("Play", "https://example.com/a.mp3?x=1&y=2")


def test_characters_xml_cannot_carry_are_dropped_not_fatal() -> None:
    # model_copy skips validation: the renderer must hold even if a request with them got through
    call = request(answer_speak=SPEAK, answer_speak_lang="en-US")
    call = call.model_copy(update={"answer_speak": "bell\x07 and\x00 escape\x1b here\ufffe"})
    assert verbs(render_answer(call, PERSON, URLS))[0] == node(
        "Say", "bell and escape here", language="en-US", voice="Polly.Joanna"
    )


def test_text_made_only_of_such_characters_is_left_out() -> None:
    call = request(answer_speak=SPEAK, answer_speak_lang="en-US", answer_tts=TTS, answer_tts_voice="Joanna")
    call = call.model_copy(update={"answer_speak": "\x01\x02", "answer_tts": "\x03"})
    assert verbs(render_answer(call, PERSON, URLS)) == [node("Hangup")]


def test_unicode_text() -> None:
    text = "Здравствуйте! Ça va? 東京 😀"
    call = request(answer_speak=text, answer_speak_lang="ru-RU")
    assert verbs(render_answer(call, PERSON, URLS))[0] == node("Say", text, language="ru-RU", voice="Polly.Tatyana")


# -- labels and the other documents --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answered_by", "label"),
    [
        ("human", "Person"),
        ("unknown", "Person"),
        (None, "Person"),
        ("", "Person"),
        ("machine_start", "Machine"),
        ("machine_end_beep", "Machine"),
        ("machine_end_silence", "Machine"),
        ("machine_end_other", "Machine"),
        ("fax", "Machine"),
        (" Machine_End_Beep ", "Machine"),
    ],
)
def test_answered_by_label(answered_by: str | None, label: str) -> None:
    assert answered_by_label(answered_by) == label


def test_label_feeds_render_answer() -> None:
    call = parse_call_request(PHP_EXAMPLE)
    assert verbs(render_answer(call, answered_by_label("machine_end_silence"), URLS))[0][0] == "Say"
    assert verbs(render_answer(call, answered_by_label("human"), URLS))[0][0] == "Play"


@pytest.mark.parametrize("label", ["person", "human", "machine_start", ""])
def test_unknown_label_is_refused(label: str) -> None:
    with pytest.raises(ValueError, match="answered_by_label"):
        render_answer(parse_call_request(PHP_EXAMPLE), label, URLS)


def test_conference_status_callback_is_optional() -> None:
    urls = FlowUrls(URLS.gather, URLS.dial_action, URLS.hold, URLS.conference_name, "https://hooks.example/conf/c1")
    call = request(answer_dial_to=DIAL_TO, answer_dial_tone_url=TONE)
    conference = verbs(render_answer(call, PERSON, urls))[0][3][0]
    assert conference[1] == {
        "waitUrl": URLS.hold,
        "waitMethod": "POST",
        "startConferenceOnEnter": "false",
        "endConferenceOnExit": "true",
        "beep": "false",
        "statusCallback": "https://hooks.example/conf/c1",
        "statusCallbackEvent": "join end",
        "statusCallbackMethod": "POST",
    }


def test_second_leg_joins_and_starts_the_conference() -> None:
    assert verbs(render_second_leg("callbridge-c1")) == [
        node(
            "Dial",
            None,
            [
                node(
                    "Conference",
                    "callbridge-c1",
                    startConferenceOnEnter="true",
                    endConferenceOnExit="true",
                    beep="false",
                )
            ],
        )
    ]


def test_hold_loops_the_tone() -> None:
    assert verbs(render_hold("https://example.com/tone.wav?a=1&b=2")) == [
        node("Play", "https://example.com/tone.wav?a=1&b=2", loop="0")
    ]


def test_hangup() -> None:
    assert verbs(render_hangup()) == [node("Hangup")]
    assert render_hangup().startswith('<?xml version="1.0" encoding="UTF-8"?><Response>')


def test_rendering_is_deterministic() -> None:
    call = parse_call_request(PHP_EXAMPLE)
    assert render_answer(call, PERSON, URLS, AUDIO) == render_answer(call, PERSON, URLS, dict(AUDIO))
