"""X-Twilio-Signature, checked against the official twilio-python RequestValidator as an independent oracle."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import quote

import pytest
from callbridge.carrier.signature import compute_signature, verify_signature
from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

TOKEN = "12345"
KNOWN_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
KNOWN_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}
KNOWN_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


class MultiParams:
    """Repeated form parameters the way the oracle reads them (Django's QueryDict interface: `getlist`)."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self.pairs = list(pairs)

    def __iter__(self) -> Iterator[str]:
        return iter([name for name, _ in self.pairs])

    def __len__(self) -> int:
        return len(self.pairs)

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self.pairs if key == name]


def oracle_signature(url: str, pairs: Sequence[tuple[str, str]], token: str = TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, MultiParams(pairs)))


def oracle_valid(url: str, pairs: Sequence[tuple[str, str]] | str, signature: str, token: str = TOKEN) -> bool:
    params = pairs if isinstance(pairs, str) else MultiParams(pairs)
    return bool(RequestValidator(token).validate(url, params, signature))


def all_values_signature(url: str, pairs: Sequence[tuple[str, str]], token: str = TOKEN) -> str:
    """The other SDKs' reading (twilio-node): every value of a repeated name, duplicates included."""
    message = url + "".join(name + value for name, value in sorted(pairs))
    return base64.b64encode(hmac.new(token.encode(), message.encode(), hashlib.sha1).digest()).decode()


# -- the known vector ----------------------------------------------------------------------------------------


def test_known_vector() -> None:
    assert compute_signature(KNOWN_URL, KNOWN_PARAMS, TOKEN) == KNOWN_SIGNATURE
    assert oracle_signature(KNOWN_URL, list(KNOWN_PARAMS.items())) == KNOWN_SIGNATURE
    assert verify_signature(KNOWN_URL, KNOWN_PARAMS, KNOWN_SIGNATURE, TOKEN)


def test_known_vector_accepts_pairs_and_lists() -> None:
    as_lists = {name: [value] for name, value in KNOWN_PARAMS.items()}
    assert compute_signature(KNOWN_URL, list(KNOWN_PARAMS.items()), TOKEN) == KNOWN_SIGNATURE
    assert compute_signature(KNOWN_URL, as_lists, TOKEN) == KNOWN_SIGNATURE


@pytest.mark.parametrize(
    ("url", "params", "signature", "token"),
    [
        (KNOWN_URL, KNOWN_PARAMS, KNOWN_SIGNATURE, "54321"),  # another token
        ("https://mycompany.com/myapp.php?foo=1&bar=3", KNOWN_PARAMS, KNOWN_SIGNATURE, TOKEN),  # another query
        ("https://evil.example/myapp.php?foo=1&bar=2", KNOWN_PARAMS, KNOWN_SIGNATURE, TOKEN),  # another host
        ("http://mycompany.com/myapp.php?foo=1&bar=2", KNOWN_PARAMS, KNOWN_SIGNATURE, TOKEN),  # another scheme
        (KNOWN_URL, {**KNOWN_PARAMS, "Digits": "1235"}, KNOWN_SIGNATURE, TOKEN),  # a changed value
        (KNOWN_URL, {**KNOWN_PARAMS, "AnsweredBy": "human"}, KNOWN_SIGNATURE, TOKEN),  # an added parameter
        (KNOWN_URL, {k: v for k, v in KNOWN_PARAMS.items() if k != "To"}, KNOWN_SIGNATURE, TOKEN),  # one removed
        (KNOWN_URL, KNOWN_PARAMS, KNOWN_SIGNATURE.lower(), TOKEN),
        (KNOWN_URL, KNOWN_PARAMS, KNOWN_SIGNATURE + " ", TOKEN),
        (KNOWN_URL, KNOWN_PARAMS, "", TOKEN),
        (KNOWN_URL, KNOWN_PARAMS, None, TOKEN),
        (KNOWN_URL, KNOWN_PARAMS, "ü" * 28, TOKEN),
    ],
)
def test_tampering_fails(url: str, params: dict[str, str], signature: str | None, token: str) -> None:
    assert not verify_signature(url, params, signature, token)
    if signature:
        assert not oracle_valid(url, list(params.items()), signature, token)


# -- the same answers as the oracle on chosen inputs ---------------------------------------------------------

