"""Twilio's REST API (the parts callbridge uses) as a WSGI application over the simulator's state."""

from __future__ import annotations

import hmac
import io
import json
import re
import time
import wave
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from werkzeug.wrappers import Request, Response

from sandbox.carrier.engine import Engine
from sandbox.carrier.model import (
    API_VERSION,
    ARRIVED,
    STATUS_EVENTS,
    TERMINAL,
    Account,
    Call,
    CreateRequest,
    Message,
    new_sid,
    normalize_number,
    outcome_for,
)
from sandbox.carrier.twiml import TwimlError, parse_twiml

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

PREFIX = f"/{API_VERSION}/Accounts/"
MAX_TWIML = 4000
MAX_BODY = 1600
ROUTES = [
    ("calls", re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Calls\.json$")),
    ("call", re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Calls/(?P<sid>[^/.]+)\.json$")),
    ("messages", re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json$")),
    ("message", re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages/(?P<sid>[^/.]+)\.json$")),
    ("recording", re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Recordings/(?P<sid>[^/.]+)(?P<ext>\.\w+)?$")),
]


class TwilioError(Exception):
    """An error answered as Twilio does: JSON with code, message, more_info and status."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> Response:
        body = {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }
        response = _json(body, self.status)
        if self.status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
        return response


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json; charset=utf-8")


def _check_twiml(twiml: str) -> None:
    """Refuse an inline `Twiml` as Twilio does, on a call's create and update alike.

    Over 4,000 characters: Twilio's error 32018, "Twiml size exceeded maximum allowed value of 4000 characters"
    (twilio.com/docs/api/errors/32018). Not TwiML: 12100, Twilio's document parse failure.
    """
    if len(twiml) > MAX_TWIML:
        raise TwilioError(400, 32018, f"Twiml size exceeded maximum allowed value of {MAX_TWIML} characters")
    try:
        parse_twiml(twiml)
    except TwimlError as exc:
        raise TwilioError(400, 12100, f"Twiml is not valid TwiML: {exc}") from exc


def _valid_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _silence(seconds: int) -> bytes:
    """A WAV file of silence (8 kHz, 8-bit mono), at most 10 s long: enough for anyone fetching RecordingUrl."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(8000)
        out.writeframes(b"\x80" * 8000 * max(1, min(seconds, 10)))
    return buffer.getvalue()


class RestApi:
    """The WSGI app: `/2010-04-01/Accounts/{AccountSid}/Calls…`, `Messages…` and `Recordings/…`."""

    def __init__(self, account: Account, engine: Engine) -> None:
        self.account = account
        self.engine = engine
        self.numbers = engine.ctx.numbers  # the account's own numbers: the only valid From

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except TwilioError as exc:
            response = exc.response()
        except Exception as exc:  # a simulator bug answers like Twilio's 500, and says what broke
            response = TwilioError(500, 20500, f"Internal Server Error: {type(exc).__name__}: {exc}").response()
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        """Route one request."""
        if request.path in ("/", "/health"):
            return _json({"status": "ok", "account_sid": self.account.account_sid})
        for name, pattern in ROUTES:
            match = pattern.match(request.path)
            if match is None:
                continue
            if name == "recording" and match["ext"] != ".json":
                # RecordingUrl (bare, .wav or .mp3) is the media, which Twilio serves without auth by default.
                return self._recording_media(match["sid"])
            self._authenticate(request, match["account"])
            handler = self._handlers.get((name, request.method))
            if handler is None:
                raise TwilioError(405, 20004, "Method not allowed")
            return handler(self, request, match.groupdict())
        raise TwilioError(404, 20404, f"The requested resource {request.path} was not found")

    def _authenticate(self, request: Request, account: str) -> None:
        auth = request.authorization
        user = auth.username if auth is not None and auth.type == "basic" else None
        password = auth.password if auth is not None and auth.type == "basic" else None
        good = hmac.compare_digest((user or "").encode(), self.account.account_sid.encode()) and hmac.compare_digest(
            (password or "").encode(), self.account.auth_token.encode()
        )
        if not good:
            raise TwilioError(401, 20003, "Authenticate")
        if account != self.account.account_sid:
            raise TwilioError(404, 20404, f"The requested resource {request.path} was not found")

    # ------------------------------------------------------------------ calls

    def _create_call(self, request: Request, match: dict[str, Any]) -> Response:
        arrived, at = request.environ.get(ARRIVED) or (time.monotonic(), time.time())
        params: dict[str, list[str]] = request.form.to_dict(flat=False)
        entry = CreateRequest(at, arrived, None, (params.get("To") or [""])[-1], params)
        with self.account.lock:
            self.account.create_requests.append(entry)
        try:
            to, from_ = self._validate_call(params)
        except TwilioError as exc:
            entry.http_status = exc.status
            raise
        with self.account.lock:
            call = Call(
                sid=new_sid("CA"),
                account_sid=self.account.account_sid,
                to=to,
                from_=from_,
                params=params,
                index=len(self.account.calls),
                created=at,
                arrived=arrived,
                slot=self.engine.next_slot(arrived),
                outcome=outcome_for(to),
            )
            self.account.calls[call.sid] = call
        entry.sid, entry.to = call.sid, to
        wait = call.slot - arrived
        self.engine.log(call, "queued" + (f" (CPS limit: starts in {wait:.2f}s)" if wait > 0.001 else ""))
        self.engine.enqueue(call)
        return _json(call.resource(), 201)

    def _validate_call(self, params: dict[str, list[str]]) -> tuple[str, str]:
        def one(name: str) -> str:
            values = params.get(name)
            return values[-1].strip() if values else ""

        if not one("To"):
            raise TwilioError(400, 21201, "No 'To' number is specified")
        if not one("From"):
            raise TwilioError(400, 21213, "No 'From' number is specified")
        to = normalize_number(one("To"))
        if to is None:
            raise TwilioError(400, 21211, f"Invalid 'To' Phone Number: {one('To')}")
        from_ = normalize_number(one("From"))
        if from_ is None:
            raise TwilioError(400, 21212, f"Invalid 'From' Phone Number: {one('From')}")
        if from_ not in self.numbers:
            # Twilio's CreateCall: "If using a phone number, it must be a Twilio number or a Verified outgoing
            # caller id for your account" (twilio-oai); otherwise error 21210 with this message.
            raise TwilioError(
                400,
                21210,
                f"The source phone number provided, {from_}, is not yet verified for your account. "
                "You may only make calls from phone numbers that you've verified or purchased from Twilio.",
            )
        if not one("Url") and not one("Twiml") and not one("ApplicationSid"):
            raise TwilioError(400, 21205, "Either Url, Twiml or ApplicationSid is required")
        if one("ApplicationSid") and not (one("Url") or one("Twiml")):
            raise TwilioError(400, 21205, "The simulator has no applications: pass Url or Twiml")
        if one("Twiml"):
            _check_twiml(params["Twiml"][-1])
        for name in ("Url", "FallbackUrl", "StatusCallback", "RecordingStatusCallback", "AsyncAmdStatusCallback"):
            if one(name) and not _valid_url(one(name)):
                raise TwilioError(400, 21205, f"{name} is not a valid URL: {one(name)}")
        for name in (
            "Method",
            "FallbackMethod",
            "StatusCallbackMethod",
            "RecordingStatusCallbackMethod",
            "AsyncAmdStatusCallbackMethod",
        ):
            if one(name) and one(name).upper() not in ("GET", "POST"):
                raise TwilioError(400, 20001, f"{name} must be GET or POST")
        events = {word for value in params.get("StatusCallbackEvent", []) for word in value.replace(",", " ").split()}
        unknown = sorted(events - set(STATUS_EVENTS))
        if unknown:
            raise TwilioError(400, 20001, f"Invalid StatusCallbackEvent: {', '.join(unknown)}")
        if one("MachineDetection") and one("MachineDetection") not in ("Enable", "DetectMessageEnd"):
            raise TwilioError(400, 20001, "MachineDetection must be Enable or DetectMessageEnd")
        for name in ("Timeout", "TimeLimit"):
            if one(name) and not one(name).isdigit():
                raise TwilioError(400, 20001, f"{name} must be a whole number of seconds")
        if one("Record") and one("Record").lower() not in ("true", "false"):
            raise TwilioError(400, 20001, "Record must be true or false")
        return to, from_

    def _call(self, match: dict[str, Any]) -> Call:
        call = self.account.calls.get(match["sid"])
        if call is None:
            raise TwilioError(404, 20404, f"The requested resource /Calls/{match['sid']}.json was not found")
        return call

    def _fetch_call(self, request: Request, match: dict[str, Any]) -> Response:
        return _json(self._call(match).resource())

    def _update_call(self, request: Request, match: dict[str, Any]) -> Response:
        call = self._call(match)
        form = request.form
        status, url, twiml = form.get("Status", ""), form.get("Url", ""), form.get("Twiml", "")
        engine = self.engine
        if status:
            if status not in ("canceled", "completed"):
                raise TwilioError(400, 20001, "Status must be canceled or completed")
            live = call.status not in TERMINAL
            # `canceled` only stops calls that are not yet answered; `completed` hangs up whatever the state.
            if live and (status == "completed" or call.answer_time is None) and not engine.cancel_queued(call):
                with call.cond:
                    call.hangup = "completed" if call.answer_time is not None else "canceled"
                    call.cond.notify_all()
                    # Let the response show the final status, as Twilio's does.
                    call.cond.wait_for(lambda: call.ended, timeout=2.0)
            return _json(call.resource())
        if url or twiml:
            if call.status != "in-progress":
                raise TwilioError(400, 21220, "Call is not in-progress. Cannot redirect.")
            if url and not _valid_url(url):
                raise TwilioError(400, 21205, f"Url is not a valid URL: {url}")
            if twiml:
                _check_twiml(twiml)
            method = (form.get("Method") or "POST").upper()
            with call.cond:
                call.redirect = ("twiml", twiml) if twiml else ("url", f"{method} {url}")
                call.cond.notify_all()
        return _json(call.resource())

    def _list_calls(self, request: Request, match: dict[str, Any]) -> Response:
        args = request.args
        calls = sorted(self.account.calls.values(), key=lambda c: c.index, reverse=True)
        if args.get("To"):
            to = normalize_number(args["To"]) or args["To"]
            calls = [c for c in calls if c.to == to]
        if args.get("From"):
            from_ = normalize_number(args["From"]) or args["From"]
            calls = [c for c in calls if c.from_ == from_]
        if args.get("Status"):
            calls = [c for c in calls if c.status == args["Status"]]
        if args.get("ParentCallSid"):
            calls = [c for c in calls if c.parent_call_sid == args["ParentCallSid"]]
        return _json(self._page("calls", [c.resource() for c in calls], request))

    def _page(self, key: str, items: list[dict[str, Any]], request: Request) -> dict[str, Any]:
        try:
            size = max(1, min(1000, int(request.args.get("PageSize", "50") or 50)))
            page = max(0, int(request.args.get("Page", "0") or 0))
        except ValueError as exc:
            raise TwilioError(400, 20001, "PageSize and Page must be whole numbers") from exc
        start = page * size
        chunk = items[start : start + size]
        base = request.path
        next_uri = f"{base}?PageSize={size}&Page={page + 1}" if start + size < len(items) else None
        previous = f"{base}?PageSize={size}&Page={page - 1}" if page > 0 else None
        return {
            key: chunk,
            "start": start,
            "end": start + max(0, len(chunk) - 1),
            "page": page,
            "page_size": size,
            "uri": f"{base}?PageSize={size}&Page={page}",
            "first_page_uri": f"{base}?PageSize={size}&Page=0",
            "next_page_uri": next_uri,
            "previous_page_uri": previous,
        }

    # ------------------------------------------------------------------ messages

    def _create_message(self, request: Request, match: dict[str, Any]) -> Response:
        params: dict[str, list[str]] = request.form.to_dict(flat=False)

        def one(name: str) -> str:
            values = params.get(name)
            return values[-1].strip() if values else ""

        if not one("To"):
            raise TwilioError(400, 21604, "A 'To' phone number is required.")
        if not one("From") and not one("MessagingServiceSid"):
            raise TwilioError(400, 21603, "A 'From' phone number is required.")
        if not one("Body") and not one("MediaUrl"):
            raise TwilioError(400, 21602, "Message body is required.")
        if len(one("Body")) > MAX_BODY:
            raise TwilioError(400, 21617, f"The concatenated message body exceeds the {MAX_BODY} character limit.")
        to = normalize_number(one("To"))
        if to is None:
            raise TwilioError(400, 21211, f"Invalid 'To' Phone Number: {one('To')}")
        if one("From") and normalize_number(one("From")) not in self.numbers:
            # An SMS goes from one of the account's own (SMS-capable) numbers: error 21606 otherwise.
            raise TwilioError(
                400,
                21606,
                f"The From phone number {one('From')} is not a valid, SMS-capable inbound phone number "
                "or short code for your account.",
            )
        if one("StatusCallback") and not _valid_url(one("StatusCallback")):
            raise TwilioError(400, 21609, f"Invalid 'StatusCallback': {one('StatusCallback')}")
        message = Message(
            sid=new_sid("SM"),
            account_sid=self.account.account_sid,
            to=to,
            from_=normalize_number(one("From")) or one("From") or one("MessagingServiceSid"),
            body=(params.get("Body") or [""])[-1],
            params=params,
            created=time.time(),
        )
        with self.account.lock:
            self.account.messages.append(message)
        self.engine.send_message(message)
        return _json(message.resource(), 201)

    def _message(self, match: dict[str, Any]) -> Message:
        for message in self.account.messages:
            if message.sid == match["sid"]:
                return message
        raise TwilioError(404, 20404, f"The requested resource /Messages/{match['sid']}.json was not found")

    def _fetch_message(self, request: Request, match: dict[str, Any]) -> Response:
        return _json(self._message(match).resource())

    def _list_messages(self, request: Request, match: dict[str, Any]) -> Response:
        messages = list(reversed(self.account.messages))
        if request.args.get("To"):
            to = normalize_number(request.args["To"]) or request.args["To"]
            messages = [m for m in messages if m.to == to]
        return _json(self._page("messages", [m.resource() for m in messages], request))

    # ------------------------------------------------------------------ recordings

    def _fetch_recording(self, request: Request, match: dict[str, Any]) -> Response:
        recording = self.engine.recordings.get(match["sid"])
        if recording is None:
            raise TwilioError(404, 20404, f"The requested resource /Recordings/{match['sid']}.json was not found")
        return _json(
            {
                "sid": recording.sid,
                "account_sid": self.account.account_sid,
                "call_sid": recording.call_sid,
                "duration": str(recording.duration),
                "channels": recording.channels,
                "source": recording.source,
                "status": "completed",
                "api_version": API_VERSION,
                "uri": f"{PREFIX}{self.account.account_sid}/Recordings/{recording.sid}.json",
            }
        )

    def _recording_media(self, sid: str) -> Response:
        recording = self.engine.recordings.get(sid)
        if recording is None:
            raise TwilioError(404, 20404, f"The requested resource /Recordings/{sid} was not found")
        return Response(_silence(recording.duration), content_type="audio/x-wav")

    _handlers: ClassVar[dict[tuple[str, str], Callable[[RestApi, Request, dict[str, Any]], Response]]] = {
        ("calls", "POST"): _create_call,
        ("calls", "GET"): _list_calls,
        ("call", "GET"): _fetch_call,
        ("call", "POST"): _update_call,
        ("messages", "POST"): _create_message,
        ("messages", "GET"): _list_messages,
        ("message", "GET"): _fetch_message,
        ("recording", "GET"): _fetch_recording,
    }
