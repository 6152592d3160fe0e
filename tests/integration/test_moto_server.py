"""The sandbox's moto server answers as moto's own server does, with its own costs removed.

Two servers run side by side, moto's (`python -m moto.server`) and the sandbox's (`python -m sandbox.moto_server`);
the same requests go to both, and every answer, parsed by boto3 as a function's client parses it, must be equal
(less what differs by nature: generated ids, shard iterators, times, and a stream record's SizeBytes, which
moto estimates from the record's text, creation time included).
"""

from __future__ import annotations

import base64
import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models import dynamodb_backends
from moto.sqs.models import SQSBackend

from sandbox.moto_server import next_visible, within_retention
from sandbox.runtime import MOTO_START_TIMEOUT, _wait_for_port, free_port
from tests.integration.fakes import atomic_dynamodb

ACCOUNT = "123456789012"
REGION = "us-east-1"
VOLATILE = {
    "eventID",
    "ApproximateCreationDateTime",
    "SizeBytes",
    "ShardIterator",
    "NextShardIterator",
    "ResponseMetadata",
}


def _server(module: str) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", module, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port("127.0.0.1", port, MOTO_START_TIMEOUT, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def plain_moto() -> Iterator[str]:
    yield from _server("moto.server")


@pytest.fixture(scope="module")
def sandbox_moto() -> Iterator[str]:
    yield from _server("sandbox.moto_server")


def _client(service: Any, endpoint: str | None) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _stable(value: Any) -> Any:
    """`value` less what differs between two servers by nature; every time a record carries must be a time."""
    if isinstance(value, dict):
        for key in ("ApproximateCreationDateTime",):
            if key in value:
                assert isinstance(value[key], datetime), value[key]
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


ITEM = {
    "pk": {"S": "call-1"},
    "account": {"S": "acct"},
    "created": {"S": "2026-11-30T17:00:00Z#call-1"},
    "status": {"S": "QUEUED"},
    "version": {"N": "1"},
    "price": {"N": "-12.50"},
    "blob": {"B": b"\x00\x01\xfe\xff"},
    "flag": {"BOOL": True},
    "nothing": {"NULL": True},
    "tags": {"SS": ["a", "b"]},
    "numbers": {"NS": ["1", "2.5"]},
    "blobs": {"BS": [b"\x01", b"\x02"]},
    "timeline": {"L": [{"M": {"at": {"S": "2026-11-30T17:00:00Z"}, "event": {"S": "accepted"}, "detail": {"M": {}}}}]},
    "request": {"M": {"to": {"S": "12812345670"}, "nested": {"L": [{"N": "1"}, {"S": "ü"}]}}},
}


