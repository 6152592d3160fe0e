"""The sandbox started in-process, with every AWS request and handler invocation recorded.

Nothing here changes the handlers: bench code measures them from outside, through the sandbox's probes and
observers.
- each sandbox container (a process serving one event at a time) loads bench/probe.py: botocore event hooks
  there see each request by service and operation, with DynamoDB's parameters and answer, and stdout is
  counted (it is what Lambda ships to CloudWatch Logs); the container hands that back with each result;
- an observer of every function turns each result into an Invocation, working out DynamoDB request units
  (bench/capacity.py) in the order requests finish;
- botocore hooks in this process count the sandbox's own requests: those of its event-source threads
  (`source-N`) are what Lambda's event source mappings do (SQS ReceiveMessage/DeleteMessageBatch, stream
  reads), kept apart.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.capacity import CapacityModel, schemas_from_template
from sandbox.filters import function_filters, passing

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
    billed: bool = True  # False: the mapping's filters drop every record in AWS (the sandbox applies them too)
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


PROBE = "bench.probe"


class Recorder:
    """Everything AWS and the handlers did, as invocations and out-of-invocation request counts."""

    def __init__(self) -> None:
        self.invocations: list[Invocation] = []
        self.outside: dict[str, Counter[str]] = {EVENT_SOURCE: Counter(), HARNESS: Counter()}
        self.lock = threading.Lock()
        self.capacity: CapacityModel | None = None
        self.filters: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.latency: dict[str, list[float]] = {}  # seconds per AWS request, by service:operation
        self.in_flight = 0
        self.last_end = time.monotonic()
        self._installed = False

    # ------------------------------------------------------------------ this process's requests

    def _after_call(self, model: Any, context: dict[str, Any], parsed: Any = None, **_: Any) -> None:
        parsed = parsed if isinstance(parsed, dict) else {}
        key = f"{model.service_model.service_name}:{model.name}"
        empty = {"ReceiveMessage": "Messages", "GetRecords": "Records"}.get(model.name)
        if empty and not parsed.get(empty):
            key += "(empty)"
        self._outside(key, context)

    def _after_error(self, context: dict[str, Any], event_name: str = "", **kwargs: Any) -> None:
        self._outside(f"{context.get('bench_service', '?')}:{event_name.rsplit('.', 1)[-1]}(error)", context)

    @staticmethod
    def _keep_params(params: dict[str, Any], context: dict[str, Any], model: Any, **_: Any) -> None:
        context["bench_service"] = model.service_model.service_name
        context["bench_started"] = time.perf_counter()

    def _outside(self, key: str, context: dict[str, Any]) -> None:
        """A request of the sandbox itself: its event sources (as Lambda's event source mappings) or this harness."""
        elapsed = time.perf_counter() - context.get("bench_started", time.perf_counter())
        origin = EVENT_SOURCE if threading.current_thread().name.startswith("source-") else HARNESS
        with self.lock:
            self.latency.setdefault(key, []).append(elapsed)
            self.outside[origin][key] += 1

    # ------------------------------------------------------------------ the containers' invocations

    def observe(
        self, function: str, kind: str, event: Any, result: Any, extras: dict[str, Any], seconds: float
    ) -> None:
        """An observer of every sandbox function (see sandbox/lambdas.py): one Invocation per init or event."""
        trigger, records = ("init", 0) if kind == "init" else trigger_of(event)
        # A schedule fires on its own clock, calls or not: it does not keep the system from being quiet.
        counted = kind != "init" and trigger != "schedule"
        if kind == "start":
            with self.lock:
                self.in_flight += counted
            return
        invocation = Invocation(function, trigger, records, time.monotonic() - seconds, duration=seconds)
        patterns = self.filters.get((function, trigger))
        if patterns and isinstance(event, dict):
            invocation.billed = passing(list(event.get("Records") or []), patterns) > 0
        if isinstance(result, dict) and "statusCode" in result and kind == "ok":
            invocation.status = int(result["statusCode"])
        if kind == "error":
            invocation.error = str(result.get("errorType", "Error")) if isinstance(result, dict) else "Error"
        elif kind == "timeout":
            invocation.error = "Timeout"
        probe = extras.get(PROBE, {})
        invocation.log_bytes = int(probe.get("log_bytes", 0))
        invocation.log_lines = int(probe.get("log_lines", 0))
        with self.lock:
            for call in probe.get("calls", []):
                key = call["key"]
                invocation.requests[key] += 1
                invocation.aws_seconds += call["seconds"]
                self.latency.setdefault(key, []).append(call["seconds"])
                if call["dynamodb"] is not None and self.capacity is not None:
                    try:
                        units = self.capacity.units(*call["dynamodb"])
                    except (KeyError, ValueError, TypeError):
                        units = {}
                    for name, value in units.items():
                        invocation.units[name] += value  # type: ignore[assignment]
            self.invocations.append(invocation)
            if counted:
                self.in_flight -= 1
                self.last_end = time.monotonic()

    def install(self) -> None:
        """Hook botocore in this process (the sandbox's own requests), once; containers get bench.probe."""
        if self._installed:
            return
        self._installed = True
        import botocore.client

        recorder = self
        create_client = botocore.client.ClientCreator.create_client

        def create_and_hook(creator: Any, *args: Any, **kwargs: Any) -> Any:
            client = create_client(creator, *args, **kwargs)
            events = client.meta.events
            events.register("before-parameter-build", recorder._keep_params)
            events.register("after-call", recorder._after_call)
            events.register("after-call-error", recorder._after_error)
            return client

        botocore.client.ClientCreator.create_client = create_and_hook  # type: ignore[method-assign,assignment]

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


def _scheduler_rule(template: dict[str, Any]) -> str:
    """The schedule expression of the template's scheduled function (rate(1 minute))."""
    for resource in template["Resources"].values():
        for event in resource.get("Properties", {}).get("Events", {}).values():
            if isinstance(event, dict) and event.get("Type") == "Schedule":
                return str(event["Properties"]["Schedule"])
    raise LookupError("no scheduled function in the template")


@contextlib.contextmanager
def running_sandbox(
    *,
    speed: float = 50.0,
    cps: float = 200,
    schedule_every: float | None = None,
    log: Callable[[str], None] | None = None,
    probes: bool = True,
) -> Iterator[Running]:
    """Start the sandbox in this process (free port, INFO logs as deployed) with the recorder installed.

    `probes`: load bench/probe.py into every container (AWS requests and log bytes per invocation). Without
    them the recorder still sees each invocation, but the containers run only what is deployed: how the
    latency and CPU figures are measured, free of the probes' own work.

    `schedule_every`: None fires the scheduler at its rule's own rate, as deployed (the sandbox alone would
    divide it by `speed`)."""
    from sandbox.runtime import Sandbox, SandboxConfig, free_port
    from sandbox.sources import rate_seconds
    from sandbox.template import load_template

    RECORDER.install()
    os.environ["POWERTOOLS_LOG_LEVEL"] = "INFO"  # template.yaml's default LogLevel: log bytes as deployed
    # EMF metric lines are log bytes too, as in Lambda.
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "false"

    def with_probes(stack: Any) -> list[tuple[str, Any]]:
        RECORDER.capacity = CapacityModel(schemas_from_template(stack.template, stack.refs))
        RECORDER.filters = function_filters(stack.template)
        return [(PROBE, None)]

    config = SandboxConfig(
        port=free_port(),
        speed=speed,
        schedule_every=schedule_every or rate_seconds(_scheduler_rule(load_template())),
        parameters={"CarrierCallsPerSecond": str(cps)},
        log=log or (lambda _line: None),
        probes=with_probes if probes else None,
        observers=[RECORDER.observe],
    )
    sandbox = Sandbox(config)
    try:
        sandbox.start()
        key, password = sandbox.account
        with httpx.Client(base_url=sandbox.base_url, auth=(key, password), timeout=60) as client:
            yield Running(sandbox, RECORDER, client)
    finally:
        sandbox.stop()
        RECORDER.capacity = None
