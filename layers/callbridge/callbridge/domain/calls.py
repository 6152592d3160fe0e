"""A call: its states, its outcome and its timeline."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from callbridge.domain import events
from callbridge.domain.policies import CallPolicy


class CallStatus(StrEnum):
    """The life of a call. Monotonic: a call never moves back to an earlier state."""

    SCHEDULED = "SCHEDULED"
    RETRY_WAIT = "RETRY_WAIT"  # an attempt ended and another one follows at next_attempt_at
    QUEUED = "QUEUED"
    DIALING = "DIALING"
    RINGING = "RINGING"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    BUSY = "BUSY"
    NO_ANSWER = "NO_ANSWER"
    FAILED = "FAILED"
    CANCELED = "CANCELED"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {CallStatus.COMPLETED, CallStatus.BUSY, CallStatus.NO_ANSWER, CallStatus.FAILED, CallStatus.CANCELED}
)
# Waiting for a due time (a call_date, a retry, a calling window's opening); sent to the queue or not yet.
WAITING = (CallStatus.SCHEDULED, CallStatus.RETRY_WAIT)
# Not claimed by a placer, so not dialed (yet): the statuses a claim takes a call from, and a cancel ends.
UNCLAIMED = (*WAITING, CallStatus.QUEUED)
# The order a call moves through before it ends; every final status ranks above all of these.
STATUS_RANK = {
    CallStatus.SCHEDULED: 0,
    CallStatus.RETRY_WAIT: 0,
    CallStatus.QUEUED: 1,
    CallStatus.DIALING: 2,
    CallStatus.RINGING: 3,
    CallStatus.IN_PROGRESS: 4,
}


def forward(current: CallStatus, target: CallStatus) -> CallStatus:
    """The later of two states: a final state absorbs everything after it, others move only forward."""
    if current.is_final:
        return current
    if target.is_final:
        return target
    return target if STATUS_RANK[target] > STATUS_RANK[current] else current


def new_callid(now: float | None = None) -> str:
    """A 27-character id like the seed's: 11 hex digits of milliseconds, then 16 random ones."""
    millis = int((time.time() if now is None else now) * 1000)
    return f"{millis:011x}{secrets.token_hex(8)}"


