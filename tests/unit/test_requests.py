"""CallRequest: every parameter of the seed and every rule it states, without I/O."""

from __future__ import annotations

from typing import Any

import pytest
from callbridge.domain.errors import InvalidRequest
from callbridge.domain.requests import CallRequest, parse_call_request
from callbridge.domain.voices import SPEAK_LANGUAGES

MINIMAL = {"to": "12812345670", "answer_play": "http://example.com/file.wav"}
# The field set of the seed's PHP example.
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
# Every parameter the seed lists, each with a valid value.
EVERY_PARAMETER = {
    "from": "12812345678",
    "to": "17134567890",
    "call_date": "2027-01-15 09:30",
    "record": "NO",
    "callback_url": "https://example.com/callback",
    "answer_play": "https://example.com/file.mp3",
    "answer_speak": "Hello",
    "answer_speak_lang": "en-GB",
    "answer_tts": "Hello there",
    "answer_tts_voice": "Joanna",
    "answer_ivr": "menu-1",
    "answer_dial_to": "18323456789",
    "answer_dial_from": "12812345679",
    "answer_dial_tone_url": "https://example.com/tone.wav",
    "answermachine_play": "https://example.com/vm.wav",
    "answermachine_speak": "Call me back",
    "answermachine_speak_lang": "fr-FR",
    "answermachine_tts": "Call me back please",
    "answermachine_tts_voice": "en-US_LisaVoice",
    "answermachine_sms": "Missed you",
    "answermachine_sms_from": "12812345670",
}


def problems(params: dict[str, Any]) -> dict[str, str]:
    """field → message of every problem parse_call_request reports (asserting it does raise)."""
    with pytest.raises(InvalidRequest) as caught:
        parse_call_request(params)
    return {p.field: p.message for p in caught.value.problems}


def test_the_seed_php_example_is_accepted_and_normalized() -> None:
    # when
    request = parse_call_request(PHP_EXAMPLE)

    # then
    assert request.from_ == "+12812345678"
    assert request.to == "+17134567890"
    assert request.answer_dial_to == "+18323456789"
    assert request.answer_tts_voice == "Joanna"  # the IBM-style name, mapped to Polly
    assert request.answermachine_speak_lang == "en-US"
    assert request.record == "YES"
    assert request.answermachine_speak == PHP_EXAMPLE["answermachine_speak"]


def test_every_seed_parameter_is_accepted() -> None:
    request = parse_call_request(EVERY_PARAMETER)

    assert set(request.present()) == set(EVERY_PARAMETER)
    assert request.answermachine_tts_voice == "Kendra"


def test_present_uses_the_api_names() -> None:
    present = parse_call_request({**MINIMAL, "from": "+1 (281) 234-5678"}).present()

    assert present == {"from": "+12812345678", "to": "+12812345670", "answer_play": MINIMAL["answer_play"]}


def test_to_is_required() -> None:
    assert problems({"answer_play": "http://example.com/a.wav"}) == {"to": "required"}


def test_blank_to_counts_as_missing() -> None:
    assert problems({**MINIMAL, "to": "   "}) == {"to": "required"}


def test_at_least_one_answer_option_is_required() -> None:
    found = problems({"to": "12812345670", "answermachine_speak": "hi", "answermachine_speak_lang": "en-US"})

    assert list(found) == ["answer_"]
    assert "at least one answer_ option" in found["answer_"]


@pytest.mark.parametrize("option", ["answer_play", "answer_speak", "answer_tts", "answer_ivr", "answer_dial_to"])
def test_each_answer_option_alone_is_enough(option: str) -> None:
    values = {
        "answer_play": {"answer_play": "https://example.com/a.wav"},
        "answer_speak": {"answer_speak": "hi", "answer_speak_lang": "en-US"},
        "answer_tts": {"answer_tts": "hi", "answer_tts_voice": "Matthew"},
        "answer_ivr": {"answer_ivr": "main"},
        "answer_dial_to": {"answer_dial_to": "18323456789"},
    }[option]

    request = parse_call_request({"to": "12812345670", **values})

    assert getattr(request, option)


@pytest.mark.parametrize("prefix", ["answer", "answermachine"])
def test_speak_lang_is_required_with_speak(prefix: str) -> None:
    found = problems({**MINIMAL, f"{prefix}_speak": "hello"})

    assert found == {f"{prefix}_speak_lang": f"required when {prefix}_speak is given"}


