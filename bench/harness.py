"""The sandbox started in-process, with every AWS request and handler invocation recorded.

Nothing here changes the handlers or the sandbox: bench code wraps them from outside.
- botocore event hooks on every client created (`after-call`, `after-call-error`) count each
  request by service and operation, and work out DynamoDB request units (bench/capacity.py);
- each handler module a sandbox container loads gets its handler wrapped, so a contextvar names
  the function an AWS request, a log line or a second of duration belongs to;
- thread pools started inside a handler carry that contextvar into their workers;
- stdout is counted per invocation: it is what Lambda ships to CloudWatch Logs.
Requests made outside any invocation by the sandbox's event-source threads (`source-N`) are what
Lambda's event source mappings do (SQS ReceiveMessage/DeleteMessageBatch, stream reads), kept apart.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.capacity import CapacityModel, schemas_from_template
from bench.filters import function_filters, passing

ROOT = Path(__file__).resolve().parent.parent
EVENT_SOURCE = "event source mapping"
HARNESS = "harness"


@dataclass
class Invocation:
    """One handler invocation (or a container's init, trigger "init")."""

    function: str
    trigger: str
    records: int
    started: float
    duration: float = 0.0
    requests: Counter[str] = field(default_factory=Counter)
    units: Counter[str] = field(default_factory=Counter)
    aws_seconds: float = 0.0
    billed: bool = True  # False: the event source mapping's filters would have dropped every record in AWS
    status: int | None = None  # HTTP status an HTTP API invocation answered
    log_bytes: int = 0
    log_lines: int = 0
    error: str | None = None


def trigger_of(event: Any) -> tuple[str, int]:
    """What invoked a handler, in a few words, and how many records it carried."""
    if not isinstance(event, dict):
        return "other", 0
    if "routeKey" in event:
        path = str(event.get("rawPath", ""))
        if path.startswith("/carrier/"):
            return "carrier " + path.rstrip("/").rsplit("/", 1)[-1], 1
        return str(event["routeKey"]), 1
    if "Records" in event:
        records = event["Records"] or [{}]
        source = str(records[0].get("eventSource", "") or records[0].get("EventSource", ""))
        return ("sqs" if source == "aws:sqs" else "stream" if "dynamodb" in source else source or "records"), len(
            event["Records"]
        )
    if event.get("detail-type") == "Scheduled Event":
        return "schedule", 0
    return "other", 0


_current: contextvars.ContextVar[Invocation | None] = contextvars.ContextVar("bench_invocation", default=None)


class _CountingStdout(io.TextIOBase):
    """stdout that counts what each invocation writes (and drops it), passing anything else through."""

    def __init__(self, passthrough: Any) -> None:
        self._passthrough = passthrough

    def write(self, text: str) -> int:
        invocation = _current.get()
        if invocation is None:
            return int(self._passthrough.write(text))
        invocation.log_bytes += len(text.encode())
        invocation.log_lines += text.count("\n")
        return len(text)

    def flush(self) -> None:
        self._passthrough.flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"


class Recorder:
    """Everything AWS and the handlers did, as invocations and out-of-invocation request counts."""

    def __init__(self) -> None:
        self.invocations: list[Invocation] = []
        self.outside: dict[str, Counter[str]] = {EVENT_SOURCE: Counter(), HARNESS: Counter()}
        self.lock = threading.Lock()
        self.capacity: CapacityModel | None = None
        self.filters: dict[tuple[str, str], list[dict[str, Any]]] = {}
        # Powertools keeps the current HTTP event in a class attribute (BaseRouter.current_event), one per
        # process; Lambda runs one event per process, the sandbox runs its containers as threads of one. While
        # this is set, HTTP handlers run one at a time so none can read another's event (see report notes).
        self.serialize_http = False
        self._http_lock = threading.Lock()
        self.latency: dict[str, list[float]] = {}  # seconds per AWS request, by service:operation
        self.in_flight = 0
        self.last_end = time.monotonic()
        self._installed = False

    # ------------------------------------------------------------------ hooks

    def _after_call(self, model: Any, context: dict[str, Any], parsed: Any = None, **_: Any) -> None:
        self._count(model, context, parsed if isinstance(parsed, dict) else {})

    def _after_error(self, context: dict[str, Any], event_name: str = "", **kwargs: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        service = context.get("bench_service", "?")
        self._add(f"{service}:{operation}(error)", {}, context)

    @staticmethod
    def _keep_params(params: dict[str, Any], context: dict[str, Any], model: Any, **_: Any) -> None:
        context["bench_params"] = params
        context["bench_service"] = model.service_model.service_name
        context["bench_started"] = time.perf_counter()

    def _count(self, model: Any, context: dict[str, Any], parsed: dict[str, Any]) -> None:
        service = model.service_model.service_name
        operation = model.name
        key = f"{service}:{operation}"
        empty = {"ReceiveMessage": "Messages", "GetRecords": "Records"}.get(operation)
        if empty and not parsed.get(empty):
            key += "(empty)"
        units: dict[str, float] = {}
        if service == "dynamodb" and self.capacity is not None:
            with self.lock:
                try:
                    units = self.capacity.units(operation, context.get("bench_params", {}), parsed)
                except (KeyError, ValueError, TypeError):
                    units = {}
        self._add(key, units, context)

    def _add(self, key: str, units: dict[str, float], context: dict[str, Any]) -> None:
        invocation = _current.get()
        elapsed = time.perf_counter() - context.get("bench_started", time.perf_counter())
        with self.lock:
            self.latency.setdefault(key, []).append(elapsed)
            if invocation is not None:
                invocation.aws_seconds += elapsed
                invocation.requests[key] += 1
                for name, value in units.items():
                    invocation.units[name] += value  # type: ignore[assignment]
            else:
                origin = EVENT_SOURCE if threading.current_thread().name.startswith("source-") else HARNESS
                self.outside[origin][key] += 1

    def _register(self, client: Any) -> None:
        events = client.meta.events
        events.register("before-parameter-build", self._keep_params)
        events.register("after-call", self._after_call)
        events.register("after-call-error", self._after_error)

    def _wrap_handler(self, logical: str, handler: Callable[..., Any]) -> Callable[..., Any]:
        recorder = self

        def timed(event: Any, context: Any) -> Any:
            trigger, records = trigger_of(event)
            invocation = Invocation(logical, trigger, records, time.monotonic())
            patterns = recorder.filters.get((logical, trigger))
            if patterns and isinstance(event, dict):
                invocation.billed = passing(list(event.get("Records") or []), patterns) > 0
            token = _current.set(invocation)
            # A schedule fires on its own clock, calls or not: it does not keep the system from being quiet.
            counted = trigger != "schedule"
            with recorder.lock:
                recorder.in_flight += counted
            serial = recorder.serialize_http and isinstance(event, dict) and "routeKey" in event
            if serial:
                recorder._http_lock.acquire()
            started = time.perf_counter()
            try:
                result = handler(event, context)
                if isinstance(result, dict) and "statusCode" in result:
                    invocation.status = int(result["statusCode"])
                return result
            except Exception as exc:
                invocation.error = type(exc).__name__
                raise
            finally:
                invocation.duration = time.perf_counter() - started
                if serial:
                    recorder._http_lock.release()
                _current.reset(token)
                with recorder.lock:
                    recorder.invocations.append(invocation)
                    if counted:
                        recorder.in_flight -= 1
                        recorder.last_end = time.monotonic()

        return timed

    def install(self) -> None:
        """Hook botocore, the sandbox's function containers, thread pools and stdout (once per process)."""
        if self._installed:
            return
        self._installed = True
        import botocore.client

        from sandbox import lambdas

        recorder = self
        create_client = botocore.client.ClientCreator.create_client

        def create_and_hook(creator: Any, *args: Any, **kwargs: Any) -> Any:
            client = create_client(creator, *args, **kwargs)
            recorder._register(client)
            return client

        botocore.client.ClientCreator.create_client = create_and_hook  # type: ignore[method-assign,assignment]

        cold_start = lambdas.Function._cold_start

        def cold_start_and_wrap(function: lambdas.Function, number: int) -> Any:
            init = Invocation(function.logical, "init", 0, time.monotonic())
            token = _current.set(init)
            started = time.perf_counter()
            try:
                module = cold_start(function, number)
            finally:
                init.duration = time.perf_counter() - started
                _current.reset(token)
                with recorder.lock:
                    recorder.invocations.append(init)
            name = function._handler_name
            setattr(module, name, recorder._wrap_handler(function.logical, getattr(module, name)))
            return module

        lambdas.Function._cold_start = cold_start_and_wrap  # type: ignore[method-assign,assignment]

        submit = ThreadPoolExecutor.submit

        def submit_in_context(pool: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
            return submit(pool, contextvars.copy_context().run, fn, *args, **kwargs)

        ThreadPoolExecutor.submit = submit_in_context  # type: ignore[method-assign,assignment]
        sys.stdout = _CountingStdout(sys.stdout)

    # ------------------------------------------------------------------ reading

    def mark(self) -> int:
        with self.lock:
            return len(self.invocations)

    def since(self, mark: int) -> list[Invocation]:
        with self.lock:
            return list(self.invocations[mark:])

    def outside_snapshot(self) -> dict[str, Counter[str]]:
        with self.lock:
            return {k: Counter(v) for k, v in self.outside.items()}

    def wait_quiet(self, quiet: float = 1.5, timeout: float = 30.0) -> None:
        """Wait until no handler (schedules aside) has run for `quiet` seconds (event sources poll every second)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                idle = self.in_flight == 0 and time.monotonic() - self.last_end >= quiet
            if idle:
                return
            time.sleep(0.05)
        raise TimeoutError(f"handlers still busy after {timeout}s")


RECORDER = Recorder()


@dataclass
class Running:
    """A started sandbox and what the benchmarks need from it."""

    sandbox: Any
    recorder: Recorder
    client: httpx.Client

    @property
    def carrier(self) -> Any:
        return self.sandbox.carrier

    def post_call(self, params: dict[str, str]) -> tuple[str, float]:
        """POST /pcall/call (form-encoded, like the seed's curl); its callid and the monotonic time of the 200."""
        response = self.client.post("/pcall/call", data=params)
        done = time.monotonic()
        if response.status_code != 200:
            raise RuntimeError(f"POST /pcall/call → {response.status_code}: {response.text[:300]}")
        return str(response.json()["data"]["callid"]), done

    def create_requests(self) -> list[Any]:
        with self.carrier.lock:
            return list(self.carrier.create_requests)

    def wait_create_requests(self, count: int, timeout: float) -> list[Any]:
        """Wait until the simulator has received `count` create-call requests in all (or `timeout` passes)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.create_requests()
            if len(found) >= count:
                return found
            time.sleep(0.02)
        return self.create_requests()


def callid_of(create_request: Any) -> str:
    """The callid in a create-call request's flow URL (…/carrier/twilio/{callid}/flow)."""
    url = (create_request.params.get("Url") or [""])[-1]
    parts = url.rstrip("/").split("/")
    return parts[-2] if len(parts) >= 2 else ""


@contextlib.contextmanager
def running_sandbox(
    *,
    speed: float = 50.0,
    cps: float = 200,
    schedule_every: float | None = None,
    log: Callable[[str], None] | None = None,
) -> Iterator[Running]:
    """Start the sandbox in this process (free port, INFO logs as deployed) with the recorder installed."""
    from sandbox.runtime import Sandbox, SandboxConfig, free_port

    RECORDER.install()
    os.environ["POWERTOOLS_LOG_LEVEL"] = "INFO"  # template.yaml's default LogLevel: log bytes as deployed
    config = SandboxConfig(
        port=free_port(),
        speed=speed,
        schedule_every=schedule_every,
        parameters={"CarrierCallsPerSecond": str(cps)},
        log=log or (lambda _line: None),
    )
    sandbox = Sandbox(config)
    try:
        sandbox.start()
        assert sandbox.stack is not None
        RECORDER.capacity = CapacityModel(schemas_from_template(sandbox.stack.template, sandbox.stack.refs))
        RECORDER.filters = function_filters(sandbox.stack.template)
        # Powertools reads this when it flushes: EMF metric lines are log bytes too, as in Lambda.
        os.environ["POWERTOOLS_METRICS_DISABLED"] = "false"
        key, password = sandbox.account
        with httpx.Client(base_url=sandbox.base_url, auth=(key, password), timeout=60) as client:
            yield Running(sandbox, RECORDER, client)
    finally:
        sandbox.stop()
        RECORDER.capacity = None
