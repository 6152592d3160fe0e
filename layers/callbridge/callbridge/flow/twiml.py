"""The seed's call flow as TwiML. Pure functions: no I/O, the same request always renders the same document.

Person: play, speak, TTS, IVR, then dial (last) or hang up. Machine: play, speak, TTS, then hang up (the SMS
goes through the Messages API). Documents are built with ElementTree, so text and URLs are always escaped.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from callbridge.domain.answered import MACHINE, PERSON
from callbridge.domain.voices import speak_say_voice, tts_say_voice

if TYPE_CHECKING:  # the domain model pulls in pydantic; rendering only reads its attributes
    from callbridge.domain.requests import CallRequest

XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'

_NO_AUDIO: Mapping[str, str] = MappingProxyType({})
# Characters XML 1.0 cannot carry even escaped; a control character in a text would make the whole document invalid.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True)
class FlowUrls:
    """Where the carrier comes back to during a call's flow."""

    gather: str  # action of the IVR menu's <Gather>
    dial_action: str  # action of <Dial>: told how the bridge ended
    hold: str  # waitUrl of the conference: TwiML playing answer_dial_tone_url
    conference_name: str  # the room that bridges `to` and answer_dial_to when a dial tone is set
    # Optional statusCallback of that conference: its `join` event is the moment to dial the second leg.
    conference_status: str | None = None


def render_answer(
    request: CallRequest,
    answered_by_label: str,
    urls: FlowUrls,
    tts_audio: Mapping[str, str] = _NO_AUDIO,
    ivr: str | None = None,
) -> str:
    """The TwiML for an answered call, in the seed's order for a person or for a machine.

    `tts_audio` maps "answer_tts" / "answermachine_tts" to a URL of premium (Polly) audio; without one the text
    is spoken with `<Say voice="Polly.…">`. `ivr` is the TwiML (a document or verbs) of the IVR menu.
    """
    if answered_by_label not in (PERSON, MACHINE):
        raise ValueError(f"answered_by_label must be {PERSON!r} or {MACHINE!r}, not {answered_by_label!r}")
    root = ET.Element("Response")
    if answered_by_label == MACHINE:
        _media(root, request.answermachine_play, request.answermachine_speak, request.answermachine_speak_lang)
        _tts(root, request.answermachine_tts, request.answermachine_tts_voice, tts_audio.get("answermachine_tts"))
        ET.SubElement(root, "Hangup")
        return _document(root)
    _media(root, request.answer_play, request.answer_speak, request.answer_speak_lang)
    _tts(root, request.answer_tts, request.answer_tts_voice, tts_audio.get("answer_tts"))
    if ivr:
        root.extend(_verbs(ivr))
    append_after_ivr(root, request, urls)
    return _document(root)


def append_after_ivr(root: ET.Element, request: CallRequest, urls: FlowUrls) -> None:
    """What a person's flow does after the IVR, in the seed's order: dial answer_dial_to (last), else hang up."""
    if request.answer_dial_to:
        _dial(root, request, urls)
    else:
        ET.SubElement(root, "Hangup")


def render_second_leg(conference_name: str) -> str:
    """The TwiML for the answer_dial_to leg: join the conference, which starts it and stops the dial tone."""
    root = ET.Element("Response")
    dial = ET.SubElement(root, "Dial")
    _element(
        dial,
        "Conference",
        conference_name,
        startConferenceOnEnter="true",
        endConferenceOnExit="true",
        beep="false",
    )
    return _document(root)


def render_hold(tone_url: str) -> str:
    """The conference's waitUrl TwiML: answer_dial_tone_url, looped until the second leg joins."""
    root = ET.Element("Response")
    _element(root, "Play", tone_url, loop="0")
    return _document(root)


# Said to `to` when answer_dial_to cannot be reached through the dial-tone bridge (busy, no answer, failed).
NOT_BRIDGED_MESSAGE = "Sorry, the person you are calling is not available. Goodbye."


def render_not_bridged() -> str:
    """The document that takes `to` out of the bridge when the second leg failed: a message, then hang up."""
    root = ET.Element("Response")
    say_speech(root, NOT_BRIDGED_MESSAGE, None)
    ET.SubElement(root, "Hangup")
    return _document(root)


def render_hangup() -> str:
    """A document that ends the call."""
    root = ET.Element("Response")
    ET.SubElement(root, "Hangup")
    return _document(root)


def _media(root: ET.Element, play: str | None, speak: str | None, language: str | None) -> None:
    if play:
        _element(root, "Play", play)
    if speak and _clean(speak):
        say_speech(root, speak, language)


def _tts(root: ET.Element, text: str | None, voice: str | None, audio_url: str | None) -> None:
    if not text:
        return
    if audio_url:
        _element(root, "Play", audio_url)
    elif _clean(text):
        say_tts(root, text, voice)


def say_speech(parent: ET.Element, text: str, language: str | None) -> ET.Element:
    """A `<Say>` of the seed's basic speech: the language (en-US when None) and the voice named for it, so Twilio
    never has to guess a voice for a language its default voice does not speak."""
    language, voice = speak_say_voice(language)
    return _element(parent, "Say", text, language=language, voice=voice)


def say_tts(parent: ET.Element, text: str, voice: str | None) -> ET.Element:
    """A `<Say>` of premium text in its Polly voice (a Polly id; the default voice when None), named as Twilio
    knows it (`Polly.Kevin-Neural` for a neural-only voice)."""
    return _element(parent, "Say", text, voice=tts_say_voice(voice))


def _dial(root: ET.Element, request: CallRequest, urls: FlowUrls) -> None:
    caller_id = request.answer_dial_from or request.to
    dial = _element(root, "Dial", None, callerId=caller_id, action=urls.dial_action)
    if not request.answer_dial_tone_url:
        _element(dial, "Number", request.answer_dial_to)
        return
    # No <Dial> attribute plays a custom ringback, so `to` waits in a conference whose waitUrl plays the tone;
    # the second leg's joining starts the conference, and either side leaving ends it.
    attrs = {
        "waitUrl": urls.hold,
        "waitMethod": "POST",
        "startConferenceOnEnter": "false",
        "endConferenceOnExit": "true",
        "beep": "false",
    }
    if urls.conference_status:
        attrs |= {
            "statusCallback": urls.conference_status,
            "statusCallbackEvent": "join end",
            "statusCallbackMethod": "POST",
        }
    _element(dial, "Conference", urls.conference_name, **attrs)


def _verbs(fragment: str) -> list[ET.Element]:
    """The verbs of an IVR document (`<Response>…</Response>`) or of a bare sequence of verbs."""
    try:
        element = ET.fromstring(fragment)  # noqa: S314 - our own IVR renderer's output, not outside input
        verbs = list(element) if element.tag == "Response" else [element]
    except ET.ParseError:
        try:
            verbs = list(ET.fromstring(f"<Response>{fragment}</Response>"))  # noqa: S314 - as above
        except ET.ParseError as exc:
            raise ValueError(f"the IVR menu is not TwiML: {exc}") from exc
    for verb in verbs:
        verb.tail = None
    return verbs


def _clean(text: str) -> str:
    return _NOT_XML.sub("", text)


def _element(parent: ET.Element, tag: str, text: str | None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {name: _clean(value) for name, value in attrs.items()})
    if text is not None:
        element.text = _clean(text)
    return element


def _document(root: ET.Element) -> str:
    return XML_DECLARATION + ET.tostring(root, encoding="unicode")
