"""What the sandbox tells its user as it runs: refused requests with the reason, each outcome callback attempt."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from callbridge.adapters.calls_stream import UnreadableImage, call_images
from callbridge.adapters.dynamodb.call_codec import appended_events
from callbridge.domain import events

from sandbox.sources import StreamReader, wait_for_next_read

Log = Callable[[str], None]
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
MAX_REASON = 300  # characters of a refusal's reason in one log line


def refusal_reason(body: bytes) -> str:
    """Why a request was refused, from the API's envelope (`code_desc`), or the body's start."""
    try:
        data = json.loads(body)
        reason = data["data"]["code_desc"] if isinstance(data.get("data"), dict) else data.get("message", "")
    except (ValueError, KeyError, TypeError, AttributeError):
        reason = body[:MAX_REASON].decode("utf-8", errors="replace")
    text = " ".join(str(reason).split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


class RequestLog:
    """WSGI middleware: one line per request, with the reason when it was refused (4xx/5xx)."""

    def __init__(self, app: WsgiApp, log: Log) -> None:
        self._app = app
        self._log = log

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.monotonic()
        seen: dict[str, Any] = {}

        def remember(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen["status"] = int(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info)

        body = b"".join(self._app(environ, remember))
        status = int(seen.get("status", 500))
        query = environ.get("QUERY_STRING", "")
        path = environ.get("PATH_INFO", "") + (f"?{query}" if query else "")
        elapsed = (time.monotonic() - started) * 1000
        line = f"http  {environ.get('REQUEST_METHOD', '')} {path} → {status} ({elapsed:.0f} ms)"
        if status >= 400:
            line += f" refused: {refusal_reason(body)}"
        self._log(line)
        return [body]


def describe_attempt(callid: str, url: str, detail: dict[str, Any]) -> str:
    """One line about one outcome callback attempt, from its timeline entry."""
    answer = f"HTTP {detail['status_code']}" if "status_code" in detail else str(detail.get("error", "no answer"))
    result = str(detail.get("result", ""))
    if result == "retry":
        result = f"retry in {detail.get('retry_in', '?')} s"
    return f"callback {callid} attempt {detail.get('attempt', '?')} to {url or '?'}: {answer} → {result}"


class CallbackLog:
    """Reads CallsTable's stream and logs each outcome callback attempt the notifier records on a timeline.

    It reads as an event source mapping does (see sandbox/sources.py: new shards looked for once a second, each
    shard read 4 times a second) and decodes a call only when a change appended a callback attempt to it.
    """

    def __init__(self, streams: Any, stream_arn: str, log: Log) -> None:
        self._reader = StreamReader(streams, stream_arn)
        self._log = log

    def poll_once(self) -> int:
        return sum(self._log_callbacks(record) for records in self._reader.reads() for record in records)

    def _log_callbacks(self, record: dict[str, Any]) -> int:
        change = record.get("dynamodb") or {}
        try:
            attempts = [
                e["detail"]
                for e in appended_events(change.get("OldImage"), change.get("NewImage"))
                if e.get("event") == events.CALLBACK
            ]
            new = call_images(record)[1] if attempts else None
        except (UnreadableImage, TypeError, ValueError, KeyError, AttributeError):
            return 0
        if new is None:
            return 0
        for detail in attempts:
            self._log(describe_attempt(new.callid, new.request.get("callback_url", ""), detail))
        return len(attempts)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.poll_once()
            except Exception as exc:  # moto restarting or stopping: try again, quietly at shutdown
                if not stop.is_set():
                    self._log(f"callback log: {exc}")
            wait_for_next_read(stop, started)
