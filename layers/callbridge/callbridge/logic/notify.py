"""Use case: deliver a finished call's outcome to its callback_url, at least once.

The first attempt is driven by CallsTable's stream (the outcome write itself is the outbox, so a
crash between writing the outcome and sending it loses nothing: the stream record is retried).
A failed attempt leaves the stream and retries on NotificationsQueue with growing delays for 24
hours, then goes to the dead-letter queue. Every attempt is kept on the call's timeline.

A stream batch is done only when its slowest attempt is, and the records behind it in its lane wait for
it: one receiver that hangs until the timeout holds up other accounts' notifications. So an endpoint
(scheme, host and port) where an attempt took `slow_seconds` or more (a late answer, or none before the
timeout) is remembered for
`slow_memory` seconds, and meanwhile a first attempt to it is not made from the stream: it is handed to
the queue at once (no delay), where a slow answer holds up nobody. The memory is the container's own.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import urlsplit

from callbridge.domain import events
from callbridge.domain.accounts import Account
from callbridge.domain.calls import Call, TimelineEvent, iso
from callbridge.domain.changes import Change
from callbridge.domain.errors import ServiceUnavailable
from callbridge.domain.notifications import (
    EVENT_ID_HEADER,
    NOT_QUEUED,
    SIGNATURE_HEADER,
    DeliveryFailed,
    Retry,
    callback_url_of,
    event_id,
    form_body,
    gives_up,
    is_final_transition,
    payload,
    retry_delay,
    signature_header,
    was_attempted,
    was_delivered,
)
from callbridge.ports import CallsStore

FORM = "application/x-www-form-urlencoded"
_DEFAULT_PORTS = {"https": 443, "http": 80}
_SLOW_KEPT = 1000  # slow endpoints a container remembers before it forgets the expired ones


class Sender(Protocol):
    def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """POST `body`; the HTTP status, or DeliveryFailed when no answer came."""


class NotificationQueue(Protocol):
    def schedule(self, retry: Retry, delay_seconds: int) -> None:
        """Make `retry` due in `delay_seconds`; raises ServiceUnavailable."""

    def dead_letter(self, retry: Retry, reason: str) -> None:
        """Park a notification that ran out of retries; raises ServiceUnavailable."""


class AccountLookup(Protocol):
    def get_account(self, api_key: str) -> Account | None: ...


class Result(StrEnum):
    """What became of one stream record or queue message."""

    IGNORED = "ignored"  # not a notification: another kind of change, or a retry of nothing known
    DELIVERED = "delivered"  # the receiver answered 2xx
    DUPLICATE = "duplicate"  # already delivered, or a retry chain already owns it; nothing sent
    RETRY = "retry"  # failed; queued again with a delay
    DEAD_LETTER = "dead_letter"  # failed for 24 hours, or could not be processed: parked in the DLQ
    REFUSED = "refused"  # can never be delivered (the URL can never be valid, or the account is gone)
    DEFERRED = "deferred"  # its endpoint was slow lately: the first attempt is made from the queue, not the stream


def endpoint_of(url: str) -> str:
    """What slowness is remembered by: a URL's scheme, host and port (its path and query vary per call)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    scheme = parts.scheme.lower()
    return f"{scheme}://{parts.hostname or ''}:{port or _DEFAULT_PORTS.get(scheme, '')}"


