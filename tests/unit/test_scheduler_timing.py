"""Scheduled dispatch, pure parts: the due window, DelaySeconds, attention times, grace and limits, transitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from callbridge.adapters.dynamodb.calls import DynamoCallsStore, due_entry, due_key, shard_of
from callbridge.adapters.dynamodb.codec import from_item
from callbridge.domain.calls import Call, CallStatus, TimelineEvent, iso
from callbridge.domain.campaigns import Campaign, CampaignCall, CampaignStatus, campaign_call, hold, release
from callbridge.domain.dispatch import (
    CLAIM_AHEAD_SECONDS,
    DEFAULT_TIMING,
    DueKind,
    Step,
    Timing,
    attention,
    dead_lettered,
    delay_seconds,
    dispatch,
    due_kind,
    entering,
    entering_kind,
    fail,
    from_carrier,
    held_until,
    horizon,
    listed_as_scheduled,
    never_placed,
    next_step,
    requeue,
    unknown_to_carrier,
)
from callbridge.domain.limits import MAX_DELAY_SECONDS
from hypothesis import given
from hypothesis import strategies as st

NOW = datetime(2027, 1, 10, 12, 0, 17, tzinfo=UTC)  # a rule firing: never on second 0
CALLID = "17f9a1b2c3d0123456789abcdef"
TIMING = Timing(grace=120, max_backoff=900, ringing_after=75, answered_after=120, max_interval=900)
AHEAD = timedelta(seconds=CLAIM_AHEAD_SECONDS)


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def make_call(status: CallStatus, *, call_date: datetime | None = None, **fields: Any) -> Call:
    created = fields.pop("created_at", iso(at(-3600)))
    return Call(
        callid=CALLID,
        account_id="cb_account",
        status=status,
        created_at=created,
        updated_at=created,
        request={"to": "+12812345670", "answer_play": "http://example.com/a.wav"},
        call_date=iso(call_date) if call_date else None,
        **fields,
    )


def with_events(call: Call, *events: tuple[float, str]) -> Call:
    return call.model_copy(
        update={"timeline": [*call.timeline, *(TimelineEvent(at=iso(at(s)), event=name) for s, name in events)]}
    )


# --- the due window


def test_a_run_dispatches_what_is_due_before_its_horizon() -> None:
    end = horizon(NOW, 90)

    assert end == at(90)
    assert next_step(make_call(CallStatus.SCHEDULED, call_date=at(89.999)), NOW, end) is Step.DISPATCH
    assert next_step(make_call(CallStatus.SCHEDULED, call_date=at(-30)), NOW, end) is Step.DISPATCH  # overdue
    assert next_step(make_call(CallStatus.SCHEDULED, call_date=at(90)), NOW, end) is Step.NOTHING
    assert next_step(make_call(CallStatus.SCHEDULED, call_date=at(600)), NOW, end) is Step.NOTHING


@given(
    gaps=st.lists(st.floats(min_value=1, max_value=90), min_size=1, max_size=40),
    due_offset=st.floats(min_value=0, max_value=3000),
)
def test_with_a_lookahead_covering_the_longest_gap_between_runs_no_call_starts_late(
    gaps: list[float], due_offset: float
) -> None:
    # EventBridge fires about once a minute with jitter: here any gap of up to 90 s between runs.
    lookahead = 90.0
    runs = [NOW]
    for gap in gaps:
        runs.append(runs[-1] + timedelta(seconds=gap))
    due = runs[0] + timedelta(seconds=min(due_offset, (runs[-1] - runs[0]).total_seconds()))
    call = make_call(CallStatus.SCHEDULED, call_date=due)

    # when: the first run that sees it dispatches it
    first = next(r for r in runs if next_step(call, r, horizon(r, lookahead)) is Step.DISPATCH)

    # then: it is sent before it is due, with a delay SQS accepts that makes it visible in time for its claim
    # (never after: the placer holds an early message until its call_date)
    delay = delay_seconds(due, first)
    assert first <= due
    assert 0 <= delay <= MAX_DELAY_SECONDS
    assert first + timedelta(seconds=delay) <= due - AHEAD or delay == 0


# --- DelaySeconds


@pytest.mark.parametrize(
    ("due_in", "expected"),
    [
        (0, 0),
        (-5, 0),
        (-3600, 0),
        (0.001, 0),
        (0.5, 0),
        (1.2, 0),
        (1.25, 1),
        (42, 41),
        (42.2, 41),
        (42.24, 41),
        (42.25, 42),
        (42.5, 42),
        (42.99, 42),
        (899.5, 899),
        (900, 899),
        (900.25, 900),
        (86400, 900),
    ],
)
def test_delay_is_the_whole_seconds_left_less_the_claim_s_margin_within_what_sqs_takes(
    due_in: float, expected: int
) -> None:
    assert delay_seconds(at(due_in), NOW) == expected


@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
def test_delay_is_always_a_valid_sqs_delay(due_in: float) -> None:
    due = at(due_in)  # to the microsecond, as datetimes are
    delay = delay_seconds(due, NOW)

    assert isinstance(delay, int)
    assert 0 <= delay <= 900
    if at(AHEAD.total_seconds()) <= due <= at(900):
        # visible in time for its claim, and never more than a second before that (the placer holds it until then)
        assert due - AHEAD - timedelta(seconds=1) < NOW + timedelta(seconds=delay) <= due - AHEAD


# --- attention times: where each state sits in the due index


def test_a_scheduled_call_is_looked_at_at_its_call_date() -> None:
    assert attention(make_call(CallStatus.SCHEDULED, call_date=at(3600))) == at(3600)


def test_an_immediate_queued_call_is_looked_at_after_the_grace() -> None:
    call = make_call(CallStatus.QUEUED, created_at=iso(NOW))

    assert attention(call, TIMING) == at(120)
    assert next_step(call, at(119), at(119), TIMING) is Step.NOTHING
    assert next_step(call, at(120), at(120), TIMING) is Step.RESEND


def test_a_dispatched_call_stays_at_its_call_date_and_is_resent_only_after_the_grace() -> None:
    # given: dispatched (QUEUED) and due in 30 s
    call = make_call(CallStatus.QUEUED, call_date=at(30))

    # then: indexed at its call_date (GET /pcall/scheduled keeps its order), acted on after the grace
    assert attention(call, TIMING) == at(30)
    assert next_step(call, at(30), at(120), TIMING) is Step.NOTHING
    assert next_step(call, at(149.999), at(240), TIMING) is Step.NOTHING
    assert next_step(call, at(150), at(240), TIMING) is Step.RESEND


def test_resends_back_off_up_to_the_cap() -> None:
    call = make_call(CallStatus.QUEUED, call_date=at(0))
    expected = [240, 480, 900, 900]
    for n, backoff in enumerate(expected, start=1):
        sent_at = 1000.0 * n
        call = with_events(call, (sent_at, "requeued"))

        assert attention(call, TIMING) == at(sent_at + backoff)
        assert next_step(call, at(sent_at + backoff - 1), at(sent_at + backoff - 1), TIMING) is Step.NOTHING
        assert next_step(call, at(sent_at + backoff), at(sent_at + backoff), TIMING) is Step.RESEND


def test_a_call_the_placer_put_back_for_a_carrier_retry_is_not_resent_at_once() -> None:
    call = with_events(make_call(CallStatus.QUEUED, call_date=at(-600)), (-10, "carrier.retry"))

    assert next_step(call, NOW, NOW, TIMING) is Step.NOTHING
    assert attention(call, TIMING) == at(-10 + 240)


@pytest.mark.parametrize("status", [CallStatus.DIALING, CallStatus.RINGING])
def test_a_ringing_call_is_looked_up_shortly_after_its_ring_timeout(status: CallStatus) -> None:
    call = make_call(status, dialed_at=iso(NOW), carrier_call_id="CA1")

    assert attention(call, TIMING) == at(75)
    assert next_step(call, at(74), at(74 + 90), TIMING) is Step.NOTHING
    assert next_step(call, at(75), at(75 + 90), TIMING) is Step.RECONCILE


def test_an_answered_call_is_looked_up_two_minutes_after_its_answer_then_at_doubling_intervals() -> None:
    # given: answered at 1, then nothing from the carrier (its final callback lost)
    call = make_call(CallStatus.IN_PROGRESS, dialed_at=iso(at(-20)), answered_at=iso(at(1)), carrier_call_id="CA1")

    # then: first look-up 2 minutes after the answer, then 4, 8, 15, 15 minutes apart
    expected = [121, 121 + 240, 121 + 240 + 480, 121 + 240 + 480 + 900, 121 + 240 + 480 + 900 + 900]
    seen = []
    for _ in expected:
        due = attention(call, TIMING)
        assert due is not None
        seen.append((due - NOW).total_seconds())
        assert next_step(call, due - timedelta(seconds=1), due, TIMING) is Step.NOTHING
        assert next_step(call, due, due, TIMING) is Step.RECONCILE
        # the carrier says it is still live
        live = {"CallSid": "CA1", "CallStatus": "in-progress", "CallbackSource": "reconciliation"}
        call = from_carrier(call, live, due) or call
    assert seen == expected


def test_a_dialing_call_never_heard_from_is_failed_shortly_after_its_ring_timeout() -> None:
    call = make_call(CallStatus.DIALING, dialed_at=iso(NOW))

    assert next_step(call, at(74), at(74), TIMING) is Step.NOTHING
    assert never_placed(call, at(75), TIMING) is not None


def test_a_call_answered_after_a_look_up_while_ringing_counts_from_its_answer() -> None:
    # given: looked up while ringing (still ringing), then answered
    call = make_call(CallStatus.RINGING, dialed_at=iso(at(-100)), carrier_call_id="CA1")
    call = with_events(call, (-25, "reconciled"))
    answered = call.model_copy(update={"status": CallStatus.IN_PROGRESS, "answered_at": iso(NOW)})

    # then: the look-up before the answer does not double the answered call's first delay
    assert attention(call, TIMING) == at(-25 + 150)
    assert attention(answered, TIMING) == at(120)


@pytest.mark.parametrize(
    "status", [CallStatus.COMPLETED, CallStatus.BUSY, CallStatus.NO_ANSWER, CallStatus.FAILED, CallStatus.CANCELED]
)
def test_a_final_call_leaves_the_index(status: CallStatus) -> None:
    call = make_call(status, call_date=at(30), dialed_at=iso(NOW))

    assert attention(call, TIMING) is None
    assert next_step(call, at(10**6), at(10**6), TIMING) is Step.NOTHING
    assert not listed_as_scheduled(call)


def test_the_default_timing_is_the_templates() -> None:
    from sandbox.template import load_template

    parameters = load_template()["Parameters"]
    defaults = (DEFAULT_TIMING.ringing_after, DEFAULT_TIMING.answered_after, DEFAULT_TIMING.max_interval)

    assert defaults == (75, 120, 900)
    assert defaults == tuple(
        parameters[name]["Default"]
        for name in ("ReconcileRingingAfterSeconds", "ReconcileAnsweredAfterSeconds", "ReconcileMaxIntervalSeconds")
    )


# --- the kind of a due-index entry: whether the call needs the scheduler before the entry's time

_ALL_STATUSES = list(CallStatus)


@pytest.mark.parametrize("status", _ALL_STATUSES)
@pytest.mark.parametrize("dispatched", [False, True])
def test_only_a_waiting_call_not_dispatched_is_dispatched_ahead(status: CallStatus, dispatched: bool) -> None:
    call = make_call(status, call_date=at(60), dispatched_at=iso(NOW) if dispatched else None)

    expected = (
        DueKind.AHEAD if status in (CallStatus.SCHEDULED, CallStatus.RETRY_WAIT) and not dispatched else DueKind.AT
    )
    assert due_kind(call) is expected


@pytest.mark.parametrize("status", [CallStatus.DIALING, CallStatus.IN_PROGRESS])
def test_a_call_entering_a_status_without_a_read_is_placed_at_its_time(status: CallStatus) -> None:
    call = make_call(status, dialed_at=iso(NOW), answered_at=iso(NOW), carrier_call_id="CA1")

    assert entering_kind(status) is due_kind(call) is DueKind.AT
    assert entering(status, NOW, TIMING) == attention(call, TIMING)


@pytest.mark.parametrize("status", [CallStatus.SCHEDULED, CallStatus.RETRY_WAIT])
def test_a_waiting_call_needs_its_whole_state_to_tell_its_kind(status: CallStatus) -> None:
    with pytest.raises(ValueError, match="whole state"):
        entering_kind(status)


_EVENTS = ("requeued", "carrier.retry", "reconciled", "carrier.created", "released", "pacing.wait")


@given(
    status=st.sampled_from(_ALL_STATUSES),
    due=st.one_of(st.none(), st.integers(min_value=-3000, max_value=3000)),
    retry_due=st.one_of(st.none(), st.integers(min_value=-3000, max_value=3000)),
    dispatched=st.booleans(),
    dialed=st.integers(min_value=-3000, max_value=0),
    answered=st.one_of(st.none(), st.integers(min_value=-3000, max_value=0)),
    sid=st.booleans(),
    pacing=st.one_of(st.none(), st.integers(min_value=-3000, max_value=3000)),
    events=st.lists(st.tuples(st.integers(min_value=-3000, max_value=0), st.sampled_from(_EVENTS)), max_size=4),
    before=st.integers(min_value=1, max_value=5000),
    lookahead=st.integers(min_value=0, max_value=5000),
)
def test_a_call_whose_entry_is_at_its_time_needs_nothing_before_that_time(
    status: CallStatus,
    due: int | None,
    retry_due: int | None,
    dispatched: bool,
    dialed: int,
    answered: int | None,
    sid: bool,
    pacing: int | None,
    events: list[tuple[int, str]],
    before: int,
    lookahead: int,
) -> None:
    # The scheduler skips an AT entry whose time is ahead without a request: safe only if, at any moment before
    # the call's attention time (the entry is no later), whatever the run's window, the call needs nothing.
    call = make_call(
        status,
        call_date=at(due) if due is not None else None,
        next_attempt_at=iso(at(retry_due)) if retry_due is not None else None,
        dispatched_at=iso(at(-1)) if dispatched else None,
        dialed_at=iso(at(dialed)),
        answered_at=iso(at(answered)) if answered is not None else None,
        carrier_call_id="CA1" if sid else None,
        pacing_until=iso(at(pacing)) if pacing is not None else None,
    )
    call = with_events(call, *((float(s), name) for s, name in sorted(events)))
    when = attention(call, TIMING)
    if when is None or due_kind(call) is DueKind.AHEAD:
        return
    now = when - timedelta(seconds=before / 10)

    assert next_step(call, now, now + timedelta(seconds=lookahead), TIMING) is Step.NOTHING


@given(
    first=st.integers(min_value=0, max_value=10**6),
    gap=st.integers(min_value=1, max_value=10**6),
    ids=st.tuples(
        st.text("0123456789abcdef", min_size=27, max_size=27), st.text("0123456789abcdef", min_size=27, max_size=27)
    ),
    kinds=st.tuples(st.sampled_from(list(DueKind)), st.sampled_from(list(DueKind))),
)
def test_due_keys_of_either_kind_sort_by_time(
    first: int, gap: int, ids: tuple[str, str], kinds: tuple[DueKind, DueKind]
) -> None:
    # The scheduler's query (due_key < a time), dispatch's condition, an answer's "no later than" condition and
    # GET /pcall/scheduled's order all read the key's time: the kind after it must not change any of them.
    early, late = at(first / 1000), at((first + gap) / 1000)
    early_key, late_key = due_key(ids[0], early, kinds[0]), due_key(ids[1], late, kinds[1])

    assert early_key < late_key
    assert early_key < iso(late)
    assert late_key >= iso(late)
    assert due_key(ids[0], early, DueKind.AHEAD) <= due_key(ids[0], early, DueKind.AT)  # an answer keeps either
    assert due_entry(ids[0], early_key).kind is kinds[0]
    assert due_entry(ids[0], early_key).due == iso(early)


def test_an_entry_written_before_kinds_reads_as_dispatched_ahead() -> None:
    old = f"{iso(at(75))}#{CALLID}"  # what every entry looked like before kinds, a call in flight's too

    assert due_entry(CALLID, old).kind is DueKind.AHEAD
    assert due_entry(CALLID, old).due == iso(at(75))
    assert due_key(CALLID, at(75), DueKind.AHEAD) == old


# --- the index attributes CallsTable items carry


def item(call: Call, shards: int = 16) -> dict[str, Any]:
    return from_item(DynamoCallsStore("CallsTable", schedule_shards=shards, timing=TIMING).call_item(call))


def test_index_attributes_follow_the_state() -> None:
    scheduled = item(make_call(CallStatus.SCHEDULED, call_date=at(3600)))
    assert scheduled["due_key"] == f"{iso(at(3600))}#{CALLID}"
    assert scheduled["due_shard"] == shard_of(CALLID, 16)
    assert scheduled["scheduled_account"] == "cb_account"

    dispatched = item(make_call(CallStatus.QUEUED, call_date=at(60)))
    assert dispatched["due_key"] == f"{iso(at(60))}#{CALLID}#at"  # needs nothing before its time
    assert dispatched["scheduled_account"] == "cb_account"  # still listed and cancellable

    sent = item(make_call(CallStatus.SCHEDULED, call_date=at(60), dispatched_at=iso(NOW)))
    assert sent["due_key"] == f"{iso(at(60))}#{CALLID}#at"
    assert sent["scheduled_account"] == "cb_account"

    immediate = item(make_call(CallStatus.QUEUED, created_at=iso(NOW)))
    assert immediate["due_key"] == f"{iso(at(120))}#{CALLID}#at"
    assert "scheduled_account" not in immediate

    dialing = item(make_call(CallStatus.DIALING, call_date=at(-1), dialed_at=iso(NOW)))
    assert dialing["due_key"] == f"{iso(at(75))}#{CALLID}#at"
    assert "scheduled_account" not in dialing

    done = item(make_call(CallStatus.COMPLETED, call_date=at(-100), dialed_at=iso(at(-99))))
    assert not {"due_key", "due_shard", "scheduled_account"} & set(done)


def held_campaign_call(call_date: datetime | None) -> Call:
    """A campaign's call as its fan-out stores it: SCHEDULED, waiting for its campaign to release it."""
    campaign = Campaign(
        id="17f9a1b2c3dcampaign0000000",
        account_id="cb_account",
        name="n",
        status=CampaignStatus.RUNNING,
        total=1,
        created_at=iso(NOW),
        updated_at=iso(NOW),
        calls_per_second=1,
    )
    entry = CampaignCall(0, CALLID, {"to": "+12812345670"}, {}, call_date=iso(call_date) if call_date else None)
    return campaign_call(entry, campaign)


