"""The attempts of one call: when an attempt that ended is followed by another, and what holds an attempt back.

Pure functions of the stored call (its policy was resolved when it was accepted, domain/policies.py):
- `end_attempt`: a carrier outcome made the call final; if its retry policy says so, the call instead waits
  for its next attempt (RETRY_WAIT at end + retry_interval, or SCHEDULED at the calling window's next opening
  after that: a campaign's call then waits for its campaign to release it), and the attempt that ended is kept in
  `attempts`;
- `hold_for_window`: an attempt about to be dialed outside the calling window waits for its next opening;
- `cancel_suppressed`: a call not dialed yet whose number is on the do-not-call list ends CANCELED.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from callbridge.domain import events
from callbridge.domain.calls import UNCLAIMED, Call, CallStatus, iso, moment
from callbridge.domain.retries import ending_of
from callbridge.domain.suppressions import SUPPRESSED

# What an attempt leaves on the call and the next one starts without.
_PER_ATTEMPT: dict[str, Any] = {
    "answered_by": "",
    "started_at": None,
    "answered_at": None,
    "ended_at": None,
    "recording_url": None,
    "digits": "",
    "sms_status": None,
    "sms_sid": None,
    "error_code": None,
    "error_desc": None,
    "carrier_call_id": None,
    "carrier_error": None,
    "dial_status": None,
    "second_leg_id": None,
    "dialed_at": None,
    "claim_token": None,
    "dispatched_at": None,
    "tts_audio": {},
}


def end_attempt(call: Call, at: datetime, sip: str | None = None) -> Call:
    """The call after its current attempt reached a final status: as it is, or waiting for the next attempt.

    `sip`: the SIP answer the carrier reported for the attempt (an invalid number is never retried).
    """
    if not call.status.is_final or call.dialed_at is None:
        return call
    if any(e.event == events.HANGUP and e.detail.get("attempt") == call.attempt for e in call.timeline):
        return call
    ending = ending_of(call.status.value, call.answered_by, call.error_code, sip)
    if not call.policy.retry().retries(ending, call.attempt):
        return call
    ended = call.current_attempt()
    assert ended is not None  # dialed_at is set
    due = (moment(call.ended_at) if call.ended_at else at) + timedelta(seconds=call.policy.retry_interval)
    window = call.policy.window()
    opening = window.next_opening(due) if window else due
    if opening is None:  # the window never opens again (a week of searching): this attempt is the last
        return call
    status = CallStatus.RETRY_WAIT if opening <= due else CallStatus.SCHEDULED
    stamp = iso(at)
    when: dict[str, Any] = {"next_attempt_at": iso(opening)}
    if status is CallStatus.SCHEDULED and call.campaign:
        # A campaign's call waits for its window with its campaign, which releases it at the opening, at its pace
        # (and pauses or cancels it meanwhile): held (`window_opening`, shown as its next_attempt_at), with no due
        # time of its own, so the scheduler never dispatches it (domain/campaigns.py).
        when = {"next_attempt_at": None, "window_opening": iso(opening), "call_date": None}
    waiting = call.model_copy(
        update={**_PER_ATTEMPT, "status": status, "updated_at": stamp, "attempts": [*call.attempts, ended], **when}
    )
    reason = ending.value if ending else ""
    return waiting.with_event(
        stamp,
        events.RETRY_SCHEDULED,
        attempt=ended.attempt,
        ended=reason,
        next_attempt=waiting.attempt,
        due=iso(opening),
    )


def _before_dialing(call: Call, statuses: tuple[CallStatus, ...], token: str | None) -> bool:
    """Whether the call has not been dialed: in one of `statuses`, or claimed by the placer holding `token`
    (which has not asked the carrier yet)."""
    if token is not None:
        return call.status is CallStatus.DIALING and call.claim_token == token and call.carrier_call_id is None
    return call.status in statuses


def hold_for_window(call: Call, at: datetime, token: str | None = None) -> Call | None:
    """An attempt about to be dialed outside its calling window → SCHEDULED at the next opening; None if the
    window is open (or the call has none).

    The call is not claimed yet, or (with `token`) just claimed by that placer, which then does not dial it.
    """
    window = call.policy.window()
    if window is None or not _before_dialing(call, UNCLAIMED, token) or window.is_open(at):
        return None
    opening = window.next_opening(at)
    stamp = iso(at)
    unclaimed: dict[str, Any] = {"claim_token": None, "dialed_at": None, "dispatched_at": None, "tts_audio": {}}
    if opening is None:
        reason = "the calling window does not open again in every time zone of the number"
        failed = call.model_copy(
            update={
                **unclaimed,
                "status": CallStatus.FAILED,
                "updated_at": stamp,
                "ended_at": stamp,
                "error_code": "window_closed",
                "error_desc": reason,
            }
        )
        return failed.with_event(stamp, events.WINDOW_CLOSED, reason=reason)
    held = call.model_copy(
        update={**unclaimed, "status": CallStatus.SCHEDULED, "updated_at": stamp, "next_attempt_at": iso(opening)}
    )
    return held.with_event(stamp, events.WINDOW_CLOSED, next_attempt_at=iso(opening))


def cancel_suppressed(call: Call, at: datetime, token: str | None = None) -> Call | None:
    """A call not dialed yet whose number is on the do-not-call list → CANCELED (`suppressed`); None otherwise.

    Not dialed yet: SCHEDULED, QUEUED, RETRY_WAIT, or (with `token`) just claimed by that placer.
    """
    if not _before_dialing(call, UNCLAIMED, token):
        return None
    stamp = iso(at)
    canceled = call.model_copy(
        update={
            "status": CallStatus.CANCELED,
            "updated_at": stamp,
            "ended_at": stamp,
            "next_attempt_at": None,
            "claim_token": None,
            "dialed_at": None,
            "error_code": SUPPRESSED,
            "error_desc": "the number is on your do-not-call list",
        }
    )
    return canceled.with_event(stamp, events.SUPPRESSED, number=call.request.get("to"))
