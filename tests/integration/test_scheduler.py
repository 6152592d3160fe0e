"""Scheduled dispatch against moto: the window and DelaySeconds, races, crashes, scale, time zones, reconciliation.

Time is simulated: the scheduler, the placer and moto's SQS (delays and visibility) share one clock that the
tests move, so "the message becomes visible at 12:01:00" is checked exactly, with no sleeping. Calls are placed
by the real Placer with Twilio behind httpx.MockTransport; counting its create requests proves "dialed once".
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import boto3
import httpx
import pytest
from callbridge.adapters.dynamodb.accounts import DynamoAccountsStore
from callbridge.adapters.dynamodb.calls import DynamoCallsStore, shard_of
from callbridge.adapters.dynamodb.idempotency import DynamoIdempotency
from callbridge.adapters.dynamodb.ivr_menus import DynamoIvrMenus
from callbridge.adapters.sqs import SqsCallsQueue, SqsDeadLetters
from callbridge.domain.calls import Call, CallStatus, TimelineEvent, iso, moment, new_callid
from callbridge.domain.dispatch import CLAIM_AHEAD_SECONDS, DueKind, Timing
from callbridge.domain.errors import Conflict
from callbridge.domain.progress import apply_status_callback, flow_change
from callbridge.logic import calls as call_queries
from callbridge.logic.intake import Intake, accept_call
from callbridge.logic.placer import Placement, Placer, WebhookUrls
from callbridge.logic.scheduler import RunReport, Scheduler

from sandbox.template import load_template
from tests.conftest import AccountCredentials, ApiClient, LambdaContext, fresh_module, load_event, make_account
from tests.integration.fakes import ACCOUNT_SID, PUBLIC_API_URL, FakeTwilio, atomic_dynamodb, twilio_error

T0 = datetime(2027, 1, 10, 12, 0, 17, tzinfo=UTC)  # a rule firing: EventBridge never fires on second 0
# A delayed message is visible between these before its due time: whole seconds less the claim's margin.
EARLIEST = timedelta(seconds=1 + CLAIM_AHEAD_SECONDS)
LATEST = timedelta(seconds=CLAIM_AHEAD_SECONDS)
TIMING = Timing(grace=120, ringing_after=75, answered_after=120, max_interval=900)
PLAY = {"to": "17134567890", "answer_play": "https://example.com/hello.wav"}
FLOW_URL = re.compile(r"/carrier/twilio/([0-9a-f]+)/flow$")


# --- simulated time, shared by the scheduler, the placer and moto's SQS


class SimClock:
    def __init__(self, start: datetime) -> None:
        self.t = start.timestamp()

    def now(self) -> float:
        return self.t

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)

    def set(self, when: datetime) -> None:
        self.t = when.timestamp()

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def sim(aws: Any, monkeypatch: pytest.MonkeyPatch) -> SimClock:
    """The test's clock, also moto SQS's: DelaySeconds and visibility timeouts run on it."""
    import moto.sqs.models

    clock = SimClock(T0)
    monkeypatch.setattr(moto.sqs.models, "unix_time_millis", lambda: clock.now() * 1000)
    return clock


class InstantPacer:
    """A carrier slot is always free now (pacing has its own tests)."""

    late_after = 0.0
    listed_at: float | None = None  # the do-not-call mark: not known, so the claim looks the number up

    def acquire(self, now: float, horizon: float | None = None) -> float | None:
        return now


@dataclass
class Carrier:
    """Twilio behind MockTransport: creates from FakeTwilio, GET call answered from `calls` (else 404)."""

    sim: SimClock
    fake: FakeTwilio = field(init=False)
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    fetches: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.fake = FakeTwilio(self.sim.now)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        found = re.search(r"/Calls/(CA[0-9a-f]+)\.json$", request.url.path)
        if request.method == "GET" and found:
            self.fetches.append(found.group(1))
            body = self.calls.get(found.group(1))
            if body is None:
                return twilio_error(404, 20404, "The requested resource was not found")
            return httpx.Response(200, json={"sid": found.group(1), **body})
        return self.fake(request)

    def client(self) -> Any:
        """A TwilioClient on the simulated clock (a pacing slot's deadline is checked by the placer's clock)."""
        from callbridge.carrier.twilio import TwilioClient

        return TwilioClient(
            ACCOUNT_SID,
            "token",
            base_url="https://api.twilio.test",
            http=httpx.Client(transport=httpx.MockTransport(self)),
            now=self.sim.now,
        )

    def dialed(self) -> Counter[str]:
        """How many create-call requests the carrier got, per callid."""
        counts: Counter[str] = Counter()
        for request in self.fake.creates:
            match = FLOW_URL.search(request.get("Url") or "")
            assert match is not None
            counts[match.group(1)] += 1
        return counts


@dataclass
class World:
    """The stack, a scheduler and a placer on simulated time, and what was sent to CallsQueue."""

    stack: Any
    sim: SimClock
    carrier: Carrier
    store: DynamoCallsStore
    sqs: Any
    sent: list[dict[str, Any]] = field(default_factory=list)  # SendMessageBatch entries, in order
    received_at: dict[str, list[datetime]] = field(default_factory=dict)

    def scheduler(self, **overrides: Any) -> Scheduler:
        options: dict[str, Any] = {
            "calls": self.store,
            "index": self.store,
            "queue": SqsCallsQueue(self.stack.refs["CallsQueue"], sqs=self.sqs),
            "carrier": self.carrier.client,
            "dead_letters": SqsDeadLetters(self.stack.refs["CallsDeadLetterQueue"], sqs=self.sqs),
            "timing": TIMING,
            "lookahead": 90,
            "workers": 4,
            "senders": 2,
            "now": self.sim.now,
        }
        return Scheduler(**{**options, **overrides})

    def run(self, deadline: float | None = None, **overrides: Any) -> RunReport:
        return self.scheduler(**overrides).run(deadline=deadline)

    def placer(self) -> Placer:
        return Placer(
            calls=self.store,
            carrier=self.carrier.client(),
            pacer=InstantPacer(),
            urls=WebhookUrls(PUBLIC_API_URL),
            now=self.sim.now,
            sleep=self.sim.advance,  # waiting for a slot, or for a call_date, takes simulated time
        )

    def visible(self) -> list[dict[str, Any]]:
        """Receive every message visible now (each hidden for 10 minutes of simulated time)."""
        messages: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(
            QueueUrl=self.stack.refs["CallsQueue"], MaxNumberOfMessages=10, VisibilityTimeout=600
        ).get("Messages", []):
            messages.extend(batch)
        return messages

    def drain(self, placer: Placer | None = None) -> list[str]:
        """The placer handles every message visible now (then it is deleted); the callids, in order."""
        placer = placer or self.placer()
        seen = []
        for message in self.visible():
            callid = json.loads(message["Body"])["callid"]
            self.received_at.setdefault(callid, []).append(self.sim.at)
            placer.place(callid)
            self.sqs.delete_message(QueueUrl=self.stack.refs["CallsQueue"], ReceiptHandle=message["ReceiptHandle"])
            seen.append(callid)
        return seen

    def sent_ids(self) -> Counter[str]:
        return Counter(json.loads(e["MessageBody"])["callid"] for e in self.sent)

    def call(self, callid: str) -> Call:
        found = self.store.get(callid)
        assert found is not None
        return found


@pytest.fixture
def world(aws: Any, sim: SimClock) -> World:
    sqs = boto3.client("sqs")
    w = World(
        stack=aws,
        sim=sim,
        carrier=Carrier(sim),
        store=DynamoCallsStore(aws.refs["CallsTable"], schedule_shards=16, timing=TIMING),
        sqs=sqs,
    )

    def spy(params: dict[str, Any], **_kwargs: Any) -> None:
        w.sent.extend(dict(e) for e in params["Entries"])

    sqs.meta.events.register("provide-client-params.sqs.SendMessageBatch", spy)
    return w


def intake(world: World) -> Intake:
    return Intake(
        calls=world.store,
        accounts=DynamoAccountsStore(world.stack.refs["AccountsTable"]),
        idempotency=DynamoIdempotency(world.stack.refs["AccountsTable"]),
        menus=DynamoIvrMenus(world.stack.refs["AccountsTable"]),
        queue=SqsCallsQueue(world.stack.refs["CallsQueue"], sqs=world.sqs),
    )


def schedule(world: World, account: AccountCredentials, due: datetime, *, created: datetime | None = None) -> str:
    """POST /pcall/call with call_date (as ISO with Z), accepted at `created` (an hour before by default)."""
    created = created or due - timedelta(hours=1)
    params = {**PLAY, "call_date": iso(due)}
    return str(accept_call(params, account.account, intake(world), now=created).data["callid"])


def scheduled_calls(world: World, account: AccountCredentials, dues: list[datetime]) -> list[str]:
    """Many SCHEDULED calls, stored as intake stores them (in batches of 25, without its checks, for speed)."""
    calls = []
    for n, due in enumerate(dues):
        created = due - timedelta(hours=1)
        at = iso(created)
        calls.append(
            Call(
                callid=new_callid(created.timestamp() + n / 1000),
                account_id=account.api_key,
                status=CallStatus.SCHEDULED,
                created_at=at,
                updated_at=at,
                request={"to": "+17134567890", "answer_play": "https://example.com/hello.wav", "from": "+12815550100"},
                call_date=iso(due),
                timeline=[TimelineEvent(at=at, event="accepted", detail={"status": "SCHEDULED"})],
            )
        )
    db, table = boto3.client("dynamodb"), world.stack.refs["CallsTable"]
    for start in range(0, len(calls), 25):
        puts: list[Any] = [{"PutRequest": {"Item": world.store.call_item(c)}} for c in calls[start : start + 25]]
        assert not db.batch_write_item(RequestItems={table: puts}).get("UnprocessedItems")
    return [c.callid for c in calls]


def events(call: Call, name: str) -> list[dict[str, Any]]:
    return [e.detail for e in call.timeline if e.event == name]


def indexed(world: World, callid: str) -> bool:
    """Whether the call has an entry in the due index (any shard, any time)."""
    return any(entry.callid == callid for shard in world.store.shards for entry in world.store.due(shard, "9999"))


# --- the window and DelaySeconds


def test_calls_due_before_the_next_run_are_sent_with_the_time_left_and_start_on_the_second(
    world: World, account: AccountCredentials
) -> None:
    # given: calls due 10 s, 43 s and 89 s after this run, one at the window's end, one in ten minutes
    soon = {schedule(world, account, T0 + timedelta(seconds=s)): s for s in (10, 43, 89)}
    at_edge = schedule(world, account, T0 + timedelta(seconds=90))
    later = schedule(world, account, T0 + timedelta(minutes=10))

    # when
    report = world.run()

    # then: exactly the three are sent once, each with DelaySeconds = the time left less the claim's margin (whole
    # seconds), and stay SCHEDULED
    assert report.dispatched == 3
    sent = {json.loads(e["MessageBody"])["callid"]: e["DelaySeconds"] for e in world.sent}
    assert sent == {callid: seconds - 1 for callid, seconds in soon.items()}
    for callid in soon:
        assert world.call(callid).status is CallStatus.SCHEDULED
        assert world.call(callid).dispatched_at == iso(T0)
        assert events(world.call(callid), "dispatched") == [{"call_date": world.call(callid).call_date}]
    assert world.call(at_edge).status is CallStatus.SCHEDULED
    assert world.call(later).status is CallStatus.SCHEDULED

    # and: none is visible before its margin; each is there in time for its claim, held, and placed on its second
    for callid, seconds in sorted(soon.items(), key=lambda kv: kv[1]):
        world.sim.set(T0 + timedelta(seconds=seconds) - EARLIEST - timedelta(milliseconds=1))
        assert world.drain() == []
        world.sim.set(T0 + timedelta(seconds=seconds) - LATEST)
        assert world.drain() == [callid]
        created = events(world.call(callid), "carrier.created")
        assert created[0]["lateness_ms"] == 0
    assert world.carrier.dialed() == Counter(dict.fromkeys(soon, 1))


def test_the_stores_one_write_dispatch_is_the_domains_transition(world: World, account: AccountCredentials) -> None:
    from callbridge.domain.dispatch import dispatch

    callid = schedule(world, account, T0 + timedelta(seconds=30))
    before = world.call(callid)
    item_before = {k: v for k, v in world.store.call_item(before).items() if k.startswith(("due_", "scheduled_"))}

    world.run()

    after = world.call(callid)
    expected = dispatch(before, world.sim.at)
    assert expected is not None
    assert after.model_dump(exclude={"version"}) == expected.model_dump(exclude={"version"})
    assert after.version == before.version + 1
    raw = boto3.client("dynamodb").get_item(TableName=world.stack.refs["CallsTable"], Key={"callid": {"S": callid}})
    assert {k: v for k, v in raw["Item"].items() if k.startswith(("due_", "scheduled_"))} == item_before


def test_the_next_run_takes_the_next_minute_and_nothing_twice(world: World, account: AccountCredentials) -> None:
    dues = [T0 + timedelta(seconds=s) for s in (30, 80, 100, 140, 170)]
    ids = [schedule(world, account, due) for due in dues]

    first = world.run()
    world.sim.advance(60)
    second = world.run()

    assert (first.dispatched, second.dispatched) == (2, 2)
    assert world.sent_ids() == Counter(dict.fromkeys(ids[:4], 1))
    assert world.call(ids[4]).status is CallStatus.SCHEDULED
    # a dispatched call still due is looked at again, but not sent again before its grace
    assert second.resent == 0


def test_a_run_that_runs_out_of_time_leaves_the_rest_to_the_next(world: World, account: AccountCredentials) -> None:
    ids = [schedule(world, account, T0 + timedelta(seconds=30 + n)) for n in range(5)]

    late = world.run(deadline=world.sim.now())  # no time left at all
    on_time = world.run()

    assert (late.left, late.dispatched) == (5, 0)
    assert on_time.dispatched == 5
    assert world.sent_ids() == Counter(dict.fromkeys(ids, 1))


@pytest.mark.parametrize(("due_in", "placed_in", "lateness_ms"), [(30.4, 30.4, 0), (30.6, 30.6, 0), (30.0, 30.0, 0)])
def test_delays_are_whole_seconds_so_an_early_message_is_held_until_its_call_date(
    world: World, account: AccountCredentials, due_in: float, placed_in: float, lateness_ms: int
) -> None:
    # given: a call due at a fraction of a second, accepted now (due within 15 minutes: queued at once)
    callid = schedule(world, account, T0 + timedelta(seconds=due_in), created=T0)

    # when: its message comes on the whole second before (delays are rounded down) and the placer takes it then
    world.sim.set(T0 + timedelta(seconds=math.floor(due_in)))
    assert world.drain() == [callid]

    # then: held until its time: never placed early, nor late
    (created,) = world.carrier.fake.creates
    assert created.at == pytest.approx((T0 + timedelta(seconds=placed_in)).timestamp())
    assert events(world.call(callid), "carrier.created")[0]["lateness_ms"] == lateness_ms


def test_a_message_far_ahead_of_its_call_date_is_put_back_not_placed(world: World, account: AccountCredentials) -> None:
    callid = schedule(world, account, T0 + timedelta(minutes=5), created=T0)

    result = world.placer().place(callid)

    assert result.placement is Placement.RETRY
    assert result.retry_after == pytest.approx(300)
    assert world.call(callid).status is CallStatus.SCHEDULED
    assert world.carrier.fake.creates == []


# --- races: cancel, dispatch and claim; overlapping runs; a crash in the middle


def test_cancel_racing_dispatch_and_claim_never_dials_a_cancelled_call(
    world: World, account: AccountCredentials
) -> None:
    # given: 40 calls due now
    ids = scheduled_calls(world, account, [T0] * 40)
    start = threading.Barrier(3, timeout=60)  # a thread that dies before the start breaks it for the others
    run_done = threading.Event()
    conflicts: list[str] = []

    def cancel_all() -> None:
        start.wait()
        for callid in reversed(ids):
            try:
                call_queries.cancel_scheduled(world.store, account.account, callid, now=world.sim.at)
            except Conflict:
                conflicts.append(callid)

    def run() -> None:
        start.wait()
        try:
            world.run(workers=4)
        finally:
            run_done.set()  # a run that fails must not leave the placer's loop waiting forever

    def place() -> None:
        placer = world.placer()
        start.wait()
        while not run_done.is_set():
            world.drain(placer)
        world.drain(placer)

    # when: a run dispatches them while the owner cancels them and the placer claims what arrives
    with atomic_dynamodb():
        threads = [threading.Thread(target=f) for f in (cancel_all, run, place)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        world.drain()

    # then: each call is cancelled and never dialed, or was claimed first (its cancel is a 409) and dialed
    # once; nothing is both, and none is lost
    statuses = {callid: world.call(callid).status for callid in ids}
    dialed = world.carrier.dialed()
    canceled = {c for c, s in statuses.items() if s is CallStatus.CANCELED}
    assert canceled.isdisjoint(dialed)
    assert set(ids) == canceled | set(dialed)
    assert all(n == 1 for n in dialed.values())
    assert set(conflicts) == set(dialed)
    assert all(statuses[c] is CallStatus.DIALING for c in dialed)


def test_cancel_racing_the_placers_claim_of_a_queued_call(world: World, account: AccountCredentials) -> None:
    # given: calls accepted 5 minutes ahead: SCHEDULED, their messages already on the queue (delayed)
    ids = [schedule(world, account, T0 + timedelta(minutes=5), created=T0) for _ in range(15)]
    world.sim.advance(300)
    messages = world.visible()
    assert sorted(json.loads(m["Body"])["callid"] for m in messages) == sorted(ids)
    start = threading.Barrier(2)
    placer = world.placer()
    outcomes: dict[str, Placement] = {}

    def claim() -> None:
        start.wait()
        for callid in ids:
            outcomes[callid] = placer.place(callid).placement

    def cancel() -> None:
        start.wait()
        for callid in reversed(ids):
            with contextlib.suppress(Conflict):
                call_queries.cancel_scheduled(world.store, account.account, callid, now=world.sim.at)

    # when
    with atomic_dynamodb():
        threads = [threading.Thread(target=claim), threading.Thread(target=cancel)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    # then: each call ends one way: cancelled and skipped, or claimed and dialed once
    dialed = world.carrier.dialed()
    for callid in ids:
        status = world.call(callid).status
        if status is CallStatus.CANCELED:
            assert outcomes[callid] is Placement.SKIPPED
            assert callid not in dialed
        else:
            assert status is CallStatus.DIALING
            assert outcomes[callid] is Placement.PLACED
            assert dialed[callid] == 1


def test_two_overlapping_runs_send_each_call_and_the_placer_dials_it_once(
    world: World, account: AccountCredentials
) -> None:
    ids = scheduled_calls(world, account, [T0 + timedelta(seconds=20 + n % 60) for n in range(100)])
    start = threading.Barrier(2)
    reports: list[RunReport] = []

    def run() -> None:
        start.wait()
        reports.append(world.run(workers=4))

    with atomic_dynamodb():
        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    # then: each call was dispatched by exactly one of the runs, and sent at least once
    assert sum(r.dispatched for r in reports) == len(ids)
    assert set(world.sent_ids()) == set(ids)
    # and: the placer, handed every message (duplicates included), dials each call once
    world.sim.advance(90)
    world.drain()
    assert world.carrier.dialed() == Counter(dict.fromkeys(ids, 1))


class Crash(Exception):
    """The scheduler's container dies."""


