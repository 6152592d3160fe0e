"""Doubles for the carrier side of the integration tests: Twilio's REST API behind httpx.MockTransport,
simulated clocks, and the Lambda events SQS and API Gateway hand the placer and webhooks functions.
"""

from __future__ import annotations

import base64
import copy
import functools
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from callbridge.adapters.aws import client as aws_client
from callbridge.adapters.dynamodb.accounts import DynamoAccountsStore
from callbridge.adapters.dynamodb.calls import DynamoCallsStore
from callbridge.adapters.dynamodb.idempotency import DynamoIdempotency
from callbridge.adapters.dynamodb.ivr_menus import DynamoIvrMenus
from callbridge.adapters.pacing import DynamoPacer
from callbridge.adapters.sqs import SqsCallsQueue
from callbridge.adapters.suppressions import DynamoSuppressionList
from callbridge.carrier.signature import compute_signature
from callbridge.carrier.twilio import TwilioClient
from callbridge.domain.calls import Call
from callbridge.logic.intake import Intake, accept_call
from callbridge.logic.placer import Placement, Placer, WebhookUrls

from sandbox.moto_server import one_at_a_time
from tests.conftest import AccountCredentials, LambdaContext, load_event

ACCOUNT_SID = "AC" + "c0ffee00" * 4
AUTH_TOKEN = "f1e2d3c4b5a6978877665544332211aa"
API_HOST = "abc123.execute-api.us-east-1.amazonaws.com"
PUBLIC_API_URL = f"https://{API_HOST}"
CARRIER_BASE_URL = "https://api.twilio.test"
CALLS_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"
CALL_PATH_PREFIX = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/"
MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"

Answer = httpx.Response | Callable[[httpx.Request], httpx.Response]


# --- the carrier


@dataclass(frozen=True)
class CarrierRequest:
    """One request the carrier received, as it saw it."""

    method: str
    path: str
    form: list[tuple[str, str]]
    authorization: str
    at: float  # the placer's clock when the request went out

    def get(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.form if k == name]

    @property
    def names(self) -> set[str]:
        return {k for k, _ in self.form}


def twilio_error(status: int, code: int, message: str, headers: Mapping[str, str] | None = None) -> httpx.Response:
    """An error answer in Twilio's JSON shape."""
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return httpx.Response(status, json=body, headers=dict(headers or {}))


def read_timeout(request: httpx.Request) -> httpx.Response:
    """The request went out and no answer came back in time."""
    raise httpx.ReadTimeout("timed out waiting for Twilio", request=request)


