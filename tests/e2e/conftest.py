"""End-to-end fixtures: the sandbox started as a user starts it (`python -m sandbox ...` in a subprocess)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
FINAL = {"COMPLETED", "BUSY", "NO_ANSWER", "FAILED", "CANCELED"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningSandbox:
    process: subprocess.Popen[str]
    base_url: str
    api_key: str
    password: str
    output: list[str] = field(default_factory=list)
    aws_endpoint: str = ""
    state_dir: Path | None = None

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, auth=(self.api_key, self.password), timeout=30)

    def wait_final(self, callid: str, timeout: float = 60) -> dict[str, Any]:
        """Poll GET /pcall/calls/{callid} until the call is final (and its callbacks have settled)."""
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while time.monotonic() < deadline:
                call = client.get(f"/pcall/calls/{callid}").json()["data"]["call"]
                if call["status"] in FINAL:
                    return dict(call)
                time.sleep(0.2)
        raise AssertionError(f"call {callid} not final after {timeout}s: {call['status']}")


def sandbox_env() -> dict[str, str]:
    """The environment a sandbox subprocess runs in: this checkout's callbridge package, whatever is installed."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT / "layers" / "callbridge")}


def start_sandbox(
    *args: str, startup_timeout: float = 120, account: bool = True, state_dir: Path | None = None
) -> RunningSandbox:
    port = free_port()
    key, password = "e2e-key", "e2e-password-123"
    # Each test sandbox keeps its state apart from the user's (.sandbox), in a directory of its own.
    state = state_dir or Path(tempfile.mkdtemp(prefix="sandbox-e2e-"))
    command = [sys.executable, "-m", "sandbox", "--port", str(port), "--state-dir", str(state), *args]
    if account:
        command += ["--account", f"{key}:{password}"]
    env = sandbox_env()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    sandbox = RunningSandbox(process, f"http://127.0.0.1:{port}", key, password, state_dir=state)
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            sandbox.output.append(line.rstrip("\n"))
            found = re.search(r"AWS \(moto\)\s+(\S+)", line)
            if found:
                sandbox.aws_endpoint = found.group(1)
            credentials = re.search(r"demo account\s+(\S+?):(\S+)", line)
            if credentials:
                sandbox.api_key, sandbox.password = credentials.groups()
            if "Press Ctrl-C to stop." in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(startup_timeout):
        process.kill()
        raise AssertionError("sandbox did not start:\n" + "\n".join(sandbox.output[-50:]))
    return sandbox


def stop_sandbox(sandbox: RunningSandbox) -> int:
    """Ctrl-C the sandbox; then check no function was refused an AWS request during its run.

    Each function ran signed as its own role from template.yaml, with every request checked against it (see
    the README's "Deployed permissions"): a refusal here is a request the deployment would refuse too.
    """
    sandbox.process.send_signal(signal.SIGINT)
    try:
        code = sandbox.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        sandbox.process.kill()
        raise
    denied = [line for line in sandbox.output if re.search(r" iam +\S+ denied ", line)]
    assert denied == [], "requests the functions' roles do not allow:\n" + "\n".join(denied)
    return code


# Package scope: the sandbox stops once a worker's last end-to-end test is done, instead of polling its idle
# queues and tables (moto busy at about a fifth of a core) while the unit and integration tests run.
@pytest.fixture(scope="package")
def sandbox() -> Iterator[RunningSandbox]:
    running = start_sandbox("--speed", "20", "--schedule-every", "1")
    yield running
    stop_sandbox(running)


@dataclass
class Receiver:
    """A local HTTP endpoint that records the requests it gets (callbacks to loopback: sandbox only)."""

    url: str
    requests: list[dict[str, Any]]
    status: Callable[[], int]

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for request in list(self.requests):
                if predicate(request):
                    return request
            time.sleep(0.1)
        raise AssertionError(f"no matching request within {timeout}s; got {self.requests}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    requests: list[dict[str, Any]] = []
    status = {"code": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length).decode()
            requests.append(
                {
                    "path": self.path,
                    "headers": dict(self.headers.items()),
                    "body": body,
                    "form": dict(parse_qsl(body, keep_blank_values=True)),
                }
            )
            self.send_response(status["code"])
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook", requests, lambda: status["code"])
    server.shutdown()
    server.server_close()
