"""Campaigns against moto: the API's contracts, the fan-out, the release at the campaign's pace, pause/resume/cancel
(and their race with the placer), exact counts under redelivery, the report and the campaign's callback.

The campaigns function is driven with SQS events built from messages really received from CampaignsQueue, and
with stream records built from CallsTable's items, as Lambda would deliver them.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from callbridge.adapters.aws import client as aws_client
from callbridge.adapters.campaigns import DynamoCampaignsStore
from callbridge.adapters.dynamodb.calls import DynamoCallsStore
from callbridge.domain import events
from callbridge.domain.attempts import end_attempt
from callbridge.domain.calls import Attempt, Call, CallStatus
from callbridge.domain.campaigns import SUPPRESSED_AT_INTAKE
from callbridge.domain.dispatch import dispatched_event
from callbridge.domain.errors import ServiceUnavailable
from callbridge.logic.campaigns import REPORT_COLUMNS

from tests.conftest import AccountCredentials, ApiClient, LambdaContext, fresh_module
from tests.integration.conftest import START, Clock, add_ivr
from tests.integration.fakes import FakeTwilio, atomic_dynamodb, invoke_placer, moto_stack, receive, sqs_event
from tests.integration.test_api_lists import ids, schedule, walk

PLAY = "https://example.com/hello.wav"


@pytest.fixture
def aws() -> Iterator[Any]:
    yield from moto_stack()


@pytest.fixture
def api_module(aws: Any) -> ModuleType:
    """The api function with a carrier of 10 calls per second (the template's default is 1)."""
    module = fresh_module("functions.api.app", {**aws.environment("ApiFunction"), "CARRIER_CPS": "10"})
    module.deps()  # read the settings now: other functions' cold starts change the environment
    return module


@pytest.fixture
def worker_module(aws: Any) -> ModuleType:
    return fresh_module("functions.campaigns.app", aws.environment("CampaignsFunction"))


@pytest.fixture
def work_sent(worker_module: ModuleType) -> list[tuple[dict[str, Any], int]]:
    """Every (message, delay) the campaigns function sends to CampaignsQueue (sent at once: no test waits)."""
    queue = worker_module.deps().worker.queue
    sent: list[tuple[dict[str, Any], int]] = []
    original = queue.send

    def spy(messages: list[tuple[dict[str, Any], int]]) -> None:
        sent.extend(messages)
        original([(body, 0) for body, _delay in messages])

    queue.send = spy
    return sent


def campaign_body(n: int, **extra: Any) -> dict[str, Any]:
    calls = [{"to": f"1281234{i:04d}", "metadata": {"row": str(i)}} for i in range(n)]
    return {"name": "reminders", "defaults": {"answer_play": PLAY}, "calls": calls, **extra}


def post_campaign(api: ApiClient, body: Any, **kwargs: Any) -> Any:
    text = body if isinstance(body, str) else json.dumps(body)
    kwargs.setdefault("content_type", "application/json")
    return api.request("POST", "/pcall/campaigns", body=text, **kwargs)


def campaign_messages(stack: Any, kinds: set[str] | None = None) -> list[dict[str, Any]]:
    """Receive every visible CampaignsQueue message of `kinds` (hidden for a while, so each is seen once); the
    others are made visible again."""
    sqs = aws_client("sqs")
    found: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=stack.refs["CampaignsQueue"], MaxNumberOfMessages=10, VisibilityTimeout=300, AttributeNames=["All"]
    ).get("Messages", []):
        for message in batch:
            wanted = kinds is None or json.loads(message["Body"])["kind"] in kinds
            (found if wanted else others).append(message)
    for message in others:
        sqs.change_message_visibility(
            QueueUrl=stack.refs["CampaignsQueue"], ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    return found


def run_worker(module: ModuleType, stack: Any, messages: list[dict[str, Any]]) -> dict[str, Any]:
    arn = stack.attrs[("CampaignsQueue", "Arn")]
    event = sqs_event(stack, messages)
    for record in event["Records"]:
        record["eventSourceARN"] = arn
    timeout = int(stack.template["Resources"]["CampaignsFunction"]["Properties"]["Timeout"])
    result: dict[str, Any] = module.lambda_handler(event, LambdaContext(remaining_ms=timeout * 1000))
    return result


def drain(module: ModuleType, stack: Any, kinds: set[str] | None = None) -> list[dict[str, Any]]:
    """Run the campaigns function on the queue's messages (of `kinds`) until none is left; the bodies handled."""
    handled: list[dict[str, Any]] = []
    while messages := campaign_messages(stack, kinds):
        run_worker(module, stack, messages)
        handled.extend(json.loads(m["Body"]) for m in messages)
    return handled


def stream_record(item: dict[str, Any], seq: int, name: str = "MODIFY") -> dict[str, Any]:
    return {
        "eventID": f"e{seq}",
        "eventName": name,
        "eventSource": "aws:dynamodb",
        "dynamodb": {"NewImage": item, "SequenceNumber": str(seq), "StreamViewType": "NEW_AND_OLD_IMAGES"},
    }


def raw_call(stack: Any, callid: str) -> dict[str, Any]:
    item: dict[str, Any] = aws_client("dynamodb").get_item(
        TableName=stack.refs["CallsTable"], Key={"callid": {"S": callid}}
    )["Item"]
    return item


def calls_store(stack: Any) -> DynamoCallsStore:
    return DynamoCallsStore(stack.refs["CallsTable"])


def campaigns_store(stack: Any) -> DynamoCampaignsStore:
    return DynamoCampaignsStore(stack.refs["CampaignsTable"])


def finish(stack: Any, callid: str, status: CallStatus, answered_by: str = "", billed: int = 0) -> Call:
    """Move a stored call to a final outcome (what the carrier's callbacks do)."""

    def change(call: Call) -> Call:
        return call.model_copy(
            update={"status": status, "answered_by": answered_by, "billed_seconds": billed, "ended_at": call.updated_at}
        )

    stored = calls_store(stack).update(callid, change)
    assert stored is not None
    return stored


def created(api: ApiClient, body: Any, **kwargs: Any) -> dict[str, Any]:
    response = post_campaign(api, body, **kwargs)
    assert response.status == 200, response.body
    campaign: dict[str, Any] = response.data["campaign"]
    return campaign


def campaign_calls(stack: Any, campaign_id: str) -> list[Call]:
    callids, _ = campaigns_store(stack).members(campaign_id)
    return [c for c in (calls_store(stack).get(i) for i in callids) if c is not None]


# --- accepting -------------------------------------------------------------------------------------


def test_a_json_campaign_is_accepted_whole_and_counted_as_waiting(api: ApiClient, aws: Any) -> None:
    response = post_campaign(api, campaign_body(3, calls_per_second=1, max_in_progress=2))

    assert response.status == 200, response.body
    assert response.data["code"] == 200
    assert response.data["code_desc"] == ""
    campaign = response.data["campaign"]
    assert set(campaign) >= {"id", "name", "status", "total", "created_at", "counts", "answered", "billed_seconds"}
    assert campaign["name"] == "reminders"
    assert campaign["status"] == "RUNNING"
    assert campaign["total"] == 3
    assert campaign["counts"]["SCHEDULED"] == 3
    assert sum(campaign["counts"].values()) == 3
    assert campaign["answered"] == {"Person": 0, "Machine": 0}
    assert campaign["max_in_progress"] == 2
    kinds = sorted(json.loads(m["Body"])["kind"] for m in campaign_messages(aws))
    assert kinds == ["fanout", "tick"]


def test_every_bad_call_is_listed_and_nothing_is_created(api: ApiClient, aws: Any) -> None:
    body = campaign_body(4)
    body["calls"][1]["to"] = "12"
    body["calls"][2] = {"to": "18005550100", "call_date": "2030-01-01 10:00", "call_window": "09:00-10:00"}
    body["calls"][3] = {"to": "12812345670", "answer_speak": "hi"}

    response = post_campaign(api, {**body, "calls_per_second": 11})

    assert response.status == 400
    fields = {e["field"]: e["message"] for e in response.data["errors"]}
    assert "calls.1.to" in fields
    assert fields["calls.2.call_date"] == "is more than 365 days ahead"
    assert fields["calls.2.call_window"].startswith("is never open in every time zone")  # a toll-free number
    assert "calls.3.answer_speak_lang" in fields
    assert fields["calls_per_second"].startswith("must be at most the carrier's")
    assert api.get("/pcall/campaigns").data["campaigns"] == []
    assert campaign_messages(aws) == []


def test_a_json_key_given_twice_is_named_with_every_other_problem_and_nothing_is_created(
    api: ApiClient, aws: Any
) -> None:
    # each last value is valid: json.loads alone would have created the campaign with it
    text = json.dumps(campaign_body(2, calls_per_second=1))
    text = text.replace('"name": "reminders"', '"name": "x", "name": "reminders"')
    text = text.replace('"answer_play": ', '"answer_play": "ftp://x", "answer_play": ')
    text = text.replace('{"to": "12812340001"', '{"to": "1", "to": "12812340001"')
    text = text.replace('{"row": "1"}', '{"row": "0", "row": "1"}')
    text = text.replace('"calls_per_second": 1', '"calls_per_second": 1, "max_in_progress": 0')

    response = post_campaign(api, text)

    assert response.status == 400, response.body
    assert [(e["field"], e["message"]) for e in response.data["errors"]] == [
        ("name", "given more than once"),
        ("defaults.answer_play", "given more than once"),
        ("calls.1.to", "given more than once"),
        ("calls.1.metadata.row", "given more than once"),
        ("max_in_progress", "must be a whole number greater than 0"),
    ]
    assert api.get("/pcall/campaigns").data["campaigns"] == []
    assert campaign_messages(aws) == []


def test_a_csv_campaign_reads_metadata_columns_and_names_bad_lines(api: ApiClient, aws: Any) -> None:
    good = "to,answer_play,metadata.order\n12812340001,https://example.com/a.wav,A-1\n12812340002,,B-2\n"
    query = {"name": "pharmacy", "answer_play": PLAY, "calls_per_second": "1"}

    campaign = created(api, good, content_type="text/csv", query=query)
    bad = post_campaign(api, "to,answer_play\n12812340001,\nnot-a-number,\n", content_type="text/csv", query=query)

    assert campaign["total"] == 2
    assert campaign["name"] == "pharmacy"
    stored = campaigns_store(aws).chunks(campaign["id"])
    assert [c.metadata for c in stored] == [{"order": "A-1"}, {"order": "B-2"}]
    assert stored[1].request["answer_play"] == PLAY  # the query's default fills the empty cell
    assert bad.status == 400
    assert [e["field"] for e in bad.data["errors"]] == ["calls.3.to"]  # line 3 of the file


def test_a_csv_campaigns_query_parameter_given_twice_is_named_with_its_other_problems(api: ApiClient, aws: Any) -> None:
    # API Gateway joins a repeated parameter's values with commas: "pharmacy,clinic" must not pass as one name
    query = [("name", "pharmacy"), ("name", "clinic"), ("answer_play", PLAY)]

    bad = post_campaign(api, "to\n12812340001\nnot-a-number\n", content_type="text/csv", query=query)

    assert bad.status == 400
    assert [(e["field"], e["message"]) for e in bad.data["errors"]] == [
        ("name", "given more than once"),
        ("calls.3.to", bad.data["errors"][1]["message"]),
    ]
    assert api.get("/pcall/campaigns").data["campaigns"] == []
    assert campaign_messages(aws) == []


def test_an_unknown_ivr_menu_and_an_unreadable_csv_row_are_listed_with_every_other_bad_call(
    api: ApiClient, aws: Any
) -> None:
    body = campaign_body(3)
    body["calls"][0] = {"to": "12812345670", "answer_ivr": "nosuch"}
    body["calls"][2]["to"] = "12"
    csv_body = "to,answer_ivr\nbad,\n12812345670,nosuch\n12812345670,main,extra\n"

    as_json = post_campaign(api, body)
    as_csv = post_campaign(api, csv_body, content_type="text/csv", query={"name": "n", "answer_play": PLAY})

    assert as_json.status == 400
    assert [e["field"] for e in as_json.data["errors"]] == ["calls.0.answer_ivr", "calls.2.to"]
    assert as_json.data["errors"][0]["message"] == "unknown IVR menu code 'nosuch' for this account"
    assert as_csv.status == 400
    assert [e["field"] for e in as_csv.data["errors"]] == ["calls.2.to", "calls.3.answer_ivr", "calls.4"]
    assert api.get("/pcall/campaigns").data["campaigns"] == []
    assert campaign_messages(aws) == []


def test_a_bad_call_is_named_with_the_accounts_rules_its_other_fields_break(api: ApiClient, aws: Any) -> None:
    # as POST /pcall/call names them: the bad field and the past call_date at once, not the date on a second try
    body = campaign_body(3)
    body["calls"][1] = {"to": "12812345670", "record": "MAYBE", "call_date": "2020-01-01 10:00"}
    csv_body = "to,record,call_date\n12812340001,,\n12812340002,MAYBE,2020-01-01 10:00\n"

    as_json = post_campaign(api, body)
    as_csv = post_campaign(api, csv_body, content_type="text/csv", query={"name": "n", "answer_play": PLAY})

    assert as_json.status == 400, as_json.body
    assert [e["field"] for e in as_json.data["errors"]] == ["calls.1.record", "calls.1.call_date"]
    assert as_json.data["errors"][0]["message"] == "must be YES or NO"
    assert as_json.data["errors"][1]["message"].startswith("is in the past")
    assert as_csv.status == 400, as_csv.body
    assert [e["field"] for e in as_csv.data["errors"]] == ["calls.3.record", "calls.3.call_date"]
    assert api.get("/pcall/campaigns").data["campaigns"] == []
    assert campaign_messages(aws) == []


def test_a_wrong_default_is_named_once_where_it_was_written_and_not_for_a_call_that_overrides_it(
    api: ApiClient, aws: Any
) -> None:
    # the second call gives its own valid voice; the first and third take the query's (the defaults') wrong one
    csv_body = "to,answer_tts_voice\n12812340001,\n12812340002,Joanna\n12812340003,\n"
    query = {"name": "n", "answer_tts": "Hello", "answer_tts_voice": "Bogus", "calls_per_second": "0"}
    calls = [{"to": "12812340001"}, {"to": "12812340002", "answer_tts_voice": "Joanna"}, {"to": "12812340003"}]
    body = {"name": "n", "defaults": {"answer_tts": "Hello", "answer_tts_voice": "Bogus"}, "calls": calls}

    as_csv = post_campaign(api, csv_body, content_type="text/csv", query=query)
    as_json = post_campaign(api, body)

    assert as_csv.status == 400, as_csv.body
    voice = as_csv.data["errors"][1]["message"]
    assert voice.startswith("must be an Amazon Polly voice id")
    # named like the query's other parameters (calls_per_second), by its name
    assert [(e["field"], e["message"]) for e in as_csv.data["errors"]] == [
        ("calls_per_second", "must be a number greater than 0"),
        ("answer_tts_voice", voice),
    ]
    assert as_json.status == 400, as_json.body
    assert [(e["field"], e["message"]) for e in as_json.data["errors"]] == [("defaults.answer_tts_voice", voice)]
    assert as_json.data["code_desc"] == f"defaults.answer_tts_voice: {voice}"
    assert api.get("/pcall/campaigns").data["campaigns"] == []
    assert campaign_messages(aws) == []


def test_a_campaign_keeps_the_menus_of_its_calls_not_a_defaults_every_call_overrides(
    api: ApiClient, account: AccountCredentials, aws: Any
) -> None:
    # the default's menu is looked up (it could have been named once as unknown) but no call plays it
    add_ivr(aws, account.api_key, "main")
    add_ivr(aws, account.api_key, "unused")
    body = {"name": "n", "defaults": {"answer_ivr": "unused"}, "calls": [{"to": "12812345670", "answer_ivr": "main"}]}

    campaign = created(api, body)

    stored = campaigns_store(aws).get(campaign["id"])
    assert stored is not None
    assert list(stored.ivr_menus) == ["main"]


def test_an_idempotency_key_replays_the_first_campaign(api: ApiClient) -> None:
    body = campaign_body(2)
    first = post_campaign(api, body, headers={"Idempotency-Key": "k-1"})
    again = post_campaign(api, body, headers={"Idempotency-Key": "k-1"})
    other = post_campaign(api, campaign_body(3), headers={"Idempotency-Key": "k-1"})

    assert first.status == again.status == 200
    assert again.data["campaign"]["id"] == first.data["campaign"]["id"]
    assert other.status == 409
    assert len(api.get("/pcall/campaigns").data["campaigns"]) == 1


def test_another_accounts_campaign_is_not_found(api: ApiClient, other_api: ApiClient) -> None:
    campaign = created(api, campaign_body(1))
    path = f"/pcall/campaigns/{campaign['id']}"

    assert other_api.get(path).status == 404
    assert other_api.request("POST", f"{path}/pause", body="", content_type=None).status == 404
    assert other_api.request("POST", f"{path}/resume", body="", content_type=None).status == 404
    assert other_api.delete(path).status == 404
    assert other_api.get(f"{path}/report.csv").status == 404
    assert other_api.get("/pcall/calls", query={"campaign": campaign["id"]}).status == 404
    assert api.get(path).status == 200


def test_control_requests_the_state_does_not_allow_are_409(api: ApiClient) -> None:
    campaign = created(api, campaign_body(1))
    path = f"/pcall/campaigns/{campaign['id']}"

    assert api.request("POST", f"{path}/resume", body="", content_type=None).status == 409  # RUNNING
    assert api.request("POST", f"{path}/pause", body="", content_type=None).data["campaign"]["status"] == "PAUSED"
    assert api.request("POST", f"{path}/pause", body="", content_type=None).status == 409
    assert api.request("POST", f"{path}/resume", body="", content_type=None).data["campaign"]["status"] == "RUNNING"
    assert api.delete(path).data["campaign"]["status"] == "CANCELED"
    assert api.delete(path).status == 409
    assert api.request("POST", f"{path}/resume", body="", content_type=None).status == 409


def test_campaigns_are_listed_newest_first_a_page_at_a_time(api: ApiClient, clock: Any) -> None:
    ids = []
    for _ in range(3):
        ids.append(created(api, campaign_body(1))["id"])
        clock.advance(seconds=1)

    first = api.get("/pcall/campaigns", query={"limit": "2"}).data
    second = api.get("/pcall/campaigns", query={"limit": "2", "next": first["next"]}).data

    assert [c["id"] for c in first["campaigns"] + second["campaigns"]] == ids[::-1]
    assert second["next"] is None


# --- fan-out and release ---------------------------------------------------------------------------


def test_the_fan_out_stores_each_call_once_even_when_its_message_comes_twice(
    api: ApiClient, aws: Any, worker_module: ModuleType
) -> None:
    campaign = created(api, campaign_body(150, calls_per_second=1))
    messages = campaign_messages(aws, {"fanout"})

    run_worker(worker_module, aws, messages)
    run_worker(worker_module, aws, messages)  # redelivered

    calls = campaign_calls(aws, campaign["id"])
    assert len(messages) == 2  # 100 calls per chunk
    assert len(calls) == 150
    assert len({c.callid for c in calls}) == 150
    assert {c.status for c in calls} == {CallStatus.SCHEDULED}
    assert {c.campaign for c in calls} == {campaign["id"]}
    mine = [c for c in calls if c.campaign == campaign["id"]]
    assert len(mine) == 150
    by_account = api.get("/pcall/calls", query={"limit": "100"}).data["calls"]
    assert len(by_account) == 100  # ordinary calls of the account


def test_a_fan_out_message_that_comes_back_after_a_partial_run_finishes_its_chunk(
    api: ApiClient, aws: Any, worker_module: ModuleType
) -> None:
    # given a chunk whose first run stored some of its calls and then failed (a timeout, an outage)
    campaign = created(api, campaign_body(5, calls_per_second=1))
    (message,) = campaign_messages(aws, {"fanout"})
    worker = worker_module.deps().worker
    real_add_waiting = worker.campaigns.add_waiting

    def outage(*_args: Any) -> None:
        raise ServiceUnavailable("campaign storage unavailable")

    worker.campaigns.add_waiting = outage
    failed = run_worker(worker_module, aws, [message])
    worker.campaigns.add_waiting = real_add_waiting

    # when it comes back, then its calls are all stored, once, and waiting
    again = run_worker(worker_module, aws, [message])

    assert failed["batchItemFailures"] == [{"itemIdentifier": message["MessageId"]}]
    assert not again.get("batchItemFailures")
    assert len(campaign_calls(aws, campaign["id"])) == 5
    assert len(campaigns_store(aws).waiting(campaign["id"], 10)) == 5
    assert campaigns_store(aws).header(campaign["id"])["fanned_out"] == {0}  # type: ignore[index]


def test_a_fan_out_out_of_time_goes_on_from_the_next_call_in_a_new_message(
    api: ApiClient, aws: Any, worker_module: ModuleType
) -> None:
    campaign = created(api, campaign_body(5))
    (message,) = campaign_messages(aws, {"fanout"})
    worker = worker_module.deps().worker
    clock = iter(range(1000))
    worker.now = lambda: float(next(clock))  # a second per look: 0 (before reading), then 1, 2, 3 (the deadline)

    first = worker.fanout(campaign["id"], json.loads(message["Body"])["chunk"], deadline=4.0)
    stored_first = len(campaign_calls(aws, campaign["id"]))
    (follow_up,) = campaign_messages(aws, {"fanout"})
    worker.now = time.time
    handled = drain(worker_module, aws, {"fanout"}) if run_worker(worker_module, aws, [follow_up]) else []

    assert (first, stored_first) == (3, 3)
    assert json.loads(follow_up["Body"])["from"] == 3
    assert handled == []  # the follow-up finished the chunk: no further message
    calls = campaign_calls(aws, campaign["id"])
    assert len(calls) == 5
    assert len(campaigns_store(aws).waiting(campaign["id"], 10)) == 5
    assert campaigns_store(aws).header(campaign["id"])["fanned_out"] == {0}  # type: ignore[index]
    # a message whose batch has used the invocation's time up stores nothing, and is sent again as it is
    assert worker.fanout(campaign["id"], 0, start=2, deadline=time.time() - 1) == 0
    (again,) = campaign_messages(aws, {"fanout"})
    assert json.loads(again["Body"])["from"] == 2


def test_each_release_step_sends_calls_per_second_calls_and_chains_on(
    api: ApiClient, aws: Any, worker_module: ModuleType, work_sent: list[tuple[dict[str, Any], int]]
) -> None:
    campaign = created(api, campaign_body(5, calls_per_second=2))
    drain(worker_module, aws, {"fanout"})

    ticks = campaign_messages(aws, {"tick"})
    run_worker(worker_module, aws, ticks)
    run_worker(worker_module, aws, ticks)  # a redelivered step releases nothing more

    queued = [json.loads(m["Body"])["callid"] for m in receive(aws, limit=10)]
    assert len(queued) == 2
    statuses = sorted(c.status.value for c in campaign_calls(aws, campaign["id"]))
    assert statuses == ["QUEUED", "QUEUED", "SCHEDULED", "SCHEDULED", "SCHEDULED"]
    assert [(m["seq"], delay) for m, delay in work_sent if m["kind"] == "tick"] == [(2, 1)]  # one second later


def test_max_in_progress_holds_calls_back_until_others_end(
    api: ApiClient, aws: Any, worker_module: ModuleType, work_sent: Any
) -> None:
    campaign = created(api, campaign_body(4, calls_per_second=10, max_in_progress=1))
    drain(worker_module, aws, {"fanout"})
    drain_ticks(worker_module, aws, steps=1)
    count_changes(worker_module, aws, campaign["id"])

    drain_ticks(worker_module, aws, steps=2)  # one call in progress: nothing more goes out
    held = sorted(c.status.value for c in campaign_calls(aws, campaign["id"]))
    first = next(c for c in campaign_calls(aws, campaign["id"]) if c.status is CallStatus.QUEUED)
    finish(aws, first.callid, CallStatus.COMPLETED, "Person", 5)
    count_changes(worker_module, aws, campaign["id"])
    drain_ticks(worker_module, aws, steps=1)  # it ended: the next one goes out

    assert held == ["QUEUED", "SCHEDULED", "SCHEDULED", "SCHEDULED"]
    after = sorted(c.status.value for c in campaign_calls(aws, campaign["id"]))
    assert after == ["COMPLETED", "QUEUED", "SCHEDULED", "SCHEDULED"]


def drain_ticks(module: ModuleType, stack: Any, steps: int) -> None:
    for _ in range(steps):
        ticks = campaign_messages(stack, {"tick"})
        if ticks:
            run_worker(module, stack, ticks)


_seq = iter(range(10**6, 10**9))


def count_changes(module: ModuleType, stack: Any, campaign_id: str, copies: int = 1) -> None:
    """Deliver one stream record per call of the campaign, as it is now, `copies` times."""
    records = [stream_record(raw_call(stack, c.callid), next(_seq)) for c in campaign_calls(stack, campaign_id)]
    for _ in range(copies):
        result = module.lambda_handler({"Records": records}, LambdaContext())
        assert not result.get("batchItemFailures")


# --- counts ----------------------------------------------------------------------------------------


def test_counts_are_exact_under_duplicate_and_out_of_order_delivery(
    api: ApiClient, aws: Any, worker_module: ModuleType
) -> None:
    campaign = created(api, campaign_body(4))
    drain(worker_module, aws, {"fanout"})
    calls = campaign_calls(aws, campaign["id"])
    finish(aws, calls[0].callid, CallStatus.COMPLETED, "Person", 30)
    old = stream_record(raw_call(aws, calls[1].callid), 5)
    finish(aws, calls[1].callid, CallStatus.COMPLETED, "Machine", 12)
    new = stream_record(raw_call(aws, calls[1].callid), 9)
    finish(aws, calls[2].callid, CallStatus.BUSY)
    first = stream_record(raw_call(aws, calls[0].callid), 7)
    busy = stream_record(raw_call(aws, calls[2].callid), 8)

    # every record twice, the newer of calls[1] before its older one, and one batch again
    for batch in ([first, first, new], [old, busy, busy], [first, new, old, busy]):
        assert not worker_module.lambda_handler({"Records": batch}, LambdaContext()).get("batchItemFailures")

    view = api.get(f"/pcall/campaigns/{campaign['id']}").data["campaign"]
    assert view["counts"]["COMPLETED"] == 2
    assert view["counts"]["BUSY"] == 1
    assert view["counts"]["SCHEDULED"] == 1
    assert sum(view["counts"].values()) == 4
    assert view["answered"] == {"Person": 1, "Machine": 1}
    assert view["billed_seconds"] == 42
    assert view["status"] == "RUNNING"


def test_a_stream_batch_is_counted_in_one_write_per_campaign(
    api: ApiClient, aws: Any, worker_module: ModuleType
) -> None:
    first, second = created(api, campaign_body(3)), created(api, campaign_body(2))
    drain(worker_module, aws, {"fanout"})
    records = []
    for campaign in (first, second):
        for call in campaign_calls(aws, campaign["id"]):  # each call seen twice: as stored, then ended
            records.append(stream_record(raw_call(aws, call.callid), next(_seq)))
            finish(aws, call.callid, CallStatus.COMPLETED, "Person", 10)
            records.append(stream_record(raw_call(aws, call.callid), next(_seq)))
    writes: list[str] = []
    db = worker_module.deps().worker.campaigns._db
    db.meta.events.register("before-call.dynamodb.TransactWriteItems", lambda **_: writes.append("tx"))
    db.meta.events.register("before-call.dynamodb.UpdateItem", lambda **_: writes.append("update"))
    db.meta.events.register("before-call.dynamodb.PutItem", lambda **_: writes.append("put"))

    result = worker_module.lambda_handler({"Records": records}, LambdaContext())

    assert not result.get("batchItemFailures")
    # one counting transaction per campaign; then each campaign's move to FINISHED
    assert writes == ["tx", "update", "tx", "update"]
    for campaign, size in ((first, 3), (second, 2)):
        view = api.get(f"/pcall/campaigns/{campaign['id']}").data["campaign"]
        assert {k: v for k, v in view["counts"].items() if v} == {"COMPLETED": size}
        assert view["answered"] == {"Person": size, "Machine": 0}
        assert view["billed_seconds"] == 10 * size
        assert view["status"] == "FINISHED"


def test_a_campaign_whose_counting_fails_sends_the_batch_back_from_its_first_record(
    api: ApiClient, aws: Any, worker_module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted, failing = created(api, campaign_body(1)), created(api, campaign_body(2))
    drain(worker_module, aws, {"fanout"})
    for campaign in (counted, failing):
        for call in campaign_calls(aws, campaign["id"]):
            finish(aws, call.callid, CallStatus.BUSY)
    ok = [stream_record(raw_call(aws, c.callid), next(_seq)) for c in campaign_calls(aws, counted["id"])]
    bad = [stream_record(raw_call(aws, c.callid), next(_seq)) for c in campaign_calls(aws, failing["id"])]
    store = worker_module.deps().worker.campaigns
    real_count = store.count

    def count(campaign_id: str, changes: Any) -> int:
        if campaign_id == failing["id"]:
            raise ServiceUnavailable("campaign storage unavailable")
        return int(real_count(campaign_id, changes))

    monkeypatch.setattr(store, "count", count)
    result = worker_module.lambda_handler({"Records": [bad[0], *ok, bad[1]]}, LambdaContext())
    monkeypatch.setattr(store, "count", real_count)
    again = worker_module.lambda_handler({"Records": [bad[0], *ok, bad[1]]}, LambdaContext())  # the stream's retry

    assert result["batchItemFailures"] == [{"itemIdentifier": bad[0]["dynamodb"]["SequenceNumber"]}]
    assert not again.get("batchItemFailures")
    for campaign, size in ((counted, 1), (failing, 2)):
        view = api.get(f"/pcall/campaigns/{campaign['id']}").data["campaign"]
        assert {k: v for k, v in view["counts"].items() if v} == {"BUSY": size}  # the retry counted nothing twice


def test_the_last_final_call_finishes_the_campaign_and_notifies_once(
    api: ApiClient, aws: Any, worker_module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign = created(api, campaign_body(2, callback_url="https://example.com/done"))
    drain(worker_module, aws, {"fanout"})
    sent: list[tuple[str, bytes, dict[str, str]]] = []
    worker = worker_module.deps().worker

    def send(url: str, body: bytes, headers: dict[str, str]) -> int:
        sent.append((url, body, dict(headers)))
        return 200

    monkeypatch.setattr(worker.sender, "send", send)
    for call in campaign_calls(aws, campaign["id"]):
        finish(aws, call.callid, CallStatus.NO_ANSWER)

    count_changes(worker_module, aws, campaign["id"], copies=2)
    drain(worker_module, aws, {"notify"})

    view = api.get(f"/pcall/campaigns/{campaign['id']}").data["campaign"]
    assert view["status"] == "FINISHED"
    assert view["finished_at"]
    assert view["counts"]["NO_ANSWER"] == 2
    assert len(sent) == 1
    url, body, headers = sent[0]
    assert url == "https://example.com/done"
    assert json.loads(body)["campaign"]["status"] == "FINISHED"
    assert headers["X-Callbridge-Signature"]


# --- pause, resume, cancel and the placer ----------------------------------------------------------


@pytest.fixture
def released(api: ApiClient, aws: Any, worker_module: ModuleType) -> tuple[str, list[dict[str, Any]]]:
    """A running campaign of 3 calls, one of them released to CallsQueue (its message received)."""
    campaign = created(api, campaign_body(3, calls_per_second=1))
    drain(worker_module, aws, {"fanout"})
    drain_ticks(worker_module, aws, steps=1)
    return campaign["id"], receive(aws)


def test_a_call_released_before_a_pause_is_not_dialed_and_waits_again(
    api: ApiClient, aws: Any, placer_module: ModuleType, twilio: FakeTwilio, released: Any, worker_module: ModuleType
) -> None:
    # (the released fixture's first step sent the next one with a delay: it comes after the pause, and stops)
    campaign_id, messages = released
    api.request("POST", f"/pcall/campaigns/{campaign_id}/pause", body="", content_type=None)

    invoke_placer(placer_module, sqs_event(aws, messages))

    assert twilio.creates == []
    statuses = sorted(c.status.value for c in campaign_calls(aws, campaign_id))
    assert statuses == ["SCHEDULED"] * 3
    assert len(campaigns_store(aws).waiting(campaign_id, 10)) == 3  # all three wait for the resume
    # resume: the release chain starts again and the held call goes out first
    api.request("POST", f"/pcall/campaigns/{campaign_id}/resume", body="", content_type=None)
    drain_ticks(worker_module, aws, steps=1)
    again = receive(aws)
    assert [json.loads(m["Body"])["callid"] for m in again] == [json.loads(m["Body"])["callid"] for m in messages]


def test_pause_cancel_race_with_the_placer_is_won_by_exactly_one_side(
    api: ApiClient, aws: Any, placer_module: ModuleType, twilio: FakeTwilio, released: Any
) -> None:
    campaign_id, messages = released
    gate = placer_module.deps().placer.campaigns
    store = gate.campaigns
    original = store.get
    reads: list[str] = []

    def pause_just_before_the_read(campaign: str) -> Any:
        # the pause lands after the placer's claim and before its read of the campaign
        if not reads:
            api.request("POST", f"/pcall/campaigns/{campaign}/pause", body="", content_type=None)
        reads.append(campaign)
        return original(campaign)

    store.get = pause_just_before_the_read
    invoke_placer(placer_module, sqs_event(aws, messages))
    store.get = original

    assert twilio.creates == []  # the pause won: nothing dialed
    assert reads == [campaign_id]


def test_a_pause_after_the_placers_read_finds_the_call_dialing(
    api: ApiClient, aws: Any, placer_module: ModuleType, twilio: FakeTwilio, released: Any
) -> None:
    campaign_id, messages = released
    gate = placer_module.deps().placer.campaigns
    store = gate.campaigns
    original = store.get

    def pause_just_after_the_read(campaign: str) -> Any:
        found = original(campaign)
        api.request("POST", f"/pcall/campaigns/{campaign}/pause", body="", content_type=None)
        return found

    store.get = pause_just_after_the_read
    invoke_placer(placer_module, sqs_event(aws, messages))
    store.get = original

    assert len(twilio.creates) == 1  # the placer won: the call was already dialing when the pause landed
    statuses = sorted(c.status.value for c in campaign_calls(aws, campaign_id))
    assert statuses == ["DIALING", "SCHEDULED", "SCHEDULED"]


def test_cancel_ends_every_call_not_yet_dialing(
    api: ApiClient, aws: Any, placer_module: ModuleType, twilio: FakeTwilio, released: Any, worker_module: ModuleType
) -> None:
    campaign_id, messages = released

    response = api.delete(f"/pcall/campaigns/{campaign_id}")
    drain(worker_module, aws, {"cancel", "tick"})
    invoke_placer(placer_module, sqs_event(aws, messages))  # the released call's message arrives afterwards

    assert response.data["campaign"]["status"] == "CANCELED"
    assert twilio.creates == []
    calls = campaign_calls(aws, campaign_id)
    assert [c.status for c in calls] == [CallStatus.CANCELED] * 3
    assert {c.error_code for c in calls} == {"campaign_canceled"}
    count_changes(worker_module, aws, campaign_id)
    view = api.get(f"/pcall/campaigns/{campaign_id}").data["campaign"]
    assert view["counts"]["CANCELED"] == 3
    assert view["status"] == "CANCELED"
    assert view["finished_at"]


def test_cancel_answers_with_the_counts_of_that_moment_which_settle_as_its_calls_are_counted_canceled(
    api: ApiClient, aws: Any, placer_module: ModuleType, twilio: FakeTwilio, released: Any, worker_module: ModuleType
) -> None:
    # given: two calls waiting for their turn, one released to CallsQueue, each counted
    campaign_id, messages = released
    count_changes(worker_module, aws, campaign_id)
    before = api.get(f"/pcall/campaigns/{campaign_id}").data["campaign"]["counts"]
    assert {k: v for k, v in before.items() if v} == {"SCHEDULED": 2, "QUEUED": 1}

    # when: cancelled
    answer = api.delete(f"/pcall/campaigns/{campaign_id}").data["campaign"]

    # then: the answer is the campaign CANCELED with the counts as they were; nothing has ended yet
    assert (answer["status"], answer["counts"], answer["finished_at"]) == ("CANCELED", before, None)
    # the campaigns function ends the waiting calls (its cancel message), the placer the released one (its claim)
    drain(worker_module, aws, {"cancel", "tick"})
    invoke_placer(placer_module, sqs_event(aws, messages))
    assert [c.status for c in campaign_calls(aws, campaign_id)] == [CallStatus.CANCELED] * 3
    assert twilio.creates == []
    # the counts follow once the calls' changes are counted (CallsTable's stream); then finished_at is set
    assert api.get(f"/pcall/campaigns/{campaign_id}").data["campaign"]["counts"] == before
    count_changes(worker_module, aws, campaign_id)
    settled = api.get(f"/pcall/campaigns/{campaign_id}").data["campaign"]
    assert {k: v for k, v in settled["counts"].items() if v} == {"CANCELED": 3}
    assert (settled["status"], bool(settled["finished_at"])) == ("CANCELED", True)


def test_cancel_ends_a_call_waiting_for_its_next_attempt(
    api: ApiClient, aws: Any, worker_module: ModuleType, released: Any
) -> None:
    campaign_id, messages = released
    (callid,) = [json.loads(m["Body"])["callid"] for m in messages]
    at = "2027-01-10T12:00:00.000Z"
    retry = {"status": CallStatus.RETRY_WAIT, "next_attempt_at": at}
    calls_store(aws).update(callid, lambda c: c.model_copy(update=retry))
    count_changes(worker_module, aws, campaign_id)  # counted as RETRY_WAIT

    api.delete(f"/pcall/campaigns/{campaign_id}")
    drain(worker_module, aws, {"cancel"})

    calls = campaign_calls(aws, campaign_id)
    assert [c.status for c in calls] == [CallStatus.CANCELED] * 3
    assert {c.next_attempt_at for c in calls} == {None}  # not dispatched by the scheduler later


def test_a_cancel_out_of_time_stops_between_two_calls_and_goes_on_in_a_new_message(
    api: ApiClient, aws: Any, worker_module: ModuleType
) -> None:
    # given a stored campaign of 5 waiting calls, cancelled
    campaign = created(api, campaign_body(5))
    drain(worker_module, aws, {"fanout"})
    api.delete(f"/pcall/campaigns/{campaign['id']}")
    assert len(campaign_messages(aws, {"cancel"})) == 1  # the API's, taken off: what follows is the worker's
    worker = worker_module.deps().worker
    clock = iter(range(1000))
    worker.now = lambda: float(next(clock))  # a second per look: the deadline comes after two calls

    # when its cancel runs out of time part-way through its batch of waiting calls
    first = worker.cancel_all(campaign["id"], deadline=4.0)
    ended_first = [c for c in campaign_calls(aws, campaign["id"]) if c.status is CallStatus.CANCELED]
    still_marked = len(campaigns_store(aws).waiting(campaign["id"], 10))
    follow_ups = campaign_messages(aws, {"cancel"})
    worker.now = time.time
    failed = run_worker(worker_module, aws, follow_ups) if follow_ups else {}

    # then it stopped before its deadline (a storage request past it would fail the whole message, which would then
    # wait out the queue's visibility timeout), with the ended calls' marks removed, and a new message ends the rest
    assert (first, len(ended_first), still_marked) == (False, 2, 3)
    assert [json.loads(m["Body"]) for m in follow_ups] == [{"kind": "cancel", "campaign": campaign["id"]}]
    assert not failed.get("batchItemFailures")
    assert [c.status for c in campaign_calls(aws, campaign["id"])] == [CallStatus.CANCELED] * 5
    assert campaigns_store(aws).waiting(campaign["id"], 10) == []
    assert campaign_messages(aws, {"cancel"}) == []


def test_a_fan_out_that_finds_its_campaign_cancelled_and_runs_out_of_time_leaves_the_rest_to_a_cancel(
    api: ApiClient, aws: Any, worker_module: ModuleType
) -> None:
    campaign = created(api, campaign_body(3))
    (message,) = campaign_messages(aws, {"fanout"})
    api.delete(f"/pcall/campaigns/{campaign['id']}")
    drain(worker_module, aws, {"cancel"})  # runs before the fan-out: nothing to cancel yet
    worker = worker_module.deps().worker
    clock = iter(range(1000))
    worker.now = lambda: float(next(clock))  # 0: the start, 1-3: the calls stored, 4: the cancel's stamp, 5, 6: out

    worker.fanout(campaign["id"], json.loads(message["Body"])["chunk"], deadline=6.0)
    ended_first = [c for c in campaign_calls(aws, campaign["id"]) if c.status is CallStatus.CANCELED]
    worker.now = time.time
    handled = drain(worker_module, aws, {"cancel"})

    assert len(ended_first) == 1
    assert handled == [{"kind": "cancel", "campaign": campaign["id"]}]
    assert [c.status for c in campaign_calls(aws, campaign["id"])] == [CallStatus.CANCELED] * 3
    assert campaigns_store(aws).waiting(campaign["id"], 10) == []


def test_a_cancel_during_the_fan_out_cancels_the_calls_stored_after_it(
    api: ApiClient, aws: Any, worker_module: ModuleType
) -> None:
    campaign = created(api, campaign_body(3))
    api.delete(f"/pcall/campaigns/{campaign['id']}")

    drain(worker_module, aws, {"cancel"})  # runs before the fan-out: nothing to cancel yet
    drain(worker_module, aws, {"fanout"})

    assert [c.status for c in campaign_calls(aws, campaign["id"])] == [CallStatus.CANCELED] * 3


# --- the campaign's calls and report ---------------------------------------------------------------


def test_calls_carry_their_campaign_and_the_report_has_a_row_each(
    api: ApiClient, aws: Any, worker_module: ModuleType
) -> None:
    campaign = created(api, campaign_body(3))
    drain(worker_module, aws, {"fanout"})
    calls = campaign_calls(aws, campaign["id"])
    finish(aws, calls[0].callid, CallStatus.COMPLETED, "Person", 17)

    listed = api.get("/pcall/calls", query={"campaign": campaign["id"], "limit": "2"}).data
    rest = api.get("/pcall/calls", query={"campaign": campaign["id"], "next": listed["next"]}).data
    one = api.get(f"/pcall/calls/{calls[0].callid}").data["call"]
    report = api.get(f"/pcall/campaigns/{campaign['id']}/report.csv")

    assert len(listed["calls"]) == 2
    assert {c["callid"] for c in listed["calls"] + rest["calls"]} == {c.callid for c in calls}
    assert {c["campaign"] for c in listed["calls"]} == {campaign["id"]}
    assert one["campaign"] == campaign["id"]
    assert report.status == 200
    assert report.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(report.body)))
    assert list(rows[0]) == [*REPORT_COLUMNS, "metadata.row"]
    assert [r["metadata.row"] for r in rows] == ["0", "1", "2"]
    done = next(r for r in rows if r["callid"] == calls[0].callid)
    assert (done["status"], done["answered_by"], done["billed_seconds"]) == ("COMPLETED", "Person", "17")


def test_the_report_opens_every_cell_as_text_in_a_spreadsheet_and_keeps_plain_numbers(
    api: ApiClient, aws: Any, worker_module: ModuleType
) -> None:
    # given metadata and a carrier's error text a spreadsheet would run as formulas, and numbers it would not
    formulas = {"link": '=HYPERLINK("http://evil.example","Click")', "cmd": "@SUM(1+1)*cmd|' /C calc'!A0"}
    numbers = {"phone": "+12812345670", "amount": "-5"}
    body = {
        "name": "formulas",
        "defaults": {"answer_play": PLAY},
        "calls": [{"to": "+12812345670", "metadata": {**formulas, **numbers, "tab": "\t=1+1"}}],
    }
    campaign = created(api, body)
    drain(worker_module, aws, {"fanout"})
    (call,) = campaign_calls(aws, campaign["id"])

    def failed(stored: Call) -> Call:
        return stored.model_copy(
            update={"status": CallStatus.FAILED, "error_code": "31000", "error_desc": "-1+cmd|' /C calc'!A0"}
        )

    assert calls_store(aws).update(call.callid, failed) is not None

    # when the report is read
    (row,) = csv.DictReader(io.StringIO(api.get(f"/pcall/campaigns/{campaign['id']}/report.csv").body))

    # then every cell that would start a formula starts with ' (text), and plain numbers are as given
    assert row["metadata.link"] == "'" + formulas["link"]
    assert row["metadata.cmd"] == "'" + formulas["cmd"]
    assert row["metadata.tab"] == "'\t=1+1"
    assert row["error_desc"] == "'-1+cmd|' /C calc'!A0"
    assert (row["to"], row["metadata.phone"], row["metadata.amount"]) == ("+12812345670", "+12812345670", "-5")
    assert (row["status"], row["error_code"], row["attempts"]) == ("FAILED", "31000", "0")


def test_the_report_shows_a_call_waiting_to_retry_with_its_last_attempts_outcome(
    api: ApiClient, aws: Any, worker_module: ModuleType
) -> None:
    # given a campaign call whose first attempt ended busy, stored as it waits for its second (domain/attempts.py)
    campaign = created(api, campaign_body(1))
    drain(worker_module, aws, {"fanout"})
    (call,) = campaign_calls(aws, campaign["id"])
    busy = Attempt(
        attempt=1,
        status=CallStatus.BUSY,
        started_at="2027-01-11T15:00:00.000Z",
        ended_at="2027-01-11T15:00:03.000Z",
        error_code="SIP 486",
        error_desc="busy",
    )

    def waiting(stored: Call) -> Call:
        return stored.model_copy(
            update={"status": CallStatus.RETRY_WAIT, "attempts": [busy], "next_attempt_at": "2027-01-11T15:10:03.000Z"}
        )

    assert calls_store(aws).update(call.callid, waiting) is not None

    report = api.get(f"/pcall/campaigns/{campaign['id']}/report.csv")
    shown = api.get(f"/pcall/calls/{call.callid}").data["call"]

    # then its row, like GET /pcall/calls/{callid}, has the busy attempt's outcome and status RETRY_WAIT
    (row,) = csv.DictReader(io.StringIO(report.body))
    columns = ("status", "attempts", "error_code", "error_desc", "started_at", "ended_at")
    assert tuple(row[c] for c in columns) == (
        "RETRY_WAIT",
        "1",
        "SIP 486",
        "busy",
        "2027-01-11T15:00:00.000Z",
        "2027-01-11T15:00:03.000Z",
    )
    assert tuple(str(shown[c]) for c in columns if c != "attempts") == tuple(row[c] for c in columns if c != "attempts")


def test_the_report_reads_a_campaigns_calls_a_hundred_a_request(
    api: ApiClient, api_module: ModuleType, aws: Any, worker_module: ModuleType
) -> None:
    # given a campaign of 250 calls, stored but for the last chunk's (its fan-out still to come)
    campaign = created(api, campaign_body(250))
    messages = campaign_messages(aws, {"fanout"})
    run_worker(worker_module, aws, [m for m in messages if json.loads(m["Body"])["chunk"] != 2])
    reads: list[str] = []
    calls_table = aws.refs["CallsTable"]

    def read(model: Any, params: dict[str, Any], **_: Any) -> None:
        if calls_table in (params.get("TableName"), *params.get("RequestItems", {})):
            reads.append(model.name)

    api_module.deps().campaigns.calls._db().meta.events.register("before-parameter-build.dynamodb", read)

    report = api.get(f"/pcall/campaigns/{campaign['id']}/report.csv")

    # then its calls are read in 3 requests, not 250 (a 10,000-call report must fit in the API's 10 s)
    assert report.status == 200
    rows = list(csv.DictReader(io.StringIO(report.body)))
    assert [r["metadata.row"] for r in rows] == [str(i) for i in range(250)]
    assert {r["status"] for r in rows} == {"SCHEDULED"}  # the 50 not stored yet, too
    assert sorted(reads) == ["BatchGetItem"] * 3


def test_a_call_held_while_a_resume_lands_is_released_again(
    api: ApiClient, aws: Any, placer_module: ModuleType, twilio: FakeTwilio, worker_module: ModuleType
) -> None:
    campaign = created(api, campaign_body(1, calls_per_second=1))
    drain(worker_module, aws, {"fanout"})
    drain_ticks(worker_module, aws, steps=1)
    messages = receive(aws)
    api.request("POST", f"/pcall/campaigns/{campaign['id']}/pause", body="", content_type=None)
    store = placer_module.deps().placer.campaigns.campaigns
    original = store.get

    def resume_after_the_read(campaign_id: str) -> Any:
        found = original(campaign_id)  # PAUSED: the placer will hold the call
        api.request("POST", f"/pcall/campaigns/{campaign_id}/resume", body="", content_type=None)
        drain_ticks(worker_module, aws, steps=1)  # the resumed chain finds nothing waiting yet, and ends
        return found

    store.get = resume_after_the_read
    invoke_placer(placer_module, sqs_event(aws, messages))
    store.get = original
    drain_ticks(worker_module, aws, steps=1)  # the placer restarted the release

    assert twilio.creates == []
    assert [c.status for c in campaign_calls(aws, campaign["id"])] == [CallStatus.QUEUED]
    assert [json.loads(m["Body"])["callid"] for m in receive(aws)] == [
        json.loads(m["Body"])["callid"] for m in messages
    ]


def test_two_copies_of_a_release_step_release_once_and_only_one_chain_goes_on(
    api: ApiClient, aws: Any, worker_module: ModuleType, work_sent: list[tuple[dict[str, Any], int]]
) -> None:
    campaign = created(api, campaign_body(4, calls_per_second=1))
    drain(worker_module, aws, {"fanout"})
    worker = worker_module.deps().worker

    first = worker.tick(campaign["id"], 1, "message-a")
    second = worker.tick(campaign["id"], 1, "message-b")  # e.g. a resume's step racing the chain's own
    stale = worker.tick(campaign["id"], 1, "message-a")  # the first one, redelivered after it was done

    assert (first.value, second.value, stale.value) == ("released", "stale", "stale")
    assert [m["seq"] for m, _delay in work_sent if m["kind"] == "tick"] == [2]
    statuses = sorted(c.status.value for c in campaign_calls(aws, campaign["id"]))
    assert statuses == ["QUEUED", "SCHEDULED", "SCHEDULED", "SCHEDULED"]


def test_a_single_call_waits_behind_one_release_step_not_behind_the_campaign(
    api: ApiClient, aws: Any, worker_module: ModuleType
) -> None:
    created(api, campaign_body(150, calls_per_second=3))
    drain(worker_module, aws, {"fanout"})
    drain_ticks(worker_module, aws, steps=1)

    single = api.post_call({"to": "17135550100", "answer_play": PLAY})

    ahead = [json.loads(m["Body"])["callid"] for m in receive(aws, limit=10)]
    assert single.status == 200
    assert len(ahead) == 4  # the step's 3 campaign calls, then the single call: not 150
    assert single.data["callid"] in ahead


# --- each call's own rules: the do-not-call list, retries, calling window ---------------------------


def suppress(api: ApiClient, number: str) -> None:
    assert api.request("PUT", f"/pcall/suppressions/{number}", body=None, content_type=None).status == 200


def test_suppressed_numbers_are_reported_at_intake_and_their_calls_end_canceled(
    api: ApiClient, aws: Any, worker_module: ModuleType
) -> None:
    suppress(api, "12812340001")  # calls[1] of campaign_body

    response = post_campaign(api, campaign_body(3, calls_per_second=10))
    csv_answer = post_campaign(
        api,
        "to,answer_play\n12812340000,\n+1 281 234 0001,\n",
        content_type="text/csv",
        query={"name": "csv", "answer_play": PLAY},
    )

    assert response.status == 200, response.body
    reported = [{"field": "calls.1.to", "to": "+12812340001", "message": SUPPRESSED_AT_INTAKE}]
    assert response.data["suppressed"] == reported
    assert [s["field"] for s in csv_answer.data["suppressed"]] == ["calls.3.to"]  # line 3 of the file
    campaign = response.data["campaign"]
    assert (campaign["counts"]["SCHEDULED"], campaign["counts"]["CANCELED"]) == (2, 1)
    drain(worker_module, aws, {"fanout"})
    calls = {c.request["to"]: c for c in campaign_calls(aws, campaign["id"])}
    assert (calls["+12812340001"].status, calls["+12812340001"].error_code) == (CallStatus.CANCELED, "suppressed")
    assert len(campaigns_store(aws).waiting(campaign["id"], 10)) == 2
    count_changes(worker_module, aws, campaign["id"], copies=2)
    view = api.get(f"/pcall/campaigns/{campaign['id']}").data["campaign"]
    assert (view["counts"]["SCHEDULED"], view["counts"]["CANCELED"], sum(view["counts"].values())) == (2, 1, 3)
    drain_ticks(worker_module, aws, steps=1)
    released = {json.loads(m["Body"])["callid"] for m in receive(aws)} & {c.callid for c in calls.values()}
    assert released == {calls["+12812340000"].callid, calls["+12812340002"].callid}
    rows = list(csv.DictReader(io.StringIO(api.get(f"/pcall/campaigns/{campaign['id']}/report.csv").body)))
    assert [(r["status"], r["error_code"]) for r in rows][1] == ("CANCELED", "suppressed")


def test_a_campaign_of_suppressed_numbers_only_finishes_once_counted(
    api: ApiClient, aws: Any, worker_module: ModuleType
) -> None:
    suppress(api, "12812340000")
    campaign = created(api, campaign_body(1))

    drain(worker_module, aws, {"fanout", "tick"})
    count_changes(worker_module, aws, campaign["id"])

    view = api.get(f"/pcall/campaigns/{campaign['id']}").data["campaign"]
    assert (view["status"], view["counts"]["CANCELED"]) == ("FINISHED", 1)


def test_campaign_calls_keep_their_retries_and_calling_window(
    api: ApiClient, aws: Any, worker_module: ModuleType, placer_module: ModuleType, twilio: FakeTwilio
) -> None:
    hour = (datetime.now(UTC) + timedelta(hours=2)).hour
    closed = f"{hour:02d}:00-{hour:02d}:30"  # not open now, wherever the test runs
    body = {
        "name": "policies",
        "defaults": {"answer_play": PLAY, "retry_attempts": "2", "retry_on": "busy"},
        "calls": [{"to": "12812340000"}, {"to": "12812340001", "call_window": closed, "recipient_timezone": "UTC"}],
        "calls_per_second": 10,
    }
    campaign = created(api, body)
    drain(worker_module, aws, {"fanout"})
    calls = {c.request["to"]: c for c in campaign_calls(aws, campaign["id"])}
    retried, windowed = calls["+12812340000"], calls["+12812340001"]

    drain_ticks(worker_module, aws, steps=1)
    invoke_placer(placer_module, sqs_event(aws, receive(aws)))

    assert (retried.policy.retry_attempts, retried.policy.retry_on) == (2, "BUSY")
    assert (windowed.policy.call_window, windowed.policy.zones) == (closed, ["UTC"])
    (dialed,) = twilio.creates  # the call outside its window is not released, so not dialed
    assert dict(dialed.form)["To"] == "+12812340000"
    assert dict(dialed.form)["StatusCallback"].endswith("?attempt=1")  # a call that may be retried names its attempt
    assert calls_store(aws).get(windowed.callid).status is CallStatus.SCHEDULED  # type: ignore[union-attr]
    (waiting,) = campaigns_store(aws).waiting(campaign["id"], 10)
    opening = windowed.policy.window().next_opening(datetime.now(UTC))  # type: ignore[union-attr]
    assert opening is not None
    assert (waiting.callid, waiting.not_before) == (windowed.callid, opening.strftime("%Y-%m-%dT%H:%M:%S.000Z"))


def clock_at(worker_module: ModuleType, when: datetime) -> None:
    """Stop the campaigns function's clock at `when`."""
    worker_module.deps().worker.now = when.timestamp


def test_a_dated_campaign_call_is_not_released_before_its_call_date(
    api: ApiClient, aws: Any, worker_module: ModuleType, work_sent: list[tuple[dict[str, Any], int]]
) -> None:
    start = datetime.now(UTC)
    clock_at(worker_module, start)
    due = (start + timedelta(minutes=10)).replace(second=0, microsecond=0)
    body = {
        "name": "dated",
        "defaults": {"answer_play": PLAY, "timezone": "UTC"},
        "calls": [{"to": "12812340000", "call_date": f"{due:%Y-%m-%d %H:%M}"}, {"to": "12812340001"}],
        "calls_per_second": 10,
    }
    campaign = created(api, body)
    drain(worker_module, aws, {"fanout"})
    calls = {c.request["to"]: c for c in campaign_calls(aws, campaign["id"])}
    dated, now = calls["+12812340000"], calls["+12812340001"]

    drain_ticks(worker_module, aws, steps=2)  # the undated call goes; then nothing is due
    first = [json.loads(m["Body"]) for m in receive(aws)]
    clock_at(worker_module, due - timedelta(seconds=5))  # a few seconds before it
    drain_ticks(worker_module, aws, steps=1)
    early = receive(aws)
    clock_at(worker_module, due)
    drain_ticks(worker_module, aws, steps=1)
    on_time = [json.loads(m["Body"]) for m in receive(aws)]

    assert [m["callid"] for m in first] == [now.callid]
    delays = [delay for m, delay in work_sent if m["kind"] == "tick"]
    assert delays[0] == 1
    assert 500 < delays[1] <= 600  # with nothing due, the chain sleeps until the call_date
    assert early == []
    assert [m["callid"] for m in on_time] == [dated.callid]
    stored = calls_store(aws).get(dated.callid)
    assert stored is not None
    assert (stored.status, stored.call_date) == (CallStatus.QUEUED, due.strftime("%Y-%m-%dT%H:%M:%S.000Z"))
    assert on_time[0].get("call_date") == stored.call_date


def test_a_call_whose_window_closed_while_it_waited_waits_for_the_next_opening(
    api: ApiClient, aws: Any, worker_module: ModuleType
) -> None:
    now = datetime.now(UTC)
    window = f"{now.hour:02d}:00-{now.hour + 1:02d}:00"  # open now, closed in two hours
    body = {"name": "w", "defaults": {"answer_play": PLAY, "call_window": window, "recipient_timezone": "UTC"}}
    campaign = created(api, {**body, "calls": [{"to": "12812340000"}], "calls_per_second": 1})
    drain(worker_module, aws, {"fanout"})
    (before,) = campaigns_store(aws).waiting(campaign["id"], 10)

    clock_at(worker_module, now + timedelta(hours=2))
    drain_ticks(worker_module, aws, steps=1)

    (call,) = campaign_calls(aws, campaign["id"])
    (after,) = campaigns_store(aws).waiting(campaign["id"], 10)
    assert before.not_before is None  # open when the campaign started
    assert call.status is CallStatus.SCHEDULED
    assert receive(aws) == []
    opening = (now + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    assert after.not_before == opening.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    # and it shows the opening it waits for, and is listed by it, as a call the placer holds for its window is
    shown = api.get(f"/pcall/calls/{call.callid}").data["call"]
    assert (shown["status"], shown["next_attempt_at"]) == ("SCHEDULED", after.not_before)
    assert ids(api.get("/pcall/scheduled")) == [call.callid]


# --- a dated call in GET /pcall/scheduled, and cancelled there ------------------------------------


def dated_campaign(api: ApiClient, aws: Any, worker_module: ModuleType, dates: list[str | None]) -> dict[str, Call]:
    """A campaign of one call per date (None: undated), stored by its fan-out; its calls by their date."""
    body = {
        "name": "dated",
        "defaults": {"answer_play": PLAY, "timezone": "UTC"},
        "calls": [{"to": f"1281234{n:04d}", **({"call_date": d} if d else {})} for n, d in enumerate(dates)],
        "calls_per_second": 10,
    }
    campaign = created(api, body)
    drain(worker_module, aws, {"fanout"})
    by_to = {c.request["to"]: c for c in campaign_calls(aws, campaign["id"])}
    return {str(d): by_to[f"+1281234{n:04d}"] for n, d in enumerate(dates)}


def test_a_dated_campaign_call_is_listed_as_scheduled_in_call_date_order_from_the_moment_it_is_stored(
    api: ApiClient, aws: Any, worker_module: ModuleType, clock: Clock
) -> None:
    # given: two ordinary scheduled calls, and a campaign of two dated calls and an undated one, stored and not
    # released (its release chain has not run)
    ordinary = {d: schedule(api, d) for d in ("2027-01-11T08:00:00Z", "2027-01-13T08:00:00Z")}
    campaign = dated_campaign(api, aws, worker_module, ["2027-01-12 08:00", None, "2027-01-10 13:00"])
    order = [
        campaign["2027-01-10 13:00"].callid,
        ordinary["2027-01-11T08:00:00Z"],
        campaign["2027-01-12 08:00"].callid,
        ordinary["2027-01-13T08:00:00Z"],
    ]

    # when
    listed = api.get("/pcall/scheduled").data["calls"]

    # then: soonest first among the ordinary ones, each with its call_date; the undated call is not listed
    assert [c["callid"] for c in listed] == order
    first = listed[0]
    assert (first["status"], first["call_date"]) == ("SCHEDULED", "2027-01-10T13:00:00.000Z")
    assert first["campaign"] == campaign["None"].campaign
    assert campaign["None"].callid not in {c["callid"] for c in listed}
    # and page by page, every token taken: one call a page, then three
    assert walk(api, "/pcall/scheduled", {"limit": "1"}) == [[callid] for callid in order]
    assert walk(api, "/pcall/scheduled", {"limit": "3"}) == [order[:3], order[3:]]


def test_a_dated_campaign_call_cancelled_from_the_scheduled_list_is_never_released_and_counted_canceled(
    api: ApiClient,
    aws: Any,
    worker_module: ModuleType,
    clock: Clock,
    work_sent: list[tuple[dict[str, Any], int]],
) -> None:
    # given: a campaign of a call due at 12:30 and an undated one, which is released and completes
    calls = dated_campaign(api, aws, worker_module, ["2027-01-10 12:30", None])
    dated, undated = calls["2027-01-10 12:30"], calls["None"]
    clock_at(worker_module, START)
    drain_ticks(worker_module, aws, steps=2)  # the undated call goes; nothing else is due before 12:30
    assert [json.loads(m["Body"])["callid"] for m in receive(aws)] == [undated.callid]
    finish(aws, undated.callid, CallStatus.COMPLETED, "Person", 9)
    listed = ids(api.get("/pcall/scheduled"))

    # when: cancelled from the list, then its call_date comes
    response = api.delete(f"/pcall/scheduled/{dated.callid}")
    clock_at(worker_module, datetime(2027, 1, 10, 12, 30, tzinfo=UTC))
    drain_ticks(worker_module, aws, steps=3)

    # then: CANCELED, never released or sent, no longer listed, and the campaign counts it and finishes
    assert listed == [dated.callid]
    assert response.status == 200, response.body
    assert response.data["status"] == "CANCELED"
    assert ids(api.get("/pcall/scheduled")) == []
    assert receive(aws) == []
    stored = calls_store(aws).get(dated.callid)
    assert stored is not None
    assert (stored.status, stored.dispatched_at, stored.dialed_at) == (CallStatus.CANCELED, None, None)
    assert events.RELEASED not in {e.event for e in stored.timeline}
    assert campaigns_store(aws).waiting(dated.campaign or "", 10) == []  # its mark went with the step at 12:30
    count_changes(worker_module, aws, dated.campaign or "")
    view = api.get(f"/pcall/campaigns/{dated.campaign}").data["campaign"]
    assert {k: v for k, v in view["counts"].items() if v} == {"COMPLETED": 1, "CANCELED": 1}
    assert view["status"] == "FINISHED"


def test_the_scheduler_never_dispatches_a_listed_campaign_call_its_campaign_holds(
    api: ApiClient, aws: Any, worker_module: ModuleType, clock: Clock
) -> None:
    # given: a dated campaign call, listed, whose campaign is paused past its call_date
    calls = dated_campaign(api, aws, worker_module, ["2027-01-10 12:30"])
    held = calls["2027-01-10 12:30"]
    api.request("POST", f"/pcall/campaigns/{held.campaign}/pause", body="", content_type=None)
    scheduler = fresh_module("functions.scheduler.app", aws.environment("SchedulerFunction")).deps().scheduler
    due = datetime(2027, 1, 10, 12, 30, tzinfo=UTC)

    # when: the scheduler runs before and after its call_date, and an index entry naming it (as a stale one would)
    # is dispatched
    reports = []
    for when in (due - timedelta(seconds=60), due + timedelta(minutes=5)):
        scheduler.now = when.timestamp
        reports.append(scheduler.run())
    moved, current = calls_store(aws).dispatch(
        held.callid, "2099-01-01T00:00:00.000Z", dispatched_event(due, "2027-01-10T12:30:00.000Z")
    )

    # then: listed, and not dispatched: its campaign releases it
    assert ids(api.get("/pcall/scheduled")) == [held.callid]
    assert [(r.due, r.dispatched, r.resent) for r in reports] == [(0, 0, 0), (0, 0, 0)]
    assert (moved, current is not None and current.status) == (False, CallStatus.SCHEDULED)
    assert receive(aws) == []
    stored = calls_store(aws).get(held.callid)
    assert stored is not None
    assert (stored.status, stored.dispatched_at) == (CallStatus.SCHEDULED, None)


# --- a call held for its calling window, as GET /pcall/scheduled and GET /pcall/calls/{callid} show it ----------

WINDOW = {"call_window": "14:00-15:00", "recipient_timezone": "UTC"}  # closed at START (12:00:30 UTC)
OPENING = "2027-01-10T14:00:00.000Z"


def windowed_campaign(api: ApiClient, aws: Any, worker_module: ModuleType, n: int = 1) -> list[Call]:
    """A campaign of `n` calls whose calling window is closed when it starts (START), stored by its fan-out."""
    body = {
        "name": "windowed",
        "defaults": {"answer_play": PLAY, **WINDOW},
        "calls": [{"to": f"1281234{k:04d}"} for k in range(n)],
        "calls_per_second": 10,
    }
    campaign = created(api, body)
    drain(worker_module, aws, {"fanout"})
    return sorted(campaign_calls(aws, campaign["id"]), key=lambda c: c.request["to"])


def test_a_campaign_call_held_for_its_window_is_scheduled_at_the_opening_like_a_single_call(
    api: ApiClient, aws: Any, worker_module: ModuleType, clock: Clock
) -> None:
    # given: a single call and a campaign call, both outside the same calling window, and a call scheduled before
    # the window opens
    single = api.post_call({"to": "12812349999", "answer_play": PLAY, **WINDOW})
    assert single.status == 200, single.body
    dated = schedule(api, "2027-01-10T13:00:00Z")
    (held,) = windowed_campaign(api, aws, worker_module)

    # when
    shown = api.get(f"/pcall/calls/{held.callid}").data["call"]
    alone = api.get(f"/pcall/calls/{single.data['callid']}").data["call"]
    listed = api.get("/pcall/scheduled").data["calls"]

    # then: SCHEDULED with next_attempt_at at the opening, as the single call is, and listed by its opening
    assert (alone["status"], alone["next_attempt_at"]) == ("SCHEDULED", OPENING)
    assert (shown["status"], shown["next_attempt_at"], shown["campaign"]) == ("SCHEDULED", OPENING, held.campaign)
    assert [c["callid"] for c in listed] == [dated, *sorted([single.data["callid"], held.callid])]
    by_id = {c["callid"]: c for c in listed}
    assert (by_id[held.callid]["status"], by_id[held.callid]["next_attempt_at"]) == ("SCHEDULED", OPENING)


def test_a_campaign_call_held_for_its_window_is_released_by_its_campaign_at_the_opening(
    api: ApiClient,
    aws: Any,
    worker_module: ModuleType,
    clock: Clock,
    work_sent: list[tuple[dict[str, Any], int]],
) -> None:
    # given: a campaign call held for its window
    (held,) = windowed_campaign(api, aws, worker_module)
    scheduler = fresh_module("functions.scheduler.app", aws.environment("SchedulerFunction")).deps().scheduler
    opening = datetime(2027, 1, 10, 14, 0, tzinfo=UTC)

    # when: its release steps run before the opening, the scheduler runs around it, and a step runs at it
    clock_at(worker_module, START)
    drain_ticks(worker_module, aws, steps=1)
    early = receive(aws)
    reports = []
    for when in (opening - timedelta(seconds=60), opening + timedelta(seconds=30)):
        scheduler.now = when.timestamp
        reports.append(scheduler.run())
    clock_at(worker_module, opening)
    drain_ticks(worker_module, aws, steps=1)
    on_time = [json.loads(m["Body"])["callid"] for m in receive(aws)]

    # then: the scheduler never dispatches it (its campaign paces it), the campaign releases it at the opening, and
    # it is no longer listed as scheduled
    assert early == []
    assert [(r.dispatched, r.resent) for r in reports] == [(0, 0), (0, 0)]
    assert on_time == [held.callid]
    shown = api.get(f"/pcall/calls/{held.callid}").data["call"]
    assert (shown["status"], shown["next_attempt_at"]) == ("QUEUED", None)
    assert ids(api.get("/pcall/scheduled")) == []


def test_a_campaign_call_held_for_its_window_cancelled_from_the_scheduled_list_is_never_released(
    api: ApiClient,
    aws: Any,
    worker_module: ModuleType,
    clock: Clock,
    work_sent: list[tuple[dict[str, Any], int]],
) -> None:
    # given: a campaign of two calls held for their window
    first, second = windowed_campaign(api, aws, worker_module, n=2)
    campaign_id = first.campaign or ""

    # when: one is cancelled from the list, then the window opens
    response = api.delete(f"/pcall/scheduled/{first.callid}")
    clock_at(worker_module, datetime(2027, 1, 10, 14, 0, tzinfo=UTC))
    drain_ticks(worker_module, aws, steps=2)

    # then: it ended CANCELED and was never released; the other goes; the counts have both
    assert response.status == 200, response.body
    assert response.data["status"] == "CANCELED"
    assert [json.loads(m["Body"])["callid"] for m in receive(aws)] == [second.callid]
    stored = calls_store(aws).get(first.callid)
    assert stored is not None
    assert stored.status is CallStatus.CANCELED
    assert events.RELEASED not in {e.event for e in stored.timeline}
    count_changes(worker_module, aws, campaign_id)
    counts = api.get(f"/pcall/campaigns/{campaign_id}").data["campaign"]["counts"]
    assert {k: v for k, v in counts.items() if v} == {"CANCELED": 1, "QUEUED": 1}


def test_a_paused_campaign_keeps_a_call_held_for_its_window_and_a_cancel_ends_it(
    api: ApiClient,
    aws: Any,
    worker_module: ModuleType,
    clock: Clock,
    work_sent: list[tuple[dict[str, Any], int]],
) -> None:
    # given: a campaign call held for its window, its campaign paused before the opening
    (held,) = windowed_campaign(api, aws, worker_module)
    pause = api.request("POST", f"/pcall/campaigns/{held.campaign}/pause", body="", content_type=None)

    # when: the window opens while it is paused, then the campaign is cancelled
    clock_at(worker_module, datetime(2027, 1, 10, 14, 0, 30, tzinfo=UTC))
    drain_ticks(worker_module, aws, steps=2)
    paused = receive(aws)
    cancel = api.delete(f"/pcall/campaigns/{held.campaign}")
    worker_module.deps().worker.now = time.time  # the cancel's deadline is the invocation's, on the real clock
    drain(worker_module, aws, {"cancel"})

    # then: not released while paused; cancelled with its campaign, no longer listed
    assert (pause.status, cancel.status) == (200, 200)
    assert paused == []
    shown = api.get(f"/pcall/calls/{held.callid}").data["call"]
    assert (shown["status"], shown["error_code"], shown["next_attempt_at"]) == ("CANCELED", "campaign_canceled", None)
    assert ids(api.get("/pcall/scheduled")) == []


# --- a campaign call that must wait for its window after its release goes back to its campaign -----------------

NEXT_OPENING = "2027-01-11T14:00:00.000Z"  # WINDOW's opening after the one at OPENING
IN_WINDOW = datetime(2027, 1, 10, 14, 0, 30, tzinfo=UTC)
AFTER_WINDOW = datetime(2027, 1, 10, 16, 0, 30, tzinfo=UTC)  # closed until NEXT_OPENING


def placer_at(placer_module: ModuleType, when: datetime) -> None:
    """Stop the placer's clock at `when`."""
    placer_module.deps().placer.now = when.timestamp


def released_in_window(api: ApiClient, aws: Any, worker_module: ModuleType) -> tuple[Call, list[dict[str, Any]]]:
    """A campaign call held for its window (closed at START), released by its campaign at the opening: the call
    and its CallsQueue message."""
    (held,) = windowed_campaign(api, aws, worker_module)
    clock_at(worker_module, IN_WINDOW)
    drain_ticks(worker_module, aws, steps=1)
    messages = receive(aws)
    assert [json.loads(m["Body"])["callid"] for m in messages] == [held.callid]
    return held, messages


def claimed_after_its_window_closed(
    api: ApiClient, aws: Any, worker_module: ModuleType, placer_module: ModuleType
) -> Call:
    """A campaign call released in its window whose message the placer claims only after the window closed."""
    held, messages = released_in_window(api, aws, worker_module)
    placer_at(placer_module, AFTER_WINDOW)
    invoke_placer(placer_module, sqs_event(aws, messages))
    return held


def scheduler_reports(aws: Any, *whens: datetime) -> list[tuple[int, int]]:
    """(dispatched, resent) of a scheduler run at each of `whens`."""
    scheduler = fresh_module("functions.scheduler.app", aws.environment("SchedulerFunction")).deps().scheduler
    reports = []
    for when in whens:
        scheduler.now = when.timestamp
        report = scheduler.run()
        reports.append((report.dispatched, report.resent))
    return reports


def cancel_campaign(api: ApiClient, aws: Any, worker_module: ModuleType, campaign_id: str) -> Any:
    """DELETE the campaign and run its cancel messages (on the real clock: its deadline is the invocation's)."""
    response = api.delete(f"/pcall/campaigns/{campaign_id}")
    assert response.status == 200, response.body
    worker_module.deps().worker.now = time.time
    drain(worker_module, aws, {"cancel"})
    return response


def assert_cancelled_with_its_campaign(api: ApiClient, aws: Any, worker_module: ModuleType, call: Call) -> None:
    """The call ended CANCELED by its campaign's cancel, is no longer listed or waiting, and the campaign finished
    CANCELED with it counted."""
    shown = api.get(f"/pcall/calls/{call.callid}").data["call"]
    assert (shown["status"], shown["error_code"], shown["next_attempt_at"]) == ("CANCELED", "campaign_canceled", None)
    assert ids(api.get("/pcall/scheduled")) == []
    assert campaigns_store(aws).waiting(call.campaign or "", 10) == []
    count_changes(worker_module, aws, call.campaign or "")
    view = api.get(f"/pcall/campaigns/{call.campaign}").data["campaign"]
    assert {k: v for k, v in view["counts"].items() if v} == {"CANCELED": 1}
    assert (view["status"], bool(view["finished_at"])) == ("CANCELED", True)


def test_a_campaign_call_whose_window_closed_before_its_claim_goes_back_to_its_campaign(
    api: ApiClient,
    aws: Any,
    worker_module: ModuleType,
    placer_module: ModuleType,
    twilio: FakeTwilio,
    clock: Clock,
    work_sent: list[tuple[dict[str, Any], int]],
) -> None:
    # given / when: a campaign call released in its window, claimed by the placer after the window closed
    held = claimed_after_its_window_closed(api, aws, worker_module, placer_module)

    # then: not dialed; SCHEDULED at the next opening and listed, as any call held for its window; and waiting for
    # its campaign at that opening, not for the scheduler
    assert twilio.creates == []
    shown = api.get(f"/pcall/calls/{held.callid}").data["call"]
    assert (shown["status"], shown["next_attempt_at"]) == ("SCHEDULED", NEXT_OPENING)
    assert ids(api.get("/pcall/scheduled")) == [held.callid]
    assert [w.not_before for w in campaigns_store(aws).waiting(held.campaign or "", 10)] == [NEXT_OPENING]
    opening = datetime(2027, 1, 11, 14, 0, tzinfo=UTC)
    assert scheduler_reports(aws, opening - timedelta(seconds=60), opening + timedelta(seconds=30)) == [(0, 0), (0, 0)]
    # and its campaign releases it at the opening, at its pace
    clock_at(worker_module, opening)
    drain_ticks(worker_module, aws, steps=1)
    assert [json.loads(m["Body"])["callid"] for m in receive(aws)] == [held.callid]
    assert ids(api.get("/pcall/scheduled")) == []


def test_a_campaign_cancel_ends_a_call_that_went_back_to_its_campaign_for_its_window_at_once(
    api: ApiClient,
    aws: Any,
    worker_module: ModuleType,
    placer_module: ModuleType,
    twilio: FakeTwilio,
    clock: Clock,
    work_sent: list[tuple[dict[str, Any], int]],
) -> None:
    # given: a campaign call the placer found outside its window
    held = claimed_after_its_window_closed(api, aws, worker_module, placer_module)

    # when: its campaign is cancelled, long before the next opening
    cancel_campaign(api, aws, worker_module, held.campaign or "")

    # then: it ends at once with its campaign, and is never dialed, even when its opening comes
    assert_cancelled_with_its_campaign(api, aws, worker_module, held)
    opening = datetime(2027, 1, 11, 14, 0, tzinfo=UTC)
    assert scheduler_reports(aws, opening + timedelta(seconds=30)) == [(0, 0)]
    assert receive(aws) == []
    assert twilio.creates == []


def test_a_paused_campaign_keeps_a_call_that_went_back_to_it_for_its_window_until_it_is_resumed(
    api: ApiClient,
    aws: Any,
    worker_module: ModuleType,
    placer_module: ModuleType,
    twilio: FakeTwilio,
    clock: Clock,
    work_sent: list[tuple[dict[str, Any], int]],
) -> None:
    # given: a campaign call the placer found outside its window, then its campaign paused
    held = claimed_after_its_window_closed(api, aws, worker_module, placer_module)
    pause = api.request("POST", f"/pcall/campaigns/{held.campaign}/pause", body="", content_type=None)
    opening = datetime(2027, 1, 11, 14, 0, tzinfo=UTC)

    # when: the window opens while the campaign is paused
    clock_at(worker_module, opening + timedelta(seconds=30))
    drain_ticks(worker_module, aws, steps=2)
    reports = scheduler_reports(aws, opening + timedelta(seconds=30))
    paused = receive(aws)

    # then: nobody sends it; the resume releases it
    assert pause.status == 200, pause.body
    assert (paused, reports) == ([], [(0, 0)])
    assert calls_store(aws).get(held.callid).status is CallStatus.SCHEDULED  # type: ignore[union-attr]
    resume = api.request("POST", f"/pcall/campaigns/{held.campaign}/resume", body="", content_type=None)
    assert resume.status == 200, resume.body
    drain_ticks(worker_module, aws, steps=1)
    assert [json.loads(m["Body"])["callid"] for m in receive(aws)] == [held.callid]
    assert twilio.creates == []


@pytest.mark.parametrize("when", ["after its mark", "before the placer reads the campaign", "cancel message late"])
def test_a_campaign_cancel_racing_the_placers_hold_for_the_window_ends_the_call(
    api: ApiClient,
    aws: Any,
    worker_module: ModuleType,
    placer_module: ModuleType,
    twilio: FakeTwilio,
    clock: Clock,
    work_sent: list[tuple[dict[str, Any], int]],
    when: str,
) -> None:
    # given: a campaign call released in its window, whose message the placer takes after the window closed
    held, messages = released_in_window(api, aws, worker_module)
    campaign_id = held.campaign or ""
    store = placer_module.deps().placer.campaigns.campaigns
    add_waiting, header = store.add_waiting, store.header
    landed: list[str] = []

    def cancel_now() -> None:
        if landed:
            return
        landed.append(when)
        if when == "cancel message late":  # the campaign is CANCELED; its cancel message runs after the placer
            assert api.delete(f"/pcall/campaigns/{campaign_id}").status == 200
        else:
            cancel_campaign(api, aws, worker_module, campaign_id)

    def cancel_after_the_mark(campaign: str, calls: Any) -> None:
        add_waiting(campaign, calls)
        if when == "after its mark":  # the cancel reads the mark while the call is still the placer's
            cancel_now()

    def cancel_before_the_read(campaign: str) -> Any:
        if when != "after its mark":
            cancel_now()
        return header(campaign)

    store.add_waiting, store.header = cancel_after_the_mark, cancel_before_the_read

    # when: the cancel lands while the placer hands the call back to its campaign
    placer_at(placer_module, AFTER_WINDOW)
    invoke_placer(placer_module, sqs_event(aws, messages))
    store.add_waiting, store.header = add_waiting, header
    worker_module.deps().worker.now = time.time
    drain(worker_module, aws, {"cancel"})

    # then: whichever side came first, the call ends CANCELED with its campaign, never dialed
    assert landed == [when]
    assert twilio.creates == []
    assert_cancelled_with_its_campaign(api, aws, worker_module, held)


@pytest.mark.parametrize("placed_before", [0, 3, 7])
def test_a_campaign_cancel_running_alongside_the_placers_holds_for_the_window_ends_every_call(
    api: ApiClient,
    aws: Any,
    worker_module: ModuleType,
    placer_module: ModuleType,
    twilio: FakeTwilio,
    clock: Clock,
    work_sent: list[tuple[dict[str, Any], int]],
    placed_before: int,
) -> None:
    # given: ten campaign calls released in their window, whose messages the placer takes after the window closed
    held = windowed_campaign(api, aws, worker_module, n=10)
    campaign_id = held[0].campaign or ""
    clock_at(worker_module, IN_WINDOW)
    drain_ticks(worker_module, aws, steps=1)
    messages = receive(aws)
    assert sorted(json.loads(m["Body"])["callid"] for m in messages) == sorted(c.callid for c in held)
    placer_at(placer_module, AFTER_WINDOW)
    worker_module.deps().worker.now = time.time  # the cancel's deadline is the invocation's, on the real clock
    go = threading.Event()  # the cancel starts once `placed_before` calls were handed back, and races the rest

    placer = placer_module.deps().placer

    def place() -> None:
        # The use case, not the handler: a handler sets its invocation's deadline for the whole process (a container
        # runs one invocation at a time), and two at once in one process would leave one of them set after the test.
        try:
            for n, message in enumerate(messages):  # one call at a time: the cancel lands between two, or in one
                if n == placed_before:
                    go.set()
                placer.place(json.loads(message["Body"])["callid"])
        finally:
            go.set()  # a placer that fails must not leave the cancel waiting

    def cancel() -> None:
        assert go.wait(timeout=60)
        assert api.delete(f"/pcall/campaigns/{campaign_id}").status == 200
        drain(worker_module, aws, {"cancel"})

    # when: the campaign is cancelled while the placer hands its calls back to it, one after another
    with atomic_dynamodb():
        threads = [threading.Thread(target=place), threading.Thread(target=cancel)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
    drain(worker_module, aws, {"cancel"})

    # then: whichever came first for each call, every one ended CANCELED with its campaign, none dialed or waiting
    assert not any(thread.is_alive() for thread in threads)
    assert twilio.creates == []
    calls = campaign_calls(aws, campaign_id)
    assert [(c.status, c.error_code) for c in calls] == [(CallStatus.CANCELED, "campaign_canceled")] * 10
    assert campaigns_store(aws).waiting(campaign_id, 20) == []
    assert ids(api.get("/pcall/scheduled")) == []
    count_changes(worker_module, aws, campaign_id)
    view = api.get(f"/pcall/campaigns/{campaign_id}").data["campaign"]
    assert {k: v for k, v in view["counts"].items() if v} == {"CANCELED": 10}
    assert (view["status"], bool(view["finished_at"])) == ("CANCELED", True)


# --- a retry of a campaign call that must wait for its window waits for its campaign -----------------------------

RETRY = {"retry_attempts": "1", "retry_on": "busy", "retry_interval": "300"}


def ended_busy(aws: Any, callid: str, at: datetime) -> Call:
    """The call's attempt ends BUSY at `at` (what the carrier's final callback does: `end_attempt` decides whether
    another attempt follows)."""

    def change(call: Call) -> Call:
        busy = call.model_copy(update={"status": CallStatus.BUSY, "ended_at": at.strftime("%Y-%m-%dT%H:%M:%S.000Z")})
        return end_attempt(busy, at)

    stored = calls_store(aws).update(callid, change)
    assert stored is not None
    return stored


def dialed_retried_campaign_call(
    api: ApiClient, aws: Any, worker_module: ModuleType, placer_module: ModuleType, twilio: FakeTwilio
) -> Call:
    """A campaign call of WINDOW with one retry on busy, released and dialed at IN_WINDOW."""
    body = {
        "name": "retried",
        "defaults": {"answer_play": PLAY, **WINDOW, **RETRY},
        "calls": [{"to": "12812340000"}],
        "calls_per_second": 10,
    }
    campaign = created(api, body)
    drain(worker_module, aws, {"fanout"})
    clock_at(worker_module, IN_WINDOW)
    drain_ticks(worker_module, aws, steps=1)
    placer_at(placer_module, IN_WINDOW)
    invoke_placer(placer_module, sqs_event(aws, receive(aws)))
    assert len(twilio.creates) == 1
    (call,) = campaign_calls(aws, campaign["id"])
    assert call.status is CallStatus.DIALING
    return call


def test_a_campaign_calls_retry_due_outside_its_window_waits_for_its_campaign(
    api: ApiClient,
    aws: Any,
    worker_module: ModuleType,
    placer_module: ModuleType,
    twilio: FakeTwilio,
    clock: Clock,
    work_sent: list[tuple[dict[str, Any], int]],
) -> None:
    # given: a campaign call whose first attempt ends busy at 14:58, its retry due at 15:03, after its window
    call = dialed_retried_campaign_call(api, aws, worker_module, placer_module, twilio)
    waiting = ended_busy(aws, call.callid, datetime(2027, 1, 10, 14, 58, tzinfo=UTC))

    # when: the change reaches the campaigns function (the table's stream)
    count_changes(worker_module, aws, call.campaign or "")

    # then: SCHEDULED at the next opening and listed (issue 14's contract), waiting for its campaign
    shown = api.get(f"/pcall/calls/{call.callid}").data["call"]
    assert (waiting.status, shown["status"], shown["next_attempt_at"]) == (
        CallStatus.SCHEDULED,
        "SCHEDULED",
        NEXT_OPENING,
    )
    assert ids(api.get("/pcall/scheduled")) == [call.callid]
    assert [w.not_before for w in campaigns_store(aws).waiting(call.campaign or "", 10)] == [NEXT_OPENING]
    # the scheduler leaves it; its campaign releases it at the opening
    opening = datetime(2027, 1, 11, 14, 0, tzinfo=UTC)
    assert scheduler_reports(aws, opening - timedelta(seconds=60), opening + timedelta(seconds=30)) == [(0, 0), (0, 0)]
    clock_at(worker_module, opening)
    drain_ticks(worker_module, aws, steps=2)
    assert [json.loads(m["Body"])["callid"] for m in receive(aws)] == [call.callid]


def test_a_campaign_cancel_ends_a_retry_waiting_for_its_window_at_once(
    api: ApiClient,
    aws: Any,
    worker_module: ModuleType,
    placer_module: ModuleType,
    twilio: FakeTwilio,
    clock: Clock,
    work_sent: list[tuple[dict[str, Any], int]],
) -> None:
    # given: a campaign call whose retry waits for its window (its change not yet seen by the campaigns function)
    call = dialed_retried_campaign_call(api, aws, worker_module, placer_module, twilio)
    ended_busy(aws, call.callid, datetime(2027, 1, 10, 14, 58, tzinfo=UTC))

    # when: the campaign is cancelled, then the change reaches the campaigns function
    cancel_campaign(api, aws, worker_module, call.campaign or "")
    count_changes(worker_module, aws, call.campaign or "")

    # then: ended with its campaign, long before the opening, and never dialed again
    assert_cancelled_with_its_campaign(api, aws, worker_module, call)
    opening = datetime(2027, 1, 11, 14, 0, tzinfo=UTC)
    assert scheduler_reports(aws, opening + timedelta(seconds=30)) == [(0, 0)]
    assert len(twilio.creates) == 1


def test_a_campaign_calls_retry_claimed_after_its_window_closed_goes_back_to_its_campaign(
    api: ApiClient,
    aws: Any,
    worker_module: ModuleType,
    placer_module: ModuleType,
    twilio: FakeTwilio,
    clock: Clock,
    work_sent: list[tuple[dict[str, Any], int]],
) -> None:
    # given: a campaign call whose first attempt ends busy at 14:50, its retry due at 14:55 (in its window) and
    # dispatched by the scheduler, its message taken by the placer only after the window closed
    call = dialed_retried_campaign_call(api, aws, worker_module, placer_module, twilio)
    retry = ended_busy(aws, call.callid, datetime(2027, 1, 10, 14, 50, tzinfo=UTC))
    assert (retry.status, retry.next_attempt_at) == (CallStatus.RETRY_WAIT, "2027-01-10T14:55:00.000Z")
    assert scheduler_reports(aws, datetime(2027, 1, 10, 14, 55, 0, 500_000, tzinfo=UTC)) == [(1, 0)]
    placer_at(placer_module, AFTER_WINDOW)
    invoke_placer(placer_module, sqs_event(aws, receive(aws)))

    # then: not dialed again; SCHEDULED at the next opening, waiting for its campaign; a cancel ends it at once
    assert len(twilio.creates) == 1
    shown = api.get(f"/pcall/calls/{call.callid}").data["call"]
    assert (shown["status"], shown["next_attempt_at"]) == ("SCHEDULED", NEXT_OPENING)
    assert [w.not_before for w in campaigns_store(aws).waiting(call.campaign or "", 10)] == [NEXT_OPENING]
    opening = datetime(2027, 1, 11, 14, 0, tzinfo=UTC)
    assert scheduler_reports(aws, opening + timedelta(seconds=30)) == [(0, 0)]
    cancel_campaign(api, aws, worker_module, call.campaign or "")
    assert_cancelled_with_its_campaign(api, aws, worker_module, call)


def test_a_mark_older_than_the_opening_a_call_now_waits_for_never_releases_it_early(
    api: ApiClient,
    aws: Any,
    worker_module: ModuleType,
    placer_module: ModuleType,
    twilio: FakeTwilio,
    clock: Clock,
    work_sent: list[tuple[dict[str, Any], int]],
) -> None:
    # given: a campaign call whose retry after a busy attempt at 14:58 waits for tomorrow's opening, and a mark of
    # an earlier wait of it (the opening it was first released at: what a record seen again late leaves)
    call = dialed_retried_campaign_call(api, aws, worker_module, placer_module, twilio)
    ended_busy(aws, call.callid, datetime(2027, 1, 10, 14, 58, tzinfo=UTC))
    count_changes(worker_module, aws, call.campaign or "")
    (mark,) = campaigns_store(aws).waiting(call.campaign or "", 10)
    campaigns_store(aws).add_waiting(call.campaign or "", [replace(mark, not_before=OPENING)])

    # when: release steps run at 14:59, the window still open, a minute after the busy attempt
    clock_at(worker_module, datetime(2027, 1, 10, 14, 59, tzinfo=UTC))
    drain_ticks(worker_module, aws, steps=2)

    # then: not released before its retry's time; the old mark is gone, its own stays
    assert receive(aws) == []
    assert calls_store(aws).get(call.callid).status is CallStatus.SCHEDULED  # type: ignore[union-attr]
    assert [w.not_before for w in campaigns_store(aws).waiting(call.campaign or "", 10)] == [NEXT_OPENING]
