"""A campaign: many calls accepted in one request, released at a pace, paused, cancelled and counted.

Every call of a campaign is an ordinary call (validated by `parse_call_request`, stored in CallsTable,
placed by the placer); the campaign adds its own rules: its status, its pace, the moves it makes on its calls
and the counts of its calls by status. Its request (up to 10,000 calls at once) is read by
domain/campaign_requests.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from callbridge.domain import events
from callbridge.domain.answered import MACHINE, PERSON
from callbridge.domain.attempts import cancel_suppressed
from callbridge.domain.calls import FINAL_STATUSES, Call, CallStatus, TimelineEvent, iso, moment
from callbridge.domain.errors import DomainError
from callbridge.domain.policies import CallPolicy
from callbridge.domain.requests import CallRequest
from callbridge.domain.suppressions import REFUSED

CHUNK_SIZE = 100  # calls per fan-out message (and per stored chunk)
CANCELED_BY_CAMPAIGN = "campaign_canceled"  # error_code of a call its campaign's cancel ended
# What the intake's answer says of a call to a number on the do-not-call list (accepted, and ended at once).
SUPPRESSED_AT_INTAKE = f"{REFUSED}: the call ends CANCELED (error_code suppressed)"


class CampaignNotFound(DomainError):
    """No such campaign for this account (HTTP 404). Another account's campaign is 'not found' too."""


class CampaignStatus(StrEnum):
    """The life of a campaign."""

    SCHEDULED = "SCHEDULED"  # before start_at
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    CANCELED = "CANCELED"
    FINISHED = "FINISHED"


# Which requests each status allows (anything else is a 409).
PAUSABLE = frozenset({CampaignStatus.SCHEDULED, CampaignStatus.RUNNING})
RESUMABLE = frozenset({CampaignStatus.PAUSED})
CANCELABLE = frozenset({CampaignStatus.SCHEDULED, CampaignStatus.RUNNING, CampaignStatus.PAUSED})
# A campaign in one of these releases its waiting calls (SCHEDULED ones once start_at has come).
RELEASING = frozenset({CampaignStatus.SCHEDULED, CampaignStatus.RUNNING})
# Calls the campaign has released that are not final yet: what max_in_progress bounds.
IN_PROGRESS_STATUSES = frozenset(s for s in CallStatus if s not in FINAL_STATUSES and s is not CallStatus.SCHEDULED)


class Campaign(BaseModel):
    """A stored campaign (its counts are kept apart, see `Counts`)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    account_id: str
    name: str
    status: CampaignStatus
    total: int
    created_at: str
    updated_at: str
    start_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    calls_per_second: float
    max_in_progress: int | None = None
    callback_url: str | None = None
    chunks: int = 0
    metadata_keys: list[str] = Field(default_factory=list)
    # The IVR menus its calls use, as they were when the campaign was accepted (answer_ivr code → menus).
    ivr_menus: dict[str, dict[str, Any]] = Field(default_factory=dict)
    notified_at: str | None = None

    def public(self, counts: Counts) -> dict[str, Any]:
        """The campaign as the API shows it to its owner."""
        body = self.model_dump(exclude={"account_id", "chunks", "metadata_keys", "ivr_menus", "notified_at"})
        body["status"] = self.status.value
        return {**body, **counts.public()}


@dataclass
class Counts:
    """The campaign's calls by status, who answered, and the seconds billed (sums over its calls)."""

    statuses: dict[str, int] = field(default_factory=dict)
    answered: dict[str, int] = field(default_factory=dict)
    billed_seconds: int = 0

    def add(self, other: Counts) -> Counts:
        statuses = dict(self.statuses)
        for k, v in other.statuses.items():
            statuses[k] = statuses.get(k, 0) + v
        answered = dict(self.answered)
        for k, v in other.answered.items():
            answered[k] = answered.get(k, 0) + v
        return Counts(statuses, answered, self.billed_seconds + other.billed_seconds)

    def final(self) -> int:
        return sum(self.statuses.get(s.value, 0) for s in FINAL_STATUSES)

    def in_progress(self) -> int:
        return sum(self.statuses.get(s.value, 0) for s in IN_PROGRESS_STATUSES)

    def public(self) -> dict[str, Any]:
        return {
            "counts": {s.value: self.statuses.get(s.value, 0) for s in CallStatus},
            "answered": {PERSON: self.answered.get(PERSON, 0), MACHINE: self.answered.get(MACHINE, 0)},
            "billed_seconds": self.billed_seconds,
        }


