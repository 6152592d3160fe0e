"""The admin CLI (`python -m callbridge.admin`), run in-process against moto, and its effect on the API."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import pytest
from callbridge.admin import main, masked

from tests.conftest import ApiClient, fresh_module
from tests.integration.conftest import MINIMAL, stored_call

# moto answers requests to AWS's own endpoints, so passing one exercises --endpoint-url.
ENDPOINT = "https://dynamodb.us-east-1.amazonaws.com"


@pytest.fixture
def table(aws: Any) -> str:
    return str(aws.refs["AccountsTable"])


@pytest.fixture
def uncached_api(aws: Any, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The api handler with ACCOUNT_CACHE_SECONDS=0: every request sees the account as stored now."""
    monkeypatch.setenv("ACCOUNT_CACHE_SECONDS", "0")
    return fresh_module("functions.api.app", {**aws.environment("ApiFunction"), "ACCOUNT_CACHE_SECONDS": "0"})


def admin(capsys: pytest.CaptureFixture[str], table: str, *args: str) -> tuple[int, Any, str]:
    """Run the CLI; returns (exit code, parsed stdout or None, stderr)."""
    capsys.readouterr()  # what the handlers printed before (their metrics) is not the CLI's output
    code = main(["--table", table, "--endpoint-url", ENDPOINT, *args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def stored_account(aws: Any, api_key: str) -> dict[str, Any]:
    import boto3

    item = boto3.client("dynamodb").get_item(
        TableName=aws.refs["AccountsTable"], Key={"pk": {"S": api_key}, "sk": {"S": "ACCOUNT"}}
    )["Item"]
    return {k: next(iter(v.values())) for k, v in item.items()}


def test_create_prints_the_credentials_once_and_stores_only_a_hash(
    capsys: pytest.CaptureFixture[str], table: str, aws: Any, uncached_api: ModuleType
) -> None:
    # when
    code, out, _ = admin(
        capsys,
        table,
        "create",
        "--caller-id",
        "+1 281 555 0100",
        "--record",
        "YES",
        "--timezone",
        "Europe/Madrid",
        "--sms-from",
        "12815550111",
        "--name",
        "acme",
    )

    # then: printed once, with defaults normalized
    assert code == 0
    assert out["api_key"].startswith("cb_")
    assert len(out["password"]) >= 24
    assert (out["caller_id"], out["record_default"], out["timezone"], out["sms_from"], out["name"]) == (
        "+12815550100",
        "YES",
        "Europe/Madrid",
        "+12815550111",
        "acme",
    )
    assert "password_hash" not in out
    # stored: a salted scrypt hash, never the password
    item = stored_account(aws, out["api_key"])
    assert item["password_hash"].startswith("scrypt$")
    assert out["password"] not in json.dumps(item)
    assert "password" not in item
    # and the credentials work
    response = ApiClient(uncached_api, auth=(out["api_key"], out["password"])).post_call(MINIMAL)
    assert response.status == 200
    assert (response.data["from"], response.data["record"]) == ("+12815550100", "YES")


def test_create_with_a_chosen_api_key(capsys: pytest.CaptureFixture[str], table: str) -> None:
    code, out, _ = admin(capsys, table, "create", "--caller-id", "12815550100", "--api-key", "acme-prod")

    assert code == 0
    assert out["api_key"] == "acme-prod"
    again, _, err = admin(capsys, table, "create", "--caller-id", "12815550100", "--api-key", "acme-prod")
    assert again == 2
    assert "already exists" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--caller-id", "555-0100"], "not an international phone number"),
        (["--caller-id", "12815550100", "--timezone", "Mars/Olympus"], "unknown time zone"),
        (["--caller-id", "12815550100", "--sms-from", "nope"], "SMS number"),
    ],
)
def test_create_refuses_bad_values(
    capsys: pytest.CaptureFixture[str], table: str, args: list[str], message: str
) -> None:
    code, out, err = admin(capsys, table, "create", *args)

    assert code == 2
    assert out is None
    assert message in err


