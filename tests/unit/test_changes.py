"""The steps the store writes without reading the call mean what the domain's rules say.

`status_change` is `apply_status_callback` as one conditional change: for any delivery of a call's callbacks
(any order, repeats), applying the changes and settling the outcome gives the call the in-memory rules give.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from callbridge.domain.calls import Call, CallStatus, iso
from callbridge.domain.changes import Change, apply, ends
from callbridge.domain.placing import claim, placed, rejected
from callbridge.domain.progress import apply_status_callback, flow_change, settled, status_change
from hypothesis import given, settings

from tests.unit.test_progress import CALL_SID, T0, deliveries, dialing_call, expected, outcome


def by_changes(call: Call, callbacks: list[dict[str, str]]) -> Call:
    for n, params in enumerate(callbacks):
        _, after = apply(call, status_change(params, iso(T0 + timedelta(hours=1, seconds=n))))
        assert after is not None
        call = after
    return settled(call)


@pytest.mark.parametrize("carrier_call_id", [CALL_SID, None], ids=["id written", "placer's write lost"])
@settings(max_examples=300, deadline=None, derandomize=True)
@given(deliveries())
def test_status_changes_give_the_outcome_of_the_rules(
    carrier_call_id: str | None, delivery: tuple[object, list[dict[str, str]]]
) -> None:
    # the call as the placer leaves it, or as it is when its write of the carrier call id never landed
    scenario, callbacks = delivery
    placed_call = dialing_call().model_copy(update={"carrier_call_id": carrier_call_id})

    call = by_changes(placed_call, callbacks)

    rules = placed_call
    for n, params in enumerate(callbacks):
        rules = apply_status_callback(rules, params, iso(T0 + timedelta(hours=1, seconds=n)))
    assert outcome(call) == outcome(rules) == expected(scenario)  # type: ignore[arg-type]
    assert call.timeline == rules.timeline
    assert call.status is rules.status
    assert call.carrier_call_id == rules.carrier_call_id == CALL_SID


def test_a_late_callback_is_kept_without_moving_the_status() -> None:
    # given: a completed call
    done = dialing_call().model_copy(update={"status": CallStatus.COMPLETED})

    # when: a ringing callback arrives late
    held, after = apply(done, status_change({"CallSid": CALL_SID, "CallStatus": "ringing", "Timestamp": "x"}, iso(T0)))

    # then: the change itself did not hold, its `otherwise` kept the event only
    assert not held
    assert after is not None
    assert after.status is CallStatus.COMPLETED
    assert [e.event for e in after.timeline] == ["carrier.status"]
    assert after.version == done.version + 1


FINAL = [s for s in CallStatus if s.is_final]
FINAL_CALLBACK = {  # what the carrier says for each status a call can end in (canceled: by the account)
    CallStatus.COMPLETED: "completed",
    CallStatus.BUSY: "busy",
    CallStatus.NO_ANSWER: "no-answer",
    CallStatus.FAILED: "failed",
    CallStatus.CANCELED: "canceled",
}


@pytest.mark.parametrize(
    ("ended", "late"), [(s, word) for s in FINAL for word in FINAL_CALLBACK.values() if word != FINAL_CALLBACK[s]]
)
def test_a_final_status_absorbs_a_late_final_callback_written_without_a_read(ended: CallStatus, late: str) -> None:
    # given: a call that ended (by a callback, reconciliation or a cancel), with its outcome; then another final
    # status about its carrier call (the same one repeated is a duplicate, which counts)
    before = settled(by_changes(dialing_call(), [{"CallSid": CALL_SID, "CallStatus": FINAL_CALLBACK[ended]}]))
    assert before.status is ended

    # when: a final callback about its carrier call comes late, as the webhook writes it (one change, no read)
    params = {"CallSid": CALL_SID, "CallStatus": late, "CallDuration": "35", "AnsweredBy": "human"}
    held, after = apply(before, status_change({**params, "SipResponseCode": "200"}, iso(T0 + timedelta(hours=2))))

    # then: kept on the timeline, and the status and outcome are the call's
    assert not held
    assert after is not None
    assert after.timeline[-1].detail["CallStatus"] == late
    assert outcome(settled(after)) == outcome(before)


def test_only_completed_callbacks_and_the_flow_give_the_whole_outcome() -> None:
    # given: a call the carrier reports only at its end, answered by a person after 3.2 s of detection
    call: Call | None = dialing_call().model_copy(update={"carrier_call_id": None, "timeline": []})
    assert call is not None
    _, call = apply(call, placed(iso(T0), "CA1", "queued"))
    assert call is not None
    _, call = apply(
        call, flow_change({"AnsweredBy": "human", "MachineDetectionDuration": "3200"}, iso(T0 + timedelta(seconds=12)))
    )
    assert call is not None
    assert call.status is CallStatus.IN_PROGRESS
    end = {"CallSid": "CA1", "CallStatus": "completed", "CallDuration": "30", "AnsweredBy": "human"}
    end["SipResponseCode"] = "200"
    end["Timestamp"] = "Sun, 10 Jan 2027 12:00:42 +0000"
    _, call = apply(call, status_change(end, iso(T0 + timedelta(seconds=43))))
    assert call is not None

    # then
    done = settled(call)
    assert done.status is CallStatus.COMPLETED
    assert (done.answered_by, done.billed_seconds) == ("Person", 30)
    assert done.started_at == iso(T0)  # the carrier accepted the call
    assert done.answered_at == iso(T0 + timedelta(seconds=12) - timedelta(milliseconds=3200))
    assert done.ended_at == "2027-01-10T12:00:42.000Z"


def test_a_claim_holds_once_and_not_before_the_call_date() -> None:
    queued = dialing_call().model_copy(
        update={"status": CallStatus.QUEUED, "call_date": iso(T0 + timedelta(seconds=5))}
    )

    early, _ = apply(queued, claim(iso(T0), "a", hold_until=iso(T0 + timedelta(seconds=2))))
    held, mine = apply(queued, claim(iso(T0), "a", hold_until=iso(T0 + timedelta(seconds=7))))
    assert mine is not None
    again, _ = apply(mine, claim(iso(T0), "b", hold_until=iso(T0 + timedelta(seconds=7))))

    assert (early, held, again) == (False, True, False)
    assert (mine.status, mine.claim_token, mine.dialed_at) == (CallStatus.DIALING, "a", iso(T0))


def test_a_rejection_never_moves_a_final_call_and_keeps_the_first_end() -> None:
    failed = dialing_call().model_copy(update={"status": CallStatus.FAILED, "ended_at": iso(T0)})
    busy = dialing_call()

    held, _ = apply(failed, rejected(iso(T0 + timedelta(seconds=1)), 21211, "invalid To", 400))
    moved, after = apply(busy, rejected(iso(T0 + timedelta(seconds=1)), 21211, "invalid To", 400))

    assert not held
    assert moved
    assert after is not None
    assert (after.status, after.error_code, after.ended_at) == (
        CallStatus.FAILED,
        "21211",
        iso(T0 + timedelta(seconds=1)),
    )


def test_require_unset_claims_once() -> None:
    call = dialing_call()
    change = Change(require={"second_leg_id": None}, set={"second_leg_id": "pending-1"})

    first, after = apply(call, change)
    assert after is not None
    second, _ = apply(after, change)

    assert (first, second) == (True, False)


def test_a_status_callback_about_another_carrier_call_moves_nothing() -> None:
    # given: a placed call, and a correctly signed callback naming another CallSid (or none)
    call = dialing_call()
    for sid in ("CA" + "9" * 32, ""):
        forged = {"CallSid": sid, "CallStatus": "completed", "CallDuration": "30"}

        _, after = apply(call, status_change(forged, iso(T0)))

        # then: kept on the timeline, the status and the outcome unchanged
        assert after is not None
        assert after.status is CallStatus.DIALING
        assert settled(after).billed_seconds == 0
        assert after.timeline[-1].event == "carrier.status"
        # and: the rules the read path applies (calls that may be retried) keep it the same way
        rules = apply_status_callback(call, forged, iso(T0))
        assert rules.timeline == after.timeline
        assert (rules.status, outcome(rules)) == (after.status, outcome(settled(after)))


def test_a_final_callback_before_the_placers_write_ends_the_call_with_its_call_sid() -> None:
    # given: a call being dialed whose carrier call id is not written yet (the placer's write is on its way, or
    # was lost when the placer died after the carrier accepted the call)
    call = dialing_call().model_copy(update={"carrier_call_id": None})
    busy = {"CallSid": CALL_SID, "CallStatus": "busy", "SipResponseCode": "486"}

    held, after = apply(call, status_change(busy, iso(T0)))

    # then: it ends BUSY in that one write, and the CallSid is its carrier call id from then on
    assert held is False  # not the first of the change's alternatives (the call had no id), its second
    assert after is not None
    assert (after.status, after.carrier_call_id) == (CallStatus.BUSY, CALL_SID)
    assert [e.event for e in after.timeline] == ["carrier.status"]
    # and: the placer's write landing late keeps the same id and changes nothing else
    _, late = apply(after, placed(iso(T0 + timedelta(seconds=1)), CALL_SID, "queued"))
    assert late is not None
    assert (late.status, late.carrier_call_id) == (CallStatus.BUSY, CALL_SID)
    # and: a callback naming another carrier call from then on is kept without moving it
    _, other = apply(late, status_change({**busy, "CallSid": "CA" + "9" * 32, "CallStatus": "completed"}, iso(T0)))
    assert other is not None
    assert (other.status, other.carrier_call_id) == (CallStatus.BUSY, CALL_SID)


def test_a_status_callback_never_moves_a_call_that_was_never_placed() -> None:
    # given: a call not placed yet (no carrier call id), and a correctly signed callback with a made-up CallSid
    call = dialing_call().model_copy(update={"status": CallStatus.QUEUED, "carrier_call_id": None})
    made_up = {"CallSid": "CA" + "9" * 32, "CallStatus": "completed", "CallDuration": "30"}

    held, after = apply(call, status_change(made_up, iso(T0)))

    assert not held
    assert after is not None
    assert after.status is CallStatus.QUEUED
    assert settled(after).billed_seconds == 0


def test_only_a_change_that_moves_a_live_call_into_a_final_status_ends_it() -> None:
    # given: a status callback's change and its alternatives (about the call's carrier call; taking its CallSid as
    # the call's while it is dialed; the event kept only), for a final and a live status
    final = status_change({"CallSid": CALL_SID, "CallStatus": "busy"}, iso(T0))
    live = status_change({"CallSid": CALL_SID, "CallStatus": "ringing"}, iso(T0))
    assert final.otherwise is not None
    assert final.otherwise.otherwise is not None

    # then: the two that move the status to busy end the call; the one keeping the event only does not
    assert ends(final)
    assert ends(final.otherwise)
    assert not ends(final.otherwise.otherwise)
    assert not any(ends(c) for c in (live, live.otherwise))
    # a rejection ends a call; a change with no condition on the status would not say which write ended it
    assert ends(rejected(iso(T0), 21211, "invalid To", 400))
    assert not ends(Change(event=final.event, status=CallStatus.BUSY))
    assert not ends(None)
