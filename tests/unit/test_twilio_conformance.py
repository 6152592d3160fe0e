"""Every request callbridge's Twilio adapter sends, replayed through the official `twilio` package (test-only oracle).

Each form field must be a parameter of the matching REST resource method (CreateCall, UpdateCall, CreateMessage),
each value one of those the package documents or enumerates for it, and the package, given the same parameters,
must send the same form.
"""

from __future__ import annotations

import inspect
import re
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from callbridge.carrier.base import CreateCall
from callbridge.carrier.twilio import TwilioClient
from twilio.http import HttpClient
from twilio.http.response import Response
from twilio.rest import Client
from twilio.rest.api.v2010.account.call import CallContext, CallInstance, CallList
from twilio.rest.api.v2010.account.message import MessageList

ACCOUNT = "AC" + "ab" * 16
CALL_SID = "CA" + "cd" * 16
HOOK = "https://hooks.example/carrier/twilio/c1"
CALL_JSON = {"sid": CALL_SID, "status": "queued", "account_sid": ACCOUNT}
MESSAGE_JSON = {"sid": "SM" + "ef" * 16, "status": "queued", "account_sid": ACCOUNT}

Form = list[tuple[str, str]]


def ours(send: Callable[[TwilioClient], object]) -> tuple[str, str, Form]:
    """(method, path, form) of the one request callbridge's adapter makes."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json=MESSAGE_JSON if "Messages" in request.url.path else CALL_JSON)

    client = TwilioClient(ACCOUNT, "token", http=httpx.Client(transport=httpx.MockTransport(answer)))
    send(client)
    (request,) = seen
    return request.method, request.url.path, parse_qsl(request.content.decode(), keep_blank_values=True)


class Capture(HttpClient):  # type: ignore[misc]  # twilio ships no type information
    """twilio-python's HTTP client, replaced by one that keeps the request and answers like Twilio."""

    def __init__(self) -> None:
        super().__init__(logger=None, is_async=False)  # type: ignore[arg-type]
        self.sent: list[tuple[str, str, Form]] = []

    def request(self, method: str, url: str, params: Any = None, data: Any = None, **kwargs: Any) -> Response:
        form = [(key, str(value)) for key, values in (data or {}).items() for value in _listed(values)]
        self.sent.append((method, httpx.URL(url).path, form))
        body = MESSAGE_JSON if "Messages" in url else CALL_JSON
        return Response(
            201 if method == "POST" and url.endswith("s.json") else 200, httpx.Response(200, json=body).text
        )


def _listed(values: Any) -> list[Any]:
    return values if isinstance(values, list) else [values]


def _kwarg(field: str) -> str:
    name = re.sub(r"(?<!^)(?=[A-Z])", "_", field).lower()
    return {"from": "from_"}.get(name, name)


def _documented_values(method: Callable[..., Any], kwarg: str) -> set[str] | None:
    """The values the package's docstring allows for a parameter ("Can be: `a`, `b` or `c`"), if it lists them."""
    for line in (inspect.getdoc(method) or "").splitlines():
        match = re.match(rf":param {kwarg}: (.*)", line)
        if match and "Can be:" in match[1]:
            sentence = match[1].split("Can be:", 1)[1].split(". ", 1)[0]
            return set(re.findall(r"`([^`]+)`", sentence))
    return None


def replay(method: Callable[..., Any], resource: Callable[..., Any], form: Form) -> Form:
    """The form twilio-python sends for the parameters in `form`, after checking each against `method`."""
    parameters = inspect.signature(method).parameters
    by_name: dict[str, list[str]] = {}
    for field, value in form:
        by_name.setdefault(field, []).append(value)
    kwargs: dict[str, Any] = {}
    for field, values in by_name.items():
        kwarg = _kwarg(field)
        assert kwarg in parameters, f"{field} is not a parameter of {method.__qualname__}"
        allowed = _documented_values(method, kwarg)
        if allowed is not None:
            assert set(values) <= allowed, f"{field}={values} is not among {sorted(allowed)}"
        listed = "List" in str(parameters[kwarg].annotation)
        assert listed or len(values) == 1, f"{field} is sent {len(values)} times but takes one value"
        kwargs[kwarg] = values if listed else values[0]
    capture = Capture()
    resource(Client(ACCOUNT, "token", http_client=capture), **kwargs)
    ((_, _, theirs),) = capture.sent
    return theirs


