"""Outcome callbacks end to end against moto: real CallsTable writes → the table's stream → the notifier's
handler → a receiver on 127.0.0.1; retries through NotificationsQueue; the DLQ after 24 hours.

The stream is read with boto3's dynamodbstreams client and handed to the handler the way Lambda does,
retrying a batch that fails or reports failed records. Time is a fake clock; nothing sleeps.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import http.server
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs

import boto3
import pytest
from callbridge.adapters.aws import client
from callbridge.adapters.calls_stream import call_images
from callbridge.adapters.dynamodb.calls import DynamoCallsStore
from callbridge.domain.calls import Call, CallStatus
from callbridge.domain.errors import ServiceUnavailable
from callbridge.domain.notifications import RETRY_FOR_SECONDS, Retry, is_final_transition
from callbridge.domain.progress import apply_status_callback

from sandbox.template import load_template
from tests.conftest import AccountCredentials, ApiClient, LambdaContext, fresh_module, load_event

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])
MINIMAL = {"to": "12812345670", "answer_play": "http://example.com/file.wav"}


# --- a customer's receiver, on 127.0.0.1


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def fields(self) -> dict[str, str]:
        """The body as PHP's $_POST would see it."""
        parsed = parse_qs(self.body.decode("ascii"), keep_blank_values=True, strict_parsing=True)
        assert all(len(v) == 1 for v in parsed.values())
        return {k: v[0] for k, v in parsed.items()}


class Receiver:
    """Answers 200 under /ok/, 500 under /fail/."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append(Received(self.path, dict(self.headers), body))
                self.send_response(500 if self.path.startswith("/fail/") else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.server.shutdown()
    server.server.server_close()


# --- Lambda's side: the stream, the queue, time


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Crash(BaseException):
    """The function dies (timeout, out of memory): no per-record handling catches it."""


class Stream:
    """CallsTable's stream from now on, read like Lambda's event source mapping reads it."""

    def __init__(self, stack: Any) -> None:
        self.arn = stack.attrs[("CallsTable", "StreamArn")]
        self.streams = boto3.client("dynamodbstreams")
        shards = self.streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]
        self.iterators = {
            s["ShardId"]: self.streams.get_shard_iterator(
                StreamArn=self.arn, ShardId=s["ShardId"], ShardIteratorType="LATEST"
            )["ShardIterator"]
            for s in shards
        }

    def take(self) -> list[dict[str, Any]]:
        """The records written since the last take, as Lambda hands them to the function."""
        records = []
        for shard, iterator in self.iterators.items():
            response = self.streams.get_records(ShardIterator=iterator)
            self.iterators[shard] = response["NextShardIterator"]
            for record in response["Records"]:
                change = dict(record["dynamodb"])
                change["ApproximateCreationDateTime"] = change["ApproximateCreationDateTime"].timestamp()
                records.append({**record, "dynamodb": change, "eventSourceARN": self.arn})
        return records


@dataclass
class Invocation:
    crashed: bool
    failures: list[str]


def deliver_stream(module: ModuleType, records: list[dict[str, Any]], tries: int = 5) -> list[Invocation]:
    """Invoke the handler with a stream batch until it succeeds, as Lambda does: a crashed invocation
    is retried whole; reported failures are retried from the lowest failed sequence number."""
    invocations: list[Invocation] = []
    pending = records
    while pending and len(invocations) < tries:
        try:
            response = module.lambda_handler({"Records": pending}, LambdaContext())
        except Crash:
            invocations.append(Invocation(crashed=True, failures=[]))
            continue
        failures = [f["itemIdentifier"] for f in response["batchItemFailures"]]
        invocations.append(Invocation(crashed=False, failures=failures))
        first = min((int(f) for f in failures), default=None)
        pending = [r for r in pending if first is not None and int(r["dynamodb"]["SequenceNumber"]) >= first]
    return invocations


def sqs_event(stack: Any, bodies: list[str]) -> dict[str, Any]:
    """NotificationsQueue messages as Lambda hands them over (shaped like events/notifier_retry.json)."""
    sample = load_event("notifier_retry.json")["Records"][0]
    records = []
    for body in bodies:
        record = copy.deepcopy(sample)
        record.update(
            messageId=str(uuid.uuid4()),
            receiptHandle=str(uuid.uuid4()),
            body=body,
            md5OfBody=hashlib.md5(body.encode()).hexdigest(),  # noqa: S324 - SQS's own checksum
            eventSourceARN=stack.attrs[("NotificationsQueue", "Arn")],
        )
        records.append(record)
    return {"Records": records}


class Sent:
    """Every SendMessage the handlers make (DelaySeconds included), seen through botocore's event hooks."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def __call__(self, params: dict[str, Any], **_kwargs: Any) -> None:
        self.messages.append(dict(params))

    def to(self, url: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["QueueUrl"] == url]