def _dynamodb_session(endpoint: str) -> list[Any]:
    """One of each data-plane action, a conditional failure and the stream they made; every answer, in order."""
    db, streams = _client("dynamodb", endpoint), _client("dynamodbstreams", endpoint)
    table = "Calls"
    created = db.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "account", "AttributeType": "S"},
            {"AttributeName": "created", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "ByAccount",
                "KeySchema": [
                    {"AttributeName": "account", "KeyType": "HASH"},
                    {"AttributeName": "created", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    arn = created["TableDescription"]["LatestStreamArn"]
    answers: list[Any] = []
    call: Callable[..., Any] = lambda method, **kw: answers.append(getattr(db, method)(**kw))  # noqa: E731
    call("put_item", TableName=table, Item=ITEM)
    call("put_item", TableName=table, Item={**ITEM, "pk": {"S": "call-2"}}, ReturnValues="ALL_OLD")
    call("get_item", TableName=table, Key={"pk": {"S": "call-1"}}, ConsistentRead=True)
    call("get_item", TableName=table, Key={"pk": {"S": "absent"}})
    call(
        "update_item",
        TableName=table,
        Key={"pk": {"S": "call-1"}},
        UpdateExpression="SET #s = :s, timeline = list_append(timeline, :e) ADD version :one REMOVE flag",
        ConditionExpression="#s = :q",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={
            ":s": {"S": "DIALING"},
            ":q": {"S": "QUEUED"},
            ":one": {"N": "1"},
            ":e": {"L": [{"M": {"event": {"S": "dialing"}}}]},
        },
        ReturnValues="ALL_NEW",
    )
    call(
        "update_item",
        TableName=table,
        Key={"pk": {"S": "call-2"}},
        UpdateExpression="SET price = :p",
        ExpressionAttributeValues={":p": {"N": "3"}},
        ReturnValues="UPDATED_OLD",
    )
    for number in range(3):  # the same expression again: its syntax tree is reused, the values are not
        call(
            "update_item",
            TableName=table,
            Key={"pk": {"S": "call-2"}},
            UpdateExpression="SET price = price + :p, timeline = list_append(:e, timeline) REMOVE nothing",
            ExpressionAttributeValues={":p": {"N": str(number)}, ":e": {"L": [{"N": str(number)}]}},
            ReturnValues="ALL_NEW",
        )
    for answer in ("UPDATED_NEW", "NONE"):
        call(
            "update_item",
            TableName=table,
            Key={"pk": {"S": "call-2"}},
            UpdateExpression="SET #r.nested = list_append(#r.nested, :e), tags = :t",
            ExpressionAttributeNames={"#r": "request"},
            ExpressionAttributeValues={":e": {"L": [{"B": b"\x03"}]}, ":t": {"SS": ["c"]}},
            ReturnValues=answer,
        )
    for key in ("call-9", "call-1"):  # the validator's rewrite of a held syntax tree fails, then holds, as moto's
        try:
            call(
                "update_item",
                TableName=table,
                Key={"pk": {"S": key}},
                UpdateExpression="SET price_plus = price + :p",
                ExpressionAttributeValues={":p": {"N": "1"}},
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as missing:
            answers.append({k: v for k, v in missing.response.items() if k != "ResponseMetadata"})
    with pytest.raises(ClientError) as invalid:
        db.update_item(TableName=table, Key={"pk": {"S": "call-2"}}, UpdateExpression="SET price = = :p")
    answers.append({k: v for k, v in invalid.value.response.items() if k != "ResponseMetadata"})
    with pytest.raises(ClientError) as failed:
        db.update_item(
            TableName=table,
            Key={"pk": {"S": "call-1"}},
            UpdateExpression="SET #s = :s",
            ConditionExpression="#s = :q",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": "X"}, ":q": {"S": "QUEUED"}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    answers.append({k: v for k, v in failed.value.response.items() if k != "ResponseMetadata"})
    for status in ("DIALING", "QUEUED"):  # the same condition text again, held once and failed once
        try:
            call(
                "update_item",
                TableName=table,
                Key={"pk": {"S": "call-1"}},
                UpdateExpression="SET #s = :s",
                ConditionExpression="#s = :q AND attribute_exists(timeline)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":s": {"S": "DIALING"}, ":q": {"S": status}},
                ReturnValues="ALL_OLD",
            )
        except ClientError as again:
            answers.append({k: v for k, v in again.response.items() if k != "ResponseMetadata"})
    call(
        "query",
        TableName=table,
        IndexName="ByAccount",
        KeyConditionExpression="account = :a",
        ExpressionAttributeValues={":a": {"S": "acct"}},
        ScanIndexForward=False,
    )
    call("scan", TableName=table, Limit=1)
    call("batch_get_item", RequestItems={table: {"Keys": [{"pk": {"S": "call-1"}}, {"pk": {"S": "call-2"}}]}})
    call("batch_write_item", RequestItems={table: [{"PutRequest": {"Item": {**ITEM, "pk": {"S": "call-3"}}}}]})
    call(
        "transact_write_items",
        TransactItems=[
            {"Put": {"TableName": table, "Item": {**ITEM, "pk": {"S": "call-4"}}}},
            {
                "ConditionCheck": {
                    "TableName": table,
                    "Key": {"pk": {"S": "call-1"}},
                    "ConditionExpression": "#s = :d",
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": {":d": {"S": "DIALING"}},
                }
            },
        ],
    )
    with pytest.raises(ClientError) as cancelled:  # a Put, an Update, then a failed check: none of it is kept
        db.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {**ITEM, "pk": {"S": "call-5"}}}},
                {
                    "Update": {
                        "TableName": table,
                        "Key": {"pk": {"S": "call-3"}},
                        "UpdateExpression": "SET #s = :x REMOVE tags",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": {":x": {"S": "CANCELED"}},
                    }
                },
                {
                    "ConditionCheck": {
                        "TableName": table,
                        "Key": {"pk": {"S": "call-1"}},
                        "ConditionExpression": "#s = :q",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": {":q": {"S": "QUEUED"}},
                    }
                },
            ]
        )
    answers.append({k: v for k, v in cancelled.value.response.items() if k != "ResponseMetadata"})
    for key in ("call-5", "call-3"):
        call("get_item", TableName=table, Key={"pk": {"S": key}}, ConsistentRead=True)
    call("transact_get_items", TransactItems=[{"Get": {"TableName": table, "Key": {"pk": {"S": "call-4"}}}}])
    call("delete_item", TableName=table, Key={"pk": {"S": "call-4"}}, ReturnValues="ALL_OLD")
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = streams.get_records(ShardIterator=iterator["ShardIterator"], Limit=100)
    answers.append(records)
    answers.append(streams.get_records(ShardIterator=records["NextShardIterator"]))
    return answers


def test_dynamodb_answers_are_moto_s_own(plain_moto: str, sandbox_moto: str) -> None:
    plain, fast = _dynamodb_session(plain_moto), _dynamodb_session(sandbox_moto)
    records = fast[-2]["Records"]
    assert [r["eventName"] for r in records] == ["INSERT", "INSERT"] + ["MODIFY"] * 9 + ["INSERT", "INSERT", "REMOVE"]
    assert [a["Attributes"]["price"] for a in fast[6:9]] == [{"N": "3"}, {"N": "4"}, {"N": "6"}]
    assert records[2]["dynamodb"]["NewImage"]["blob"] == {"B": b"\x00\x01\xfe\xff"}
    assert fast[-1]["Records"] == []
    assert len(plain) == len(fast)
    for number, (expected, got) in enumerate(zip(plain, fast, strict=True)):
        assert _stable(got) == _stable(expected), f"answer {number} differs"


def test_queue_answers_are_moto_s_own(plain_moto: str, sandbox_moto: str) -> None:
    def session(endpoint: str) -> list[Any]:
        sqs = _client("sqs", endpoint)
        url = sqs.create_queue(QueueName="calls", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
        for body in ("one", "two", "three"):
            sqs.send_message(QueueUrl=url, MessageBody=body)
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
        return sorted(m["Body"] for m in received)

    assert session(sandbox_moto) == session(plain_moto) == ["one", "three", "two"]


@pytest.mark.parametrize(("age_seconds", "kept"), [(0, True), (59, True), (61, False), (86400 * 5, False)])
def test_retention_reads_the_queue_setting_as_moto_does(age_seconds: int, kept: bool) -> None:
    backend = SQSBackend(REGION, ACCOUNT)
    backend.create_queue("calls", MessageRetentionPeriod="60")
    message = backend.send_message("calls", "body")
    message.sent_timestamp = int(message.sent_timestamp or 0) - age_seconds * 1000  # type: ignore[assignment]
    assert within_retention(backend, "calls", message) is kept
    assert backend.is_message_valid_based_on_retention_period("calls", message) is kept


class _Message:
    def __init__(self, visible_at: float = 0.0, delayed_until: float = 0.0) -> None:
        self.visible_at = visible_at
        self.delayed_until = delayed_until


def test_a_long_poll_wakes_when_the_next_hidden_message_becomes_visible() -> None:
    # moto wakes a long poll only when a message is sent; the sandbox's also when a delayed or in-flight one shows
    now = 1_000_000.0
    messages = [
        _Message(),  # visible now
        _Message(delayed_until=now + 700),  # delayed: visible in 0.7 s
        _Message(visible_at=now + 300),  # in flight: visible again in 0.3 s
        _Message(visible_at=now - 5, delayed_until=now - 1),  # visible already
    ]
    assert next_visible(messages, now) == now + 300
    assert next_visible(messages[1:2], now) == now + 700
    assert next_visible([_Message(), _Message(visible_at=now - 1)], now) is None


def test_raw_stream_reads_give_the_records_as_lambda_hands_them_over(sandbox_moto: str) -> None:
    # given a table with a stream, and a change to it holding a binary value
    from sandbox.sources import RawStreamReads

    db, streams = _client("dynamodb", sandbox_moto), _client("dynamodbstreams", sandbox_moto)
    arn = db.create_table(
        TableName="Raw",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]["LatestStreamArn"]
    db.put_item(TableName="Raw", Item=ITEM)
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")

    # when the same records are read raw and through botocore
    raw = RawStreamReads(streams).get_records(ShardIterator=iterator["ShardIterator"], Limit=1000)
    parsed = streams.get_records(ShardIterator=iterator["ShardIterator"], Limit=1000)

    # then they are the same records, with times as epoch seconds and binary values in base64, as in Lambda's event
    (raw_record,), (parsed_record,) = raw["Records"], parsed["Records"]
    raw_change, parsed_change = raw_record.pop("dynamodb"), parsed_record.pop("dynamodb")
    assert raw_record == parsed_record
    assert raw_change.pop("ApproximateCreationDateTime") == parsed_change.pop("ApproximateCreationDateTime").timestamp()
    assert raw_change["NewImage"].pop("blob") == {"B": base64.b64encode(b"\x00\x01\xfe\xff").decode()}
    assert raw_change["NewImage"].pop("blobs") == {"BS": [base64.b64encode(b).decode() for b in (b"\x01", b"\x02")]}
    for name in ("blob", "blobs"):
        parsed_change["NewImage"].pop(name)
    assert raw_change == parsed_change
    assert raw["NextShardIterator"]


def test_dynamodb_requests_are_handled_one_at_a_time() -> None:
    # given: moto in this process with the tests' lock (the sandbox's server's: one_at_a_time), and an item
    with mock_aws(), atomic_dynamodb():
        db = _client("dynamodb", None)
        db.create_table(
            TableName="Calls",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        db.put_item(TableName="Calls", Item=ITEM)
        backend = dynamodb_backends[ACCOUNT][REGION]
        spans: list[tuple[str, float, float]] = []

        def slowed(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
            def run(*args: Any, **kwargs: Any) -> Any:
                began = time.monotonic()
                time.sleep(0.05)  # a request long enough for the other thread's to start meanwhile
                try:
                    return original(*args, **kwargs)
                finally:
                    spans.append((name, began, time.monotonic()))

            return run

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(backend, "get_item", slowed("read", backend.get_item))
            patch.setattr(backend, "update_item", slowed("write", backend.update_item))
            # when: a GetItem and an UpdateItem of the item at once, from two threads
            key = {"pk": {"S": "call-1"}}
            add = {"UpdateExpression": "ADD version :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}
            threads = [
                threading.Thread(target=lambda: db.get_item(TableName="Calls", Key=key)),
                threading.Thread(target=lambda: db.update_item(TableName="Calls", Key=key, **add)),
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    # then: the GetItem's read, the UpdateItem's read of the item as it was and its write never overlapped
    ordered = sorted(spans, key=lambda span: span[1])
    assert sorted(name for name, _, _ in spans) == ["read", "read", "write"]
    assert all(later[1] >= earlier[2] for earlier, later in itertools.pairwise(ordered)), ordered
