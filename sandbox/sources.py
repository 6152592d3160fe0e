"""Event sources as Lambda runs them, read from template.yaml: SQS queues, the table stream, schedules."""

from __future__ import annotations

import json
import queue
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from sandbox.filters import event_patterns, kept
from sandbox.lambdas import Function, FunctionError
from sandbox.template import REGION, Stack

Log = Callable[[str], None]
SQS_LONG_POLL = 20  # seconds a receive waits for a message (Lambda's pollers wait the most SQS allows)


def _sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    attributes = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
            "SentTimestamp": attributes.get("SentTimestamp", str(int(time.time() * 1000))),
            "SenderId": attributes.get("SenderId", "AIDASANDBOX"),
            "ApproximateFirstReceiveTimestamp": attributes.get(
                "ApproximateFirstReceiveTimestamp", str(int(time.time() * 1000))
            ),
        },
        "messageAttributes": {},
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


class SqsPoller:
    """Polls one queue into one function: batch size, filter patterns, partial batch failures, visibility, redrive."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        function: Function,
        batch_size: int,
        log: Log,
        patterns: list[dict[str, Any]] | None = None,
    ) -> None:
        self._patterns = patterns or []
        self._sqs = sqs
        self._url = queue_url
        self._arn = queue_arn
        self._function = function
        self._batch = batch_size
        self._log = log

    def poll_once(self, wait_seconds: int = SQS_LONG_POLL) -> int:
        """Receive one batch, invoke the function, delete what succeeded; returns the batch size."""
        messages = self._sqs.receive_message(
            QueueUrl=self._url,
            MaxNumberOfMessages=self._batch,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        records = [r for r in (_sqs_record(m, self._arn) for m in messages) if kept(r, self._patterns)]
        failed: set[str] = set()
        if records:  # messages no filter pattern keeps are deleted unseen, as Lambda does
            try:
                result = self._function.invoke({"Records": records}) or {}
                failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
            except FunctionError:  # the whole batch failed, as when a Lambda invocation errors or times out
                failed = {r["messageId"] for r in records}
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start : start + 10])
            ]
            self._sqs.delete_message_batch(QueueUrl=self._url, Entries=entries)
        return len(messages)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                # a long poll: the sandbox's moto wakes it when a delayed message becomes visible, as SQS does
                self.poll_once()
            except Exception as exc:  # keep polling, as Lambda's pollers do
                if not stop.is_set():
                    self._log(f"poller {self._function.logical}: {exc}")
                    time.sleep(0.5)


SHARDS_EVERY = 1.0  # seconds between looks for new shards (a table's stream opens one every few hours)
STREAM_READ_EVERY = 0.25  # seconds between the starts of two reads of a shard: Lambda reads one 4 times a second
READ_LIMIT = 1000  # records one GetRecords may return (its most)


class RawStreamReads:
    """A DynamoDB Streams client whose GetRecords answer is the service's JSON as it comes, which is what Lambda
    hands a function: times as epoch seconds, binary values in base64. botocore's parser turns every attribute of
    every image into Python by its shape, which under a burst was most of the sandbox process's time (each
    consumer of the stream reads every record). The request is the client's own, signed by it."""

    TARGET = "DynamoDBStreams_20120810.GetRecords"

    def __init__(self, client: Any) -> None:
        self._client = client

    def describe_stream(self, **params: Any) -> Any:
        return self._client.describe_stream(**params)

    def get_shard_iterator(self, **params: Any) -> Any:
        return self._client.get_shard_iterator(**params)

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(
            method="POST",
            url=self._client.meta.endpoint_url.rstrip("/") + "/",
            data=json.dumps({"ShardIterator": ShardIterator, "Limit": Limit}).encode(),
            headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": self.TARGET},
        )
        self._client._request_signer.sign("GetRecords", request)
        response = self._client._endpoint.http_session.send(request.prepare())
        if response.status_code != 200:
            raise RuntimeError(f"GetRecords → {response.status_code}: {response.content[:300]!r}")
        answer: dict[str, Any] = json.loads(response.content)
        return answer


