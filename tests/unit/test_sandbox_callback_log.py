"""The sandbox's callback log: one line per outcome callback attempt appended to a call's timeline."""

from __future__ import annotations

from typing import Any

from callbridge.adapters.dynamodb.call_codec import appended_events, call_attributes
from callbridge.domain import events
from callbridge.domain.calls import Call, CallStatus

from sandbox.observe import CallbackLog

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Calls/stream/2026"
AT = "2027-01-10T12:00:00.000Z"


def call(*timeline: tuple[str, dict[str, Any]]) -> Call:
    made = Call(
        callid="c1",
        account_id="a",
        status=CallStatus.COMPLETED,
        created_at=AT,
        updated_at=AT,
        request={"to": "+17134567890", "callback_url": "https://crm.example.com/hook"},
    )
    for name, detail in timeline:
        made = made.with_event(AT, name, **detail)
    return made


def record(old: Call | None, new: Call | None) -> dict[str, Any]:
    change: dict[str, Any] = {}
    if old is not None:
        change["OldImage"] = call_attributes(old)
    if new is not None:
        change["NewImage"] = call_attributes(new)
    return {"eventName": "MODIFY", "dynamodb": change}


class Stream:
    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        self.describes = 0

    def describe_stream(self, StreamArn: str) -> dict[str, Any]:
        self.describes += 1
        return {"StreamDescription": {"Shards": [{"ShardId": "s1"}]}}

    def get_shard_iterator(self, **_params: Any) -> dict[str, Any]:
        return {"ShardIterator": "it-0"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        served, self.records = self.records, []
        return {"Records": served, "NextShardIterator": "it-1"}


def test_each_callback_attempt_a_change_appends_is_logged_once() -> None:
    # given: a status change (no callback), then a change appending two callback attempts
    answered = call(("status", {"status": "ANSWER"}))
    first = answered.with_event(AT, events.CALLBACK, attempt=1, status_code=500, result="retry", retry_in=10)
    second = first.with_event(AT, events.CALLBACK, attempt=2, status_code=200, result="delivered")
    lines: list[str] = []
    stream = Stream([record(None, answered), record(answered, first), record(first, second)])

    # when
    logged = CallbackLog(stream, ARN, lines.append).poll_once()

    # then
    assert logged == 2
    assert lines == [
        "callback c1 attempt 1 to https://crm.example.com/hook: HTTP 500 → retry in 10 s",
        "callback c1 attempt 2 to https://crm.example.com/hook: HTTP 200 → delivered",
    ]


def test_only_the_events_a_change_appended_are_read() -> None:
    before = call(("status", {"status": "ANSWER"}))
    after = before.with_event(AT, events.CALLBACK, attempt=1, status_code=200, result="delivered")

    added = appended_events(call_attributes(before), call_attributes(after))

    delivered = {"attempt": 1, "status_code": 200, "result": "delivered"}
    assert added == [{"at": AT, "event": events.CALLBACK, "detail": delivered}]
    assert appended_events(None, call_attributes(before)) == [
        {"at": AT, "event": "status", "detail": {"status": "ANSWER"}}
    ]
    assert appended_events(call_attributes(after), None) == []


def test_new_shards_are_looked_for_once_a_second_not_at_every_read() -> None:
    stream = Stream([])
    log = CallbackLog(stream, ARN, print)

    for _ in range(4):
        log.poll_once()

    assert stream.describes == 1
