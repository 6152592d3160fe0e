"""The sandbox's SQS poller applies the mapping's filter patterns as Lambda does: a message none of them keeps is
deleted without invoking the function."""

from __future__ import annotations

from typing import Any

from sandbox.filters import event_patterns
from sandbox.sources import SqsPoller

ARN = "arn:aws:sqs:us-east-1:123456789012:calls"


class Queue:
    """One receive's worth of messages; records what was deleted."""

    def __init__(self, bodies: list[str]) -> None:
        self.messages = [
            {"MessageId": f"m{n}", "ReceiptHandle": f"r{n}", "Body": body, "Attributes": {}}
            for n, body in enumerate(bodies)
        ]
        self.deleted: list[str] = []

    def receive_message(self, **_params: Any) -> dict[str, Any]:
        served, self.messages = self.messages, []
        return {"Messages": served}

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        self.deleted += [e["ReceiptHandle"] for e in Entries]
        return {}


class Recording:
    logical = "PlacerFunction"

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        self.events.append(event)
        return {"batchItemFailures": []}


def test_messages_no_pattern_keeps_are_deleted_unseen() -> None:
    patterns = event_patterns({"FilterCriteria": {"Filters": [{"Pattern": '{"body": {"kind": ["call"]}}'}]}})
    queue = Queue(['{"kind": "call"}', '{"kind": "sms"}', "not json"])
    function = Recording()

    received = SqsPoller(queue, "url", ARN, function, 10, print, patterns=patterns).poll_once(wait_seconds=0)  # type: ignore[arg-type]

    assert received == 3
    assert [[r["messageId"] for r in e["Records"]] for e in function.events] == [["m0"]]
    assert sorted(queue.deleted) == ["r0", "r1", "r2"]


def test_without_patterns_every_message_reaches_the_function() -> None:
    queue = Queue(['{"kind": "call"}', "not json"])
    function = Recording()

    SqsPoller(queue, "url", ARN, function, 10, print).poll_once(wait_seconds=0)  # type: ignore[arg-type]

    assert [[r["messageId"] for r in e["Records"]] for e in function.events] == [["m0", "m1"]]
