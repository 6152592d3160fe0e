"""Use case: hang up or cancel any call (DELETE /pcall/calls/{callid}).

A call not dialed yet (SCHEDULED, QUEUED, RETRY_WAIT) ends CANCELED with one conditional write, which the
placer's claim and the scheduler's dispatch race against: exactly one wins, so a call cancelled here is never
dialed. A call at the carrier is ended there (`Status=completed`: a ringing call is cancelled, a live one hung
up) and the carrier's answer is applied like a status callback: a ringing call ends CANCELED, an answered one
COMPLETED with the seconds it lasted. A call whose carrier request is still in flight (DIALING, no carrier
call id yet) is marked CANCELED; the placer ends it at the carrier as soon as the carrier answers (logic/placer.py).
Hanging up never leads to a retry. `hang_up` says whether it ended a call that was dialed (being dialed, ringing or
answered), which the api counts by its outcome; a call cancelled before its claim was never dialed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from callbridge.carrier.base import Carrier, CarrierCall, CarrierError, CarrierRejected
from callbridge.domain import events
from callbridge.domain.accounts import Account
from callbridge.domain.calls import UNCLAIMED, Call, CallStatus, iso
from callbridge.domain.errors import CallNotFound, Conflict, ServiceUnavailable
from callbridge.domain.progress import apply_status_callback
from callbridge.logic.scheduler import carrier_params
from callbridge.logic.updates import update
from callbridge.ports import CallsStore


@dataclass(frozen=True)
class HungUp:
    """The call as it stands after the hang-up, and whether the hang-up ended it after it was dialed."""

    call: Call
    ended_dialed: bool


def _plausible_id(callid: str) -> bool:
    return 0 < len(callid) <= 64 and callid.isalnum()


def _canceled(call: Call, at: datetime, **detail: Any) -> Call:
    stamp = iso(at)
    done = call.model_copy(
        update={
            "status": CallStatus.CANCELED,
            "updated_at": stamp,
            "ended_at": call.ended_at or stamp,
            "next_attempt_at": None,
        }
    )
    return done.with_event(stamp, events.CANCELED, by="api", attempt=call.attempt, **detail)


def hang_up(
    calls: CallsStore, carrier: Callable[[], Carrier], account: Account, callid: str, *, now: datetime
) -> HungUp:
    """End the account's call `callid` wherever it is; the call as it stands. CallNotFound, or Conflict if final."""
    call = calls.get(callid) if _plausible_id(callid) else None
    if call is None or call.account_id != account.api_key:
        raise CallNotFound(callid)
    for _ in range(3):  # the call may move on between the read and the write; settle it by its new state
        if call.status.is_final:
            raise Conflict(f"call {callid} is {call.status.value}: it has already ended")
        dialed = call.status not in UNCLAIMED
        if not dialed:
            moved = _write(calls, callid, lambda c: _canceled(c, now) if c.status in UNCLAIMED else None)
        elif call.carrier_call_id is None:  # the placer's request to the carrier is in flight
            moved = _write(
                calls,
                callid,
                lambda c: (
                    _canceled(c, now, carrier="pending")
                    if c.status is CallStatus.DIALING and not c.carrier_call_id
                    else None
                ),
            )
        else:
            return _at_carrier(calls, carrier(), call, now)
        if moved is not None:  # this write cancelled it
            return HungUp(moved, ended_dialed=dialed)
        current = calls.get(callid)
        if current is None:
            raise CallNotFound(callid)
        call = current
    raise ServiceUnavailable(f"call {callid} is changing too fast to end")


def _write(calls: CallsStore, callid: str, change: Callable[[Call], Call | None]) -> Call | None:
    """`calls.update` that returns the call only if this change was the one written."""
    updated = update(calls, callid, change)
    return updated.call if updated.wrote else None


def _at_carrier(calls: CallsStore, carrier: Carrier, call: Call, now: datetime) -> HungUp:
    """End the call at the carrier and apply the carrier's answer as a status callback of its attempt."""
    sid = call.carrier_call_id or ""
    attempt = call.attempt
    stamp = iso(now)
    marked = calls.update(
        call.callid,
        lambda c: (
            c.with_event(stamp, events.HANGUP, by="api", attempt=attempt, sid=sid) if c.carrier_call_id == sid else None
        ),
    )
    found: CarrierCall | None
    try:
        found = carrier.hangup(sid)
    except CarrierRejected:
        # Twilio refuses to update a call that already ended: its final state says how it ended.
        try:
            found = carrier.fetch_call(sid)
        except CarrierError as exc:
            raise ServiceUnavailable(f"carrier unavailable: {exc}") from exc
    except CarrierError as exc:
        raise ServiceUnavailable(f"carrier unavailable: {exc}") from exc
    if found is None:
        return HungUp(marked or call, ended_dialed=False)
    params = carrier_params(found)
    params["CallbackSource"] = "hangup"
    applied = update(
        calls,
        call.callid,
        lambda c: apply_status_callback(c, params, iso(now), attempt) if c.carrier_call_id == sid else None,
    )
    return HungUp(applied.call or marked or call, ended_dialed=applied.ended)
