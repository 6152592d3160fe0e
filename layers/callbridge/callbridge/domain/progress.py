"""How carrier events move a call: monotonic states and an outcome that ignores order and repeats.

Every carrier callback is kept on the call's timeline; the outcome is recomputed from the set of
callbacks on it, so duplicated, late or reordered callbacks always give the same final answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from callbridge.domain.answered import answered_by_label, is_machine
from callbridge.domain.calls import Call, CallStatus, forward, iso

STATUS_EVENT = "carrier.status"
RECORDING_EVENT = "carrier.recording"
# The carrier asked for the answered call's TwiML. With synchronous detection Twilio documents AnsweredBy on this
# request (not on status callbacks), so the verdict is taken from here too.
FLOW_EVENT = "flow"
_FLOW_PARAMS = ("AnsweredBy", "CallStatus", "MachineDetectionDuration")

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


def _outcome(call: Call) -> dict[str, Any]:
    """The outcome implied by every carrier event on the timeline (a function of the set, not the order)."""
    events = [e.detail for e in call.timeline if e.event in (STATUS_EVENT, RECORDING_EVENT, FLOW_EVENT)]
    statuses = [e for e in call.timeline if e.event == STATUS_EVENT]
    asked_for_flow = any(e.event == FLOW_EVENT for e in call.timeline)
    amd = sorted({str(d["AnsweredBy"]) for d in events if d.get("AnsweredBy")})
    amd_value = next((a for a in amd if is_machine(a)), amd[0] if amd else None)
    durations = [d for d in (_int(e.detail.get("CallDuration")) for e in statuses) if d is not None]
    by_status: dict[str, list[str]] = {}
    for event in statuses:
        when = _when(event.detail.get("Timestamp")) or event.at
        by_status.setdefault(str(event.detail.get("CallStatus", "")), []).append(when)
    early = by_status.get("initiated", []) + by_status.get("queued", []) + by_status.get("ringing", [])
    answered = by_status.get("in-progress", []) + by_status.get("answered", [])
    final = [w for s, ws in by_status.items() if s in CARRIER_STATUS and CARRIER_STATUS[s].is_final for w in ws]
    recordings = sorted({str(d["RecordingUrl"]) for d in events if d.get("RecordingUrl")})
    sip = sorted({str(e.detail["SipResponseCode"]) for e in statuses if e.detail.get("SipResponseCode")})
    # Only an answered call's flow is asked for: that request is proof of an answer even if its callback was lost.
    was_answered = bool(answered) or asked_for_flow or call.status is CallStatus.COMPLETED
    update: dict[str, Any] = {
        "answered_by": answered_by_label(amd_value) if was_answered else "",
        "billed_seconds": max(durations) if durations else call.billed_seconds,
        "started_at": min(early + answered + final) if (early or answered or final) else call.started_at,
        "answered_at": min(answered) if answered else call.answered_at,
        "ended_at": max(final) if final else call.ended_at,
        "recording_url": recordings[0] if recordings else call.recording_url,
    }
    if call.status in (CallStatus.FAILED, CallStatus.BUSY, CallStatus.NO_ANSWER) and sip and not call.error_code:
        update["error_code"] = f"SIP {sip[0]}"
        update["error_desc"] = {
            "BUSY": "the number was busy",
            "NO_ANSWER": "nobody answered before the ring timeout",
        }.get(call.status.value, "the call could not be connected")
    return update


def apply_status_callback(call: Call, params: Mapping[str, str], at: str) -> Call:
    """The call after one carrier status callback (kept on the timeline, applied monotonically)."""
    detail = {k: params[k] for k in _KEPT_PARAMS if params.get(k)}
    call = call.with_event(at, STATUS_EVENT, **detail)
    target = CARRIER_STATUS.get(params.get("CallStatus", "").lower())
    if target is not None:
        new_status = forward(call.status, target)
        if new_status is not call.status:
            call = call.model_copy(update={"status": new_status, "updated_at": at})
    return call.model_copy(update=_outcome(call))


def apply_flow_request(call: Call, params: Mapping[str, str], at: str) -> Call:
    """The call after the carrier asked for its flow: kept on the timeline, with the detection verdict it carries.

    A verdict is a fact about the call, not a transition: the status is left to status callbacks.
    """
    detail = {k: params[k] for k in _FLOW_PARAMS if params.get(k)}
    call = call.with_event(at, FLOW_EVENT, label=answered_by_label(params.get("AnsweredBy")), **detail)
    return call.model_copy(update=_outcome(call))


def apply_recording_callback(call: Call, params: Mapping[str, str], at: str) -> Call:
    """The call after a recording status callback."""
    detail = {k: params[k] for k in _KEPT_PARAMS if params.get(k)}
    call = call.with_event(at, RECORDING_EVENT, **detail)
    return call.model_copy(update=_outcome(call))


def outcome_fields(call: Call) -> dict[str, Any]:
    """The outcome of a call as callbacks and the API report it."""
    return {
        "callid": call.callid,
        "status": call.status.value,
        "answered_by": call.answered_by,
        "billed_seconds": call.billed_seconds,
        "started_at": call.started_at,
        "answered_at": call.answered_at,
        "ended_at": call.ended_at,
        "recording_url": call.recording_url,
        "digits": call.digits,
        "error_code": call.error_code,
        "error_desc": call.error_desc,
    }
