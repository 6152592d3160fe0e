"""Fixtures for the API's handler tests: a controllable clock, a second account, and the stored calls."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import AccountCredentials, ApiClient, make_account

# Curl's `--data` body from the seed, byte for byte.
CURL_BODY = "to=12812345670&answer_play=http://example.com/file.wav"
# The fields of the seed's PHP example (`http_build_query($post_fields)`).
PHP_FIELDS = {
    "from": "12812345678",
    "to": "17134567890",
    "record": "YES",
    "answer_play": "https://example.com/file.mp3",
    "answer_tts": "This text will be read it when file.mp3 ends",
    "answer_tts_voice": "en-US_AllisonVoice",
    "answer_dial_to": "18323456789",
    "answermachine_speak": "It is a message for your voicemail",
    "answermachine_speak_lang": "en-US",
    "answermachine_sms": "SMS message",
}
MINIMAL = {"to": "12812345670", "answer_play": "http://example.com/file.wav"}
START = datetime(2027, 1, 10, 12, 0, 30, tzinfo=UTC)


class Clock:
    """The API's notion of now, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(api_module: ModuleType, monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Freeze the API's clock at START (2027-01-10 12:00:30 UTC); tests advance it."""
    frozen = Clock(START)
    monkeypatch.setattr(api_module, "_now", frozen)
    return frozen


@pytest.fixture
def other(accounts_store: Any) -> AccountCredentials:
    return make_account(accounts_store, caller_id="442079460000", name="other")


@pytest.fixture
def other_api(api_module: ModuleType, other: AccountCredentials) -> ApiClient:
    return ApiClient(api_module, auth=(other.api_key, other.password))


def _client(service: str) -> Any:
    """The handlers' own cached boto3 client (creating one costs ~70 ms)."""
    from callbridge.adapters.aws import client

    return client(service)


def _stored(item: dict[str, Any]) -> dict[str, Any]:
    """A CallsTable item as a plain dict: the call it stores (as the store reads it back), and its index keys."""
    from callbridge.adapters.dynamodb.call_codec import call_data
    from callbridge.adapters.dynamodb.codec import from_item

    keys = ("created_key", "due_key", "due_shard", "scheduled_account")
    indexes = {k: v for k, v in from_item(item).items() if k in keys}
    return {**call_data(item).model_dump(mode="json", exclude_none=True), **indexes}


def stored_calls(stack: Any) -> list[dict[str, Any]]:
    """Every item of CallsTable, as plain dicts (`_stored`)."""
    pages = _client("dynamodb").get_paginator("scan").paginate(TableName=stack.refs["CallsTable"])
    return [_stored(item) for page in pages for item in page.get("Items", [])]


def stored_call(stack: Any, callid: str) -> dict[str, Any]:
    item = _client("dynamodb").get_item(TableName=stack.refs["CallsTable"], Key={"callid": {"S": callid}})
    return _stored(item["Item"])


def queued(stack: Any) -> list[dict[str, Any]]:
    """Every message on CallsQueue (received with a long visibility timeout, so each appears once)."""
    import json

    messages: list[dict[str, Any]] = []
    while (
        batch := _client("sqs")
        .receive_message(QueueUrl=stack.refs["CallsQueue"], MaxNumberOfMessages=10, VisibilityTimeout=300)
        .get("Messages", [])
    ):
        messages.extend(json.loads(m["Body"]) for m in batch)
    return messages


def add_ivr(stack: Any, api_key: str, code: str) -> None:
    """An IVR menu of the account (press 1 to hear goodbye), as AccountsTable keeps it."""
    menu = {
        "prompt": {"speak": "Press 1.", "speak_lang": "en-US"},
        "options": {"1": {"action": "say", "speak": "Goodbye.", "speak_lang": "en-US"}},
    }
    _client("dynamodb").put_item(
        TableName=stack.refs["AccountsTable"],
        Item={
            "pk": {"S": api_key},
            "sk": {"S": f"IVR#{code}"},
            "menu": {"S": json.dumps(menu)},
            "created_at": {"S": "2027-01-01T00:00:00.000Z"},
            "updated_at": {"S": "2027-01-01T00:00:00.000Z"},
        },
    )


def local(when: datetime, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return when.strftime(fmt)


# --- the carrier side (placer, webhooks): the carrier secret, a fake Twilio, handler modules wired to it


@pytest.fixture
def carrier_secret(aws: Any) -> dict[str, str]:
    """The template's CarrierSecret holding the fake Twilio account's credentials (no stale cached copy)."""
    import json

    from aws_lambda_powertools.utilities.parameters.base import DEFAULT_PROVIDERS  # type: ignore[attr-defined]
    from callbridge.adapters.aws import client

    from tests.integration.fakes import ACCOUNT_SID, AUTH_TOKEN

    secret = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN}
    client("secretsmanager").put_secret_value(SecretId=aws.refs["CarrierSecret"], SecretString=json.dumps(secret))
    for provider in DEFAULT_PROVIDERS.values():  # forget values read in earlier tests; keep the clients
        provider.clear_cache()
    return secret


@pytest.fixture
def twilio() -> Any:
    """Twilio's REST API behind httpx.MockTransport (see tests/integration/fakes.py)."""
    from tests.integration.fakes import FakeTwilio

    return FakeTwilio()


@pytest.fixture
def placer_module(aws: Any, carrier_secret: dict[str, str], twilio: Any) -> ModuleType:
    """functions/placer/app.py, cold-started against moto, its carrier the fake Twilio, its waits not slept."""
    from tests.conftest import fresh_module
    from tests.integration.fakes import CARRIER_BASE_URL, PUBLIC_API_URL

    env = aws.environment("PlacerFunction")
    env.update(PUBLIC_API_URL=PUBLIC_API_URL, CARRIER_BASE_URL=CARRIER_BASE_URL, CARRIER_CPS="10")
    module = fresh_module("functions.placer.app", env)
    placer = module.deps().placer
    placer.carrier = twilio.client()
    placer.sleep = lambda _seconds: None  # 10 CPS: slots a tenth of a second apart; no test waits for real
    return module


@pytest.fixture
def webhooks_module(aws: Any, carrier_secret: dict[str, str], twilio: Any) -> ModuleType:
    """functions/webhooks/app.py, cold-started against moto, its carrier the fake Twilio."""
    from tests.conftest import fresh_module
    from tests.integration.fakes import CARRIER_BASE_URL

    env = aws.environment("WebhooksFunction")
    env.update(CARRIER_BASE_URL=CARRIER_BASE_URL)
    module = fresh_module("functions.webhooks.app", env)
    hooks = module.deps().webhooks
    hooks.carrier = twilio.client()
    hooks.sleep = lambda _seconds: None
    return module