CASES: list[tuple[str, list[tuple[str, str]]]] = [
    ("https://example.com/carrier/status", []),
    ("https://example.com/carrier/status", [("CallSid", "CA" + "0" * 32), ("CallStatus", "ringing")]),
    # repeated names: each value, sorted
    ("https://example.com/hook", [("StatusCallbackEvent", "ringing"), ("StatusCallbackEvent", "answered")]),
    ("https://example.com/hook", [("b", "2"), ("a", "z"), ("a", "y"), ("a", "x"), ("c", "")]),
    # repeated identical values (the oracle keeps one)
    ("https://example.com/hook", [("a", "1"), ("a", "1"), ("b", "2")]),
    # unicode names and values
    ("https://example.com/hook", [("SpeechResult", "¿Dónde está? 東京 😀"), ("Ünïcode", "ß")]),
    ("https://exämple.com/päth?q=é", [("Body", "naïve café")]),
    # query strings, percent-encoding, fragments of Twilio's URL overrides
    ("https://example.com/hook?callid=abc&x=1&x=2", [("CallSid", "CA1")]),
    ("https://example.com/hook?to=%2B14155550100&empty=", [("To", "+14155550100")]),
    ("https://example.com/hook?a=1#rc=2&rp=all", [("CallSid", "CA1")]),
    # ports, explicit and default
    ("https://example.com:443/hook?a=1", [("CallSid", "CA1")]),
    ("http://example.com:80/hook", [("CallSid", "CA1")]),
    ("http://localhost:8080/carrier/status?callid=c1", [("CallSid", "CA1"), ("Digits", "12#")]),
    ("https://abc123.execute-api.us-east-1.amazonaws.com/carrier/status/c1", [("SipResponseCode", "487")]),
    # separators that must not be confused with the concatenation
    ("https://example.com/hook", [("ab", "c"), ("a", "bc")]),
    ("https://example.com/hook", [("a", "&b=c"), ("x", " spaced  out ")]),
]


@pytest.mark.parametrize(("url", "pairs"), CASES)
def test_compute_matches_oracle(url: str, pairs: list[tuple[str, str]]) -> None:
    expected = oracle_signature(url, pairs)
    assert compute_signature(url, pairs, TOKEN) == expected
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    assert compute_signature(url, grouped, TOKEN) == expected


@pytest.mark.parametrize(("url", "pairs"), CASES)
def test_verify_agrees_with_oracle(url: str, pairs: list[tuple[str, str]]) -> None:
    ours = compute_signature(url, pairs, TOKEN)
    assert verify_signature(url, pairs, ours, TOKEN)
    assert oracle_valid(url, pairs, ours)
    assert not verify_signature(url, [*pairs, ("Extra", "1")], ours, TOKEN)
    assert not oracle_valid(url, [*pairs, ("Extra", "1")], ours)


def test_repeated_values_are_sorted_not_kept_in_order() -> None:
    url = "https://example.com/hook"
    forward = [("StatusCallbackEvent", "answered"), ("StatusCallbackEvent", "ringing")]
    backward = list(reversed(forward))
    assert compute_signature(url, forward, TOKEN) == compute_signature(url, backward, TOKEN)
    assert compute_signature(url, forward, TOKEN) == oracle_signature(url, backward)


def test_repeated_identical_values_accept_both_readings() -> None:
    # given a parameter repeated with the same value, which SDKs disagree about
    url = "https://example.com/hook"
    pairs = [("a", "1"), ("a", "1"), ("b", "2")]
    python_style = oracle_signature(url, pairs)
    node_style = all_values_signature(url, pairs)
    assert python_style != node_style
    # then either signature is Twilio's
    assert verify_signature(url, pairs, python_style, TOKEN)
    assert verify_signature(url, pairs, node_style, TOKEN)
    # but neither reading lets a value be dropped
    assert not verify_signature(url, [("a", "1"), ("b", "2")], node_style, TOKEN)


@pytest.mark.parametrize(
    ("signed_url", "received_url"),
    [
        ("https://example.com/hook?a=1", "https://example.com:443/hook?a=1"),
        ("https://example.com:443/hook?a=1", "https://example.com/hook?a=1"),
        ("http://example.com/hook", "http://example.com:80/hook"),
        ("http://example.com:80/hook", "http://example.com/hook"),
        ("http://localhost/carrier", "http://localhost:8080/carrier"),
        ("https://user:pw@example.com/hook", "https://user:pw@example.com:443/hook"),
    ],
)
def test_port_with_and_without(signed_url: str, received_url: str) -> None:
    pairs = [("CallSid", "CA1"), ("CallStatus", "completed")]
    signature = oracle_signature(signed_url, pairs)
    assert verify_signature(received_url, pairs, signature, TOKEN)
    if "@" not in received_url:  # the oracle drops userinfo when it strips a port
        assert oracle_valid(received_url, pairs, signature)


def test_ipv6_host_with_port() -> None:
    pairs = [("CallSid", "CA1")]
    signature = compute_signature("http://[::1]/hook", pairs, TOKEN)
    assert verify_signature("http://[::1]:80/hook", pairs, signature, TOKEN)
    assert verify_signature("http://[::1]/hook", pairs, signature, TOKEN)
    assert not verify_signature("http://[::2]/hook", pairs, signature, TOKEN)


def test_other_port_is_not_the_default_port() -> None:
    pairs = [("CallSid", "CA1")]
    signature = compute_signature("https://example.com:8443/hook", pairs, TOKEN)
    assert not verify_signature("https://example.com:443/hook", pairs, signature, TOKEN)
    assert not oracle_valid("https://example.com:443/hook", pairs, signature)


