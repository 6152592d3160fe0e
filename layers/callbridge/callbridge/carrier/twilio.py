"""Twilio Programmable Voice and Messaging over REST with httpx: no SDK in the Lambda package, a small cold start."""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from callbridge.carrier.base import (
    CarrierCall,
    CarrierRejected,
    CarrierRetryable,
    CarrierSlotMissed,
    CarrierUncertain,
    CreateCall,
    SmsResult,
)

if TYPE_CHECKING:
    import httpx

API_VERSION = "2010-04-01"
DEFAULT_BASE_URL = "https://api.twilio.com"
# One request's time budget. Every path that calls the carrier adds it up against its function's Timeout (and a
# webhook's against WEBHOOK_TIMEOUT): see the README's "Time budgets".
CONNECT_TIMEOUT = 2.0  # TCP and TLS to Twilio take well under a second; longer is failing: retried, never duplicated
WRITE_TIMEOUT = 1.0  # a form of a few hundred bytes
READ_TIMEOUT = 4.0  # Twilio answers a create within a second or two; longer means trouble (reconciliation asks)
POOL_TIMEOUT = 1.0  # one container makes one request at a time
REQUEST_SECONDS = POOL_TIMEOUT + CONNECT_TIMEOUT + WRITE_TIMEOUT + READ_TIMEOUT  # the longest one request can take
WEBHOOK_TIMEOUT = 15.0  # Twilio gives up on a webhook (and plays an error to the caller) after 15 s
USER_AGENT = "callbridge/0.1"

Form = list[tuple[str, str]]


def default_timeout() -> httpx.Timeout:
    """Connect 2 s, write 1 s, read 4 s, pool 1 s: at most REQUEST_SECONDS per request."""
    import httpx

    return httpx.Timeout(connect=CONNECT_TIMEOUT, write=WRITE_TIMEOUT, read=READ_TIMEOUT, pool=POOL_TIMEOUT)


class TwilioClient:
    """The `Carrier` port over Twilio's REST API (form-encoded requests, JSON answers, HTTP Basic).

    Errors: 429 and 5xx, and failures to connect, raise CarrierRetryable; a timeout or broken connection after
    the request went out raises CarrierUncertain; any other 4xx raises CarrierRejected with Twilio's code.
    """

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        http: httpx.Client | None = None,
        timeout: httpx.Timeout | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        credentials = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode("ascii")
        self._headers = {
            "Authorization": f"Basic {credentials}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        self._account = f"{base_url.rstrip('/')}/{API_VERSION}/Accounts/{quote(account_sid, safe='')}"
        self._http = http
        self._owns_http = http is None
        self._timeout = timeout
        self._now = now

    @property
    def _client(self) -> httpx.Client:
        # Built on first use, so a function that only renders TwiML never imports httpx.
        if self._http is None:
            import httpx

            self._http = httpx.Client(timeout=self._timeout or default_timeout())
        return self._http

    def close(self) -> None:
        """Close the HTTP client if this object built it."""
        if self._http is not None and self._owns_http:
            self._http.close()
            self._http = None

    def __enter__(self) -> TwilioClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- Carrier ---------------------------------------------------------------------------------------------

    def ready(self) -> None:
        """Build the HTTP client (and import httpx) now rather than at the first request."""
        self._client  # noqa: B018 -- the property builds it

    def create_call(self, call: CreateCall) -> CarrierCall:
        """Place a call: `POST /Calls.json`."""
        form: Form = [("To", call.to), ("From", call.from_), ("Url", call.url), ("Method", "POST")]
        if call.fallback_url:
            form += [("FallbackUrl", call.fallback_url), ("FallbackMethod", "POST")]
        if call.status_callback:
            form += [("StatusCallback", call.status_callback), ("StatusCallbackMethod", "POST")]
            form += [("StatusCallbackEvent", event) for event in call.status_events]
        if call.machine_detection:
            form.append(("MachineDetection", call.machine_detection))
        if call.record:
            form.append(("Record", "true"))
            if call.recording_status_callback:
                form += [("RecordingStatusCallback", call.recording_status_callback)]
                form += [("RecordingStatusCallbackMethod", "POST")]
        form.append(("Timeout", str(call.timeout)))
        if call.time_limit is not None:
            form.append(("TimeLimit", str(call.time_limit)))
        return _carrier_call(_answer(self._send("POST", "/Calls.json", form, send_by=call.send_by)))

    def fetch_call(self, sid: str) -> CarrierCall | None:
        """The call now, or None when Twilio has no such call (404)."""
        response = self._send("GET", f"/Calls/{quote(sid, safe='')}.json", None)
        if response.status_code == 404:
            return None
        return _carrier_call(_answer(response))

    def hangup(self, sid: str) -> CarrierCall:
        """`Status=completed`: ends a live call, or cancels it if it has not been answered yet."""
        return _carrier_call(self._request("POST", f"/Calls/{quote(sid, safe='')}.json", [("Status", "completed")]))

    def cancel(self, sid: str) -> CarrierCall:
        """`Status=canceled`: stops a queued or ringing call; Twilio leaves a live call alone."""
        return _carrier_call(self._request("POST", f"/Calls/{quote(sid, safe='')}.json", [("Status", "canceled")]))

    def redirect(self, sid: str, twiml: str) -> None:
        """`Twiml=...`: the live call leaves what it is doing (a conference, a Play) and runs this document."""
        self._request("POST", f"/Calls/{quote(sid, safe='')}.json", [("Twiml", twiml)])

    def send_sms(self, to: str, from_: str, body: str, status_callback: str | None = None) -> SmsResult:
        """Send an SMS: `POST /Messages.json` (with `StatusCallback`, Twilio posts each MessageStatus there)."""
        form: Form = [("To", to), ("From", from_), ("Body", body)]
        if status_callback:
            form.append(("StatusCallback", status_callback))
        data = self._request("POST", "/Messages.json", form)
        return SmsResult(sid=_required(data, "sid"), status=_required(data, "status"))

    # -- HTTP ------------------------------------------------------------------------------------------------

    def _request(self, method: str, path: str, form: Form | None) -> dict[str, Any]:
        return _answer(self._send(method, path, form))

    def _send(self, method: str, path: str, form: Form | None, *, send_by: float | None = None) -> httpx.Response:
        import httpx

        headers = dict(self._headers)
        content = None
        if form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            content = urlencode(form).encode("ascii")
        options: dict[str, Any] = {} if self._timeout is None else {"timeout": self._timeout}
        try:
            url = self._account + path
            request = self._client.build_request(method, url, content=content, headers=headers, **options)
            # Last, after everything that may take a while (building the client, reading its secret): a request
            # that would leave after its pacing slot is not sent at all, so the carrier's pace holds.
            if send_by is not None and (late := self._now() - send_by) > 0:
                raise CarrierSlotMissed(f"not sent: {late * 1000:.0f} ms past its pacing slot")
            return self._client.send(request)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError) as exc:
            raise CarrierRetryable(f"Twilio unreachable ({type(exc).__name__}): {exc}") from exc
        except httpx.TransportError as exc:
            # Read/write timeouts, resets and protocol errors happen after bytes went out: Twilio may have
            # acted on the request, so repeating a create could dial twice.
            raise CarrierUncertain(f"no answer from Twilio ({type(exc).__name__}): {exc}") from exc


