"""Outgoing webhooks as Twilio sends them: signed, retried once, timed out; delivered in order per call."""

from __future__ import annotations

import heapq
import itertools
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx

from sandbox.carrier.model import WebhookRecord
from sandbox.carrier.signature import SIGNATURE_HEADER, twilio_signature

USER_AGENT = "TwilioProxy/1.1"
CONNECT_TIMEOUT = 5.0  # Twilio's defaults: connect 5 s, read 15 s, one retry
READ_TIMEOUT = 15.0
RETRIES = 1


@dataclass(frozen=True)
class Reply:
    """What a webhook answered: status (None when nothing came back), body and content type."""

    status_code: int | None
    text: str
    content_type: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _overrides(url: str) -> tuple[str, dict[str, str]]:
    """Split Twilio's per-URL connection overrides (`#ct=..&rt=..&rc=..`) off a webhook URL."""
    parts = urlsplit(url)
    if not parts.fragment:
        return url, {}
    options = {key: values[-1] for key, values in parse_qs(parts.fragment).items()}
    return urlunsplit(parts._replace(fragment="")), options


class WebhookClient:
    """Sends signed form webhooks with Twilio's timeouts and retry (transport errors, 5xx and 429)."""

    def __init__(self, auth_token: str, *, max_connections: int = 256) -> None:
        self._auth_token = auth_token
        # trust_env=False: never route the sandbox's loopback webhooks through a proxy from the environment.
        self._client = httpx.Client(
            timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=64),
            follow_redirects=True,
            trust_env=False,
            headers={"User-Agent": USER_AGENT},
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def send(self, record: WebhookRecord) -> Reply:
        """Deliver one webhook, updating `record` (attempts, status, error); never raises for HTTP trouble."""
        url, options = _overrides(record.url)
        retries = int(options.get("rc", RETRIES))
        timeout = httpx.Timeout(
            float(options.get("rt", READ_TIMEOUT * 1000)) / 1000,
            connect=float(options.get("ct", CONNECT_TIMEOUT * 1000)) / 1000,
        )
        headers = {"I-Twilio-Idempotency-Token": secrets.token_hex(16), "Accept": "*/*"}
        reply = Reply(None, "", "", "not sent")
        for _ in range(1 + max(0, retries)):
            record.attempts += 1
            record.at = time.time()
            try:
                if record.method == "GET":
                    full = url + (("&" if "?" in url else "?") + urlencode(record.params) if record.params else "")
                    request = self._client.build_request("GET", full, headers=headers, timeout=timeout)
                    # Sign exactly the URL that goes on the wire: it is what the receiver reconstructs.
                    request.headers[SIGNATURE_HEADER] = twilio_signature(self._auth_token, str(request.url))
                else:
                    request = self._client.build_request(
                        "POST", url, data=record.params, headers=headers, timeout=timeout
                    )
                    request.headers[SIGNATURE_HEADER] = twilio_signature(
                        self._auth_token, str(request.url), record.params
                    )
                response = self._client.send(request)
            except (httpx.HTTPError, ValueError) as exc:
                record.error = f"{type(exc).__name__}: {exc}"
                record.status_code = None
                reply = Reply(None, "", "", record.error)
                continue
            record.status_code = response.status_code
            content_type = response.headers.get("content-type", "")
            reply = Reply(response.status_code, response.text, content_type)
            if response.status_code >= 500 or response.status_code == 429:
                record.error = f"HTTP {response.status_code}"
                continue
            record.error = None if reply.ok else f"HTTP {response.status_code}"
            return reply
        return reply


class Timers:
    """One thread running callables after a delay (real seconds)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="carrier-timers", daemon=True)
        self._thread.start()

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run `fn` after `delay` real seconds (on the timer thread: keep it short)."""
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay), next(self._order), fn))
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._cond.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                if self._stopped:
                    return
                _, _, fn = heapq.heappop(self._heap)
            fn()

    def stop(self) -> None:
        """Forget pending timers and end the thread."""
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify()
        self._thread.join()


class Outbox:
    """Delivers webhooks on a thread pool, those sharing a key (a call) one after another, in order."""

    def __init__(self, client: WebhookClient, workers: int = 64) -> None:
        self._client = client
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="carrier-webhook")
        self._lock = threading.Lock()
        self._queues: dict[str, deque[tuple[WebhookRecord, Callable[[WebhookRecord, Reply], None]]]] = {}
        self._stopped = False

    def submit(self, key: str, record: WebhookRecord, done: Callable[[WebhookRecord, Reply], None]) -> None:
        """Queue `record` behind the key's earlier webhooks; `done` runs after delivery (or giving up)."""
        with self._lock:
            if self._stopped:
                return
            queue = self._queues.get(key)
            if queue is not None:
                queue.append((record, done))
                return
            self._queues[key] = deque([(record, done)])
        self._executor.submit(self._drain, key)

    def _drain(self, key: str) -> None:
        while True:
            with self._lock:
                queue = self._queues.get(key)
                if not queue or self._stopped:
                    self._queues.pop(key, None)
                    return
                record, done = queue[0]
            reply = self._client.send(record)
            done(record, reply)
            with self._lock:
                queue.popleft()
                if not queue:
                    self._queues.pop(key, None)
                    return

    def stop(self) -> None:
        """Drop what is queued and wait for deliveries in flight."""
        with self._lock:
            self._stopped = True
            self._queues.clear()
        self._executor.shutdown(wait=True, cancel_futures=True)
