"""Use cases: an account's do-not-call list (/pcall/suppressions), and the checks calls make against it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from callbridge.domain.accounts import Account
from callbridge.domain.calls import iso
from callbridge.domain.errors import InvalidRequest, SuppressionNotFound
from callbridge.domain.suppressions import OPT_OUT_REASON, Suppression, normalize_number, parse_bulk, parse_reason
from callbridge.logic.calls import decode_cursor, encode_cursor, page_limit
from callbridge.ports import SuppressionList

KIND = "suppressions"  # the paging token's kind


def put_suppression(
    store: SuppressionList, account: Account, number: str, body: bytes, *, now: datetime
) -> dict[str, Any]:
    """Add `number` (any usual spelling) to the list, or replace its reason: 200 with `created`."""
    problems = []
    e164 = reason = None
    try:
        e164 = normalize_number(number)
    except InvalidRequest as exc:
        problems.extend(exc.problems)
    try:
        reason = parse_reason(body)
    except InvalidRequest as exc:
        problems.extend(exc.problems)
    if problems or e164 is None or reason is None:
        raise InvalidRequest(problems)
    stored, created = store.put(account.api_key, Suppression(number=e164, reason=reason, created_at=iso(now)))
    return {"suppression": stored.public(), "created": created}


def get_suppression(store: SuppressionList, account: Account, number: str) -> dict[str, Any]:
    """The number's entry; SuppressionNotFound if it is not listed."""
    entry = store.get(account.api_key, normalize_number(number))
    if entry is None:
        raise SuppressionNotFound(number)
    return {"suppression": entry.public()}


def delete_suppression(store: SuppressionList, account: Account, number: str) -> dict[str, Any]:
    """Take the number off the list; SuppressionNotFound if it was not on it."""
    e164 = normalize_number(number)
    if not store.delete(account.api_key, e164):
        raise SuppressionNotFound(number)
    return {"deleted": e164}


def list_suppressions(
    store: SuppressionList, account: Account, *, limit: int = 50, next_token: str | None = None
) -> dict[str, Any]:
    """The account's list in number order, a page at a time."""
    cursor = decode_cursor(KIND, next_token, account.api_key)
    entries, after = store.page(account.api_key, page_limit(limit), cursor)
    return {"suppressions": [e.public() for e in entries], "next": encode_cursor(KIND, after)}


def add_suppressions(
    store: SuppressionList, account: Account, body: bytes, content_type: str | None, *, now: datetime
) -> dict[str, Any]:
    """Bulk: up to 10,000 numbers (a JSON list, or text/csv with an optional reason column); numbers already
    listed keep their entry. 200 with how many were given, added, and already listed."""
    entries = [Suppression(number=n, reason=r, created_at=iso(now)) for n, r in parse_bulk(body, content_type)]
    added = store.add_many(account.api_key, entries)
    return {"count": len(entries), "added": added, "existing": len(entries) - added}


def opt_out(store: SuppressionList, account_id: str, number: str, callid: str, *, now: datetime) -> bool:
    """The person pressed the opt-out key: list the called number (an existing entry stays); whether it was new."""
    return store.add(account_id, Suppression(number=number, reason=OPT_OUT_REASON, created_at=iso(now), callid=callid))
