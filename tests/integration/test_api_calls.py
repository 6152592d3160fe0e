"""POST /pcall/call through the handler, against moto: the seed's examples, rules, defaults, scheduling, idempotency."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from callbridge.domain.suppressions import REFUSED

from tests.conftest import AccountCredentials, ApiClient, ApiResponse, make_account
from tests.integration.conftest import (
    CURL_BODY,
    MINIMAL,
    PHP_FIELDS,
    START,
    Clock,
    add_ivr,
    local,
    queued,
    stored_call,
    stored_calls,
)

CALLID = re.compile(r"[0-9a-f]{27}")
PREFIXES = ("answer", "answermachine")


def assert_accepted(response: ApiResponse, params: dict[str, str]) -> str:
    """200 in the seed's shape: the parameters as accepted, code, code_desc, callid. Returns the callid."""
    assert response.status == 200, response.body
    assert response.headers["Content-Type"] == "application/json"
    body = response.json
    assert list(body) == ["data"]
    data = body["data"]
    assert data == {**params, "code": 200, "code_desc": "", "callid": data["callid"]}
    assert CALLID.fullmatch(data["callid"])
    return str(data["callid"])


def assert_invalid(response: ApiResponse, field: str, rule: str) -> None:
    """400 in the seed's envelope, naming the field and the rule in code_desc and in errors."""
    assert response.status == 400, response.body
    data = response.data
    assert data["code"] == 400
    assert {"field": field, "message": rule} in data["errors"]
    assert f"{field}: {rule}" in data["code_desc"]
    assert "callid" not in data


# --- the seed's examples


def test_the_seed_curl_example(api: ApiClient, account: AccountCredentials, aws: Any) -> None:
    # when: exactly what `curl -u KEY:PASSWORD --data "to=...&answer_play=..."` sends
    response = api.request("POST", "/pcall/call", body=CURL_BODY)

    # then
    callid = assert_accepted(
        response,
        {"to": "12812345670", "answer_play": "http://example.com/file.wav", "from": "+12815550100", "record": "NO"},
    )
    assert queued(aws) == [{"callid": callid}]


def test_the_seed_php_example_field_set(api: ApiClient, aws: Any) -> None:
    # when: http_build_query($post_fields)
    response = api.request("POST", "/pcall/call", body=urlencode(PHP_FIELDS))

    # then: the parameters come back as given, in the seed's response shape
    callid = assert_accepted(response, PHP_FIELDS)
    stored = stored_call(aws, callid)
    assert stored["request"]["answer_tts_voice"] == "Joanna"
    assert stored["request"]["to"] == "+17134567890"
    assert stored["request"]["from"] == "+12812345678"


def test_json_body(api: ApiClient) -> None:
    response = api.post_call(PHP_FIELDS, content_type="application/json")

    assert_accepted(response, PHP_FIELDS)


def test_json_numbers_are_accepted_as_strings(api: ApiClient) -> None:
    response = api.request(
        "POST",
        "/pcall/call",
        body=json.dumps({"to": 12812345670, "answer_play": "http://example.com/file.wav"}),
        content_type="application/json",
    )

    assert_accepted(response, {**MINIMAL, "from": "+12815550100", "record": "NO"})


def test_multipart_body(api: ApiClient) -> None:
    boundary = "------------------------d74496d66958873e"
    body = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in PHP_FIELDS.items()
    )
    body += f"--{boundary}--\r\n"

    response = api.request(
        "POST", "/pcall/call", body=body.encode(), content_type=f"multipart/form-data; boundary={boundary}"
    )

    assert_accepted(response, PHP_FIELDS)


def test_base64_encoded_form_body(api: ApiClient) -> None:
    # API Gateway base64-encodes bodies it considers binary.
    response = api.request("POST", "/pcall/call", body=CURL_BODY.encode())

    assert response.status == 200
    assert response.data["to"] == "12812345670"


