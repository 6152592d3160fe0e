"""boto3 clients built lazily, once per container, with time budgets, and the one translation of their errors.

Cold start is a user-visible latency: nothing here imports boto3 or botocore until a client is first used.

A stalled AWS endpoint (a connection that is accepted and never answered) must cost a request a 503, not the
whole function timeout: every attempt has a connect and a read timeout, retries are few, and no attempt starts
that could end after the invocation's deadline (`within_deadline`, on each handler). botocore's defaults (60 s
connect, 60 s read, 3-4 attempts) would let one stalled call outlive any of our functions.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any, TypeVar

from callbridge.domain.errors import ServiceUnavailable

CONNECT_TIMEOUT = 1.0  # seconds to open a connection: AWS endpoints in the region take milliseconds
READ_TIMEOUT = 2.0  # seconds to wait for an answer: DynamoDB and SQS answer in milliseconds, so 2 s is a stall
# Left between the last attempt's end and the function's timeout, for the handler to answer.
DEADLINE_MARGIN_SECONDS = 1.0
ATTEMPTS = 3  # per request in all, throttling included (standard retry mode, exponential backoff)

_deadline: list[float | None] = [None]  # time.monotonic() after which no new attempt starts (one per container)
_Handler = TypeVar("_Handler", bound=Callable[..., Any])


class OutOfTime(ServiceUnavailable):
    """The invocation has no time left for another attempt at an AWS call (a 503, like any outage)."""


@contextmanager
def deadline(seconds_left: float | None) -> Iterator[None]:
    """Within the block, AWS calls give up rather than start an attempt that could end more than `seconds_left` s
    from now (None: no deadline). The deadline before the block comes back after it."""
    previous = _deadline[0]
    _deadline[0] = None if seconds_left is None else time.monotonic() + seconds_left
    try:
        yield
    finally:
        _deadline[0] = previous


def within_deadline(handler: _Handler) -> _Handler:
    """A Lambda handler whose AWS calls all fit in the invocation: the time Lambda gives it, minus a margin."""

    @functools.wraps(handler)
    def run(event: Any, context: Any) -> Any:
        with deadline(context.get_remaining_time_in_millis() / 1000 - DEADLINE_MARGIN_SECONDS):
            return handler(event, context)

    return run  # type: ignore[return-value]


def attempt_seconds(read_timeout: float = READ_TIMEOUT) -> float:
    """The longest one attempt can take: connecting, then waiting for the answer."""
    return CONNECT_TIMEOUT + read_timeout


def _check_deadline(need: float) -> Any:
    def check(**_kwargs: Any) -> None:
        limit = _deadline[0]
        if limit is not None and time.monotonic() + need > limit:
            left = max(0.0, limit - time.monotonic())
            raise OutOfTime(
                f"no time left for another attempt: {left:.1f} s to the function's deadline, one may take {need:.1f} s"
            )

    return check


@cache
def client(service: str, pool: int = 10, attempts: int = ATTEMPTS, read_timeout: float = READ_TIMEOUT) -> Any:
    """A shared boto3 client; endpoints come from the standard AWS_ENDPOINT_URL* variables.

    `pool`: connections kept open (botocore's default is 10), for a client many threads share.
    `attempts`: tries per request in all. `read_timeout`: longer only for calls that compute (Polly).
    Every attempt (retries included) is checked against the invocation's deadline before it is sent.
    """
    import boto3
    from botocore.config import Config

    session: Any = boto3.session.Session()
    config = Config(
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=read_timeout,
        retries={"mode": "standard", "total_max_attempts": attempts},
        tcp_keepalive=True,
        max_pool_connections=pool,
    )
    made = session.client(service, config=config)
    made.meta.events.register("before-send", _check_deadline(attempt_seconds(read_timeout)))
    return made


class LazyClient:
    """The client an adapter was given (tests), or the shared one of `service`, built on first use."""

    def __init__(self, service: str, given: Any = None, **options: float) -> None:
        self._service = service
        self._given = given
        self._options = options

    def __call__(self) -> Any:
        if self._given is None:
            self._given = client(self._service, **self._options)
        return self._given


class ConditionFailed(Exception):
    """A conditional write did not hold: a meaningful event for the caller, not a failure.

    `item`: the item as it was (plain DynamoDB JSON) when the request asked for it, else None.
    """

    def __init__(self, item: dict[str, Any] | None) -> None:
        super().__init__("condition not met")
        self.item = item


class TransactionCanceled(Exception):
    """A transaction was cancelled; `reasons` has one code per item ("None" for the ones that were fine)."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(f"transaction cancelled: {reasons}")
        self.reasons = reasons


class Missing(Exception):
    """The object or resource asked for does not exist."""


_MISSING = ("404", "NoSuchKey", "NotFound")


def aws_error() -> tuple[type[Exception], ...]:
    """botocore's ClientError and BotoCoreError, for an `except` clause, imported only when one is evaluated."""
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def _is_aws_error(exc: BaseException) -> bool:
    # botocore is loaded by then: a request was made. Imported here so the adapters never load it at import.
    return isinstance(exc, aws_error())


@contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """Turn an AWS failure inside the block into a domain exception.

    A failed condition raises ConditionFailed, a cancelled transaction TransactionCanceled, an object that is
    not there Missing; anything else
    (throttling after retries, timeouts, outages) is ServiceUnavailable naming `what`.
    """
    try:
        yield
    except Exception as exc:
        if not _is_aws_error(exc):
            raise
        response: dict[str, Any] = getattr(exc, "response", None) or {}
        code = response.get("Error", {}).get("Code", "")
        if code == "ConditionalCheckFailedException":
            raise ConditionFailed(response.get("Item")) from exc
        if code == "TransactionCanceledException":
            reasons = [str(r.get("Code", "None")) for r in response.get("CancellationReasons", [])]
            raise TransactionCanceled(reasons) from exc
        if code in _MISSING:
            raise Missing(code) from exc
        raise ServiceUnavailable(f"{what} unavailable: {exc}") from exc
