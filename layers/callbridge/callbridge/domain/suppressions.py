"""The do-not-call list: an account's suppressed numbers (E.164), one entry per number, and how a list is sent."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from callbridge.domain import json_objects
from callbridge.domain.csv_rows import rows_with_lines
from callbridge.domain.errors import FieldProblem, InvalidRequest
from callbridge.domain.phones import to_e164

MAX_BULK = 10_000  # numbers in one POST /pcall/suppressions
MAX_REASON = 500
MAX_BULK_BODY = 1024 * 1024  # bytes: 10,000 lines with a reason each fit
OPT_OUT_REASON = "opt-out by keypress"
REFUSED = "is on your do-not-call list"  # the 400 for a call to a suppressed number (field `to`)
SUPPRESSED = "suppressed"  # error_code of an accepted call cancelled because its number was suppressed later
# How far apart the clocks of the functions that list numbers and accept calls may be (Lambda hosts keep theirs
# within milliseconds): a listing this close to a call's check may have come after it.
CLOCK_MARGIN_SECONDS = 1.0
_NUMBER_RULE = "must be an international phone number: country code, area code and number, e.g. 12812345678"


@dataclass(frozen=True)
class Suppression:
    """One number on an account's do-not-call list."""

    number: str  # E.164
    reason: str
    created_at: str
    callid: str | None = None  # the call in which the person opted out

    def public(self) -> dict[str, Any]:
        """The entry as the API shows it."""
        body: dict[str, Any] = {"number": self.number, "reason": self.reason, "created_at": self.created_at}
        if self.callid:
            body["callid"] = self.callid
        return body


def normalize_number(value: str, field: str = "number") -> str:
    """The E.164 form of a number written any usual way; InvalidRequest naming `field` if it is none."""
    e164 = to_e164(value) if len(value) <= 64 else None
    if e164 is None:
        raise InvalidRequest.single(field, _NUMBER_RULE)
    return e164


def _reason(value: Any, field: str, problems: list[FieldProblem]) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        problems.append(FieldProblem(field, "must be a string"))
        return ""
    if len(value) > MAX_REASON:
        problems.append(FieldProblem(field, f"must be at most {MAX_REASON} characters"))
    return value.strip()


def parse_reason(body: bytes) -> str:
    """The optional `{"reason": "..."}` of a PUT (an empty body is no reason)."""
    if not body.strip():
        return ""
    try:
        data = json_objects.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidRequest.single("body", 'must be a JSON object: {"reason": "..."}') from exc
    if not isinstance(data, Mapping):
        raise InvalidRequest.single("body", 'must be a JSON object: {"reason": "..."}')
    problems = json_objects.repeated_problems(data)
    problems += [FieldProblem(str(k), "unknown field") for k in data if k != "reason"]
    reason = _reason(data.get("reason"), "reason", problems)
    if problems:
        raise InvalidRequest(problems)
    return reason


def _entry(number: Any, reason: Any, where: str, problems: list[FieldProblem]) -> tuple[str, str] | None:
    if not isinstance(number, str | int) or isinstance(number, bool):
        problems.append(FieldProblem(where, _NUMBER_RULE))
        return None
    e164 = to_e164(str(number)) if len(str(number)) <= 64 else None
    if e164 is None:
        problems.append(FieldProblem(where, _NUMBER_RULE))
    text = _reason(reason, f"{where}.reason", problems)
    return (e164, text) if e164 else None


def _where(path: json_objects.Path) -> str:
    """An entry of a bulk JSON list as errors name it: `numbers[3]`, `numbers[3].reason`."""
    return "".join([f"numbers[{path[0]}]", *(f".{part}" for part in path[1:])])


def _from_json(body: bytes, problems: list[FieldProblem]) -> list[tuple[str, str]]:
    try:
        data = json_objects.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidRequest.single("body", "must be a JSON list of numbers") from exc
    if not isinstance(data, list):
        raise InvalidRequest.single("body", 'must be a JSON list of numbers (or of {"number", "reason"} objects)')
    _check_count(len(data))
    problems += json_objects.repeated_problems(data, _where)
    entries = []
    for n, item in enumerate(data):
        where = _where((n,))
        if isinstance(item, Mapping):
            unknown = [k for k in item if k not in ("number", "reason")]
            problems.extend(FieldProblem(f"{where}.{k}", "unknown field") for k in unknown)
            entry = _entry(item.get("number"), item.get("reason"), where, problems)
        else:
            entry = _entry(item, None, where, problems)
        if entry:
            entries.append(entry)
    return entries


def _from_csv(body: bytes, problems: list[FieldProblem]) -> list[tuple[str, str]]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequest.single("body", "must be UTF-8 text/csv: one number per line, an optional reason") from exc
    reader = csv.reader(io.StringIO(text))
    try:
        rows = list(rows_with_lines(reader))
    except csv.Error as exc:  # a field over the csv module's limit (128 KiB), for one
        raise InvalidRequest.single("body", f"is not valid CSV: {exc} (line {reader.line_num})") from exc
    if rows and rows[0][1][0].strip().lower() in ("number", "phone", "to"):
        rows = rows[1:]  # a header line
    _check_count(len(rows))
    entries = []
    for line, row in rows:
        where = f"line {line}"
        if len(row) > 2:
            problems.append(FieldProblem(where, "must be a number and an optional reason (quote a reason with commas)"))
            continue
        entry = _entry(row[0].strip(), row[1] if len(row) > 1 else None, where, problems)
        if entry:
            entries.append(entry)
    return entries


def _check_count(count: int) -> None:
    if count == 0:
        raise InvalidRequest.single("body", "must name at least one number")
    if count > MAX_BULK:
        raise InvalidRequest.single("body", f"must name at most {MAX_BULK} numbers per request")


def parse_bulk(body: bytes, content_type: str | None) -> list[tuple[str, str]]:
    """(E.164 number, reason) of each entry of a bulk request; InvalidRequest naming every bad entry.

    JSON: a list of numbers, or of `{"number", "reason"}` objects. text/csv: one number per line, an optional
    reason in a second column. A number given twice is one entry (its first reason).
    """
    if len(body) > MAX_BULK_BODY:
        raise InvalidRequest.single("body", f"must be at most {MAX_BULK_BODY} bytes")
    media = (content_type or "").partition(";")[0].strip().lower()
    problems: list[FieldProblem] = []
    if media == "text/csv":
        entries = _from_csv(body, problems)
    elif media in ("application/json", "") or media.endswith("+json"):
        entries = _from_json(body, problems)
    else:
        raise InvalidRequest.single("Content-Type", "must be application/json or text/csv")
    if problems:
        raise InvalidRequest(problems)
    unique: dict[str, str] = {}
    for number, reason in entries:
        unique.setdefault(number, reason)
    return list(unique.items())


def unlisted_since_check(checked_at: float | None, listed_at: float | None) -> bool:
    """Whether a number found unlisted at `checked_at` (epoch seconds; None: never checked) is still unlisted,
    without looking again: the list has gained no number since, by its mark `listed_at` (when it last gained one;
    None: not known), which is clearly before the check."""
    if checked_at is None or listed_at is None:
        return False
    return listed_at < checked_at - CLOCK_MARGIN_SECONDS
