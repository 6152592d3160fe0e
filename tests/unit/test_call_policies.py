"""Call policies as pure rules: retry parameters and verdicts, metadata, do-not-call entries, and resolving a
call's policies from its request and its account's defaults."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from callbridge.domain.accounts import Account
from callbridge.domain.errors import InvalidRequest
from callbridge.domain.metadata import MetadataError, parse_metadata
from callbridge.domain.policies import resolve_policy
from callbridge.domain.requests import parse_call_request
from callbridge.domain.retries import RetryOn, RetryPolicy, ending_of
from callbridge.domain.suppressions import CLOCK_MARGIN_SECONDS, normalize_number, parse_bulk, unlisted_since_check

NOW = datetime(2027, 1, 11, 15, 0, tzinfo=UTC)  # Monday 09:00 in Chicago
BASE = {"to": "12812345670", "answer_play": "https://example.com/a.wav"}


def account(**defaults: str) -> Account:
    return Account(api_key="cb_x", password_hash="x", caller_id="+12815550100", webhook_secret="s", **defaults)


def problems(params: dict[str, str]) -> dict[str, str]:
    try:
        resolve_policy(parse_call_request({**BASE, **params}), account(), NOW)
    except InvalidRequest as exc:
        return {p.field: p.message for p in exc.problems}
    raise AssertionError(f"accepted: {params}")


# --- retries


def test_retry_parameters_and_their_bounds() -> None:
    request = parse_call_request({**BASE, "retry_attempts": "10", "retry_interval": "30", "retry_on": "machine,busy"})
    policy = resolve_policy(request, account(), NOW)
    assert (policy.retry_attempts, policy.retry_interval, policy.retry_on) == (10, 30, "BUSY,MACHINE")
    found = problems({"retry_attempts": "11", "retry_interval": "29", "retry_on": "BUSY,LATER"})
    assert set(found) == {"retry_attempts", "retry_interval", "retry_on"}
    assert "0 to 10" in found["retry_attempts"]
    assert "30 to 86400" in found["retry_interval"]
    assert set(problems({"retry_interval": "86401", "retry_attempts": "-1"})) == {"retry_interval", "retry_attempts"}


def test_defaults_are_no_retry_every_ten_minutes_on_busy_and_no_answer() -> None:
    policy = resolve_policy(parse_call_request(BASE), account(), NOW)
    assert policy.retry() == RetryPolicy(0, 600, frozenset({RetryOn.BUSY, RetryOn.NO_ANSWER}))
    assert policy.window() is None


@pytest.mark.parametrize(
    ("status", "answered_by", "error", "sip", "ending"),
    [
        ("BUSY", "", None, "486", RetryOn.BUSY),
        ("NO_ANSWER", "", None, "487", RetryOn.NO_ANSWER),
        ("COMPLETED", "Machine", None, "200", RetryOn.MACHINE),
        ("COMPLETED", "Person", None, "200", None),
        ("FAILED", "", "SIP 503", "503", RetryOn.FAILED),
        ("FAILED", "", "SIP 480", "480", RetryOn.FAILED),  # unreachable now (the sandbox's digit 4)
        ("FAILED", "", None, None, RetryOn.FAILED),
        ("FAILED", "", "SIP 404", "404", None),  # the number does not exist
        ("FAILED", "", "21211", None, None),  # the carrier refused the number
        ("CANCELED", "", None, None, None),
    ],
)
def test_how_an_attempt_ended(
    status: str, answered_by: str, error: str | None, sip: str | None, ending: object
) -> None:
    assert ending_of(status, answered_by, error, sip) == ending


def test_retries_follow_retry_on_and_stop_after_the_last_attempt() -> None:
    policy = RetryPolicy(attempts=2, interval=60, on=frozenset({RetryOn.BUSY}))
    assert policy.retries(RetryOn.BUSY, 1)
    assert policy.retries(RetryOn.BUSY, 2)
    assert not policy.retries(RetryOn.BUSY, 3)  # 1 + 2 attempts made
    assert not policy.retries(RetryOn.NO_ANSWER, 1)
    assert not policy.retries(None, 1)


# --- calling windows


def test_window_defaults_come_from_the_account_and_the_request_wins() -> None:
    defaults = account(call_window="10:00-18:00", call_days="MON-FRI")
    policy = resolve_policy(parse_call_request(BASE), defaults, NOW)
    assert (policy.call_window, policy.call_days, policy.zones) == (
        "10:00-18:00",
        "MON,TUE,WED,THU,FRI",
        ["America/Chicago"],
    )
    request = parse_call_request({**BASE, "call_window": "08:00-09:00", "recipient_timezone": "Europe/Paris"})
    policy = resolve_policy(request, defaults, NOW)
    assert (policy.call_window, policy.call_days, policy.zones) == (
        "08:00-09:00",
        "MON,TUE,WED,THU,FRI",
        ["Europe/Paris"],
    )


def test_days_alone_mean_the_whole_day() -> None:
    policy = resolve_policy(parse_call_request({**BASE, "call_days": "SAT-SUN"}), account(), NOW)
    assert (policy.call_window, policy.call_days) == ("00:00-24:00", "SAT,SUN")


def test_a_window_that_cannot_apply_is_a_400() -> None:
    # no zone is known for this number
    found = problems({"to": "15555550123", "call_window": "09:00-20:00"})
    assert found == {"recipient_timezone": "required: the time zone of `to` cannot be told from its number"}
    # a toll-free number is in zones from Guam to Hawaii: a short window is never open in all of them
    found = problems({"to": "18005551234", "call_window": "09:00-12:00"})
    assert set(found) == {"call_window"}
    assert "give recipient_timezone" in found["call_window"]
    assert set(problems({"call_window": "9-5", "call_days": "XYZ", "recipient_timezone": "Nowhere/City"})) == {
        "call_window",
        "call_days",
        "recipient_timezone",
    }


# --- metadata


def test_metadata_round_trips_and_is_canonical() -> None:
    request = parse_call_request({**BASE, "metadata": '{ "order": "A-17", "ü": "ß" }'})
    assert request.metadata == '{"order":"A-17","ü":"ß"}'
    assert request.metadata_object() == {"order": "A-17", "ü": "ß"}


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("[1, 2]", "JSON object"),
        ('{"a": 1}', "string values"),
        ("{not json", "JSON object"),
        (json.dumps({f"k{n}": "v" for n in range(21)}), "at most 20 keys"),
        (json.dumps({"k": "x" * 2050}), "at most 2048 bytes"),
        ('{"order": "A-1", "order": "A-2"}', "key 'order' given more than once"),
        ('{"a": "1", "b": "1", "a": "2", "b": "2"}', "keys 'a', 'b' given more than once"),
    ],
)
def test_bad_metadata_is_refused(value: str, rule: str) -> None:
    with pytest.raises(MetadataError, match=rule):
        parse_metadata(value)
    assert set(problems({"metadata": value})) == {"metadata"}


def test_metadata_limits_are_inclusive() -> None:
    assert len(parse_metadata({f"k{n}": "v" for n in range(20)})) == 20
    exactly = {"k": "x" * (2048 - len('{"k":""}'))}
    assert parse_metadata(exactly) == exactly


# --- do-not-call entries


def test_numbers_are_normalized_to_e164() -> None:
    assert normalize_number("+1 (281) 234-5670") == normalize_number("12812345670") == "+12812345670"
    with pytest.raises(InvalidRequest):
        normalize_number("281-CALL-NOW")


def test_bulk_bodies() -> None:
    assert parse_bulk(b'["12812345670", {"number": "+1 281 234 5670", "reason": "dup"}]', "application/json") == [
        ("+12812345670", "")
    ]
    assert parse_bulk(b"17134567890,moved away\n", "text/csv") == [("+17134567890", "moved away")]
    with pytest.raises(InvalidRequest) as caught:
        parse_bulk(b'12812345670,a,b\n"x"\n', "text/csv")
    assert [p.field for p in caught.value.problems] == ["line 1", "line 2"]


def test_a_body_the_csv_reader_refuses_is_a_bad_request() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_bulk(b"12812345670,ok\n12812345671," + b"x" * 140_000 + b"\n", "text/csv")

    assert [(p.field, p.message) for p in caught.value.problems] == [
        ("body", "is not valid CSV: field larger than field limit (131072) (line 2)")
    ]


def test_a_bad_csv_line_is_named_by_its_line_in_the_body() -> None:
    # as an editor numbers them: the header and blank lines count, and a quoted reason may span lines
    body = b'number,reason\n12812345670,ok\n\n17134567890,"two\nlines"\nnope,x\r\n\n12812345671,a,b\n'

    with pytest.raises(InvalidRequest) as caught:
        parse_bulk(body, "text/csv")

    assert [p.field for p in caught.value.problems] == ["line 6", "line 8"]


# --- the do-not-call mark: when the claim may skip its look-up


@pytest.mark.parametrize(
    ("checked_at", "listed_at", "unlisted"),
    [
        (1000.0, 900.0, True),  # the list last gained a number long before the intake's check
        (1000.0, 1000.0 - CLOCK_MARGIN_SECONDS, False),  # within the clocks' margin: it may have come after
        (1000.0, 999.5, False),
        (1000.0, 1200.0, False),  # a number was listed after the check
        (None, 900.0, False),  # never checked at intake (a campaign's call)
        (1000.0, None, False),  # the mark is not known
    ],
)
def test_a_number_is_known_unlisted_only_when_the_mark_is_clearly_before_the_check(
    checked_at: float | None, listed_at: float | None, unlisted: bool
) -> None:
    assert unlisted_since_check(checked_at, listed_at) is unlisted