def test_every_seed_parameter(api: ApiClient, account: AccountCredentials, aws: Any, clock: Clock) -> None:
    # given
    add_ivr(aws, account.api_key, "menu-1")
    params = {
        **PHP_FIELDS,
        "call_date": local(START + timedelta(days=1)),
        "callback_url": "https://example.com/callback",
        "answer_speak": "Hello",
        "answer_speak_lang": "en-GB",
        "answer_ivr": "menu-1",
        "answer_dial_from": "12812345679",
        "answer_dial_tone_url": "https://example.com/tone.wav",
        "answermachine_play": "https://example.com/vm.wav",
        "answermachine_tts": "Call me back please",
        "answermachine_tts_voice": "Lucia",
        "answermachine_sms_from": "12812345670",
    }

    # when
    response = api.request("POST", "/pcall/call", body=urlencode(params))

    # then
    callid = assert_accepted(response, params)
    assert set(stored_call(aws, callid)["request"]) == set(params)


def test_unknown_ivr_code_is_refused(api: ApiClient) -> None:
    response = api.post_call({"to": "12812345670", "answer_ivr": "nope"})

    assert_invalid(response, "answer_ivr", "unknown IVR menu code 'nope' for this account")


def test_another_accounts_ivr_is_unknown(api: ApiClient, other: AccountCredentials, aws: Any) -> None:
    add_ivr(aws, other.api_key, "theirs")

    response = api.post_call({"to": "12812345670", "answer_ivr": "theirs"})

    assert response.status == 400


# --- defaults from the account


def test_from_defaults_to_the_accounts_caller_id(api: ApiClient, aws: Any) -> None:
    callid = assert_accepted(api.post_call(MINIMAL), {**MINIMAL, "from": "+12815550100", "record": "NO"})

    assert stored_call(aws, callid)["request"]["from"] == "+12815550100"


def test_record_defaults_to_the_accounts_setting(api_module: Any, accounts_store: Any, aws: Any) -> None:
    # given: an account that records by default
    recorder = make_account(accounts_store, caller_id="12815550199", record="YES")
    client = ApiClient(api_module, auth=(recorder.api_key, recorder.password))

    # when
    response = client.post_call(MINIMAL)

    # then
    callid = assert_accepted(response, {**MINIMAL, "from": "+12815550199", "record": "YES"})
    assert stored_call(aws, callid)["request"]["record"] == "YES"


def test_given_from_and_record_win_over_the_defaults(api_module: Any, accounts_store: Any) -> None:
    recorder = make_account(accounts_store, caller_id="12815550199", record="YES")
    client = ApiClient(api_module, auth=(recorder.api_key, recorder.password))

    response = client.post_call({**MINIMAL, "from": "12812345678", "record": "no"})

    assert response.status == 200
    assert (response.data["from"], response.data["record"]) == ("12812345678", "NO")


# --- each seed rule: a 400 naming the field and the rule


def test_rule_to_is_required(api: ApiClient) -> None:
    assert_invalid(api.post_call({"answer_play": "http://example.com/a.wav"}), "to", "required")


def test_rule_at_least_one_answer_option(api: ApiClient) -> None:
    response = api.post_call({"to": "12812345670", "answermachine_sms": "hi"})

    assert response.status == 400
    assert response.data["errors"][0]["field"] == "answer_"
    assert "at least one answer_ option is required" in response.data["code_desc"]


def test_rule_speak_lang_required_with_speak(api: ApiClient) -> None:
    for prefix in PREFIXES:
        response = api.post_call({**MINIMAL, f"{prefix}_speak": "Hello"})

        assert_invalid(response, f"{prefix}_speak_lang", f"required when {prefix}_speak is given")


def test_rule_speak_lang_one_of_the_nine(api: ApiClient) -> None:
    for prefix in PREFIXES:
        response = api.post_call({**MINIMAL, f"{prefix}_speak": "Hello", f"{prefix}_speak_lang": "en-AU"})

        assert_invalid(
            response,
            f"{prefix}_speak_lang",
            "must be one of en-GB, en-US, fr-FR, de-DE, it-IT, pt-BR, ru-RU, es-ES, es-US",
        )


def test_each_of_the_nine_languages_is_accepted(api: ApiClient) -> None:
    for lang in ["en-GB", "en-US", "fr-FR", "de-DE", "it-IT", "pt-BR", "ru-RU", "es-ES", "es-US"]:
        response = api.post_call({**MINIMAL, "answermachine_speak": "Hola", "answermachine_speak_lang": lang})

        assert response.status == 200, (lang, response.body)


def test_rule_tts_voice_required_with_tts(api: ApiClient) -> None:
    for prefix in PREFIXES:
        response = api.post_call({**MINIMAL, f"{prefix}_tts": "Hello"})

        assert_invalid(response, f"{prefix}_tts_voice", f"required when {prefix}_tts is given")


