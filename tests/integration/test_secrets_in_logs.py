"""Secrets never reach a log line or an answer: not an account's password hash or webhook secret, not the carrier's
auth token, not the API password."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import boto3
from callbridge.adapters.secrets import CarrierCredentials
from callbridge.domain.accounts import Account, hash_password

from tests.conftest import ApiClient, json_log_lines

PASSWORD = "pw-5f0e8a1c9b7d4e2f"
WEBHOOK_SECRET = "whsec_Zq8vN3mK7pL2xR9tY4wB6cD1eF5gH0jS"


def test_a_malformed_account_is_a_503_whose_log_names_its_fields_but_not_its_secrets(
    aws: Any, api_module: ModuleType
) -> None:
    # given an account item an operator wrote by hand without its caller_id
    password_hash = hash_password(PASSWORD)
    item = {"pk": "cb_malformed", "sk": "ACCOUNT", "api_key": "cb_malformed", "password_hash": password_hash}
    item["webhook_secret"] = WEBHOOK_SECRET
    boto3.client("dynamodb").put_item(TableName=aws.refs["AccountsTable"], Item={k: {"S": v} for k, v in item.items()})

    # when its key signs in
    with json_log_lines(api_module) as lines:
        answer = ApiClient(api_module, auth=("cb_malformed", PASSWORD)).get("/pcall/calls")

    # then the answer is a 503 and the log says which field is wrong, quoting none of the secrets
    logged = json.dumps(lines)
    assert answer.status == 503
    assert "caller_id: missing" in logged
    for secret in (WEBHOOK_SECRET, password_hash, PASSWORD):
        for part in (secret[:12], secret[-12:]):
            assert part not in logged
            assert part not in answer.body


def test_repr_of_an_account_and_of_the_carriers_credentials_shows_no_secret() -> None:
    account = Account(api_key="cb_1", password_hash="scrypt$x", caller_id="12812345678", webhook_secret=WEBHOOK_SECRET)
    credentials = CarrierCredentials("AC123", "token-current-4f9a", "token-previous-7c2e")

    assert "cb_1" in repr(account)
    assert "AC123" in repr(credentials)
    for text in (repr(account), str(account), repr(credentials)):
        for secret in (WEBHOOK_SECRET, "scrypt$x", "token-current-4f9a", "token-previous-7c2e"):
            assert secret not in text