def test_a_held_dated_campaign_call_is_listed_at_its_call_date_and_never_in_the_due_index() -> None:
    held = held_campaign_call(at(3600))
    stored = item(held)

    # listed at its call_date (the key its release gives it), and not in the due index: no shard, no attention time
    assert (held.status, held.call_date, held_until(held)) == (CallStatus.SCHEDULED, None, iso(at(3600)))
    assert listed_as_scheduled(held)
    assert stored["scheduled_account"] == "cb_account"
    assert stored["due_key"] == f"{iso(at(3600))}#{CALLID}#at"
    assert "due_shard" not in stored
    assert attention(held, TIMING) is None
    assert next_step(held, at(7200), at(7290), TIMING) is Step.NOTHING  # past its call_date: still its campaign's
    assert dispatch(held, at(7200)) is None
    assert held.public(with_timeline=False)["call_date"] == iso(at(3600))
    # released at its call_date: QUEUED, in the due index, listed under the same key (its listing entry stays)
    released = release(held, iso(at(3600)), iso(at(3600)))
    assert released is not None
    assert item(released)["due_key"] == stored["due_key"]
    assert item(released)["due_shard"] == shard_of(CALLID, 16)
    assert held_until(released) is None  # the scheduler's from now on
    # held again (its campaign paused after the release): listed at its call_date again, out of the due index
    claimed = released.model_copy(update={"status": CallStatus.DIALING, "claim_token": "t"})
    again = hold(claimed, "t", iso(at(3601)))
    assert again is not None
    assert item(again)["due_key"] == stored["due_key"]
    assert "due_shard" not in item(again)


