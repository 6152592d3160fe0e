"""Status callbacks in any order, repeated: the call always ends in the same state with the same outcome.

Twilio does not guarantee the order of status callbacks and retries them, so `apply_status_callback` must give a
function of the *set* of callbacks, and the status must never move backwards on the way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from callbridge.domain.calls import Call, CallStatus, iso
from callbridge.domain.changes import Change, apply
from callbridge.domain.progress import (
    SECOND_LEG_DIALING,
    SECOND_LEG_FAILED,
    apply_flow_request,
    apply_recording_callback,
    apply_sms_status,
    apply_status_callback,
    before_its_carrier_id,
    from_its_second_leg,
    from_this_call,
    later_sms_status,
    recording_change,
    settled,
    status_change,
)
from hypothesis import assume, given, settings
from hypothesis import strategies as st

CALL_SID = "CA" + "5" * 32
OTHER_SID = "CA" + "9" * 32
LEG_SID = "CA" + "6" * 32  # the second leg of a dial-tone bridge
T0 = datetime(2027, 1, 10, 12, 0, 0, tzinfo=UTC)
RANK = {
    CallStatus.SCHEDULED: 0,
    CallStatus.QUEUED: 1,
    CallStatus.DIALING: 2,
    CallStatus.RINGING: 3,
    CallStatus.IN_PROGRESS: 4,
}
FINAL_RANK = 5


def rank(status: CallStatus) -> int:
    return FINAL_RANK if status.is_final else RANK[status]


@dataclass(frozen=True)
class Scenario:
    """A call's real status callbacks and the outcome they must produce, whatever their order."""

    name: str
    callbacks: list[dict[str, str]]
    status: CallStatus
    answered_by: str
    billed_seconds: int
    started_at: str
    answered_at: str | None
    ended_at: str
    recording_url: str | None
    error_code: str | None
    error_desc: str | None


