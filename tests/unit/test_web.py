"""Request bodies in every form the seed's clients send, and the seed's envelope."""

from __future__ import annotations

import base64
import contextlib
import json
from urllib.parse import urlencode

import pytest
from callbridge.domain.errors import FieldProblem, InvalidRequest
from callbridge.web import (
    MAX_BODY,
    MAX_LISTED_PROBLEMS,
    envelope,
    error_envelope,
    made_for_another_site,
    parse_params,
    raw_body,
)
from hypothesis import given
from hypothesis import strategies as st

CURL_BODY = b"to=12812345670&answer_play=http://example.com/file.wav"
CURL_PARAMS = {"to": "12812345670", "answer_play": "http://example.com/file.wav"}


def multipart(fields: dict[str, str], boundary: str = "----cbBoundary42") -> tuple[bytes, str]:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    ]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def problem_fields(body: bytes, content_type: str | None) -> list[str]:
    with pytest.raises(InvalidRequest) as caught:
        parse_params(body, content_type)
    return [p.field for p in caught.value.problems]


# --- form-encoded: curl --data and PHP http_build_query


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", None, "text/plain", "APPLICATION/X-WWW-FORM-URLENCODED; charset=UTF-8"],
)
def test_the_seed_curl_body(content_type: str | None) -> None:
    assert parse_params(CURL_BODY, content_type) == CURL_PARAMS


@pytest.mark.parametrize("content_type", ["application/json", None, "application/x-www-form-urlencoded"])
def test_a_json_body_that_starts_with_a_byte_order_mark_is_read(content_type: str | None) -> None:
    # as a Windows editor saves it; JSON's RFC lets a reader ignore it, and a campaign's body already does
    body = b"\xef\xbb\xbf" + json.dumps({"to": "12812345670", "answer_play": "https://example.com/a.wav"}).encode()

    assert parse_params(body, content_type) == {"to": "12812345670", "answer_play": "https://example.com/a.wav"}


def test_a_form_body_that_starts_with_a_byte_order_mark_is_read() -> None:
    assert parse_params(b"\xef\xbb\xbf" + CURL_BODY, None) == CURL_PARAMS


def test_http_build_query_encoding() -> None:
    # PHP's http_build_query: spaces as '+', reserved characters percent-encoded.
    body = (
        b"to=%2B17134567890&answer_tts=This+text+will+be+read+it+when+file.mp3+ends"
        b"&answer_play=https%3A%2F%2Fexample.com%2Ffile.mp3"
    )

    assert parse_params(body, "application/x-www-form-urlencoded") == {
        "to": "+17134567890",
        "answer_tts": "This text will be read it when file.mp3 ends",
        "answer_play": "https://example.com/file.mp3",
    }


def test_form_keeps_blank_values() -> None:
    assert parse_params(b"to=&record=", None) == {"to": "", "record": ""}


def test_form_repeated_field_is_refused() -> None:
    assert problem_fields(b"to=1&to=2", None) == ["to"]


def test_a_field_repeated_many_times_is_named_once() -> None:
    assert problem_fields(b"to=1&to=2&record=YES&to=3&record=NO", None) == ["to", "record"]


def test_form_invalid_utf8_after_percent_decoding_is_refused() -> None:
    assert problem_fields(b"answer_speak=%ff%fe", None) == ["body"]


def test_form_invalid_utf8_bytes_are_refused() -> None:
    assert problem_fields(b"answer_speak=\xff", None) == ["body"]


def test_form_with_too_many_fields_is_refused() -> None:
    assert problem_fields("&".join(f"f{i}=1" for i in range(300)).encode(), None) == ["body"]


def test_form_unicode_values() -> None:
    assert parse_params(urlencode({"answer_speak": "¡Hola, señor! Привет"}).encode(), None) == {
        "answer_speak": "¡Hola, señor! Привет"
    }


# --- JSON


def test_json_object() -> None:
    assert parse_params(json.dumps(CURL_PARAMS).encode(), "application/json") == CURL_PARAMS


def test_json_with_charset_and_vendor_type() -> None:
    assert parse_params(json.dumps(CURL_PARAMS).encode(), "application/json; charset=utf-8") == CURL_PARAMS
    assert parse_params(json.dumps(CURL_PARAMS).encode(), "application/vnd.callbridge+json") == CURL_PARAMS


def test_json_numbers_become_strings_and_nulls_are_absent() -> None:
    assert parse_params(b'{"to": 12812345670, "record": null}', "application/json") == {"to": "12812345670"}


@pytest.mark.parametrize("body", [b"[]", b'"to"', b"12", b"null"])
def test_json_must_be_an_object(body: bytes) -> None:
    assert problem_fields(body, "application/json") == ["body"]