class StreamReader:
    """Reads every shard of a stream from its latest record, as an event source mapping does: new shards looked
    for once a second, up to READ_LIMIT records a read."""

    def __init__(self, streams: Any, stream_arn: str) -> None:
        self._streams = streams
        self._arn = stream_arn
        self._iterators: dict[str, str] = {}
        self._refreshed = -SHARDS_EVERY

    def _refresh_shards(self) -> None:
        if time.monotonic() - self._refreshed < SHARDS_EVERY:
            return
        self._refreshed = time.monotonic()
        description = self._streams.describe_stream(StreamArn=self._arn)["StreamDescription"]
        for shard in description.get("Shards", []):
            shard_id = shard["ShardId"]
            if shard_id not in self._iterators:
                self._iterators[shard_id] = self._streams.get_shard_iterator(
                    StreamArn=self._arn, ShardId=shard_id, ShardIteratorType="LATEST"
                )["ShardIterator"]

    def reads(self) -> Iterator[list[dict[str, Any]]]:
        """One read of each shard: its records in order. A shard moves past them once the caller is done."""
        self._refresh_shards()
        for shard_id, iterator in list(self._iterators.items()):
            response = self._streams.get_records(ShardIterator=iterator, Limit=READ_LIMIT)
            yield response.get("Records", [])
            self._iterators[shard_id] = response.get("NextShardIterator") or iterator


def wait_for_next_read(stop: threading.Event, started: float) -> None:
    """Wait out the rest of a read's quarter second (Lambda reads a shard 4 times a second)."""
    stop.wait(max(0.0, STREAM_READ_EVERY - (time.monotonic() - started)))


class StreamPoller:
    """Reads a DynamoDB stream (every shard, from the latest record) into a function, in order, retrying.

    As Lambda does, it reads each shard 4 times a second, records or not, as many records as a read returns,
    and invokes the function with batches of at most the mapping's BatchSize, one after another. Records that
    none of the mapping's filter patterns keeps are passed over, as Lambda's filtering drops them.

    A failed batch is tried again up to `max_retries` times (the mapping's MaximumRetryAttempts; -1, Lambda's
    default for streams: until it succeeds), then dropped.

    With a ParallelizationFactor above 1 (`parallelization`), as Lambda does, a shard's records are spread over
    that many lanes by a hash of their item's key, each lane invoking the function with its own batches, in order,
    at the same time as the others: a change waits only behind changes of the keys that share its lane, so one
    slow batch (an outcome callback whose receiver never answers) holds up a tenth of the stream, not all of it.
    """

    def __init__(
        self,
        streams: Any,
        stream_arn: str,
        function: Function,
        batch_size: int,
        log: Log,
        max_retries: int = -1,
        patterns: list[dict[str, Any]] | None = None,
        parallelization: int = 1,
    ) -> None:
        self._patterns = patterns or []
        self._parallelization = max(1, parallelization)
        self._lanes: list[queue.SimpleQueue[dict[str, Any]]] = []
        self._streams = streams
        self._arn = stream_arn
        self._function = function
        self._batch = batch_size
        self._log = log
        self._max_retries = max_retries
        self._stop = threading.Event()  # run()'s, once it runs
        self._reader = StreamReader(streams, stream_arn)

    def poll_once(self) -> int:
        total = 0
        for read in self._reader.reads():
            total += len(read)
            for record in read:
                record["eventSourceARN"] = self._arn
            records = [r for r in read if kept(r, self._patterns)]  # as Lambda filters, before invoking
            if self._parallelization > 1:
                for record in records:
                    self._lane(record).put(record)
                continue
            for start in range(0, len(records), self._batch):
                self._deliver(records[start : start + self._batch])
        return total

    def _lane(self, record: dict[str, Any]) -> queue.SimpleQueue[dict[str, Any]]:
        """The lane of a record's item key (its worker started with the first record)."""
        if not self._lanes:
            for number in range(self._parallelization):
                lane: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
                self._lanes.append(lane)
                name = f"stream-{self._function.logical}-lane-{number}"
                threading.Thread(target=self._run_lane, args=(lane,), name=name, daemon=True).start()
        key = json.dumps(record.get("dynamodb", {}).get("Keys", {}), sort_keys=True)
        return self._lanes[zlib.crc32(key.encode()) % self._parallelization]

    def _run_lane(self, lane: queue.SimpleQueue[dict[str, Any]]) -> None:
        """Deliver a lane's records in order, in batches of what has come, at most the mapping's size each."""
        while not self._stop.is_set():
            try:
                batch = [lane.get(timeout=0.25)]
            except queue.Empty:
                continue
            while len(batch) < self._batch:
                try:
                    batch.append(lane.get_nowait())
                except queue.Empty:
                    break
            self._deliver(batch)

    def _deliver(self, records: list[dict[str, Any]]) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                result = self._function.invoke({"Records": records}) or {}
                if not result.get("batchItemFailures"):
                    return
            except FunctionError:
                pass
            if 0 <= self._max_retries <= attempt:
                self._log(f"stream {self._function.logical}: {len(records)} records dropped after {attempt + 1} tries")
                return
            self._stop.wait(min(5.0, 0.2 * 2 ** min(attempt, 5)))
            attempt += 1

    def run(self, stop: threading.Event) -> None:
        self._stop = stop
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.poll_once()
            except Exception as exc:
                if not stop.is_set():
                    self._log(f"stream {self._function.logical}: {exc}")
                    stop.wait(0.5)
            wait_for_next_read(stop, started)


