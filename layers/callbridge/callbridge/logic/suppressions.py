"""Use cases: an account's do-not-call list (/pcall/suppressions), and the checks calls make against it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from callbridge.domain.accounts import Account
from callbridge.domain.calls import iso
from callbridge.domain.errors import FieldProblem, InvalidRequest, SuppressionNotFound
from callbridge.domain.suppressions import OPT_OUT_REASON, Suppression, normalize_number, parse_bulk, parse_reason
from callbridge.logic.calls import decode_cursor, encode_cursor, page_limit
from callbridge.ports import SuppressionList

KIND = "suppressions"  # the paging token's kind


def put_suppression(
    store: SuppressionList,
    account: Account,
    number: str,
    body: bytes,
    *,
    now: datetime,
    refused: Sequence[FieldProblem] = (),
) -> dict[str, Any]:
    """Add `number` (any usual spelling) to the list, or replace its reason: 200 with `created`.

    `refused`: problems the caller found in the query before (see InvalidRequest.gathering)."""
    problems = InvalidRequest.gathering(refused)
    e164 = problems.checked(lambda: normalize_number(number), None)
    reason = problems.checked(lambda: parse_reason(body), None)
    if problems.problems or e164 is None or reason is None:
        raise problems
    stored, created = store.put(account.api_key, Suppression(number=e164, reason=reason, created_at=iso(now)))
    return {"suppression": stored.public(), "created": created}


def _listed_number(number: str, refused: Sequence[FieldProblem]) -> str:
    """The path's number in E.164, or InvalidRequest with it and the problems the caller found before."""
    problems = InvalidRequest.gathering(refused)
    e164 = problems.checked(lambda: normalize_number(number), "")
    problems.raise_if_any()
    return e164


def get_suppression(
    store: SuppressionList, account: Account, number: str, *, refused: Sequence[FieldProblem] = ()
) -> dict[str, Any]:
    """The number's entry; SuppressionNotFound if it is not listed."""
    entry = store.get(account.api_key, _listed_number(number, refused))
    if entry is None:
        raise SuppressionNotFound(number)
    return {"suppression": entry.public()}


def delete_suppression(
    store: SuppressionList, account: Account, number: str, *, refused: Sequence[FieldProblem] = ()
) -> dict[str, Any]:
    """Take the number off the list; SuppressionNotFound if it was not on it."""
    e164 = _listed_number(number, refused)
    if not store.delete(account.api_key, e164):
        raise SuppressionNotFound(number)
    return {"deleted": e164}


def list_suppressions(
    store: SuppressionList,
    account: Account,
    *,
    limit: int = 50,
    next_token: str | None = None,
    refused: Sequence[FieldProblem] = (),
) -> dict[str, Any]:
    """The account's list in number order, a page at a time (`refused`: see InvalidRequest.gathering)."""
    problems = InvalidRequest.gathering(refused)
    cursor = problems.checked(lambda: decode_cursor(KIND, next_token, account.api_key), None)
    size = problems.checked(lambda: page_limit(limit), limit)
    problems.raise_if_any()
    entries, after = store.page(account.api_key, size, cursor)
    return {"suppressions": [e.public() for e in entries], "next": encode_cursor(KIND, after)}


def add_suppressions(
    store: SuppressionList,
    account: Account,
    body: bytes,
    content_type: str | None,
    *,
    now: datetime,
    refused: Sequence[FieldProblem] = (),
) -> dict[str, Any]:
    """Bulk: up to 10,000 numbers (a JSON list, or text/csv with an optional reason column); numbers already
    listed keep their entry. 200 with how many were given, added, and already listed.

    `refused`: problems the caller found in the query before (see InvalidRequest.gathering)."""
    problems = InvalidRequest.gathering(refused)
    given: list[tuple[str, str]] = problems.checked(lambda: parse_bulk(body, content_type), [])
    problems.raise_if_any()
    entries = [Suppression(number=n, reason=r, created_at=iso(now)) for n, r in given]
    added = store.add_many(account.api_key, entries)
    return {"count": len(entries), "added": added, "existing": len(entries) - added}


def opt_out(store: SuppressionList, account_id: str, number: str, callid: str, *, now: datetime) -> bool:
    """The person pressed the opt-out key: list the called number (an existing entry stays); whether it was new."""
    return store.add(account_id, Suppression(number=number, reason=OPT_OUT_REASON, created_at=iso(now), callid=callid))
