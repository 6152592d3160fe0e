"""The carrier port: what callbridge needs from a voice carrier, in carrier-neutral types."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from callbridge.domain.errors import DomainError

DEFAULT_STATUS_EVENTS: tuple[str, ...] = ("initiated", "ringing", "answered", "completed")


@dataclass(frozen=True)
class CreateCall:
    """One outbound call to place: numbers in E.164, webhook URLs, detection and recording."""

    to: str
    from_: str
    url: str  # the flow webhook the carrier asks for the call's TwiML once it is answered
    # Where the carrier goes when the call's TwiML fails (fetch or execution); without one it ends the call with
    # its own "application error" message.
    fallback_url: str | None = None
    status_callback: str | None = None
    status_events: Sequence[str] = DEFAULT_STATUS_EVENTS
    # DetectMessageEnd waits for the greeting to end: the right moment to leave a voicemail. None disables AMD.
    machine_detection: str | None = "DetectMessageEnd"
    record: bool = False
    recording_status_callback: str | None = None
    timeout: int = 45  # seconds to let it ring
    time_limit: int | None = None  # seconds the call may last; the carrier's default when None
    # Epoch seconds: the latest moment the request may leave (its pacing slot's allowance). The client checks it
    # last, just before the request goes out, and sends nothing if it is past (CarrierSlotMissed).
    send_by: float | None = None


@dataclass(frozen=True)
class CarrierCall:
    """The carrier's view of a call."""

    sid: str
    status: str  # the carrier's own word: queued, ringing, in-progress, completed, busy, ...
    duration: int | None = None  # seconds, once the call has ended
    answered_by: str | None = None  # the carrier's AMD verdict (human, machine_end_beep, ...)
    start_time: datetime | None = None
    end_time: datetime | None = None
    queue_time_ms: int | None = None


@dataclass(frozen=True)
class SmsResult:
    """An accepted SMS: the carrier's message id and status."""

    sid: str
    status: str


class CarrierError(DomainError):
    """Base of every carrier failure."""


class CarrierRetryable(CarrierError):
    """The carrier certainly did not act on the request (throttled, down, unreachable): retry with backoff."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds, when the carrier said how long to wait


class CarrierUncertain(CarrierError):
    """The request may have reached the carrier: never repeat a create; reconcile by asking the carrier."""


class CarrierSlotMissed(CarrierError):
    """Not sent: the request would have left after its `send_by` (its pacing slot had passed). The carrier saw
    nothing; the caller takes a new slot."""


class CarrierRejected(CarrierError):
    """The carrier refused the request for good (invalid number, bad credentials, ...)."""

    def __init__(self, code: int, message: str, http_status: int) -> None:
        super().__init__(f"carrier error {code} (HTTP {http_status}): {message}")
        self.code = code
        self.message = message
        self.http_status = http_status


class Carrier(Protocol):
    """A voice carrier's REST API, as the use cases need it."""

    def ready(self) -> None:
        """Do now what the next request would otherwise do first (read the credentials, build the HTTP client),
        so that a paced request leaves as soon as its slot begins."""

    def create_call(self, call: CreateCall) -> CarrierCall:
        """Place a call; raises CarrierRetryable, CarrierUncertain, CarrierRejected or CarrierSlotMissed."""
        ...

    def fetch_call(self, sid: str) -> CarrierCall | None:
        """The call as the carrier sees it now, or None when it has no such call."""
        ...

    def hangup(self, sid: str) -> CarrierCall:
        """End a call that is in progress (or stop it ringing); the call as the carrier answers."""
        ...

    def cancel(self, sid: str) -> CarrierCall:
        """Stop a call that is still queued or ringing (a live call is left alone); the call as the carrier answers."""
        ...

    def redirect(self, sid: str, twiml: str) -> None:
        """Give a live call new instructions (a TwiML document) in place of what it is doing."""
        ...

    def send_sms(self, to: str, from_: str, body: str, status_callback: str | None = None) -> SmsResult:
        """Send one SMS; the carrier reports its progress (sent, delivered, ...) to `status_callback`."""
        ...
