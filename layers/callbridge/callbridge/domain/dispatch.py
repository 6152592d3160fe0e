"""Scheduled dispatch and reconciliation: when the scheduler must look at a call, and what it does then.

Every call that is not final carries an *attention time* in the sparse due index: the next moment the
scheduler must look at it. SCHEDULED or RETRY_WAIT, not dispatched: its due time (dispatch it with a delay).
Dispatched (its message sent, `dispatched_at`) or QUEUED, and not claimed: when its queue message should long
have been claimed (send it again: a crash between the write and the send, or a failed send, must not lose the
call; the placer's claim makes a duplicate message harmless). DIALING, RINGING, IN_PROGRESS: a while after the
call entered its state (its dialing, its answer), then at doubling intervals (ask the carrier). Final: none. A
campaign's call its campaign holds (SCHEDULED with no due time of its own): none, its campaign releases it, at or
after its call_date or its calling window's opening (`held_until`: listed by GET /pcall/scheduled at that time all
the same, the opening shown as its `next_attempt_at`).
The index holds a call no later than that: a step written without a read may keep an earlier place (an answer
keeps the dialing's, `placement`), and the scheduler finding the call early does nothing with it. Each entry
also says whether the call needs the scheduler before its time (`DueKind`): only a waiting call not dispatched
does (it is sent ahead, with a delay); a run makes no request for any other entry whose time is still ahead.

A call with a due time (a call_date, a retry, a calling window's opening) keeps its status, SCHEDULED or
RETRY_WAIT, until the placer claims it, however near its time: dispatching it only records `dispatched_at`.

Pure functions of the stored call; the adapters only turn the time and the kind into index keys.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from callbridge.domain.calls import UNCLAIMED, WAITING, Call, CallStatus, TimelineEvent, iso, moment

__all__ = ["moment"]  # used to live here; its home is domain/calls.py
from callbridge.domain import events
from callbridge.domain.limits import MAX_DELAY_SECONDS
from callbridge.domain.progress import apply_status_callback

SHORTCUT_SECONDS = MAX_DELAY_SECONDS  # a call due within this goes straight to the queue with a delay
# How long before its due time a call's delayed message is visible at the latest: the placer's slot reservation and
# claim come before its carrier request (they take tens of milliseconds; see delay_seconds).
CLAIM_AHEAD_SECONDS = 0.25

_IN_FLIGHT = (CallStatus.DIALING, CallStatus.RINGING, CallStatus.IN_PROGRESS)


@dataclass(frozen=True)
class Timing:
    """How long each state may last before the scheduler steps in (seconds).

    The reconciliation delays are the template's Reconcile* parameters; the README gives the reasoning.
    """

    # A call still unclaimed this long after it was due is sent to the queue again.
    grace: float = 120
    # Re-sends of the same call back off (grace × 2^n) up to this.
    max_backoff: float = MAX_DELAY_SECONDS
    # DIALING/RINGING: first look-up this long after the dialing: the ring timeout (45 s) and a margin for the
    # final callback's trip.
    ringing_after: float = 75
    # IN_PROGRESS: first look-up this long after the answer.
    answered_after: float = 120
    # Look-ups of a call the carrier still has live double from the first delay up to this.
    max_interval: float = 900
    # A claimed call the carrier has not accepted yet: the placer may hold it for a pacing slot up to its
    # function timeout (30 s) before asking; past this (wall-clock time, not call time) it was never placed.
    placing_window: float = 60


DEFAULT_TIMING = Timing()


class Step(StrEnum):
    """What the scheduler does with a call it looks at."""

    NOTHING = "nothing"
    DISPATCH = "dispatch"  # waiting, not dispatched, due before the next run: sent with a delay
    RESEND = "resend"  # dispatched or QUEUED, and long unclaimed: send its message again
    RECONCILE = "reconcile"  # in flight past its limits: ask the carrier


def _events(call: Call, names: Iterable[str]) -> list[TimelineEvent]:
    wanted = set(names)
    return [e for e in call.timeline if e.event in wanted]


def awaits_claim(call: Call) -> bool:
    """Whether the call's message is (or should be) in the queue: QUEUED, or waiting and dispatched."""
    return call.status is CallStatus.QUEUED or (call.status in WAITING and call.dispatched_at is not None)


def due_at(call: Call) -> str | None:
    """When the call's next attempt is due: a retry or a calling window's opening, else its call_date."""
    return call.next_attempt_at or call.call_date