def test_rule_tts_voice_must_be_known(api: ApiClient) -> None:
    for prefix in PREFIXES:
        response = api.post_call({**MINIMAL, f"{prefix}_tts": "Hello", f"{prefix}_tts_voice": "en-US_NobodyVoice"})

        assert response.status == 400
        assert response.data["errors"][0]["field"] == f"{prefix}_tts_voice"
        assert "Amazon Polly voice id" in response.data["code_desc"]


def test_polly_ids_and_ibm_names_are_accepted_and_stored_as_polly_ids(api: ApiClient, aws: Any) -> None:
    voices = {
        "Joanna": "Joanna",
        "Polly.Matthew": "Matthew",
        "en-US_AllisonVoice": "Joanna",
        "de-DE_BirgitVoice": "Marlene",
    }
    for voice, polly in voices.items():
        response = api.post_call({**MINIMAL, "answermachine_tts": "Hello", "answermachine_tts_voice": voice})

        assert response.status == 200, response.body
        assert response.data["answermachine_tts_voice"] == voice  # echoed as given
        assert stored_call(aws, response.data["callid"])["request"]["answermachine_tts_voice"] == polly


def test_rule_record_yes_or_no(api: ApiClient) -> None:
    assert_invalid(api.post_call({**MINIMAL, "record": "maybe"}), "record", "must be YES or NO")


def test_rule_urls_are_http_or_https(api: ApiClient) -> None:
    for field in ["callback_url", "answer_play", "answermachine_play"]:
        for url in ["ftp://example.com/file.wav", "example.com/file.wav", "javascript:alert(1)"]:
            response = api.post_call({**MINIMAL, field: url})

            assert_invalid(response, field, "must be an http:// or https:// URL")


def test_rule_phone_numbers_are_international(api: ApiClient) -> None:
    rule = "must be an international phone number: country code, area code and number, e.g. 12812345678"
    for field in ["to", "from", "answer_dial_to"]:
        for number in ["2812345678", "0044207946000", "12345", "call-me"]:
            response = api.post_call({**MINIMAL, field: number})

            assert response.status == 400, (field, number)
            assert response.data["errors"] == [{"field": field, "message": rule}]


def test_phone_numbers_with_plus_and_separators_are_accepted(api: ApiClient, aws: Any) -> None:
    response = api.post_call({**MINIMAL, "to": "+44 20 7946 0000"})

    assert response.status == 200
    assert response.data["to"] == "+44 20 7946 0000"
    assert stored_call(aws, response.data["callid"])["request"]["to"] == "+442079460000"


def test_unknown_parameters_are_refused(api: ApiClient) -> None:
    assert_invalid(api.post_call({**MINIMAL, "answer_sms": "hi"}), "answer_sms", "unknown parameter")


def test_parameters_in_the_query_string_are_refused(api: ApiClient) -> None:
    response = api.request("POST", "/pcall/call", body=CURL_BODY, query={"to": "12812345670"})

    assert_invalid(response, "to", "unknown query parameter; parameters belong in the request body")


def test_every_problem_is_reported_together(api: ApiClient) -> None:
    response = api.post_call({"to": "1", "record": "x", "answer_play": "nope", "bogus": "1"})

    assert response.status == 400
    assert {e["field"] for e in response.data["errors"]} == {"to", "record", "answer_play", "bogus"}


def test_unsupported_content_type(api: ApiClient) -> None:
    response = api.request("POST", "/pcall/call", body="<call/>", content_type="application/xml")

    assert response.status == 400
    assert response.data["errors"][0]["field"] == "Content-Type"


def test_invalid_requests_store_and_queue_nothing(api: ApiClient, aws: Any) -> None:
    api.post_call({"to": "12812345670"})
    api.post_call({**MINIMAL, "record": "maybe"})

    assert stored_calls(aws) == []
    assert queued(aws) == []


# --- credentials


def assert_unauthorized(response: ApiResponse) -> None:
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert response.data["code"] == 401
    assert response.data["code_desc"].startswith("Invalid API credentials")
    assert set(response.data) == {"code", "code_desc"}


