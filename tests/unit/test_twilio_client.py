"""TwilioClient against httpx.MockTransport: the exact requests it sends and how it reads every kind of answer."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from callbridge.carrier import (
    CarrierCall,
    CarrierError,
    CarrierRejected,
    CarrierRetryable,
    CarrierUncertain,
    CreateCall,
    SmsResult,
)
from callbridge.carrier.twilio import TwilioClient, default_timeout

ACCOUNT = "AC" + "a" * 32
TOKEN = "secret-token"
CALL_SID = "CA" + "1" * 32
CALLS = f"/2010-04-01/Accounts/{ACCOUNT}/Calls.json"
CALL = f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{CALL_SID}.json"
MESSAGES = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
BASIC = "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()

Handler = Callable[[httpx.Request], httpx.Response]


def call_resource(**overrides: Any) -> dict[str, Any]:
    """A Call resource as Twilio's API returns it (fields abridged)."""
    resource: dict[str, Any] = {
        "sid": CALL_SID,
        "account_sid": ACCOUNT,
        "to": "+17134567890",
        "from": "+12812345678",
        "status": "queued",
        "direction": "outbound-api",
        "answered_by": None,
        "duration": None,
        "queue_time": "0",
        "start_time": None,
        "end_time": None,
        "date_created": "Thu, 26 Nov 2026 14:33:31 +0000",
        "price": None,
        "price_unit": "USD",
        "api_version": "2010-04-01",
        "uri": f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{CALL_SID}.json",
    }
    resource.update(overrides)
    return resource