def test_an_undated_campaign_call_is_not_listed_and_a_retry_of_one_is_the_schedulers() -> None:
    undated = held_campaign_call(None)
    retry = undated.model_copy(update={"status": CallStatus.RETRY_WAIT, "next_attempt_at": iso(at(600))})

    assert not listed_as_scheduled(undated)
    assert held_until(undated) is None
    assert not {"due_key", "due_shard", "scheduled_account"} & set(item(undated))
    assert undated.public(with_timeline=False)["call_date"] is None
    assert held_until(retry) is None
    assert item(retry)["due_key"] == f"{iso(at(600))}#{CALLID}"  # dispatched by the scheduler, ahead of its time
    assert item(retry)["scheduled_account"] == "cb_account"


def test_shards_spread_calls_evenly() -> None:
    ids = [f"{n:011x}{n * 7919:016x}" for n in range(16_000)]
    counts: dict[str, int] = {}
    for callid in ids:
        counts[shard_of(callid, 16)] = counts.get(shard_of(callid, 16), 0) + 1

    assert sorted(counts) == [f"{n:02d}" for n in range(16)]
    assert max(counts.values()) < 1.15 * 1000


# --- transitions


def test_dispatch_sends_a_waiting_call_once_and_keeps_it_scheduled_until_claimed() -> None:
    call = make_call(CallStatus.SCHEDULED, call_date=at(40))

    moved = dispatch(call, NOW)

    assert moved is not None
    assert moved.status is CallStatus.SCHEDULED
    assert moved.dispatched_at == iso(NOW)
    assert moved.timeline[-1].event == "dispatched"
    assert moved.timeline[-1].detail == {"call_date": iso(at(40))}
    assert dispatch(moved, NOW) is None  # sent once
    assert dispatch(make_call(CallStatus.CANCELED, call_date=at(40)), NOW) is None
    # sent, it is not dispatched again in the next run; once long unclaimed, its message is sent again
    assert next_step(moved, NOW, at(90), TIMING) is Step.NOTHING
    assert next_step(moved, at(40 + TIMING.grace), at(40 + TIMING.grace + 90), TIMING) is Step.RESEND
    assert attention(moved, TIMING) == at(40)  # indexed at its call_date, listed in order
    # a retry waits as RETRY_WAIT the same way
    retry = make_call(CallStatus.RETRY_WAIT, next_attempt_at=iso(at(40)))
    sent = dispatch(retry, NOW)
    assert sent is not None
    assert (sent.status, sent.dispatched_at) == (CallStatus.RETRY_WAIT, iso(NOW))