@pytest.mark.parametrize("prefix", ["answer", "answermachine"])
@pytest.mark.parametrize("lang", ["en-AU", "english", "en", "xx-XX", "en_US"])
def test_speak_lang_must_be_one_of_the_nine(prefix: str, lang: str) -> None:
    found = problems({**MINIMAL, f"{prefix}_speak": "hello", f"{prefix}_speak_lang": lang})

    assert list(found) == [f"{prefix}_speak_lang"]
    assert found[f"{prefix}_speak_lang"].startswith("must be one of en-GB")


@pytest.mark.parametrize("lang", list(SPEAK_LANGUAGES))
def test_each_of_the_nine_languages_is_accepted_case_insensitively(lang: str) -> None:
    request = parse_call_request({**MINIMAL, "answer_speak": "hello", "answer_speak_lang": lang.lower()})

    assert request.answer_speak_lang == lang


@pytest.mark.parametrize("prefix", ["answer", "answermachine"])
def test_tts_voice_is_required_with_tts(prefix: str) -> None:
    found = problems({**MINIMAL, f"{prefix}_tts": "hello"})

    assert found == {f"{prefix}_tts_voice": f"required when {prefix}_tts is given"}


@pytest.mark.parametrize("prefix", ["answer", "answermachine"])
@pytest.mark.parametrize("voice", ["Allison", "en-US_NobodyVoice", "Polly.Nobody", "en-US"])
def test_tts_voice_must_be_known(prefix: str, voice: str) -> None:
    found = problems({**MINIMAL, f"{prefix}_tts": "hello", f"{prefix}_tts_voice": voice})

    assert list(found) == [f"{prefix}_tts_voice"]
    assert "Amazon Polly voice id" in found[f"{prefix}_tts_voice"]


@pytest.mark.parametrize(
    ("voice", "polly"),
    [
        ("Joanna", "Joanna"),
        ("polly.matthew", "Matthew"),
        ("en-US_AllisonVoice", "Joanna"),
        ("es-US_SofiaVoice", "Penelope"),
    ],
)
def test_voices_resolve_to_polly_ids(voice: str, polly: str) -> None:
    request = parse_call_request({**MINIMAL, "answer_tts": "hello", "answer_tts_voice": voice})

    assert request.answer_tts_voice == polly


@pytest.mark.parametrize(("given", "stored"), [("YES", "YES"), ("NO", "NO"), ("yes", "YES"), (" no ", "NO")])
def test_record_is_yes_or_no(given: str, stored: str) -> None:
    assert parse_call_request({**MINIMAL, "record": given}).record == stored


@pytest.mark.parametrize("value", ["Y", "true", "1", "YESS", "on"])
def test_record_other_values_are_refused(value: str) -> None:
    assert problems({**MINIMAL, "record": value}) == {"record": "must be YES or NO"}


@pytest.mark.parametrize("field", ["callback_url", "answer_play", "answermachine_play", "answer_dial_tone_url"])
@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/a.wav",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "example.com/a.wav",
        "http://",
        "http://exa mple.com/a.wav",
        "http://example.com/a\x00.wav",
        "http://[::1/a.wav",
        "http://example.com:99999/a.wav",
        "https://example.com/" + "a" * 2100,
    ],
)
def test_urls_must_be_http_or_https(field: str, url: str) -> None:
    params = {**MINIMAL, field: url}
    if field == "answer_dial_tone_url":
        params["answer_dial_to"] = "18323456789"

    found = problems(params)

    assert list(found) == [field]
    assert "URL" in found[field]


@pytest.mark.parametrize("url", ["http://example.com/a.wav", "HTTPS://example.com:8443/a.mp3?x=1", "http://10.0.0.1/a"])
def test_http_and_https_urls_are_accepted(url: str) -> None:
    assert parse_call_request({**MINIMAL, "answer_play": url}).answer_play == url


@pytest.mark.parametrize("field", ["from", "to", "answer_dial_to", "answer_dial_from", "answermachine_sms_from"])
@pytest.mark.parametrize(
    "number", ["12345", "0044207946000", "abc", "2812345678901234567", "+", "12812345678x", "911", "+0 281 234 5678"]
)
def test_phone_numbers_must_be_plausible_international_numbers(field: str, number: str) -> None:
    params: dict[str, Any] = {**MINIMAL, "answer_dial_to": "18323456789", "answermachine_sms": "hi", field: number}

    found = problems(params)

    assert list(found) == [field]
    assert "international phone number" in found[field]


