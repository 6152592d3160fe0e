"""The sandbox's Lambda runtime: each container a process with its function's environment, one event at a time,
killed at the function's Timeout (the next invocation cold-starts a new one)."""

from __future__ import annotations

import os
import socket
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from sandbox import runtime
from sandbox.lambdas import (
    PAYLOAD_LIMIT,
    Function,
    FunctionError,
    FunctionTimeout,
    RequestTooLarge,
    function_environment,
    payload_size,
)
from sandbox.template import Stack

HANDLER = """
import os
import time
from pathlib import Path

SERVED = [0]  # events this container has served


def lambda_handler(event, context):
    SERVED[0] += 1
    Path(event["pidfile"]).write_text(str(os.getpid()))
    if event.get("fail"):
        raise ValueError("asked to fail")
    if event.get("wait_for"):  # a file another invocation creates: proves two run at once
        deadline = time.monotonic() + 10
        while not Path(event["wait_for"]).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        Path(event["touch"]).write_text("")
    elif event.get("touch"):
        Path(event["touch"]).write_text("")
    time.sleep(event.get("sleep", 0))
    if event.get("answer_bytes"):
        return {"pid": os.getpid(), "blob": "a" * event["answer_bytes"]}
    return {
        "pid": os.getpid(),
        "served": SERVED[0],
        "env": dict(os.environ),
        "remaining_ms": context.get_remaining_time_in_millis(),
        "name": context.function_name,
    }
"""


def _stack(code: Path) -> Stack:
    template: dict[str, Any] = {
        "Globals": {"Function": {"Timeout": 10, "Environment": {"Variables": {"SHARED": "everyone"}}}},
        "Resources": {
            "SlowFunction": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "CodeUri": str(code),
                    "Handler": "app.lambda_handler",
                    "Timeout": 1,
                    "Environment": {"Variables": {"ONLY_SLOW": "slow", "CARRIER_BASE_URL": "https://api.twilio.com"}},
                },
            },
            "OtherFunction": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "CodeUri": str(code),
                    "Handler": "app.lambda_handler",
                    "Environment": {"Variables": {"ONLY_OTHER": "other"}},
                },
            },
        },
    }
    return Stack(template=template, prefix="test")


@pytest.fixture
def function(tmp_path: Path) -> Iterator[Function]:
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(textwrap.dedent(HANDLER))
    stack = _stack(code)
    env = function_environment(
        stack, "SlowFunction", {"SANDBOX": "yes"}, {"CARRIER_BASE_URL": "http://127.0.0.1:1", "PUBLIC_API_URL": "x"}
    )
    running = Function(stack, "SlowFunction", env, concurrency=2, log=lambda _line: None)
    running.start()
    yield running
    running.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a killed container may linger as a zombie for a moment until its image reaps it
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or "zombie" not in status.read_text()


def test_a_container_has_only_its_functions_environment(function: Function, tmp_path: Path) -> None:
    result = function.invoke({"pidfile": str(tmp_path / "pid")})
    env = result["env"]
    # its own variables and the globals, the sandbox's settings, and what Lambda's runtime sets
    assert env["ONLY_SLOW"] == "slow"
    assert env["SHARED"] == "everyone"
    assert env["SANDBOX"] == "yes"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "test-SlowFunction" == result["name"]
    # an override applies to a variable the function has; never adds one it does not
    assert env["CARRIER_BASE_URL"] == "http://127.0.0.1:1"
    assert "PUBLIC_API_URL" not in env
    assert "ONLY_OTHER" not in env
    # nothing leaks from the process that runs the sandbox
    assert "PYTEST_CURRENT_TEST" not in env
    assert result["pid"] != os.getpid()
    assert 0 < result["remaining_ms"] <= 1000