FULL_CALL = CreateCall(
    to="+17134567890",
    from_="+12815550100",
    url=f"{HOOK}/flow",
    fallback_url=f"{HOOK}/fallback",
    status_callback=f"{HOOK}/status",
    record=True,
    recording_status_callback=f"{HOOK}/recording",
    timeout=45,
    time_limit=14400,
)


@pytest.mark.parametrize(
    "call",
    [
        FULL_CALL,
        CreateCall(to="+18323456789", from_="+12815550100", url=f"{HOOK}/leg", machine_detection=None),
        CreateCall(
            to="+18323456789",
            from_="+12815550100",
            url=f"{HOOK}/leg",
            status_callback=f"{HOOK}/leg-status",
            status_events=("completed",),
            machine_detection=None,
        ),
    ],
    ids=["the call", "a bare leg", "the bridge's second leg"],
)
def test_create_call_sends_only_what_createcall_takes(call: CreateCall) -> None:
    method, path, form = ours(lambda client: client.create_call(call))

    assert (method, path) == ("POST", f"/2010-04-01/Accounts/{ACCOUNT}/Calls.json")
    theirs = replay(CallList.create, lambda twilio, **kw: twilio.api.v2010.accounts(ACCOUNT).calls.create(**kw), form)
    assert Counter(theirs) == Counter(form)


UPDATES: dict[str, Callable[[TwilioClient], object]] = {
    "hang up": lambda client: client.hangup(CALL_SID),
    "cancel": lambda client: client.cancel(CALL_SID),
    "redirect": lambda client: client.redirect(CALL_SID, "<Response><Hangup/></Response>"),
}


@pytest.mark.parametrize("name", sorted(UPDATES))
def test_call_updates_send_only_what_updatecall_takes(name: str) -> None:
    method, path, form = ours(UPDATES[name])

    assert (method, path) == ("POST", f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{CALL_SID}.json")
    theirs = replay(
        CallContext.update, lambda twilio, **kw: twilio.api.v2010.accounts(ACCOUNT).calls(CALL_SID).update(**kw), form
    )
    assert Counter(theirs) == Counter(form)
    statuses = [value for field, value in form if field == "Status"]
    enum = {value for key, value in vars(CallInstance.UpdateStatus).items() if not key.startswith("_")}
    assert set(statuses) <= enum


@pytest.mark.parametrize("status_callback", [None, f"{HOOK}/sms-status"])
def test_send_sms_sends_only_what_createmessage_takes(status_callback: str | None) -> None:
    method, path, form = ours(
        lambda client: client.send_sms("+17134567890", "+12815550199", "Call us back", status_callback)
    )

    assert (method, path) == ("POST", f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json")
    theirs = replay(
        MessageList.create, lambda twilio, **kw: twilio.api.v2010.accounts(ACCOUNT).messages.create(**kw), form
    )
    assert Counter(theirs) == Counter(form)


def test_the_oracle_refuses_a_field_twilio_does_not_take() -> None:
    with pytest.raises(AssertionError, match="Ringback is not a parameter"):
        replay(CallList.create, lambda twilio, **kw: None, [("To", "+1"), ("From", "+2"), ("Ringback", "x")])
    with pytest.raises(AssertionError, match="MachineDetection"):
        replay(CallList.create, lambda twilio, **kw: None, [("To", "+1"), ("From", "+2"), ("MachineDetection", "On")])
