"""Each function's settings come from its environment: a variable per field, defaults where one is unset."""

from __future__ import annotations

import types

import pytest
from callbridge import settings
from callbridge.settings import TWILIO_API, ApiSettings, SchedulerSettings
from pydantic import ValidationError

API_ENV = {
    "CALLS_TABLE": "calls",
    "ACCOUNTS_TABLE": "accounts",
    "CALLS_QUEUE_URL": "https://queue",
    "LOGIN_FAILURES_TABLE": "failures",
    "SUPPRESSIONS_TABLE": "dnc",
    "PACING_TABLE": "pacing",
}


def _set(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """The function's environment is `env` alone."""
    monkeypatch.setattr(settings, "os", types.SimpleNamespace(environ=env))


def test_a_variable_unset_or_empty_keeps_its_field_s_default(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, {**API_ENV, "ACCOUNT_CACHE_SECONDS": "", "SCHEDULE_SHARDS": "4"})
    read = ApiSettings.from_env()
    assert (read.account_cache_seconds, read.carrier_base_url, read.carrier_secret_id) == (60, TWILIO_API, "")
    assert (read.schedule_shards, read.calls_table) == (4, "calls")


@pytest.mark.parametrize(("value", "on"), [("true", True), ("ON", True), ("1", True), ("no", False), ("", False)])
def test_a_switch_is_on_or_off(monkeypatch: pytest.MonkeyPatch, value: str, on: bool) -> None:
    _set(monkeypatch, {**API_ENV, "CALLBACK_ALLOW_LOOPBACK": value})
    assert ApiSettings.from_env().callback_allow_loopback is on


def test_fields_are_read_from_the_variables_the_template_names(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "CALLS_TABLE": "calls",
        "CALLS_QUEUE_URL": "https://queue",
        "CALLS_DEAD_LETTER_QUEUE_URL": "https://dlq",
        "CARRIER_SECRET_ID": "secret",
        "DISPATCH_GRACE_SECONDS": "60",
        "DISPATCH_LOOKAHEAD_SECONDS": "120",
        "SCHEDULER_WORKERS": "8",
    }
    _set(monkeypatch, env)
    read = SchedulerSettings.from_env()
    assert (read.grace_seconds, read.lookahead_seconds, read.workers) == (60, 120, 8)


def test_a_missing_or_invalid_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, {**API_ENV, "CALLS_TABLE": "", "SCHEDULE_SHARDS": "0"})
    with pytest.raises(ValidationError) as error:
        ApiSettings.from_env()
    assert {e["loc"][0] for e in error.value.errors()} == {"calls_table", "schedule_shards"}
