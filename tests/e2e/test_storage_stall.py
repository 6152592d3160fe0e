"""A frozen AWS, through the sandbox: the API answers 503 with Retry-After before Lambda would stop it.

The sandbox runs each function with its template `Timeout` enforced as Lambda enforces it (an invocation that
runs past it is killed and logged "Task timed out", and API Gateway answers 500). Here the sandbox's AWS (its
moto server process) is frozen with SIGSTOP, as a DynamoDB that accepts connections and never answers: the
kernel still accepts each connection, nothing is ever read back.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import RunningSandbox, start_sandbox, stop_sandbox

pytestmark = pytest.mark.e2e

CALL = {"to": "12812345670", "answer_play": "http://example.com/a.wav"}


def moto_pid(sandbox: RunningSandbox) -> int:
    """The sandbox's AWS: its child process running the moto server."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = int(stat.rpartition(")")[2].split()[1])
        if parent == sandbox.process.pid and b"sandbox.moto_server" in command:
            return int(entry.name)
    raise AssertionError("the sandbox's moto server process was not found")


@pytest.fixture
def stallable() -> Iterator[RunningSandbox]:
    running = start_sandbox("--speed", "20")
    try:
        yield running
    finally:
        os.kill(moto_pid(running), signal.SIGCONT)  # whatever the test did, the sandbox can stop
        assert stop_sandbox(running) == 0


def test_a_frozen_storage_answers_503_with_retry_after_not_a_lambda_timeout(stallable: RunningSandbox) -> None:
    # given: a working sandbox (this request warms the API's container, its clients and their connections)
    with stallable.client() as client:
        assert client.get("/pcall/calls").status_code == 200
    aws = moto_pid(stallable)

    # when: its AWS freezes, and a call is placed
    os.kill(aws, signal.SIGSTOP)
    try:
        with stallable.client() as client:
            response = client.post("/pcall/call", data=CALL)
    finally:
        os.kill(aws, signal.SIGCONT)

    # then: a 503 in the API's envelope with Retry-After: the API gave up on storage within its function's Timeout
    # (an invocation Lambda stops is a 500 from API Gateway, and the sandbox logs "Task timed out")
    assert response.status_code == 503, (response.status_code, response.text)
    assert int(response.headers["Retry-After"]) > 0
    assert response.json() == {"data": {"code": 503, "code_desc": "temporarily unavailable, please retry"}}
    timed_out = [line for line in stallable.output if "Task timed out" in line]
    assert timed_out == []

    # and: once storage answers again, the same request is taken (the client was right to retry)
    with stallable.client() as client:
        again = client.post("/pcall/call", data=CALL)
    assert again.status_code == 200, again.text
    callid = again.json()["data"]["callid"]
    assert stallable.wait_final(callid, timeout=90)["status"] == "COMPLETED"