def test_create_names_every_bad_flag_at_once_and_creates_nothing(
    capsys: pytest.CaptureFixture[str], table: str
) -> None:
    bad = ["--caller-id", "123", "--timezone", "Nowhere/X", "--sms-from", "nope", "--call-window", "25:00-20:00"]
    code, out, err = admin(capsys, table, "create", *bad)

    assert code == 2
    assert out is None
    for flag in ("--caller-id", "--timezone", "--sms-from", "--call-window"):
        assert f"{flag}: " in err, flag
    assert admin(capsys, table, "list")[1] == []


def test_list_never_shows_passwords_or_hashes(capsys: pytest.CaptureFixture[str], table: str, aws: Any) -> None:
    # given
    created = [admin(capsys, table, "create", "--caller-id", "12815550100", "--name", n)[1] for n in ("a", "b")]

    # when
    code, out, _ = admin(capsys, table, "list")

    # then
    assert code == 0
    assert sorted(a["api_key"] for a in out) == sorted(c["api_key"] for c in created)
    text = json.dumps(out)
    assert "password" not in text
    assert "scrypt$" not in text
    for c in created:
        assert c["password"] not in text
        assert stored_account(aws, c["api_key"])["password_hash"] not in text


def test_list_masks_webhook_secrets_unless_asked(capsys: pytest.CaptureFixture[str], table: str, aws: Any) -> None:
    # given: create prints each new account's secret in full, as stored
    created = {
        c["api_key"]: c["webhook_secret"]
        for c in (admin(capsys, table, "create", "--caller-id", "12815550100", "--name", n)[1] for n in ("a", "b"))
    }
    for key, secret in created.items():
        assert secret.startswith("whsec_")
        assert stored_account(aws, key)["webhook_secret"] == secret

    # when
    code, out, _ = admin(capsys, table, "list")

    # then: each secret only by its last four characters
    assert code == 0
    assert {a["api_key"]: a["webhook_secret"] for a in out} == {k: "..." + s[-4:] for k, s in created.items()}
    text = json.dumps(out)
    for secret in created.values():
        assert secret not in text
        assert secret[:-4] not in text

    # when: asked for them
    code, out, _ = admin(capsys, table, "list", "--show-secrets")

    # then: in full, and still no password
    assert code == 0
    assert {a["api_key"]: a["webhook_secret"] for a in out} == created
    assert "password" not in json.dumps(out)


@pytest.mark.parametrize(
    "args", [["disable"], ["enable"], ["set-call-defaults", "--call-days", "MON-FRI"], ["list"]], ids=lambda a: a[0]
)
def test_commands_that_print_an_account_mask_its_webhook_secret(
    capsys: pytest.CaptureFixture[str], table: str, args: list[str]
) -> None:
    _, account, _ = admin(capsys, table, "create", "--caller-id", "12815550100")
    command, *flags = args
    key = [] if command == "list" else [account["api_key"]]

    code, out, _ = admin(capsys, table, command, *key, *flags)

    assert code == 0
    (shown,) = out if isinstance(out, list) else [out]
    assert shown["webhook_secret"] == "..." + account["webhook_secret"][-4:]
    assert account["webhook_secret"] not in json.dumps(out)


def test_a_short_secret_is_masked_without_its_tail() -> None:
    # a secret set by hand: four of too few characters would give much of it away
    assert masked("whsec_0123456789abcdef") == "...cdef"
    assert masked("0123456789abcdef") == "...cdef"
    assert masked("0123456789abcde") == "..."
    assert masked("") == "..."


def test_disable_then_enable(capsys: pytest.CaptureFixture[str], table: str, uncached_api: ModuleType) -> None:
    # given
    _, account, _ = admin(capsys, table, "create", "--caller-id", "12815550100")
    client = ApiClient(uncached_api, auth=(account["api_key"], account["password"]))
    assert client.get("/pcall/calls").status == 200

    # when: disabled
    code, out, _ = admin(capsys, table, "disable", account["api_key"])

    # then
    assert code == 0
    assert out["enabled"] is False
    refused = client.get("/pcall/calls")
    assert refused.status == 401
    assert "disabled" in refused.data["code_desc"]
    assert client.post_call(MINIMAL).status == 401

    # when: enabled again
    assert admin(capsys, table, "enable", account["api_key"])[1]["enabled"] is True

    # then
    assert client.get("/pcall/calls").status == 200


