"""Domain exceptions. Handlers map them to HTTP in one place."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


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

    @classmethod
    def gathering(cls, refused: Sequence[FieldProblem] = ()) -> InvalidRequest:
        """An empty collection of a request's problems, starting with those its caller found before (`refused`: a
        query parameter the route does not take, one the framework checked), so every problem is reported at once."""
        return cls(list(refused))

    def checked(self, parse: Callable[[], T], fallback: T) -> T:
        """`parse()`; or, when it raises InvalidRequest, `fallback`, its problems added to these ones."""
        try:
            return parse()
        except InvalidRequest as exc:
            self.problems.extend(exc.problems)
            return fallback

    def raise_if_any(self) -> None:
        """Refuse the request when any problem was found (before anything is read or written)."""
        if self.problems:
            raise self

    def __str__(self) -> str:
        return "; ".join(str(p) for p in self.problems)


# pydantic's error types → the API's words for the rule. Every model the API validates with pydantic (a call's
# parameters, an IVR menu, query parameters) words its errors through `rule_message`.
_WHOLE_NUMBER = ("int_type", "int_parsing", "int_parsing_size", "int_from_float", "finite_number")
_OBJECT = ("dict_type", "model_type", "model_attributes_type")


def rule_message(error: Mapping[str, Any]) -> str:
    """The rule a pydantic error (one of `ValidationError.errors()`) says was broken, in the API's words.

    pydantic's own message ("Input should be ...") is kept only for a type not worded here.
    """
    kind, ctx = error.get("type", ""), error.get("ctx") or {}
    if kind == "missing":
        return "required"
    if kind in ("string_type", "string_unicode"):
        return "must be a string"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind in _WHOLE_NUMBER:
        return "must be a whole number"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}"
    if kind in _OBJECT:
        return "must be a JSON object"
    return str(error.get("msg", "invalid"))


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