def test_a_crash_between_the_writes_and_the_sends_is_repaired_by_a_later_run(
    world: World, account: AccountCredentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a run that dies as it starts sending, after its conditional writes
    ids = scheduled_calls(world, account, [T0 + timedelta(seconds=40)] * 25)

    def die(*_args: Any, **_kwargs: Any) -> list[str]:
        raise Crash

    with monkeypatch.context() as patch:
        patch.setattr(SqsCallsQueue, "send_calls", die)
        with pytest.raises(Crash):
            world.run()
    assert all(world.call(c).status is CallStatus.SCHEDULED and world.call(c).dispatched_at for c in ids)
    assert world.sent == []

    # when: the next runs come, once a minute
    world.sim.advance(60)  # due 40 s ago: within the grace, nothing re-sent yet
    assert world.run().resent == 0
    world.sim.set(T0 + timedelta(seconds=40 + 120))  # past the grace
    repaired = world.run()

    # then: all are sent once and placed once, 2 minutes late (the cost of a crash)
    assert repaired.resent == 25
    assert world.sent_ids() == Counter(dict.fromkeys(ids, 1))
    assert sorted(world.drain()) == sorted(ids)
    assert world.carrier.dialed() == Counter(dict.fromkeys(ids, 1))
    assert events(world.call(ids[0]), "requeued") == [{"attempt": 1, "unclaimed_seconds": 120}]
    # and: the claimed calls are not sent again
    world.sim.advance(100)
    assert world.run().resent == 0


def test_a_queue_outage_during_the_sends_is_reported_and_repaired(
    world: World, account: AccountCredentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    ids = scheduled_calls(world, account, [T0 + timedelta(seconds=40)] * 12)
    original = world.sqs.send_message_batch

    def unavailable(**_kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "SendMessageBatch")

    monkeypatch.setattr(world.sqs, "send_message_batch", unavailable)
    report = world.run()
    monkeypatch.setattr(world.sqs, "send_message_batch", original)

    assert (report.dispatched, report.send_failures) == (12, 12)
    world.sim.set(T0 + timedelta(seconds=160))
    assert world.run().resent == 12
    assert sorted(world.drain()) == sorted(ids)


def test_an_immediate_call_whose_send_failed_in_the_api_is_sent_by_the_scheduler(
    world: World, account: AccountCredentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    from callbridge.domain.errors import ServiceUnavailable

    def down(*_args: Any, **_kwargs: Any) -> None:
        raise ServiceUnavailable("calls queue unavailable")

    monkeypatch.setattr(SqsCallsQueue, "send_call", down)
    with pytest.raises(ServiceUnavailable):
        accept_call(PLAY, account.account, intake(world), now=T0)
    monkeypatch.undo()
    (callid,) = [c.callid for c in world.store.list_calls(_query(account)).calls]

    world.sim.advance(119)
    assert world.run().resent == 0
    world.sim.advance(60)
    assert world.run().resent == 1
    assert world.drain() == [callid]
    assert world.carrier.dialed() == Counter({callid: 1})


def _query(account: AccountCredentials) -> Any:
    from callbridge.ports import CallQuery

    return CallQuery(account_id=account.api_key)


# --- scale


LARGE = 2000  # sized for CI: about 20-40 s here (see the README's capacity math for 10,000)


def test_a_large_due_set_is_dispatched_once_each_none_skipped(world: World, account: AccountCredentials) -> None:
    # given: 2,000 calls due within the same minute, spread over the 16 shards
    dues = [T0 + timedelta(seconds=20 + (n * 37) % 60, milliseconds=n % 1000) for n in range(LARGE)]
    ids = scheduled_calls(world, account, dues)
    assert len({shard_of(c, 16) for c in ids}) == 16

    # when: one run
    report = world.run(workers=8, senders=4)

    # then: each is dispatched and sent exactly once, in batches of at most 10, each with its own delay
    assert (report.due, report.dispatched, report.send_failures, report.errors, report.left) == (LARGE, LARGE, 0, 0, 0)
    assert world.sent_ids() == Counter(dict.fromkeys(ids, 1))
    due_of = dict(zip(ids, dues, strict=True))
    for entry in world.sent:
        due = due_of[json.loads(entry["MessageBody"])["callid"]]
        visible_at = T0 + timedelta(seconds=entry["DelaySeconds"])
        assert due - EARLIEST < visible_at <= due - LATEST  # in time for its claim (the placer holds it until due)
    # and: SQS holds all of them (delayed), and every call is still SCHEDULED (until a placer claims it)
    attributes = world.sqs.get_queue_attributes(QueueUrl=world.stack.refs["CallsQueue"], AttributeNames=["All"])
    assert int(attributes["Attributes"]["ApproximateNumberOfMessagesDelayed"]) == LARGE
    pages = (
        boto3.client("dynamodb")
        .get_paginator("scan")
        .paginate(
            TableName=world.stack.refs["CallsTable"],
            ProjectionExpression="#s",
            ExpressionAttributeNames={"#s": "status"},
        )
    )
    assert Counter(i["status"]["S"] for page in pages for i in page["Items"]) == Counter({"SCHEDULED": LARGE})


# --- time zones, daylight saving included


@pytest.fixture
def api_at(aws: Any, sim: SimClock, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The api handler, on the simulated clock."""
    module = fresh_module("functions.api.app", aws.environment("ApiFunction"))
    monkeypatch.setattr(module, "_now", lambda: sim.at)
    return module


def new_york(api_module: ModuleType, accounts_store: Any) -> ApiClient:
    account = make_account(accounts_store, caller_id="12125550100", timezone="America/New_York")
    return ApiClient(api_module, auth=(account.api_key, account.password))


@pytest.mark.parametrize(
    ("call_date", "timezone", "utc"),
    [
        # America/New_York, 2027-11-07: 02:00 EDT → 01:00 EST; 01:30 happens twice, the first is meant
        ("2027-11-07 01:30", None, datetime(2027, 11, 7, 5, 30, tzinfo=UTC)),
        # America/New_York, 2027-03-14: 02:00 EST → 03:00 EDT
        ("2027-03-14 03:30", None, datetime(2027, 3, 14, 7, 30, tzinfo=UTC)),
        ("2027-03-14 01:59", None, datetime(2027, 3, 14, 6, 59, tzinfo=UTC)),
        # the request's zone wins over the account's: Europe/London, 2027-10-31 02:00 BST → 01:00 GMT
        ("2027-10-31 01:30", "Europe/London", datetime(2027, 10, 31, 0, 30, tzinfo=UTC)),
    ],
)
def test_call_dates_around_daylight_saving_changes_start_at_the_right_instant(
    world: World,
    api_at: ModuleType,
    accounts_store: Any,
    call_date: str,
    timezone: str | None,
    utc: datetime,
) -> None:
    # given: accepted the day before, in the account's (or the request's) zone
    world.sim.set(utc - timedelta(days=1))
    client = new_york(api_at, accounts_store)
    params = {**PLAY, "call_date": call_date, **({"timezone": timezone} if timezone else {})}
    response = client.post_call(params)
    assert response.status == 200, response.body
    callid = response.data["callid"]
    assert world.call(callid).call_date == iso(utc)

    # when: the rule fires 43 s before, then the queue delivers
    world.sim.set(utc - timedelta(seconds=43))
    assert world.run().dispatched == 1
    world.sim.set(utc - EARLIEST - timedelta(milliseconds=1))
    assert world.drain() == []
    world.sim.set(utc - LATEST)

    # then: held, and placed on the second
    assert world.drain() == [callid]
    assert events(world.call(callid), "carrier.created")[0]["lateness_ms"] == 0
    assert world.carrier.fake.creates[0].at == utc.timestamp()


@pytest.mark.parametrize(("call_date", "timezone"), [("2027-03-14 02:30", None), ("2027-03-28 01:30", "Europe/London")])
def test_a_wall_clock_time_skipped_by_daylight_saving_is_refused(
    world: World, api_at: ModuleType, accounts_store: Any, call_date: str, timezone: str | None
) -> None:
    world.sim.set(datetime(2027, 3, 1, tzinfo=UTC))
    client = new_york(api_at, accounts_store)

    response = client.post_call({**PLAY, "call_date": call_date, **({"timezone": timezone} if timezone else {})})

    assert response.status == 400
    assert response.data["errors"][0]["field"] == "call_date"
    assert "skipped by a daylight-saving change" in response.data["errors"][0]["message"]
    assert world.run().due == 0


# --- the intake shortcut: due within 15 minutes


def test_a_call_due_within_15_minutes_goes_straight_to_the_queue_and_stays_listed_and_cancellable(
    world: World, api_at: ModuleType, account: AccountCredentials
) -> None:
    client = ApiClient(api_at, auth=(account.api_key, account.password))
    # given: one call due in 10 minutes (queued at once, delayed), one tomorrow (scheduled), one immediate
    soon = client.post_call({**PLAY, "call_date": iso(T0 + timedelta(minutes=10))}).data["callid"]
    tomorrow = client.post_call({**PLAY, "call_date": iso(T0 + timedelta(days=1))}).data["callid"]
    now = client.post_call(PLAY).data["callid"]

    # then: both dated calls read SCHEDULED, the soon one already sent with its delay, and are listed in
    # call_date order
    assert (world.call(soon).status, world.call(soon).dispatched_at) == (CallStatus.SCHEDULED, iso(T0))
    assert (world.call(tomorrow).status, world.call(tomorrow).dispatched_at) == (CallStatus.SCHEDULED, None)
    listed = client.get("/pcall/scheduled").data["calls"]
    assert [(c["callid"], c["status"]) for c in listed] == [(soon, "SCHEDULED"), (tomorrow, "SCHEDULED")]
    assert world.drain() == [now]
    world.sim.set(T0 + timedelta(minutes=10) - EARLIEST - timedelta(milliseconds=1))
    assert world.drain() == []

    # when: it is cancelled before its time (an immediate call cannot be: it has started)
    assert client.delete(f"/pcall/scheduled/{now}").status == 409
    cancel = client.delete(f"/pcall/scheduled/{soon}")

    # then: the placer skips its message when it arrives
    assert cancel.status == 200, cancel.body
    assert cancel.data["status"] == "CANCELED"
    world.sim.set(T0 + timedelta(minutes=10))
    assert world.drain() == [soon]
    assert world.call(soon).status is CallStatus.CANCELED
    assert world.carrier.dialed() == Counter({now: 1})
    assert [c["callid"] for c in client.get("/pcall/scheduled").data["calls"]] == [tomorrow]


# --- reconciliation


def dialing(world: World, account: AccountCredentials, *, ago: float) -> Call:
    """A call the placer claimed and placed `ago` seconds before now (no callback since)."""
    world.sim.advance(-ago)
    callid = str(accept_call(PLAY, account.account, intake(world), now=world.sim.at).data["callid"])
    assert world.drain() == [callid]
    world.sim.advance(ago)
    call = world.call(callid)
    assert call.status is CallStatus.DIALING
    assert call.carrier_call_id
    return call


def carrier_answer(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "status": status,
        "duration": None,
        "answered_by": None,
        "start_time": "Sun, 10 Jan 2027 11:56:00 +0000",
        "end_time": None,
        **extra,
    }


@pytest.mark.parametrize(
    ("answer", "status", "answered_by", "billed"),
    [
        (
            carrier_answer("completed", duration="42", answered_by="human", end_time="Sun, 10 Jan 2027 11:57:00 +0000"),
            CallStatus.COMPLETED,
            "Person",
            42,
        ),
        (carrier_answer("busy", duration="0"), CallStatus.BUSY, "", 0),
        (carrier_answer("no-answer", duration="0"), CallStatus.NO_ANSWER, "", 0),
        (carrier_answer("completed", duration="7", answered_by="machine_end_beep"), CallStatus.COMPLETED, "Machine", 7),
    ],
)
def test_a_call_stuck_past_its_ring_window_is_finalized_from_the_carriers_answer(
    world: World, account: AccountCredentials, answer: dict[str, Any], status: CallStatus, answered_by: str, billed: int
) -> None:
    # given: dialed 76 s ago (looked up 75 s after its dialing: its ring timeout and a margin), no callback since
    call = dialing(world, account, ago=76)
    world.carrier.calls[call.carrier_call_id or ""] = answer

    # when
    report = world.run()

    # then
    assert world.carrier.fetches == [call.carrier_call_id]
    assert report.reconciled == 1
    done = world.call(call.callid)
    assert (done.status, done.answered_by, done.billed_seconds) == (status, answered_by, billed)
    assert events(done, "reconciled")[-1]["carrier_status"] == answer["status"]
    assert not indexed(world, done.callid)  # final: out of the due index


def test_an_answered_call_whose_final_callback_was_lost_is_finalized_two_minutes_after_its_answer(
    world: World, account: AccountCredentials
) -> None:
    # given: answered 10 s after dialing; it ended 30 s later, but that final callback was lost
    call = dialing(world, account, ago=40)
    answered = {"CallSid": call.carrier_call_id or "", "CallStatus": "in-progress", "AnsweredBy": "human"}
    world.store.update(
        call.callid, lambda c: apply_status_callback(c, answered, iso(world.sim.at - timedelta(seconds=30)))
    )
    world.carrier.calls[call.carrier_call_id or ""] = carrier_answer(
        "completed", duration="30", answered_by="human", end_time="Sun, 10 Jan 2027 12:00:17 +0000"
    )

    # when: runs come once a minute
    world.sim.advance(60)  # 90 s after the answer: not yet
    assert world.run().reconciled == 0
    world.sim.advance(60)  # 150 s after the answer: asked, and final
    assert world.run().reconciled == 1

    # then: the outcome a callback would have given, minutes after the call's end instead of hours
    done = world.call(call.callid)
    assert (done.status, done.answered_by, done.billed_seconds) == (CallStatus.COMPLETED, "Person", 30)
    assert world.carrier.fetches == [call.carrier_call_id]


def entries(world: World, callid: str) -> list[str]:
    """The call's places in the due index (at most one)."""
    return [e.due for shard in world.store.shards for e in world.store.due(shard, "9999") if e.callid == callid]


def test_an_answer_keeps_the_dialings_place_and_the_call_is_asked_about_two_minutes_after_its_answer(
    world: World, account: AccountCredentials
) -> None:
    # given: dialed now; the flow request 50 s later (a long ring) marks it answered and writes no index entry
    call = dialing(world, account, ago=0)
    dialed = moment(call.dialed_at or "")
    world.sim.advance(50)
    held, answered = world.store.apply(call.callid, flow_change({"AnsweredBy": "human"}, iso(world.sim.at)))
    assert held
    assert answered is not None
    assert answered.status is CallStatus.IN_PROGRESS
    assert entries(world, call.callid) == [iso(dialed + timedelta(seconds=75))]
    world.carrier.calls[call.carrier_call_id or ""] = carrier_answer(
        "completed", duration="30", answered_by="human", end_time="Sun, 10 Jan 2027 12:02:00 +0000"
    )

    # when: runs come once a minute; the first finds it past its place, needing nothing within its window
    world.sim.advance(26)
    assert world.run().reconciled == 0
    # then: not asked, and moved to two minutes after the answer
    assert world.carrier.fetches == []
    answer_look_up = moment(answered.answered_at or "") + timedelta(seconds=120)
    assert entries(world, call.callid) == [iso(answer_look_up)]
    world.sim.advance(60)  # still before it
    assert world.run().reconciled == 0
    world.sim.advance(60)  # past it: asked, and final
    assert world.run().reconciled == 1

    done = world.call(call.callid)
    assert (done.status, done.billed_seconds) == (CallStatus.COMPLETED, 30)
    assert world.carrier.fetches == [call.carrier_call_id]
    assert entries(world, call.callid) == []


def test_a_call_within_its_ring_window_is_not_asked_about(world: World, account: AccountCredentials) -> None:
    dialing(world, account, ago=70)

    report = world.run()

    assert world.carrier.fetches == []
    assert report.reconciled == 0


def counted_store(world: World) -> tuple[DynamoCallsStore, list[str]]:
    """A store on its own DynamoDB client, and the operations of every request it makes from now on."""
    db = boto3.client("dynamodb")
    operations: list[str] = []
    db.meta.events.register("before-call.dynamodb", lambda model, **_: operations.append(model.name))
    return DynamoCallsStore(world.stack.refs["CallsTable"], schedule_shards=16, timing=TIMING, dynamodb=db), operations


def test_a_run_during_a_call_in_flight_makes_no_request_for_it_before_its_time(
    world: World, account: AccountCredentials
) -> None:
    # given: dialed 30 s ago: its entry (the dialing + 75 s) is inside the run's 90-s window, not past due
    call = dialing(world, account, ago=30)
    store, operations = counted_store(world)
    assert [e.kind for s in store.shards for e in store.due(s, "9999") if e.callid == call.callid] == [DueKind.AT]
    operations.clear()

    # when
    report = world.run(calls=store, index=store)

    # then: found, and left without a request (no failed dispatch write, no read): only the shards' queries
    assert report.due == 1
    assert operations == ["Query"] * len(store.shards)
    assert world.call(call.callid).version == call.version
    assert world.carrier.fetches == []

    # and: once its time has come, it is asked about as before
    world.carrier.calls[call.carrier_call_id or ""] = carrier_answer("busy", duration="0")
    world.sim.advance(46)
    assert world.run(calls=store, index=store).reconciled == 1
    assert world.call(call.callid).status is CallStatus.BUSY


def test_an_entry_written_before_kinds_is_handled_as_before(world: World, account: AccountCredentials) -> None:
    # given: a call in flight whose entry has the form every entry had before kinds (no kind after the callid)
    call = dialing(world, account, ago=30)
    db = boto3.client("dynamodb")
    key = {"callid": {"S": call.callid}}
    old = f"{iso(moment(call.dialed_at or '') + timedelta(seconds=75))}#{call.callid}"
    db.update_item(
        TableName=world.stack.refs["CallsTable"],
        Key=key,
        UpdateExpression="SET due_key = :old",
        ExpressionAttributeValues={":old": {"S": old}},
    )
    store, operations = counted_store(world)

    # when
    report = world.run(calls=store, index=store)

    # then: taken for a call to dispatch ahead, as every entry was: one conditional write that does not hold
    assert report.due == 1
    assert report.dispatched == 0
    assert operations.count("UpdateItem") == 1
    assert world.call(call.callid).version == call.version
    assert db.get_item(TableName=world.stack.refs["CallsTable"], Key=key)["Item"]["due_key"]["S"] == old

    # and: once its time has come, it is asked about and finalized
    world.carrier.calls[call.carrier_call_id or ""] = carrier_answer("busy", duration="0")
    world.sim.advance(46)
    assert world.run(calls=store, index=store).reconciled == 1
    assert world.call(call.callid).status is CallStatus.BUSY
    assert not indexed(world, call.callid)


def test_a_call_the_carrier_has_no_record_of_fails_with_that_reason(world: World, account: AccountCredentials) -> None:
    call = dialing(world, account, ago=200)  # no scripted answer: the carrier answers 404

    assert world.run().reconciled == 1

    done = world.call(call.callid)
    assert done.status is CallStatus.FAILED
    assert done.error_code == "carrier_no_record"
    assert done.error_desc == "carrier has no record of this call"


def test_a_call_still_live_at_the_carrier_is_moved_on_and_asked_again_later(
    world: World, account: AccountCredentials
) -> None:
    call = dialing(world, account, ago=200)
    world.carrier.calls[call.carrier_call_id or ""] = carrier_answer("in-progress")

    world.run()
    live = world.call(call.callid)
    world.sim.advance(60)
    world.run()

    assert live.status is CallStatus.IN_PROGRESS
    assert live.answered_at == "2027-01-10T11:56:00.000Z"
    assert world.carrier.fetches == [call.carrier_call_id]  # not asked again a minute later


def test_a_dialing_call_without_a_carrier_call_id_fails_as_never_placed(
    world: World, account: AccountCredentials
) -> None:
    # given: the placer claimed it and died before the carrier request (no carrier id, no callback)
    callid = str(accept_call(PLAY, account.account, intake(world), now=world.sim.at).data["callid"])
    world.store.update(
        callid,
        lambda c: c.model_copy(
            update={"status": CallStatus.DIALING, "dialed_at": iso(world.sim.at), "claim_token": "t"}
        ).with_event(iso(world.sim.at), "dialing", claim="t"),
    )

    world.sim.advance(74)
    assert world.run().reconciled == 0
    world.sim.advance(2)
    assert world.run().reconciled == 1

    done = world.call(callid)
    assert done.status is CallStatus.FAILED
    assert done.error_code == "never_placed"
    assert done.error_desc is not None
    assert done.error_desc.startswith("never placed:")
    assert world.carrier.fetches == []
    assert world.carrier.dialed() == Counter()  # never dialed again


def test_a_queued_call_whose_message_went_to_the_dead_letter_queue_fails(
    world: World, account: AccountCredentials
) -> None:
    # given: the queue gave up on one call; another one's stale message is there too, and a foreign message
    placed = dialing(world, account, ago=1).callid
    dead = str(accept_call(PLAY, account.account, intake(world), now=world.sim.at).data["callid"])
    dlq = world.stack.refs["CallsDeadLetterQueue"]
    for body in ({"callid": dead}, {"callid": placed}, {"account_id": "cb_x", "params": {}}):
        world.sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps(body))

    # when
    report = world.run()

    # then: the queued one is FAILED with the reason; the placed one is untouched; ours are deleted
    assert report.dead_lettered == 1
    failed = world.call(dead)
    assert failed.status is CallStatus.FAILED
    assert failed.error_code == "dead_letter"
    assert "dead-letter queue" in (failed.error_desc or "")
    assert world.call(placed).status is CallStatus.DIALING
    world.sim.advance(3600)
    left = world.sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])
    assert [json.loads(m["Body"]) for m in left] == [{"account_id": "cb_x", "params": {}}]


# --- the handler


def test_the_handler_runs_on_the_rules_event_and_reports_metrics(
    aws: Any, account: AccountCredentials, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: a call due in 30 s of real time (the handler runs on the real clock)
    store = DynamoCallsStore(aws.refs["CallsTable"])
    now = datetime.now(UTC)
    callid = new_callid()
    store.create(
        Call(
            callid=callid,
            account_id=account.api_key,
            status=CallStatus.SCHEDULED,
            created_at=iso(now),
            updated_at=iso(now),
            request=dict(PLAY),
            call_date=iso(now + timedelta(seconds=30)),
        )
    )
    module = fresh_module("functions.scheduler.app", aws.environment("SchedulerFunction"))

    # with the whole of its template Timeout ahead of it, as the schedule invokes it
    timeout = load_template()["Resources"]["SchedulerFunction"]["Properties"]["Timeout"]
    report = module.lambda_handler(
        load_event("scheduler_schedule.json"), LambdaContext(remaining_ms=int(timeout) * 1000)
    )

    assert report["dispatched"] == 1
    assert store.get(callid).dispatched_at is not None  # type: ignore[union-attr]
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert any(m.get("CallsDispatched") == [1.0] for m in metrics)