@dataclass
class Notifier:
    """Everything delivering outcome callbacks needs."""

    calls: CallsStore
    accounts: AccountLookup
    sender: Sender
    queue: NotificationQueue
    now: Callable[[], float] = time.time
    rng: Callable[[], float] = random.random
    account_ttl: float = 60
    slow_seconds: float = 5.0  # an answer this late (or none) marks its endpoint slow
    slow_memory: float = 300.0  # seconds an endpoint stays marked slow after its last slow answer
    log: Callable[..., None] = field(default=lambda *_args, **_kw: None)
    _secrets: dict[str, tuple[str | None, float]] = field(default_factory=dict, init=False, repr=False)
    _slow: dict[str, float] = field(default_factory=dict, init=False, repr=False)  # endpoint → marked until
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def on_change(self, old: Call | None, new: Call) -> Result:
        """A change to a call (a stream record): notify if it just finished and asked for a callback.

        The call is read again: a stream batch is handed over again after a partial failure, and
        what the first pass settled must not be sent (or chained) twice.
        """
        if not is_final_transition(old, new):
            return Result.IGNORED
        first = Retry(new.callid, event_id(new), attempt=1, first_attempt_at=self.now())
        try:
            call = self.calls.get(new.callid)
            if call is None:
                return Result.IGNORED
            if was_attempted(call, first.event_id):
                return Result.DUPLICATE
            if self._is_slow(callback_url_of(call) or ""):
                return self._defer(call, first)
            return self._attempt(call, first)
        except ServiceUnavailable:
            raise  # an outage: the stream hands the record over again
        except Exception as exc:
            # Anything else would fail the same way on every retry and hold up the stream behind it:
            # park the notification in the DLQ (alarmed) instead of losing or looping on it.
            reason = f"could not be processed: {type(exc).__name__}: {exc}"
            self.log("parking a notification that could not be processed", callid=new.callid, error=reason)
            self.queue.dead_letter(first, reason)
            return Result.DEAD_LETTER

    def on_retry(self, retry: Retry) -> Result:
        """A retry came due (a NotificationsQueue message): try again with the call as it is now."""
        call = self.calls.get(retry.callid)
        if call is None or not call.status.is_final or event_id(call) != retry.event_id or not callback_url_of(call):
            self.log("dropping a retry that matches no finished call", callid=retry.callid, event_id=retry.event_id)
            return Result.IGNORED
        if was_delivered(call, retry.event_id):
            return Result.DUPLICATE
        return self._attempt(call, retry)

    def _secret(self, account_id: str) -> str | None:
        """The account's webhook secret, cached briefly per container (rotation takes effect within the TTL)."""
        now = time.monotonic()
        with self._lock:
            cached = self._secrets.get(account_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        account = self.accounts.get_account(account_id)
        secret = account.webhook_secret if account is not None else None
        with self._lock:
            self._secrets[account_id] = (secret, now + self.account_ttl)
        return secret

    def _is_slow(self, url: str) -> bool:
        with self._lock:
            return self._slow.get(endpoint_of(url), float("-inf")) > self.now()

    def _took(self, url: str, seconds: float) -> None:
        """Learn from one attempt: a slow one (answered late, or timed out) marks its endpoint slow; a quick one,
        answered or failed at once (refused), clears the mark."""
        endpoint = endpoint_of(url)
        with self._lock:
            if seconds >= self.slow_seconds:
                now = self.now()
                if len(self._slow) >= _SLOW_KEPT:  # forget what has expired before remembering more
                    self._slow = {known: until for known, until in self._slow.items() if until > now}
                self._slow[endpoint] = now + self.slow_memory
            else:
                self._slow.pop(endpoint, None)

    def _defer(self, call: Call, first: Retry) -> Result:
        """Hand the first attempt to the queue, due at once; recorded so the stream record starts nothing new."""
        self.queue.schedule(first, 0)  # an outage raises: the stream hands the record over again
        at = self.now()
        detail = {"event_id": first.event_id, "attempt": first.attempt, "reason": "its endpoint was slow lately"}
        self._record(call.callid, at, detail, Result.DEFERRED)
        return Result.DEFERRED

    def _attempt(self, call: Call, retry: Retry) -> Result:
        at = self.now()
        url = callback_url_of(call) or ""
        body = form_body(payload(call))
        detail: dict[str, Any] = {"event_id": retry.event_id, "attempt": retry.attempt}
        status_code: int | None = None
        error: str | None = None
        permanent = False
        secret = self._secret(call.account_id)
        if secret is None:
            error, permanent = "the call's account no longer exists, so nothing can sign the notification", True
        else:
            headers = {
                "Content-Type": FORM,
                SIGNATURE_HEADER: signature_header(secret, int(at), body),
                EVENT_ID_HEADER: retry.event_id,
            }
            sent_at = self.now()
            try:
                status_code = self.sender.send(url, body, headers)
            except DeliveryFailed as exc:
                error, permanent = exc.reason, exc.permanent
            self._took(url, self.now() - sent_at)
        if status_code is not None:
            detail["status_code"] = status_code
        if error is not None:
            detail["error"] = error

        if status_code is not None and 200 <= status_code < 300:
            result = Result.DELIVERED
        elif permanent:
            result = Result.REFUSED
        else:
            result = self._follow_up(retry, at, detail, status_code, error)
        self._record(call.callid, at, detail, result)
        return result

    def _follow_up(
        self, retry: Retry, at: float, detail: dict[str, Any], status_code: int | None, error: str | None
    ) -> Result:
        """Queue the next attempt, or park the notification in the DLQ after 24 hours."""
        # Secured before the attempt is recorded: a recorded attempt means its chain goes on.
        try:
            if gives_up(retry.first_attempt_at, at):
                hours = (at - retry.first_attempt_at) / 3600
                last = f"HTTP {status_code}" if status_code is not None else error
                self.queue.dead_letter(retry, f"{retry.attempt} attempts over {hours:.1f} h; last: {last}")
                return Result.DEAD_LETTER
            delay = retry_delay(retry.attempt, self.rng)
            detail["retry_in"] = delay
            self.queue.schedule(
                Retry(retry.callid, retry.event_id, attempt=retry.attempt + 1, first_attempt_at=retry.first_attempt_at),
                delay,
            )
            return Result.RETRY
        except ServiceUnavailable:
            # The stream record or queue message fails and comes back; this attempt will be made again.
            self._record(retry.callid, at, detail, NOT_QUEUED)
            raise

    def _record(self, callid: str, at: float, detail: dict[str, Any], result: str) -> None:
        """Keep the attempt on the call's timeline. Best effort: the delivery or the retry matters more."""
        stamp = iso(datetime.fromtimestamp(at, UTC))
        entry = {**detail, "result": str(result)}
        try:
            self.calls.apply(callid, Change(event=TimelineEvent(at=stamp, event=events.CALLBACK, detail=entry)))
        except ServiceUnavailable as exc:
            self.log("could not record a callback attempt on the timeline", callid=callid, error=str(exc), **entry)