ROUTES = [
    ("POST", "/pcall/call"),
    ("GET", "/pcall/scheduled"),
    ("DELETE", "/pcall/scheduled/0123456789abcdef0123456789a"),
    ("GET", "/pcall/calls"),
    ("GET", "/pcall/calls/0123456789abcdef0123456789a"),
]


def test_missing_credentials(api: ApiClient) -> None:
    for method, path in ROUTES:
        assert_unauthorized(api.request(method, path, body=CURL_BODY, auth=False))


def test_wrong_password(api: ApiClient, account: AccountCredentials) -> None:
    for method, path in ROUTES:
        assert_unauthorized(api.request(method, path, body=CURL_BODY, auth=(account.api_key, "wrong")))


def test_unknown_key(api: ApiClient, account: AccountCredentials) -> None:
    assert_unauthorized(api.request("POST", "/pcall/call", body=CURL_BODY, auth=("cb_nobody", account.password)))


def test_malformed_authorization(api: ApiClient) -> None:
    for header in ["Bearer abc", "Basic", "Basic %%%", "Basic " + base64.b64encode(b"nocolon").decode(), "Digest x"]:
        response = api.request("POST", "/pcall/call", body=CURL_BODY, auth=False, headers={"Authorization": header})

        assert_unauthorized(response)


def test_credentials_are_checked_before_parameters(api: ApiClient, account: AccountCredentials) -> None:
    # Powertools validates `limit` before the route runs; a caller without credentials still gets a 401.
    for auth in (False, (account.api_key, "wrong")):
        for path in ("/pcall/calls", "/pcall/scheduled"):
            assert_unauthorized(api.get(path, query={"limit": "abc"}, auth=auth))
    assert api.get("/pcall/calls", query={"limit": "abc"}).status == 400


def test_unauthorized_requests_store_nothing(api: ApiClient, aws: Any) -> None:
    api.request("POST", "/pcall/call", body=CURL_BODY, auth=False)

    assert stored_calls(aws) == []
    assert queued(aws) == []


# --- immediate and scheduled calls


def test_an_immediate_call_is_stored_queued_and_sent_to_the_queue(api: ApiClient, aws: Any, clock: Clock) -> None:
    callid = api.post_call(MINIMAL).data["callid"]

    call = stored_call(aws, callid)
    assert call["status"] == "QUEUED"
    assert call.get("call_date") is None
    assert call["created_at"] == "2027-01-10T12:00:30.000Z"
    assert [e["event"] for e in call["timeline"]] == ["accepted"]
    assert queued(aws) == [{"callid": callid}]


def test_a_scheduled_call_is_stored_scheduled_and_not_queued(api: ApiClient, aws: Any, clock: Clock) -> None:
    response = api.post_call({**MINIMAL, "call_date": "2027-01-11 09:30"})

    call = stored_call(aws, response.data["callid"])
    assert call["status"] == "SCHEDULED"
    assert call["call_date"] == "2027-01-11T09:30:00.000Z"  # the account's zone is UTC by default
    assert response.data["call_date"] == "2027-01-11 09:30"
    assert queued(aws) == []


def test_call_date_is_in_the_accounts_time_zone(api_module: Any, accounts_store: Any, aws: Any, clock: Clock) -> None:
    madrid = make_account(accounts_store, caller_id="34912345678", timezone="Europe/Madrid")
    client = ApiClient(api_module, auth=(madrid.api_key, madrid.password))

    response = client.post_call({**MINIMAL, "call_date": "2027-01-11 09:30"})

    assert stored_call(aws, response.data["callid"])["call_date"] == "2027-01-11T08:30:00.000Z"


def test_an_iso_call_date_without_an_offset_is_read_in_the_accounts_time_zone_or_timezone(
    api_module: Any, accounts_store: Any, aws: Any, clock: Clock
) -> None:
    madrid = make_account(accounts_store, caller_id="34912345678", timezone="Europe/Madrid")
    client = ApiClient(api_module, auth=(madrid.api_key, madrid.password))

    plain = client.post_call({**MINIMAL, "call_date": "2027-01-11T09:30"})
    precise = client.post_call({**MINIMAL, "call_date": "2027-01-11T09:30:15.250"})
    tokyo = client.post_call({**MINIMAL, "call_date": "2027-01-11T09:30", "timezone": "Asia/Tokyo"})

    assert stored_call(aws, plain.data["callid"])["call_date"] == "2027-01-11T08:30:00.000Z"
    assert stored_call(aws, precise.data["callid"])["call_date"] == "2027-01-11T08:30:15.250Z"
    assert stored_call(aws, tokyo.data["callid"])["call_date"] == "2027-01-11T00:30:00.000Z"
    assert plain.data["call_date"] == "2027-01-11T09:30"  # echoed as given