def _answer(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of a 2xx answer; any other answer raised as the matching carrier error."""
    status = response.status_code
    where = f"{response.request.method} {response.request.url.path}"
    if status == 429 or status >= 500:
        raise CarrierRetryable(
            f"Twilio answered {status} to {where}: {_error(response)[1]}",
            retry_after=_retry_after(response.headers.get("Retry-After")),
        )
    if 400 <= status < 500:
        code, message = _error(response)
        raise CarrierRejected(code, message, status)
    if not 200 <= status < 300:
        raise CarrierUncertain(f"unexpected HTTP {status} from Twilio to {where}")
    try:
        data = response.json()
    except ValueError as exc:
        raise CarrierUncertain(f"Twilio answered {status} to {where} with a body that is not JSON") from exc
    if not isinstance(data, dict):
        raise CarrierUncertain(f"Twilio answered {status} to {where} with JSON that is not an object")
    return data


def _error(response: httpx.Response) -> tuple[int, str]:
    """Twilio's error code and message, or the HTTP status and body when the answer is not Twilio's JSON."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, Mapping):
        code, message = data.get("code"), data.get("message")
        if isinstance(code, int | str) and str(code).isdigit():
            return int(code), str(message or response.reason_phrase)
        if message:
            return response.status_code, str(message)
    text = response.text.strip()[:500]
    return response.status_code, text or response.reason_phrase or f"HTTP {response.status_code}"


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        when = _time(value)
        if when is None:
            return None
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _time(value: Any) -> datetime | None:
    """An RFC 2822 time (Twilio's `start_time`, `end_time`) as an aware datetime, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _int(value: Any) -> int | None:
    """Twilio sends numbers as strings ("15") or null."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _required(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        # A 2xx without the resource's id: Twilio may have acted, and we cannot tell on what.
        raise CarrierUncertain(f"Twilio's answer lacks {name!r}")
    return value


def _carrier_call(data: Mapping[str, Any]) -> CarrierCall:
    answered_by = data.get("answered_by")
    return CarrierCall(
        sid=_required(data, "sid"),
        status=_required(data, "status"),
        duration=_int(data.get("duration")),
        answered_by=answered_by if isinstance(answered_by, str) and answered_by else None,
        start_time=_time(data.get("start_time")),
        end_time=_time(data.get("end_time")),
        queue_time_ms=_int(data.get("queue_time")),
    )


if TYPE_CHECKING:
    from callbridge.carrier.base import Carrier

    _conforms: type[Carrier] = TwilioClient  # mypy proves the adapter implements the port
