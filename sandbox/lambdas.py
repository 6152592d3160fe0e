"""The template's functions, run like Lambda runs them: each warm container a process of its own.

A function gets an "image" process (`sandbox/worker.py`) started with exactly that function's environment
(the template's variables for it, its role's credentials, the sandbox's endpoint); its containers are forks
of the image, at most `concurrency` of them, each serving one event at a time. An invocation that runs past
the function's `Timeout` is killed, reported as Lambda reports it, and the next one cold-starts a new
container.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection, Listener
from typing import Any

from callbridge.domain.limits import LAMBDA_PAYLOAD_BYTES

from sandbox.template import ACCOUNT_ID, REGION, ROOT, Stack, function_code, function_layers
from sandbox.worker import Setup

# How long a container may take to cold-start (import its handler) before the invocation fails.
INIT_TIMEOUT = 60.0
# The most a synchronous invocation's event, and what it returns, may be (bytes of JSON), as Lambda's errors say.
PAYLOAD_LIMIT = LAMBDA_PAYLOAD_BYTES
ANSWER_TOO_LARGE = {
    "errorType": "Function.ResponseSizeTooLarge",
    "errorMessage": f"Response payload size exceeded maximum allowed payload size ({PAYLOAD_LIMIT} bytes).",
}

# Told about each invocation: (function, kind, event, result, extras, seconds). kind: "start" (before the event is
# sent; seconds 0), "init" (a cold start: extras from the probes, seconds the import), "ok", "error", "timeout".
Observer = Callable[[str, str, Any, Any, dict[str, Any], float], None]


class FunctionError(Exception):
    """The handler raised (Lambda's `Unhandled` function error) or its container could not start."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('errorType', 'Error')}: {error.get('errorMessage', '')}")
        self.error = error


class FunctionTimeout(FunctionError):
    """The invocation ran past the function's Timeout; Lambda stopped it."""


class RequestTooLarge(Exception):
    """The event is larger than a synchronous invocation takes: Lambda refuses it before anything runs it
    (RequestEntityTooLargeException)."""


def payload_size(value: Any) -> int:
    """Bytes of `value` as the JSON Lambda carries (compact, UTF-8)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode())


@dataclass
class _Container:
    pid: int
    conn: Connection


class Function:
    """One function of the template: its image process and up to `concurrency` warm containers."""

    def __init__(
        self,
        stack: Stack,
        logical: str,
        environment: dict[str, str],
        *,
        concurrency: int = 8,
        probes: list[tuple[str, Any]] | None = None,
        services: list[str] | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.logical = logical
        self.stack = stack
        props = stack.template["Resources"][logical]["Properties"]
        globals_ = stack.template.get("Globals", {}).get("Function", {})
        self.memory = int(stack.resolve(props.get("MemorySize", globals_.get("MemorySize", 128))))
        self.timeout = float(stack.resolve(props.get("Timeout", globals_.get("Timeout", 3))))
        self.name = f"{stack.prefix}-{logical}"
        self.environment = dict(environment)
        self.observers: list[Observer] = []
        self._log = log
        code_dir, handler = function_code(logical, stack.template)
        # Lambda puts the function's code and then its layers on the path, ahead of the runtime's libraries.
        self._path = [str(code_dir), *(str(layer) for layer in function_layers(logical, stack.template))]
        module, _, handler_name = handler.rpartition(".")
        self._setup = Setup(
            logical=logical,
            function_name=self.name,
            code_dir=str(code_dir),
            module=module,
            handler=handler_name,
            memory=self.memory,
            region=REGION,
            account_id=ACCOUNT_ID,
            probes=list(probes or []),
            services=list(services or []),
        )
        self._authkey = secrets.token_bytes(16)
        # Listening from the start: an event that arrives before the image is up waits for it.
        self._listener: Listener | None = Listener(family="AF_UNIX", authkey=self._authkey)
        self._image: subprocess.Popen[bytes] | None = None
        self._control: Connection | None = None
        self._ready = threading.Event()
        self._init_error = ""
        self._idle: queue.LifoQueue[_Container] = queue.LifoQueue()
        self._live: dict[int, _Container] = {}
        self._created = 0
        self._starting = False
        self._limit = concurrency
        self._lock = threading.Lock()
        self._fork_lock = threading.Lock()
        self._stopped = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the function's image (it preloads in the background; the first cold start waits for it)."""
        assert self._listener is not None
        env = {**self._lambda_environment(), **self.environment}
        self._image = subprocess.Popen(
            [sys.executable, "-m", "sandbox.worker", str(self._listener.address), self._authkey.hex()],
            cwd=ROOT,
            env=env,
        )
        threading.Thread(target=self._connect_image, name=f"image-{self.logical}", daemon=True).start()

    def _connect_image(self) -> None:
        """Hand the image its Setup and wait until it has run the function's init."""
        try:
            control = self._accept(time.monotonic() + INIT_TIMEOUT)
            control.recv()  # ("image", pid)
            control.send(self._setup)
            if not control.poll(INIT_TIMEOUT):
                raise FunctionError({"errorType": "Runtime.InitTimeout", "errorMessage": f"no init in {INIT_TIMEOUT}s"})
            control.recv()  # ("ready",)
            self._control = control
        except (FunctionError, EOFError, OSError) as exc:
            self._init_error = str(exc)
        finally:
            self._ready.set()

    def wait_ready(self, timeout: float = INIT_TIMEOUT) -> bool:
        """Wait until the image has run the function's init (or failed to); whether it is up."""
        self._ready.wait(timeout)
        return self._control is not None

    def _lambda_environment(self) -> dict[str, str]:
        """What Lambda's runtime sets besides the function's own variables."""
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(self._path),
            "LAMBDA_TASK_ROOT": self._setup.code_dir,
            "_HANDLER": f"{self._setup.module}.{self._setup.handler}",
            "AWS_LAMBDA_FUNCTION_NAME": self.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.name}",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
        }

    def stop(self) -> None:
        """Kill every container and the image at once (a stopping sandbox waits for no invocation)."""
        with self._lock:
            self._stopped = True
            containers = list(self._live.values())
            self._live.clear()
        for container in containers:
            _kill(container.pid)
            container.conn.close()
        if self._control is not None:
            self._control.close()
        if self._image is not None:
            self._image.kill()
            self._image.wait(timeout=5)
            self._image = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    # ------------------------------------------------------------------ containers

    def _accept(self, deadline: float) -> Connection:
        """The next connection to this function's listener, or a FunctionError once `deadline` passes."""
        assert self._listener is not None
        sock = self._listener._listener._socket  # type: ignore[attr-defined]
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            return self._listener.accept()
        except (TimeoutError, OSError) as exc:
            if self._image is not None and self._image.poll() is not None:
                raise FunctionError({"errorType": "Runtime.ExitError", "errorMessage": "the image exited"}) from exc
            raise FunctionError({"errorType": "Runtime.InitTimeout", "errorMessage": str(exc)}) from exc

    def _cold_start(self) -> _Container:
        deadline = time.monotonic() + INIT_TIMEOUT
        if not self.wait_ready(INIT_TIMEOUT) or self._control is None:
            raise FunctionError({"errorType": "Runtime.Unknown", "errorMessage": f"image: {self._init_error}"})
        with self._fork_lock:
            self._control.send(("fork",))
            conn = self._accept(deadline)
        try:
            _, pid = conn.recv()
        except (EOFError, OSError) as exc:
            raise FunctionError({"errorType": "Runtime.ExitError", "errorMessage": str(exc)}) from exc
        container = _Container(pid, conn)
        with self._lock:
            self._live[pid] = container
        try:
            ready = conn.poll(max(0.0, deadline - time.monotonic()))
            reply = conn.recv() if ready else None
        except (EOFError, OSError) as exc:
            self._drop(container, release=False)
            raise FunctionError({"errorType": "Runtime.ExitError", "errorMessage": str(exc)}) from exc
        if reply is None:
            self._drop(container, release=False)
            raise FunctionError({"errorType": "Runtime.InitTimeout", "errorMessage": f"no init in {INIT_TIMEOUT}s"})
        if reply[0] != "ready":
            self._drop(container, release=False)
            raise FunctionError({"errorType": "Runtime.ImportModuleError", "errorMessage": reply[1]})
        self._notify("init", None, None, reply[2], reply[1])
        return container

    def _container(self) -> _Container:
        while True:
            try:
                return self._idle.get_nowait()
            except queue.Empty:
                pass
            with self._lock:
                if self._stopped:
                    raise FunctionError({"errorType": "Sandbox.Stopped", "errorMessage": "the sandbox is stopping"})
                # One cold start at a time per function: on a small machine a burst of simultaneous imports
                # starves every one of them (and warm containers free up meanwhile).
                create = self._created < self._limit and not self._starting
                if create:
                    self._created += 1
                    self._starting = True
            if create:
                try:
                    return self._cold_start()
                except BaseException:
                    with self._lock:
                        self._created -= 1
                    raise
                finally:
                    with self._lock:
                        self._starting = False
            try:  # every container is busy: wait for one (or for a killed one's place)
                return self._idle.get(timeout=0.05)
            except queue.Empty:
                continue

    def _drop(self, container: _Container, *, release: bool = True) -> None:
        """Kill a container; the next invocation that needs one cold-starts a new one."""
        _kill(container.pid)
        container.conn.close()
        with self._lock:
            if self._live.pop(container.pid, None) is not None and release:
                self._created -= 1

    def _notify(self, kind: str, event: Any, result: Any, extras: dict[str, Any], seconds: float) -> None:
        for observer in self.observers:
            observer(self.logical, kind, event, result, extras, seconds)

    # ------------------------------------------------------------------ invoking

    def invoke(self, event: dict[str, Any]) -> Any:
        """Run the handler on `event` in a free container and return what it returns.

        Raises FunctionError if the handler raised or returned more than Lambda carries back, FunctionTimeout if it
        ran past the function's Timeout, RequestTooLarge (before anything runs) if the event is more than Lambda takes.
        """
        size = payload_size(event)
        if size > PAYLOAD_LIMIT:
            raise RequestTooLarge(f"{size} byte payload is too large for the RequestResponse invocation type")
        self._notify("start", event, None, {}, 0.0)
        try:
            container = self._container()
        except FunctionError as exc:
            self._log(f"{self.logical}: {exc}")
            self._notify("error", event, exc.error, {}, 0.0)
            raise
        request_id = str(uuid.uuid4())
        started = time.monotonic()
        try:
            container.conn.send(("invoke", event, request_id, int(self.timeout * 1000)))
            answered = container.conn.poll(self.timeout)
            reply = container.conn.recv() if answered else None
        except (EOFError, OSError) as exc:
            self._drop(container)
            error = {"errorType": "Runtime.ExitError", "errorMessage": str(exc)}
            self._notify("error", event, error, {}, time.monotonic() - started)
            raise FunctionError(error) from exc
        if reply is None:
            self._drop(container)
            elapsed = time.monotonic() - started
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            message = f"{stamp} {request_id} Task timed out after {elapsed:.2f} seconds"
            self._log(f"{self.logical}: {message}")
            self._notify("timeout", event, None, {}, elapsed)
            raise FunctionTimeout({"errorType": "Sandbox.Timedout", "errorMessage": message})
        self._idle.put(container)
        kind, value, extras = reply
        if kind != "error" and payload_size(value) > PAYLOAD_LIMIT:
            kind, value = "error", dict(ANSWER_TOO_LARGE)
            self._log(f"{self.logical}: {value['errorMessage']}")
        self._notify(kind, event, value, extras, time.monotonic() - started)
        if kind == "error":
            raise FunctionError(value)
        return value


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def template_functions(stack: Stack) -> list[str]:
    """Logical ids of every AWS::Serverless::Function in the template."""
    return [k for k, v in stack.template["Resources"].items() if v["Type"] == "AWS::Serverless::Function"]


def function_environment(
    stack: Stack, logical: str, sandbox: dict[str, str], overrides: dict[str, str]
) -> dict[str, str]:
    """A function's environment: the template's variables for it, `overrides` for those it has, plus `sandbox`.

    `overrides` point a deployment's settings at the sandbox's parts (the carrier simulator, the local API) and
    apply only to variables the template gives the function, so no function sees another's settings.
    """
    env = stack.environment(logical)
    env.update({key: value for key, value in overrides.items() if key in env})
    env.update(sandbox)
    return env
