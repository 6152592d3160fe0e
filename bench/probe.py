"""The benchmark's probe inside each sandbox container (see sandbox/worker.py): AWS requests and log output.

Each container is a process serving one event at a time, so everything this process does between two
collect() calls belongs to one invocation (or to the cold start). botocore event hooks on every client see
each request (service, operation, time taken, and DynamoDB's parameters and answer, from which the recorder
works out request units in the sandbox's process, in the order requests finish); stdout is counted, because
it is what Lambda ships to CloudWatch Logs, and passed through.
"""

from __future__ import annotations

import io
import sys
import threading
import time
from typing import Any

_lock = threading.Lock()
_calls: list[dict[str, Any]] = []
_log = {"bytes": 0, "lines": 0}


class _CountingStdout(io.TextIOBase):
    def __init__(self, passthrough: Any) -> None:
        self._passthrough = passthrough

    def write(self, text: str) -> int:
        with _lock:
            _log["bytes"] += len(text.encode())
            _log["lines"] += text.count("\n")
        return int(self._passthrough.write(text))

    def flush(self) -> None:
        self._passthrough.flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"


def _keep_params(params: dict[str, Any], context: dict[str, Any], model: Any, **_: Any) -> None:
    context["bench_params"] = params
    context["bench_service"] = model.service_model.service_name
    context["bench_started"] = time.perf_counter()


def _add(key: str, context: dict[str, Any], dynamodb: tuple[str, Any, Any] | None) -> None:
    elapsed = time.perf_counter() - context.get("bench_started", time.perf_counter())
    with _lock:
        _calls.append({"key": key, "seconds": elapsed, "dynamodb": dynamodb})


def _after_call(model: Any, context: dict[str, Any], parsed: Any = None, **_: Any) -> None:
    parsed = parsed if isinstance(parsed, dict) else {}
    service = model.service_model.service_name
    key = f"{service}:{model.name}"
    empty = {"ReceiveMessage": "Messages", "GetRecords": "Records"}.get(model.name)
    if empty and not parsed.get(empty):
        key += "(empty)"
    dynamodb = None
    if service == "dynamodb":
        dynamodb = (
            model.name,
            context.get("bench_params", {}),
            {k: v for k, v in parsed.items() if k != "ResponseMetadata"},
        )
    _add(key, context, dynamodb)


def _after_error(context: dict[str, Any], event_name: str = "", **_: Any) -> None:
    operation = event_name.rsplit(".", 1)[-1]
    _add(f"{context.get('bench_service', '?')}:{operation}(error)", context, None)


def install(config: Any, function: str) -> None:
    """Hook every botocore client this process creates from now on, and stdout."""
    import botocore.client

    create_client = botocore.client.ClientCreator.create_client

    def create_and_hook(creator: Any, *args: Any, **kwargs: Any) -> Any:
        client = create_client(creator, *args, **kwargs)
        events = client.meta.events
        events.register("before-parameter-build", _keep_params)
        events.register("after-call", _after_call)
        events.register("after-call-error", _after_error)
        return client

    botocore.client.ClientCreator.create_client = create_and_hook  # type: ignore[method-assign,assignment]
    sys.stdout = _CountingStdout(sys.stdout)


def collect() -> dict[str, Any]:
    """What happened since the last collect(): AWS calls in the order they finished, and log output."""
    sys.stdout.flush()
    with _lock:
        seen = {"calls": list(_calls), "log_bytes": _log["bytes"], "log_lines": _log["lines"]}
        _calls.clear()
        _log["bytes"] = _log["lines"] = 0
    return seen
