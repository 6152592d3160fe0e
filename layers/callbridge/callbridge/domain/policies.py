"""A call's policies — retries and calling window — resolved once from its request and its account's defaults.

`resolve_policy` is the one place that decides them, for a call from `POST /pcall/call` or from any other
source that builds a call for an account; the call keeps the result (`Call.policy`), so later steps (the
placer's claim, the end of an attempt) never read the request or the account again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from callbridge.domain.accounts import Account
from callbridge.domain.errors import FieldProblem, InvalidRequest
from callbridge.domain.phones import time_zones_of
from callbridge.domain.retries import (
    DEFAULT_RETRY_ATTEMPTS,
    DEFAULT_RETRY_INTERVAL,
    DEFAULT_RETRY_ON,
    RetryPolicy,
    format_retry_on,
    parse_retry_attempts,
    parse_retry_interval,
    parse_retry_on,
)
from callbridge.domain.windows import CallingWindow, WindowError, format_call_days, parse_call_days

WHOLE_DAY = "00:00-24:00"  # the window of `call_days` given without `call_window`


class PolicyParams(Protocol):
    """The parameters a call's policies come from (a CallRequest has them)."""

    @property
    def to(self) -> str: ...
    @property
    def retry_attempts(self) -> str | None: ...
    @property
    def retry_interval(self) -> str | None: ...
    @property
    def retry_on(self) -> str | None: ...
    @property
    def call_window(self) -> str | None: ...
    @property
    def call_days(self) -> str | None: ...
    @property
    def recipient_timezone(self) -> str | None: ...


class CallPolicy(BaseModel):
    """What a call keeps of its policies (plain values, stored with the call)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    retry_attempts: int = DEFAULT_RETRY_ATTEMPTS
    retry_interval: int = DEFAULT_RETRY_INTERVAL
    retry_on: str = format_retry_on(DEFAULT_RETRY_ON)
    call_window: str | None = None
    call_days: str | None = None
    zones: list[str] = Field(default_factory=list)

    def retry(self) -> RetryPolicy:
        """The retry policy."""
        return RetryPolicy(self.retry_attempts, self.retry_interval, parse_retry_on(self.retry_on))

    def window(self) -> CallingWindow | None:
        """The calling window, or None when the call may ring at any time."""
        if not self.call_window:
            return None
        return CallingWindow.of(self.call_window, self.call_days, self.zones)


def resolve_policy(params: PolicyParams, account: Account, now: datetime) -> CallPolicy:
    """The policies of a call to `params.to`: the request's values, else the account's defaults, else the
    built-in ones. Raises InvalidRequest naming each field that is wrong (parameters, or a window that cannot be
    applied: no known zone for the number, or never open in all of its zones at once)."""
    problems: list[FieldProblem] = []
    retry = RetryPolicy()
    try:
        retry = RetryPolicy(
            attempts=parse_retry_attempts(params.retry_attempts) if params.retry_attempts else retry.attempts,
            interval=parse_retry_interval(params.retry_interval) if params.retry_interval else retry.interval,
            on=parse_retry_on(params.retry_on) if params.retry_on else retry.on,
        )
    except ValueError as exc:  # the request model checked these already; this guards other sources
        problems.append(FieldProblem("retry_attempts", str(exc)))
    call_window = params.call_window or account.call_window
    call_days = params.call_days or account.call_days
    zone_name = params.recipient_timezone or account.recipient_timezone
    zones: list[str] = []
    if call_window or call_days:
        call_window = call_window or WHOLE_DAY
        zones = [zone_name] if zone_name else list(time_zones_of(params.to))
        if not zones:
            problems.append(
                FieldProblem("recipient_timezone", "required: the time zone of `to` cannot be told from its number")
            )
        else:
            try:
                window = CallingWindow.of(call_window, call_days, zones)
                if window.next_opening(now) is None:
                    problems.append(
                        FieldProblem(
                            "call_window",
                            f"is never open in every time zone of `to` at once ({', '.join(zones)}); "
                            "give recipient_timezone",
                        )
                    )
            except WindowError as exc:
                problems.append(FieldProblem("call_window", str(exc)))
    if problems:
        raise InvalidRequest(problems)
    return CallPolicy(
        retry_attempts=retry.attempts,
        retry_interval=retry.interval,
        retry_on=format_retry_on(retry.on),
        call_window=call_window or None,
        call_days=format_call_days(parse_call_days(call_days)) if call_days else None,
        zones=zones,
    )