def test_record_takes_any_letter_case_and_is_accepted_in_capitals(api: ApiClient, aws: Any, clock: Clock) -> None:
    for given, accepted in [("yes", "YES"), ("No", "NO"), (" yEs ", "YES")]:
        response = api.post_call({**MINIMAL, "record": given})

        assert response.status == 200, response.body
        assert response.data["record"] == accepted
        assert api.get(f"/pcall/calls/{response.data['callid']}").data["call"]["request"]["record"] == accepted


def test_the_timezone_parameter_overrides_the_accounts(api: ApiClient, aws: Any, clock: Clock) -> None:
    response = api.post_call({**MINIMAL, "call_date": "2027-01-11 09:30", "timezone": "Asia/Tokyo"})

    assert response.status == 200
    assert response.data["timezone"] == "Asia/Tokyo"
    assert stored_call(aws, response.data["callid"])["call_date"] == "2027-01-11T00:30:00.000Z"


def test_iso_8601_with_an_offset(api: ApiClient, aws: Any, clock: Clock) -> None:
    response = api.post_call({**MINIMAL, "call_date": "2027-01-11T09:30:00-05:00", "timezone": "Asia/Tokyo"})

    assert stored_call(aws, response.data["callid"])["call_date"] == "2027-01-11T14:30:00.000Z"


def test_unknown_timezone(api: ApiClient, clock: Clock) -> None:
    response = api.post_call({**MINIMAL, "call_date": "2027-01-11 09:30", "timezone": "Mars/Olympus"})

    assert response.status == 400
    assert response.data["errors"][0]["field"] == "timezone"


def test_call_date_in_the_current_minute_is_accepted(api: ApiClient, aws: Any, clock: Clock) -> None:
    response = api.post_call({**MINIMAL, "call_date": "2027-01-10 12:00"})  # now is 12:00:30

    assert response.status == 200
    # Due within 15 minutes (here: already due): straight to the queue, not left for the scheduler, and
    # SCHEDULED until the placer claims it.
    call = stored_call(aws, response.data["callid"])
    assert call["status"] == "SCHEDULED"
    assert call["dispatched_at"] == "2027-01-10T12:00:30.000Z"
    assert call["call_date"] == "2027-01-10T12:00:00.000Z"
    # the message carries its call_date, so the placer can hold it until then without reading the call
    assert queued(aws) == [{"callid": response.data["callid"], "call_date": "2027-01-10T12:00:00.000Z"}]


def test_call_date_before_the_current_minute_is_refused(api: ApiClient, clock: Clock) -> None:
    response = api.post_call({**MINIMAL, "call_date": "2027-01-10 11:59"})

    assert response.status == 400
    assert response.data["errors"][0]["field"] == "call_date"
    assert "in the past" in response.data["errors"][0]["message"]


def test_call_date_365_days_ahead_is_accepted(api: ApiClient, clock: Clock) -> None:
    assert api.post_call({**MINIMAL, "call_date": "2028-01-10 12:00"}).status == 200


def test_call_date_more_than_365_days_ahead_is_refused(api: ApiClient, clock: Clock) -> None:
    response = api.post_call({**MINIMAL, "call_date": "2028-01-10 12:01"})

    assert_invalid(response, "call_date", "is more than 365 days ahead")


def test_malformed_call_date(api: ApiClient, clock: Clock) -> None:
    for value in ["tomorrow", "2027-01-11", "11/01/2027 09:30", "0001-01-01 00:00"]:
        response = api.post_call({**MINIMAL, "call_date": value, "timezone": "Asia/Tokyo"})

        assert response.status == 400, value
        assert response.data["errors"][0]["field"] == "call_date"


# America/New_York: 2027-03-14 02:00 EST → 03:00 EDT; 2027-11-07 02:00 EDT → 01:00 EST.


@pytest.fixture
def new_york(api_module: Any, accounts_store: Any, clock: Clock) -> ApiClient:
    clock.now = datetime(2027, 1, 1, tzinfo=UTC)
    account = make_account(accounts_store, caller_id="12125550100", timezone="America/New_York")
    return ApiClient(api_module, auth=(account.api_key, account.password))


