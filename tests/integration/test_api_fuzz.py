"""Never a 500 for bad input: the handler fuzzed with hypothesis, against moto.

Accounts are created once per test (scrypt is slow on purpose), never inside an example.
"""

from __future__ import annotations

import base64
import json
import string
from typing import Any
from urllib.parse import quote, urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ApiClient, ApiResponse
from tests.integration.conftest import MINIMAL, PHP_FIELDS

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SMALL = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

PARAMETERS = [
    "from",
    "to",
    "call_date",
    "timezone",
    "record",
    "callback_url",
    "answer_play",
    "answer_speak",
    "answer_speak_lang",
    "answer_tts",
    "answer_tts_voice",
    "answer_ivr",
    "answer_dial_to",
    "answer_dial_from",
    "answer_dial_tone_url",
    "answermachine_play",
    "answermachine_speak",
    "answermachine_speak_lang",
    "answermachine_tts",
    "answermachine_tts_voice",
    "answermachine_sms",
    "answermachine_sms_from",
]
# Values that are nearly valid, so examples get past the first rule and reach the later ones.
PLAUSIBLE = [
    *PHP_FIELDS.values(),
    "12812345670",
    "+442079460000",
    "2027-01-11 09:30",
    "2099-01-01 00:00",
    "2027-03-14T02:30:00-05:00",
    "0001-01-01 00:00",
    "9999-12-31 23:59",
    "America/New_York",
    "America",
    "YES",
    "no",
    "Joanna",
    "en-US",
    "menu",
    "https://example.com/a.wav",
    "http://[::1",
    "",
    " ",
]
CONTENT_TYPES = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "application/json",
            "multipart/form-data",
            "multipart/form-data; boundary=x",
            "text/plain; charset=latin-1",
            "application/merge-patch+json",
            "image/png",
        ]
    ),
    st.text(max_size=40),
)
VALUES = st.one_of(st.sampled_from(PLAUSIBLE), st.text(max_size=40))
NAMES = st.one_of(st.sampled_from(PARAMETERS), st.text(max_size=20))


def assert_envelope(response: ApiResponse, allowed: set[int]) -> None:
    """The status is one of `allowed` (never 5xx) and the body is the seed's envelope saying the same."""
    assert response.status in allowed, response.body
    data = response.data
    assert data["code"] == response.status
    assert isinstance(data["code_desc"], str)
    if response.status == 400:
        assert data["code_desc"]
        assert data["errors"]
    if response.status == 200 and "callid" in data:
        assert data["code_desc"] == ""


@FUZZ
@given(body=st.binary(max_size=600), content_type=CONTENT_TYPES, as_base64=st.booleans())
def test_arbitrary_bodies_and_content_types(
    api: ApiClient, body: bytes, content_type: str | None, as_base64: bool
) -> None:
    payload: str | bytes = body if as_base64 else body.decode("latin-1")
    response = api.request("POST", "/pcall/call", body=payload, content_type=content_type)

    assert_envelope(response, {200, 400})


@FUZZ
@given(fields=st.dictionaries(NAMES, VALUES, max_size=8), extra=st.sampled_from([{}, MINIMAL]))
def test_arbitrary_form_fields_and_values(api: ApiClient, fields: dict[str, str], extra: dict[str, str]) -> None:
    response = api.request("POST", "/pcall/call", body=urlencode({**extra, **fields}))

    assert_envelope(response, {200, 400})


@SMALL
@given(fields=st.dictionaries(NAMES, VALUES, max_size=8))
def test_arbitrary_multipart_fields(api: ApiClient, fields: dict[str, str]) -> None:
    boundary = "cbFuzzBoundary"
    body = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields.items()
    )
    body += f"--{boundary}--\r\n"

    response = api.request(
        "POST", "/pcall/call", body=body.encode(), content_type=f"multipart/form-data; boundary={boundary}"
    )

    assert_envelope(response, {200, 400})


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | st.sampled_from(PLAUSIBLE),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


@FUZZ
@given(document=st.one_of(st.dictionaries(NAMES, JSON_VALUES, max_size=8), JSON_VALUES))
def test_arbitrary_json_documents(api: ApiClient, document: Any) -> None:
    response = api.request("POST", "/pcall/call", body=json.dumps(document), content_type="application/json")

    assert_envelope(response, {200, 400})