def queued_since(call: Call) -> datetime:
    """When an unclaimed call's message should have become visible to the placer."""
    released = _events(call, (events.RELEASED,))
    if released:  # a campaign's call waits for its release, not since it was created
        return moment(released[-1].at)
    return moment(due_at(call) or call.created_at)


def _after_pacing(call: Call, due: datetime, timing: Timing) -> datetime:
    """A re-send time no earlier than a grace after the placer's recorded pacing wait (its message is held back)."""
    if call.pacing_until:
        return max(due, moment(call.pacing_until) + timedelta(seconds=timing.grace))
    return due


def _queued_attention(call: Call, timing: Timing) -> tuple[datetime, datetime]:
    """(index time, action time) of a call awaiting its claim."""
    retries = _events(call, (events.REQUEUED, events.CARRIER_RETRY))
    if retries:
        backoff = min(timing.grace * 2 ** len(retries), timing.max_backoff)
        due = moment(retries[-1].at) + timedelta(seconds=backoff)
        return due, _after_pacing(call, due, timing)
    act = _after_pacing(call, queued_since(call) + timedelta(seconds=timing.grace), timing)
    # A call with a due time stays indexed at it until it starts, so GET /pcall/scheduled lists it in order.
    when = due_at(call)
    return (moment(when) if when else act), act


def entered_at(call: Call) -> datetime:
    """When an in-flight call entered its state: its answer once IN_PROGRESS, else the carrier's acceptance of
    the dialing request (or the claim, before that).

    The store places a call in the due index from its claim when it moves, without reading it, and an answer
    keeps that place: a call the placer held for a pacing slot, or one still in progress, is looked at early
    there (a step of NOTHING).
    """
    if call.status is CallStatus.IN_PROGRESS and call.answered_at:
        return moment(call.answered_at)
    claimed = moment(call.dialed_at or call.updated_at)
    accepted = [moment(e.at) for e in call.timeline if e.event == events.CARRIER_CREATED and moment(e.at) >= claimed]
    return max(accepted, default=claimed)


def _first_look(call: Call, timing: Timing) -> float:
    """Seconds after `entered_at` of the first look-up."""
    if call.status is CallStatus.IN_PROGRESS:
        return timing.answered_after
    if not call.carrier_call_id:  # not placed (yet): the placer may still be waiting for its slot
        return max(timing.ringing_after, timing.placing_window)
    return timing.ringing_after


def _in_flight_attention(call: Call, timing: Timing) -> datetime:
    """The next look-up: `*_after` past the moment the call entered its state, then doubling up to `max_interval`."""
    since = entered_at(call)
    first = _first_look(call, timing)
    checks = [e for e in _events(call, (events.RECONCILED,)) if moment(e.at) >= since]
    if not checks:
        return since + timedelta(seconds=first)
    interval = min(first * 2 ** len(checks), timing.max_interval)
    return moment(checks[-1].at) + timedelta(seconds=interval)


class DueKind(StrEnum):
    """How early the scheduler must act on a call's due-index entry (the entry says which, so a run can tell
    without a request).

    AHEAD: a waiting call not dispatched yet, sent up to a run's lookahead before its time with a delay (every
    entry written before kinds existed is taken for one: it is handled as all entries were). AT: any other call
    (unclaimed and in the queue, in flight): nothing to do before the entry's time, so a run leaves it alone until
    then.
    """

    AHEAD = "ahead"
    AT = "at"


def due_kind(call: Call) -> DueKind:
    """The kind of the call's due-index entry: AHEAD exactly when `next_step` may DISPATCH it before its time."""
    if call.status in WAITING and call.dispatched_at is None:
        return DueKind.AHEAD
    return DueKind.AT


def attention(call: Call, timing: Timing = DEFAULT_TIMING) -> datetime | None:
    """The index time of a call: when the scheduler must next look at it (None once it is final)."""
    if call.status.is_final:
        return None
    if awaits_claim(call):
        return _queued_attention(call, timing)[0]
    if call.status in WAITING:
        due = due_at(call)
        return moment(due) if due else None
    return _in_flight_attention(call, timing)


class Placement(StrEnum):
    """What a step that moves a call into a status, without reading it, does with the call's due-index entry.

    An entry is a lower bound of the call's attention time: the scheduler, finding a call before it needs
    anything, leaves it (logic/scheduler.py), so a step that keeps an earlier entry saves the index writes.
    """

    MOVE = "move"  # to `entering(status, since)` (out of the index once final)
    KEEP = "keep"  # where it is: no later than the call's attention time in this status
    KEEP_IF_EARLIER = "keep if earlier"  # where it is if that is no later than `entering(status, since)`, else MOVE


