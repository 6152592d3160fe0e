"""Use cases: an account's requested calls, its scheduled calls, one call, cancelling a scheduled call."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from datetime import datetime, time, timedelta
from typing import Any

from callbridge.domain import events
from callbridge.domain.accounts import Account
from callbridge.domain.calls import CallStatus, TimelineEvent, iso
from callbridge.domain.dispatch import DueKind
from callbridge.domain.errors import CallNotFound, FieldProblem, InvalidRequest
from callbridge.domain.scheduling import CallDateError, parse_call_date, zone
from callbridge.ports import CallQuery, CallsStore, Cursor, Page

MAX_LIMIT = 100
# The key attributes of each listing's index: the cursor must hold exactly these, and its
# account attribute must be the caller's, so an edited token cannot reach another account.
_CURSOR_KEYS = {
    "calls": ("callid", "account_id", "created_key"),
    "scheduled": ("callid", "scheduled_account", "due_key"),
    "suppressions": ("sk", "pk"),
}
# The sort key of both listings: a stored UTC time, '#', the callid, and in the due index, the entry's kind
# after another '#' (adapters/dynamodb/calls.py writes them).
_LISTED_NUMBER = re.compile(r"DNC#\+[1-9]\d{6,14}")  # the do-not-call list's sort key (adapters/suppressions.py)
_SORT_KEY = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z#(?P<callid>[0-9A-Za-z]{1,64})"
    + "(?:#(?:"
    + "|".join(re.escape(kind.value) for kind in DueKind)
    + "))?"
)


def encode_cursor(kind: str, cursor: Cursor | None) -> str | None:
    """An opaque `next` token for a page's cursor."""
    if cursor is None:
        return None
    raw = json.dumps({"k": kind, "c": cursor}, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, token: str | None, account_id: str) -> Cursor | None:
    """The cursor inside a `next` token, checked to belong to this listing and account."""
    if not token:
        return None
    invalid = InvalidRequest.single("next", "not a token returned by this listing")
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise invalid from exc
    keys = _CURSOR_KEYS[kind]
    if not isinstance(data, dict):
        raise invalid
    cursor = data.get("c")
    if data.get("k") != kind or not isinstance(cursor, dict) or set(cursor) != set(keys):
        raise invalid
    if not all(isinstance(v, str) for v in cursor.values()) or cursor[keys[1]] != account_id:
        raise invalid
    # Each key must have the shape the table gives it: an empty or oversized key is DynamoDB's error, not ours.
    if kind == "suppressions":
        if not _LISTED_NUMBER.fullmatch(cursor[keys[0]]):
            raise invalid
        return cursor
    sort_key = _SORT_KEY.fullmatch(cursor[keys[2]])
    if not _plausible_id(cursor[keys[0]]) or sort_key is None or sort_key["callid"] != cursor[keys[0]]:
        raise invalid
    return cursor


def parse_statuses(value: str | None) -> frozenset[CallStatus]:
    """`status=COMPLETED,FAILED` → the set of statuses (case-insensitive)."""
    if not value:
        return frozenset()
    statuses = set()
    for part in value.split(","):
        name = part.strip().upper()
        if name not in CallStatus.__members__:
            raise InvalidRequest.single("status", "must be one or more of " + ", ".join(CallStatus))
        statuses.add(CallStatus(name))
    return frozenset(statuses)


def _bound(field: str, value: str | None, account: Account, *, end: bool) -> str | None:
    """A date (whole day in the account's time zone) or date-time bound as a sortable UTC string."""
    if not value:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = datetime.strptime(text, "%Y-%m-%d").date()
            local = datetime.combine(day, time.min, tzinfo=zone(account.timezone))
            if end:
                local += timedelta(days=1) - timedelta(milliseconds=1)
            return iso(local)
        return iso(parse_call_date(text, account.timezone))
    except (ValueError, OverflowError, CallDateError) as exc:
        raise InvalidRequest.single(field, "must be a date (YYYY-MM-DD) or an ISO 8601 date-time") from exc


