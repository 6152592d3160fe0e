"""Listing helpers: the opaque `next` token, status filters and date bounds."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import pytest
from callbridge.domain.accounts import Account
from callbridge.domain.calls import CallStatus
from callbridge.domain.errors import InvalidRequest
from callbridge.logic.calls import _bound, decode_cursor, encode_cursor, parse_statuses
from hypothesis import given
from hypothesis import strategies as st

CURSOR = {"callid": "abc", "account_id": "cb_me", "created_key": "2027-01-01T00:00:00.000Z#abc"}


def token(data: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def account(tz: str = "UTC") -> Account:
    return Account(api_key="cb_me", password_hash="x", caller_id="+12815550100", webhook_secret="s", timezone=tz)


def test_cursor_round_trip() -> None:
    encoded = encode_cursor("calls", CURSOR)

    assert encoded is not None
    assert decode_cursor("calls", encoded, "cb_me") == CURSOR


def test_no_cursor_no_token() -> None:
    assert encode_cursor("calls", None) is None
    assert decode_cursor("calls", None, "cb_me") is None
    assert decode_cursor("calls", "", "cb_me") is None


def test_a_token_edited_to_another_account_is_refused() -> None:
    # given: a real token, decoded and pointed at another account
    data = json.loads(base64.urlsafe_b64decode(encode_cursor("calls", CURSOR) + "=="))  # type: ignore[operator]
    data["c"]["account_id"] = "cb_victim"

    # then
    with pytest.raises(InvalidRequest) as caught:
        decode_cursor("calls", token(data), "cb_me")
    assert caught.value.problems[0].field == "next"


def test_a_token_of_one_listing_is_refused_by_the_other() -> None:
    with pytest.raises(InvalidRequest):
        decode_cursor("scheduled", encode_cursor("calls", CURSOR), "cb_me")


@pytest.mark.parametrize(
    "data",
    [
        [1],  # JSON, but not an object
        "calls",
        None,
        {"k": "calls"},
        {"k": "calls", "c": []},
        {"k": "calls", "c": {**CURSOR, "extra": "x"}},
        {"k": "calls", "c": {"callid": "abc", "account_id": "cb_me"}},
        {"k": "calls", "c": {**CURSOR, "callid": 1}},
        {"k": "calls", "c": {**CURSOR, "account_id": {"S": "cb_me"}}},
    ],
)
def test_malformed_tokens_are_refused(data: Any) -> None:
    with pytest.raises(InvalidRequest):
        decode_cursor("calls", token(data), "cb_me")


@pytest.mark.parametrize("raw", ["!!!", "é", "a", base64.urlsafe_b64encode(b"[" * 5000).decode()])
def test_undecodable_tokens_are_refused(raw: str) -> None:
    with pytest.raises(InvalidRequest):
        decode_cursor("calls", raw, "cb_me")


@given(st.one_of(st.text(max_size=60), st.binary(max_size=60).map(lambda b: base64.urlsafe_b64encode(b).decode())))
def test_decode_cursor_only_ever_raises_invalid_request(raw: str) -> None:
    with contextlib.suppress(InvalidRequest):
        decode_cursor("scheduled", raw, "cb_me")


def test_parse_statuses() -> None:
    assert parse_statuses("completed, FAILED") == {CallStatus.COMPLETED, CallStatus.FAILED}
    assert parse_statuses(None) == frozenset()


@pytest.mark.parametrize("value", ["DONE", "COMPLETED,", "queued;failed"])
def test_unknown_statuses_are_refused(value: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_statuses(value)
    assert caught.value.problems[0].field == "status"


def test_date_bounds_are_whole_days_in_the_account_zone() -> None:
    ny = account("America/New_York")

    assert _bound("since", "2027-01-15", ny, end=False) == "2027-01-15T05:00:00.000Z"
    assert _bound("until", "2027-01-15", ny, end=True) == "2027-01-16T04:59:59.999Z"
    assert _bound("since", "2027-01-15T10:00:00+01:00", ny, end=False) == "2027-01-15T09:00:00.000Z"


@pytest.mark.parametrize(
    ("value", "tz", "end"),
    [
        ("yesterday", "UTC", False),
        ("2027-13-01", "UTC", False),
        ("9999-12-31", "America/New_York", True),  # past the last representable instant in UTC
        ("0001-01-01", "Asia/Tokyo", False),  # before the first
        ("0001-01-01T00:00+05:00", "UTC", False),
    ],
)
def test_bad_bounds_are_refused(value: str, tz: str, end: bool) -> None:
    with pytest.raises(InvalidRequest) as caught:
        _bound("until", value, account(tz), end=end)
    assert caught.value.problems[0].field == "until"
