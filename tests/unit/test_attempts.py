"""The attempts of one call as pure rules: an attempt that ends busy is followed by another (RETRY_WAIT, or SCHEDULED
when the retry falls outside the calling window), the last one is final, an earlier attempt's late callbacks change
nothing, billed seconds add up, a hang-up is never retried, the window holds a claim, the do-not-call list cancels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from callbridge.domain import events
from callbridge.domain.attempts import cancel_suppressed, hold_for_window
from callbridge.domain.calls import Call, CallStatus, iso
from callbridge.domain.campaigns import cancel as campaign_cancel
from callbridge.domain.changes import apply
from callbridge.domain.dispatch import Step, attention, dispatch, listed_as_scheduled, next_step
from callbridge.domain.notifications import is_final_transition, payload
from callbridge.domain.placing import claim
from callbridge.domain.policies import CallPolicy
from callbridge.domain.progress import apply_status_callback

T0 = datetime(2027, 1, 11, 15, 0, tzinfo=UTC)  # Monday 09:00 in Chicago


def dialed(policy: CallPolicy, attempt_sid: str = "CA1", **fields: object) -> Call:
    at = iso(T0)
    return Call(
        callid="0123456789abcdef0123456789a",
        account_id="cb_x",
        status=CallStatus.DIALING,
        created_at=at,
        updated_at=at,
        dialed_at=at,
        carrier_call_id=attempt_sid,
        request={"to": "+12812345670", "from": "+12815550100", "callback_url": "https://example.com/cb"},
        policy=policy,
        metadata={"order": "A-17"},
        **fields,  # type: ignore[arg-type]
    )


def callback(status: str, at: datetime, **extra: str) -> dict[str, str]:
    return {"CallStatus": status, "Timestamp": format_datetime(at), **extra}


def feed(call: Call, attempt: int, *events: tuple[str, datetime, dict[str, str]]) -> Call:
    for status, at, extra in events:
        params = {"CallSid": call.carrier_call_id or "", **callback(status, at, **extra)}
        call = apply_status_callback(call, params, iso(at), attempt)
    return call


def busy(call: Call, attempt: int, at: datetime) -> Call:
    return feed(
        call,
        attempt,
        ("initiated", at, {}),
        ("ringing", at + timedelta(seconds=1), {}),
        ("busy", at + timedelta(seconds=3), {"SipResponseCode": "486", "CallDuration": "0"}),
    )


def answered(call: Call, attempt: int, at: datetime, seconds: int, amd: str = "human") -> Call:
    return feed(
        call,
        attempt,
        ("initiated", at, {}),
        ("in-progress", at + timedelta(seconds=2), {"AnsweredBy": amd}),
        ("completed", at + timedelta(seconds=2 + seconds), {"CallDuration": str(seconds), "AnsweredBy": amd}),
    )


def redial(call: Call, at: datetime, sid: str) -> Call:
    """What the scheduler and the placer do between attempts: dispatch, then claim."""
    sent = dispatch(call, at)
    assert sent is not None
    assert sent.status is CallStatus.RETRY_WAIT  # waiting until the placer claims it
    assert sent.dispatched_at == iso(at)
    return sent.model_copy(
        update={
            "status": CallStatus.DIALING,
            "dialed_at": iso(at),
            "dispatched_at": None,
            "carrier_call_id": sid,
            "next_attempt_at": None,
        }
    )


def test_a_busy_number_is_retried_to_its_last_attempt() -> None:
    policy = CallPolicy(retry_attempts=2, retry_interval=60)
    call = busy(dialed(policy), 1, T0)
    # the first attempt ended busy: waiting, due a minute after it ended, listed as scheduled, not notified
    assert call.status is CallStatus.RETRY_WAIT
    assert call.next_attempt_at == iso(T0 + timedelta(seconds=63))
    assert attention(call) == T0 + timedelta(seconds=63)
    assert listed_as_scheduled(call)
    assert not is_final_transition(None, call)
    assert [a.status for a in call.attempts] == [CallStatus.BUSY]
    assert call.public(with_timeline=False)["attempts"][0]["error_code"] == "SIP 486"
    assert next_step(call, T0, T0 + timedelta(seconds=60)) is Step.NOTHING
    assert next_step(call, T0, T0 + timedelta(seconds=64)) is Step.DISPATCH

    second = busy(redial(call, T0 + timedelta(seconds=63), "CA2"), 2, T0 + timedelta(seconds=64))
    assert second.status is CallStatus.RETRY_WAIT
    assert second.attempt == 3
    third = busy(redial(second, T0 + timedelta(seconds=130), "CA3"), 3, T0 + timedelta(seconds=131))
    assert third.status is CallStatus.BUSY  # the last attempt's outcome is the call's
    assert is_final_transition(second, third)
    attempts = third.public(with_timeline=False)["attempts"]
    assert [(a["attempt"], a["status"]) for a in attempts] == [(1, "BUSY"), (2, "BUSY"), (3, "BUSY")]
    body = payload(third)
    assert (body["attempts"], body["status"], body["metadata"]) == ("3", "BUSY", '{"order":"A-17"}')


def test_billed_seconds_add_up_and_a_late_callback_of_an_earlier_attempt_changes_nothing() -> None:
    policy = CallPolicy(retry_attempts=1, retry_interval=30, retry_on="MACHINE")
    call = answered(dialed(policy), 1, T0, 20, amd="machine_end_beep")
    assert call.status is CallStatus.RETRY_WAIT  # a voicemail answered; MACHINE retries to reach a person
    second = redial(call, T0 + timedelta(seconds=60), "CA2")
    # attempt 1's completed callback comes again, late: kept on the timeline, nothing moves
    late = apply_status_callback(second, callback("completed", T0, CallDuration="99"), iso(T0), 1)
    assert late.status is CallStatus.DIALING
    assert late.billed_seconds == 20
    done = answered(late, 2, T0 + timedelta(seconds=61), 15)
    assert (done.status, done.answered_by, done.billed_seconds) == (CallStatus.COMPLETED, "Person", 35)
    assert [a["billed_seconds"] for a in done.public(with_timeline=False)["attempts"]] == [20, 15]


def test_outcomes_not_in_retry_on_and_invalid_numbers_are_final() -> None:
    policy = CallPolicy(retry_attempts=3, retry_on="BUSY,FAILED")
    no_answer = feed(dialed(policy), 1, ("no-answer", T0, {"SipResponseCode": "487"}))
    assert no_answer.status is CallStatus.NO_ANSWER
    not_found = feed(dialed(policy), 1, ("failed", T0, {"SipResponseCode": "404"}))
    assert not_found.status is CallStatus.FAILED
    network = feed(dialed(policy), 1, ("failed", T0, {"SipResponseCode": "503"}))
    assert network.status is CallStatus.RETRY_WAIT
    person = answered(dialed(CallPolicy(retry_attempts=3, retry_on="MACHINE")), 1, T0, 5)
    assert person.status is CallStatus.COMPLETED


def test_a_hung_up_attempt_is_never_retried() -> None:
    call = dialed(CallPolicy(retry_attempts=3, retry_on="MACHINE"))
    call = call.with_event(iso(T0), events.HANGUP, by="api", attempt=1, sid="CA1")
    ended = answered(call, 1, T0, 5, amd="machine_end_beep")
    assert ended.status is CallStatus.COMPLETED


def test_a_retry_due_outside_the_window_waits_for_its_opening() -> None:
    # Chicago, 09:00-17:00: a busy attempt at 16:59 local, retried 10 minutes later, waits for 09:00 tomorrow.
    policy = CallPolicy(retry_attempts=1, retry_interval=600, call_window="09:00-17:00", zones=["America/Chicago"])
    late = T0 + timedelta(hours=7, minutes=59)
    call = busy(dialed(policy), 1, late)
    assert call.status is CallStatus.SCHEDULED
    assert call.next_attempt_at == iso(T0 + timedelta(days=1))
    assert attention(call) == T0 + timedelta(days=1)


def test_the_window_holds_a_claim_outside_it() -> None:
    policy = CallPolicy(call_window="09:00-17:00", call_days="MON-FRI", zones=["America/Chicago"])
    queued = dialed(policy).model_copy(update={"status": CallStatus.QUEUED, "dialed_at": None, "carrier_call_id": None})
    assert hold_for_window(queued, T0) is None  # open: Monday 09:00
    friday_night = T0 + timedelta(days=4, hours=10)  # Friday 19:00 in Chicago
    held = hold_for_window(queued, friday_night)
    assert held is not None
    assert held.status is CallStatus.SCHEDULED
    assert held.next_attempt_at == iso(T0 + timedelta(days=7))  # Monday 09:00
    assert listed_as_scheduled(held)


def test_a_suppressed_number_cancels_a_call_not_dialed_yet() -> None:
    waiting = busy(dialed(CallPolicy(retry_attempts=1)), 1, T0)
    canceled = cancel_suppressed(waiting, T0 + timedelta(seconds=5))
    assert canceled is not None
    assert (canceled.status, canceled.error_code) == (CallStatus.CANCELED, "suppressed")
    assert is_final_transition(waiting, canceled)
    assert cancel_suppressed(dialed(CallPolicy()), T0) is None  # already at the carrier: not this rule's


def test_a_campaign_calls_retry_due_outside_the_window_waits_for_its_campaign_not_the_scheduler() -> None:
    # the same retry as above, of a campaign's call: held for its campaign, which releases it at the opening
    policy = CallPolicy(retry_attempts=1, retry_interval=600, call_window="09:00-17:00", zones=["America/Chicago"])
    late = T0 + timedelta(hours=7, minutes=59)
    call = busy(dialed(policy, campaign="0190f5a2b3c", call_date=iso(T0)), 1, late)
    opening = iso(T0 + timedelta(days=1))
    assert call.status is CallStatus.SCHEDULED
    assert (call.next_attempt_at, call.window_opening, call.call_date) == (None, opening, None)
    assert attention(call) is None  # not in the scheduler's due index
    assert listed_as_scheduled(call)
    assert call.public(with_timeline=False)["next_attempt_at"] == opening
    # a retry due inside the window is the scheduler's, as for any call
    early = busy(dialed(policy, campaign="0190f5a2b3c"), 1, T0)
    assert (early.status, early.next_attempt_at, early.window_opening) == (
        CallStatus.RETRY_WAIT,
        iso(T0 + timedelta(minutes=10, seconds=3)),
        None,
    )


OUTCOME = ("answered_by", "started_at", "answered_at", "ended_at", "error_code", "error_desc")


def outcome(shown: dict[str, object]) -> tuple[object, ...]:
    return tuple(shown[f] for f in OUTCOME)


def test_a_call_between_attempts_shows_its_last_attempts_outcome_as_its_own() -> None:
    # attempt 1 is busy: the call waits, and shows attempt 1's outcome as a final call shows its last attempt's
    waiting = busy(dialed(CallPolicy(retry_attempts=2, retry_interval=60)), 1, T0)
    shown = waiting.public(with_timeline=False)
    (first,) = shown["attempts"]
    assert (shown["status"], shown["next_attempt_at"]) == ("RETRY_WAIT", iso(T0 + timedelta(seconds=63)))
    assert outcome(shown) == outcome(first)
    assert outcome(first) == ("", iso(T0), None, iso(T0 + timedelta(seconds=3)), "SIP 486", first["error_desc"])
    assert first["error_desc"]
    assert shown["billed_seconds"] == 0

    # the next attempt is dialed: from then on the call's outcome is that attempt's (nothing known yet)
    dialing = redial(waiting, T0 + timedelta(seconds=63), "CA2").public(with_timeline=False)
    assert outcome(dialing) == ("", None, None, None, None, None)
    assert [a["attempt"] for a in dialing["attempts"]] == [1, 2]


def test_a_voicemail_retried_shows_the_answer_and_the_seconds_billed_so_far() -> None:
    policy = CallPolicy(retry_attempts=1, retry_interval=30, retry_on="MACHINE")
    waiting = answered(dialed(policy), 1, T0, 20, amd="machine_end_beep")
    shown = waiting.public(with_timeline=True)
    assert shown["status"] == "RETRY_WAIT"
    assert (shown["answered_by"], shown["answered_at"]) == ("Machine", iso(T0 + timedelta(seconds=2)))
    assert shown["ended_at"] == iso(T0 + timedelta(seconds=22))
    assert shown["billed_seconds"] == 20  # the call's: the sum over its attempts
    # listed (GET /pcall/calls, GET /pcall/scheduled) as GET /pcall/calls/{callid} shows it, timeline aside
    listed = waiting.public(with_timeline=False)
    assert listed == {k: v for k, v in shown.items() if k != "timeline"}

    done = answered(redial(waiting, T0 + timedelta(seconds=60), "CA2"), 2, T0 + timedelta(seconds=61), 15).public(
        with_timeline=False
    )
    assert (done["status"], done["answered_by"], done["billed_seconds"]) == ("COMPLETED", "Person", 35)
    assert outcome(done) == outcome(done["attempts"][-1])


def test_a_retry_held_for_the_calling_window_shows_its_last_attempts_outcome() -> None:
    policy = CallPolicy(retry_attempts=1, retry_interval=600, call_window="09:00-17:00", zones=["America/Chicago"])
    late = T0 + timedelta(hours=7, minutes=59)
    held = busy(dialed(policy), 1, late).public(with_timeline=False)
    assert (held["status"], held["next_attempt_at"]) == ("SCHEDULED", iso(T0 + timedelta(days=1)))
    assert (held["started_at"], held["error_code"]) == (iso(late), "SIP 486")


def test_a_call_cancelled_between_attempts_shows_its_last_attempts_outcome_and_the_cancels_own_code() -> None:
    # attempt 1 was busy; before attempt 2 is dialed, the number is suppressed, or the call's campaign cancels it
    # (waiting, or just claimed by a placer that has not asked the carrier yet)
    policy = CallPolicy(retry_attempts=2, retry_interval=60)
    waiting = busy(dialed(policy, campaign="0190f5a2b3c"), 1, T0)
    first = waiting.public(with_timeline=False)["attempts"][0]
    sent = dispatch(waiting, T0 + timedelta(seconds=63))
    assert sent is not None
    due = iso(T0 + timedelta(seconds=63))
    applied, claimed = apply(sent, claim(due, "tok", hold_until=due))
    assert applied
    assert claimed is not None
    later = T0 + timedelta(seconds=64)
    ended = {
        "suppressed": cancel_suppressed(waiting, later),
        "campaign_canceled": campaign_cancel(waiting, iso(later)),
        "campaign_canceled after its claim": campaign_cancel(claimed, iso(later), "tok"),
    }

    for case, call in ended.items():
        assert call is not None, case
        code = case.split()[0]
        shown = call.public(with_timeline=False)
        assert shown["status"] == "CANCELED", case
        assert [a["attempt"] for a in shown["attempts"]] == [1], case  # never dialed again: one attempt
        # the attempt's times and answer, the cancel's own reason (the attempt's stays in `attempts`)
        assert outcome(shown)[:4] == outcome(first)[:4] == ("", iso(T0), None, iso(T0 + timedelta(seconds=3)))
        assert (shown["error_code"], bool(shown["error_desc"])) == (code, True), case
        assert first["error_code"] == "SIP 486"
        assert shown["next_attempt_at"] is None, case
        # the outcome callback says the same
        body = payload(call)
        assert (body["status"], body["attempts"], body["error_code"]) == ("CANCELED", "1", code), case
        assert (body["started_at"], body["ended_at"]) == (iso(T0), iso(T0 + timedelta(seconds=3))), case
        assert body["error_desc"] == shown["error_desc"], case


def test_a_call_cancelled_between_attempts_without_a_code_of_its_own_shows_its_last_attempts_whole_outcome() -> None:
    # as DELETE /pcall/calls/{callid} or DELETE /pcall/scheduled/{callid} end a waiting call: CANCELED, no code
    waiting = busy(dialed(CallPolicy(retry_attempts=2, retry_interval=60)), 1, T0)
    stamp = iso(T0 + timedelta(seconds=30))
    canceled = waiting.model_copy(update={"status": CallStatus.CANCELED, "updated_at": stamp, "ended_at": stamp})

    shown = canceled.public(with_timeline=False)
    (first,) = shown["attempts"]
    assert shown["status"] == "CANCELED"
    assert outcome(shown) == outcome(first)
    assert (shown["started_at"], shown["error_code"]) == (iso(T0), "SIP 486")
    body = payload(canceled)
    assert {f: body[f] for f in OUTCOME} == {f: first[f] or "" for f in OUTCOME}
    assert body["attempts"] == "1"


def test_a_call_cancelled_before_its_first_attempt_shows_its_own_fields() -> None:
    queued = dialed(CallPolicy(retry_attempts=2)).model_copy(
        update={"status": CallStatus.QUEUED, "dialed_at": None, "carrier_call_id": None}
    )
    canceled = cancel_suppressed(queued, T0)
    assert canceled is not None

    shown = canceled.public(with_timeline=False)
    assert (shown["attempts"], shown["started_at"], shown["ended_at"]) == ([], None, iso(T0))
    assert (shown["error_code"], payload(canceled)["attempts"]) == ("suppressed", "0")


def test_next_attempt_at_is_empty_once_the_placer_claims_the_attempt_it_announced() -> None:
    waiting = busy(dialed(CallPolicy(retry_attempts=2, retry_interval=60)), 1, T0)
    due = iso(T0 + timedelta(seconds=63))
    assert waiting.public(with_timeline=False)["next_attempt_at"] == due
    sent = dispatch(waiting, T0 + timedelta(seconds=63))
    assert sent is not None
    assert sent.public(with_timeline=False)["next_attempt_at"] == due  # sent, not claimed: still waiting for it

    # the claim, as the placer writes it: DIALING, the carrier not asked yet
    applied, claimed = apply(sent, claim(due, "tok", hold_until=due))
    assert applied
    assert claimed is not None
    shown = claimed.public(with_timeline=False)
    assert (shown["status"], shown["next_attempt_at"]) == ("DIALING", None)
    # and a call that ended has no next attempt either, whatever its stored field says
    done = claimed.model_copy(update={"status": CallStatus.FAILED})
    assert done.public(with_timeline=False)["next_attempt_at"] is None