def page_limit(limit: int) -> int:
    """`limit` of a listing, checked (1-100)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest.single("limit", f"must be between 1 and {MAX_LIMIT}")
    return limit


def _page(kind: str, page: Page) -> dict[str, Any]:
    return {
        "calls": [c.public(with_timeline=False) for c in page.calls],
        "next": encode_cursor(kind, page.cursor),
    }


def list_calls(
    calls: CallsStore,
    account: Account,
    *,
    status: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int = 50,
    next_token: str | None = None,
    refused: Sequence[FieldProblem] = (),
) -> dict[str, Any]:
    """The account's requested calls, newest first, optionally by status and creation date range.

    `refused`: problems the caller found in the query before (reported with these; see InvalidRequest.gathering).
    """
    problems = InvalidRequest.gathering(refused)
    statuses: frozenset[CallStatus] = problems.checked(lambda: parse_statuses(status), frozenset())
    low = problems.checked(lambda: _bound("since", since, account, end=False), None)
    high = problems.checked(lambda: _bound("until", until, account, end=True), None)
    size = problems.checked(lambda: page_limit(limit), limit)
    cursor = problems.checked(lambda: decode_cursor("calls", next_token, account.api_key), None)
    if low and high and low > high:
        problems.problems.append(FieldProblem("since", "must not be after until"))
    problems.raise_if_any()
    query = CallQuery(account_id=account.api_key, statuses=statuses, since=low, until=high, limit=size, cursor=cursor)
    return _page("calls", calls.list_calls(query))


def list_scheduled(
    calls: CallsStore,
    account: Account,
    *,
    limit: int = 50,
    next_token: str | None = None,
    refused: Sequence[FieldProblem] = (),
) -> dict[str, Any]:
    """The account's calls with a call_date not started yet (SCHEDULED, or QUEUED for their time), and those waiting
    for a retry or a calling window, soonest first; a campaign's dated call from the moment it is stored
    (domain/dispatch.py, `listed_as_scheduled`)."""
    problems = InvalidRequest.gathering(refused)
    size = problems.checked(lambda: page_limit(limit), limit)
    cursor = problems.checked(lambda: decode_cursor("scheduled", next_token, account.api_key), None)
    problems.raise_if_any()
    return _page("scheduled", calls.list_scheduled(account.api_key, size, cursor))


def get_call(calls: CallsStore, account: Account, callid: str) -> dict[str, Any]:
    """One call with its request, status, outcome and timeline; another account's is not found."""
    call = calls.get(callid) if _plausible_id(callid) else None
    if call is None or call.account_id != account.api_key:
        raise CallNotFound(callid)
    return call.public(with_timeline=True)


def cancel_scheduled(calls: CallsStore, account: Account, callid: str, *, now: datetime) -> dict[str, Any]:
    """Cancel a call with a call_date that has not started (SCHEDULED, or QUEUED for its time); else a Conflict."""
    if not _plausible_id(callid):
        raise CallNotFound(callid)
    event = TimelineEvent(at=iso(now), event=events.CANCELED, detail={"by": "api"})
    call = calls.cancel(callid, account.api_key, event)
    return {"callid": call.callid, "status": call.status.value}


def _plausible_id(callid: str) -> bool:
    return 0 < len(callid) <= 64 and callid.isalnum()


MAX_STATS_HOURS = 168  # a week of hourly bars
# The chart counts at most this many calls, the newest: one or two index pages, so it stays cheap to draw (and
# to refresh) on a busy account. `complete` says whether every call of the window was counted.
MAX_STATS_CALLS = 1000


def hourly_outcomes(
    calls: CallsStore, account: Account, *, now: datetime, hours: int = 24, refused: Sequence[FieldProblem] = ()
) -> dict[str, Any]:
    """The account's calls per hour of creation by status, for the last `hours` hours, with the answer rate.

    At most the newest MAX_STATS_CALLS calls are counted; `complete` is false when older calls of the window
    were left out (`counted_since` is then the creation time of the oldest call counted).

    The answer rate is the share of finished calls (COMPLETED, BUSY, NO_ANSWER, FAILED; cancelled ones left out)
    that someone answered: a person or a machine.
    """
    problems = InvalidRequest.gathering(refused)
    if not 1 <= hours <= MAX_STATS_HOURS:
        problems.problems.append(FieldProblem("hours", f"must be between 1 and {MAX_STATS_HOURS}"))
    problems.raise_if_any()
    first = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    buckets = [first + timedelta(hours=n) for n in range(hours)]
    rows: list[dict[str, Any]] = [{"hour": iso(b), "total": 0, "answered": 0, "statuses": {}} for b in buckets]
    finished = answered = 0
    outcomes = calls.outcomes_since(account.api_key, iso(first), MAX_STATS_CALLS + 1)
    complete = len(outcomes) <= MAX_STATS_CALLS
    for outcome in outcomes[:MAX_STATS_CALLS]:
        try:
            created = datetime.fromisoformat(outcome.created_at.replace("Z", "+00:00"))
        except ValueError:
            continue
        index = int((created - first).total_seconds() // 3600)
        if not 0 <= index < hours:
            continue
        row = rows[index]
        row["total"] += 1
        row["statuses"][outcome.status.value] = row["statuses"].get(outcome.status.value, 0) + 1
        if outcome.status.is_final and outcome.status is not CallStatus.CANCELED:
            finished += 1
            if outcome.answered_by:
                answered += 1
                row["answered"] += 1
    return {
        "since": iso(first),
        "hours": rows,
        "total": sum(r["total"] for r in rows),
        "finished": finished,
        "answered": answered,
        "answer_rate": round(answered / finished, 4) if finished else None,
        "complete": complete,
        "counted_since": iso(first) if complete else (outcomes[MAX_STATS_CALLS - 1].created_at if outcomes else None),
    }
