"""Placing calls against moto, with Twilio behind httpx.MockTransport: exactly once, at the carrier's pace.

The handler tests drive functions/placer/app.py with SQS events built from messages really received from
CallsQueue (so receipt handles and receive counts are real); the concurrency and pacing tests drive the Placer
with the real DynamoDB adapters from several threads.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import httpx
import pytest
from callbridge.adapters.aws import client as aws_client
from callbridge.adapters.pacing import HEADROOM, LATE_AFTER, DynamoPacer
from callbridge.domain.calls import Call, CallStatus
from callbridge.domain.dispatch import Step, Timing, next_step
from callbridge.logic.placer import Placement, Placer, PlaceResult, WebhookUrls

from tests.conftest import AccountCredentials, make_account
from tests.integration.fakes import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PUBLIC_API_URL,
    FakeClock,
    FakeTwilio,
    ThreadClocks,
    atomic_dynamodb,
    calls_store,
    failed_ids,
    invoke_placer,
    moto_stack,
    queue_call,
    read_timeout,
    receive,
    sqs_event,
    stored,
    twilio_error,
)


@pytest.fixture
def aws() -> Iterator[Any]:
    """The template's stack in moto, built faster than the shared fixture (see fakes.moto_stack)."""
    yield from moto_stack()


START = 1_800_000_000.25  # a simulated epoch second, not on a slot boundary


def events(call: Call, name: str) -> list[dict[str, Any]]:
    return [e.detail for e in call.timeline if e.event == name]