def placement(status: CallStatus) -> Placement:
    """How a call moving into `status` without a read is placed in the due index.

    DIALING and the final statuses move it. RINGING keeps DIALING's place (the dialing plus `ringing_after`, which
    is its attention time too). IN_PROGRESS keeps its place when that is no later than the answer plus
    `answered_after` (a claimed call's is, unless a reconciliation placed it later), else it moves there.
    """
    if status is CallStatus.RINGING:
        return Placement.KEEP
    if status is CallStatus.IN_PROGRESS:
        return Placement.KEEP_IF_EARLIER
    return Placement.MOVE


def entering(status: CallStatus, since: datetime, timing: Timing = DEFAULT_TIMING) -> datetime | None:
    """The attention time of a call that entered `status` (in flight or final) at `since`, without reading it.

    What `attention` gives for a call that has just arrived there; the store writes it with the change.
    """
    if status.is_final:
        return None
    if status is CallStatus.IN_PROGRESS:
        return since + timedelta(seconds=timing.answered_after)
    if status is CallStatus.DIALING:
        return since + timedelta(seconds=timing.ringing_after)
    raise ValueError(f"a call moving into {status.value} needs its whole state to place it in the due index")


def entering_kind(status: CallStatus) -> DueKind:
    """The kind of entry of a call that entered `status` (in flight), written without reading it: what `due_kind`
    gives for such a call, whatever it was before (only a waiting call is dispatched ahead)."""
    if status in WAITING:
        raise ValueError(f"a call moving into {status.value} needs its whole state to place it in the due index")
    return DueKind.AT


def _held_by_its_campaign(call: Call) -> bool:
    """A campaign's call its campaign holds: SCHEDULED with no due time of its own (a retry's next_attempt_at is the
    scheduler's; a calling window's opening, whoever found it closed, is its campaign's: `window_opening`), waiting
    for its campaign to release it (domain/campaigns.py).
    Such a call is stored without its `call_date`, so it has no attention time and the scheduler never sees it."""
    return call.campaign is not None and call.status is CallStatus.SCHEDULED and not due_at(call)


def held_until(call: Call) -> str | None:
    """When a campaign's call its campaign holds is released at the soonest: the opening of the calling window it
    waits for (`window_opening`), else its call_date (the date it was accepted with); None for any other call, and
    for a held call without either (it waits for its turn, not for a time)."""
    if not _held_by_its_campaign(call):
        return None
    return call.window_opening or call.accepted_call_date()


def listed_as_scheduled(call: Call) -> bool:
    """Listed by GET /pcall/scheduled: a call that has not started with a due time (call_date, retry, window), or a
    campaign's call its campaign holds until a time (its call_date, its calling window's opening: `held_until`),
    from the moment it is stored."""
    return call.status in UNCLAIMED and bool(due_at(call) or held_until(call))


def next_step(call: Call, now: datetime, horizon: datetime, timing: Timing = DEFAULT_TIMING) -> Step:
    """What the scheduler does with `call` at `now`, dispatching what is due before `horizon`."""
    if awaits_claim(call):
        return Step.RESEND if _queued_attention(call, timing)[1] <= now else Step.NOTHING
    if call.status in WAITING:
        due = due_at(call)
        return Step.DISPATCH if due and moment(due) < horizon else Step.NOTHING
    if call.status in _IN_FLIGHT:
        return Step.RECONCILE if _in_flight_attention(call, timing) <= now else Step.NOTHING
    return Step.NOTHING


def delay_seconds(due: datetime, now: datetime) -> int:
    """SQS DelaySeconds that make a message visible CLAIM_AHEAD_SECONDS or more before `due`, and no more than a
    second before that: the whole seconds left less that margin (0 when it is that near, at most 900).

    SQS delays are whole seconds. Rounded down from the time left, the message would come anywhere in the second
    before `due`, sometimes a few milliseconds before it: too late for the placer's slot reservation and claim,
    which come before its request (the call then started up to a tenth of a second late). It comes between 1.25
    and 0.25 s early instead, and the placer holds it until its call_date (logic/placer.py): a call starts on
    time, and never early.
    """
    left = (due - now).total_seconds() - CLAIM_AHEAD_SECONDS
    return max(0, min(MAX_DELAY_SECONDS, math.floor(left)))


