"""The simulator's records (calls, messages, create requests, recordings), its settings and its rules."""

from __future__ import annotations

import math
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Literal

API_VERSION = "2010-04-01"
DIRECTION = "outbound-api"
# WSGI environ key: (time.monotonic(), time.time()) when the server read the request line (the simulator's own
# server sets it; a request without it arrived when the handler saw it).
ARRIVED = "sandbox.carrier.arrived"
PRICE_PER_MINUTE = 0.013  # USD, Twilio's US outbound list price; only for a plausible `price`

Outcome = Literal["human", "machine", "busy", "no-answer", "failed"]
TERMINAL = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")
# SIP response a carrier reports for each final status (Twilio's SipResponseCode). The simulated failure is an
# unreachable number (480 Temporarily Unavailable: a phone switched off or out of coverage), which a retry may
# reach, not one that does not exist (404), which no retry can.
SIP_CODES = {"completed": 200, "busy": 486, "no-answer": 487, "failed": 480, "canceled": 487}

Press = str | Callable[[str], str]  # digits the person presses at a Gather, fixed or chosen by the called number
LogHook = Callable[[str], None]


def new_sid(prefix: str) -> str:
    """A Twilio-shaped SID: two letters and 32 hex digits."""
    return prefix + secrets.token_hex(16)


def rfc2822(timestamp: float | None) -> str | None:
    """Twilio's date format (`Thu, 30 Jul 2015 20:00:00 +0000`), or None."""
    if timestamp is None:
        return None
    return format_datetime(datetime.fromtimestamp(timestamp, UTC).replace(microsecond=0))


def billed_minutes(seconds: int, answered: bool) -> int:
    """Twilio bills answered calls per started minute (at least one); unanswered calls cost nothing."""
    return max(1, math.ceil(seconds / 60)) if answered else 0


def outcome_for(to: str) -> Outcome:
    """The simulated outcome of calling `to`, by its last digit.

    1 → a voicemail machine answers, 2 → busy, 3 → no answer, 4 → failed (unreachable),
    anything else (including `client:` and `sip:` addresses) → a person answers.
    """
    digits = re.sub(r"\D", "", to) if not to.startswith(("client:", "sip:")) else ""
    return _BY_LAST_DIGIT.get(digits[-1:], "human")


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


_BY_LAST_DIGIT: dict[str, Outcome] = {"1": "machine", "2": "busy", "3": "no-answer", "4": "failed"}
_NUMBER = re.compile(r"^\+?[0-9][0-9 ().\-]{5,30}$")


def normalize_number(value: str) -> str | None:
    """E.164 form of a phone number (or a `client:`/`sip:` address as given); None when it is not plausible."""
    value = value.strip()
    if value.startswith(("client:", "sip:")):
        return value if len(value) > len("sip:") else None
    if not _NUMBER.match(value):
        return None
    digits = re.sub(r"\D", "", value)
    if not 7 <= len(digits) <= 15 or digits[0] == "0":
        return None
    return "+" + digits


@dataclass(frozen=True)
class Timings:
    """Nominal simulated durations in seconds (scaled by the simulator's `speed`)."""

    setup: float = 1.0  # initiated → ringing
    ring: float = 4.0  # ringing → someone (person or machine) picks up
    busy: float = 2.0  # initiated → busy
    failed: float = 1.0  # initiated → failed (unreachable)
    amd_human: float = 2.5  # answering-machine detection verdict for a person
    amd_machine_start: float = 3.0  # MachineDetection=Enable on a machine: first verdict
    amd_greeting: float = 9.0  # MachineDetection=DetectMessageEnd on a machine: the greeting ends, beep
    play: float = 5.0  # one play of any audio URL
    say_chars_per_second: float = 15.0
    say_min: float = 1.0
    digit: float = 0.5  # per DTMF digit pressed or played (and per `w` wait)
    dial_ring: float = 4.0  # second leg of a <Dial> rings this long before answering
    dial_talk: float = 10.0  # then the two parties talk this long
    conference_wait: float = 120.0  # alone in a conference this long (hearing its waitUrl), the caller hangs up
    record: float = 5.0  # the person speaks this long at a <Record>
    sms_delivery: float = 1.0  # queued → sent → delivered


@dataclass(frozen=True)
class FaultConfig:
    """Probabilities of each status-callback fault (faults mode). Drop excludes the others."""

    drop: float = 0.1
    duplicate: float = 0.15
    delay: float = 0.2
    reorder: float = 0.15
    max_delay: float = 5.0  # simulated seconds


@dataclass
class CreateRequest:
    """One `POST Calls.json` as it arrived (accepted or not)."""

    at: float  # time.time() on arrival
    monotonic: float  # time.monotonic() on arrival
    sid: str | None  # None when the request was refused
    to: str
    params: dict[str, list[str]]
    http_status: int = 201


@dataclass
class WebhookRecord:
    """One webhook the simulator sent (or meant to send: a dropped status callback has `fault="dropped"`)."""

    kind: str  # flow, action, redirect, wait, status, recording, amd, message
    url: str
    method: str
    params: dict[str, str]
    at: float = field(default_factory=time.time)  # created, then time.time() of the (last) attempt
    status_code: int | None = None  # None: no HTTP answer (connection error, dropped, not sent yet)
    attempts: int = 0
    error: str | None = None
    fault: str | None = None  # dropped, duplicate, delayed, reordered


@dataclass
class Recording:
    """A call recording: from answer (Record=true on create) or from a <Record> verb."""

    sid: str
    call_sid: str
    url: str
    duration: int
    start_time: float
    source: str  # OutboundAPI or RecordVerb
    channels: int = 1


