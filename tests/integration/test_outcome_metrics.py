"""The outcome metrics count each call once, by the function whose write ended it, and CallsAccepted each call stored.

Through the handlers against moto, reading what they print as CloudWatch's embedded metric format (the lines
CloudWatch turns into metrics): a final status callback repeated, out of order or after the call ended another way
(reconciled by the scheduler, hung up through the API) counts nothing more; each outcome is still counted under its
name; a replayed Idempotency-Key (the API's, or an external request's) is not counted as a call accepted.
"""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import httpx
import pytest
from callbridge.carrier.twilio import TwilioClient
from callbridge.domain.calls import Call, CallStatus, iso
from callbridge.domain.placing import claim

from tests.conftest import AccountCredentials, ApiClient, LambdaContext, fresh_module, load_event
from tests.integration.fakes import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    CARRIER_BASE_URL,
    CarrierRequest,
    CarrierWebhooks,
    FakeTwilio,
    calls_store,
    invoke_placer,
    place_now,
    queue_call,
    receive,
    sqs_event,
    status_params,
    stored,
    twilio_error,
)
from tests.integration.test_webhooks import emitted_metrics

OUTCOMES = (
    "CallsCompleted",
    "CallsBusy",
    "CallsNoAnswer",
    "CallsFailed",
    "CallsCanceled",
    "CallsAnsweredByPerson",
    "CallsAnsweredByMachine",
)


def outcomes(capsys: pytest.CaptureFixture[str]) -> dict[str, float]:
    """The outcome metrics printed since the last look (other metrics left out)."""
    return {k: v for k, v in emitted_metrics(capsys.readouterr().out).items() if k in OUTCOMES}


@pytest.fixture
def hooks(webhooks_module: ModuleType) -> CarrierWebhooks:
    return CarrierWebhooks(webhooks_module)


def a_placed_call(aws: Any, account: AccountCredentials, twilio: FakeTwilio, **params: str) -> Call:
    return place_now(aws, twilio, queue_call(aws, account, **params))


def completed(sid: str, seq: int = 5, answered_by: str = "human") -> dict[str, str]:
    return status_params(sid, "completed", seq, CallDuration="32", AnsweredBy=answered_by, SipResponseCode="200")


# --- the carrier's final status callback