def horizon(now: datetime, lookahead: float) -> datetime:
    """The end of a run's dispatch window: calls due before it are sent now, with a delay."""
    return now + timedelta(seconds=lookahead)


# --- transitions (each returns None when the call is no longer in the state the step expected)


def dispatched_event(at: datetime, call_date: str) -> TimelineEvent:
    """The timeline event of a waiting call's message sent by the scheduler."""
    return TimelineEvent(at=iso(at), event=events.DISPATCHED, detail={"call_date": call_date})


def dispatch(call: Call, at: datetime) -> Call | None:
    """A SCHEDULED or RETRY_WAIT call's message sent: `dispatched_at`, its status kept until the placer claims it;
    None if it is no longer waiting or was dispatched already.

    The store does the same in one conditional write (`DynamoCallsStore.dispatch`); the index attributes
    do not change (a dispatched call stays indexed at its due time).
    """
    due = due_at(call)
    if call.status not in WAITING or not due or call.dispatched_at is not None:
        return None
    event = dispatched_event(at, due)
    moved = call.model_copy(update={"dispatched_at": event.at, "updated_at": event.at})
    return moved.model_copy(update={"timeline": [*call.timeline, event]})


def requeue(call: Call, at: datetime, timing: Timing = DEFAULT_TIMING) -> Call | None:
    """Record that a long-unclaimed QUEUED call is sent again; None if it is not due for that."""
    if next_step(call, at, at, timing) is not Step.RESEND:
        return None
    late = int((at - queued_since(call)).total_seconds())
    attempt = len(_events(call, (events.REQUEUED,))) + 1
    return call.with_event(iso(at), events.REQUEUED, attempt=attempt, unclaimed_seconds=late)


def fail(call: Call, at: datetime, code: str, reason: str, event: str, **detail: object) -> Call | None:
    """Any non-final call → FAILED with a clear reason; None if it is already final."""
    if call.status.is_final:
        return None
    stamp = iso(at)
    failed = call.model_copy(
        update={
            "status": CallStatus.FAILED,
            "updated_at": stamp,
            "ended_at": call.ended_at or stamp,
            "error_code": code,
            "error_desc": reason,
        }
    )
    return failed.with_event(stamp, event, code=code, reason=reason, **detail)


def never_placed(call: Call, at: datetime, timing: Timing = DEFAULT_TIMING) -> Call | None:
    """A call in flight with no carrier call id and no final callback past its limits → FAILED."""
    if call.status not in _IN_FLIGHT or call.carrier_call_id or next_step(call, at, at, timing) is not Step.RECONCILE:
        return None
    if call.status is CallStatus.DIALING:
        uncertain = any(e.event == events.CARRIER_UNCERTAIN for e in call.timeline)
        why = "the carrier's answer to the request was lost, and" if uncertain else "no carrier call id, and"
        reason = f"never placed: {why} no carrier callback came within {int(_first_look(call, timing))} s"
    else:
        reason = "no final status from the carrier, and no carrier call id to ask it with"
    return fail(call, at, "never_placed", reason, events.RECONCILED, carrier_status=None)


def from_carrier(call: Call, params: Mapping[str, str], at: datetime) -> Call | None:
    """The call after the carrier's answer to GET call (given as the status callback it stands for).

    The same monotonic rules as a callback: a final answer finalizes the call with its outcome; a live one
    moves it forward and the scheduler asks again later. None if the call became final meanwhile.
    """
    if call.status.is_final:
        return None
    stamp = iso(at)
    updated = apply_status_callback(call, params, stamp, call.attempt)
    return updated.with_event(
        stamp, events.RECONCILED, carrier_status=params.get("CallStatus"), status=updated.status.value
    )


def unknown_to_carrier(call: Call, at: datetime) -> Call | None:
    """The carrier has no record of the call → FAILED."""
    return fail(
        call,
        at,
        "carrier_no_record",
        "carrier has no record of this call",
        events.RECONCILED,
        carrier_status="not found",
    )


def dead_lettered(call: Call, at: datetime) -> Call | None:
    """A call awaiting its claim whose message the queue gave up on → FAILED; None if it no longer awaits it."""
    if not awaits_claim(call):
        return None
    reason = "not placed: the calls queue gave up on it after repeated failed attempts (dead-letter queue)"
    return fail(call, at, "dead_letter", reason, events.DEAD_LETTER)
