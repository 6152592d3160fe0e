"""The calls store writes each step of a call as the domain means it: one conditional UpdateItem, no read.

Every step a use case takes without reading the call (claim, placement, flow, callbacks, rejection, one-time
claims) is applied both to the stored call in moto and to a copy in memory with `domain.changes.apply`; the
two must agree on whether the step held and on the call after it, and the call's place in the due index must
be its attention time (for a call in flight, no later than it: an answer keeps the dialing's earlier place).
Callbacks arrive in a seeded random order, repeated, as the carrier may send them.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from callbridge.adapters.aws import client as aws_client
from callbridge.adapters.dynamodb.calls import DynamoCallsStore
from callbridge.domain import events
from callbridge.domain.calls import Call, CallStatus, TimelineEvent, iso, new_callid
from callbridge.domain.changes import Change, apply, ends
from callbridge.domain.dispatch import attention, from_carrier
from callbridge.domain.placing import claim, placed, rejected, uncertain
from callbridge.domain.progress import before_its_carrier_id, flow_change, recording_change, settled, status_change

from tests.integration.fakes import atomic_dynamodb, moto_stack

T0 = datetime(2027, 1, 10, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def aws() -> Iterator[Any]:
    yield from moto_stack()


def at(seconds: float) -> str:
    return iso(T0 + timedelta(seconds=seconds))


def queued(store: DynamoCallsStore, status: CallStatus = CallStatus.QUEUED, **fields: Any) -> Call:
    stamp = at(0)
    call = Call(
        callid=new_callid(T0.timestamp()),
        account_id="cb_test",
        status=status,
        created_at=stamp,
        updated_at=stamp,
        request={"to": "+17134567890", "from": "+12815550100", "answer_play": "https://example.com/a.wav"},
        timeline=[TimelineEvent(at=stamp, event="accepted", detail={"status": status.value})],
        **fields,
    )
    store.create(call)
    return call


def due_key(aws: Any, callid: str) -> str | None:
    item = aws_client("dynamodb").get_item(
        TableName=aws.refs["CallsTable"], Key={"callid": {"S": callid}}, ConsistentRead=True
    )["Item"]
    return item["due_key"]["S"].split("#")[0] if "due_key" in item else None


def step(aws: Any, store: DynamoCallsStore, memory: Call, change: Change) -> Call:
    """Apply `change` to the stored call and to `memory`; they must agree. The call after it."""
    held, stored = store.apply(memory.callid, change)
    expected_held, expected = apply(memory, change)
    assert held == expected_held
    after = expected or memory
    assert stored == settled(after)
    due = attention(settled(after))
    stored_due = due_key(aws, memory.callid)
    if after.status in (CallStatus.DIALING, CallStatus.RINGING, CallStatus.IN_PROGRESS):
        # placed at its claim plus the ringing delay: never after its attention time (the scheduler is not late;
        # a call the carrier accepted later, or still in progress then, is looked at early)
        assert due is not None
        assert stored_due is not None
        assert stored_due <= iso(due), (stored_due, due)
    else:
        assert stored_due == (iso(due) if due else None), after.status
    return after


def callback(status: str, seconds: int, **extra: str) -> dict[str, str]:
    stamp = (T0 + timedelta(seconds=seconds)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    return {"CallSid": "CA1", "CallStatus": status, "Timestamp": stamp, **extra}


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_a_calls_steps_in_the_store_are_the_domains(aws: Any, seed: int) -> None:
    rng = random.Random(seed)
    print(f"seed {seed}")
    store = DynamoCallsStore(aws.refs["CallsTable"])
    call = queued(store)

    # the claim: once, and not by a second placer
    call = step(aws, store, call, claim(at(1), "token-a", hold_until=at(3)))
    call = step(aws, store, call, claim(at(1), "token-b", hold_until=at(3)))
    # the carrier's webhooks, in any order, some twice; the placer's write of the carrier call id among them
    # (usually first), or lost (the placer died after the carrier accepted the call)
    answered = rng.random() < 0.7
    webhooks: list[Change] = [
        status_change(callback("completed" if answered else "busy", 40, CallDuration="30"), at(41))
    ]
    if answered:
        webhooks.append(
            flow_change(
                {"AnsweredBy": rng.choice(["human", "machine_end_beep"]), "MachineDetectionDuration": "2500"}, at(12)
            )
        )
        webhooks.append(recording_change({"CallSid": "CA1", "RecordingUrl": "https://example.com/r.mp3"}, at(42)))
    webhooks += [status_change(callback(s, n), at(n)) for s, n in (("initiated", 3), ("ringing", 5))]
    webhooks += rng.sample(webhooks, k=rng.randint(0, len(webhooks)))
    rng.shuffle(webhooks)
    placer = rng.choice(["first", "among them", "lost"])
    print(f"the placer's write: {placer}")
    if placer != "lost":
        webhooks.insert(0 if placer == "first" else rng.randint(0, len(webhooks)), placed(at(2), "CA1", "queued"))
    for change in webhooks:
        flow = change.event is not None and change.event.event == events.FLOW
        # a flow request before the carrier call id was written takes it as the call's, as the webhook writes it
        written = before_its_carrier_id(change, "CA1", answered=True) if flow and not call.carrier_call_id else change
        call = step(aws, store, call, written)
    # late ones change nothing but the timeline
    call = step(aws, store, call, rejected(at(50), 21211, "invalid To", 400))
    call = step(aws, store, call, uncertain(at(51), "read timeout"))

    final = settled(call)
    assert final.status is (CallStatus.COMPLETED if answered else CallStatus.BUSY)
    assert final.ended_at == at(40)
    assert (final.billed_seconds, final.carrier_call_id) == (30, "CA1")


def test_a_callback_whose_call_changed_between_its_writes_is_chosen_again(aws: Any) -> None:
    # given: a call being dialed with no carrier call id yet, and a busy callback whose first write fails on that;
    # the placer's write of the id lands just before the callback's next write (which takes the id as the call's)
    store = DynamoCallsStore(aws.refs["CallsTable"], dynamodb=aws_client("dynamodb"))
    call = queued(store)
    call = step(aws, store, call, claim(at(1), "token-a", hold_until=at(3)))
    writes: list[str] = []

    def placer_lands_between(**_kwargs: Any) -> None:
        writes.append("UpdateItem")
        if len(writes) == 2:  # after the first write failed, before the second
            placer = DynamoCallsStore(aws.refs["CallsTable"], dynamodb=aws_client("dynamodb", pool=1))  # its own
            placer.apply(call.callid, placed(at(2), "CA1", "queued"))

    client = aws_client("dynamodb")
    client.meta.events.register("before-call.dynamodb.UpdateItem", placer_lands_between)
    try:
        held, after = store.apply(call.callid, status_change(callback("busy", 3), at(4)))
    finally:
        client.meta.events.unregister("before-call.dynamodb.UpdateItem", placer_lands_between)

    # then: the second write failed (the call had an id by then), and the callback was chosen again from the call
    # as it was: the change itself, which moved it
    assert len(writes) == 3
    assert held is True
    assert after is not None
    assert (after.status, after.carrier_call_id) == (CallStatus.BUSY, "CA1")
    assert [e.event for e in after.timeline] == ["accepted", "dialing", "carrier.created", "carrier.status"]


@pytest.mark.parametrize("status", [CallStatus.SCHEDULED, CallStatus.RETRY_WAIT])
def test_a_waiting_call_is_claimed_only_once_its_message_was_sent(aws: Any, status: CallStatus) -> None:
    # a call with a due time keeps its status until the placer claims it; a stale message finds it unsent
    store = DynamoCallsStore(aws.refs["CallsTable"])
    due = {"call_date": at(5)} if status is CallStatus.SCHEDULED else {"next_attempt_at": at(5)}
    unsent = queued(store, status, **due)
    sent = queued(store, status, **due, dispatched_at=at(1))

    unsent = step(aws, store, unsent, claim(at(6), "a", hold_until=at(7)))
    sent = step(aws, store, sent, claim(at(6), "a", hold_until=at(7)))

    assert (unsent.status, unsent.dispatched_at) == (status, None)
    assert (sent.status, sent.claim_token, sent.dispatched_at) == (CallStatus.DIALING, "a", None)


def test_one_time_claims_hold_once(aws: Any) -> None:
    store = DynamoCallsStore(aws.refs["CallsTable"])
    call = queued(store)
    sms = Change(require={"sms_status": None}, set={"sms_status": "sending-1"})

    call = step(aws, store, call, sms)
    call = step(aws, store, call, sms)
    call = step(aws, store, call, Change(set={"sms_status": "sent", "sms_sid": "SM1"}))

    assert (call.sms_status, call.version) == ("sent", 2)


def test_a_step_for_an_unknown_call_writes_nothing(aws: Any) -> None:
    store = DynamoCallsStore(aws.refs["CallsTable"])

    assert store.apply("nosuchcall", status_change(callback("completed", 1), at(1))) == (False, None)
    assert store.get("nosuchcall") is None


def test_an_answer_keeps_an_earlier_place_in_the_due_index_and_moves_a_later_one(aws: Any) -> None:
    store = DynamoCallsStore(aws.refs["CallsTable"])

    # given: claimed at 1 s (its place: 76 s), answered at 12 s (its look-up: 132 s)
    kept = queued(store)
    kept = step(aws, store, kept, claim(at(1), "a", hold_until=at(1)))
    kept = step(aws, store, kept, placed(at(2), "CA1", "queued"))
    kept = step(aws, store, kept, flow_change({"AnsweredBy": "human"}, at(12)))
    # then: the answer wrote no index entry; the scheduler finds the call early, never late
    assert kept.status is CallStatus.IN_PROGRESS
    assert due_key(aws, kept.callid) == at(76)

    # given: a call asked about at 80 s, still ringing (its next look-up: 230 s), then answered at 90 s
    moved = queued(store)
    moved = step(aws, store, moved, claim(at(1), "a", hold_until=at(1)))
    moved = step(aws, store, moved, placed(at(2), "CA1", "queued"))
    asked = store.update(
        moved.callid, lambda c: from_carrier(c, {"CallSid": "CA1", "CallStatus": "ringing"}, T0 + timedelta(seconds=80))
    )
    assert asked is not None
    assert due_key(aws, moved.callid) == at(230)
    moved = step(aws, store, asked, flow_change({"AnsweredBy": "human"}, at(90)))
    # then: its place was later than the answer's look-up, so the answer moved it there
    assert moved.status is CallStatus.IN_PROGRESS
    assert due_key(aws, moved.callid) == at(210)


@pytest.mark.parametrize("seed", [21, 22, 23, 24])
def test_the_store_says_which_write_ended_the_call_and_only_one_does(aws: Any, seed: int) -> None:
    # given: a claimed call, its carrier call id written or not (the placer's write lost), and its callbacks: three
    # different final ones and the progress before them, some repeated, in a seeded random order
    rng = random.Random(seed)
    print(f"seed {seed}")
    store = DynamoCallsStore(aws.refs["CallsTable"])
    call = queued(store)
    store.apply(call.callid, claim(at(1), "token-a", hold_until=at(3)))
    if rng.random() < 0.5:
        store.apply(call.callid, placed(at(2), "CA1", "queued"))
    finals = [callback("completed", 40, CallDuration="30"), callback("busy", 41), callback("no-answer", 42)]
    callbacks = finals + [callback(s, n) for s, n in (("initiated", 3), ("ringing", 5), ("in-progress", 8))]
    callbacks += rng.sample(callbacks, k=rng.randint(1, len(callbacks)))
    rng.shuffle(callbacks)

    # when: each is written as the webhook writes it (one conditional write, no read)
    ended: list[str] = []
    for n, params in enumerate(callbacks):
        before = store.get(call.callid)
        written, after = store.write(call.callid, status_change(params, at(50 + n)))
        assert before is not None
        assert after is not None
        # then: the change the store says it wrote ends the call exactly when the call went from live to final
        assert ends(written) == (not before.status.is_final and after.status.is_final), params["CallStatus"]
        if ends(written):
            ended.append(params["CallStatus"])

    # and: only the first final callback ended it
    first_final = next(p["CallStatus"] for p in callbacks if p in finals)
    assert ended == [first_final]


def test_of_callbacks_racing_to_end_a_call_exactly_one_ends_it(aws: Any) -> None:
    # given: a call being dialed (its carrier call id written), and its final callbacks delivered at once: the same
    # one several times and another final status, as concurrent webhook invocations write them
    store = DynamoCallsStore(aws.refs["CallsTable"], dynamodb=aws_client("dynamodb"))
    call = queued(store)
    store.apply(call.callid, claim(at(1), "token-a", hold_until=at(3)))
    store.apply(call.callid, placed(at(2), "CA1", "queued"))
    callbacks = [callback("completed", 40, CallDuration="30")] * 5 + [callback("busy", 41)] * 3
    start = threading.Barrier(len(callbacks))
    written: list[tuple[str, bool]] = []

    def deliver(n: int, params: dict[str, str]) -> None:
        start.wait()
        change, _ = store.write(call.callid, status_change(params, at(50 + n)))
        written.append((params["CallStatus"], ends(change)))

    # when
    with atomic_dynamodb():
        threads = [threading.Thread(target=deliver, args=(n, p)) for n, p in enumerate(callbacks)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    # then: one write ended the call, with the status it has; every callback is on its timeline
    enders = [status for status, ended in written if ended]
    final = store.get(call.callid)
    assert final is not None
    assert len(written) == len(callbacks)
    assert enders == [final.status.value.lower()]
    assert sum(1 for e in final.timeline if e.event == events.CARRIER_STATUS) == len(callbacks)