def test_dst_a_skipped_wall_clock_time_is_refused(new_york: ApiClient, aws: Any) -> None:
    response = new_york.post_call({**MINIMAL, "call_date": "2027-03-14 02:30"})

    assert_invalid(
        response,
        "call_date",
        "2027-03-14 02:30 does not exist in America/New_York (skipped by a daylight-saving change)",
    )
    assert stored_calls(aws) == []


def test_dst_conversion_around_the_switches(new_york: ApiClient, aws: Any) -> None:
    expected = {
        "2027-03-14 01:30": "2027-03-14T06:30:00.000Z",  # EST (UTC-5)
        "2027-03-14 03:30": "2027-03-14T07:30:00.000Z",  # EDT (UTC-4)
        "2027-11-07 00:30": "2027-11-07T04:30:00.000Z",  # EDT
        "2027-11-07 01:30": "2027-11-07T05:30:00.000Z",  # the repeated hour: its first occurrence, EDT
        "2027-11-07 02:30": "2027-11-07T07:30:00.000Z",  # EST
    }
    for call_date, utc in expected.items():
        response = new_york.post_call({**MINIMAL, "call_date": call_date})

        assert response.status == 200, response.body
        assert stored_call(aws, response.data["callid"])["call_date"] == utc


# --- Idempotency-Key


def test_a_retry_with_the_same_key_and_body_returns_the_first_response(api: ApiClient, aws: Any) -> None:
    # given
    first = api.post_call(MINIMAL, headers={"Idempotency-Key": "order-42"})

    # when
    retry = api.post_call(MINIMAL, headers={"Idempotency-Key": "order-42"})

    # then
    assert first.status == retry.status == 200
    assert retry.json == first.json
    assert [c["callid"] for c in stored_calls(aws)] == [first.data["callid"]]
    assert queued(aws) == [{"callid": first.data["callid"]}]


def test_a_retry_in_another_encoding_of_the_same_request_is_the_same_request(api: ApiClient, aws: Any) -> None:
    first = api.post_call(MINIMAL, headers={"Idempotency-Key": "k1"})
    retry = api.post_call(MINIMAL, content_type="application/json", headers={"Idempotency-Key": "k1"})

    assert retry.data["callid"] == first.data["callid"]
    assert len(stored_calls(aws)) == 1


def test_the_same_key_with_another_body_is_a_conflict(api: ApiClient, aws: Any) -> None:
    first = api.post_call(MINIMAL, headers={"Idempotency-Key": "order-42"})

    other = api.post_call({**MINIMAL, "to": "17134567890"}, headers={"Idempotency-Key": "order-42"})

    assert other.status == 409
    assert other.data["code"] == 409
    assert "Idempotency-Key" in other.data["code_desc"]
    assert [c["callid"] for c in stored_calls(aws)] == [first.data["callid"]]
    assert len(queued(aws)) == 1


def test_different_keys_make_different_calls(api: ApiClient, aws: Any) -> None:
    a = api.post_call(MINIMAL, headers={"Idempotency-Key": "a"})
    b = api.post_call(MINIMAL, headers={"Idempotency-Key": "b"})

    assert a.data["callid"] != b.data["callid"]
    assert len(stored_calls(aws)) == 2


def test_a_concurrent_request_with_the_same_key_replays(api: ApiClient, api_module: Any, aws: Any) -> None:
    # given: the first request has stored its call and key...
    first = api.post_call(MINIMAL, headers={"Idempotency-Key": "race"})
    records = api_module.deps().idempotency
    real = records.get
    lookups: list[str] = []

    def not_yet_visible(account_id: str, key: str) -> Any:
        # ...but the second request's look-up ran before that write was visible
        lookups.append(key)
        return None if len(lookups) == 1 else real(account_id, key)

    records.get = not_yet_visible
    try:
        # when
        second = api.post_call(MINIMAL, headers={"Idempotency-Key": "race"})
    finally:
        records.get = real

    # then: the conditional write loses, and the first response is replayed
    assert lookups == ["race", "race"]
    assert second.status == 200
    assert second.json == first.json
    assert len(stored_calls(aws)) == 1
    assert len(queued(aws)) == 1