def test_requeue_only_when_due_for_it() -> None:
    call = make_call(CallStatus.QUEUED, call_date=at(-200))

    again = requeue(call, NOW, TIMING)

    assert again is not None
    assert again.status is CallStatus.QUEUED
    assert again.timeline[-1].detail == {"attempt": 1, "unclaimed_seconds": 200}
    assert requeue(again, NOW, TIMING) is None  # backed off now
    assert requeue(make_call(CallStatus.QUEUED, call_date=at(-10)), NOW, TIMING) is None


def test_fail_never_touches_a_final_call() -> None:
    assert fail(make_call(CallStatus.COMPLETED), NOW, "x", "y", "e") is None
    failed = fail(make_call(CallStatus.QUEUED), NOW, "dead_letter", "why", "dead_letter")
    assert failed is not None
    assert (failed.status, failed.error_code, failed.error_desc, failed.ended_at) == (
        CallStatus.FAILED,
        "dead_letter",
        "why",
        iso(NOW),
    )


def test_never_placed_says_why() -> None:
    lost = make_call(CallStatus.DIALING, dialed_at=iso(at(-200)))
    uncertain = with_events(lost, (-199, "carrier.uncertain"))
    too_early = make_call(CallStatus.DIALING, dialed_at=iso(at(-70)))

    first, second = never_placed(lost, NOW, TIMING), never_placed(uncertain, NOW, TIMING)

    assert first is not None
    assert second is not None
    assert first.status is second.status is CallStatus.FAILED
    assert first.error_code == "never_placed"
    assert first.error_desc == "never placed: no carrier call id, and no carrier callback came within 75 s"
    assert second.error_desc is not None
    assert "the carrier's answer to the request was lost" in second.error_desc
    assert never_placed(too_early, NOW, TIMING) is None
    assert never_placed(lost.model_copy(update={"carrier_call_id": "CA1"}), NOW, TIMING) is None


