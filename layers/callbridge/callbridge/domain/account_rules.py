"""The rules of a call that depend on its account: its `call_date` in its time zone (or the account's), its retries
and calling window with the account's defaults, its `answer_ivr` among the account's menus.

One home for every entry point that takes a call: `POST /pcall/call` and each call of a campaign. To name every
problem of a request at once, they are judged on a valid request's parameters or, when the request model refused
some, on those it found nothing wrong with (`rest_of`). The do-not-call list is not one of them: a single call is
refused for it, a campaign's call is accepted and ended at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from callbridge.domain.accounts import Account
from callbridge.domain.errors import FieldProblem, InvalidRequest
from callbridge.domain.phones import to_e164
from callbridge.domain.policies import CallPolicy, PolicyParams, resolve_policy
from callbridge.domain.requests import CallRequest
from callbridge.domain.scheduling import due_of

# The problems of an IVR menu code for the account (none when it exists, with every menu it leads to).
MenuProblems = Callable[[str], list[FieldProblem]]


@dataclass(frozen=True)
class Checkable:
    """What the account's rules read: a valid request's parameters, or (to name every problem of a request the
    model refused) those it did not refuse. None where a parameter is absent, or cannot be judged."""

    to: str | None
    call_date: str | None
    timezone: str | None
    answer_ivr: str | None
    policy: PolicyParams | None  # None: the policies cannot be judged (a parameter they read was refused)


@dataclass(frozen=True)
class _PolicyParts:
    """The policy parameters of a request the model refused (each one of them valid, `to` in E.164)."""

    to: str
    retry_attempts: str | None
    retry_interval: str | None
    retry_on: str | None
    call_window: str | None
    call_days: str | None
    recipient_timezone: str | None


# The policy parameters themselves, named once: by _PolicyParts (all but the number they are judged for).
_POLICY_FIELDS = tuple(f.name for f in fields(_PolicyParts) if f.name != "to")


@dataclass(frozen=True)
class AccountRules:
    """What the account's rules made of a call: when it is due, its policies, and the problems they found."""

    due: datetime | None
    policy: CallPolicy
    problems: list[FieldProblem]


def checkable(request: CallRequest) -> Checkable:
    """A valid request, for the account's rules."""
    return Checkable(request.to, request.call_date, request.timezone, request.answer_ivr, request)


def rest_of(params: Mapping[str, Any], refused: list[FieldProblem]) -> Checkable:
    """The parameters of a refused request the model found nothing wrong with, for the account's rules."""
    bad = {p.field for p in refused}

    def good(name: str) -> str | None:
        value = params.get(name)
        if name in bad or not isinstance(value, str | int | float) or isinstance(value, bool):
            return None
        return str(value).strip() or None

    to = good("to")
    to = to_e164(to) if to else None
    date_ok = "timezone" not in bad
    policy = (
        _PolicyParts(to, *(good(name) for name in _POLICY_FIELDS))
        if to and not bad.intersection(_POLICY_FIELDS)
        else None
    )
    return Checkable(to, good("call_date") if date_ok else None, good("timezone"), good("answer_ivr"), policy)


def account_rules(
    request: Checkable, account: Account, now: datetime, menu_problems: MenuProblems | None = None
) -> AccountRules:
    """The account's rules for a call: its policies (`resolve_policy`), its call_date (in `timezone` or the
    account's) and its `answer_ivr` (by `menu_problems`; not judged without it)."""
    problems: list[FieldProblem] = []
    policy = CallPolicy()
    if request.policy is not None:
        try:
            policy = resolve_policy(request.policy, account, now)
        except InvalidRequest as exc:
            problems.extend(exc.problems)
    due, date_problems = due_of(request.call_date, request.timezone or account.timezone, now)
    problems.extend(date_problems)
    if request.answer_ivr and menu_problems is not None:
        problems.extend(menu_problems(request.answer_ivr))
    return AccountRules(due, policy, problems)