def test_idempotency_records_are_read_consistently(api: ApiClient, api_module: Any) -> None:
    # given: the idempotency records' client, recording each GetItem it sends
    records = api_module.deps().idempotency
    lazy = records._db
    db = lazy()
    reads: list[dict[str, Any]] = []

    class Recording:
        def __getattr__(self, name: str) -> Any:
            return getattr(db, name)

        def get_item(self, **kwargs: Any) -> Any:
            reads.append(kwargs)
            return db.get_item(**kwargs)

    records._db = Recording
    try:
        # when: a request and its retry with the same key
        api.post_call(MINIMAL, headers={"Idempotency-Key": "consistent"})
        api.post_call(MINIMAL, headers={"Idempotency-Key": "consistent"})
    finally:
        records._db = lazy

    # then: every read of the key is strongly consistent (an eventually consistent read may miss a fresh record)
    idempotency_reads = [r for r in reads if r["Key"]["sk"]["S"].startswith("IDEM#")]
    assert idempotency_reads
    assert all(r.get("ConsistentRead") is True for r in idempotency_reads)


def test_keys_are_per_account(api: ApiClient, other_api: ApiClient, aws: Any) -> None:
    mine = api.post_call(MINIMAL, headers={"Idempotency-Key": "shared"})
    theirs = other_api.post_call({**MINIMAL, "to": "17134567890"}, headers={"Idempotency-Key": "shared"})

    assert theirs.status == 200
    assert theirs.data["callid"] != mine.data["callid"]


def test_a_retry_of_a_scheduled_call_after_its_minute_replays(api: ApiClient, aws: Any, clock: Clock) -> None:
    # given: a call scheduled for this minute
    params = {**MINIMAL, "call_date": "2027-01-10 12:00"}
    first = api.post_call(params, headers={"Idempotency-Key": "sched"})

    # when: the client retries after the minute has passed
    clock.advance(minutes=2)
    retry = api.post_call(params, headers={"Idempotency-Key": "sched"})

    # then
    assert retry.status == 200, retry.body
    assert retry.json == first.json
    assert len(stored_calls(aws)) == 1


def test_invalid_idempotency_keys(api: ApiClient, aws: Any) -> None:
    # "😀" * 255 once overflowed DynamoDB's 1024-byte sort key: a 503 instead of a 400.
    for key in ["", "x" * 256, "é" * 10, "😀" * 255, "tab\tkey"]:
        response = api.post_call(MINIMAL, headers={"Idempotency-Key": key})

        assert response.status == 400, response.body
        assert response.data["errors"][0]["field"] == "Idempotency-Key"
    assert stored_calls(aws) == []


def test_an_expired_key_can_be_used_again(api: ApiClient, aws: Any, clock: Clock) -> None:
    first = api.post_call(MINIMAL, headers={"Idempotency-Key": "daily"})

    clock.advance(hours=25)
    again = api.post_call(MINIMAL, headers={"Idempotency-Key": "daily"})

    assert again.status == 200
    assert again.data["callid"] != first.data["callid"]
    assert len(stored_calls(aws)) == 2


def test_a_failed_request_does_not_burn_the_key(api: ApiClient) -> None:
    bad = api.post_call({"to": "12812345670"}, headers={"Idempotency-Key": "k"})
    good = api.post_call(MINIMAL, headers={"Idempotency-Key": "k"})

    assert (bad.status, good.status) == (400, 200)


def test_unknown_paths_answer_404_in_the_envelope(api: ApiClient) -> None:
    for method, path in [("GET", "/pcall/nope"), ("POST", "/pcall/calls/x/y"), ("GET", "/pcall"), ("GET", "/pcall/")]:
        response = api.request(method, path, body=None, content_type=None)
        assert response.status == 404
        assert response.data == {"code": 404, "code_desc": "no such path"}


def test_wrong_methods_answer_405_with_allow_in_the_envelope(api: ApiClient) -> None:
    cases = [
        ("GET", "/pcall/call", "POST"),
        ("POST", "/pcall/scheduled", "GET"),
        ("PUT", "/pcall/calls/0123456789abcdef0123456789a", "DELETE, GET"),
        ("POST", "/pcall/ivr/main", "DELETE, GET, PUT"),
    ]
    for method, path, allowed in cases:
        response = api.request(method, path, body=None, content_type=None)

        assert response.status == 405, (method, path)
        assert response.headers["Allow"] == allowed
        assert response.data == {"code": 405, "code_desc": f"method not allowed; this path takes {allowed}"}