@pytest.mark.parametrize(("value", "given"), [("true", True), ("[1]", [1]), ('{"a": 1}', {"a": 1})])
def test_json_values_that_are_no_strings_are_left_for_the_call_model_to_refuse(value: str, given: object) -> None:
    # The model refuses them ("must be a string") together with every other rule the request breaks.
    assert parse_params(f'{{"to": {value}, "record": "x"}}'.encode(), "application/json") == {
        "to": given,
        "record": "x",
    }


def test_a_json_metadata_object_becomes_its_json_text() -> None:
    assert parse_params(b'{"metadata": {"order": "A-17"}}', "application/json") == {"metadata": '{"order": "A-17"}'}
    # anything else but its JSON text is left to the metadata rule, as JSON text too
    assert parse_params(b'{"metadata": ["A-17"]}', "application/json") == {"metadata": '["A-17"]'}


def test_json_repeated_fields_are_refused() -> None:
    body = b'{"to": "1", "record": "YES", "to": "2", "record": "NO", "to": "3"}'

    assert problem_fields(body, "application/json") == ["to", "record"]


def test_a_json_metadata_object_with_a_repeated_key_is_refused() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_params(b'{"to": "1", "metadata": {"a": "1", "a": "2"}}', "application/json")

    assert caught.value.problems == [FieldProblem("metadata", "key 'a' given more than once")]


@pytest.mark.parametrize("body", [b"{", b"to=1", b"\xff\xfe{}", b"[" * 50_000])
def test_malformed_json_is_refused(body: bytes) -> None:
    assert problem_fields(body, "application/json") == ["body"]


# --- multipart/form-data


def test_multipart() -> None:
    body, content_type = multipart(CURL_PARAMS)

    assert parse_params(body, content_type) == CURL_PARAMS


def test_multipart_repeated_field_is_refused() -> None:
    body = b"".join(
        f'--x\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in [("to", "1"), ("to", "2"), ("to", "3")]
    )

    assert problem_fields(body + b"--x--\r\n", "multipart/form-data; boundary=x") == ["to"]


def test_multipart_utf8_value() -> None:
    body, content_type = multipart({"answer_speak": "Grüße"})

    assert parse_params(body, content_type) == {"answer_speak": "Grüße"}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"to=1", "multipart/form-data"),
        (b"garbage", "multipart/form-data; boundary=x"),
        (b"--x\r\nContent-Disposition: form-data\r\n\r\nv\r\n--x--\r\n", "multipart/form-data; boundary=x"),
        (
            b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n\xff\r\n--x--\r\n',
            "multipart/form-data; boundary=x",
        ),
        (b"--x\r\n\r\n--x--\r\n", "multipart/form-data; boundary=x;0*"),  # IndexError in the email package
        (b"--x\r\nContent-Disposition: form-data; name*=\r\n\r\nv\r\n--x--\r\n", "multipart/form-data; boundary=x"),
    ],
)
def test_malformed_multipart_is_refused(body: bytes, content_type: str) -> None:
    assert problem_fields(body, content_type) == ["body"]


# --- anything else


@pytest.mark.parametrize("content_type", ["application/xml", "image/png", "text/html", "multipart/mixed; boundary=x"])
def test_other_content_types_are_refused(content_type: str) -> None:
    assert problem_fields(CURL_BODY, content_type) == ["Content-Type"]


def test_body_size_limit() -> None:
    assert problem_fields(b"a" * (MAX_BODY + 1), None) == ["body"]


def test_raw_body_base64() -> None:
    assert raw_body(base64.b64encode(CURL_BODY).decode(), True) == CURL_BODY


def test_raw_body_bad_base64_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        raw_body("abc", True)
    with pytest.raises(InvalidRequest):
        raw_body("ü", True)


def test_raw_body_text_and_none() -> None:
    assert raw_body(None, False) == b""
    assert raw_body("ä", False) == "ä".encode()


# --- never anything but InvalidRequest


CONTENT_TYPES = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "application/json",
            "multipart/form-data",
            "multipart/form-data; boundary=x",
            'multipart/form-data; boundary="--b"',
            "text/plain",
        ]
    ),
    st.text(max_size=60),
    st.builds(
        "multipart/form-data; boundary=x{}".format,
        st.text(alphabet=st.sampled_from(list("abn=\"'; *%()<>@,:/?[]\\\r\n\t-_09ü\x00")), max_size=30),
    ),
)


@given(
    body=st.one_of(
        st.binary(max_size=400), st.builds(lambda b: b"--x\r\n" + b + b"\r\n--x--\r\n", st.binary(max_size=80))
    ),
    content_type=CONTENT_TYPES,
)
def test_parse_params_only_ever_raises_invalid_request(body: bytes, content_type: str | None) -> None:
    try:
        params = parse_params(body, content_type)
    except InvalidRequest as exc:
        problems = exc.problems
        assert problems
        return
    # A JSON body's values that are no strings are the call model's to refuse (it says which).
    assert all(isinstance(k, str) and v is not None for k, v in params.items())