def test_an_event_over_lambdas_limit_is_refused_before_any_container_runs_it(
    function: Function, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pid"
    event = {"pidfile": str(pidfile), "body": ""}
    event["body"] = "x" * (PAYLOAD_LIMIT - payload_size(event))  # exactly the limit: taken
    function.invoke(event)
    pidfile.unlink()

    event["body"] += "x"
    with pytest.raises(RequestTooLarge):
        function.invoke(event)
    assert not pidfile.exists()


def test_an_answer_over_lambdas_limit_is_a_function_error_and_the_container_stays_warm(
    function: Function, tmp_path: Path
) -> None:
    taken = function.invoke({"pidfile": str(tmp_path / "a"), "answer_bytes": PAYLOAD_LIMIT - 100})
    assert payload_size(taken) <= PAYLOAD_LIMIT

    with pytest.raises(FunctionError) as raised:
        function.invoke({"pidfile": str(tmp_path / "b"), "answer_bytes": PAYLOAD_LIMIT})
    assert raised.value.error["errorType"] == "Function.ResponseSizeTooLarge"
    assert raised.value.error["errorMessage"] == (
        f"Response payload size exceeded maximum allowed payload size ({PAYLOAD_LIMIT} bytes)."
    )
    after = function.invoke({"pidfile": str(tmp_path / "c")})
    # one container served all three: none was dropped for the answer, as Lambda keeps it
    assert int((tmp_path / "b").read_text()) == taken["pid"] == after["pid"]
    assert after["served"] == 3


def test_an_invocation_past_the_timeout_is_killed_and_the_next_cold_starts(function: Function, tmp_path: Path) -> None:
    # given a warm container
    warm = function.invoke({"pidfile": str(tmp_path / "warm")})
    # when an invocation runs past the function's Timeout (1 s)
    with pytest.raises(FunctionTimeout) as raised:
        function.invoke({"pidfile": str(tmp_path / "slow"), "sleep": 30})
    # then it is reported as Lambda reports it, and its process is gone
    assert "Task timed out after" in raised.value.error["errorMessage"]
    assert raised.value.error["errorType"] == "Sandbox.Timedout"
    slow_pid = int((tmp_path / "slow").read_text())
    assert slow_pid == warm["pid"]
    deadline = time.monotonic() + 5
    while _alive(slow_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(slow_pid)
    # and the next invocation runs in a new container, cold-started: it has served nothing before
    after = function.invoke({"pidfile": str(tmp_path / "after")})
    assert after["pid"] != slow_pid
    assert after["served"] == 1


def test_a_handler_error_is_a_function_error_and_the_container_stays_warm(function: Function, tmp_path: Path) -> None:
    first = function.invoke({"pidfile": str(tmp_path / "a")})
    with pytest.raises(FunctionError) as raised:
        function.invoke({"pidfile": str(tmp_path / "b"), "fail": True})
    assert raised.value.error["errorType"] == "ValueError"
    assert raised.value.error["errorMessage"] == "asked to fail"
    again = function.invoke({"pidfile": str(tmp_path / "c")})
    assert again["pid"] == first["pid"] == int((tmp_path / "b").read_text())
    assert again["served"] == 3


def test_concurrent_invocations_run_at_once_in_separate_containers(function: Function, tmp_path: Path) -> None:
    # given two events, the first of which waits until the second has started (it would wait forever if the
    # runtime ran them one after the other)
    results: dict[str, Any] = {}

    def run(name: str, event: dict[str, Any]) -> None:
        results[name] = function.invoke(event)

    first = {"pidfile": str(tmp_path / "p1"), "wait_for": str(tmp_path / "second"), "touch": str(tmp_path / "first")}
    second = {"pidfile": str(tmp_path / "p2"), "touch": str(tmp_path / "second")}
    threads = [
        threading.Thread(target=run, args=("first", first)),
        threading.Thread(target=run, args=("second", second)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # then both finished, in two processes
    assert (tmp_path / "first").exists()
    assert results["first"]["pid"] != results["second"]["pid"]


def test_moto_whose_port_was_taken_meanwhile_is_started_on_another(monkeypatch: pytest.MonkeyPatch) -> None:
    # given: the first port the sandbox picks for moto is taken by another process before moto binds it
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        first, second = int(taken.getsockname()[1]), runtime.free_port()
        picks = iter([first, second])
        monkeypatch.setattr(runtime, "free_port", lambda: next(picks))
        sandbox = runtime.Sandbox(runtime.SandboxConfig(port=0))

        # when: moto is started
        sandbox._start_moto()
    try:
        # then: moto runs on the second port and answers there
        assert sandbox.aws_endpoint == f"http://127.0.0.1:{second}"
        sqs = boto3.client(
            "sqs",
            endpoint_url=sandbox.aws_endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        assert sqs.list_queues().get("QueueUrls", []) == []
    finally:
        sandbox.stop()
