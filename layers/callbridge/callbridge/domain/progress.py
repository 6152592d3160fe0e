"""How carrier events move a call: monotonic states and an outcome that ignores order and repeats.

Every carrier callback is kept on the call's timeline; the outcome is recomputed from the set of
callbacks on it, so duplicated, late or reordered callbacks always give the same final answer. The store
writes each callback as one conditional change (`status_change`, no read first) and settles the outcome
from the timeline whenever it reads a call (`settled`).

The carrier is asked only for the final status callback (`STATUS_EVENTS`): the flow webhook, which the
carrier requests when the call is answered, already says when and by whom, and the carrier's acceptance of
the create-call request says when it started. Earlier status callbacks still count when they come (a carrier
configured otherwise, reconciliation).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from callbridge.domain import events
from callbridge.domain.answered import answered_by_label, is_machine
from callbridge.domain.attempts import end_attempt
from callbridge.domain.calls import Call, CallStatus, TimelineEvent, forward, iso, moment
from callbridge.domain.changes import NOT_FINAL, Change, apply

ATTEMPT = "attempt"  # the attempt a carrier event belongs to (the `attempt` query parameter of its webhook URL)
# The carrier asked for the answered call's TwiML: the call is answered. With synchronous detection Twilio
# documents AnsweredBy on this request (not on status callbacks), so the verdict is taken from here too.
_FLOW_PARAMS = ("AnsweredBy", "CallStatus", "MachineDetectionDuration")
# The status callbacks callbridge asks the carrier for: the outcome needs only the final one (see above).
STATUS_EVENTS: tuple[str, ...] = ("completed",)
# Why a call did not complete, when the carrier said so (error_desc); error_code is its SIP code when known,
# else the carrier's word (a look-up's answer carries no SIP code).
FAILURE_DESC = {
    CallStatus.BUSY: "the number was busy",
    CallStatus.NO_ANSWER: "nobody answered before the ring timeout",
    CallStatus.FAILED: "the call could not be connected",
}

CARRIER_STATUS = {
    "queued": CallStatus.DIALING,
    "initiated": CallStatus.DIALING,
    "ringing": CallStatus.RINGING,
    "in-progress": CallStatus.IN_PROGRESS,
    "answered": CallStatus.IN_PROGRESS,
    "completed": CallStatus.COMPLETED,
    "busy": CallStatus.BUSY,
    "no-answer": CallStatus.NO_ANSWER,
    "failed": CallStatus.FAILED,
    "canceled": CallStatus.CANCELED,
}
_KEPT_PARAMS = (
    "CallSid",
    "CallStatus",
    "SequenceNumber",
    "Timestamp",
    "AnsweredBy",
    "CallDuration",
    "Duration",
    "SipResponseCode",
    "ErrorCode",
    "ErrorMessage",
    "RecordingUrl",
    "RecordingSid",
    "RecordingDuration",
    "RecordingStatus",
    "MachineDetectionDuration",
)


def _when(value: Any) -> str | None:
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return None
    return iso(moment) if moment.tzinfo else None


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _of_attempt(detail: Mapping[str, Any]) -> int:
    """The attempt a carrier event belongs to (events of a call's first attempt carry none)."""
    return _int(detail.get(ATTEMPT)) or 1


def _current(call: Call, *names: str) -> list[TimelineEvent]:
    """The timeline events of these names that belong to the call's current attempt."""
    return [e for e in call.timeline if e.event in names and _of_attempt(e.detail) == call.attempt]


def _answered_at(flow: TimelineEvent) -> str:
    """When the call was answered, from the flow request: its receipt less the answering-machine detection."""
    detection = _int(flow.detail.get("MachineDetectionDuration")) or 0
    received = datetime.fromisoformat(flow.at.replace("Z", "+00:00"))
    return iso(received - timedelta(milliseconds=detection))


def _carrier_status(detail: Mapping[str, Any]) -> CallStatus | None:
    return CARRIER_STATUS.get(str(detail.get("CallStatus", "")).lower())


def _about_this_call(call: Call, detail: Mapping[str, Any]) -> bool:
    """Whether a carrier event (a status or recording callback, a look-up) names the call's carrier call: its
    CallSid is the call's carrier call id. Any other (a made-up CallSid, a call never placed) is on the timeline
    for the record only."""
    return bool(call.carrier_call_id) and detail.get("CallSid") == call.carrier_call_id


def _counts(call: Call, detail: Mapping[str, Any]) -> bool:
    """Whether a status event counts towards the outcome: it is about the call's carrier call, and fits the
    call's status (a final status counts only when the call is in it: one that came after another final status,
    or never moved the call, is on the timeline for the record only)."""
    if not _about_this_call(call, detail):
        return False
    said = _carrier_status(detail)
    return not (said is not None and said.is_final and said is not call.status)


def _outcome(call: Call) -> dict[str, Any]:
    """The outcome implied by every carrier event of the current attempt on the timeline (a function of the set,
    not the order). billed_seconds adds the attempts before it."""
    statuses = [e for e in _current(call, events.CARRIER_STATUS) if _counts(call, e.detail)]
    # A call that ended unanswered (busy, no answer, failed: by the carrier's word or reconciliation's) stays so.
    unanswered = call.status.is_final and call.status is not CallStatus.COMPLETED
    flows = [] if unanswered else _current(call, events.FLOW)
    recorded = [e for e in _current(call, events.CARRIER_RECORDING) if _about_this_call(call, e.detail)]
    details = [e.detail for e in statuses + recorded + flows]
    asked_for_flow = bool(flows)
    before = sum(a.billed_seconds for a in call.attempts)
    amd = sorted({str(d["AnsweredBy"]) for d in details if d.get("AnsweredBy")})
    amd_value = next((a for a in amd if is_machine(a)), amd[0] if amd else None)
    durations = [d for d in (_int(e.detail.get("CallDuration")) for e in statuses) if d is not None]
    by_status: dict[str, list[str]] = {}
    for event in statuses:
        when = _when(event.detail.get("Timestamp")) or event.at
        by_status.setdefault(str(event.detail.get("CallStatus", "")).lower(), []).append(when)
    early = by_status.get("initiated", []) + by_status.get("queued", []) + by_status.get("ringing", [])
    answered = [] if unanswered else by_status.get("in-progress", []) + by_status.get("answered", [])
    # Without the early callbacks, the carrier's acceptance of the call and the flow request stand for them.
    early = early or [e.at for e in _current(call, events.CARRIER_CREATED)]
    answered = answered or [_answered_at(e) for e in flows]
    final = [w for s, ws in by_status.items() if s in CARRIER_STATUS and CARRIER_STATUS[s].is_final for w in ws]
    recordings = sorted({str(d["RecordingUrl"]) for d in details if d.get("RecordingUrl")})
    # Only an answered call's flow is asked for: that request is proof of an answer even if its callback was lost.
    was_answered = bool(answered) or asked_for_flow or call.status is CallStatus.COMPLETED
    answered_at = min(answered) if answered else call.answered_at
    ended_at = max(final) if final else call.ended_at
    # The carrier's Timestamp carries whole seconds, the answer known from the flow request milliseconds: a call
    # that ended in the second it was answered in ended at its answer at the earliest, not before it.
    if ended_at and answered_at and ended_at < answered_at:
        ended_at = answered_at
    update: dict[str, Any] = {
        # Without a verdict among the events, the one the call already has (or Person) stands.
        "answered_by": (answered_by_label(amd_value) if amd_value else call.answered_by or answered_by_label(None))
        if was_answered
        else "",
        "billed_seconds": before + max(durations) if durations else call.billed_seconds,
        "started_at": min(early + answered + final) if (early or answered or final) else call.started_at,
        "answered_at": answered_at,
        "ended_at": ended_at,
        "recording_url": recordings[0] if recordings else call.recording_url,
    }
    return update | _failure(call, statuses)


def _failure(call: Call, statuses: list[TimelineEvent]) -> dict[str, Any]:
    """error_code and error_desc of a call the carrier said did not complete, from every such event (callback or
    look-up alike). A code set for another reason (the placer's refusal, reconciliation's never_placed) stays."""
    desc = FAILURE_DESC.get(call.status)
    said = [e.detail for e in statuses if _carrier_status(e.detail) is call.status]
    if desc is None or not said or (call.error_code and not _derived(call.error_code)):
        return {}
    sip = sorted({str(d["SipResponseCode"]) for d in said if d.get("SipResponseCode")})
    words = sorted({str(d["CallStatus"]).lower() for d in said})
    return {"error_code": f"SIP {sip[0]}" if sip else words[0], "error_desc": desc}


def _derived(error_code: str) -> bool:
    """Whether an error_code is one `_failure` gives (so it may be recomputed from the events)."""
    return error_code.startswith("SIP ") or error_code in CARRIER_STATUS


def _awaiting_its_id(answered: bool) -> frozenset[CallStatus]:
    """The statuses in which a call with no carrier call id yet takes a request's CallSid as its own: a call being
    dialed (the placer's write of the id is on its way, or the carrier's answer was lost); for a request made by
    the answered call's TwiML (`answered`), also a call its flow request answered before that write landed."""
    return frozenset({CallStatus.DIALING, CallStatus.IN_PROGRESS}) if answered else frozenset({CallStatus.DIALING})


def _names(sid: str, recorded: str | None, on_its_way: bool) -> bool:
    """The rule every carrier request is held to: its CallSid is the carrier call recorded for it, or, while that
    carrier call's id is on its way (not written yet), any CallSid at all."""
    if recorded:
        return sid == recorded
    return bool(sid) and on_its_way


def from_this_call(call: Call, params: Mapping[str, str], *, answered: bool = False) -> bool:
    """Whether a carrier request is about this call: its CallSid is the call's carrier call id.

    A call with no carrier call id yet takes the request's while `_awaiting_its_id` (`answered`: the request
    comes from the answered call's TwiML, its IVR keys, <Dial> action, hold music or fallback); a call never
    claimed for dialing, or waiting for its next attempt, has no carrier call to hear from.
    """
    sid = params.get("CallSid", "")
    return _names(sid, call.carrier_call_id, call.status in _awaiting_its_id(answered))


# second_leg_id while the hold webhook that claimed the bridge's second leg is dialing it, and once that failed.
SECOND_LEG_DIALING = "pending-"
SECOND_LEG_FAILED = "failed"


def from_its_second_leg(call: Call, params: Mapping[str, str]) -> bool:
    """Whether a request about the bridge's second leg (its TwiML, its status callback) is about this call's: its
    CallSid is the call's second_leg_id, or any while the leg is being dialed (its id not written yet). A call
    whose bridge never dialed a leg, or failed to, has no second leg to hear from."""
    leg = call.second_leg_id or ""
    dialing = leg.startswith(SECOND_LEG_DIALING)
    recorded = None if dialing or leg == SECOND_LEG_FAILED else leg
    return _names(params.get("CallSid", ""), recorded, dialing)


def about_carrier_call(change: Change, sid: str) -> Change:
    """`change` (and its `otherwise`), written only if the call's carrier call id is `sid`: `from_this_call` held
    by the write's own condition, with no read before it."""
    otherwise = change.otherwise
    if otherwise is not None:
        otherwise = replace(otherwise, require={**otherwise.require, "carrier_call_id": sid})
    return replace(change, require={**change.require, "carrier_call_id": sid}, otherwise=otherwise)


def before_its_carrier_id(change: Change, sid: str, *, answered: bool = False) -> Change:
    """`change`, written only while the call has no carrier call id yet and is `_awaiting_its_id` (the placer's
    write of it is on its way): the other case in which a request is `from_this_call`. The request's CallSid
    becomes the call's carrier call id in the same write, so the carrier's later callbacks about that call move
    it even if the placer's write never lands (a placer that crashed after the carrier accepted the call); the
    placer's write, if it lands, writes the same id."""
    awaiting = _awaiting_its_id(answered)
    when = awaiting if change.when is None else change.when & awaiting
    return replace(
        change,
        when=when,
        require={**change.require, "carrier_call_id": None},
        set={**change.set, "carrier_call_id": sid},
        otherwise=None,
    )


def _detail(params: Mapping[str, str], attempt: int) -> dict[str, Any]:
    detail: dict[str, Any] = {k: params[k] for k in _KEPT_PARAMS if params.get(k)}
    if attempt != 1:
        detail[ATTEMPT] = attempt
    return detail


def apply_status_callback(call: Call, params: Mapping[str, str], at: str, attempt: int = 1) -> Call:
    """The call after one carrier status callback of attempt `attempt` (kept on the timeline, applied
    monotonically). A callback of an earlier attempt changes nothing; one that ends the current attempt may
    make the call wait for its next attempt (domain/attempts.py). A callback about another carrier call (another
    CallSid) is kept for the record, as `status_change` keeps it, and changes nothing (the outcome leaves it out);
    once final, a call keeps its status and outcome."""
    call = call.with_event(at, events.CARRIER_STATUS, **_detail(params, attempt))
    if not from_this_call(call, params):
        return call
    if attempt != call.attempt:
        return call
    if not call.carrier_call_id:
        call = call.model_copy(update={"carrier_call_id": params["CallSid"]})
    target = CARRIER_STATUS.get(params.get("CallStatus", "").lower())
    if target is not None:
        new_status = forward(call.status, target)
        if new_status is not call.status:
            call = call.model_copy(update={"status": new_status, "updated_at": at})
    call = call.model_copy(update=_outcome(call))
    if not call.status.is_final:
        return call
    ours = [e for e in _current(call, events.CARRIER_STATUS) if _about_this_call(call, e.detail)]
    sip = [str(e.detail["SipResponseCode"]) for e in ours if e.detail.get("SipResponseCode")]
    return end_attempt(call, moment(at), sip[-1] if sip else None)


def apply_flow_request(call: Call, params: Mapping[str, str], at: str) -> Call:
    """The call after the carrier asked for its flow: kept on the timeline, with the detection verdict it carries,
    and IN_PROGRESS unless it already moved on (the carrier asks for the flow of an answered call only). The flow
    is asked for while the current attempt is answered, so it belongs to that attempt."""
    _, after = apply(call, flow_change(params, at, call.attempt))
    return settled(after or call)


def apply_recording_callback(call: Call, params: Mapping[str, str], at: str, attempt: int = 1) -> Call:
    """The call after a recording status callback of attempt `attempt` (one naming another carrier call than the
    call's is kept on the timeline and changes nothing)."""
    call = call.with_event(at, events.CARRIER_RECORDING, **_detail(params, attempt))
    if attempt != call.attempt:
        return call
    return call.model_copy(update=_outcome(call))


def settled(call: Call) -> Call:
    """The call with the outcome its carrier events imply (the store applies this to every call it reads)."""
    return call.model_copy(update=_outcome(call))


def _kept(params: Mapping[str, str]) -> dict[str, str]:
    return {k: params[k] for k in _KEPT_PARAMS if params.get(k)}


def _before(target: CallStatus) -> frozenset[CallStatus]:
    """The statuses a call moves forward from when the carrier reports `target`."""
    return frozenset(s for s in NOT_FINAL if forward(s, target) is not s)


def status_change(params: Mapping[str, str], at: str) -> Change:
    """A status callback as one change: kept on the timeline, and the status moved if that is forward.

    The same rules as `apply_status_callback` (a test holds them together), written without a read.
    """
    event = TimelineEvent(at=at, event=events.CARRIER_STATUS, detail=_kept(params))
    only_event = Change(event=event)
    target = CARRIER_STATUS.get(params.get("CallStatus", "").lower())
    if target is None:
        return only_event
    # An answer moves the call in the due index from when the carrier says it was answered.
    since = _when(params.get("Timestamp")) if target is CallStatus.IN_PROGRESS else None
    # Only a callback about the call's own carrier call moves it (one with another CallSid is kept for the
    # record, and the outcome leaves it out): `from_this_call`, held by the write's conditions. A call being
    # dialed whose carrier call id is not written yet takes the CallSid as its id in the same write (the callback
    # came before the placer's write, or that write was lost); a call never claimed for dialing never moves.
    sid = params.get("CallSid", "")
    if not sid:
        return only_event
    moved = Change(event=event, when=_before(target), status=target, since=since)
    adopting = replace(before_its_carrier_id(moved, sid), otherwise=only_event)
    return replace(moved, require={"carrier_call_id": sid}, otherwise=adopting)


def recording_change(params: Mapping[str, str], at: str, attempt: int = 1) -> Change:
    """A recording status callback of attempt `attempt` as one change (the outcome of that attempt takes the
    recording from the timeline, if the callback names the call's carrier call)."""
    return Change(event=TimelineEvent(at=at, event=events.CARRIER_RECORDING, detail=_detail(params, attempt)))


def ignored_change(params: Mapping[str, str], at: str, webhook: str, attempt: int = 1) -> Change:
    """A request to `webhook` about another carrier call than the call's (`from_this_call`, or for the second leg's
    webhooks `from_its_second_leg`, is false): kept on the timeline for the record, changing nothing."""
    detail = {**_detail(params, attempt), "webhook": webhook}
    return Change(event=TimelineEvent(at=at, event=events.CARRIER_IGNORED, detail=detail))


def ignored_request(call: Call, params: Mapping[str, str], at: str, webhook: str) -> Call:
    """The call after `ignored_change`, for a step that reads the call first."""
    _, after = apply(call, ignored_change(params, at, webhook))
    return after or call  # never None: an ignored_change has no condition


def flow_change(params: Mapping[str, str], at: str, attempt: int = 1) -> Change:
    """The carrier asks for the answered call's TwiML: the call is IN_PROGRESS (unless it already moved on).

    `attempt`: the attempt being answered (its flow URL names it from the second one on).
    """
    detail: dict[str, Any] = {k: params[k] for k in _FLOW_PARAMS if params.get(k)}
    if attempt != 1:
        detail[ATTEMPT] = attempt
    event = TimelineEvent(
        at=at, event=events.FLOW, detail={"label": answered_by_label(params.get("AnsweredBy")), **detail}
    )
    return Change(
        event=event,
        when=_before(CallStatus.IN_PROGRESS),
        status=CallStatus.IN_PROGRESS,
        otherwise=Change(event=event),
        since=_answered_at(event),
    )


# How far along its way each of the carrier's message statuses is (Twilio's MessageStatus for an outbound SMS).
# Callbacks may come late, twice or out of order: a status never replaces one further along, and the final ones
# (delivered, undelivered, failed, canceled) absorb each other, except that `read` can still follow delivery.
_SMS_RANK = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "canceled": 4,
    "read": 5,
}