@dataclass
class Call:
    """A simulated call: its create parameters, its progress, and everything it did."""

    sid: str
    account_sid: str
    to: str
    from_: str
    params: dict[str, list[str]]
    index: int  # creation order
    created: float  # time.time()
    arrived: float  # time.monotonic() of the create request
    slot: float  # time.monotonic() at which the CPS limit lets the call start
    outcome: Outcome
    status: str = "queued"
    answered_by: str | None = None
    start_time: float | None = None
    answer_time: float | None = None
    end_time: float | None = None
    duration: int | None = None  # seconds from answer to end (simulated)
    queue_time_ms: int = 0
    sip_response_code: int | None = None
    parent_call_sid: str | None = None
    clock: float = 0.0  # simulated seconds since the call was initiated
    answer_clock: float | None = None
    sequence: int = 0  # next status-callback SequenceNumber
    events: list[dict[str, Any]] = field(default_factory=list)  # {"event", "at", "clock"}
    verbs: list[dict[str, Any]] = field(default_factory=list)  # {"verb", "attrs", "text", "clock", "document", ...}
    digits: list[str] = field(default_factory=list)  # what was pressed at each Gather
    documents: list[str] = field(default_factory=list)  # URLs fetched for TwiML
    callbacks: list[WebhookRecord] = field(default_factory=list)  # every webhook, in the order it was created
    recordings: list[Recording] = field(default_factory=list)
    legs: list[dict[str, Any]] = field(default_factory=list)  # <Dial> second legs
    errors: list[str] = field(default_factory=list)
    # Control, guarded by `cond`: REST updates and conference joins wake the call's thread.
    cond: threading.Condition = field(default_factory=threading.Condition, repr=False, compare=False)
    hangup: str | None = None  # requested final status: canceled or completed
    redirect: tuple[str, str] | None = None  # ("url", "METHOD url") or ("twiml", document)
    bridged_with: str | None = None  # conference partner's sid
    pending: int = 0  # webhooks not yet delivered (or given up)
    ended: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready) for reports: every field but the thread-control ones."""
        skip = {"cond", "hangup", "redirect", "pending"}
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.name not in skip}

    def param(self, name: str, default: str | None = None) -> str | None:
        """The last value of a create parameter."""
        values = self.params.get(name)
        return values[-1] if values else default

    @property
    def done(self) -> bool:
        """The call has ended and every webhook it caused has been delivered or given up."""
        return self.ended and self.pending == 0

    def resource(self) -> dict[str, Any]:
        """The Call resource as Twilio's REST API renders it."""
        answered = self.answer_time is not None
        price = None
        if self.status in TERMINAL and self.duration is not None:
            minutes = billed_minutes(self.duration, answered)
            price = f"{-PRICE_PER_MINUTE * minutes:.5f}" if minutes else "0.00000"
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}"
        return {
            "sid": self.sid,
            "date_created": rfc2822(self.created),
            "date_updated": rfc2822(self.end_time or self.answer_time or self.start_time or self.created),
            "parent_call_sid": self.parent_call_sid,
            "account_sid": self.account_sid,
            "to": self.to,
            "to_formatted": self.to,
            "from": self.from_,
            "from_formatted": self.from_,
            "phone_number_sid": None,
            "status": self.status,
            "start_time": rfc2822(self.start_time),
            "end_time": rfc2822(self.end_time),
            "duration": str(self.duration) if self.duration is not None else None,
            "price": price,
            "price_unit": "USD",
            "direction": DIRECTION,
            "answered_by": _resource_verdict(self.answered_by),
            "api_version": API_VERSION,
            "forwarded_from": None,
            "group_sid": None,
            "caller_name": None,
            "queue_time": str(self.queue_time_ms),
            "trunk_sid": None,
            "uri": uri + ".json",
            "subresource_uris": {
                "recordings": uri + "/Recordings.json",
                "notifications": uri + "/Notifications.json",
                "events": uri + "/Events.json",
            },
        }


def _resource_verdict(verdict: str | None) -> str | None:
    """The Call resource's `answered_by`: `human` or `machine` (twilio-oai), not the webhooks' detailed verdicts."""
    if verdict is None:
        return None
    return "machine" if verdict.startswith("machine") or verdict == "fax" else verdict


@dataclass
class Message:
    """An SMS sent through `POST Messages.json`."""

    sid: str
    account_sid: str
    to: str
    from_: str
    body: str
    params: dict[str, list[str]]
    created: float
    status: str = "queued"
    sent: float | None = None
    error_code: int | None = None
    callbacks: list[WebhookRecord] = field(default_factory=list)
    pending: int = 0  # status callbacks not yet delivered (or given up)

    def resource(self) -> dict[str, Any]:
        """The Message resource as Twilio's REST API renders it."""
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}"
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "to": self.to,
            "from": self.from_,
            "body": self.body,
            "status": self.status,
            "num_segments": str(max(1, math.ceil(len(self.body) / 160))),
            "num_media": "0",
            "direction": DIRECTION,
            "api_version": API_VERSION,
            "price": None,
            "price_unit": "USD",
            "error_code": self.error_code,
            "error_message": None,
            "messaging_service_sid": None,
            "date_created": rfc2822(self.created),
            "date_updated": rfc2822(self.sent or self.created),
            "date_sent": rfc2822(self.sent),
            "uri": uri + ".json",
            "subresource_uris": {"media": uri + "/Media.json"},
        }


@dataclass
class Account:
    """The simulated Twilio account: its credentials, and every call, message and create request made on it."""

    account_sid: str
    auth_token: str
    calls: dict[str, Call] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    create_requests: list[CreateRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