@dataclass(frozen=True)
class CallState:
    """What a campaign counts of one call: its status, who answered, the seconds billed."""

    status: str
    answered_by: str = ""
    billed_seconds: int = 0

    def counts(self) -> Counts:
        answered = {self.answered_by: 1} if self.answered_by in (PERSON, MACHINE) else {}
        return Counts({self.status: 1}, answered, self.billed_seconds)

    def delta(self, old: CallState) -> Counts:
        """What moving one call from `old` to this state changes in the counts."""
        before = old.counts()
        negated = Counts(
            {k: -v for k, v in before.statuses.items()},
            {k: -v for k, v in before.answered.items()},
            -before.billed_seconds,
        )
        return self.counts().add(negated)


@dataclass(frozen=True)
class CallChange:
    """A stored change of a campaign call, as its table's stream saw it: the state, at sequence number `seq`."""

    campaign: str
    callid: str
    state: CallState
    seq: int


def newest_changes(changes: Iterable[CallChange]) -> dict[str, list[CallChange]]:
    """Per campaign, only the newest change of each call (by `seq`), in callid order.

    The counts hold each call's last counted state, so an older change in the same batch adds nothing: counting
    only the newest gives the same counts with one write per call instead of one per change.
    """
    newest: dict[tuple[str, str], CallChange] = {}
    for change in changes:
        key = (change.campaign, change.callid)
        if key not in newest or change.seq > newest[key].seq:
            newest[key] = change
    grouped: dict[str, list[CallChange]] = {}
    for (campaign, _callid), change in sorted(newest.items()):
        grouped.setdefault(campaign, []).append(change)
    return grouped


@dataclass(frozen=True)
class CampaignCall:
    """One call of a campaign as accepted: its place in the list, its callid, parameters and metadata.

    `request` holds the parameters normalized (as a call stores them), `accepted` as they were given; `policy`
    its retries and calling window as resolved at intake (only what differs from the built-in policy);
    `call_date` when it was asked for (ISO, UTC); `suppressed`: its number was on the do-not-call list.
    """

    index: int
    callid: str
    request: dict[str, str]
    accepted: dict[str, str]
    metadata: dict[str, str] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)
    call_date: str | None = None
    suppressed: bool = False

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"i": self.index, "c": self.callid, "r": self.request, "a": self.accepted}
        data["m"] = self.metadata
        if self.policy:
            data["p"] = self.policy
        if self.call_date:
            data["d"] = self.call_date
        if self.suppressed:
            data["s"] = True
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CampaignCall:
        return cls(
            int(data["i"]),
            str(data["c"]),
            dict(data["r"]),
            dict(data["a"]),
            dict(data.get("m") or {}),
            dict(data.get("p") or {}),
            data.get("d") or None,
            bool(data.get("s")),
        )


@dataclass(frozen=True)
class WaitingCall:
    """A campaign call waiting for its release: its place in the campaign's order and, if it must not go before
    a time (its call_date, or its calling window's next opening), that time (ISO, UTC); the call_date it keeps."""

    index: int
    callid: str
    not_before: str | None = None
    call_date: str | None = None


@dataclass(frozen=True)
class AcceptedCall:
    """One call of a valid campaign request: its parameters (defaults applied), metadata and what the account's
    rules made of them (its due time, its policies)."""

    params: dict[str, Any]
    metadata: dict[str, str]
    request: CallRequest
    policy: CallPolicy
    call_date: datetime | None = None


@dataclass(frozen=True)
class CampaignSpec:
    """A validated campaign request: its fields and its calls."""

    name: str
    calls: list[AcceptedCall]
    calls_per_second: float
    max_in_progress: int | None
    start_at: datetime | None
    callback_url: str | None
    metadata_keys: list[str]


def campaign_callid(campaign_id: str, index: int) -> str:
    """The callid of the campaign's call `index`: derived, so a redelivered fan-out never makes a second call.

    The campaign id's first 11 characters (its creation time in hex milliseconds) keep callids sortable by
    creation time like any other; 16 hex digits of a hash of the campaign and the index follow.
    """
    digest = hashlib.sha256(f"{campaign_id}:{index}".encode()).hexdigest()[:16]
    return f"{campaign_id[:11]}{digest}"


