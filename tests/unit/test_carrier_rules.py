"""The carrier simulator's pure parts: signatures (against the official validator), TwiML, rules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from twilio.request_validator import RequestValidator

from sandbox.carrier import outcome_for, twilio_signature, valid_signature
from sandbox.carrier.model import billed_minutes, normalize_number
from sandbox.carrier.twiml import TwimlError, parse_twiml

TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}


class MultiDict(dict[str, list[str]]):
    """Just enough of a multi-valued form for RequestValidator (it calls getall)."""

    def getall(self, name: str) -> list[str]:
        return self[name]


def test_known_vector() -> None:
    assert twilio_signature(TOKEN, URL, PARAMS) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert valid_signature(TOKEN, URL, PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not valid_signature(TOKEN, URL, {**PARAMS, "Digits": "1235"}, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")


@pytest.mark.parametrize(
    ("url", "params"),
    [
        ("http://127.0.0.1:8080/carrier/status", {"CallStatus": "completed", "SequenceNumber": "3", "Empty": ""}),
        ("http://127.0.0.1:8080/flow?x=1&Digits=9", {}),
        ("https://example.com/a%20b?q=%C3%A9", {"Body": "héllo & good+bye"}),
    ],
)
def test_agrees_with_the_official_validator(url: str, params: dict[str, str]) -> None:
    assert RequestValidator(TOKEN).validate(url, params, twilio_signature(TOKEN, url, params))


def test_repeated_parameters_contribute_each_value_sorted() -> None:
    params = MultiDict({"StatusCallbackEvent": ["ringing", "answered"], "To": ["+1"]})
    expected = RequestValidator(TOKEN).compute_signature(URL, params)
    assert twilio_signature(TOKEN, URL, params) == expected
    assert twilio_signature(TOKEN, URL, {"StatusCallbackEvent": ["answered", "ringing"], "To": "+1"}) == expected


def test_twiml_parses_verbs_attributes_and_nouns() -> None:
    verbs = parse_twiml(
        '<?xml version="1.0" encoding="UTF-8"?><Response><Gather numDigits="1"><Say>Hi</Say></Gather>'
        "<Dial><Number>+15551230000</Number></Dial></Response>"
    )
    assert [v.name for v in verbs] == ["Gather", "Dial"]
    assert verbs[0].attrs == {"numDigits": "1"}
    assert verbs[0].children[0].text == "Hi"
    assert verbs[1].children[0].as_record() == {"verb": "Number", "attrs": {}, "text": "+15551230000"}
    assert parse_twiml("") == []


@pytest.mark.parametrize("document", ["<Response><Say>unclosed</Response>", "<html><body/></html>"])
def test_twiml_rejects_what_is_not_twiml(document: str) -> None:
    with pytest.raises(TwimlError):
        parse_twiml(document)


@pytest.mark.parametrize(
    ("to", "outcome"),
    [
        ("+12812345671", "machine"),
        ("+12812345672", "busy"),
        ("+12812345673", "no-answer"),
        ("+12812345674", "failed"),
        ("+12812345670", "human"),
        ("+12812345679", "human"),
        ("client:alice1", "human"),
    ],
)
def test_outcome_by_last_digit(to: str, outcome: str) -> None:
    assert outcome_for(to) == outcome


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("+12812345670", "+12812345670"),
        ("12812345670", "+12812345670"),
        ("+1 (281) 234-5670", "+12812345670"),
        ("client:alice", "client:alice"),
        ("not-a-number", None),
        ("+123", None),
        ("+0123456789", None),
    ],
)
def test_numbers_are_normalized_to_e164(raw: str, normalized: str | None) -> None:
    assert normalize_number(raw) == normalized


def test_billing_rounds_answered_calls_up_to_whole_minutes() -> None:
    assert [billed_minutes(s, True) for s in (0, 1, 60, 61)] == [1, 1, 1, 2]
    assert billed_minutes(0, False) == 0


def test_the_simulators_modules_import_each_other_without_cycles() -> None:
    # every `from sandbox.carrier.x import ...`, type-checking imports included
    package = Path(__file__).parents[2] / "sandbox" / "carrier"
    imports: dict[str, set[str]] = {}
    for source in package.glob("*.py"):
        tree = ast.parse(source.read_text())
        imports[source.stem] = {
            (node.module or "").rsplit(".", 1)[1]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sandbox.carrier.")
        }

    def reachable(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for name in imports.get(todo.pop(), set()) - seen:
                seen.add(name)
                todo.append(name)
        return seen

    assert [name for name in imports if name in reachable(name)] == []