def test_a_repeated_final_callback_counts_the_call_once(
    hooks: CarrierWebhooks,
    aws: Any,
    account: AccountCredentials,
    twilio: FakeTwilio,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given: a placed call
    call = a_placed_call(aws, account, twilio)
    capsys.readouterr()

    # when: its final callback comes twice (the carrier retries one it got no 2xx for, or sends it twice)
    for _ in range(2):
        assert hooks.post(call.callid, "status", completed(call.carrier_call_id or "")).status == 204

    # then: one completed call, answered by a person
    assert outcomes(capsys) == {"CallsCompleted": 1, "CallsAnsweredByPerson": 1}
    assert stored(aws, call.callid).status is CallStatus.COMPLETED


def test_callbacks_in_any_order_count_the_call_once_under_the_status_it_ended_in(
    hooks: CarrierWebhooks,
    aws: Any,
    account: AccountCredentials,
    twilio: FakeTwilio,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed = random.randrange(2**32)
    print(f"seed={seed}")
    rng = random.Random(seed)
    for _ in range(3):
        # given: a placed call, and its callbacks: progress, two different final ones, one of them repeated
        call = a_placed_call(aws, account, twilio)
        sid = call.carrier_call_id or ""
        callbacks = [
            status_params(sid, "ringing", 1),
            status_params(sid, "in-progress", 2, AnsweredBy="human"),
            completed(sid),
            completed(sid),
            status_params(sid, "no-answer", 6, CallDuration="0"),
        ]
        rng.shuffle(callbacks)
        capsys.readouterr()

        # when: they come in that order
        for params in callbacks:
            assert hooks.post(call.callid, "status", params).status == 204

        # then: counted once, under the final status the first final callback gave it
        ended = stored(aws, call.callid)
        order = [p["CallStatus"] for p in callbacks]
        if ended.status is CallStatus.COMPLETED:
            assert outcomes(capsys) == {"CallsCompleted": 1, "CallsAnsweredByPerson": 1}, order
        else:
            assert ended.status is CallStatus.NO_ANSWER, order
            assert outcomes(capsys) == {"CallsNoAnswer": 1}, order


@pytest.mark.parametrize(
    ("carrier_status", "extra", "counted"),
    [
        ("completed", {"AnsweredBy": "human"}, {"CallsCompleted": 1, "CallsAnsweredByPerson": 1}),
        ("completed", {"AnsweredBy": "machine_end_beep"}, {"CallsCompleted": 1, "CallsAnsweredByMachine": 1}),
        ("busy", {"SipResponseCode": "486"}, {"CallsBusy": 1}),
        ("no-answer", {}, {"CallsNoAnswer": 1}),
        ("failed", {"SipResponseCode": "503"}, {"CallsFailed": 1}),
        ("canceled", {}, {"CallsCanceled": 1}),
    ],
)
def test_each_outcome_is_counted_under_its_name(
    hooks: CarrierWebhooks,
    aws: Any,
    account: AccountCredentials,
    twilio: FakeTwilio,
    capsys: pytest.CaptureFixture[str],
    carrier_status: str,
    extra: dict[str, str],
    counted: dict[str, float],
) -> None:
    call = a_placed_call(aws, account, twilio)
    capsys.readouterr()

    response = hooks.post(call.callid, "status", status_params(call.carrier_call_id or "", carrier_status, 3, **extra))

    assert response.status == 204
    assert outcomes(capsys) == counted


def test_a_callback_that_names_the_call_before_the_placer_wrote_its_id_counts_once(
    hooks: CarrierWebhooks,
    aws: Any,
    account: AccountCredentials,
    twilio: FakeTwilio,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given: a call claimed for dialing whose carrier call id is not written yet (the placer's write is on its way)
    callid = queue_call(aws, account)
    at = iso(datetime.now(UTC))
    held, _ = calls_store(aws).apply(callid, claim(at, "t0k3n", hold_until=at))
    assert held
    capsys.readouterr()

    # when: its final callback comes first, twice (the store takes its CallSid as the call's id: an alternative)
    sid = "CA" + "7" * 32
    for _ in range(2):
        assert hooks.post(callid, "status", status_params(sid, "busy", 3, SipResponseCode="486")).status == 204

    # then
    ended = stored(aws, callid)
    assert (ended.status, ended.carrier_call_id) == (CallStatus.BUSY, sid)
    assert outcomes(capsys) == {"CallsBusy": 1}


def test_a_retried_calls_attempts_count_once_when_the_call_ends(
    hooks: CarrierWebhooks,
    aws: Any,
    account: AccountCredentials,
    twilio: FakeTwilio,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given: two placed calls that may be retried when busy (their callbacks name their attempt)
    retried = a_placed_call(aws, account, twilio, retry_attempts="1", retry_on="busy")
    answered = a_placed_call(aws, account, twilio, retry_attempts="1", retry_on="busy")
    capsys.readouterr()

    # when: the first attempt of one is busy (it waits for its next one), the other's ends completed, twice
    busy = status_params(retried.carrier_call_id or "", "busy", 3, SipResponseCode="486")
    assert hooks.post(retried.callid, "status", busy, query="attempt=1").status == 204
    end = completed(answered.carrier_call_id or "")
    for _ in range(2):
        assert hooks.post(answered.callid, "status", end, query="attempt=1").status == 204

    # then: an attempt that ends without ending the call counts nothing; the call that ended, once
    assert stored(aws, retried.callid).status is CallStatus.RETRY_WAIT
    assert stored(aws, answered.callid).status is CallStatus.COMPLETED
    assert outcomes(capsys) == {"CallsCompleted": 1, "CallsAnsweredByPerson": 1}


# --- a call that ended another way, then its late final callback


def carrier_looking_up(twilio: FakeTwilio, found: dict[str, Any]) -> TwilioClient:
    """A Twilio client whose `GET /Calls/{sid}.json` answers `found` (the rest goes to the fake)."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and "/Calls/" in request.url.path:
            sid = request.url.path.rsplit("/", 1)[1].removesuffix(".json")
            return httpx.Response(200, json={"sid": sid, "account_sid": ACCOUNT_SID, **found})
        return twilio(request)

    http = httpx.Client(transport=httpx.MockTransport(handler))
    return TwilioClient(ACCOUNT_SID, AUTH_TOKEN, base_url=CARRIER_BASE_URL, http=http)


def test_a_call_reconciled_by_the_scheduler_is_counted_there_and_not_again_by_its_late_callback(
    hooks: CarrierWebhooks,
    aws: Any,
    account: AccountCredentials,
    twilio: FakeTwilio,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given: a placed call whose final callback is lost; the carrier says it completed, answered by a machine
    call = a_placed_call(aws, account, twilio)
    scheduler = fresh_module("functions.scheduler.app", aws.environment("SchedulerFunction"))
    scheduler.deps()._carrier = carrier_looking_up(
        twilio, {"status": "completed", "duration": "21", "answered_by": "machine_end_beep"}
    )
    later = time.time() + 600  # well past the look-up's delay after the carrier accepted the call
    scheduler.deps().scheduler.now = lambda: later
    capsys.readouterr()

    # when: the scheduler runs (reconciliation), then the lost callback comes after all
    report = scheduler.lambda_handler(load_event("scheduler_schedule.json"), LambdaContext(remaining_ms=60_000))
    by_scheduler = outcomes(capsys)
    late = completed(call.carrier_call_id or "", answered_by="machine_end_beep")
    assert hooks.post(call.callid, "status", late).status == 204

    # then: the scheduler counted it, once, by its outcome; the late callback counted nothing
    assert report["reconciled"] == 1
    assert stored(aws, call.callid).status is CallStatus.COMPLETED
    assert by_scheduler == {"CallsCompleted": 1, "CallsAnsweredByMachine": 1}
    assert outcomes(capsys) == {}


def test_a_call_hung_up_through_the_api_is_counted_there_and_not_again_by_its_late_callback(
    hooks: CarrierWebhooks,
    api: ApiClient,
    api_module: ModuleType,
    aws: Any,
    account: AccountCredentials,
    twilio: FakeTwilio,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given: a ringing call; the carrier cancels it when asked to end it
    api_module.deps().carrier = twilio.client()
    call = a_placed_call(aws, account, twilio)
    resource = {"sid": call.carrier_call_id, "account_sid": ACCOUNT_SID, "status": "canceled", "duration": "0"}
    twilio.update_answers.append(httpx.Response(200, json=resource))
    capsys.readouterr()

    # when: it is hung up (the carrier cancels it), then the carrier's own final callback says so too
    hung_up = api.delete(f"/pcall/calls/{call.callid}")
    by_api = outcomes(capsys)
    late = status_params(call.carrier_call_id or "", "canceled", 4)
    assert hooks.post(call.callid, "status", late).status == 204

    # then
    assert hung_up.status == 200, hung_up.body
    assert hung_up.data["call"]["status"] == "CANCELED"
    assert by_api == {"CallsCanceled": 1}
    assert outcomes(capsys) == {}


def test_hanging_up_a_call_not_dialed_yet_counts_no_outcome(
    api: ApiClient, aws: Any, account: AccountCredentials, capsys: pytest.CaptureFixture[str]
) -> None:
    callid = queue_call(aws, account)
    capsys.readouterr()

    assert api.delete(f"/pcall/calls/{callid}").status == 200

    assert stored(aws, callid).status is CallStatus.CANCELED
    assert outcomes(capsys) == {}


# --- the placer: a refusal


def test_a_refused_call_counts_as_failed_once_unless_it_was_hung_up_while_its_request_was_on_its_way(
    placer_module: ModuleType,
    api: ApiClient,
    api_module: ModuleType,
    aws: Any,
    account: AccountCredentials,
    twilio: FakeTwilio,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given: two queued calls the carrier refuses; one of them is hung up while its request is at the carrier
    refused = queue_call(aws, account, to="17134567891")
    hung_up = queue_call(aws, account, to="17134567892")
    error = twilio_error(400, 21211, "The 'To' number is not a valid phone number.")
    twilio.answers_to = {"+17134567891": [error], "+17134567892": [error]}
    hang_ups: list[int] = []

    def hang_up_meanwhile(request: CarrierRequest) -> None:
        if request.get("To") == "+17134567892":
            hang_ups.append(api.delete(f"/pcall/calls/{hung_up}").status)

    twilio.on_create = hang_up_meanwhile
    capsys.readouterr()

    # when: the placer places them
    invoke_placer(placer_module, sqs_event(aws, receive(aws)))

    # then: the refused one is FAILED and counted so; the one hung up is CANCELED, counted once, by the API
    assert hang_ups == [200]
    assert stored(aws, refused).status is CallStatus.FAILED
    assert stored(aws, hung_up).status is CallStatus.CANCELED
    assert outcomes(capsys) == {"CallsFailed": 1, "CallsCanceled": 1}


# --- CallsAccepted


def accepted(capsys: pytest.CaptureFixture[str]) -> float:
    return emitted_metrics(capsys.readouterr().out).get("CallsAccepted", 0)


def test_a_replayed_idempotency_key_is_not_counted_as_a_call_accepted(
    api: ApiClient, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    params = {"to": "17134567890", "answer_play": "https://example.com/hello.wav"}
    capsys.readouterr()

    first = api.post_call(params, headers={"Idempotency-Key": "order-42"})
    replay = api.post_call(params, headers={"Idempotency-Key": "order-42"})
    assert (first.status, replay.status) == (200, 200)
    assert replay.data == first.data
    assert accepted(capsys) == 1

    other = api.post_call(params, headers={"Idempotency-Key": "order-43"})
    assert other.status == 200
    assert accepted(capsys) == 1


def test_a_replayed_external_request_is_not_counted_as_a_call_accepted(
    placer_module: ModuleType, aws: Any, account: AccountCredentials, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: the same request with its idempotency_key three times (a retrying sender), and one without a key
    params = {"to": "12812345670", "answer_play": "https://example.com/hello.wav"}
    message = {"account_id": account.api_key, "idempotency_key": "order-1234", "params": params}
    send_all(aws, [message, message, {"account_id": account.api_key, "params": params}])
    capsys.readouterr()

    # when: the placer takes them (two batches: the second copy of the keyed one comes back later)
    invoke_placer(placer_module, sqs_event(aws, receive(aws)))
    send_all(aws, [message])
    invoke_placer(placer_module, sqs_event(aws, receive(aws)))

    # then: two calls accepted (the keyed one, the other), not four
    assert accepted(capsys) == 2


def send_all(stack: Any, messages: list[dict[str, Any]]) -> None:
    from callbridge.adapters.aws import client

    for message in messages:
        client("sqs").send_message(QueueUrl=stack.refs["CallsQueue"], MessageBody=json.dumps(message))


def test_a_replayed_campaign_is_not_counted_as_calls_accepted_again(
    api: ApiClient, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = [{"to": f"1281234{i:04d}"} for i in range(3)]
    body = json.dumps({"name": "reminders", "defaults": {"answer_play": "https://example.com/a.wav"}, "calls": calls})
    capsys.readouterr()

    for _ in range(2):
        response = api.request(
            "POST", "/pcall/campaigns", body=body, content_type="application/json", headers={"Idempotency-Key": "k-1"}
        )
        assert response.status == 200, response.body

    assert emitted_metrics(capsys.readouterr().out).get("CampaignCallsAccepted") == 3
