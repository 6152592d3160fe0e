"""Outcome callbacks: which changes notify, what the POST carries, how it is signed, when it is retried,
and which targets are never contacted.

A call notifies its `callback_url` once, when it first reaches a final state. The notification is
delivered at least once; its `event_id` stays the same across attempts so receivers can drop repeats.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from callbridge.domain import events
from callbridge.domain.calls import Call
from callbridge.domain.errors import DomainError
from callbridge.domain.limits import MAX_DELAY_SECONDS
from callbridge.domain.metadata import metadata_text
from callbridge.domain.progress import outcome_fields

SIGNATURE_HEADER = "X-Callbridge-Signature"
EVENT_ID_HEADER = "X-Callbridge-Event-Id"
FIRST_RETRY_SECONDS = 30
RETRY_FOR_SECONDS = 24 * 3600
TIMEOUT_SECONDS = 10.0

# The body's fields, in order. All are sent, empty when unknown.
PAYLOAD_FIELDS = (
    "event_id",
    "callid",
    "status",
    "answered_by",
    "billed_seconds",
    "from",
    "to",
    "call_date",
    "started_at",
    "answered_at",
    "ended_at",
    "recording_url",
    "digits",
    "sms_status",
    "error_code",
    "error_desc",
    "campaign",
    "attempts",  # how many carrier attempts the call made
    "metadata",  # the caller's metadata, as its JSON text
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_NUMERIC_HOST = re.compile(r"[0-9a-fx.]+")


class DeliveryFailed(DomainError):
    """One delivery attempt did not reach the receiver. `permanent` when no later attempt can succeed."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent

    def __str__(self) -> str:
        return self.reason


class BadRetryMessage(ValueError):
    """A NotificationsQueue message that is not a retry this notifier wrote."""


# --- which changes notify ------------------------------------------------------------------


def callback_url_of(call: Call) -> str | None:
    """The call's callback_url, if it asked for one."""
    return call.request.get("callback_url") or None


def is_final_transition(old: Call | None, new: Call) -> bool:
    """Whether this change moved a call with a callback_url into a final state.

    That happens once per call (final states never move), so later writes to a finished call
    (timeline entries, a late recording) never notify again.
    """
    return new.status.is_final and callback_url_of(new) is not None and (old is None or not old.status.is_final)


def event_id(call: Call) -> str:
    """The notification's id: the same on every attempt, different for every call."""
    return f"{call.callid}.{call.status.value}"


# --- what the POST carries -----------------------------------------------------------------


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def payload(call: Call) -> dict[str, str]:
    """The notification's fields, every one a string (empty when unknown)."""
    outcome = outcome_fields(call)
    fields = {
        **outcome,
        "event_id": event_id(call),
        "from": call.accepted.get("from") or call.request.get("from"),
        "to": call.accepted.get("to") or call.request.get("to"),
        "call_date": call.call_date,
        "sms_status": call.sms_status,
        "campaign": call.campaign,
        "attempts": len(call.all_attempts()),
        "metadata": metadata_text(call.metadata) if call.metadata is not None else None,
    }
    return {name: _text(fields.get(name)) for name in PAYLOAD_FIELDS}


def form_body(fields: Mapping[str, str]) -> bytes:
    """application/x-www-form-urlencoded, as PHP's $_POST reads it."""
    return urlencode(list(fields.items())).encode("ascii")


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of `<timestamp>.<body>` keyed with the account's webhook secret."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Callbridge-Signature value: `t=<unix seconds>,v1=<hex>`."""
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


# --- when it is retried --------------------------------------------------------------------


def retry_delay(attempt: int, rng: Callable[[], float]) -> int:
    """Seconds to wait after failed attempt number `attempt` (1 = the first).

    Exponential with jitter: a random time between half and all of min(900, 30 x 2^(attempt-1)).
    Half of the window is kept fixed so a failing endpoint sees the pause grow; the random half
    spreads retries after an outage.
    """
    ceiling = MAX_DELAY_SECONDS if attempt > 10 else min(MAX_DELAY_SECONDS, FIRST_RETRY_SECONDS * 2 ** (attempt - 1))
    share = min(1.0, max(0.0, rng()))
    return max(1, round(ceiling / 2 + share * ceiling / 2))