@pytest.mark.parametrize(
    ("carrier_status", "status", "answered_by"),
    [
        ("completed", CallStatus.COMPLETED, "Person"),
        ("busy", CallStatus.BUSY, ""),
        ("no-answer", CallStatus.NO_ANSWER, ""),
        ("failed", CallStatus.FAILED, ""),
        ("in-progress", CallStatus.IN_PROGRESS, "Person"),
        ("ringing", CallStatus.RINGING, ""),
    ],
)
def test_the_carriers_answer_moves_the_call_like_a_callback(
    carrier_status: str, status: CallStatus, answered_by: str
) -> None:
    call = make_call(CallStatus.DIALING, dialed_at=iso(at(-300)), carrier_call_id="CA1")
    params = {"CallSid": "CA1", "CallStatus": carrier_status, "Timestamp": "Sun, 10 Jan 2027 11:56:00 GMT"}
    if carrier_status == "completed":
        params["CallDuration"] = "42"

    updated = from_carrier(call, params, NOW)

    assert updated is not None
    assert updated.status is status
    assert updated.answered_by == answered_by
    assert updated.timeline[-1].event == "reconciled"
    assert updated.timeline[-1].detail == {"carrier_status": carrier_status, "status": status.value}
    if carrier_status == "completed":
        assert updated.billed_seconds == 42
        assert updated.ended_at == "2027-01-10T11:56:00.000Z"


