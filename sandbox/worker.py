"""A function's containers, as processes: `python -m sandbox.worker ADDRESS AUTHKEY` with the function's environment.

The process started is the function's "image": it loads the heavy libraries and runs the function's init
(imports its handler module) once, then forks one process per container when the sandbox asks (a fork is
milliseconds; a fresh interpreter importing boto3 and the handler is seconds, which a small machine cannot
pay per container). Each container is a fresh copy of the initialized function, as SnapStart restores one: it
has served nothing, built no client yet, and its first event is a cold start to Powertools. It serves one
event at a time over its own connection until the sandbox closes it or kills it (a timeout). Nothing here is
shared between functions: each has its own process tree, environment and credentials.

Messages (pickled over multiprocessing connections):
- image → sandbox, once: ("image", pid); sandbox → image: the Setup; image → sandbox: ("ready",) once it has
  run the function's init; then sandbox → image: ("fork",) per container wanted;
- container → sandbox: ("container", pid), then ("ready", init_seconds, extras) or ("init_error", traceback);
- sandbox → container: ("invoke", event, request_id, remaining_ms); container → sandbox:
  ("ok", result, extras) or ("error", {"errorType", "errorMessage", "stackTrace"}, extras).
`extras` holds what each probe collected during the invocation (see Probe).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Client, Connection
from typing import Any, Protocol

# Imported by the image before any fork, so containers start without paying for them.
PRELOAD = (
    "boto3",
    "botocore.session",
    "botocore.client",
    "aws_lambda_powertools",
    "aws_lambda_powertools.event_handler",
    "aws_lambda_powertools.utilities.parameters",
    "aws_xray_sdk.core",
    "pydantic",
    "httpx",
)


@dataclass(frozen=True)
class Setup:
    """What a function's image needs to start containers."""

    logical: str
    function_name: str
    code_dir: str
    module: str
    handler: str
    memory: int
    region: str
    account_id: str
    probes: list[tuple[str, Any]] = field(default_factory=list)  # (module, config) pairs; see Probe
    services: list[str] = field(default_factory=list)  # AWS services it calls: their models are parsed in the image


class Probe(Protocol):
    """A module the sandbox loads into every container of a function (for example the IAM policy guard).

    `install(config, function)` runs once in the image, before any fork; `collect()` runs after each
    invocation (and after the cold start) and returns what goes back to the sandbox with the result.
    """

    def install(self, config: Any, function: str) -> None: ...

    def collect(self) -> Any: ...


@dataclass
class LambdaContext:
    """The parts of Lambda's context object that Powertools and the handlers read."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    deadline: float
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def _die_with_parent() -> None:
    """Linux: end this process when the process that started it ends (no orphans after a crash)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _share_botocore_models(services: list[str]) -> None:
    """One botocore data loader for every session in this process tree, its service models parsed here once.

    Each boto3 session otherwise parses the service's JSON models and endpoint rules again (a few hundred ms of
    CPU per client): paid by every container's first event, that starves a small machine running many of
    them. The models are the same files either way; only when they are parsed changes.
    """
    try:
        import boto3
        import botocore.loaders
        import botocore.session
    except ImportError:
        return
    loaders: dict[Any, Any] = {}
    create_loader = botocore.loaders.create_loader

    def shared_loader(search_path_string: Any = None) -> Any:
        if search_path_string not in loaders:
            loaders[search_path_string] = create_loader(search_path_string)
        return loaders[search_path_string]

    botocore.session.create_loader = shared_loader  # type: ignore[attr-defined]
    region = os.environ.get("AWS_REGION", "us-east-1")
    for service in services:
        with contextlib.suppress(Exception):
            boto3.session.Session(region_name=region).client(service)  # type: ignore[call-overload]


def _collect(probes: list[tuple[str, Probe]]) -> dict[str, Any]:
    return {name: probe.collect() for name, probe in probes}


def _container(address: str, authkey: bytes, setup: Setup, probes: list[tuple[str, Probe]]) -> None:
    """One container: connect, cold-start the handler, serve events until the connection closes."""
    _die_with_parent()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    conn = Client(address, authkey=authkey)
    conn.send(("container", os.getpid()))
    started = time.perf_counter()
    try:
        # Imported already by the image unless that failed: then this reports the error, as Lambda's init does.
        handler = getattr(importlib.import_module(setup.module), setup.handler)
    except BaseException:
        conn.send(("init_error", traceback.format_exc()))
        os._exit(1)
    conn.send(("ready", time.perf_counter() - started, _collect(probes)))
    arn = f"arn:aws:lambda:{setup.region}:{setup.account_id}:function:{setup.function_name}"
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            os._exit(0)
        _, event, request_id, remaining_ms = message
        context = LambdaContext(
            function_name=setup.function_name,
            memory_limit_in_mb=setup.memory,
            invoked_function_arn=arn,
            aws_request_id=request_id,
            deadline=time.monotonic() + remaining_ms / 1000,
            log_group_name=f"/aws/lambda/{setup.function_name}",
        )
        try:
            result = handler(event, context)
            reply: tuple[Any, ...] = ("ok", result, _collect(probes))
        except Exception as exc:  # Lambda reports an unhandled error and keeps the container
            stack = traceback.format_exception(exc)
            print("".join(stack), file=sys.stderr, end="", flush=True)
            error = {"errorType": type(exc).__name__, "errorMessage": str(exc), "stackTrace": stack}
            reply = ("error", error, _collect(probes))
        sys.stdout.flush()
        conn.send(reply)


def main(address: str, authkey_hex: str) -> None:
    """The function's image: preload, then fork a container whenever the sandbox asks for one."""
    _die_with_parent()
    # Ctrl-C reaches the whole process group: the sandbox decides when its functions stop, not the terminal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # containers are reaped by the kernel
    authkey = bytes.fromhex(authkey_hex)
    control: Connection = Client(address, authkey=authkey)
    control.send(("image", os.getpid()))
    setup: Setup = control.recv()
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    _share_botocore_models(setup.services)
    probes: list[tuple[str, Probe]] = []
    for module_name, config in setup.probes:
        probe: Any = importlib.import_module(module_name)
        probe.install(config, setup.logical)
        probes.append((module_name, probe))
    # The function's init (importing its handler module) runs once, here; every container is a fork of the
    # result, a fresh copy that has served nothing yet (as SnapStart restores one). A failure is left for
    # each container to report.
    sys.path.insert(0, setup.code_dir)
    with contextlib.suppress(Exception):
        importlib.import_module(setup.module)
    for _, probe in probes:
        probe.collect()  # what the init did is the image's, not the first container's
    control.send(("ready",))
    while True:
        try:
            control.recv()
        except (EOFError, OSError):
            os._exit(0)
        sys.stdout.flush()
        sys.stderr.flush()
        if os.fork() == 0:
            control.close()
            try:
                _container(address, authkey, setup, probes)
            finally:
                os._exit(1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