@pytest.fixture
def sent() -> Iterator[Sent]:
    spy = Sent()
    events = client("sqs").meta.events
    events.register("provide-client-params.sqs.SendMessage", spy)
    yield spy
    events.unregister("provide-client-params.sqs.SendMessage", spy)


@pytest.fixture
def loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox's setting: callback_url may point at this machine."""
    monkeypatch.setenv("CALLBACK_ALLOW_LOOPBACK", "true")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def notifier(aws: Any, loopback: None, clock: FakeClock) -> ModuleType:
    module = fresh_module("functions.notifier.app", aws.environment("NotifierFunction"))
    notify = module.deps().notifier
    notify.now = clock
    notify.rng = lambda: 1.0  # the top of each jitter window: the schedule's ceiling
    return module


@pytest.fixture
def stream(aws: Any) -> Stream:
    return Stream(aws)


# --- calls, written the way the API and the webhooks write them


def place(api: ApiClient, callback_url: str, **params: str) -> str:
    response = api.post_call({**MINIMAL, "callback_url": callback_url, **params})
    assert response.status == 200, response.body
    return str(response.data["callid"])


def carrier_says(aws: Any, callid: str, status: str, **params: str) -> Call:
    """A carrier status callback applied as the webhooks function applies it."""
    at = datetime.now(UTC)
    callback = {"CallStatus": status, "Timestamp": format_datetime(at, usegmt=True), **params}
    stored = DynamoCallsStore(aws.refs["CallsTable"]).update(
        callid, lambda c: apply_status_callback(c, callback, at.isoformat())
    )
    assert stored is not None
    return stored


def answer_and_hang_up(aws: Any, callid: str, seconds: int = 27) -> Call:
    carrier_says(aws, callid, "in-progress", AnsweredBy="human")
    return carrier_says(aws, callid, "completed", CallDuration=str(seconds))


def verify_signature(secret: str, header: str, body: bytes, now: float) -> bool:
    """An independent check, as a receiver would write it from the README."""
    parts = dict(p.split("=", 1) for p in header.split(","))
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(now - int(parts["t"])) <= 300


def attempts(api: ApiClient, callid: str) -> list[dict[str, Any]]:
    """The delivery attempts on the call's timeline, as GET /pcall/calls/{callid} shows them."""
    response = api.get(f"/pcall/calls/{callid}")
    assert response.status == 200, response.body
    return [e for e in response.data["call"]["timeline"] if e["event"] == "callback"]


# --- tests


def test_a_finished_call_is_delivered_once_with_every_field_and_a_valid_signature(
    api: ApiClient, account: AccountCredentials, aws: Any, notifier: ModuleType, stream: Stream, receiver: Receiver
) -> None:
    callid = place(api, receiver.url("/ok/outcome.php"), **{"from": "12815550111"})
    finished = answer_and_hang_up(aws, callid)

    invocations = deliver_stream(notifier, stream.take())

    assert invocations == [Invocation(crashed=False, failures=[])]
    (request,) = receiver.received
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.headers["X-Callbridge-Event-Id"] == f"{callid}.COMPLETED"
    clock_now = notifier.deps().notifier.now()
    assert verify_signature(
        account.account.webhook_secret, request.headers["X-Callbridge-Signature"], request.body, clock_now
    )
    assert request.fields == {
        "event_id": f"{callid}.COMPLETED",
        "callid": callid,
        "status": "COMPLETED",
        "answered_by": "Person",
        "billed_seconds": "27",
        "from": "12815550111",
        "to": "12812345670",
        "call_date": "",
        "started_at": finished.started_at,
        "answered_at": finished.answered_at,
        "ended_at": finished.ended_at,
        "recording_url": "",
        "digits": "",
        "sms_status": "",
        "error_code": "",
        "error_desc": "",
        "campaign": "",  # not a campaign's call
        "attempts": "1",
        "metadata": "",
    }
    (attempt,) = attempts(api, callid)
    assert attempt["detail"] == {
        "event_id": f"{callid}.COMPLETED",
        "attempt": 1,
        "status_code": 200,
        "result": "delivered",
    }

    # A later write to the finished call (a late recording callback, the attempt itself) notifies no more.
    carrier_says(aws, callid, "completed", RecordingUrl="https://api.twilio.com/Recordings/RE1")
    later = stream.take()
    assert later  # the attempt's own timeline write and the recording both reached the stream
    deliver_stream(notifier, later)
    assert len(receiver.received) == 1