def test_the_carriers_answer_never_moves_a_call_back() -> None:
    call = make_call(CallStatus.IN_PROGRESS, dialed_at=iso(at(-300)), carrier_call_id="CA1")

    updated = from_carrier(call, {"CallStatus": "ringing"}, NOW)

    assert updated is not None
    assert updated.status is CallStatus.IN_PROGRESS
    assert from_carrier(make_call(CallStatus.COMPLETED), {"CallStatus": "busy"}, NOW) is None


def test_unknown_to_the_carrier_and_dead_letters_fail_with_a_reason() -> None:
    gone = unknown_to_carrier(make_call(CallStatus.RINGING, carrier_call_id="CA1"), NOW)
    assert gone is not None
    assert (gone.status, gone.error_code, gone.error_desc) == (
        CallStatus.FAILED,
        "carrier_no_record",
        "carrier has no record of this call",
    )

    dead = dead_lettered(make_call(CallStatus.QUEUED), NOW)
    assert dead is not None
    assert dead.status is CallStatus.FAILED
    assert dead.error_code == "dead_letter"
    assert dead.error_desc is not None
    assert "dead-letter queue" in dead.error_desc
    assert dead_lettered(make_call(CallStatus.DIALING), NOW) is None


def test_a_call_held_for_a_pacing_slot_counts_its_ringing_from_the_carriers_acceptance() -> None:
    # given: at --speed 20 (delays 20 times shorter), claimed at 0 and held 5 s for a pacing slot
    fast = Timing(ringing_after=3.75, answered_after=6, max_interval=45)
    claimed = make_call(CallStatus.DIALING, dialed_at=iso(NOW))

    # then: not failed as never placed while the placer may still hold it (the placing window is not call time)
    assert next_step(claimed, at(59), at(59), fast) is Step.NOTHING
    assert never_placed(claimed, at(59), fast) is None
    assert never_placed(claimed, at(60), fast) is not None

    # and: once the carrier accepted it, looked up 3.75 s after that acceptance
    placed = with_events(claimed, (5, "carrier.created")).model_copy(update={"carrier_call_id": "CA1"})
    assert attention(placed, fast) == at(5 + 3.75)


def test_a_call_waiting_for_a_pacing_slot_is_not_resent_while_it_waits() -> None:
    # given: QUEUED and due a while ago, its message held back by the placer until a minute from now
    call = make_call(CallStatus.QUEUED, created_at=iso(at(-600)))
    waiting = call.model_copy(update={"pacing_until": iso(at(60))})

    # then: re-sent only if still unclaimed a grace after the wait ends
    assert next_step(call, NOW, NOW, TIMING) is Step.RESEND
    assert next_step(waiting, at(179), at(179), TIMING) is Step.NOTHING
    assert next_step(waiting, at(180), at(180), TIMING) is Step.RESEND
