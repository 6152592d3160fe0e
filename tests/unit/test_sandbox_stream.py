"""The sandbox's stream poller retries a failed batch as the template's event source mapping says."""

from __future__ import annotations

from typing import Any

from sandbox.lambdas import FunctionError
from sandbox.sources import StreamPoller

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Calls/stream/2026"


class OneBatchStream:
    """A stream of one shard holding one batch of records."""

    def __init__(self) -> None:
        self.served = False

    def describe_stream(self, StreamArn: str) -> dict[str, Any]:
        return {"StreamDescription": {"Shards": [{"ShardId": "s1"}]}}

    def get_shard_iterator(self, **_params: Any) -> dict[str, Any]:
        return {"ShardIterator": "it-0"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        records = [] if self.served else [{"eventID": "e1", "dynamodb": {"SequenceNumber": "1"}}]
        self.served = True
        return {"Records": records, "NextShardIterator": "it-1"}


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
    made = StreamPoller(OneBatchStream(), ARN, function, 100, log.append, max_retries=max_retries)  # type: ignore[arg-type]
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