@given(
    fields=st.dictionaries(st.text(max_size=12), st.text(max_size=30), max_size=6),
    boundary=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789'()+_,-./:=?", min_size=1, max_size=30),
    garbage=st.binary(max_size=40),
)
def test_multipart_bodies_only_ever_raise_invalid_request(
    fields: dict[str, str], boundary: str, garbage: bytes
) -> None:
    body, content_type = multipart(fields, boundary)
    with contextlib.suppress(InvalidRequest):
        parse_params(garbage + body, content_type)


@given(body=st.text(max_size=200), b64=st.booleans())
def test_raw_body_only_ever_raises_invalid_request(body: str, b64: bool) -> None:
    with contextlib.suppress(InvalidRequest):
        raw_body(body, b64)


# --- the envelope


def test_envelope_is_the_seed_shape() -> None:
    assert envelope(200, callid="abc") == {"data": {"callid": "abc", "code": 200, "code_desc": ""}}


def test_error_envelope_names_each_field_and_rule() -> None:
    exc = InvalidRequest([FieldProblem("to", "required"), FieldProblem("record", "must be YES or NO")])

    assert error_envelope(400, exc) == {
        "data": {
            "code": 400,
            "code_desc": "to: required; record: must be YES or NO",
            "errors": [{"field": "to", "message": "required"}, {"field": "record", "message": "must be YES or NO"}],
        }
    }


def test_error_envelope_lists_every_problem_up_to_its_limit() -> None:
    problems = [FieldProblem(f"calls.{i}.record", "must be YES or NO") for i in range(MAX_LISTED_PROBLEMS)]

    errors = error_envelope(400, InvalidRequest(problems))["data"]["errors"]

    assert errors == [{"field": p.field, "message": p.message} for p in problems]


def test_error_envelope_beyond_its_limit_lists_the_first_and_says_how_many_more() -> None:
    # 10,000 campaign calls with 7 bad cells each: listed in full (twice), far more than a Lambda may answer
    problems = [FieldProblem(f"calls.{i // 7}.field{i % 7}", "must be YES or NO") for i in range(70_000)]

    data = error_envelope(400, InvalidRequest(problems))["data"]

    listed = [{"field": p.field, "message": p.message} for p in problems[:MAX_LISTED_PROBLEMS]]
    unlisted = 70_000 - MAX_LISTED_PROBLEMS
    more = {"field": "body", "message": f"has {unlisted} more problems (a 400 lists the first 1000)"}
    assert data["errors"] == [*listed, more]
    assert data["code_desc"].startswith("calls.0.field0: must be YES or NO; calls.0.field1: ")
    assert data["code_desc"].endswith(f"; body: {more['message']}")
    assert len(json.dumps(data)) < 1024 * 1024


def test_error_envelope_without_problems() -> None:
    assert error_envelope(404, message="nope") == {"data": {"code": 404, "code_desc": "nope"}}


# -- requests a page of another site made a browser send (CSRF) ----------------------------------------------

HOST = "abc123.execute-api.us-east-1.amazonaws.com"


@pytest.mark.parametrize(
    ("method", "headers", "refused"),
    [
        ("POST", {}, False),  # curl, PHP, SDKs: no Sec-Fetch-Site, no Origin
        ("POST", {"sec-fetch-site": "same-origin"}, False),  # the console, Swagger UI
        ("POST", {"sec-fetch-site": "none"}, False),  # typed or bookmarked
        ("POST", {"sec-fetch-site": "cross-site", "origin": "https://evil.example"}, True),  # another site's form
        ("POST", {"sec-fetch-site": "same-site", "origin": f"https://x.{HOST}"}, True),  # another site of the domain
        ("DELETE", {"sec-fetch-site": "Cross-Site"}, True),
        ("PUT", {"sec-fetch-site": "cross-site"}, True),
        ("POST", {"origin": "https://evil.example"}, True),  # a browser without Sec-Fetch-Site
        ("POST", {"origin": "null"}, True),  # a sandboxed frame, a file:// page
        ("POST", {"origin": f"https://{HOST}"}, False),
        ("POST", {"origin": f"https://{HOST.upper()}"}, False),
        ("POST", {"origin": f"https://{HOST}:8443"}, True),
        ("GET", {"sec-fetch-site": "cross-site"}, False),  # a link to the API from another site changes nothing
        ("HEAD", {"origin": "https://evil.example"}, False),
    ],
)
def test_a_state_changing_request_another_sites_page_made_is_told_apart(
    method: str, headers: dict[str, str], refused: bool
) -> None:
    assert made_for_another_site(method, headers, HOST) is refused