def later_sms_status(current: str | None, new: str) -> str:
    """The SMS status to keep when `new` arrives: whichever is further along (`current` on a tie)."""
    if _SMS_RANK.get(new, -1) > _SMS_RANK.get(current or "", -1):
        return new
    return current or new


def apply_sms_status(call: Call, params: Mapping[str, str], at: str) -> Call:
    """The call after a message status callback about its voicemail SMS (kept on the timeline).

    A callback about another message than the call's SMS changes nothing but the timeline.
    """
    detail = {k: params[k] for k in ("MessageSid", "MessageStatus", "ErrorCode") if params.get(k)}
    call = call.with_event(at, events.SMS_STATUS, **detail)
    sid, status = params.get("MessageSid", ""), params.get("MessageStatus", "").lower()
    if not status or (call.sms_sid and sid != call.sms_sid):
        return call
    return call.model_copy(
        update={"sms_sid": call.sms_sid or sid, "sms_status": later_sms_status(call.sms_status, status)}
    )


def outcome_fields(call: Call) -> dict[str, Any]:
    """The outcome of a call as callbacks report it (the fields it shows as its own are `Call.outcome`'s, as the API
    shows them)."""
    return {
        "callid": call.callid,
        "status": call.status.value,
        "billed_seconds": call.billed_seconds,
        "recording_url": call.recording_url,
        "digits": call.digits,
        **call.outcome(),
    }
