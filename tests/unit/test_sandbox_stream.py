"""The sandbox's stream poller: retries as the event source mapping says, and filters as Lambda does."""

from __future__ import annotations

import threading
import time
from typing import Any

from sandbox.filters import event_patterns
from sandbox.lambdas import FunctionError
from sandbox.sources import StreamPoller

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Calls/stream/2026"


class Stream:
    """A stream of one shard holding `records`, served once."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    def describe_stream(self, StreamArn: str) -> dict[str, Any]:
        return {"StreamDescription": {"Shards": [{"ShardId": "s1"}]}}

    def get_shard_iterator(self, **_params: Any) -> dict[str, Any]:
        return {"ShardIterator": "it-0"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        served, self.records = self.records, []
        return {"Records": served, "NextShardIterator": "it-1"}


class Failing:
    """A function whose first `failures` invocations fail (an error, then a partial batch failure in turn)."""

    logical = "CampaignsFunction"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.invocations = 0

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        self.invocations += 1
        if self.invocations > self.failures:
            return {"batchItemFailures": []}
        if self.invocations % 2:
            raise FunctionError({"errorType": "Timeout"})
        return {"batchItemFailures": [{"itemIdentifier": "1"}]}


class NoWait:
    def is_set(self) -> bool:
        return False

    def wait(self, _seconds: float) -> bool:
        return False


def poller(function: Failing, max_retries: int, log: list[str]) -> StreamPoller:
    one_batch = Stream([{"eventID": "e1", "dynamodb": {"SequenceNumber": "1"}}])
    made = StreamPoller(one_batch, ARN, function, 100, log.append, max_retries=max_retries)  # type: ignore[arg-type]
    made._stop = NoWait()  # type: ignore[assignment]  # backoff without the waiting
    return made


def test_a_batch_is_tried_until_it_succeeds_when_retries_are_unlimited() -> None:
    function, log = Failing(failures=25), list[str]()  # more than any fixed count of tries
    delivered = poller(function, -1, log).poll_once()

    assert delivered == 1
    assert function.invocations == 26
    assert log == []


def test_a_batch_is_dropped_after_the_mappings_retries_and_says_so() -> None:
    function, log = Failing(failures=25), list[str]()
    poller(function, 2, log).poll_once()

    assert function.invocations == 3  # the first try and 2 retries
    assert log == ["stream CampaignsFunction: 1 records dropped after 3 tries"]


class Recording:
    logical = "CampaignsFunction"

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        self.events.append(event)
        return {"batchItemFailures": []}


def change(sequence: str, new_image: dict[str, Any] | None) -> dict[str, Any]:
    data: dict[str, Any] = {"SequenceNumber": sequence}
    if new_image is not None:
        data["NewImage"] = new_image
    return {"eventID": sequence, "eventName": "MODIFY" if new_image else "REMOVE", "dynamodb": data}


def test_records_no_filter_pattern_keeps_are_passed_over_as_lambda_does() -> None:
    # given: the campaign counter's pattern (a campaign call's change), and three changes, one of them a campaign's
    patterns = event_patterns(
        {
            "FilterCriteria": {
                "Filters": [{"Pattern": '{"dynamodb": {"NewImage": {"campaign": {"S": [{"exists": true}]}}}}'}]
            }
        }
    )
    records = [change("1", {"status": {"S": "QUEUED"}}), change("2", {"campaign": {"S": "cmp-1"}}), change("3", None)]
    function = Recording()
    made = StreamPoller(Stream(records), ARN, function, 100, print, patterns=patterns)  # type: ignore[arg-type]

    # when
    read = made.poll_once()
    again = made.poll_once()

    # then: all three were read, the function got only the campaign's, and nothing is read twice
    assert read == 3
    assert again == 0
    assert [[r["eventID"] for r in e["Records"]] for e in function.events] == [["2"]]


def test_a_batch_no_pattern_keeps_invokes_nothing() -> None:
    patterns = event_patterns({"FilterCriteria": {"Filters": [{"Pattern": '{"eventName": ["INSERT"]}'}]}})
    function = Recording()
    made = StreamPoller(Stream([change("1", None)]), ARN, function, 100, print, patterns=patterns)  # type: ignore[arg-type]

    assert made.poll_once() == 1
    assert function.events == []


def test_one_read_is_delivered_in_batches_of_the_mappings_size_in_order() -> None:
    # given 25 changes on the stream, read in one go, and a mapping with BatchSize 10
    function = Recording()
    records = [change(str(n), {"status": {"S": "QUEUED"}}) for n in range(25)]
    made = StreamPoller(Stream(records), ARN, function, 10, print)  # type: ignore[arg-type]

    # when
    assert made.poll_once() == 25

    # then the function saw batches of 10, 10 and 5, in the stream's order
    batches = [[r["eventID"] for r in e["Records"]] for e in function.events]
    assert [len(b) for b in batches] == [10, 10, 5]
    assert [eid for batch in batches for eid in batch] == [str(n) for n in range(25)]


class CountingStop:
    """A stop event that records each wait and stops the loop after `reads` of them."""

    def __init__(self, reads: int) -> None:
        self.waits: list[float] = []
        self.reads = reads

    def is_set(self) -> bool:
        return len(self.waits) >= self.reads

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        return self.is_set()


class Busy(Stream):
    """A stream that has a new record at every read."""

    def __init__(self) -> None:
        super().__init__([])
        self.reads = 0

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        self.reads += 1
        return {"Records": [change(str(self.reads), {"status": {"S": "QUEUED"}})], "NextShardIterator": "it-1"}


def test_a_shard_is_read_4_times_a_second_even_while_records_keep_coming() -> None:
    # given a stream with a new record at every read
    function = Recording()
    made = StreamPoller(Busy(), ARN, function, 10, print)  # type: ignore[arg-type]
    stop = CountingStop(reads=5)

    # when the poller runs for five reads
    made.run(stop)  # type: ignore[arg-type]

    # then after each read it waits out the rest of its quarter second, as Lambda's base rate is
    assert len(function.events) == 5
    assert all(0.2 < seconds <= 0.25 for seconds in stop.waits), stop.waits


class Blocking:
    """A function that holds any batch with a change of call `slow` until released (a receiver that never answers)."""

    logical = "NotifierFunction"

    def __init__(self, slow: str) -> None:
        self.slow = slow
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.delivered: list[tuple[str, str]] = []  # (callid, eventID) in the order each was handed over

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        records = [(r["dynamodb"]["Keys"]["callid"]["S"], r["eventID"]) for r in event["Records"]]
        if any(callid == self.slow for callid, _ in records):
            self.release.wait(10)
        with self.lock:
            self.delivered.extend(records)
        return {"batchItemFailures": []}


def keyed(callid: str, sequence: int) -> dict[str, Any]:
    return {
        "eventID": f"{callid}/{sequence}",
        "eventName": "MODIFY",
        "dynamodb": {"Keys": {"callid": {"S": callid}}, "SequenceNumber": str(sequence), "NewImage": {}},
    }


def test_with_a_parallelization_factor_one_slow_batch_holds_up_only_its_lane() -> None:
    # given: the notifier's mapping (BatchSize 10, ParallelizationFactor 10) and a change of a call whose delivery
    # hangs, then three changes each of 20 other calls
    function = Blocking(slow="slow")
    others = [f"call-{n}" for n in range(20)]
    records = [keyed("slow", 0)] + [keyed(callid, step) for step in (1, 2, 3) for callid in others]
    made = StreamPoller(Stream(records), ARN, function, 10, print, parallelization=10)  # type: ignore[arg-type]
    made._stop = threading.Event()

    try:
        # when: the shard is read once, and the slow call's batch is still running
        assert made.poll_once() == 61
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len({c for c, _ in function.delivered}) < 15:
            time.sleep(0.01)

        # then: the calls that do not share its lane (all but about 2 of 20) are handed over meanwhile, as Lambda's
        # concurrent batches do; one lane alone would have held every one of them behind it
        assert len({c for c, _ in function.delivered}) >= 15, function.delivered
        assert ("slow", "slow/0") not in function.delivered

        # and: once it is released, every change arrives, each call's changes in the stream's order
        function.release.set()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(function.delivered) < 61:
            time.sleep(0.01)
        assert sorted(function.delivered) == sorted(
            (r["dynamodb"]["Keys"]["callid"]["S"], r["eventID"]) for r in records
        )
        for callid in others:
            assert [e for c, e in function.delivered if c == callid] == [f"{callid}/{step}" for step in (1, 2, 3)]
    finally:
        function.release.set()
        made._stop.set()