def test_rotate_password_invalidates_the_old_one(
    capsys: pytest.CaptureFixture[str], table: str, aws: Any, uncached_api: ModuleType
) -> None:
    # given
    _, account, _ = admin(capsys, table, "create", "--caller-id", "12815550100")
    old_hash = stored_account(aws, account["api_key"])["password_hash"]
    old = ApiClient(uncached_api, auth=(account["api_key"], account["password"]))
    assert old.get("/pcall/calls").status == 200

    # when
    code, out, _ = admin(capsys, table, "rotate-password", account["api_key"])

    # then
    assert code == 0
    assert out["api_key"] == account["api_key"]
    assert out["password"] != account["password"]
    assert stored_account(aws, account["api_key"])["password_hash"] != old_hash
    assert old.get("/pcall/calls").status == 401
    assert ApiClient(uncached_api, auth=(account["api_key"], out["password"])).get("/pcall/calls").status == 200


@pytest.mark.parametrize("command", ["disable", "enable", "rotate-password"])
def test_commands_on_an_unknown_account(capsys: pytest.CaptureFixture[str], table: str, command: str) -> None:
    code, out, err = admin(capsys, table, command, "cb_nobody")

    assert code == 2
    assert out is None
    assert "no account cb_nobody" in err


def test_a_table_or_stack_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["list"])

    assert exited.value.code == 2


def test_calling_window_defaults_are_set_checked_and_cleared(
    capsys: pytest.CaptureFixture[str], table: str, uncached_api: ModuleType, aws: Any
) -> None:
    code, out, _ = admin(
        capsys, table, "create", "--caller-id", "12815550100", "--call-window", "09:00-20:00", "--call-days", "mon-fri"
    )
    assert code == 0
    assert (out["call_window"], out["call_days"], out["recipient_timezone"]) == (
        "09:00-20:00",
        "MON,TUE,WED,THU,FRI",
        None,
    )
    key, password = out["api_key"], out["password"]

    code, out, _ = admin(capsys, table, "set-call-defaults", key, "--call-days", "", "--recipient-timezone", "UTC")
    assert code == 0
    assert (out["call_window"], out["call_days"], out["recipient_timezone"]) == ("09:00-20:00", None, "UTC")
    # the defaults apply to calls: a window that is not open now holds the call (the request could override it)
    now = datetime.now(UTC)
    closed = f"{(now.hour + 2) % 24:02d}:00-{(now.hour + 3) % 24:02d}:00"
    assert admin(capsys, table, "set-call-defaults", key, "--call-window", closed)[0] == 0
    response = ApiClient(uncached_api, auth=(key, password)).post_call(MINIMAL)
    assert response.status == 200, response.body
    assert stored_call(aws, response.data["callid"])["status"] == "SCHEDULED"

    for args, message in (
        (["--call-window", "9-5"], "HH:MM-HH:MM"),
        (["--call-days", "WEEKDAYS"], "MON..SUN"),
        (["--recipient-timezone", "Mars/Olympus"], "unknown time zone"),
    ):
        code, out, err = admin(capsys, table, "set-call-defaults", key, *args)
        assert code == 2
        assert message in err
        assert err.startswith(f"error: {args[0]}: ")  # the flag is named
    # every bad flag at once, each named
    code, out, err = admin(
        capsys, table, "set-call-defaults", key, "--call-window", "9-5", "--call-days", "WEEKDAYS",
        "--recipient-timezone", "Mars/Olympus",
    )  # fmt: skip
    assert code == 2
    assert [part.split(":")[0] for part in err.removeprefix("error: ").split("; ")] == [
        "--call-window",
        "--call-days",
        "--recipient-timezone",
    ]
