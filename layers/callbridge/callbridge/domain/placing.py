"""Placing a call: the claim that makes it happen once, and what the carrier's answer leaves on the call.

Each step is a `Change` the store writes in one conditional request (domain/changes.py).
"""

from __future__ import annotations

from typing import Any

from callbridge.domain import events
from callbridge.domain.calls import UNCLAIMED, WAITING, CallStatus, TimelineEvent
from callbridge.domain.changes import NOT_FINAL, Change

# A waiting call (SCHEDULED, RETRY_WAIT) is in the queue only once its message was sent: a stale message
# (a campaign call paused again, a call held for its calling window) never claims it.
SENT = {"dispatched_at": frozenset(WAITING)}


def claim(at: str, token: str, *, hold_until: str) -> Change:
    """QUEUED (or SCHEDULED, RETRY_WAIT with its message sent) → DIALING for this placer only (its token), unless
    the call is due after `hold_until` (its call_date, or the next_attempt_at of a retry or a calling window's
    opening).

    Of any number of placers given the same call, exactly one's claim holds.
    """
    return Change(
        event=TimelineEvent(at=at, event=events.DIALING, detail={"claim": token}),
        when=frozenset(UNCLAIMED),
        needs=SENT,
        not_after={"call_date": hold_until, "next_attempt_at": hold_until},
        status=CallStatus.DIALING,
        set={"dialed_at": at, "claim_token": token, "dispatched_at": None},
    )


# A recorded pacing wait runs this far past the message's return, so a call waiting in a long backlog has it
# rewritten about once a minute, not at every return of its message.
PACING_NOTE_AHEAD = 60.0


def waiting_for_a_slot(until: str, noted: str) -> Change:
    """The call's message comes back at `until` (no carrier slot before): the scheduler must not take it for lost.

    Written only if the wait on record ends before `until` (so a call in a long backlog is written about once
    a minute, with `noted` a minute past `until`), and only while the call is not claimed.
    """
    return Change(
        event=TimelineEvent(at=until, event=events.PACING_WAIT, detail={"until": noted}),
        when=frozenset(UNCLAIMED),
        needs=SENT,
        not_after={"pacing_until": until},
        set={"pacing_until": noted},
    )


def premium_audio(audio: dict[str, str]) -> Change:
    """Keep the premium TTS audio URLs the flow will play (before the carrier can ask for the flow)."""
    return Change(set={"tts_audio": audio})


def placed(at: str, sid: str, carrier_status: str, **detail: Any) -> Change:
    """The carrier accepted the call: keep its id (the attempt is no longer waiting for its next_attempt_at)."""
    event = TimelineEvent(at=at, event=events.CARRIER_CREATED, detail={"sid": sid, "status": carrier_status, **detail})
    return Change(event=event, set={"carrier_call_id": sid, "next_attempt_at": None})


def uncertain(at: str, error: str) -> Change:
    """The request may have reached the carrier: leave the call DIALING for reconciliation."""
    return Change(event=TimelineEvent(at=at, event=events.CARRIER_UNCERTAIN, detail={"error": error}))


def rejected(at: str, code: int, message: str, http_status: int) -> Change:
    """The carrier refused the call for good: FAILED with its code and message (a final call stays as it is)."""
    return Change(
        event=TimelineEvent(at=at, event=events.CARRIER_REJECTED, detail={"code": code, "message": message}),
        when=NOT_FINAL,
        status=CallStatus.FAILED,
        set={
            "error_code": str(code),
            "error_desc": message,
            "carrier_error": {"code": code, "message": message, "http_status": http_status},
        },
        set_once={"ended_at": at},
    )
