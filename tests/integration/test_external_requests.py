"""Call requests dropped on CallsQueue by other AWS services, through functions/placer/app.py against moto.

`{"account_id": ..., "params": {<POST /pcall/call parameters>}, "idempotency_key": ...}` becomes a call exactly
like POST /pcall/call; an invalid one is stored FAILED with the reason; an unknown account is dropped. None of
them is retried: a retry could not change the answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from callbridge.adapters.aws import client as aws_client
from callbridge.domain.calls import Call, CallStatus

from tests.conftest import AccountCredentials, ApiClient, json_log_lines, load_event, make_account, queue_messages
from tests.integration.conftest import stored_calls
from tests.integration.fakes import (
    FakeTwilio,
    failed_ids,
    invoke_placer,
    moto_stack,
    queue_call,
    receive,
    sqs_event,
    stored,
)


@pytest.fixture
def aws() -> Iterator[Any]:
    """The template's stack in moto, built faster than the shared fixture (see fakes.moto_stack)."""
    yield from moto_stack()


PARAMS = {"to": "12812345670", "answer_play": "http://example.com/file.wav"}


def send(stack: Any, *messages: dict[str, Any] | str) -> None:
    """Messages sent to CallsQueue as EventBridge, SNS or another Lambda would send them."""
    sqs = aws_client("sqs")
    for message in messages:
        body = message if isinstance(message, str) else json.dumps(message)
        sqs.send_message(QueueUrl=stack.refs["CallsQueue"], MessageBody=body)


