"""Calling windows in the recipient's local time: parsing, open/closed, the next opening, several zones, DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from callbridge.domain.phones import time_zones_of
from callbridge.domain.windows import CallingWindow, WindowError, parse_call_days, parse_call_window

NEW_YORK = ("America/New_York",)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("09:00-20:00", (540, 1200)),
        ("21:30-08:15", (1290, 495)),
        ("00:00-24:00", (0, 1440)),
        (" 22:00-00:00 ", (1320, 0)),
    ],
)
def test_window_parses(text: str, minutes: tuple[int, int]) -> None:
    assert parse_call_window(text) == minutes


@pytest.mark.parametrize("text", ["9-20", "09:00", "09:00-20:60", "25:00-26:00", "24:30-01:00", "10:00-10:00", "x"])
def test_bad_windows_are_refused(text: str) -> None:
    with pytest.raises(WindowError):
        parse_call_window(text)


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("MON-FRI", {0, 1, 2, 3, 4}),
        ("mon,wed,sat", {0, 2, 5}),
        ("FRI-MON", {4, 5, 6, 0}),
        ("SAT-SUN,WED", {5, 6, 2}),
        ("TUE", {1}),
    ],
)
def test_days_parse(text: str, days: set[int]) -> None:
    assert parse_call_days(text) == frozenset(days)


@pytest.mark.parametrize("text", ["", "MONDAY", "MON-", "MON,,TUE", "1-5"])
def test_bad_days_are_refused(text: str) -> None:
    with pytest.raises(WindowError):
        parse_call_days(text)


def test_open_and_next_opening_in_the_recipients_zone() -> None:
    window = CallingWindow.of("09:00-20:00", None, NEW_YORK)
    # 2027-01-11 (Monday) 13:59 UTC is 08:59 in New York (EST, UTC-5): closed, opens a minute later.
    assert not window.is_open(utc(2027, 1, 11, 13, 59))
    assert window.next_opening(utc(2027, 1, 11, 13, 59)) == utc(2027, 1, 11, 14, 0)
    assert window.is_open(utc(2027, 1, 11, 14, 0))
    at = utc(2027, 1, 11, 18, 0)
    assert window.next_opening(at) == at  # open: now
    # 20:00 local is closed (the end is exclusive); the next opening is tomorrow 09:00 local.
    assert not window.is_open(utc(2027, 1, 12, 1, 0))
    assert window.next_opening(utc(2027, 1, 12, 1, 0)) == utc(2027, 1, 12, 14, 0)


def test_days_skip_to_the_next_allowed_day() -> None:
    window = CallingWindow.of("09:00-17:00", "MON-FRI", NEW_YORK)
    friday_evening = utc(2027, 1, 15, 23, 0)  # Friday 18:00 EST
    assert window.next_opening(friday_evening) == utc(2027, 1, 18, 14, 0)  # Monday 09:00 EST
    assert not window.is_open(utc(2027, 1, 16, 15, 0))  # Saturday 10:00


def test_a_window_wrapping_midnight_belongs_to_the_day_it_starts() -> None:
    window = CallingWindow.of("22:00-06:00", "FRI", ("UTC",))
    assert window.is_open(utc(2027, 1, 15, 22, 0))  # Friday 22:00
    assert window.is_open(utc(2027, 1, 16, 5, 59))  # Saturday 05:59: Friday's window
    assert not window.is_open(utc(2027, 1, 16, 6, 0))
    assert not window.is_open(utc(2027, 1, 15, 5, 0))  # Friday 05:00 is Thursday's window: not a call day
    assert window.next_opening(utc(2027, 1, 16, 7, 0)) == utc(2027, 1, 22, 22, 0)


def test_several_zones_must_all_be_open() -> None:
    # New York and Los Angeles, 09:00-20:00 in both: open from 12:00 to 20:00 New York time.
    window = CallingWindow.of("09:00-20:00", None, ("America/New_York", "America/Los_Angeles"))
    monday_9_ny = utc(2027, 1, 11, 14, 0)
    assert not window.is_open(monday_9_ny)  # 06:00 in Los Angeles
    assert window.next_opening(monday_9_ny) == utc(2027, 1, 11, 17, 0)  # 09:00 in Los Angeles
    assert not window.is_open(utc(2027, 1, 12, 1, 0))  # 20:00 in New York, 17:00 in Los Angeles


def test_zones_that_never_overlap_have_no_opening() -> None:
    window = CallingWindow.of("09:00-12:00", None, ("Pacific/Guam", "Pacific/Honolulu"))
    assert window.next_opening(utc(2027, 1, 11, 0, 0)) is None


def test_numbers_give_their_zones() -> None:
    assert time_zones_of("+12812345670") == ("America/Chicago",)
    assert time_zones_of("+33123456789") == ("Europe/Paris",)
    assert len(time_zones_of("+18005551234")) > 10  # toll-free: anywhere in the NANP
    assert time_zones_of("+15555550123") == ()  # no zone known


def test_a_start_skipped_by_spring_forward_opens_at_the_change() -> None:
    # New York, 2027-03-14: 02:00 EST jumps to 03:00 EDT (07:00 UTC). 02:30 does not exist that day.
    window = CallingWindow.of("02:30-05:00", None, NEW_YORK)
    assert window.next_opening(utc(2027, 3, 14, 5, 0)) == utc(2027, 3, 14, 7, 0)
    # The day before it opened at 02:30 EST, 07:30 UTC; the day after at 02:30 EDT, 06:30 UTC.
    assert window.next_opening(utc(2027, 3, 13, 5, 0)) == utc(2027, 3, 13, 7, 30)
    assert window.next_opening(utc(2027, 3, 15, 5, 0)) == utc(2027, 3, 15, 6, 30)


def test_a_start_repeated_by_fall_back_opens_at_its_first_occurrence() -> None:
    # New York, 2027-11-07: 02:00 EDT falls back to 01:00 EST; 01:30 happens at 05:30 and 06:30 UTC.
    window = CallingWindow.of("01:30-04:00", None, NEW_YORK)
    assert window.next_opening(utc(2027, 11, 7, 4, 0)) == utc(2027, 11, 7, 5, 30)
    # 09:00-20:00 in local time follows the clock across the change: 14:00 UTC after it, 13:00 before.
    day = CallingWindow.of("09:00-20:00", None, NEW_YORK)
    assert day.next_opening(utc(2027, 11, 7, 2, 0)) == utc(2027, 11, 7, 14, 0)
    assert day.next_opening(utc(2027, 11, 6, 2, 0)) == utc(2027, 11, 6, 13, 0)


def test_the_next_opening_is_always_open_and_nothing_earlier_is() -> None:
    seed = 20271111
    print("seed", seed)
    import random

    rng = random.Random(seed)
    zones = ["America/New_York", "Europe/Paris", "Australia/Lord_Howe", "Asia/Kolkata", "America/St_Johns"]
    for _ in range(60):
        start, end = rng.randrange(0, 1440, 15), rng.randrange(0, 1440, 15)
        if start == end:
            continue
        text = f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"
        days = ",".join(rng.sample(["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"], rng.randint(1, 7)))
        window = CallingWindow.of(text, days, tuple(rng.sample(zones, rng.randint(1, 2))))
        at = utc(2027, 1, 1) + timedelta(minutes=rng.randrange(0, 366 * 1440))
        opening = window.next_opening(at)
        if opening is None:
            continue
        assert opening >= at
        assert window.is_open(opening)
        probe = at
        while probe < opening:  # every quarter hour before it is closed
            assert not window.is_open(probe), (text, days, window.zones, at, probe)
            probe += timedelta(minutes=15)
