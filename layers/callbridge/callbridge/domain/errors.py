"""Domain exceptions. Handlers map them to HTTP in one place."""

from __future__ import annotations

from dataclasses import dataclass, field


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""


@dataclass(frozen=True)
class FieldProblem:
    """One rule a request broke: the field and what is wrong with it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass
class InvalidRequest(DomainError):
    """The request breaks one or more rules (HTTP 400)."""

    problems: list[FieldProblem] = field(default_factory=list)

    @classmethod
    def single(cls, field_name: str, message: str) -> InvalidRequest:
        return cls([FieldProblem(field_name, message)])

    def __str__(self) -> str:
        return "; ".join(str(p) for p in self.problems)


class Unauthorized(DomainError):
    """Missing, malformed or wrong credentials, or a disabled account (HTTP 401)."""


@dataclass
class TooManyFailedLogins(DomainError):
    """Too many failed logins for this API key or source address: refused unchecked (HTTP 429)."""

    retry_after: int  # seconds until the current counting window ends

    def __str__(self) -> str:
        return f"too many failed logins; retry after {self.retry_after} s"


class CallNotFound(DomainError):
    """No such call for this account (HTTP 404). Another account's call is 'not found' too."""


class IvrMenuNotFound(DomainError):
    """No IVR menu of this code for this account (HTTP 404)."""


class SuppressionNotFound(DomainError):
    """The number is not on the account's do-not-call list (HTTP 404)."""


@dataclass
class Conflict(DomainError):
    """The request cannot apply to the current state (HTTP 409)."""

    message: str

    def __str__(self) -> str:
        return self.message


class ServiceUnavailable(DomainError):
    """A dependency failed after the request was accepted or before it could be (HTTP 503)."""
