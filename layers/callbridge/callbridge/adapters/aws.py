"""boto3 clients built lazily, once per container, and the one translation of their errors.

Cold start is a user-visible latency: nothing here imports boto3 or botocore until a client is first used.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from callbridge.domain.errors import ServiceUnavailable


@cache
def client(service: str, pool: int = 10, attempts: int = 3) -> Any:
    """A shared boto3 client; endpoints come from the standard AWS_ENDPOINT_URL* variables.

    `pool`: connections kept open (botocore's default is 10), for a client many threads share.
    `attempts`: tries per request, throttling included (standard retry mode, exponential backoff).
    """
    import boto3
    from botocore.config import Config

    session: Any = boto3.session.Session()
    config = Config(
        retries={"mode": "standard", "max_attempts": attempts}, tcp_keepalive=True, max_pool_connections=pool
    )
    return session.client(service, config=config)


class LazyClient:
    """The client an adapter was given (tests), or the shared one of `service`, built on first use."""

    def __init__(self, service: str, given: Any = None, **options: int) -> None:
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


def client_error() -> Any:
    """botocore's ClientError, imported when an `except` clause needs it (a request was made by then)."""
    from botocore.exceptions import ClientError

    return ClientError


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