def iso(moment: datetime) -> str:
    """UTC ISO 8601 with milliseconds and a Z, sortable as text."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def moment(value: str) -> datetime:
    """A stored ISO 8601 time as an aware UTC datetime."""
    parsed = datetime.fromisoformat(value.replace("z", "Z"))
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class TimelineEvent(BaseModel):
    """One thing that happened to a call."""

    model_config = ConfigDict(extra="allow")

    at: str
    event: str
    detail: dict[str, Any] = Field(default_factory=dict)


class Attempt(BaseModel):
    """One carrier attempt of a call, as `attempts` shows it."""

    model_config = ConfigDict(extra="ignore")

    attempt: int
    status: CallStatus
    answered_by: str = ""
    billed_seconds: int = 0
    started_at: str | None = None
    answered_at: str | None = None
    ended_at: str | None = None
    error_code: str | None = None
    error_desc: str | None = None


# An attempt's fields that are its call's own outcome while it is the call's last attempt. The call's billed_seconds is
# not one of them: it is the sum over the call's attempts.
_OUTCOME_FIELDS = frozenset(Attempt.model_fields) - {"attempt", "status", "billed_seconds"}


class Call(BaseModel):
    """A stored call: who asked, what for, where it is, and how it ended."""

    model_config = ConfigDict(extra="ignore")

    callid: str
    account_id: str
    status: CallStatus
    created_at: str
    updated_at: str
    request: dict[str, str]
    accepted: dict[str, str] = Field(default_factory=dict)
    call_date: str | None = None
    answered_by: str = ""
    billed_seconds: int = 0
    started_at: str | None = None
    answered_at: str | None = None
    ended_at: str | None = None
    recording_url: str | None = None
    digits: str = ""
    sms_status: str | None = None
    error_code: str | None = None
    error_desc: str | None = None
    carrier_call_id: str | None = None
    carrier_error: dict[str, Any] | None = None
    sms_sid: str | None = None
    dial_status: str | None = None
    second_leg_id: str | None = None
    # The placer holds the message back for a pacing slot until then: waiting, not lost (see domain/dispatch.py).
    pacing_until: str | None = None
    # The scheduler (or the intake, for a call due soon) sent the message of this SCHEDULED or RETRY_WAIT call to
    # the queue then: it stays in its status until the placer claims it (see domain/dispatch.py).
    dispatched_at: str | None = None
    dialed_at: str | None = None
    # The intake looked the number up in the do-not-call list when it accepted the call (no sooner than created_at):
    # the claim looks again only if a number was listed since (logic/placer.py).
    dnc_checked: bool = False
    source: str = "api"
    campaign: str | None = None  # the id of the campaign the call belongs to
    claim_token: str | None = None
    tts_audio: dict[str, str] = Field(default_factory=dict)
    # The answer_ivr menu and every menu it leads to, as they were when the call was accepted (code → menu).
    ivr_menus: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # Retries and calling window, resolved when the call was accepted (domain/policies.py).
    policy: CallPolicy = Field(default_factory=CallPolicy)
    metadata: dict[str, str] | None = None
    # The attempts that ended and were followed by another; the current (or last) one is the call's own fields.
    attempts: list[Attempt] = Field(default_factory=list)
    # When the next attempt is due: a retry (RETRY_WAIT), or the next opening of the calling window (SCHEDULED).
    next_attempt_at: str | None = None
    # A campaign's call its campaign holds for its calling window: the opening it waits for (its campaign releases it
    # then, at its pace; see domain/campaigns.py). Shown as `next_attempt_at` while it waits.
    window_opening: str | None = None
    version: int = 0
    timeline: list[TimelineEvent] = Field(default_factory=list)

    def with_event(self, at: str, event: str, **detail: Any) -> Call:
        """A copy with one more timeline event."""
        return self.model_copy(update={"timeline": [*self.timeline, TimelineEvent(at=at, event=event, detail=detail)]})

    def accepted_call_date(self) -> str | None:
        """The call_date the call was accepted with (ISO 8601, UTC), as its `accepted` event records it; None if it
        was accepted without one.

        The same as `call_date` for a call accepted by POST /pcall/call; a campaign's call is stored without its
        `call_date` until its campaign releases it (domain/campaigns.py), so this is where it is read until then.
        """
        accepted = next((e for e in self.timeline if e.event == events.ACCEPTED), None)
        value = accepted.detail.get("call_date") if accepted else None
        return value if isinstance(value, str) and value else None

    @property
    def attempt(self) -> int:
        """The number of the current (or last) attempt: 1, 2, ..."""
        return len(self.attempts) + 1

    def current_attempt(self) -> Attempt | None:
        """The current (or last) attempt from the call's own fields; None if it has not been dialed."""
        if self.dialed_at is None and self.carrier_call_id is None and self.started_at is None:
            return None
        previous = sum(a.billed_seconds for a in self.attempts)
        return Attempt(
            attempt=self.attempt,
            status=self.status,
            answered_by=self.answered_by,
            billed_seconds=max(0, self.billed_seconds - previous),
            started_at=self.started_at,
            answered_at=self.answered_at,
            ended_at=self.ended_at,
            error_code=self.error_code,
            error_desc=self.error_desc,
        )

    def all_attempts(self) -> list[Attempt]:
        """Every carrier attempt, the current one included."""
        current = self.current_attempt()
        return [*self.attempts, *([current] if current else [])]

    def outcome(self) -> dict[str, Any]:
        """The outcome fields (`answered_by`, `started_at`, `answered_at`, `ended_at`, `error_code`, `error_desc`) the
        call shows as its own, wherever it is shown: GET, the lists, a campaign's report and the outcome callback.

        Its current attempt's once that is dialed (or when it has no earlier one). Otherwise those of the attempt that
        ended last: while the call waits for its next attempt (RETRY_WAIT, or SCHEDULED for the calling window), and
        once it ended before that attempt was dialed (cancelled by its owner or its campaign, its number suppressed,
        its window never opening again). A call that ended so keeps its own `error_code` and `error_desc` when it has
        them: they say why it ended (`campaign_canceled`, `suppressed`, `window_closed`); the attempt's stay in
        `attempts`.
        """
        own = {name: getattr(self, name) for name in _OUTCOME_FIELDS}
        if not self.attempts or self.current_attempt() is not None:
            return own
        last = self.attempts[-1].model_dump(mode="json", include=set(_OUTCOME_FIELDS))
        if self.status.is_final and self.error_code:
            last.update(error_code=self.error_code, error_desc=self.error_desc)
        return last

    def public(self, *, with_timeline: bool) -> dict[str, Any]:
        """The call as the API shows it to its owner (its lists, a campaign's report and the console read this too)."""
        body = self.model_dump(
            mode="json",
            exclude={
                "account_id",
                "accepted",
                "timeline",
                "version",
                "claim_token",
                "tts_audio",
                "ivr_menus",
                "policy",
                "attempts",
                "pacing_until",
                "dispatched_at",
                "dnc_checked",
                "window_opening",
            },
            exclude_none=False,
        )
        body.update(self.outcome())
        body["status"] = self.status.value
        body["call_date"] = self.call_date or self.accepted_call_date()  # a campaign's call shows it before its release
        # A campaign's call held for its calling window shows the opening, as a call held by the placer does. The
        # attempt it announces starts at the claim: a claimed or ended call shows none (the claim's write leaves the
        # stored field, which the write of the carrier's call id removes: shown so, it costs the claim nothing).
        held = self.window_opening if self.status is CallStatus.SCHEDULED else None
        body["next_attempt_at"] = (self.next_attempt_at or held) if self.status in UNCLAIMED else None
        body["attempts"] = [a.model_dump(mode="json") for a in self.all_attempts()]
        if with_timeline:
            body["timeline"] = [e.model_dump() for e in self.timeline]
        return body
