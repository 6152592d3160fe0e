"""X-Ray tracing, on only when the template's Tracing parameter says Active.

Powertools' Tracer imports the X-Ray SDK (and patches botocore) as soon as it is built, tracing on or off:
about 150 ms of every cold start. `LazyTracer` offers the same decorators and builds the Tracer on the first
invocation, only when tracing is on; off, the decorated functions run as they are.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
TRACING_ENV = "CALLBRIDGE_TRACING"  # the template's Tracing parameter: Active or PassThrough


def tracing_on() -> bool:
    """Whether this function traces its invocations (Lambda's Active tracing, set by the template)."""
    return os.environ.get(TRACING_ENV, "PassThrough") == "Active"


class LazyTracer:
    """`capture_lambda_handler` and `capture_method` like Powertools' Tracer, which it builds only if tracing is on."""

    def __init__(self) -> None:
        self._tracer: Any = None

    def _powertools(self) -> Any:
        if self._tracer is None:
            from aws_lambda_powertools import Tracer

            self._tracer = Tracer()
        return self._tracer

    def _wrap(self, function: F, decorator: str) -> F:
        chosen: list[Callable[..., Any]] = []

        @functools.wraps(function)
        def traced(*args: Any, **kwargs: Any) -> Any:
            if not chosen:
                chosen.append(getattr(self._powertools(), decorator)(function) if tracing_on() else function)
            return chosen[0](*args, **kwargs)

        return traced  # type: ignore[return-value]

    def capture_lambda_handler(self, function: F) -> F:
        return self._wrap(function, "capture_lambda_handler")

    def capture_method(self, function: F) -> F:
        return self._wrap(function, "capture_method")