def chunked(calls: list[CampaignCall], size: int = CHUNK_SIZE) -> list[list[CampaignCall]]:
    return [calls[start : start + size] for start in range(0, len(calls), size)]


# --- a campaign's calls: the moves the campaign makes (pure; the store applies them atomically) -------


def campaign_call(entry: CampaignCall, campaign: Campaign) -> Call:
    """The stored call of one campaign entry: SCHEDULED until the campaign releases it, or CANCELED (`suppressed`)
    at once if its number was on the do-not-call list when the campaign was accepted. One whose calling window is
    closed when it first may go (`first_opening`) shows the opening it waits for, as a call held by the placer does.
    """
    code = entry.request.get("answer_ivr")
    detail: dict[str, Any] = {"status": CallStatus.SCHEDULED.value, "campaign": campaign.id, "index": entry.index}
    if entry.call_date:
        detail["call_date"] = entry.call_date
    call = Call(
        callid=entry.callid,
        account_id=campaign.account_id,
        status=CallStatus.SCHEDULED,
        created_at=campaign.created_at,
        updated_at=campaign.created_at,
        request=entry.request,
        accepted=entry.accepted,
        source="campaign",
        campaign=campaign.id,
        metadata=entry.metadata or None,  # returned with the call and in its outcome callback, like any call's
        ivr_menus=campaign.ivr_menus.get(code, {}) if code else {},
        policy=CallPolicy.model_validate(entry.policy),
        timeline=[TimelineEvent(at=campaign.created_at, event=events.ACCEPTED, detail=detail)],
    )
    if entry.suppressed:
        return cancel_suppressed(call, moment(campaign.created_at)) or call
    opening = first_opening(entry, campaign)
    return (wait_for_opening(call, opening, campaign.created_at) or call) if opening else call


def closed_until(policy: CallPolicy, at: datetime) -> datetime | None:
    """When the calling window of a call with `policy` next opens, if it is closed at `at`; None if the call may
    go at `at` (no window, open, or never open again: then the placer's claim ends it)."""
    window = policy.window()
    if window is None or window.is_open(at):
        return None
    return window.next_opening(at)


def first_opening(entry: CampaignCall, campaign: Campaign) -> datetime | None:
    """The calling window's opening a stored campaign call first waits for: its window is judged when the campaign
    starts, or at its call_date; None if it is open then (or the call has none)."""
    start = moment(campaign.start_at or campaign.created_at)
    due = max(start, moment(entry.call_date)) if entry.call_date else start
    return closed_until(CallPolicy.model_validate(entry.policy), due)


def first_wait(entry: CampaignCall, campaign: Campaign) -> WaitingCall:
    """How a stored campaign call first waits: in the campaign's order, or until its call_date, or until its
    calling window opens (judged when the campaign starts, or at its call_date).

    A function of the accepted campaign alone, so a redelivered fan-out marks the call the same way.
    """
    opening = first_opening(entry, campaign)
    not_before = iso(opening) if opening else entry.call_date
    return WaitingCall(entry.index, entry.callid, not_before, entry.call_date)


def first_state(entry: CampaignCall) -> CallState:
    """What the counts hold of a campaign call before it is stored: waiting, or ended as suppressed."""
    return CallState(CallStatus.CANCELED.value if entry.suppressed else CallStatus.SCHEDULED.value)


def release(call: Call, at: str, call_date: str | None = None) -> Call | None:
    """A campaign call waiting for its turn (SCHEDULED) → QUEUED, with the `call_date` it was due at if it had one;
    None if it is no longer waiting for its campaign (a retry due at its next_attempt_at is the scheduler's)."""
    if call.status is not CallStatus.SCHEDULED or call.next_attempt_at:
        return None
    moved = call.model_copy(
        update={"status": CallStatus.QUEUED, "updated_at": at, "call_date": call_date, "window_opening": None}
    )
    return moved.with_event(at, events.RELEASED)


