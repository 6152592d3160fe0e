"""Every TwiML document callbridge renders, rebuilt through twilio-python's TwiML model (a test-only oracle).

Each element must be a verb or noun the model lets its parent nest, and each attribute one the model names for it;
the rebuilt document must then be the same XML. A verb, noun or attribute Twilio does not know fails here even if
the carrier simulator would accept it.
"""

from __future__ import annotations

import inspect
import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from callbridge.domain.ivr import parse_menu, resolve
from callbridge.domain.requests import parse_call_request
from callbridge.flow.ivr_twiml import render_menu, render_next
from callbridge.flow.twiml import (
    FlowUrls,
    render_answer,
    render_hangup,
    render_hold,
    render_not_bridged,
    render_second_leg,
)
from twilio.twiml import TwiML
from twilio.twiml.voice_response import VoiceResponse

from tests.unit.test_voices import TWILIO_SAY_VOICES

URLS = FlowUrls(
    gather="https://hooks.example/carrier/twilio/c1/gather",
    dial_action="https://hooks.example/carrier/twilio/c1/dial",
    hold="https://hooks.example/carrier/twilio/c1/hold",
    conference_name="callbridge-c1",
    conference_status="https://hooks.example/carrier/twilio/c1/conference",
)
EVERYTHING = {
    "to": "17134567890",
    "answer_play": "https://example.com/a.wav",
    "answer_speak": "Ciao",
    "answer_speak_lang": "it-IT",
    "answer_tts": "Hello",
    "answer_tts_voice": "en-US_KevinV3Voice",
    "answer_dial_to": "18323456789",
    "answermachine_play": "https://example.com/m.wav",
    "answermachine_speak": "Olá",
    "answermachine_speak_lang": "pt-BR",
    "answermachine_tts": "Call us",
    "answermachine_tts_voice": "Pedro",
}
MENU = parse_menu(
    {
        "prompt": {"tts": "Press 1 or 2.", "tts_voice": "Ruth"},
        "options": {
            "1": {"action": "say", "speak": "Привет", "speak_lang": "ru-RU"},
            "2": {"action": "dial", "number": "18323456789"},
        },
        "invalid": {"speak": "No", "speak_lang": "es-US"},
    }
)


def _documents() -> dict[str, str]:
    person = parse_call_request(EVERYTHING)
    tone = parse_call_request({**EVERYTHING, "answer_dial_tone_url": "https://example.com/ring.wav"})
    ivr = parse_call_request({**EVERYTHING, "answer_ivr": "main"})
    return {
        "person": render_answer(person, "Person", URLS),
        "machine": render_answer(person, "Machine", URLS),
        "premium audio": render_answer(person, "Person", URLS, {"answer_tts": "https://bucket.example/a.mp3"}),
        "dial tone": render_answer(tone, "Person", URLS),
        "menu": render_answer(ivr, "Person", URLS, ivr=render_menu("main", MENU, URLS)),
        "menu say": render_next(resolve(MENU, "1", 0), "main", {"main": MENU}, ivr, URLS, step=1),
        "menu dial": render_next(resolve(MENU, "2", 0), "main", {"main": MENU}, ivr, URLS, step=1),
        "menu retry": render_next(resolve(MENU, "9", 0), "main", {"main": MENU}, ivr, URLS, step=1),
        "second leg": render_second_leg("callbridge-c1"),
        "hold": render_hold("https://example.com/ring.wav"),
        "hangup": render_hangup(),
        "not bridged": render_not_bridged(),
    }


DOCUMENTS = _documents()


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _rebuild(element: ET.Element, parent: TwiML) -> None:
    """Nest `element` into the model's `parent` the way twilio-python builds it, then its children."""
    method = getattr(parent, _snake(element.tag), None)
    assert callable(method), f"<{parent.name}> cannot hold <{element.tag}> in Twilio's TwiML model"
    parameters = list(inspect.signature(method).parameters.values())
    named = {p.name for p in parameters if p.kind is not inspect.Parameter.VAR_KEYWORD}
    kwargs: dict[str, Any] = {}
    for attribute, value in element.attrib.items():
        name = _snake(attribute)
        assert name in named, f"<{element.tag}> has no attribute {attribute!r} in Twilio's TwiML model"
        kwargs[name] = value
    first = parameters[0] if parameters and parameters[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD else None
    text = (element.text or "").strip() or None
    if first is not None and first.name not in kwargs and first.default is inspect.Parameter.empty:
        child = method(text, **kwargs)  # the body: message, url, number, name, ...
    elif first is not None and text is not None and first.name not in kwargs:
        child = method(text, **kwargs)
    else:
        assert text is None, f"<{element.tag}> carries text Twilio's model has no place for"
        child = method(**kwargs)
    for grandchild in element:
        _rebuild(grandchild, child)


def _canonical(element: ET.Element) -> tuple[Any, ...]:
    text = (element.text or "").strip() or None
    return (element.tag, sorted(element.attrib.items()), text, [_canonical(child) for child in element])


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_every_document_is_twiml_as_twilios_model_builds_it(name: str) -> None:
    ours = ET.fromstring(DOCUMENTS[name].encode())  # noqa: S314 - our own output
    assert ours.tag == "Response"
    model = VoiceResponse()
    for verb in ours:
        _rebuild(verb, model)
    theirs = ET.fromstring(model.to_xml().encode())  # noqa: S314 - twilio-python's output
    assert _canonical(theirs) == _canonical(ours)


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_every_say_names_a_voice_twilio_has_for_its_language(name: str) -> None:
    root = ET.fromstring(DOCUMENTS[name].encode())  # noqa: S314 - our own output
    for say in root.iter("Say"):
        voice = say.get("voice")
        assert voice is not None, "a <Say> without a voice relies on the default voice, which speaks few languages"
        languages = [code for code, voices in TWILIO_SAY_VOICES.items() if voice in voices]
        assert languages, f"Twilio has no voice {voice!r}"
        if say.get("language"):
            assert say.get("language") in languages


def test_the_documents_cover_every_verb_callbridge_renders() -> None:
    tags = {element.tag for document in DOCUMENTS.values() for element in ET.fromstring(document.encode()).iter()}  # noqa: S314
    assert tags >= {"Response", "Play", "Say", "Gather", "Redirect", "Dial", "Number", "Conference", "Hangup"}
