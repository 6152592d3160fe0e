"""Failed logins through the api handler and the DynamoDB counters of template.yaml (moto)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import boto3
import pytest
from callbridge.adapters.login_failures import DynamoLoginFailures
from callbridge.logic.auth import LoginLimits, key_subject

from tests.conftest import AccountCredentials, ApiClient, make_account

LIMITS = LoginLimits()  # what the api function runs with
NOW = 1_800_000_000.0 + 100  # 100 s into a window: a burst never straddles two


@pytest.fixture
def api_module(api_module: ModuleType, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The api handler with its failed-login windows on a fixed clock."""
    monkeypatch.setattr(api_module.deps().login_limiter, "clock", lambda: NOW)
    return api_module


def test_the_counter_adds_reads_and_separates_windows(aws: Any) -> None:
    counter = DynamoLoginFailures(aws.refs["LoginFailuresTable"])

    assert counter.add_failure(["key#a", "ip#1"], 7, expires_at=4200) == {"key#a": 1, "ip#1": 1}
    assert counter.add_failure(["key#a"], 7, expires_at=4200) == {"key#a": 2}

    assert counter.counts(["key#a", "ip#1", "ip#2"], 7) == {"key#a": 2, "ip#1": 1, "ip#2": 0}
    assert counter.counts(["key#a"], 8) == {"key#a": 0}
    item = boto3.client("dynamodb").get_item(TableName=aws.refs["LoginFailuresTable"], Key={"pk": {"S": "key#a#7"}})
    assert item["Item"]["expires_at"] == {"N": "4200"}  # the template's TTL attribute


def test_a_burst_of_wrong_passwords_then_429_with_retry_after(
    api_module: ModuleType, account: AccountCredentials, aws: Any
) -> None:
    client = ApiClient(api_module)
    wrong = (account.api_key, "not the password")

    # when: a burst of wrong passwords from different addresses
    for n in range(LIMITS.per_key):
        response = client.get("/pcall/calls", auth=wrong, source_ip=f"198.51.100.{n}")
        # then: each is the seed's 401 envelope with its Basic challenge
        assert response.status == 401
        assert response.json == {
            "data": {"code": 401, "code_desc": "Invalid API credentials: wrong API key or password"}
        }
        assert response.headers["WWW-Authenticate"].startswith("Basic")

    # then: the next try is refused, even with the right password
    refused = client.get("/pcall/calls", auth=(account.api_key, account.password), source_ip="192.0.2.1")
    assert refused.status == 429
    assert refused.headers["Retry-After"] == str(LIMITS.window_seconds - 100)
    assert refused.data["code"] == 429
    assert refused.data["code_desc"] == "Too many failed logins: retry after 200 seconds"
    assert "WWW-Authenticate" not in refused.headers

    # and the shared counter holds the burst under the key's digest, not the key
    items = boto3.client("dynamodb").scan(TableName=aws.refs["LoginFailuresTable"])["Items"]
    by_key = [i for i in items if i["pk"]["S"].startswith(key_subject(account.api_key) + "#")]
    assert [int(i["failures"]["N"]) for i in by_key] == [LIMITS.per_key]
    assert not any(account.api_key in i["pk"]["S"] for i in items)


def test_a_burst_from_one_address_blocks_it_for_every_key_and_no_other_address(
    api_module: ModuleType, accounts_store: Any, account: AccountCredentials
) -> None:
    client = ApiClient(api_module)
    attacker = "203.0.113.66"
    for n in range(LIMITS.per_source):
        assert client.get("/pcall/calls", auth=(f"cb_guess_{n}", "x"), source_ip=attacker).status == 401

    good = (account.api_key, account.password)
    assert client.get("/pcall/calls", auth=good, source_ip=attacker).status == 429
    assert client.get("/pcall/calls", auth=good, source_ip="203.0.113.67").status == 200
    # a POST with invalid parameters is refused for its credentials first, 429 included
    assert client.post_call({"to": "not a number"}, auth=good, source_ip=attacker).status == 429


def test_a_failed_login_that_is_not_a_burst_changes_nothing_for_the_right_password(
    api_module: ModuleType, accounts_store: Any
) -> None:
    other = make_account(accounts_store)
    client = ApiClient(api_module)

    assert client.get("/pcall/calls", auth=(other.api_key, "typo")).status == 401
    assert client.get("/pcall/calls", auth=(other.api_key, other.password)).status == 200