def wait_for_opening(call: Call, opening: datetime, at: str) -> Call | None:
    """A campaign call waiting for its campaign (SCHEDULED) whose calling window is closed: it waits for `opening`,
    which it shows as its `next_attempt_at` and is listed by (`window_opening`); its campaign releases it then, at
    its pace. None if it is not waiting for its campaign, or waits for that opening already."""
    if call.status is not CallStatus.SCHEDULED or call.next_attempt_at or call.dispatched_at:
        return None
    when = iso(opening)
    if call.window_opening == when:
        return None
    held = call.model_copy(update={"updated_at": at, "window_opening": when})
    return held.with_event(at, events.WINDOW_CLOSED, next_attempt_at=when)


def back_to_its_campaign(call: Call, token: str, opening: datetime, at: str) -> Call | None:
    """A campaign call the placer has just claimed (DIALING, its `token`, not dialed yet) whose calling window is
    closed → SCHEDULED, held by its campaign until `opening` (`window_opening`, shown as its `next_attempt_at`): its
    campaign releases it then, at its pace, as it does a call that waited for its window before its release.

    Its due time (a call_date, a retry's next_attempt_at) is dropped, as `hold` drops it: the scheduler must not
    dispatch it, or it would go at the opening without its campaign's pace, pause or cancel.
    """
    if call.status is not CallStatus.DIALING or call.claim_token != token or call.carrier_call_id:
        return None
    when = iso(opening)
    held = _waiting_again(call, at, window_opening=when, dispatched_at=None, tts_audio={})
    return held.with_event(at, events.WINDOW_CLOSED, next_attempt_at=when, by="campaign")


def retry_held_for_its_window(call: Call) -> bool:
    """A campaign call whose next attempt (a retry) was due outside its calling window: its attempt's end left it
    SCHEDULED, held by its campaign until the opening (`end_attempt`), and its campaign has yet to mark it waiting
    (the campaigns function does, from the table's stream)."""
    last = call.timeline[-1].event if call.timeline else None
    return (
        call.campaign is not None
        and call.status is CallStatus.SCHEDULED
        and call.window_opening is not None
        and last == events.RETRY_SCHEDULED
    )


def index_of(call: Call) -> int | None:
    """The call's place in its campaign (as accepted); None if it is not known."""
    accepted = next((e for e in call.timeline if e.event == events.ACCEPTED), None)
    index = accepted.detail.get("index") if accepted else None
    return int(index) if isinstance(index, int | str) and str(index).isdigit() else None


def hold(call: Call, token: str, at: str) -> Call | None:
    """A call claimed (DIALING, not dialed yet) while its campaign is paused → SCHEDULED, waiting again.

    It waits for its campaign alone: the due time it was dispatched at (a call_date, a retry, a window's opening)
    is dropped, or the scheduler would dispatch it again while the campaign is paused.
    """
    if call.status is not CallStatus.DIALING or call.claim_token != token:
        return None
    return _waiting_again(call, at, window_opening=None).with_event(at, events.CAMPAIGN_PAUSED)


def _waiting_again(call: Call, at: str, **update: Any) -> Call:
    """A campaign call claimed and not dialed, SCHEDULED again for its campaign to release: its claim and any due
    time of its own (a call_date, a retry's next_attempt_at) dropped, so only its campaign sends it (`update`: the
    rest that changes)."""
    return call.model_copy(
        update={
            "status": CallStatus.SCHEDULED,
            "updated_at": at,
            "claim_token": None,
            "dialed_at": None,
            "call_date": None,
            "next_attempt_at": None,
            **update,
        }
    )


def cancel(call: Call, at: str, token: str | None = None) -> Call | None:
    """A campaign call not dialing yet (waiting for its turn, queued, or between two attempts) → CANCELED
    (`token`: the placer's own claim, not dialed yet, so no attempt: its `dialed_at` goes too)."""
    waiting = call.status in (CallStatus.SCHEDULED, CallStatus.QUEUED, CallStatus.RETRY_WAIT)
    claimed = token is not None and call.status is CallStatus.DIALING and call.claim_token == token
    if not (waiting or claimed):
        return None
    done = call.model_copy(
        update={
            "status": CallStatus.CANCELED,
            "updated_at": at,
            "ended_at": at,
            "claim_token": None,
            "dialed_at": None,
            "next_attempt_at": None,
            "window_opening": None,
            "error_code": CANCELED_BY_CAMPAIGN,
            "error_desc": "its campaign was cancelled before the call was dialed",
        }
    )
    return done.with_event(at, events.CANCELED, by="campaign")