def test_a_crash_between_the_outcome_write_and_the_delivery_still_delivers(
    api: ApiClient, aws: Any, notifier: ModuleType, stream: Stream, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    callid = place(api, receiver.url("/ok/crash"))

    # The writer of the outcome dies right after its write: nothing of it sends anything.
    def webhook_that_dies() -> None:
        answer_and_hang_up(aws, callid)
        raise Crash

    with pytest.raises(Crash):
        webhook_that_dies()
    # And the notifier's first invocation dies after reading the change, before sending it.
    sender = notifier.deps().notifier.sender
    real_send, calls = sender.send, []

    def dies_once(*args: Any, **kwargs: Any) -> int:
        calls.append(args[0])
        if len(calls) == 1:
            raise Crash
        return int(real_send(*args, **kwargs))

    monkeypatch.setattr(sender, "send", dies_once)

    invocations = deliver_stream(notifier, stream.take())

    assert [i.crashed for i in invocations] == [True, False]
    assert invocations[-1].failures == []
    (request,) = receiver.received
    assert request.fields["callid"] == callid
    assert request.fields["status"] == "COMPLETED"
    assert [a["detail"]["result"] for a in attempts(api, callid)] == ["delivered"]


def test_when_the_retry_cannot_be_queued_the_stream_record_fails_and_is_retried(
    api: ApiClient,
    aws: Any,
    notifier: ModuleType,
    stream: Stream,
    receiver: Receiver,
    sent: Sent,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failing = place(api, receiver.url("/fail/queue-down"))
    working = place(api, receiver.url("/ok/queue-down"))
    answer_and_hang_up(aws, failing)
    answer_and_hang_up(aws, working)
    queue = notifier.deps().notifier.queue
    real_schedule = queue.schedule
    outages = [ServiceUnavailable("notifications queue unavailable")]

    def schedule(*args: Any, **kwargs: Any) -> None:
        if outages:
            raise outages.pop()
        real_schedule(*args, **kwargs)

    monkeypatch.setattr(queue, "schedule", schedule)

    invocations = deliver_stream(notifier, stream.take())

    assert len(invocations) == 2
    assert len(invocations[0].failures) == 1  # only the record whose retry could not be queued
    assert invocations[1].failures == []
    # The record handed over again with it was already delivered: not sent twice.
    assert len(receiver.at("/ok/queue-down")) == 1
    assert len(receiver.at("/fail/queue-down")) == 2  # tried again when the stream retried the record
    (retry,) = sent.to(aws.refs["NotificationsQueue"])
    assert json.loads(retry["MessageBody"])["callid"] == failing
    assert [a["detail"]["result"] for a in attempts(api, failing)] == ["not_queued", "retry"]


def test_a_failing_endpoint_backs_off_for_24_hours_then_dead_letters_while_others_flow(
    api: ApiClient,
    account: AccountCredentials,
    aws: Any,
    notifier: ModuleType,
    stream: Stream,
    receiver: Receiver,
    sent: Sent,
    clock: FakeClock,
) -> None:
    failing = place(api, receiver.url("/fail/hook"))
    first_other = place(api, receiver.url("/ok/first"))
    answer_and_hang_up(aws, failing)
    answer_and_hang_up(aws, first_other)
    started = clock.now

    # The first attempts, from the stream: one delivered, one leaves for NotificationsQueue.
    assert deliver_stream(notifier, stream.take()) == [Invocation(crashed=False, failures=[])]
    assert len(receiver.at("/ok/first")) == 1
    queue_url = aws.refs["NotificationsQueue"]
    others: list[str] = []
    rounds = 0
    while not sent.to(aws.refs["NotificationsDeadLetterQueue"]):
        message = sent.to(queue_url)[-1]
        clock.now += message["DelaySeconds"]
        if rounds == 8:
            # Skip most of the day (the unit tests walk every step of it): to 10 minutes before 24 hours.
            clock.now = started + RETRY_FOR_SECONDS - 600
        response = notifier.lambda_handler(sqs_event(aws, [message["MessageBody"]]), LambdaContext())
        assert response == {"batchItemFailures": []}
        rounds += 1
        if rounds in (3, 9):
            # Meanwhile another customer's call ends: its notification goes straight out.
            other = place(api, receiver.url(f"/ok/meanwhile-{rounds}"))
            answer_and_hang_up(aws, other)
            assert deliver_stream(notifier, stream.take())[-1].failures == []
            assert len(receiver.at(f"/ok/meanwhile-{rounds}")) == 1
            others.append(other)
        assert rounds < 20

    delays = [m["DelaySeconds"] for m in sent.to(queue_url)]
    assert delays == [30, 60, 120, 240, 480, 900, 900, 900, 900, 900]
    assert clock.now - started >= RETRY_FOR_SECONDS
    assert rounds == 10  # the attempt at or after 24 hours is the last
    retries = [json.loads(m["MessageBody"]) for m in sent.to(queue_url)]
    assert [r["attempt"] for r in retries] == list(range(2, len(retries) + 2))
    assert {r["event_id"] for r in retries} == {f"{failing}.COMPLETED"}
    assert {r["first_attempt_at"] for r in retries} == {started}

    # In the DLQ, with why; an operator can read it there.
    dlq = boto3.client("sqs").receive_message(QueueUrl=aws.refs["NotificationsDeadLetterQueue"])["Messages"]
    (parked,) = [json.loads(m["Body"]) for m in dlq]
    assert parked["callid"] == failing
    assert parked["event_id"] == f"{failing}.COMPLETED"
    assert "HTTP 500" in parked["last_error"]
    # Every retry was really sent to NotificationsQueue (the test hands them to the handler itself).
    waiting = boto3.client("sqs").get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    assert int(waiting["ApproximateNumberOfMessages"]) + int(waiting["ApproximateNumberOfMessagesDelayed"]) == len(
        delays
    )

    # Every attempt is on the call's timeline: when, what came back, and when the next one was due.
    timeline = attempts(api, failing)
    assert len(timeline) == len(delays) + 1 == len(receiver.at("/fail/hook"))
    assert [a["detail"]["attempt"] for a in timeline] == list(range(1, len(timeline) + 1))
    assert all(a["detail"]["status_code"] == 500 for a in timeline)
    assert [a["detail"]["retry_in"] for a in timeline[:-1]] == delays
    assert timeline[-1]["detail"]["result"] == "dead_letter"
    assert [a["at"] for a in timeline] == sorted(a["at"] for a in timeline)
    # Each attempt was signed anew, and all carry the same event id.
    secret = account.account.webhook_secret
    for request in receiver.at("/fail/hook"):
        stamp = int(dict(p.split("=", 1) for p in request.headers["X-Callbridge-Signature"].split(","))["t"])
        assert verify_signature(secret, request.headers["X-Callbridge-Signature"], request.body, stamp)
        assert request.fields["event_id"] == f"{failing}.COMPLETED"
    assert len(others) == 2


def test_a_retry_after_delivery_sends_nothing(
    api: ApiClient, aws: Any, notifier: ModuleType, stream: Stream, receiver: Receiver
) -> None:
    callid = place(api, receiver.url("/ok/duplicate"))
    answer_and_hang_up(aws, callid)
    deliver_stream(notifier, stream.take())
    duplicate = json.dumps({"callid": callid, "event_id": f"{callid}.COMPLETED", "attempt": 2, "first_attempt_at": 1})

    response = notifier.lambda_handler(sqs_event(aws, [duplicate]), LambdaContext())

    assert response == {"batchItemFailures": []}
    assert len(receiver.at("/ok/duplicate")) == 1


def test_a_message_that_is_no_retry_fails_so_it_returns_to_the_dead_letter_queue(
    aws: Any, notifier: ModuleType
) -> None:
    event = sqs_event(
        aws, ['{"hello": "world"}', '{"callid": "x", "event_id": "x.BUSY", "attempt": 2, "first_attempt_at": 1}']
    )

    response = notifier.lambda_handler(event, LambdaContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}


def test_cancelling_a_scheduled_call_notifies(
    api: ApiClient, aws: Any, notifier: ModuleType, stream: Stream, receiver: Receiver
) -> None:
    when = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%d %H:%M")
    callid = place(api, receiver.url("/ok/cancel"), call_date=when)

    assert api.delete(f"/pcall/scheduled/{callid}").status == 200
    deliver_stream(notifier, stream.take())

    (request,) = receiver.at("/ok/cancel")
    assert request.fields["status"] == "CANCELED"
    assert request.fields["event_id"] == f"{callid}.CANCELED"
    assert request.fields["answered_by"] == ""
    assert request.fields["call_date"].startswith(when.replace(" ", "T"))
    assert attempts(api, callid)[0]["detail"]["result"] == "delivered"


def test_intake_refuses_never_valid_callback_urls_and_the_sandbox_setting_allows_loopback(
    api_module: ModuleType, account: AccountCredentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = ApiClient(api_module, auth=(account.api_key, account.password))
    monkeypatch.delenv("CALLBACK_ALLOW_LOOPBACK", raising=False)
    for url in [
        "http://127.0.0.1:8080/cb",
        "http://169.254.169.254/latest/",
        "http://[::ffff:10.0.0.5]/",
        "http://localhost/",
    ]:
        response = api.post_call({**MINIMAL, "callback_url": url})

        assert response.status == 400, url
        ((problem),) = response.data["errors"]
        assert problem["field"] == "callback_url"
        assert problem["message"].startswith("must be a public http(s) URL")

    monkeypatch.setenv("CALLBACK_ALLOW_LOOPBACK", "true")
    api_module.deps.cache_clear()
    assert api.post_call({**MINIMAL, "callback_url": "http://127.0.0.1:8080/cb"}).status == 200
    assert api.post_call({**MINIMAL, "callback_url": "http://10.0.0.5/cb"}).status == 400


# --- the template's stream filter lets through exactly what the handler notifies


def _matches(pattern: Any, value: Any, present: bool) -> bool:
    """Lambda event filtering, for the operators the template uses: values, exists, anything-but."""
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return False
        return all(_matches(p, value.get(k), k in value) for k, p in pattern.items())
    for option in pattern:
        if isinstance(option, dict) and "exists" in option:
            if option["exists"] == present:
                return True
        elif isinstance(option, dict) and "anything-but" in option:
            if present and value not in option["anything-but"]:
                return True
        elif present and value == option:
            return True
    return False


def test_the_stream_filter_passes_exactly_the_changes_the_handler_notifies(
    api: ApiClient, aws: Any, stream: Stream, loopback: None
) -> None:
    events = load_template()["Resources"]["NotifierFunction"]["Properties"]["Events"]
    patterns = [json.loads(f["Pattern"]) for f in events["CallsStream"]["Properties"]["FilterCriteria"]["Filters"]]
    store = DynamoCallsStore(aws.refs["CallsTable"])
    with_callback = place(api, "https://hooks.example.com/a")
    without = api.post_call(MINIMAL).data["callid"]
    canceled = place(
        api, "https://hooks.example.com/c", call_date=(datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    )
    answer_and_hang_up(aws, with_callback)
    answer_and_hang_up(aws, without)
    api.delete(f"/pcall/scheduled/{canceled}")
    store.update(with_callback, lambda c: c.with_event("2027-01-01T00:00:00.000Z", "callback", attempt=1))
    born_failed = Call(
        callid="18c2f0a1b2c3d4e5f60718293f",
        account_id="cb_x",
        status=CallStatus.FAILED,
        created_at="2027-01-01T00:00:00.000Z",
        updated_at="2027-01-01T00:00:00.000Z",
        request={"to": "1", "callback_url": "https://hooks.example.com/f"},
    )
    store.create(born_failed)  # an invalid external request is stored FAILED straight away

    records = stream.take()
    filtered = {r["dynamodb"]["SequenceNumber"] for r in records if any(_matches(p, r, True) for p in patterns)}

    notified = set()
    for record in records:
        old, new = call_images(record)
        if new is not None and is_final_transition(old, new):
            notified.add(record["dynamodb"]["SequenceNumber"])

    assert len(records) >= 10
    assert filtered == notified
    assert len(notified) == 3  # with_callback's COMPLETED, canceled's CANCELED, born_failed's INSERT


def test_the_template_never_allows_loopback() -> None:
    template = json.dumps(load_template())

    assert "CALLBACK_ALLOW_LOOPBACK" not in template


def test_the_sample_events_are_what_the_notifier_handles() -> None:
    # events/notifier_stream.json (for `sam local invoke NotifierFunction -e ...`): a call finishing.
    (record,) = load_event("notifier_stream.json")["Records"]
    old, new = call_images(record)
    (message,) = load_event("notifier_retry.json")["Records"]

    assert new is not None
    assert is_final_transition(old, new)
    assert Retry.from_message(message["body"]).event_id == f"{new.callid}.COMPLETED"
    events = load_template()["Resources"]["NotifierFunction"]["Properties"]["Events"]
    patterns = [json.loads(f["Pattern"]) for f in events["CallsStream"]["Properties"]["FilterCriteria"]["Filters"]]
    assert any(_matches(p, record, True) for p in patterns)
