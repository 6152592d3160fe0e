"""Retries: `retry_attempts`, `retry_interval`, `retry_on`, and whether an attempt that ended is tried again."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

MAX_RETRY_ATTEMPTS = 10
DEFAULT_RETRY_ATTEMPTS = 0
MIN_RETRY_INTERVAL = 30
MAX_RETRY_INTERVAL = 86400
DEFAULT_RETRY_INTERVAL = 600
# SIP answers that mean the number itself is wrong (not found, address incomplete, does not exist anywhere),
# and the carrier's error codes for an invalid number: never retried, whatever retry_on says.
INVALID_NUMBER_SIP = frozenset({"404", "484", "604"})
INVALID_NUMBER_ERRORS = frozenset({"13224", "13225", "21211", "21214", "21217", "21612"})


class RetryOn(StrEnum):
    """How an attempt ended, as `retry_on` names it."""

    BUSY = "BUSY"
    NO_ANSWER = "NO_ANSWER"
    FAILED = "FAILED"  # a carrier or network failure (never an invalid number)
    MACHINE = "MACHINE"  # a voicemail answered: try again to reach a person


DEFAULT_RETRY_ON = frozenset({RetryOn.BUSY, RetryOn.NO_ANSWER})


class RetryError(ValueError):
    """A retry parameter cannot be understood; the message says why."""


def parse_retry_attempts(value: str) -> int:
    """0-10 extra attempts after the first."""
    if not value.strip().isdigit() or not 0 <= int(value) <= MAX_RETRY_ATTEMPTS:
        raise RetryError(f"must be a whole number from 0 to {MAX_RETRY_ATTEMPTS}")
    return int(value)


def parse_retry_interval(value: str) -> int:
    """Seconds from the end of one attempt to the next, 30-86400."""
    if not value.strip().isdigit() or not MIN_RETRY_INTERVAL <= int(value) <= MAX_RETRY_INTERVAL:
        raise RetryError(f"must be a whole number of seconds from {MIN_RETRY_INTERVAL} to {MAX_RETRY_INTERVAL}")
    return int(value)


def parse_retry_on(value: str) -> frozenset[RetryOn]:
    """`BUSY,NO_ANSWER` → the set (case-insensitive, at least one)."""
    names = [part.strip().upper() for part in value.split(",")]
    if not names or any(name not in RetryOn.__members__ for name in names):
        raise RetryError("must be one or more of " + ", ".join(RetryOn) + ", comma-separated")
    return frozenset(RetryOn(name) for name in names)


def format_retry_on(kinds: frozenset[RetryOn]) -> str:
    """The set in its canonical spelling (the order of RetryOn)."""
    return ",".join(kind.value for kind in RetryOn if kind in kinds)


@dataclass(frozen=True)
class RetryPolicy:
    """How often, how far apart and after which endings a call is tried again."""

    attempts: int = DEFAULT_RETRY_ATTEMPTS
    interval: int = DEFAULT_RETRY_INTERVAL
    on: frozenset[RetryOn] = DEFAULT_RETRY_ON

    def retries(self, ending: RetryOn | None, attempt: int) -> bool:
        """Whether attempt number `attempt` (1 = the first) that ended so is followed by another."""
        return ending is not None and ending in self.on and attempt <= self.attempts


def ending_of(status: str, answered_by: str, error_code: str | None, sip: str | None) -> RetryOn | None:
    """How an attempt ended, in `retry_on`'s words; None when no retry can help (a person answered, an invalid
    number, a cancel)."""
    if status == "BUSY":
        return RetryOn.BUSY
    if status == "NO_ANSWER":
        return RetryOn.NO_ANSWER
    if status == "COMPLETED":
        return RetryOn.MACHINE if answered_by == "Machine" else None
    if status == "FAILED":
        invalid = (sip or "") in INVALID_NUMBER_SIP or (error_code or "") in INVALID_NUMBER_ERRORS
        return None if invalid else RetryOn.FAILED
    return None