class Recorder:
    """A MockTransport handler that records each request and answers from a script."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def form(self, index: int = -1) -> list[tuple[str, str]]:
        return parse_qsl(self.requests[index].content.decode(), keep_blank_values=True, strict_parsing=True)


def client_for(recorder: Handler, **kwargs: Any) -> TwilioClient:
    return TwilioClient(ACCOUNT, TOKEN, http=httpx.Client(transport=httpx.MockTransport(recorder)), **kwargs)


def twilio_error(status: int, code: int, message: str, **headers: str) -> httpx.Response:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return httpx.Response(status, json=body, headers=headers)


# -- create_call ---------------------------------------------------------------------------------------------


def test_create_call_sends_every_field_form_encoded_with_basic_auth() -> None:
    # given
    recorder = Recorder(httpx.Response(201, json=call_resource()))
    request = CreateCall(
        to="+17134567890",
        from_="+12812345678",
        url="https://hooks.example/carrier/answer/c1?x=1&y=2",
        status_callback="https://hooks.example/carrier/status/c1",
        record=True,
        recording_status_callback="https://hooks.example/carrier/recording/c1",
        time_limit=3600,
    )
    # when
    result = client_for(recorder).create_call(request)
    # then
    sent = recorder.last
    assert sent.method == "POST"
    assert str(sent.url) == "https://api.twilio.com" + CALLS
    assert sent.headers["Authorization"] == BASIC
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert sent.headers["Accept"] == "application/json"
    assert recorder.form() == [
        ("To", "+17134567890"),
        ("From", "+12812345678"),
        ("Url", "https://hooks.example/carrier/answer/c1?x=1&y=2"),
        ("Method", "POST"),
        ("StatusCallback", "https://hooks.example/carrier/status/c1"),
        ("StatusCallbackMethod", "POST"),
        ("StatusCallbackEvent", "initiated"),
        ("StatusCallbackEvent", "ringing"),
        ("StatusCallbackEvent", "answered"),
        ("StatusCallbackEvent", "completed"),
        ("MachineDetection", "DetectMessageEnd"),
        ("Record", "true"),
        ("RecordingStatusCallback", "https://hooks.example/carrier/recording/c1"),
        ("RecordingStatusCallbackMethod", "POST"),
        ("Timeout", "45"),
        ("TimeLimit", "3600"),
    ]
    assert result == CarrierCall(sid=CALL_SID, status="queued", queue_time_ms=0)


def test_create_call_leaves_out_what_is_not_wanted() -> None:
    recorder = Recorder(httpx.Response(201, json=call_resource()))
    request = CreateCall(
        to="+17134567890",
        from_="+12812345678",
        url="https://hooks.example/answer",
        machine_detection=None,
        record=False,
        recording_status_callback="https://hooks.example/recording",  # ignored when not recording
        timeout=20,
    )
    client_for(recorder).create_call(request)
    assert recorder.form() == [
        ("To", "+17134567890"),
        ("From", "+12812345678"),
        ("Url", "https://hooks.example/answer"),
        ("Method", "POST"),
        ("Timeout", "20"),
    ]


def test_create_call_with_chosen_status_events_and_plain_amd() -> None:
    recorder = Recorder(httpx.Response(201, json=call_resource()))
    request = CreateCall(
        to="+4930123456",
        from_="+12812345678",
        url="https://hooks.example/answer",
        status_callback="https://hooks.example/status",
        status_events=("answered", "completed"),
        machine_detection="Enable",
        record=True,
    )
    client_for(recorder).create_call(request)
    form = recorder.form()
    assert [v for k, v in form if k == "StatusCallbackEvent"] == ["answered", "completed"]
    assert ("MachineDetection", "Enable") in form
    assert ("Record", "true") in form
    assert "RecordingStatusCallback" not in dict(form)
    # '+' must be percent-encoded, or Twilio would read a space
    assert b"To=%2B4930123456" in recorder.last.content


def test_base_url_and_account_sid_are_joined_safely() -> None:
    recorder = Recorder(httpx.Response(201, json=call_resource()))
    client = TwilioClient(
        "AC/../x", TOKEN, base_url="http://127.0.0.1:9000/", http=httpx.Client(transport=httpx.MockTransport(recorder))
    )
    client.create_call(CreateCall(to="+17134567890", from_="+12812345678", url="https://hooks.example/a"))
    assert recorder.last.url.raw_path == b"/2010-04-01/Accounts/AC%2F..%2Fx/Calls.json"
    assert recorder.last.url.host == "127.0.0.1"
    assert recorder.last.url.port == 9000


# -- fetch, hangup, cancel -----------------------------------------------------------------------------------


def test_fetch_call_reads_the_call_resource() -> None:
    recorder = Recorder(
        httpx.Response(
            200,
            json=call_resource(
                status="completed",
                answered_by="machine_end_beep",
                duration="27",
                queue_time="1250",
                start_time="Thu, 26 Nov 2026 14:33:35 +0000",
                end_time="Thu, 26 Nov 2026 14:34:02 +0000",
            ),
        )
    )
    call = client_for(recorder).fetch_call(CALL_SID)
    assert recorder.last.method == "GET"
    assert recorder.last.url.path == CALL
    assert recorder.last.headers["Authorization"] == BASIC
    assert recorder.last.content == b""
    assert call == CarrierCall(
        sid=CALL_SID,
        status="completed",
        duration=27,
        answered_by="machine_end_beep",
        start_time=datetime(2026, 11, 26, 14, 33, 35, tzinfo=UTC),
        end_time=datetime(2026, 11, 26, 14, 34, 2, tzinfo=UTC),
        queue_time_ms=1250,
    )


def test_fetch_call_tolerates_odd_field_values() -> None:
    recorder = Recorder(
        httpx.Response(
            200,
            json=call_resource(
                status="in-progress", duration="n/a", queue_time=None, start_time="yesterday", end_time=""
            ),
        )
    )
    call = client_for(recorder).fetch_call(CALL_SID)
    assert call == CarrierCall(sid=CALL_SID, status="in-progress")


def test_fetch_call_keeps_the_time_zone() -> None:
    recorder = Recorder(httpx.Response(200, json=call_resource(start_time="Thu, 26 Nov 2026 09:33:35 -0500")))
    call = client_for(recorder).fetch_call(CALL_SID)
    assert call is not None
    assert call.start_time == datetime(2026, 11, 26, 14, 33, 35, tzinfo=UTC)


def test_fetch_unknown_call_is_none() -> None:
    recorder = Recorder(twilio_error(404, 20404, "The requested resource was not found"))
    assert client_for(recorder).fetch_call("CA" + "f" * 32) is None


def test_fetch_call_still_raises_other_errors() -> None:
    with pytest.raises(CarrierRejected) as caught:
        client_for(Recorder(twilio_error(401, 20003, "Authenticate"))).fetch_call(CALL_SID)
    assert caught.value.code == 20003
    with pytest.raises(CarrierRetryable):
        client_for(Recorder(httpx.Response(503))).fetch_call(CALL_SID)


@pytest.mark.parametrize(("method", "status"), [("hangup", "completed"), ("cancel", "canceled")])
def test_hangup_and_cancel_update_the_call(method: str, status: str) -> None:
    recorder = Recorder(httpx.Response(200, json=call_resource(status=status)))
    answered = getattr(client_for(recorder), method)(CALL_SID)
    assert (answered.sid, answered.status) == (CALL_SID, status)
    assert recorder.last.method == "POST"
    assert recorder.last.url.path == CALL
    assert recorder.last.headers["Authorization"] == BASIC
    assert recorder.form() == [("Status", status)]


def test_call_sid_cannot_escape_the_path() -> None:
    recorder = Recorder(httpx.Response(200, json=call_resource()))
    client_for(recorder).hangup("../Messages")
    assert recorder.last.url.raw_path == f"/2010-04-01/Accounts/{ACCOUNT}/Calls/..%2FMessages.json".encode()


def test_hangup_of_a_finished_call_is_rejected_with_twilios_code() -> None:
    recorder = Recorder(twilio_error(400, 21220, "Call is not in-progress. Cannot redirect."))
    with pytest.raises(CarrierRejected) as caught:
        client_for(recorder).hangup(CALL_SID)
    assert (caught.value.code, caught.value.http_status) == (21220, 400)


# -- SMS -----------------------------------------------------------------------------------------------------


def test_send_sms() -> None:
    recorder = Recorder(httpx.Response(201, json={"sid": "SM" + "2" * 32, "status": "queued", "body": "SMS message"}))
    result = client_for(recorder).send_sms("+17134567890", "+12812345678", "SMS message & more: ünïcode")
    assert recorder.last.method == "POST"
    assert recorder.last.url.path == MESSAGES
    assert recorder.last.headers["Authorization"] == BASIC
    assert recorder.form() == [
        ("To", "+17134567890"),
        ("From", "+12812345678"),
        ("Body", "SMS message & more: ünïcode"),
    ]
    assert result == SmsResult(sid="SM" + "2" * 32, status="queued")


def test_send_sms_to_an_invalid_number_is_rejected() -> None:
    recorder = Recorder(twilio_error(400, 21211, "The 'To' number +1555 is not a valid phone number."))
    with pytest.raises(CarrierRejected) as caught:
        client_for(recorder).send_sms("+1555", "+12812345678", "hi")
    assert caught.value.code == 21211


# -- errors --------------------------------------------------------------------------------------------------

CREATE = CreateCall(to="+17134567890", from_="+12812345678", url="https://hooks.example/answer")


def test_invalid_to_is_rejected_with_twilios_code_and_message() -> None:
    message = "The 'To' number 17134567890 is not a valid phone number."
    recorder = Recorder(twilio_error(400, 21211, message))
    with pytest.raises(CarrierRejected) as caught:
        client_for(recorder).create_call(CREATE)
    error = caught.value
    assert (error.code, error.message, error.http_status) == (21211, message, 400)
    assert "21211" in str(error)
    assert isinstance(error, CarrierError)


@pytest.mark.parametrize(
    ("response", "code", "message"),
    [
        (twilio_error(401, 20003, "Authenticate"), 20003, "Authenticate"),
        (twilio_error(404, 20404, "Not found"), 20404, "Not found"),
        (httpx.Response(403, text="<html>Forbidden</html>"), 403, "<html>Forbidden</html>"),
        (httpx.Response(400, json={"message": "no code here"}), 400, "no code here"),
        (httpx.Response(422, json={"code": "21205", "message": "Url is not valid"}), 21205, "Url is not valid"),
        (httpx.Response(400, json=["not", "an", "object"]), 400, '["not","an","object"]'),
        (httpx.Response(409), 409, "Conflict"),
    ],
)
def test_other_4xx_are_rejected(response: httpx.Response, code: int, message: str) -> None:
    with pytest.raises(CarrierRejected) as caught:
        client_for(Recorder(response)).create_call(CREATE)
    assert (caught.value.code, caught.value.message, caught.value.http_status) == (code, message, response.status_code)


@pytest.mark.parametrize(
    ("response", "retry_after"),
    [
        (twilio_error(429, 20429, "Too Many Requests", **{"Retry-After": "7"}), 7.0),
        (twilio_error(429, 20429, "Too Many Requests"), None),
        (httpx.Response(500, json={"code": 20500, "message": "Internal Server Error"}), None),
        (httpx.Response(502, text="Bad Gateway"), None),
        (httpx.Response(503, headers={"Retry-After": "1.5"}), 1.5),
        (httpx.Response(503, headers={"Retry-After": "-3"}), 0.0),
        (httpx.Response(503, headers={"Retry-After": "soon"}), None),
        (httpx.Response(503, headers={"Retry-After": "nan"}), None),
        (httpx.Response(504, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), 0.0),  # in the past
    ],
)
def test_throttling_and_server_errors_are_retryable(response: httpx.Response, retry_after: float | None) -> None:
    with pytest.raises(CarrierRetryable) as caught:
        client_for(Recorder(response)).create_call(CREATE)
    assert caught.value.retry_after == retry_after


def test_retry_after_as_a_future_http_date() -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    response = httpx.Response(503, headers={"Retry-After": format_datetime(when, usegmt=True)})
    with pytest.raises(CarrierRetryable) as caught:
        client_for(Recorder(response)).create_call(CREATE)
    assert caught.value.retry_after is not None
    assert 100 <= caught.value.retry_after <= 120


def never_sent(request: httpx.Request) -> list[Exception]:
    return [
        httpx.ConnectError("connection refused", request=request),
        httpx.ConnectTimeout("connect timed out", request=request),
        httpx.PoolTimeout("no free connection", request=request),
        httpx.ProxyError("proxy refused", request=request),
    ]


def maybe_sent(request: httpx.Request) -> list[Exception]:
    return [
        httpx.ReadTimeout("read timed out", request=request),
        httpx.WriteTimeout("write timed out", request=request),
        httpx.RemoteProtocolError("server disconnected without sending a response", request=request),
        httpx.ReadError("connection reset by peer", request=request),
        httpx.WriteError("broken pipe", request=request),
    ]


PLACEHOLDER = httpx.Request("POST", "https://api.twilio.com/")


@pytest.mark.parametrize("error", never_sent(PLACEHOLDER), ids=lambda e: type(e).__name__)
def test_request_that_never_left_is_retryable(error: Exception) -> None:
    with pytest.raises(CarrierRetryable) as caught:
        client_for(Recorder(error)).create_call(CREATE)
    assert caught.value.__cause__ is error
    assert caught.value.retry_after is None


@pytest.mark.parametrize("error", maybe_sent(PLACEHOLDER), ids=lambda e: type(e).__name__)
def test_request_that_may_have_arrived_is_uncertain(error: Exception) -> None:
    with pytest.raises(CarrierUncertain) as caught:
        client_for(Recorder(error)).create_call(CREATE)
    assert caught.value.__cause__ is error
    assert not isinstance(caught.value, CarrierRetryable)


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(201, text="<Response/>"),  # not JSON
        httpx.Response(201, json=["CA1"]),  # not an object
        httpx.Response(201, json={"status": "queued"}),  # no sid
        httpx.Response(201, json={"sid": CALL_SID}),  # no status
        httpx.Response(302, headers={"Location": "https://elsewhere.example"}),
    ],
)
def test_unreadable_success_is_uncertain(response: httpx.Response) -> None:
    # Twilio may have placed the call, so it must be reconciled, not dialed again.
    with pytest.raises(CarrierUncertain):
        client_for(Recorder(response)).create_call(CREATE)


# -- client lifecycle ----------------------------------------------------------------------------------------


def test_default_timeouts() -> None:
    timeout = default_timeout()
    assert (timeout.connect, timeout.read, timeout.write, timeout.pool) == (2.0, 4.0, 1.0, 1.0)


def test_own_client_uses_default_timeouts_and_is_closed() -> None:
    client = TwilioClient(ACCOUNT, TOKEN)
    http = client._client
    assert http.timeout == default_timeout()
    assert client._client is http  # built once per container
    client.close()
    assert http.is_closed


def test_explicit_timeout_applies_to_an_injected_client() -> None:
    recorder = Recorder(httpx.Response(200, json=call_resource()))
    client = client_for(recorder, timeout=httpx.Timeout(2.0, connect=1.0))
    client.fetch_call(CALL_SID)
    assert recorder.last.extensions["timeout"] == {"connect": 1.0, "read": 2.0, "write": 2.0, "pool": 2.0}


def test_injected_client_is_left_open() -> None:
    http = httpx.Client(transport=httpx.MockTransport(Recorder()))
    with TwilioClient(ACCOUNT, TOKEN, http=http):
        pass
    assert not http.is_closed
    http.close()


def test_credentials_stay_out_of_errors() -> None:
    with pytest.raises(CarrierRejected) as caught:
        client_for(Recorder(twilio_error(401, 20003, "Authenticate"))).create_call(CREATE)
    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(client_for(Recorder()))


def test_importing_the_client_does_not_import_httpx() -> None:
    # Cold starts: only functions that talk to Twilio pay for httpx, and only when they do.
    code = "import sys, json, callbridge.carrier.twilio; print(json.dumps('httpx' in sys.modules))"
    layer = Path(__file__).resolve().parents[2] / "layers" / "callbridge"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONPATH": str(layer)}
    )
    assert json.loads(result.stdout) is False