def place_queued(module: ModuleType, stack: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Receive what is on CallsQueue and hand it to the placer in one batch, as Lambda's poller does."""
    messages = receive(stack)
    assert messages, "nothing on CallsQueue"
    return invoke_placer(module, sqs_event(stack, messages)), messages


@pytest.fixture
def visibility_changes() -> Iterator[list[dict[str, Any]]]:
    """Every ChangeMessageVisibility the functions' shared SQS client makes."""
    seen: list[dict[str, Any]] = []

    def spy(params: dict[str, Any], **_kwargs: Any) -> None:
        seen.append(dict(params))

    events_ = aws_client("sqs").meta.events
    events_.register("provide-client-params.sqs.ChangeMessageVisibility", spy, unique_id="test-visibility-spy")
    yield seen
    events_.unregister("provide-client-params.sqs.ChangeMessageVisibility", unique_id="test-visibility-spy")


def make_placer(stack: Any, carrier: FakeTwilio, *, cps: float = 10, clock: Any = None) -> Placer:
    clock = clock or FakeClock(START)
    return Placer(
        calls=calls_store(stack),
        carrier=carrier.client(clock.now),
        pacer=DynamoPacer(stack.refs["PacingTable"], cps),
        urls=WebhookUrls(PUBLIC_API_URL),
        now=clock.now,
        sleep=clock.sleep,
    )


# --- exactly once


def test_a_queued_call_is_placed_once_even_when_its_message_comes_twice(
    placer_module: ModuleType, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: a queued call whose message is on the queue twice (at-least-once delivery)
    callid = queue_call(aws, account)
    queue_call_message_again(aws, callid)

    # when: both copies arrive in one batch, and then once more in a later invocation
    result, messages = place_queued(placer_module, aws)
    again = invoke_placer(placer_module, sqs_event(aws, messages[:1]))

    # then: one carrier request; neither batch asks for a retry
    assert len(messages) == 2
    assert len(twilio.creates) == 1
    assert failed_ids(result) == []
    assert failed_ids(again) == []
    call = stored(aws, callid)
    assert call.status is CallStatus.DIALING
    assert call.carrier_call_id == f"CA{1:032x}"
    assert len(events(call, "dialing")) == 1
    assert len(events(call, "carrier.created")) == 1


def queue_call_message_again(stack: Any, callid: str) -> None:
    from callbridge.adapters.sqs import SqsCallsQueue

    SqsCallsQueue(stack.refs["CallsQueue"]).send_call(callid)


def test_eight_placers_racing_for_one_call_dial_it_once(
    aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: one queued call, and eight containers that received its message at the same time
    callid = queue_call(aws, account)
    clocks = ThreadClocks(START)
    placers = [make_placer(aws, twilio, clock=clocks) for _ in range(8)]
    start = threading.Barrier(len(placers))
    results: list[PlaceResult] = []

    def run(placer: Placer) -> None:
        start.wait()
        results.append(placer.place(callid))

    # when
    with atomic_dynamodb():
        threads = [threading.Thread(target=run, args=(p,)) for p in placers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    # then: one carrier request, one PLACED, the rest skipped
    assert len(twilio.creates) == 1
    assert sorted(r.placement.value for r in results) == ["placed"] + ["skipped"] * 7
    call = stored(aws, callid)
    assert call.status is CallStatus.DIALING
    assert call.carrier_call_id == next(r.carrier_call_id for r in results if r.placement is Placement.PLACED)
    assert len(events(call, "dialing")) == 1


def test_calls_that_are_not_queued_are_skipped(
    placer_module: ModuleType, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: messages arriving after their calls were cancelled, put back to SCHEDULED, claimed or finished
    statuses = [CallStatus.CANCELED, CallStatus.SCHEDULED, CallStatus.DIALING, CallStatus.COMPLETED, CallStatus.FAILED]
    callids = [queue_call(aws, account) for _ in statuses]
    for callid, status in zip(callids, statuses, strict=True):
        calls_store(aws).update(callid, lambda c, s=status: c.model_copy(update={"status": s}))  # type: ignore[misc]
    before = [stored(aws, callid) for callid in callids]

    # when: all of them arrive in one batch
    result, messages = place_queued(placer_module, aws)

    # then: nothing is dialed, nothing retried, every call is left as it was
    assert len(messages) == len(statuses)
    assert twilio.requests == []
    assert failed_ids(result) == []
    assert [stored(aws, callid) for callid in callids] == before


# --- carrier errors


@pytest.mark.parametrize(
    ("answer", "backoff"),
    [
        (twilio_error(429, 20429, "Too Many Requests", {"Retry-After": "7"}), 7),
        (twilio_error(503, 20503, "Service Unavailable"), 2),  # no Retry-After: 2 ** attempt seconds
    ],
    ids=["429", "503"],
)
def test_a_throttled_or_unavailable_carrier_requeues_the_call_and_the_retry_dials_once(
    placer_module: ModuleType,
    aws: Any,
    account: AccountCredentials,
    twilio: FakeTwilio,
    visibility_changes: list[dict[str, Any]],
    answer: httpx.Response,
    backoff: int,
) -> None:
    # given: a queued call, and a carrier that refuses the first request for now
    callid = queue_call(aws, account)
    twilio.call_answers.append(answer)

    # when: the message is delivered
    result, messages = place_queued(placer_module, aws)

    # then: the message is a batch item failure, hidden for the backoff; the call is QUEUED again
    assert failed_ids(result) == [messages[0]["MessageId"]]
    assert visibility_changes == [
        {
            "QueueUrl": aws.refs["CallsQueue"],
            "ReceiptHandle": messages[0]["ReceiptHandle"],
            "VisibilityTimeout": backoff,
        }
    ]
    call = stored(aws, callid)
    assert call.status is CallStatus.QUEUED
    assert call.claim_token is None
    assert call.carrier_call_id is None
    assert len(events(call, "carrier.retry")) == 1

    # when: the backoff has passed and SQS delivers it again, and this time the carrier accepts
    aws_client("sqs").change_message_visibility(
        QueueUrl=aws.refs["CallsQueue"], ReceiptHandle=messages[0]["ReceiptHandle"], VisibilityTimeout=0
    )
    retry, redelivered = place_queued(placer_module, aws)

    # then: exactly two create attempts, one success, and the call is DIALING with the carrier's id
    assert redelivered[0]["Attributes"]["ApproximateReceiveCount"] == "2"
    assert failed_ids(retry) == []
    assert len(twilio.creates) == 2
    assert twilio.creates[0].form == twilio.creates[1].form
    call = stored(aws, callid)
    assert call.status is CallStatus.DIALING
    assert call.carrier_call_id == f"CA{2:032x}"
    assert len(events(call, "carrier.created")) == 1


def test_one_retryable_call_fails_only_its_own_message(
    placer_module: ModuleType, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: two queued calls; the carrier is unavailable for the second one's number
    good = queue_call(aws, account, to="17134567890")
    busy = queue_call(aws, account, to="17134567891")
    twilio.answers_to["+17134567891"] = [twilio_error(503, 20503, "Service Unavailable")]

    # when: both arrive in one batch
    result, messages = place_queued(placer_module, aws)

    # then: only the second message is reported failed
    by_callid = {m["Body"]: m["MessageId"] for m in messages}
    assert failed_ids(result) == [by_callid[f'{{"callid": "{busy}"}}']]
    assert stored(aws, good).status is CallStatus.DIALING
    assert stored(aws, busy).status is CallStatus.QUEUED


def test_a_timeout_after_sending_leaves_the_call_dialing_and_is_not_retried(
    placer_module: ModuleType, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: the create request goes out and no answer comes back
    callid = queue_call(aws, account)
    twilio.call_answers.append(read_timeout)

    # when
    result, messages = place_queued(placer_module, aws)
    redelivery = invoke_placer(placer_module, sqs_event(aws, messages))

    # then: not a batch failure (a retry could dial twice); reconciliation will ask the carrier
    assert failed_ids(result) == []
    assert failed_ids(redelivery) == []
    assert len(twilio.creates) == 1
    call = stored(aws, callid)
    assert call.status is CallStatus.DIALING
    assert call.carrier_call_id is None
    assert call.claim_token is not None
    uncertain = events(call, "carrier.uncertain")
    assert len(uncertain) == 1
    assert "ReadTimeout" in uncertain[0]["error"]


def test_an_invalid_number_fails_the_call_with_the_carriers_code_and_message(
    placer_module: ModuleType, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given
    callid = queue_call(aws, account)
    message = "The 'To' number +17134567890 is not a valid phone number."
    twilio.call_answers.append(twilio_error(400, 21211, message))

    # when
    result, _ = place_queued(placer_module, aws)

    # then: FAILED for good, with Twilio's code and words; the message is done with
    assert failed_ids(result) == []
    call = stored(aws, callid)
    assert call.status is CallStatus.FAILED
    assert call.error_code == "21211"
    assert call.error_desc == message
    assert call.carrier_error == {"code": 21211, "message": message, "http_status": 400}
    assert call.ended_at is not None
    assert len(twilio.creates) == 1


# --- the request


def form_of(twilio: FakeTwilio) -> dict[str, list[str]]:
    (request,) = twilio.creates
    grouped: dict[str, list[str]] = {}
    for name, value in request.form:
        grouped.setdefault(name, []).append(value)
    return grouped


def hook(callid: str, name: str) -> str:
    return f"{PUBLIC_API_URL}/carrier/twilio/{callid}/{name}"


def test_the_create_call_request_without_recording(
    placer_module: ModuleType, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: a call without `from` and with record=NO (the account's defaults)
    callid = queue_call(aws, account, to="17134567890")

    # when
    place_queued(placer_module, aws)

    # then: exactly these fields
    import base64

    assert form_of(twilio) == {
        "To": ["+17134567890"],
        "From": ["+12815550100"],  # the account's caller id
        "Url": [hook(callid, "flow")],
        "Method": ["POST"],
        "FallbackUrl": [hook(callid, "fallback")],  # an error in the flow ends the call with a reason we keep
        "FallbackMethod": ["POST"],
        "StatusCallback": [hook(callid, "status")],
        "StatusCallbackMethod": ["POST"],
        # only the final status: the flow request says when and by whom the call was answered
        "StatusCallbackEvent": ["completed"],
        "MachineDetection": ["DetectMessageEnd"],
        "Timeout": ["45"],
        "TimeLimit": ["14400"],
    }
    (request,) = twilio.creates
    assert request.authorization == "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()


@pytest.mark.parametrize("by", ["request", "account default"])
def test_the_create_call_request_with_recording(
    placer_module: ModuleType, aws: Any, accounts_store: Any, twilio: FakeTwilio, by: str
) -> None:
    # given: record=YES, asked for in the request or by the account's default, and an explicit `from`
    recorder = make_account(accounts_store, record="YES" if by == "account default" else "NO")
    params = {"from": "12812345678", **({"record": "YES"} if by == "request" else {})}
    callid = queue_call(aws, recorder, **params)

    # when
    place_queued(placer_module, aws)

    # then: Record and its callback are added, the rest as always
    form = form_of(twilio)
    assert form.pop("Record") == ["true"]
    assert form.pop("RecordingStatusCallback") == [hook(callid, "recording")]
    assert form.pop("RecordingStatusCallbackMethod") == ["POST"]
    assert form["From"] == ["+12812345678"]
    assert set(form) == {
        "To",
        "From",
        "Url",
        "Method",
        "FallbackUrl",
        "FallbackMethod",
        "StatusCallback",
        "StatusCallbackMethod",
        "StatusCallbackEvent",
        "MachineDetection",
        "Timeout",
        "TimeLimit",
    }


# --- pacing


@pytest.mark.parametrize(("cps", "n_calls", "n_threads"), [(2, 12, 4), (1, 10, 3)])
def test_many_placers_never_exceed_the_carriers_pace_and_drain_a_backlog_near_it(
    aws: Any, account: AccountCredentials, cps: int, n_calls: int, n_threads: int
) -> None:
    # given: a backlog of queued calls, and several placer containers, each with its own simulated clock
    clocks = ThreadClocks(START)
    twilio = FakeTwilio(clock=clocks.now)  # stamps each carrier request with its sender's clock
    callids = [queue_call(aws, account, to=f"1713456{7000 + n}") for n in range(n_calls)]
    backlog = list(callids)
    lock = threading.Lock()
    results: list[PlaceResult] = []
    start = threading.Barrier(n_threads)

    def container() -> None:
        placer = make_placer(aws, twilio, cps=cps, clock=clocks)
        start.wait()
        while True:
            with lock:
                if not backlog:
                    return
                callid = backlog.pop(0)
            results.append(placer.place(callid))

    # when
    with atomic_dynamodb():
        threads = [threading.Thread(target=container) for _ in range(n_threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    # then: every call placed once
    assert [r.placement for r in results] == [Placement.PLACED] * n_calls
    assert sorted(r.get("To") or "" for r in twilio.creates) == sorted(stored(aws, c).request["to"] for c in callids)
    times = sorted(r.at for r in twilio.creates)
    # and: in any one-second window at most `cps` requests (the busiest windows start at a request)
    busiest = max(sum(1 for t in times if start_ <= t < start_ + 1) for start_ in times)
    assert busiest <= cps, times
    # and: the backlog drains at 90 % of the limit or better, starting at once
    assert times[0] - START < 1 / cps
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert rate >= 0.9 * cps, (rate, times)


def test_pacers_racing_for_slots_each_get_their_own_in_at_most_two_writes(aws: Any) -> None:
    # given: eight placer containers (a pacer each) and every PacingTable write counted
    writes: list[str] = []
    hooks = aws_client("dynamodb").meta.events
    hooks.register("before-call.dynamodb.UpdateItem", lambda **_kw: writes.append("w"), unique_id="test-slot-writes")
    pacers = [DynamoPacer(aws.refs["PacingTable"], 2) for _ in range(8)]
    start = threading.Barrier(len(pacers), timeout=30)
    taken: list[float | None] = []

    def container(pacer: DynamoPacer) -> None:
        start.wait()
        for _ in range(5):  # a backlog: each takes five slots, all at the same moment
            taken.append(pacer.acquire(START, horizon=60))

    # when
    try:
        with atomic_dynamodb():
            threads = [threading.Thread(target=container, args=(p,)) for p in pacers]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
    finally:
        hooks.unregister("before-call.dynamodb.UpdateItem", unique_id="test-slot-writes")

    # then: forty distinct slots, one after the other from the current one
    interval = pacers[0].interval
    assert None not in taken
    slots = sorted(round(t / interval) for t in taken if t is not None)
    first = math.ceil(START / interval)
    assert slots == list(range(first, first + 40))
    # and: no race lost over and over: at most two writes a slot (one when the container saw the line right)
    assert len(writes) <= 2 * len(slots), len(writes)


def test_a_lone_call_takes_one_slot_even_when_its_claim_takes_a_while(aws: Any, account: AccountCredentials) -> None:
    # given: an idle line at 200 CPS (slots 5 ms apart), and a claim that takes 40 ms (a slow storage write)
    clock = FakeClock(START)
    twilio = FakeTwilio(clock=clock.now)
    placer = make_placer(aws, twilio, cps=200, clock=clock)
    callid = queue_call(aws, account)
    tables: list[str] = []

    def slow_claim(params: dict[str, Any], **_kwargs: Any) -> None:
        tables.append(params["TableName"])
        if params["TableName"] == aws.refs["CallsTable"]:
            clock.t += 0.040

    hooks = aws_client("dynamodb").meta.events
    hooks.register("provide-client-params.dynamodb.UpdateItem", slow_claim, unique_id="test-slow-claim")
    try:
        # when
        result = placer.place(callid)
    finally:
        hooks.unregister("provide-client-params.dynamodb.UpdateItem", unique_id="test-slow-claim")

    # then: placed in the slot it took first (that slot began late enough for the claim): one pacing write
    assert result.placement is Placement.PLACED
    assert tables.count(aws.refs["PacingTable"]) == 1
    assert len(twilio.creates) == 1


def test_placing_waits_for_its_slot_before_calling_the_carrier(aws: Any, account: AccountCredentials) -> None:
    # given: one placer and a backlog of three calls at 1 CPS
    clock = FakeClock(START)
    twilio = FakeTwilio(clock=clock.now)
    placer = make_placer(aws, twilio, cps=1, clock=clock)
    callids = [queue_call(aws, account, to=f"1713456700{n}") for n in range(3)]

    # when
    for callid in callids:
        placer.place(callid)

    # then: it slept until each slot, so the requests are a slot apart
    interval = 1 / HEADROOM  # the headroom below the account's CPS
    times = [r.at for r in twilio.creates]
    assert [round(b - a, 6) for a, b in itertools.pairwise(times)] == [round(interval, 6)] * 2
    assert all(s > 0 for s in clock.sleeps)


def test_no_free_slot_within_the_horizon_means_retry_later_without_claiming(
    aws: Any, account: AccountCredentials
) -> None:
    # given: every slot of the next two seconds taken by other placers
    clock = FakeClock(START)
    twilio = FakeTwilio(clock=clock.now)
    placer = make_placer(aws, twilio, cps=1, clock=clock)
    pacer = DynamoPacer(aws.refs["PacingTable"], 1)
    while pacer.acquire(START, horizon=2) is not None:
        pass
    callid = queue_call(aws, account)

    # when: the invocation has two seconds left for waiting
    result = placer.place(callid, horizon=2)

    # then: come back later; the call is still QUEUED and nothing was dialed
    assert result.placement is Placement.RETRY
    assert result.retry_after >= 1
    assert stored(aws, callid).status is CallStatus.QUEUED
    assert twilio.requests == []


def test_a_call_waiting_for_a_slot_is_marked_so_the_scheduler_does_not_resend_it(
    aws: Any, account: AccountCredentials
) -> None:
    # given: a backlog: no free slot for a long while
    clock = FakeClock(START)
    placer = make_placer(aws, FakeTwilio(clock=clock.now), cps=1, clock=clock)
    placer.pacer = _FullPacer()
    callid = queue_call(aws, account)
    grace = Timing().grace

    # when: its message keeps coming back, every 20 s, for 10 minutes
    versions = []
    for n in range(30):
        clock.t = START + 20 * n
        result = placer.place(callid, horizon=20)
        assert (result.placement, result.waiting) == (Placement.RETRY, True)
        call = stored(aws, callid)
        versions.append(call.version)
        # then: at every moment the scheduler sees a call that is waiting, not one that is lost
        now = datetime.fromtimestamp(clock.t + 20, UTC)
        assert next_step(call, now, now, Timing()) is Step.NOTHING, n
    # and: the wait was rewritten about once a minute, not at every return of the message
    assert 8 <= len(set(versions)) <= 12
    assert len(events(stored(aws, callid), "pacing.wait")) == len(set(versions))
    # and: had the placer stopped coming back, the scheduler re-sends it a grace after the last recorded wait
    last = stored(aws, callid)
    assert last.pacing_until is not None
    after = datetime.fromisoformat(last.pacing_until.replace("Z", "+00:00")) + timedelta(seconds=grace)
    assert next_step(last, after, after, Timing()) is Step.RESEND


class _FullPacer:
    """A carrier booked for longer than any invocation can wait (a backlog)."""

    late_after = LATE_AFTER
    listed_at: float | None = None  # the do-not-call mark: not known, so the claim looks the number up

    def acquire(self, now: float, horizon: float | None = None) -> float | None:
        return None


def test_waiting_for_a_slot_requeues_with_a_delay_instead_of_counting_towards_the_dlq(
    placer_module: ModuleType, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: no free carrier slot within the invocation
    placer_module.deps().placer.pacer = _FullPacer()
    callid = queue_call(aws, account)
    sent: list[dict[str, Any]] = []

    def spy(params: dict[str, Any], **_kwargs: Any) -> None:
        sent.append(dict(params))

    sqs_events = aws_client("sqs").meta.events
    sqs_events.register("provide-client-params.sqs.SendMessage", spy, unique_id="test-send-spy")
    try:
        # when: its message is delivered
        result, messages = place_queued(placer_module, aws)
    finally:
        sqs_events.unregister("provide-client-params.sqs.SendMessage", unique_id="test-send-spy")

    # then: the message succeeds (it is deleted, so its receive count never reaches the DLQ's limit) and a
    # fresh delayed copy takes its place; the call is still QUEUED and nothing was dialed
    assert failed_ids(result) == []
    assert stored(aws, callid).status is CallStatus.QUEUED
    assert twilio.creates == []
    assert len(sent) == 1
    assert sent[0]["QueueUrl"] == aws.refs["CallsQueue"]
    assert callid in sent[0]["MessageBody"]
    assert sent[0]["DelaySeconds"] >= 1
    assert messages[0]["Attributes"]["ApproximateReceiveCount"] == "1"