def _callback(seq: int, status: str, at: datetime, **extra: str) -> dict[str, str]:
    """A status callback as Twilio posts it (form fields, all strings)."""
    return {
        "CallSid": CALL_SID,
        "AccountSid": "AC" + "0" * 32,
        "From": "+12815550100",
        "To": "+17134567890",
        "Caller": "+12815550100",
        "Called": "+17134567890",
        "Direction": "outbound-api",
        "ApiVersion": "2010-04-01",
        "CallbackSource": "call-progress-events",
        "CallStatus": status,
        "Timestamp": format_datetime(at),
        "SequenceNumber": str(seq),
        **extra,
    }


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    kind = draw(st.sampled_from(["human", "machine", "busy", "no-answer", "failed"]))
    ring = timedelta(seconds=draw(st.integers(1, 5)))
    wait = timedelta(seconds=draw(st.integers(1, 40)))
    t_init = T0 + timedelta(seconds=draw(st.integers(0, 10)))  # RFC 2822 timestamps carry whole seconds
    t_ring = t_init + ring
    if kind in ("human", "machine"):
        amd = "human" if kind == "human" else draw(st.sampled_from(["machine_end_beep", "machine_end_silence"]))
        talk = draw(st.integers(1, 600))
        t_answer = t_ring + wait
        t_end = t_answer + timedelta(seconds=talk)
        record = draw(st.booleans())
        recording = f"https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE{talk:032d}" if record else None
        end_extra = {
            "CallDuration": str(talk),
            "Duration": str(-(-talk // 60)),
            "SipResponseCode": "200",
            "AnsweredBy": amd,
        }
        if recording:
            end_extra |= {"RecordingUrl": recording, "RecordingSid": f"RE{talk:032d}", "RecordingDuration": str(talk)}
        callbacks = [
            _callback(0, "initiated", t_init),
            _callback(1, "ringing", t_ring),
            _callback(2, "in-progress", t_answer, AnsweredBy=amd),
            _callback(3, "completed", t_end, **end_extra),
        ]
        return Scenario(
            name=kind,
            callbacks=callbacks,
            status=CallStatus.COMPLETED,
            answered_by="Person" if kind == "human" else "Machine",
            billed_seconds=talk,
            started_at=iso(t_init),
            answered_at=iso(t_answer),
            ended_at=iso(t_end),
            recording_url=recording,
            error_code=None,
            error_desc=None,
        )
    t_end = t_ring + wait
    if kind == "failed":  # unreachable: the carrier gives up before it rings
        callbacks = [
            _callback(0, "initiated", t_init),
            _callback(1, "failed", t_end, CallDuration="0", SipResponseCode="404"),
        ]
        status, sip, desc = CallStatus.FAILED, "404", "the call could not be connected"
    else:
        final, status, sip, desc = {
            "busy": ("busy", CallStatus.BUSY, "486", "the number was busy"),
            "no-answer": ("no-answer", CallStatus.NO_ANSWER, "487", "nobody answered before the ring timeout"),
        }[kind]
        callbacks = [
            _callback(0, "initiated", t_init),
            _callback(1, "ringing", t_ring),
            _callback(2, final, t_end, CallDuration="0", SipResponseCode=sip),
        ]
    return Scenario(
        name=kind,
        callbacks=callbacks,
        status=status,
        answered_by="",
        billed_seconds=0,
        started_at=iso(t_init),
        answered_at=None,
        ended_at=iso(t_end),
        recording_url=None,
        error_code=f"SIP {sip}",
        error_desc=desc,
    )


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[Scenario, list[dict[str, str]]]:
    """A scenario and its callbacks as delivered: every one at least once, some repeated, in any order."""
    scenario = draw(scenarios())
    n = len(scenario.callbacks)
    repeats = draw(st.lists(st.integers(0, n - 1), max_size=2 * n))
    order = draw(st.permutations(list(range(n)) + repeats))
    return scenario, [scenario.callbacks[i] for i in order]


def dialing_call() -> Call:
    """A call as the placer leaves it: DIALING, with the carrier's id."""
    at = iso(T0 - timedelta(seconds=1))
    return Call(
        callid="0190000000000aaaaaaaaaaaaaaaa",
        account_id="cb_test",
        status=CallStatus.DIALING,
        created_at=at,
        updated_at=at,
        dialed_at=at,
        request={"to": "+17134567890", "from": "+12815550100", "answer_play": "https://example.com/a.wav"},
        carrier_call_id=CALL_SID,
    )


def outcome(call: Call) -> dict[str, Any]:
    return {
        "status": call.status,
        "answered_by": call.answered_by,
        "billed_seconds": call.billed_seconds,
        "started_at": call.started_at,
        "answered_at": call.answered_at,
        "ended_at": call.ended_at,
        "recording_url": call.recording_url,
        "error_code": call.error_code,
        "error_desc": call.error_desc,
    }


def expected(scenario: Scenario) -> dict[str, Any]:
    return {
        "status": scenario.status,
        "answered_by": scenario.answered_by,
        "billed_seconds": scenario.billed_seconds,
        "started_at": scenario.started_at,
        "answered_at": scenario.answered_at,
        "ended_at": scenario.ended_at,
        "recording_url": scenario.recording_url,
        "error_code": scenario.error_code,
        "error_desc": scenario.error_desc,
    }


def apply_all(callbacks: list[dict[str, str]]) -> tuple[Call, list[CallStatus]]:
    """Apply callbacks one by one (each received a second later); the final call and every status on the way."""
    call = dialing_call()
    seen = [call.status]
    for n, params in enumerate(callbacks):
        received = iso(T0 + timedelta(hours=1, seconds=n))  # receipt time must not leak into the outcome
        call = apply_status_callback(call, params, received)
        seen.append(call.status)
    return call, seen


@settings(max_examples=300, deadline=None)
@given(deliveries())
def test_any_order_with_repeats_gives_the_same_outcome(delivery: tuple[Scenario, list[dict[str, str]]]) -> None:
    scenario, callbacks = delivery

    call, seen = apply_all(callbacks)

    # then: the outcome the callbacks describe, identical to delivering them once, in order
    assert outcome(call) == expected(scenario), scenario.name
    in_order, _ = apply_all(scenario.callbacks)
    assert outcome(call) == outcome(in_order)
    # and: never backwards, and once final never changed
    ranks = [rank(s) for s in seen]
    assert ranks == sorted(ranks), [s.value for s in seen]
    first_final = next(i for i, s in enumerate(seen) if s.is_final)
    assert set(seen[first_final:]) == {scenario.status}
    # and: every delivery is kept on the timeline
    assert len([e for e in call.timeline if e.event == "carrier.status"]) == len(callbacks)


@settings(max_examples=100, deadline=None)
@given(deliveries(), st.integers(0, 20))
def test_the_recording_callback_anywhere_in_the_stream(
    delivery: tuple[Scenario, list[dict[str, str]]], position: int
) -> None:
    # given: a recording callback arriving among the status callbacks
    scenario, callbacks = delivery
    url = "https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE" + "7" * 32
    recording = {
        "CallSid": CALL_SID,
        "RecordingSid": "RE" + "7" * 32,
        "RecordingUrl": url,
        "RecordingStatus": "completed",
    }
    position = min(position, len(callbacks))
    call = dialing_call()
    for n, params in enumerate(callbacks):
        if n == position:
            call = apply_recording_callback(call, recording, iso(T0))
        call = apply_status_callback(call, params, iso(T0 + timedelta(hours=1, seconds=n)))
    if position == len(callbacks):
        call = apply_recording_callback(call, recording, iso(T0))

    # then: the recording is kept whatever came before or after it, and the rest of the outcome is unchanged
    want = expected(scenario)
    want["recording_url"] = min(u for u in (url, scenario.recording_url) if u)
    assert outcome(call) == want


@settings(max_examples=150, deadline=None)
@given(deliveries(), st.integers(0, 20))
def test_the_verdict_from_the_flow_request_anywhere_in_the_stream(
    delivery: tuple[Scenario, list[dict[str, str]]], position: int
) -> None:
    # given: an answered call whose status callbacks carry no AnsweredBy: Twilio documents the synchronous verdict
    # on the request for the flow's TwiML only
    scenario, callbacks = delivery
    assume(scenario.answered_by)
    verdict = "human" if scenario.answered_by == "Person" else "machine_end_beep"
    flow = {"CallSid": CALL_SID, "CallStatus": "in-progress", "AnsweredBy": verdict}
    bare = [{k: v for k, v in params.items() if k != "AnsweredBy"} for params in callbacks]
    position = min(position, len(bare))

    # when: the flow request arrives anywhere among them
    call = dialing_call()
    for n, params in enumerate(bare):
        if n == position:
            call = apply_flow_request(call, flow, iso(T0))
        call = apply_status_callback(call, params, iso(T0 + timedelta(hours=1, seconds=n)))
    if position == len(bare):
        call = apply_flow_request(call, flow, iso(T0))

    # then: the same outcome as when the callbacks carried the verdict, and the flow request is on the timeline
    assert outcome(call) == expected(scenario)
    assert [e.detail["label"] for e in call.timeline if e.event == "flow"] == [scenario.answered_by]


def test_a_flow_request_alone_says_who_answered_while_the_call_is_live() -> None:
    # given: the answered callback was lost; the carrier asks for the flow of a machine-answered call
    call = apply_flow_request(dialing_call(), {"CallStatus": "in-progress", "AnsweredBy": "machine_start"}, iso(T0))

    # then: the verdict is kept, and the call is in progress: the carrier asks for an answered call's flow only
    # (and is subscribed to the final status callback alone)
    assert (call.status, call.answered_by) == (CallStatus.IN_PROGRESS, "Machine")


def test_a_call_that_ends_in_the_second_it_was_answered_in_does_not_end_before_its_answer() -> None:
    # given: the answer known from the flow request, to the millisecond; the carrier's final callback, whose
    # Timestamp carries whole seconds, says the call ended in that same second (as every call of under a second
    # of real time does in the sandbox at --speed 10)
    answered = T0 + timedelta(milliseconds=700)
    call = apply_flow_request(dialing_call(), {"CallSid": CALL_SID, "CallStatus": "in-progress"}, iso(answered))
    done = _callback(0, "completed", T0, CallDuration="8", SipResponseCode="200")

    call = apply_status_callback(call, done, iso(T0 + timedelta(milliseconds=950)))

    # then: it ended no earlier than it was answered (not at 12:00:00.000, before its answer at 12:00:00.700)
    assert (call.status, call.answered_at) == (CallStatus.COMPLETED, iso(answered))
    assert call.ended_at == iso(answered)
    assert call.started_at == iso(T0)  # the final Timestamp, the earliest moment known


def test_a_late_ringing_after_completed_changes_nothing() -> None:
    # given: a completed human call
    t = T0
    completed = _callback(3, "completed", t + timedelta(seconds=30), CallDuration="20", AnsweredBy="human")
    answered = _callback(2, "in-progress", t + timedelta(seconds=10), AnsweredBy="human")
    call, _ = apply_all([answered, completed])
    before = outcome(call)

    # when: a stale ringing and initiated arrive afterwards
    late = apply_status_callback(call, _callback(1, "ringing", t + timedelta(seconds=2)), iso(t))

    # then: still COMPLETED, same answer time and billing; only the start moves to the earliest event
    assert late.status is CallStatus.COMPLETED
    assert outcome(late) | {"started_at": None} == before | {"started_at": None}
    assert late.started_at == iso(t + timedelta(seconds=2))


# Twilio's machine verdicts, written out here so a change to the module's own set cannot hide a missing one. A call
# fetched from the REST API (reconciliation) says only `machine`.
MACHINE_VERDICTS = ["machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax", "machine"]


@pytest.mark.parametrize("verdict", [*MACHINE_VERDICTS, " Machine_End_Beep ", "FAX"])
def test_every_machine_verdict_is_machine_in_the_stored_outcome(verdict: str) -> None:
    # given: an answered call whose carrier said a machine (or fax) picked up
    answered = _callback(2, "in-progress", T0 + timedelta(seconds=10), AnsweredBy=verdict)
    completed = _callback(3, "completed", T0 + timedelta(seconds=30), CallDuration="20", AnsweredBy=verdict)

    # when
    call, _ = apply_all([answered, completed])

    # then: the outcome the API and the callback report says Machine, like the TwiML branch did
    assert call.answered_by == "Machine"


@pytest.mark.parametrize("verdict", ["human", "unknown", ""])
def test_a_person_or_no_verdict_is_person_in_the_stored_outcome(verdict: str) -> None:
    extra = {"AnsweredBy": verdict} if verdict else {}
    call, _ = apply_all([_callback(3, "completed", T0 + timedelta(seconds=30), CallDuration="20", **extra)])
    assert call.answered_by == "Person"


# --- a final status absorbs


def _failed_by_reconciliation(code: str = "carrier_no_record") -> Call:
    call = dialing_call()
    return call.model_copy(
        update={
            "status": CallStatus.FAILED,
            "error_code": code,
            "error_desc": "carrier has no record of this call",
            "ended_at": iso(T0),
        }
    )


def test_a_failed_call_keeps_its_status_and_outcome_when_a_late_completed_callback_comes() -> None:
    # given: a call reconciliation ended FAILED
    call = _failed_by_reconciliation()
    before = outcome(call)

    # when: the carrier's flow request and callbacks of an answered call arrive late
    late = _callback(2, "in-progress", T0 + timedelta(seconds=5), AnsweredBy="human")
    done = _callback(3, "completed", T0 + timedelta(seconds=40), CallDuration="35", SipResponseCode="200")
    call = apply_flow_request(call, {"CallSid": CALL_SID, "AnsweredBy": "human"}, iso(T0 + timedelta(minutes=5)))
    for params in (late, done):
        call = apply_status_callback(call, params, iso(T0 + timedelta(minutes=5)))

    # then: still FAILED, same outcome; the callbacks are on the timeline for the record
    assert call.status is CallStatus.FAILED
    assert outcome(call) == before
    assert [e.event for e in call.timeline[-2:]] == ["carrier.status", "carrier.status"]


@pytest.mark.parametrize(("first", "then"), [("busy", "completed"), ("completed", "no-answer"), ("failed", "busy")])
def test_a_different_final_status_later_changes_nothing(first: str, then: str) -> None:
    call, _ = apply_all([_callback(2, first, T0 + timedelta(seconds=20), CallDuration="0", SipResponseCode="486")])
    before = outcome(call)

    call = apply_status_callback(call, _callback(3, then, T0 + timedelta(seconds=60), CallDuration="30"), iso(T0))

    assert outcome(call) == before


# --- a reconciled outcome carries the same fields as a callback-driven one


@pytest.mark.parametrize(
    ("carrier_status", "status", "desc"),
    [
        ("busy", CallStatus.BUSY, "the number was busy"),
        ("no-answer", CallStatus.NO_ANSWER, "nobody answered before the ring timeout"),
        ("failed", CallStatus.FAILED, "the call could not be connected"),
    ],
)
def test_a_reconciled_failure_has_its_error_code_and_description(
    carrier_status: str, status: CallStatus, desc: str
) -> None:
    # given: the carrier's answer to a look-up (no SIP code in it)
    looked_up = {"CallSid": CALL_SID, "CallStatus": carrier_status, "CallbackSource": "reconciliation"}

    call = apply_status_callback(dialing_call(), looked_up, iso(T0))

    assert (call.status, call.error_code, call.error_desc) == (status, carrier_status, desc)
    # and: the real callback arriving later brings the SIP code, whatever the order
    sip = _callback(3, carrier_status, T0, SipResponseCode="486")
    later = apply_status_callback(call, sip, iso(T0))
    sooner = apply_status_callback(apply_status_callback(dialing_call(), sip, iso(T0)), looked_up, iso(T0))
    assert later.error_code == sooner.error_code == "SIP 486"


def test_an_error_code_set_for_another_reason_stays() -> None:
    call = _failed_by_reconciliation("never_placed")

    call = apply_status_callback(call, _callback(3, "failed", T0, SipResponseCode="404"), iso(T0))

    assert call.error_code == "never_placed"


# --- callbacks about another carrier call


def test_a_callback_for_another_carrier_call_changes_nothing() -> None:
    call = dialing_call()
    forged = {**_callback(3, "completed", T0, CallDuration="30"), "CallSid": "CA" + "9" * 32}

    after = apply_status_callback(call, forged, iso(T0))

    assert outcome(after) == outcome(call)
    assert after.status is CallStatus.DIALING
    assert after.timeline[-1].event == "carrier.status"  # kept as every status callback is; the outcome leaves it out
    assert after.timeline[-1].detail["CallSid"] == "CA" + "9" * 32


@pytest.mark.parametrize("status", [CallStatus.SCHEDULED, CallStatus.QUEUED])
def test_a_callback_never_finalizes_a_call_that_was_never_placed(status: CallStatus) -> None:
    # given: a call not claimed for dialing (no carrier call id), and a correctly signed callback with a made-up sid
    call = dialing_call().model_copy(update={"status": status, "carrier_call_id": None, "dialed_at": None})

    after = apply_status_callback(call, _callback(3, "completed", T0, CallDuration="30"), iso(T0))

    assert after.status is status
    assert (after.answered_by, after.billed_seconds, after.carrier_call_id) == ("", 0, None)


@pytest.mark.parametrize("status", [CallStatus.SCHEDULED, CallStatus.QUEUED])
def test_a_live_status_with_a_made_up_sid_gives_a_call_never_placed_no_outcome(status: CallStatus) -> None:
    # given: a call not claimed for dialing, and an "answered" callback naming a made-up CallSid, written as the
    # webhook writes it (one change, no read) and read back (the store settles every call it reads)
    call = dialing_call().model_copy(update={"status": status, "carrier_call_id": None, "dialed_at": None})
    answered = {**_callback(2, "in-progress", T0, AnsweredBy="human"), "CallSid": "CA" + "9" * 32}

    _, written = apply(call, status_change(answered, iso(T0)))
    assert written is not None
    after = settled(written)

    # then: on the timeline, and no answer, start or who answered made up from it
    assert after.timeline[-1].detail["CallSid"] == "CA" + "9" * 32
    assert outcome(after) == outcome(call)


def test_a_dialing_call_whose_placement_answer_is_not_recorded_yet_takes_the_callbacks_sid() -> None:
    call = dialing_call().model_copy(update={"carrier_call_id": None})

    after = apply_status_callback(call, _callback(1, "ringing", T0), iso(T0))

    assert (after.status, after.carrier_call_id) == (CallStatus.RINGING, CALL_SID)


# --- which carrier call a request is about: the one rule of every webhook


@pytest.mark.parametrize(
    ("status", "recorded", "sid", "answered", "ours"),
    [
        (CallStatus.IN_PROGRESS, CALL_SID, CALL_SID, True, True),
        (CallStatus.IN_PROGRESS, CALL_SID, OTHER_SID, True, False),
        (CallStatus.IN_PROGRESS, CALL_SID, "", True, False),
        (CallStatus.COMPLETED, CALL_SID, CALL_SID, True, True),  # a late request of the call's own carrier call
        # no carrier call id yet: a call being dialed takes the request's ...
        (CallStatus.DIALING, None, OTHER_SID, False, True),
        (CallStatus.DIALING, None, "", False, False),
        # ... and so does one answered before the placer wrote it, for the requests its TwiML makes only
        (CallStatus.IN_PROGRESS, None, OTHER_SID, True, True),
        (CallStatus.IN_PROGRESS, None, OTHER_SID, False, False),
        # waiting for its next attempt, or never claimed: no carrier call to hear from
        (CallStatus.RETRY_WAIT, None, CALL_SID, True, False),
        (CallStatus.SCHEDULED, None, CALL_SID, True, False),
    ],
)
def test_a_request_is_about_this_call_when_it_names_its_carrier_call(
    status: CallStatus, recorded: str | None, sid: str, answered: bool, ours: bool
) -> None:
    call = dialing_call().model_copy(update={"status": status, "carrier_call_id": recorded})

    assert from_this_call(call, {"CallSid": sid}, answered=answered) is ours


@pytest.mark.parametrize(
    ("leg", "sid", "ours"),
    [
        (LEG_SID, LEG_SID, True),
        (LEG_SID, OTHER_SID, False),
        (LEG_SID, CALL_SID, False),  # the first leg's own CallSid is not the second leg's
        (f"{SECOND_LEG_DIALING}0a1b2c3d", LEG_SID, True),  # being dialed: its id is on its way
        (f"{SECOND_LEG_DIALING}0a1b2c3d", "", False),
        (None, LEG_SID, False),  # no second leg dialed
        (SECOND_LEG_FAILED, LEG_SID, False),  # the carrier refused it
    ],
)
def test_a_second_leg_request_is_about_this_call_when_it_names_its_second_leg(
    leg: str | None, sid: str, ours: bool
) -> None:
    call = dialing_call().model_copy(update={"status": CallStatus.IN_PROGRESS, "second_leg_id": leg})

    assert from_its_second_leg(call, {"CallSid": sid}) is ours


@pytest.mark.parametrize(("answered", "written"), [(False, False), (True, True)])
def test_a_change_before_the_carrier_call_id_is_written_holds_for_an_answered_call_only_when_asked(
    answered: bool, written: bool
) -> None:
    # given: a call its flow answered before the placer wrote its carrier call id
    call = dialing_call().model_copy(update={"status": CallStatus.IN_PROGRESS, "carrier_call_id": None})
    change = Change(set={"dial_status": "completed"})

    held, after = apply(call, before_its_carrier_id(change, CALL_SID, answered=answered))

    assert held is written
    # and: where it holds, the request's CallSid is the call's carrier call id from then on
    assert (after.carrier_call_id if after is not None else None) == (CALL_SID if written else None)
    # and: never once the id is written (then the request must name it)
    written_id = call.model_copy(update={"carrier_call_id": CALL_SID})
    assert not apply(written_id, before_its_carrier_id(change, CALL_SID))[0]


# --- recording callbacks about another carrier call


def _recording(sid: str, url: str) -> dict[str, str]:
    """A recording status callback as Twilio posts it."""
    return {
        "AccountSid": "AC" + "0" * 32,
        "CallSid": sid,
        "RecordingSid": "RE" + "7" * 32,
        "RecordingUrl": url,
        "RecordingStatus": "completed",
        "RecordingDuration": "19",
    }


def test_a_recording_callback_naming_another_call_sid_is_kept_and_changes_nothing() -> None:
    # given: a completed call
    done, _ = apply_all([_callback(3, "completed", T0 + timedelta(seconds=30), CallDuration="20", AnsweredBy="human")])

    # when: a recording callback names another carrier call (with a verdict the call did not have)
    forged = {**_recording(OTHER_SID, "https://example.com/other.mp3"), "AnsweredBy": "machine_start"}
    after = apply_recording_callback(done, forged, iso(T0 + timedelta(minutes=1)))

    # then: kept on the timeline, and the outcome (recording, who answered, ...) is the call's own
    assert after.timeline[-1].detail["CallSid"] == OTHER_SID
    assert outcome(after) == outcome(done)
    assert after.recording_url is None
    # and: read back from the timeline as the store reads it, the same (the no-read webhook path)
    _, written = apply(done, recording_change(forged, iso(T0 + timedelta(minutes=1))))
    assert written is not None
    assert outcome(settled(written)) == outcome(done)


def test_the_recording_of_the_calls_own_carrier_call_is_kept_beside_another() -> None:
    done, _ = apply_all([_callback(3, "completed", T0 + timedelta(seconds=30), CallDuration="20", AnsweredBy="human")])
    own = "https://example.com/own.mp3"

    after = apply_recording_callback(done, _recording(OTHER_SID, "https://example.com/a-other.mp3"), iso(T0))
    after = apply_recording_callback(after, _recording(CALL_SID, own), iso(T0))

    assert after.recording_url == own


@pytest.mark.parametrize("status", [CallStatus.SCHEDULED, CallStatus.QUEUED])
def test_a_recording_callback_gives_a_call_never_placed_no_recording(status: CallStatus) -> None:
    call = dialing_call().model_copy(update={"status": status, "carrier_call_id": None, "dialed_at": None})

    after = apply_recording_callback(call, _recording(OTHER_SID, "https://example.com/r.mp3"), iso(T0))

    assert outcome(after) == outcome(call)
    assert after.timeline[-1].event == "carrier.recording"


# --- the voicemail SMS's status

SMS_SID = "SM" + "1" * 32


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([("queued", "sent", "delivered"), ("queued", "sent", "undelivered"), ("queued", "failed")]),
    st.data(),
)
def test_sms_status_ends_at_the_messages_final_status_whatever_the_order(path: tuple[str, ...], data: Any) -> None:
    # given: the statuses a message went through, each delivered at least once, in any order
    repeats = data.draw(st.lists(st.sampled_from(path), max_size=4))
    order = data.draw(st.permutations([*path, *repeats]))
    call = dialing_call().model_copy(update={"sms_sid": SMS_SID, "sms_status": "queued"})

    # when
    for status in order:
        call = apply_sms_status(call, {"MessageSid": SMS_SID, "MessageStatus": status}, iso(T0))

    # then: the last status of its path, and every callback on the timeline
    assert call.sms_status == path[-1]
    assert len([e for e in call.timeline if e.event == "sms.status"]) == len(order)


def test_a_status_about_another_message_changes_nothing_but_the_timeline() -> None:
    call = dialing_call().model_copy(update={"sms_sid": SMS_SID, "sms_status": "sent"})
    after = apply_sms_status(call, {"MessageSid": "SM" + "2" * 32, "MessageStatus": "failed"}, iso(T0))
    assert (after.sms_sid, after.sms_status) == (SMS_SID, "sent")


@pytest.mark.parametrize(
    ("current", "new", "kept"),
    [
        (None, "queued", "queued"),
        ("sending-1a2b3c4d", "sent", "sent"),  # the claim made while the SMS is being sent
        ("sent", "queued", "sent"),
        ("delivered", "undelivered", "delivered"),  # finals absorb
        ("delivered", "read", "read"),
    ],
)
def test_later_sms_status(current: str | None, new: str, kept: str) -> None:
    assert later_sms_status(current, new) == kept
