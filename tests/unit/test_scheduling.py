"""call_date: the seed's "YYYY-MM-DD HH:MM" in a time zone, ISO 8601 with an offset, DST, and the window."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from callbridge.domain.scheduling import CallDateError, check_window, parse_call_date, zone
from hypothesis import given
from hypothesis import strategies as st

NY = "America/New_York"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "tz", "expected"),
    [
        ("2027-01-15 09:30", "UTC", utc(2027, 1, 15, 9, 30)),
        ("2027-01-15 09:30", "Europe/Madrid", utc(2027, 1, 15, 8, 30)),
        ("2027-07-15 09:30", "Europe/Madrid", utc(2027, 7, 15, 7, 30)),
        ("2027-01-15T09:30", "Asia/Tokyo", utc(2027, 1, 15, 0, 30)),
        ("2027-01-15 09:30:15", "UTC", utc(2027, 1, 15, 9, 30, 15)),
    ],
)
def test_seed_format_is_wall_clock_time_in_the_zone(value: str, tz: str, expected: datetime) -> None:
    assert parse_call_date(value, tz) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2027-01-15T09:30:00+02:00", utc(2027, 1, 15, 7, 30)),
        ("2027-01-15T09:30:00Z", utc(2027, 1, 15, 9, 30)),
        ("2027-01-15T09:30z", utc(2027, 1, 15, 9, 30)),
        ("2027-01-15 09:30-05:00", utc(2027, 1, 15, 14, 30)),
    ],
)
def test_iso_8601_with_an_offset_ignores_the_zone(value: str, expected: datetime) -> None:
    assert parse_call_date(value, "Asia/Tokyo") == expected


@pytest.mark.parametrize(
    "value", ["", "soon", "2027-01-15", "2027/01/15 09:30", "15-01-2027 09:30", "2027-02-30 10:00"]
)
def test_other_formats_are_refused(value: str) -> None:
    with pytest.raises(CallDateError, match="YYYY-MM-DD HH:MM"):
        parse_call_date(value, "UTC")


# --- DST: America/New_York springs forward 2027-03-14 02:00 → 03:00, falls back 2027-11-07 02:00 → 01:00.


@pytest.mark.parametrize("value", ["2027-03-14 02:00", "2027-03-14 02:30", "2027-03-14 02:59"])
def test_a_wall_clock_time_skipped_by_dst_is_refused(value: str) -> None:
    with pytest.raises(CallDateError, match="does not exist in America/New_York"):
        parse_call_date(value, NY)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2027-03-14 01:59", utc(2027, 3, 14, 6, 59)),  # EST, UTC-5
        ("2027-03-14 03:00", utc(2027, 3, 14, 7, 0)),  # EDT, UTC-4
        ("2027-03-14 03:30", utc(2027, 3, 14, 7, 30)),
        ("2027-11-07 00:30", utc(2027, 11, 7, 4, 30)),  # EDT
        ("2027-11-07 01:30", utc(2027, 11, 7, 5, 30)),  # repeated hour: its first occurrence (EDT)
        ("2027-11-07 02:00", utc(2027, 11, 7, 7, 0)),  # EST again
        ("2027-11-07 02:30", utc(2027, 11, 7, 7, 30)),
    ],
)
def test_conversion_around_the_dst_switches(value: str, expected: datetime) -> None:
    assert parse_call_date(value, NY) == expected


def test_an_offset_inside_the_skipped_hour_is_still_an_instant() -> None:
    assert parse_call_date("2027-03-14T02:30:00-05:00", NY) == utc(2027, 3, 14, 7, 30)


@pytest.mark.parametrize(
    ("value", "tz"),
    [("0001-01-01 00:00", "Asia/Tokyo"), ("9999-12-31 23:59", NY), ("0001-01-01T00:00+05:00", "UTC")],
)
def test_dates_at_the_edge_of_the_calendar_are_refused_not_crashed(value: str, tz: str) -> None:
    with pytest.raises(CallDateError):
        parse_call_date(value, tz)


@pytest.mark.parametrize("name", ["Mars/Base", "America", "Europe", "/etc/localtime", "../../etc/passwd", "", "x" * 65])
def test_unknown_time_zones(name: str) -> None:
    with pytest.raises(CallDateError, match="unknown time zone"):
        zone(name)


def test_known_time_zone() -> None:
    assert zone(NY).key == NY


@given(st.text(max_size=40), st.sampled_from(["UTC", NY, "Asia/Kolkata", "Pacific/Kiritimati", "Etc/GMT+12"]))
def test_parse_call_date_only_ever_raises_call_date_error(value: str, tz: str) -> None:
    try:
        result = parse_call_date(value, tz)
    except CallDateError:
        return
    assert result.tzinfo is UTC


@given(st.text(max_size=70))
def test_zone_only_ever_raises_call_date_error(name: str) -> None:
    with contextlib.suppress(CallDateError):
        zone(name)


# --- the window: from the current minute to 365 days ahead

NOW = utc(2027, 1, 10, 12, 0, 40)


def test_the_current_minute_is_allowed() -> None:
    check_window(utc(2027, 1, 10, 12, 0), NOW)


def test_before_the_current_minute_is_refused() -> None:
    with pytest.raises(CallDateError, match="in the past"):
        check_window(utc(2027, 1, 10, 11, 59, 59), NOW)


def test_365_days_ahead_is_allowed() -> None:
    check_window(NOW + timedelta(days=365), NOW)


def test_more_than_365_days_ahead_is_refused() -> None:
    with pytest.raises(CallDateError, match="365 days"):
        check_window(NOW + timedelta(days=365, minutes=1), NOW)