def test_a_json_body_without_content_type_is_json(api: ApiClient, aws: Any) -> None:
    # curl -d '{...}' with no -H sends a form Content-Type; some clients send none at all
    for content_type in (None, "application/x-www-form-urlencoded"):
        response = api.request("POST", "/pcall/call", body=json.dumps(MINIMAL), content_type=content_type)

        assert response.status == 200, (content_type, response.body)
        assert stored_call(aws, response.data["callid"])["request"]["to"] == "+12812345670"


def test_every_problem_of_a_call_request_is_reported_at_once(api: ApiClient) -> None:
    # given: no `to`, no answer_ option, and a modifier without its option
    response = api.post_call({"answer_speak_lang": "en-US", "record": "maybe"})

    assert response.status == 400
    assert {e["field"] for e in response.data["errors"]} == {"to", "answer_", "answer_speak_lang", "record"}


def test_every_problem_of_a_json_call_request_is_reported_at_once(api: ApiClient) -> None:
    # given: a JSON body whose `to` and `answer_play` are no strings, a bad `record` and no answer_ option of use
    body = json.dumps({"to": True, "answer_play": ["http://example.com/a.wav"], "record": "maybe", "bogus": 1})

    response = api.request("POST", "/pcall/call", body=body, content_type="application/json")

    # then: the type problems come with every other rule the request breaks, not instead of them
    assert response.status == 400
    assert response.data["errors"] == [
        {"field": "to", "message": "must be a string"},
        {"field": "record", "message": "must be YES or NO"},
        {"field": "answer_play", "message": "must be a string"},
        {"field": "bogus", "message": "unknown parameter"},
    ]


def test_a_repeated_json_parameter_is_refused(api: ApiClient, aws: Any) -> None:
    # given: `to` twice, as a form body repeating it is refused (the JSON parser would keep the last)
    body = '{"to": "12812345670", "to": "12812345671", "answer_play": "http://example.com/a.wav"}'

    response = api.request("POST", "/pcall/call", body=body, content_type="application/json")

    assert_invalid(response, "to", "given more than once")
    assert stored_calls(aws) == []


def test_the_accounts_rules_are_reported_with_the_parameters_rules(api: ApiClient, clock: Clock, aws: Any) -> None:
    # given: a number on the do-not-call list
    assert api.request("PUT", "/pcall/suppressions/12812345670", body=None, content_type=None).status == 200

    # when: a past call_date, an unknown menu, a listed number and a call window no zone can be told for
    # (the rules that need the account), with a bad `record` and an Idempotency-Key that is no key
    response = api.post_call(
        {
            **MINIMAL,
            "answer_ivr": "nope",
            "call_date": "2027-01-10 11:59",
            "record": "maybe",
            "bogus": "1",
        },
        headers={"Idempotency-Key": "é"},
    )

    # then: every one of them at once
    assert response.status == 400
    assert {(e["field"], e["message"].split(" (")[0]) for e in response.data["errors"]} == {
        ("Idempotency-Key", "must be 1-255 printable ASCII characters"),
        ("record", "must be YES or NO"),
        ("bogus", "unknown parameter"),
        ("to", REFUSED),
        ("call_date", "is in the past"),
        ("answer_ivr", "unknown IVR menu code 'nope' for this account"),
    }
    assert stored_calls(aws) == []


def test_a_window_without_a_zone_is_reported_with_the_parameters_rules(api: ApiClient) -> None:
    # given: a number whose time zone cannot be told, a calling window, and a bad `record`
    response = api.post_call(
        {"to": "+8823912345678", "answer_play": "http://example.com/a.wav", "call_window": "09:00-17:00", "record": "x"}
    )

    assert response.status == 400
    assert {e["field"] for e in response.data["errors"]} == {"record", "recipient_timezone"}


def test_unknown_query_parameters_are_reported_with_the_bodys_problems(api: ApiClient) -> None:
    response = api.request("POST", "/pcall/call", body="to=12812345670&record=maybe", query={"to": "1"})

    assert response.status == 400
    assert {e["field"] for e in response.data["errors"]} == {"to", "record", "answer_"}