def deliver(module: ModuleType, stack: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Hand everything on CallsQueue to the placer in one batch."""
    messages = receive(stack)
    assert messages
    return invoke_placer(module, sqs_event(stack, messages)), messages


def calls_of(stack: Any) -> list[Call]:
    return [Call.model_validate(item) for item in stored_calls(stack)]


def test_a_valid_request_becomes_a_queued_call_and_its_queue_message(
    placer_module: ModuleType, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given
    send(aws, {"account_id": account.api_key, "params": PARAMS})

    # when
    with json_log_lines(placer_module) as lines:
        result, _ = deliver(placer_module, aws)

    # then: stored QUEUED with the account's defaults, and its {"callid"} is on the queue for the placer
    assert failed_ids(result) == []
    (call,) = calls_of(aws)
    # the placer's line names the call it became, as a field an operator filters on
    assert [line["callid"] for line in lines if line["message"] == "external call request"] == [call.callid]
    assert call.status is CallStatus.QUEUED
    assert call.account_id == account.api_key
    assert call.source == "sqs"
    assert call.request["to"] == "+12812345670"
    assert call.request["from"] == "+12815550100"
    assert queue_messages(aws) == [{"callid": call.callid}]
    assert twilio.requests == []  # placed when its own message comes, at the carrier's pace


def test_flat_params_next_to_the_account_id(placer_module: ModuleType, aws: Any, account: AccountCredentials) -> None:
    send(aws, {"account_id": account.api_key, **PARAMS, "record": "YES"})

    result, _ = deliver(placer_module, aws)

    assert failed_ids(result) == []
    (call,) = calls_of(aws)
    assert call.status is CallStatus.QUEUED
    assert call.request["record"] == "YES"
    assert queue_messages(aws) == [{"callid": call.callid}]


INVALID = {
    "no to": ({"answer_play": "http://example.com/file.wav"}, "to: "),
    "no answer option": ({"to": "12812345670"}, "answer_"),
    "speak without lang": ({"to": "12812345670", "answer_speak": "Hello"}, "answer_speak_lang"),
    "bad record": ({**PARAMS, "record": "MAYBE"}, "record"),
}


def test_invalid_requests_are_stored_failed_with_the_reason_and_not_retried(
    placer_module: ModuleType, api_module: ModuleType, aws: Any, account: AccountCredentials
) -> None:
    # given
    for params, _reason in INVALID.values():
        send(aws, {"account_id": account.api_key, "params": params})

    # when: they arrive in one batch
    result, _ = deliver(placer_module, aws)

    # then: done with (no retry), each stored FAILED with why, nothing queued to dial
    assert failed_ids(result) == []
    calls = calls_of(aws)
    assert len(calls) == len(INVALID)
    for name, (params, reason) in INVALID.items():
        (call,) = [c for c in calls if c.request == params]
        assert call.status is CallStatus.FAILED, name
        assert call.error_code == "invalid_request", name
        assert reason in (call.error_desc or ""), (name, call.error_desc)
        assert call.ended_at is not None, name
    assert queue_messages(aws) == []
    # and: the account sees them, with the reasons, in GET /pcall/calls
    api = ApiClient(api_module, auth=(account.api_key, account.password))
    listed = api.get("/pcall/calls", query={"status": "FAILED"})
    assert listed.status == 200
    shown = {c["callid"]: c for c in listed.data["calls"]}
    assert {callid: c["error_desc"] for callid, c in shown.items()} == {c.callid: c.error_desc for c in calls}
    assert all(c["status"] == "FAILED" for c in shown.values())


def test_requests_for_no_usable_account_are_dropped(placer_module: ModuleType, aws: Any, accounts_store: Any) -> None:
    # given: an unknown account, a disabled one, and none at all
    disabled = make_account(accounts_store).account
    accounts_store.put_account(disabled.model_copy(update={"enabled": False}))
    for account_id in ("cb_000000000000000000000000", disabled.api_key, ""):
        send(aws, {"account_id": account_id, "params": PARAMS})

    # when
    result, messages = deliver(placer_module, aws)

    # then: not retried forever, nothing stored, nothing queued
    assert len(messages) == 3
    assert failed_ids(result) == []
    assert calls_of(aws) == []
    assert queue_messages(aws) == []


def test_an_idempotency_key_makes_a_repeated_request_one_call(
    placer_module: ModuleType, aws: Any, account: AccountCredentials
) -> None:
    # given: the same request three times (a retrying sender), twice in one batch and once later
    message = {"account_id": account.api_key, "idempotency_key": "order-1234", "params": PARAMS}
    send(aws, message, message)
    first, _ = deliver(placer_module, aws)
    dial = queue_messages(aws)
    send(aws, message)
    again, _ = deliver(placer_module, aws)

    # then: one call, one message to dial it
    assert failed_ids(first) == []
    assert failed_ids(again) == []
    (call,) = calls_of(aws)
    assert call.status is CallStatus.QUEUED
    assert dial == [{"callid": call.callid}]
    assert queue_messages(aws) == []


def test_without_an_idempotency_key_each_request_is_a_call(
    placer_module: ModuleType, aws: Any, account: AccountCredentials
) -> None:
    message = {"account_id": account.api_key, "params": PARAMS}
    send(aws, message, message)

    deliver(placer_module, aws)

    assert len(calls_of(aws)) == 2


def test_a_message_that_is_not_a_json_object_is_dropped(placer_module: ModuleType, aws: Any) -> None:
    send(aws, "to=12812345670", '["callid"]')

    result, messages = deliver(placer_module, aws)

    assert len(messages) == 2
    assert failed_ids(result) == []
    assert calls_of(aws) == []


def test_the_sample_batch_places_a_call_and_accepts_a_request(
    placer_module: ModuleType, aws: Any, account: AccountCredentials, twilio: FakeTwilio
) -> None:
    # given: events/placer_sqs_batch.json — a {"callid"} and an external request — for this stack's data
    event = load_event("placer_sqs_batch.json")
    queued = queue_call(aws, account)
    receive(aws)  # the placer's own message is in flight elsewhere
    placed, external = event["Records"]
    placed["body"] = json.dumps({"callid": queued})
    request = json.loads(external["body"])
    external["body"] = json.dumps({**request, "account_id": account.api_key})

    # when
    result = invoke_placer(placer_module, event)

    # then: nothing to retry; the queued call was dialed, the request became a call of its own
    assert result == {"batchItemFailures": []}
    assert stored(aws, queued).status is CallStatus.DIALING
    assert len(twilio.creates) == 1
    (new,) = [c for c in calls_of(aws) if c.callid != queued]
    assert (new.status, new.source) == (CallStatus.QUEUED, "sqs")
    assert queue_messages(aws) == [{"callid": new.callid}]