def gives_up(first_attempt_at: float, now: float) -> bool:
    """Whether a failed attempt at `now` is the last: 24 hours have passed since the first one."""
    return now - first_attempt_at >= RETRY_FOR_SECONDS


@dataclass(frozen=True)
class Retry:
    """A NotificationsQueue message: attempt number `attempt` of notification `event_id` is due."""

    callid: str
    event_id: str
    attempt: int
    first_attempt_at: float

    def to_message(self, **extra: Any) -> str:
        return json.dumps({**asdict(self), **extra}, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_message(cls, body: str) -> Retry:
        try:
            data = json.loads(body)
            retry = cls(
                callid=str(data["callid"]),
                event_id=str(data["event_id"]),
                attempt=int(data["attempt"]),
                first_attempt_at=float(data["first_attempt_at"]),
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise BadRetryMessage(f"not a notification retry: {body[:200]!r}") from exc
        if not retry.callid or retry.attempt < 1:
            raise BadRetryMessage(f"not a notification retry: {body[:200]!r}")
        return retry


NOT_QUEUED = "not_queued"  # timeline result of an attempt whose follow-up could not be queued (it is redone)


def _attempt_results(call: Call, notification: str) -> set[str]:
    return {
        str(e.detail.get("result"))
        for e in call.timeline
        if e.event == events.CALLBACK and e.detail.get("event_id") == notification
    }


def was_delivered(call: Call, notification: str) -> bool:
    """Whether the call's timeline already records a delivery of this notification."""
    return "delivered" in _attempt_results(call, notification)


def was_attempted(call: Call, notification: str) -> bool:
    """Whether a first attempt already ran to its end (delivered, or its retry or refusal settled).

    A stream record the stream hands over again (its batch is retried) then starts nothing new:
    the notification is delivered, or a retry chain already owns it.
    """
    return bool(_attempt_results(call, notification) - {NOT_QUEUED})


# --- which targets are never contacted -----------------------------------------------------


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (IPv4-mapped, 6to4, Teredo client, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in network for network in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _kind(address: IPAddress) -> str | None:
    """Why an address is not a public unicast one, or None if it is."""
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (cloud metadata lives here)"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv6Address) and address in ipaddress.IPv6Network("fc00::/7"):
        return "a unique-local address"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "a site-local address"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "not a public address"
    return None


def address_problem(address: IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why a callback must not connect to `address`, or None when it may (a public unicast address).

    IPv6 forms that carry an IPv4 address (IPv4-mapped, 6to4, Teredo, NAT64) are judged by the
    IPv4 address they reach. `allow_loopback` (the sandbox only) lets 127.0.0.0/8 and ::1 through.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            # An IPv4 destination in IPv6 clothing; no resolver has a reason to hand one out.
            return f"{address} is an IPv4-mapped address"
        if address.scope_id:
            return f"{address} is a scoped (link-local) address"
        inner = _embedded_ipv4(address)
        problem = _kind(inner) if inner is not None else None
        if problem:
            return f"{address} embeds {inner}, {problem}"
    if allow_loopback and address.is_loopback:
        return None
    problem = _kind(address)
    return f"{address} is {problem}" if problem else None


def literal_address(host: str) -> IPAddress | None:
    """The address a URL host names literally, including the legacy IPv4 spellings resolvers accept
    (`2130706433`, `0x7f.1`, `127.1`); None for a host name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def callback_url_problem(url: str, *, allow_loopback: bool = False) -> str | None:
    """Why `url` can never be a valid callback target, or None if it may be one.

    Checked without any network look-up: the scheme, credentials in the URL, `localhost` names and
    IP literals outside the public unicast space. Host names are checked again, with their
    addresses, on every delivery.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme.lower() not in ("http", "https"):
        return "must be an http:// or https:// URL"
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "must not carry credentials (user:password@)"
    if not host:
        return "has no host"
    name = host.rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return None if allow_loopback else f"{name} is a loopback name"
    address = literal_address(name)
    if address is not None:
        return address_problem(address, allow_loopback=allow_loopback)
    return None