class FakeTwilio:
    """Twilio's REST API as an httpx.MockTransport handler: records every request, answers from a script.

    Create-call requests take their answers from `answers_to[To]`, else from `call_answers`, in order; once those
    run out they succeed with 201 and a new sid.
    `on_create` runs while a create request is "at the carrier" (before it is answered).
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.requests: list[CarrierRequest] = []
        self.call_answers: list[Answer] = []
        self.answers_to: dict[str, list[Answer]] = {}  # answers to create-call requests for one `To`, first
        self.on_create: Callable[[CarrierRequest], None] | None = None
        self.update_answers: list[Answer] = []  # answers to `POST /Calls/{sid}.json` (hang up, cancel), in order
        self._lock = threading.Lock()
        self._sids = itertools.count(1)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        seen = CarrierRequest(
            method=request.method,
            path=request.url.path,
            form=parse_qsl(request.content.decode("ascii"), keep_blank_values=True),
            authorization=request.headers.get("authorization", ""),
            at=self.clock(),
        )
        creating = seen.method == "POST" and seen.path == CALLS_PATH
        with self._lock:
            self.requests.append(seen)
            answer = None
            if creating and self.answers_to.get(seen.get("To") or ""):
                answer = self.answers_to[seen.get("To") or ""].pop(0)
            elif creating and self.call_answers:
                answer = self.call_answers.pop(0)
            number = next(self._sids)
        if creating and self.on_create is not None:
            self.on_create(seen)
        if answer is not None:
            return answer(request) if callable(answer) else answer
        if creating:
            return httpx.Response(201, json=self._call(f"CA{number:032x}", seen))
        if seen.method == "POST" and seen.path.startswith(CALLS_PATH[: -len(".json")] + "/") and self.update_answers:
            update = self.update_answers.pop(0)
            return update(request) if callable(update) else update
        if seen.method == "POST" and seen.path == MESSAGES_PATH:
            body = {"sid": f"SM{number:032x}", "status": "queued", "to": seen.get("To"), "from": seen.get("From")}
            return httpx.Response(201, json=body)
        if seen.method == "POST" and seen.path.startswith(CALL_PATH_PREFIX):  # update: hang up, cancel, redirect
            sid = seen.path.removeprefix(CALL_PATH_PREFIX).removesuffix(".json")
            return httpx.Response(200, json={**self._call(sid, seen), "status": seen.get("Status") or "in-progress"})
        return twilio_error(404, 20404, "The requested resource was not found")

    @staticmethod
    def _call(sid: str, seen: CarrierRequest) -> dict[str, Any]:
        return {
            "sid": sid,
            "account_sid": ACCOUNT_SID,
            "to": seen.get("To"),
            "from": seen.get("From"),
            "status": "queued",
            "direction": "outbound-api",
            "answered_by": None,
            "duration": None,
            "queue_time": "0",
            "start_time": None,
            "end_time": None,
            "api_version": "2010-04-01",
            "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid}.json",
        }

    def client(self, now: Callable[[], float] = time.time) -> TwilioClient:
        """A TwilioClient whose HTTP goes to this fake; `now`: the clock it checks a pacing slot's deadline by
        (the placer's own: a placer on a fake clock gives the client that clock)."""
        http = httpx.Client(transport=httpx.MockTransport(self))
        return TwilioClient(ACCOUNT_SID, AUTH_TOKEN, base_url=CARRIER_BASE_URL, http=http, now=now)

    @property
    def creates(self) -> list[CarrierRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path == CALLS_PATH]

    @property
    def updates(self) -> list[CarrierRequest]:
        """Updates of a call (`POST .../Calls/{sid}.json`): hang-ups, cancels and redirects."""
        return [r for r in self.requests if r.method == "POST" and r.path.startswith(CALL_PATH_PREFIX)]

    @property
    def messages(self) -> list[CarrierRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path == MESSAGES_PATH]


# --- clocks


class FakeClock:
    """A clock that only moves when someone sleeps (one thread)."""

    def __init__(self, start: float) -> None:
        self.t = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += max(0.0, seconds)


class ThreadClocks:
    """One simulated clock per thread, all starting at `start`; a thread's sleep advances only its own clock.

    Each thread stands for a placer container: it sees time pass only by waiting, as a real one would.
    """

    def __init__(self, start: float) -> None:
        self.start = start
        self._local = threading.local()

    def now(self) -> float:
        t: float = getattr(self._local, "t", self.start)
        return t

    def sleep(self, seconds: float) -> None:
        self._local.t = self.now() + max(0.0, seconds)


# --- AWS


@functools.cache
def _template() -> dict[str, Any]:
    from sandbox.template import load_template

    return load_template()


def moto_stack() -> Iterator[Any]:
    """What tests/conftest.py's `aws` fixture yields — moto with every resource of template.yaml — built with the
    functions' own cached boto3 clients and the template parsed once per session: the same stack, a fraction of the
    set-up time. Test modules with many tests use it as their `aws`.
    """
    from moto import mock_aws

    from sandbox.template import create_stack

    with mock_aws():
        clients = {name: aws_client(name) for name in ("dynamodb", "sqs", "s3", "secretsmanager")}
        yield create_stack(clients, template=copy.deepcopy(_template()))


@contextmanager
def atomic_dynamodb() -> Iterator[None]:
    """moto's DynamoDB requests handled one at a time, as the sandbox's moto server does (sandbox/moto_server.py):
    each write atomic and each answer the items as of its request, as DynamoDB's are."""
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.call_action
    setattr(DynamoHandler, "call_action", one_at_a_time(original, threading.RLock()))  # noqa: B010
    try:
        yield
    finally:
        setattr(DynamoHandler, "call_action", original)  # noqa: B010


def calls_store(stack: Any) -> DynamoCallsStore:
    return DynamoCallsStore(stack.refs["CallsTable"], idempotency_table=stack.refs["AccountsTable"])


def queue_call(stack: Any, account: AccountCredentials, **params: str) -> str:
    """Accept a call as POST /pcall/call does (stored QUEUED, `{"callid"}` sent to CallsQueue); its callid."""
    intake = Intake(
        calls=calls_store(stack),
        accounts=DynamoAccountsStore(stack.refs["AccountsTable"]),
        idempotency=DynamoIdempotency(stack.refs["AccountsTable"]),
        menus=DynamoIvrMenus(stack.refs["AccountsTable"]),
        queue=SqsCallsQueue(stack.refs["CallsQueue"]),
        suppressions=DynamoSuppressionList(stack.refs["SuppressionsTable"]),
    )
    params = {"to": "17134567890", "answer_play": "https://example.com/hello.wav", **params}
    return str(accept_call(params, account.account, intake, now=datetime.now(UTC)).data["callid"])


def place_now(stack: Any, carrier: FakeTwilio, callid: str) -> Call:
    """Place a queued call through the real Placer (the carrier accepts it); the call as stored after."""
    clock = FakeClock(time.time())
    placer = Placer(
        calls=calls_store(stack),
        carrier=carrier.client(clock.now),
        pacer=DynamoPacer(stack.refs["PacingTable"], 10),
        urls=WebhookUrls(PUBLIC_API_URL),
        now=clock.now,
        sleep=clock.sleep,
    )
    assert placer.place(callid).placement is Placement.PLACED
    return stored(stack, callid)


def stored(stack: Any, callid: str) -> Call:
    call = calls_store(stack).get(callid)
    assert call is not None, callid
    return call


def raw_item(stack: Any, callid: str) -> dict[str, Any]:
    """The CallsTable item exactly as stored."""
    item: dict[str, Any] = aws_client("dynamodb").get_item(
        TableName=stack.refs["CallsTable"], Key={"callid": {"S": callid}}, ConsistentRead=True
    )["Item"]
    return item


def receive(stack: Any, *, limit: int = 10, visibility: int = 30) -> list[dict[str, Any]]:
    """Messages on CallsQueue, received as Lambda's poller receives them (with their system attributes)."""
    messages: list[dict[str, Any]] = (
        aws_client("sqs")
        .receive_message(
            QueueUrl=stack.refs["CallsQueue"],
            MaxNumberOfMessages=limit,
            VisibilityTimeout=visibility,
            AttributeNames=["All"],
            WaitTimeSeconds=0,
        )
        .get("Messages", [])
    )
    return messages


def sqs_event(stack: Any, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The event Lambda's SQS poller hands the placer for these received messages."""
    template = load_event("placer_sqs_batch.json")["Records"][0]
    records = []
    for message in messages:
        record = copy.deepcopy(template)
        record.update(
            messageId=message["MessageId"],
            receiptHandle=message["ReceiptHandle"],
            body=message["Body"],
            md5OfBody=message["MD5OfBody"],
            eventSourceARN=stack.attrs[("CallsQueue", "Arn")],
        )
        record["attributes"] = {
            k: message["Attributes"][k]
            for k in ("ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp")
        }
        records.append(record)
    return {"Records": records}


def invoke_placer(module: ModuleType, event: dict[str, Any]) -> dict[str, Any]:
    """A fresh invocation of the placer, with the whole of its template Timeout ahead of it."""
    from sandbox.template import load_template

    timeout = load_template()["Resources"]["PlacerFunction"]["Properties"]["Timeout"]
    result: dict[str, Any] = module.lambda_handler(event, LambdaContext(remaining_ms=int(timeout) * 1000))
    return result


def failed_ids(result: dict[str, Any]) -> list[str]:
    return [f["itemIdentifier"] for f in result.get("batchItemFailures", [])]


# --- webhooks


@dataclass
class WebhookResponse:
    status: int
    headers: dict[str, str]
    body: str


@dataclass
class CarrierWebhooks:
    """Posts to the webhooks handler as Twilio does through API Gateway (HTTP API, payload v2), signed."""

    module: ModuleType
    auth_token: str = AUTH_TOKEN
    sent: list[dict[str, Any]] = field(default_factory=list)

    def event(
        self, callid: str, action: str, params: Mapping[str, str], *, signature: str | None = "sign", query: str = ""
    ) -> dict[str, Any]:
        """A request to the webhook `action` of a call (`query`: its URL's query string, signed with it)."""
        event = load_event("webhook_status.json")
        path = f"/carrier/twilio/{callid}/{action}"
        event["rawPath"] = path
        event["requestContext"]["http"]["path"] = path
        event["pathParameters"] = {"callid": callid, "action": action}
        if query:
            event["rawQueryString"] = query
            event["queryStringParameters"] = dict(parse_qsl(query))
            path = f"{path}?{query}"
        body = urlencode(list(params.items()))
        event["body"] = base64.b64encode(body.encode()).decode()
        event["isBase64Encoded"] = True
        headers = event["headers"]
        assert headers["host"] == event["requestContext"]["domainName"] == API_HOST
        if signature == "sign":
            headers["x-twilio-signature"] = compute_signature(f"{PUBLIC_API_URL}{path}", params, self.auth_token)
        elif signature is None:
            headers.pop("x-twilio-signature")
        else:
            headers["x-twilio-signature"] = signature
        return event

    def post(
        self, callid: str, action: str, params: Mapping[str, str], *, signature: str | None = "sign", query: str = ""
    ) -> WebhookResponse:
        event = self.event(callid, action, params, signature=signature, query=query)
        self.sent.append(event)
        result = self.module.lambda_handler(event, LambdaContext())
        body = result.get("body", "")
        if result.get("isBase64Encoded"):
            body = base64.b64decode(body).decode()
        return WebhookResponse(result["statusCode"], result.get("headers", {}), body)


def status_params(call_sid: str, status: str, seq: int, **extra: str) -> dict[str, str]:
    """A status callback's form, as Twilio posts it (event `seq` happens `seq` × 10 s after 12:00:00)."""
    return {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": status,
        "CallbackSource": "call-progress-events",
        "Called": "+17134567890",
        "Caller": "+12815550100",
        "Direction": "outbound-api",
        "From": "+12815550100",
        "To": "+17134567890",
        "SequenceNumber": str(seq),
        "Timestamp": f"Sun, 10 Jan 2027 12:00:{seq * 10:02d} +0000",
        **extra,
    }


def json_body(response: WebhookResponse) -> Any:
    return json.loads(response.body)