@SMALL
@given(body=st.binary(min_size=1, max_size=200).filter(lambda b: not _is_utf8(b)))
def test_non_utf8_bodies_are_refused(api: ApiClient, body: bytes) -> None:
    for content_type in ("application/x-www-form-urlencoded", "application/json"):
        response = api.request("POST", "/pcall/call", body=body, content_type=content_type)

        assert_envelope(response, {400})


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@SMALL
@given(
    body=st.one_of(st.text(max_size=200), st.binary(max_size=150).map(lambda b: base64.b64encode(b).decode())),
    is_base64=st.booleans(),
)
def test_base64_flag_that_disagrees_with_the_body(api: ApiClient, body: str, is_base64: bool) -> None:
    # API Gateway's isBase64Encoded may come with a body that is not base64, or the other way round.
    status = _raw_event_request(api, body, is_base64=is_base64)["statusCode"]

    assert status in {200, 400}


def _raw_event_request(api: ApiClient, body: str, *, is_base64: bool) -> dict[str, Any]:
    """The handler called with a body string as-is and an explicit isBase64Encoded flag."""
    import copy

    from tests.conftest import LambdaContext, load_event

    event = copy.deepcopy(load_event("api_create_call.json"))
    assert api.auth
    token = base64.b64encode(f"{api.auth[0]}:{api.auth[1]}".encode()).decode()
    event["headers"]["authorization"] = f"Basic {token}"
    event["body"] = body
    event["isBase64Encoded"] = is_base64
    result: dict[str, Any] = api.module.lambda_handler(event, LambdaContext())
    assert json.loads(result["body"])["data"]["code"] == result["statusCode"]
    return result


AUTH_HEADERS = st.one_of(
    st.text(max_size=60),
    st.builds(lambda s: "Basic " + s, st.text(max_size=60)),
    st.builds(lambda b: "Basic " + base64.b64encode(b).decode(), st.binary(max_size=300)),
    st.builds(
        lambda k, p: "Basic " + base64.b64encode(f"{k}:{p}".encode()).decode(),
        st.text(max_size=300),
        st.text(max_size=30),
    ),
)


@FUZZ
@given(header=AUTH_HEADERS, route=st.sampled_from([("POST", "/pcall/call"), ("GET", "/pcall/calls")]))
def test_weird_authorization_headers(api: ApiClient, header: str, route: tuple[str, str]) -> None:
    method, path = route
    response = api.request(method, path, body=urlencode(MINIMAL), auth=False, headers={"Authorization": header})

    # Examples share one address and may repeat a key: a burst of failures is refused with a 429.
    assert_envelope(response, {401, 429})
    if response.status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    else:
        assert int(response.headers["Retry-After"]) >= 1


QUERY_NAMES = st.one_of(st.sampled_from(["limit", "next", "status", "since", "until"]), st.text(max_size=10))
QUERY_VALUES = st.one_of(
    st.text(max_size=40),
    st.integers().map(str),
    st.sampled_from(["QUEUED,SCHEDULED", "2027-01-10", "2027-01-10T00:00:00Z", "9999-12-31", "0001-01-01"]),
    st.binary(max_size=60).map(lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")),
    st.builds(
        lambda k, c: base64.urlsafe_b64encode(json.dumps({"k": k, "c": c}).encode()).decode().rstrip("="),
        st.sampled_from(["calls", "scheduled", "x"]),
        JSON_VALUES,
    ),
)


@FUZZ
@given(
    query=st.dictionaries(QUERY_NAMES, QUERY_VALUES, max_size=4),
    path=st.sampled_from(["/pcall/calls", "/pcall/scheduled"]),
    authenticated=st.booleans(),
)
def test_weird_query_strings_for_the_lists(
    api: ApiClient, query: dict[str, str], path: str, authenticated: bool
) -> None:
    response = api.get(path, query=query, auth=authenticated)

    assert_envelope(response, {200, 400} if authenticated else {401})


@FUZZ
@given(
    callid=st.one_of(st.text(min_size=1, max_size=80), st.text(alphabet=string.hexdigits, min_size=1, max_size=70)),
    route=st.sampled_from([("GET", "/pcall/calls/"), ("DELETE", "/pcall/scheduled/")]),
    encode=st.booleans(),
)
def test_weird_path_ids(api: ApiClient, callid: str, route: tuple[str, str], encode: bool) -> None:
    method, prefix = route
    path = prefix + (quote(callid, safe="") if encode else callid)

    response = api.request(method, path, body=None, content_type=None)

    assert_envelope(response, {400, 404})


@SMALL
@given(key=st.text(max_size=300))
def test_weird_idempotency_keys(api: ApiClient, key: str) -> None:
    response = api.post_call(MINIMAL, headers={"Idempotency-Key": key})

    assert_envelope(response, {200, 400})


@SMALL
@given(query=st.dictionaries(st.text(max_size=10), st.text(max_size=20), min_size=1, max_size=3))
def test_query_strings_on_post_are_refused(api: ApiClient, query: dict[str, str]) -> None:
    response = api.request("POST", "/pcall/call", body=urlencode(MINIMAL), query=query)

    assert_envelope(response, {400})