@pytest.mark.parametrize(
    ("number", "e164"),
    [
        ("12812345678", "+12812345678"),
        ("+12812345678", "+12812345678"),
        ("+1 (281) 234-5678", "+12812345678"),
        ("442079460000", "+442079460000"),
        ("+34 912 345 678", "+34912345678"),
    ],
)
def test_phone_numbers_country_code_first_with_optional_plus(number: str, e164: str) -> None:
    assert parse_call_request({**MINIMAL, "to": number}).to == e164


def test_unknown_parameters_are_refused() -> None:
    assert problems({**MINIMAL, "answer_sms": "hi", "foo": "bar"}) == {
        "answer_sms": "unknown parameter",
        "foo": "unknown parameter",
    }


def test_python_field_name_is_not_a_parameter() -> None:
    # `from_` is the model's attribute, not an API name: it must not stand in for `from`.
    assert problems({**MINIMAL, "from_": "12812345678"}) == {"from_": "unknown parameter"}


@pytest.mark.parametrize(
    ("modifier", "value", "option"),
    [
        ("answer_speak_lang", "en-US", "answer_speak"),
        ("answer_tts_voice", "Joanna", "answer_tts"),
        ("answer_dial_from", "12812345678", "answer_dial_to"),
        ("answer_dial_tone_url", "https://example.com/t.wav", "answer_dial_to"),
        ("answermachine_speak_lang", "en-US", "answermachine_speak"),
        ("answermachine_tts_voice", "Joanna", "answermachine_tts"),
        ("answermachine_sms_from", "12812345678", "answermachine_sms"),
        ("timezone", "Europe/Madrid", "call_date"),
    ],
)
def test_a_modifier_without_its_option_is_refused(modifier: str, value: str, option: str) -> None:
    assert problems({**MINIMAL, modifier: value}) == {modifier: f"only valid together with {option}"}


def test_every_broken_rule_is_named_at_once() -> None:
    found = problems({"to": "12", "record": "maybe", "answer_play": "ftp://x", "bogus": "1"})

    assert set(found) == {"to", "record", "answer_play", "bogus"}


@pytest.mark.parametrize("field", ["answer_speak", "answer_tts", "answermachine_speak", "answermachine_tts"])
def test_texts_have_a_length_limit(field: str) -> None:
    modifier = {"answer_speak": "answer_speak_lang", "answermachine_speak": "answermachine_speak_lang"}.get(field)
    params = {**MINIMAL, field: "x" * 3001, (modifier or field + "_voice"): "en-US" if modifier else "Joanna"}

    assert problems(params) == {field: "must be at most 3000 characters"}


def test_sms_has_the_carrier_limit() -> None:
    assert problems({**MINIMAL, "answermachine_sms": "x" * 1601}) == {
        "answermachine_sms": "must be at most 1600 characters"
    }


@pytest.mark.parametrize("code", ["has space", "x" * 65, "semi;colon"])
def test_ivr_code_shape(code: str) -> None:
    assert list(problems({"to": "12812345670", "answer_ivr": code})) == ["answer_ivr"]


@pytest.mark.parametrize("zone", ["Mars/Olympus", "America", "../etc/passwd", "UTC; DROP"])
def test_timezone_must_be_an_iana_zone(zone: str) -> None:
    found = problems({**MINIMAL, "call_date": "2027-01-15 09:30", "timezone": zone})

    assert list(found) == ["timezone"]
    assert "unknown time zone" in found["timezone"]


@pytest.mark.parametrize(
    "value", ["tomorrow", "2027-01-15", "15/01/2027 09:30", "2027-13-01 09:30", "0001-01-01 00:00+05:00"]
)
def test_call_date_format(value: str) -> None:
    assert list(problems({**MINIMAL, "call_date": value})) == ["call_date"]


def test_values_are_stripped_and_numbers_become_strings() -> None:
    request = CallRequest.model_validate({"to": 12812345670, "answer_play": "  http://example.com/a.wav  "})

    assert request.to == "+12812345670"
    assert request.answer_play == "http://example.com/a.wav"


def test_non_string_values_are_refused() -> None:
    found = problems({**MINIMAL, "answer_speak": ["a"], "answer_speak_lang": "en-US"})

    assert found == {"answer_speak": "must be a string"}


def test_a_bad_recipient_timezone_is_named_as_itself() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_call_request({**MINIMAL, "recipient_timezone": "Mars/Base"})
    assert {p.field for p in caught.value.problems} == {"recipient_timezone"}