@pytest.mark.parametrize("url", ["https://example.com:99999/hook", "https://example.com:http/hook", "http://[::1/x"])
def test_malformed_url_is_invalid_not_an_error(url: str) -> None:
    assert not verify_signature(url, [("a", "b")], KNOWN_SIGNATURE, TOKEN)


def test_unencodable_text_is_invalid_not_an_error() -> None:
    assert not verify_signature("https://example.com/hook", [("a", "\udc80")], KNOWN_SIGNATURE, TOKEN)


# -- JSON bodies: bodySHA256 ---------------------------------------------------------------------------------


def json_request(body: str) -> tuple[str, str]:
    url = "https://example.com/carrier/events?bodySHA256=" + hashlib.sha256(body.encode()).hexdigest()
    return url, compute_signature(url, {}, TOKEN)


def test_json_body_with_its_hash_is_valid() -> None:
    body = json.dumps({"CallSid": "CA1", "CallStatus": "completed", "note": "é"})
    url, signature = json_request(body)
    assert verify_signature(url, {}, signature, TOKEN, body=body)
    assert verify_signature(url, {}, signature, TOKEN, body=body.encode())
    assert oracle_valid(url, body, signature)


def test_json_body_that_does_not_match_its_hash_is_invalid() -> None:
    body = '{"CallStatus": "completed"}'
    url, signature = json_request(body)
    forged = '{"CallStatus": "failed"}'
    assert not verify_signature(url, {}, signature, TOKEN, body=forged)
    assert not oracle_valid(url, forged, signature)


def test_json_body_hash_is_covered_by_the_signature() -> None:
    body, forged = '{"a": 1}', '{"a": 2}'
    url, signature = json_request(body)
    forged_url = url.split("=")[0] + "=" + hashlib.sha256(forged.encode()).hexdigest()
    assert not verify_signature(forged_url, {}, signature, TOKEN, body=forged)
    assert not oracle_valid(forged_url, forged, signature)


def test_body_hash_without_body_is_invalid() -> None:
    # The oracle would accept this when given an empty dict; we refuse to call an unchecked body signed.
    body = '{"a": 1}'
    url, signature = json_request(body)
    assert not verify_signature(url, {}, signature, TOKEN)


def test_body_without_body_hash_is_invalid() -> None:
    url = "https://example.com/carrier/events"
    signature = compute_signature(url, {}, TOKEN)
    assert verify_signature(url, {}, signature, TOKEN)
    assert not verify_signature(url, {}, signature, TOKEN, body='{"a": 1}')


# -- property: ours == the oracle's for arbitrary parameters -------------------------------------------------

text = st.text(st.characters(codec="utf-8"), max_size=12)
names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=8)
pairs_strategy = st.lists(st.tuples(st.one_of(names, st.sampled_from(["To", "From", "Digits"])), text), max_size=8)
urls = st.builds(
    lambda scheme, host, port, path, query: f"{scheme}://{host}{port}/{quote(path)}{'?' + query if query else ''}",
    st.sampled_from(["http", "https"]),
    st.sampled_from(["example.com", "abc123.execute-api.us-east-1.amazonaws.com", "localhost", "127.0.0.1"]),
    st.sampled_from(["", ":80", ":443", ":8080"]),
    st.text(st.characters(codec="utf-8"), max_size=10),
    st.text(st.characters(categories=("L", "N"), include_characters="=&%+-_"), max_size=15),
)


@settings(max_examples=300, deadline=None)
@given(url=urls, pairs=pairs_strategy, token=st.text(min_size=1, max_size=32).filter(lambda t: t.isprintable()))
def test_property_same_signature_as_oracle(url: str, pairs: list[tuple[str, str]], token: str) -> None:
    ours = compute_signature(url, pairs, token)
    assert ours == oracle_signature(url, pairs, token)
    assert verify_signature(url, pairs, ours, token)
    assert oracle_valid(url, pairs, ours, token)


@settings(max_examples=200, deadline=None)
@given(url=urls, pairs=pairs_strategy, extra=st.tuples(names, text))
def test_property_changed_parameters_fail_like_the_oracle(
    url: str, pairs: list[tuple[str, str]], extra: tuple[str, str]
) -> None:
    signature = oracle_signature(url, pairs)
    changed = [*pairs, extra]
    expected = oracle_valid(url, changed, signature)  # True only if `extra` repeats an existing pair
    assert verify_signature(url, changed, signature, TOKEN) == expected


def test_package_does_not_import_twilio() -> None:
    code = "import sys, callbridge.carrier.signature, callbridge.carrier.twilio; print('twilio' in sys.modules)"
    layer = Path(__file__).resolve().parents[2] / "layers" / "callbridge"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONPATH": str(layer)}
    )
    assert result.stdout.strip() == "False"
