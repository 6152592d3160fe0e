"""`call_date`: the seed's "YYYY-MM-DD HH:MM" in a time zone, or ISO 8601 with an offset."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callbridge.domain.errors import FieldProblem

MAX_AHEAD = timedelta(days=365)
_SEED_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?")


class CallDateError(ValueError):
    """`call_date` or `timezone` cannot be understood; the message says why."""


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; raises CallDateError for unknown names."""
    if not re.fullmatch(r"[A-Za-z0-9_+\-/]{1,64}", name) or ".." in name:
        raise CallDateError(f"unknown time zone {name!r} (use an IANA name such as America/New_York)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise CallDateError(f"unknown time zone {name!r} (use an IANA name such as America/New_York)") from exc


def parse_call_date(value: str, tz_name: str) -> datetime:
    """The UTC instant of `value`.

    "YYYY-MM-DD HH:MM" (seconds optional, "T" allowed) is wall-clock time in `tz_name`; a
    value with an offset or "Z" is absolute. Wall-clock times that do not exist (skipped by
    a daylight-saving change) are refused; repeated ones take their first occurrence.
    """
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError as exc:
        raise CallDateError("must be 'YYYY-MM-DD HH:MM' or ISO 8601 with an offset, e.g. 2026-12-01 09:30") from exc
    if parsed.tzinfo is None and not _SEED_FORMAT.fullmatch(text):
        raise CallDateError("must be 'YYYY-MM-DD HH:MM' or ISO 8601 with an offset, e.g. 2026-12-01 09:30")
    try:
        if parsed.tzinfo is not None:
            return parsed.astimezone(UTC)
        tz = zone(tz_name)
        local = parsed.replace(tzinfo=tz, fold=0)
        round_trip = local.astimezone(UTC).astimezone(tz)
    except OverflowError as exc:
        raise CallDateError("is out of range") from exc
    if round_trip.replace(tzinfo=None) != parsed:
        raise CallDateError(f"{text} does not exist in {tz_name} (skipped by a daylight-saving change)")
    return local.astimezone(UTC)


def check_window(due: datetime, now: datetime) -> None:
    """Refuse dates before the current minute or more than 365 days ahead."""
    current_minute = now.replace(second=0, microsecond=0)
    if due < current_minute:
        raise CallDateError(f"is in the past (now is {now.strftime('%Y-%m-%d %H:%M')} UTC)")
    if due > now + MAX_AHEAD:
        raise CallDateError("is more than 365 days ahead")


def due_of(call_date: str | None, tz_name: str, now: datetime) -> tuple[datetime | None, list[FieldProblem]]:
    """A request's call_date as its instant in `tz_name`, checked against `now`: (the instant or None, the
    problems with `call_date`)."""
    if not call_date:
        return None, []
    try:
        due = parse_call_date(call_date, tz_name)
        check_window(due, now)
    except CallDateError as exc:
        return None, [FieldProblem("call_date", str(exc))]
    return due, []
