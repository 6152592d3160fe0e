"""Use case: accept a call request (POST /pcall/call) — validate, store, queue or schedule."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from callbridge.domain import events
from callbridge.domain.account_rules import Checkable, account_rules, checkable, rest_of
from callbridge.domain.accounts import Account
from callbridge.domain.calls import Call, CallStatus, TimelineEvent, iso, new_callid
from callbridge.domain.dispatch import SHORTCUT_SECONDS, delay_seconds
from callbridge.domain.errors import Conflict, FieldProblem, InvalidRequest
from callbridge.domain.ivr import snapshot
from callbridge.domain.policies import CallPolicy
from callbridge.domain.requests import JSON_OBJECT_PARAMS, parse_call_request
from callbridge.domain.suppressions import REFUSED
from callbridge.logic.ivr import MenuReader, menus_for_call
from callbridge.ports import (
    AccountsStore,
    CallsQueue,
    CallsStore,
    IdempotencyKeyTaken,
    IdempotencyRecord,
    IdempotencyRecords,
    SuppressionList,
)

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
MAX_IDEMPOTENCY_KEY = 255


@dataclass(frozen=True)
class Intake:
    """What accepting a call needs from the outside world."""

    calls: CallsStore
    accounts: AccountsStore
    idempotency: IdempotencyRecords
    menus: MenuReader
    queue: CallsQueue
    suppressions: SuppressionList | None = None  # the do-not-call list; None: nothing is refused for it
    allow_loopback_callbacks: bool = False  # the sandbox only: callback_url may point at this machine


def _request_hash(params: Mapping[str, Any]) -> str:
    canonical = json.dumps({k: str(v) for k, v in params.items()}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class AccountChecked:
    """What the account-dependent rules gave: when the call is due, the menus and the policies it keeps."""

    due: datetime | None
    ivr_menus: dict[str, dict[str, Any]]
    policy: CallPolicy


def _account_checks(request: Checkable, account: Account, ports: Intake, now: datetime) -> AccountChecked:
    """Rules that depend on the account: the do-not-call list, then the account's rules (domain/account_rules.py:
    policies, time zone of call_date, IVR menus).

    Returns the due instant, the IVR menus the call keeps (answer_ivr's and every one it leads to, so later
    edits or deletes of the account's menus never change an accepted call) and the call's policies.
    """
    problems: list[FieldProblem] = []
    ivr_menus: dict[str, dict[str, Any]] = {}
    if (
        request.to
        and ports.suppressions is not None
        and ports.suppressions.get(account.api_key, request.to) is not None
    ):
        problems.append(FieldProblem("to", REFUSED))

    def menu_problems(code: str) -> list[FieldProblem]:
        try:
            ivr_menus.update(snapshot(menus_for_call(ports.menus, account.api_key, code)))
        except InvalidRequest as exc:
            return exc.problems
        return []

    rules = account_rules(request, account, now, menu_problems)
    problems.extend(rules.problems)
    if problems:
        raise InvalidRequest(problems)
    return AccountChecked(rules.due, ivr_menus, rules.policy)


def _problems_of(request: Checkable, account: Account, ports: Intake, now: datetime) -> list[FieldProblem]:
    try:
        _account_checks(request, account, ports, now)
    except InvalidRequest as exc:
        return exc.problems
    return []


@dataclass(frozen=True)
class Accepted:
    """The answer to a request that creates calls (a call, a campaign): its response `data`, and whether it is a
    replay (the same Idempotency-Key and request again, answered with the first response: nothing was stored, so
    no call is counted as accepted)."""

    data: dict[str, Any]
    replayed: bool = False


def _replay(existing: IdempotencyRecord, request_hash: str) -> Accepted:
    if existing.request_hash != request_hash:
        raise Conflict("Idempotency-Key was already used with a different request")
    return Accepted(existing.response, replayed=True)


def accept_call(
    params: Mapping[str, Any],
    account: Account,
    ports: Intake,
    *,
    now: datetime,
    idempotency_key: str | None = None,
    source: str = "api",
    refused: Sequence[FieldProblem] = (),
) -> Accepted:
    """Validate and accept a call request; returns the seed's response `data` (and whether it is a replay).

    Immediate calls are stored QUEUED and sent to CallsQueue. A call with a `call_date` is stored SCHEDULED
    until the placer claims it; one due within SQS's longest delay is sent now with DelaySeconds up to its
    time, a later one is left to the scheduler. With an Idempotency-Key, a repeat of the same request returns
    the first response and creates nothing; the same key with another request is a Conflict.

    `refused`: problems the caller found in the request before its parameters (its query string), reported
    with theirs; the request is then refused whatever its parameters.
    """
    # Every problem of the request at once: the key's, the parameters' and the account's rules (for the
    # parameters the model found nothing wrong with).
    problems: list[FieldProblem] = list(refused)
    if idempotency_key is not None and not (
        0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY and idempotency_key.isascii() and idempotency_key.isprintable()
    ):
        problems.append(FieldProblem("Idempotency-Key", f"must be 1-{MAX_IDEMPOTENCY_KEY} printable ASCII characters"))
    params = {k: json.dumps(v) if k in JSON_OBJECT_PARAMS and isinstance(v, Mapping) else v for k, v in params.items()}
    try:
        request = parse_call_request(params, allow_loopback_callbacks=ports.allow_loopback_callbacks)
    except InvalidRequest as exc:
        problems.extend(exc.problems)
        problems.extend(_problems_of(rest_of(params, exc.problems), account, ports, now))
        raise InvalidRequest(problems) from exc
    if problems:
        raise InvalidRequest(problems + _problems_of(checkable(request), account, ports, now))
    request_hash = _request_hash(request.present())
    # A retry replays the first response even if call_date has passed since, or an IVR menu is gone.
    if idempotency_key:
        existing = ports.idempotency.get(account.api_key, idempotency_key)
        if existing and existing.expires_at > now.timestamp():
            return _replay(existing, request_hash)
    checked = _account_checks(checkable(request), account, ports, now)
    due = checked.due

    caller_id = request.from_ or account.caller_id
    record = request.record or account.record_default
    accepted = {k: str(v).strip() for k, v in params.items() if str(v).strip()}
    accepted["from"] = accepted.get("from", caller_id)
    accepted["record"] = record
    normalized = {**request.present(), "from": caller_id, "record": record}

    metadata = request.metadata_object()
    if metadata is not None:
        accepted["metadata"] = request.metadata or ""

    callid = new_callid(now.timestamp())
    # Outside the calling window: the call waits for its next opening (the scheduler dispatches it then).
    window = checked.policy.window()
    opening = window.next_opening(due or now) if window else None
    held = opening is not None and opening > (due or now)
    # A call with a due time is SCHEDULED until the placer claims it. Due within the longest SQS delay, its
    # message is sent now and the queue holds it until then: no scheduler run to wait for.
    status = CallStatus.SCHEDULED if held or due is not None else CallStatus.QUEUED
    send_now = not held and (due is None or due - now <= timedelta(seconds=SHORTCUT_SECONDS))
    at = iso(now)
    detail: dict[str, Any] = {"status": status.value}
    if due:
        detail["call_date"] = iso(due)
    if held and opening is not None:
        detail["next_attempt_at"] = iso(opening)
    call = Call(
        callid=callid,
        account_id=account.api_key,
        status=status,
        created_at=at,
        updated_at=at,
        request=normalized,
        accepted=accepted,
        call_date=iso(due) if due else None,
        source=source,
        ivr_menus=checked.ivr_menus,
        policy=checked.policy,
        metadata=metadata,
        next_attempt_at=iso(opening) if held and opening else None,
        dispatched_at=at if send_now and status is CallStatus.SCHEDULED else None,
        dnc_checked=ports.suppressions is not None,
        timeline=[TimelineEvent(at=at, event=events.ACCEPTED, detail=detail)],
    )
    response: dict[str, Any] = {**accepted, "code": 200, "code_desc": "", "callid": callid}
    if metadata is not None:
        response["metadata"] = metadata
    record_ = (
        IdempotencyRecord(
            key=idempotency_key,
            request_hash=request_hash,
            response=response,
            expires_at=int(now.timestamp()) + IDEMPOTENCY_TTL_SECONDS,
        )
        if idempotency_key
        else None
    )
    try:
        ports.calls.create(call, idempotency=record_)
    except IdempotencyKeyTaken:
        existing = ports.idempotency.get(account.api_key, idempotency_key or "")
        if existing is None:
            raise Conflict("Idempotency-Key is in use by a request still in progress; retry") from None
        return _replay(existing, request_hash)
    if send_now:
        # If this send fails the call is stored as sent: the scheduler re-sends it once it is overdue.
        ports.queue.send_call(callid, delay_seconds=delay_seconds(due, now) if due else 0, call_date=call.call_date)
    return Accepted(response)