def rate_seconds(expression: str) -> float:
    """Seconds between runs of a `rate(...)` schedule expression."""
    found = re.fullmatch(r"rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)", expression.strip())
    if not found:
        raise ValueError(f"unsupported schedule {expression!r}")
    unit = {"minute": 60, "hour": 3600, "day": 86400}[found.group(2).rstrip("s")]
    return int(found.group(1)) * unit


# The shortest period a scaled schedule gets: a scheduler run takes a good part of a second on a busy machine.
MIN_SCHEDULE_SECONDS = 1.0


def schedule_period(expression: str, speed: float = 1.0, every: float | None = None) -> float:
    """Seconds between a schedule's runs in the sandbox: `every` (--schedule-every) when given, else the rule's rate
    divided by `speed` (at least MIN_SCHEDULE_SECONDS).

    The rule's period is part of how soon a call whose final callback was lost is looked up (the reconciliation
    delay, then the next run): at --speed N the delays are N times shorter, and so must the wait for the run be, or
    a lost outcome would still wait up to a whole minute of wall-clock time."""
    if every:
        return every
    return max(MIN_SCHEDULE_SECONDS, rate_seconds(expression) / speed)


class ScheduleTimer:
    """Fires a function with a Scheduled Event every `every` seconds (EventBridge never fires in moto)."""

    def __init__(self, function: Function, every: float, rule_name: str, log: Log) -> None:
        self._function = function
        self.every = every
        self._rule = rule_name
        self._log = log

    def fire(self) -> Any:
        now = time.gmtime()
        event = {
            "version": "0",
            "id": f"sandbox-{time.time_ns()}",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", now),
            "region": REGION,
            "resources": [f"arn:aws:events:{REGION}:123456789012:rule/{self._rule}"],
            "detail": {},
        }
        return self._function.invoke(event)

    def run(self, stop: threading.Event) -> None:
        next_run = time.monotonic() + self.every
        while not stop.wait(max(0.0, next_run - time.monotonic())):
            next_run += self.every
            try:
                self.fire()
            except Exception as exc:
                self._log(f"schedule {self._function.logical}: {exc}")


def event_sources(
    stack: Stack,
    functions: dict[str, Function],
    clients_for: Callable[[str], dict[str, Any]],
    log: Log,
    schedule_every: float | None = None,
    speed: float = 1.0,
    sqs_workers: int = 4,
) -> list[Callable[[threading.Event], None]]:
    """Runnables for every SQS, DynamoDB stream and Schedule event of every function in the template.

    `clients_for(function)` gives boto3 clients signed as that function's role: Lambda's event source
    mappings read queues and streams with the function's own permissions.
    """
    runners: list[Callable[[threading.Event], None]] = []
    for logical, function in functions.items():
        events = stack.template["Resources"][logical]["Properties"].get("Events", {})
        clients = clients_for(logical) if events else {}
        for name, event in events.items():
            props = event.get("Properties", {})
            if event["Type"] == "SQS":
                arn = stack.resolve(props["Queue"])
                url = next(u for k, u in stack.refs.items() if stack.attrs.get((k, "Arn")) == arn)
                workers = min(sqs_workers, int(props.get("ScalingConfig", {}).get("MaximumConcurrency", sqs_workers)))
                for _ in range(max(1, workers)):
                    poller = SqsPoller(
                        clients["sqs"],
                        url,
                        arn,
                        function,
                        int(props.get("BatchSize", 10)),
                        log,
                        patterns=event_patterns(props),
                    )
                    runners.append(poller.run)
            elif event["Type"] == "DynamoDB":
                arn = stack.resolve(props["Stream"])
                stream = StreamPoller(
                    RawStreamReads(clients["dynamodbstreams"]),
                    arn,
                    function,
                    int(props.get("BatchSize", 100)),
                    log,
                    max_retries=int(props.get("MaximumRetryAttempts", -1)),
                    patterns=event_patterns(props),
                    parallelization=int(props.get("ParallelizationFactor", 1)),
                )
                runners.append(stream.run)
            elif event["Type"] == "Schedule":
                every = schedule_period(str(props["Schedule"]), speed, schedule_every)
                runners.append(ScheduleTimer(function, every, f"{stack.prefix}-{logical}-{name}", log).run)
    return runners
