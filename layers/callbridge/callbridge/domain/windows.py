"""Calling windows in the recipient's local time: `call_window`, `call_days`, and when a call may next ring.

A window is a daily span of wall-clock time (`09:00-20:00`; `22:00-06:00` wraps midnight and belongs to the
day it starts on) on some days of the week. A number that may be in several zones is called only while the
window is open in every one of them. Daylight-saving changes are handled like `call_date`: a window boundary
skipped by a change opens at the first moment after it; a repeated hour is read on the clock as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from callbridge.domain.scheduling import CallDateError, zone

DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
EVERY_DAY = frozenset(range(7))
SEARCH_DAYS = 8  # a window open on some day of the week opens within this many days
_WINDOW = re.compile(r"(\d{2}):(\d{2})-(\d{2}):(\d{2})")
_MINUTES_PER_DAY = 24 * 60


class WindowError(ValueError):
    """`call_window`, `call_days` or `recipient_timezone` cannot be understood; the message says why."""


def parse_call_window(value: str) -> tuple[int, int]:
    """`HH:MM-HH:MM` → (start, end) in minutes of the day; the end may be 24:00, and may be before the start."""
    found = _WINDOW.fullmatch(value.strip())
    if not found:
        raise WindowError("must be HH:MM-HH:MM, e.g. 09:00-20:00 (it may wrap midnight: 21:00-08:00)")
    h1, m1, h2, m2 = (int(g) for g in found.groups())
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2 != 0):
        raise WindowError("must be HH:MM-HH:MM with times from 00:00 to 24:00")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise WindowError("must not start and end at the same time (use 00:00-24:00 for the whole day)")
    return start, end


def parse_call_days(value: str) -> frozenset[int]:
    """`MON-FRI`, `MON,WED,SAT`, `FRI-MON`, `SAT-SUN,WED` → weekday numbers (Monday 0)."""
    days: set[int] = set()
    parts = [p.strip().upper() for p in value.split(",")]
    for part in parts:
        first, sep, last = part.partition("-")
        if first not in DAYS or (sep and last not in DAYS):
            raise WindowError("must be days MON..SUN, as a range (MON-FRI) or a list (MON,WED,SAT)")
        a = DAYS.index(first)
        b = DAYS.index(last) if sep else a
        days.update((a + n) % 7 for n in range((b - a) % 7 + 1))
    return frozenset(days)


def format_call_days(days: Iterable[int]) -> str:
    """Weekday numbers → their canonical list (`MON,TUE,WED`)."""
    return ",".join(DAYS[d] for d in sorted(set(days)))


@dataclass(frozen=True)
class CallingWindow:
    """When a call may ring: a daily wall-clock span, on some weekdays, in every one of some zones."""

    start: int  # minutes of the day
    end: int  # minutes of the day; at or before `start` when the window wraps midnight (24 * 60 allowed)
    days: frozenset[int]
    zones: tuple[str, ...]

    @classmethod
    def of(cls, call_window: str, call_days: str | None, zones: Sequence[str]) -> CallingWindow:
        """The window of these parameters; raises WindowError (zones that are not IANA names included)."""
        start, end = parse_call_window(call_window)
        days = parse_call_days(call_days) if call_days else EVERY_DAY
        for name in zones:
            try:
                zone(name)
            except CallDateError as exc:
                raise WindowError(str(exc)) from exc
        if not zones:
            raise WindowError("no time zone to apply the window in")
        return cls(start, end, days, tuple(zones))

    @property
    def wraps(self) -> bool:
        return self.end <= self.start

    def _open_in(self, tz: ZoneInfo, at: datetime) -> bool:
        local = at.astimezone(tz)
        minute = local.hour * 60 + local.minute
        if not self.wraps:
            return self.start <= minute < self.end and local.weekday() in self.days
        if minute >= self.start:
            return local.weekday() in self.days
        # Before the end: the part of yesterday's window after midnight.
        return minute < self.end and (local.weekday() - 1) % 7 in self.days

    def is_open(self, at: datetime) -> bool:
        """Whether a call may ring at `at`: the window is open in every zone."""
        return all(self._open_in(zone(name), at) for name in self.zones)

    def _starts(self, tz: ZoneInfo, at: datetime) -> list[datetime]:
        """The instants the window opens in `tz` on the days around `at` (enough to find the next opening)."""
        today = at.astimezone(tz).date()
        return [
            _first_at_or_after(tz, today + timedelta(days=n), self.start)
            for n in range(-1, SEARCH_DAYS + 1)
            if (today + timedelta(days=n)).weekday() in self.days
        ]

    def next_opening(self, at: datetime) -> datetime | None:
        """`at` if the window is open then, else the first moment after it that it is; None if never (a week)."""
        at = at.astimezone(UTC)
        if self.is_open(at):
            return at
        limit = at + timedelta(days=SEARCH_DAYS)
        # The window opens in every zone at once only at a moment it opens in one of them.
        candidates = sorted({s for name in self.zones for s in self._starts(zone(name), at) if at < s <= limit})
        return next((c for c in candidates if self.is_open(c)), None)


def _first_at_or_after(tz: ZoneInfo, day: date, minute: int) -> datetime:
    """The first instant of `day` in `tz` whose wall clock reads `minute` or later (UTC).

    A wall-clock time skipped by a daylight-saving change gives the moment of the change.
    """
    wall = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=tz)
    first = wall.replace(fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == wall.replace(tzinfo=None):
        return first
    # Skipped: the instants before the change read earlier, the ones after it later. Bisect to the minute.
    low, high = wall.replace(fold=1).astimezone(UTC), first
    while high - low > timedelta(minutes=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).replace(tzinfo=None) >= wall.replace(tzinfo=None):
            high = middle
        else:
            low = middle
    return high.replace(second=0, microsecond=0)
