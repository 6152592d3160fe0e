"""The first ten minutes: what `make run` prints and keeps, what it logs, and the README's admin commands."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ROOT, Receiver, RunningSandbox, start_sandbox, stop_sandbox

pytestmark = pytest.mark.e2e
PLACEHOLDER_KEY = "cb_0123456789abcdef01234567"  # the README's example API key
A_CALL = {"to": "12812345670", "answer_play": "http://example.com/a.wav"}


def banner_value(sandbox: RunningSandbox, label: str) -> str:
    found = [re.search(rf"^\s+{label}\s+(\S+)", line) for line in sandbox.output]
    values = [m.group(1) for m in found if m]
    assert values, f"no {label!r} in the banner:\n" + "\n".join(sandbox.output[:20])
    return values[0]


def signed_by(secret: str, request: dict[str, Any]) -> bool:
    fields = dict(part.split("=", 1) for part in request["headers"]["X-Callbridge-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{fields['t']}.{request['body']}".encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])


def test_demo_account_and_webhook_secret_are_printed_and_survive_a_restart(tmp_path: Path, receiver: Receiver) -> None:
    # given a first start with nothing kept yet
    first = start_sandbox("--speed", "20", account=False, state_dir=tmp_path)
    try:
        key, password = first.api_key, first.password
        secret = banner_value(first, "webhook secret")
        assert key.startswith("cb_")
        assert secret.startswith("whsec_")
    finally:
        assert stop_sandbox(first) == 0
    # when the sandbox starts again from the same state directory
    second = start_sandbox("--speed", "20", account=False, state_dir=tmp_path)
    try:
        # then the credentials and the secret are the same, and they work
        assert (second.api_key, second.password, banner_value(second, "webhook secret")) == (key, password, secret)
        with second.client() as client:
            response = client.post("/pcall/call", data={**A_CALL, "callback_url": receiver.url})
        assert response.status_code == 200, response.text
        # and the printed secret is the one outcome callbacks are signed with
        callback = receiver.wait_for(lambda r: r["form"].get("callid") == response.json()["data"]["callid"])
        assert signed_by(secret, callback)
    finally:
        assert stop_sandbox(second) == 0
    assert json.loads((tmp_path / "account.json").read_text())["api_key"] == key


def test_account_flag_overrides_and_keeps_nothing(tmp_path: Path) -> None:
    running = start_sandbox(state_dir=tmp_path)  # with --account e2e-key:...
    try:
        assert running.api_key == "e2e-key"
        assert (tmp_path / "sandbox.json").exists()
    finally:
        assert stop_sandbox(running) == 0
    assert not (tmp_path / "account.json").exists()
    assert not (tmp_path / "sandbox.json").exists(), "removed when the sandbox stops"


def test_refused_requests_and_callback_attempts_are_logged_one_line_each(
    sandbox: RunningSandbox, receiver: Receiver
) -> None:
    with sandbox.client() as client:
        refused = client.post("/pcall/call", data={"to": "1", "answer_play": "http://example.com/a.wav"})
        accepted = client.post("/pcall/call", data={**A_CALL, "callback_url": receiver.url})
    assert refused.status_code == 400
    callid = accepted.json()["data"]["callid"]
    sandbox.wait_final(callid)
    receiver.wait_for(lambda r: r["form"].get("callid") == callid)
    reason = refused.json()["data"]["code_desc"]
    assert any("POST /pcall/call → 400" in line and f"refused: {reason}" in line for line in sandbox.output)
    deadline = time.monotonic() + 30  # the log line follows the timeline write, by a stream poll
    wanted = f"callback {callid} attempt 1 to {receiver.url}"
    while not (attempts := [line for line in sandbox.output if wanted in line]):
        assert time.monotonic() < deadline, "no log line for the callback attempt"
        time.sleep(0.1)
    assert len(attempts) == 1
    assert "HTTP 200 → delivered" in attempts[0]


def readme_admin_commands() -> list[str]:
    """The `make admin ...` lines of the README's Accounts section, in order."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Accounts") :]
    section = section[: section.index("\n## ", 1)]
    return [line.strip() for line in section.splitlines() if line.strip().startswith("make admin ")]


def test_each_readme_admin_command_works_against_the_sandbox(tmp_path: Path) -> None:
    commands = readme_admin_commands()
    assert [shlex.split(c)[2].split()[0] for c in commands] == [
        "ARGS=list",
        "ARGS=list",
        "ARGS=create",
        "ARGS=disable",
        "ARGS=enable",
        "ARGS=rotate-password",
        "ARGS=set-call-defaults",
    ]
    # AccountCacheSeconds=0: each request sees the account as the last command left it
    running = start_sandbox("--parameter-overrides", "AccountCacheSeconds=0", state_dir=tmp_path)
    env = {"PATH": "/usr/bin:/bin", "SANDBOX_DIR": str(tmp_path), "HOME": str(tmp_path)}  # no AWS settings at all

    def run(command: str, key: str = PLACEHOLDER_KEY) -> Any:
        result = subprocess.run(
            shlex.split(command.replace(PLACEHOLDER_KEY, key)),
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"{command}: {result.stderr}"
        return json.loads(result.stdout)

    def status(key: str, password: str) -> int:
        return httpx.get(f"{running.base_url}/pcall/calls", auth=(key, password), timeout=30).status_code

    try:
        listed, shown, created = run(commands[0]), run(commands[1]), run(commands[2])
        assert "e2e-key" in [a["api_key"] for a in listed]
        secrets = {a["api_key"]: a["webhook_secret"] for a in shown}
        for account in listed:  # masked to a tail of the secret --show-secrets prints whole
            assert account["webhook_secret"] != secrets[account["api_key"]]
            assert secrets[account["api_key"]].endswith(account["webhook_secret"].lstrip("."))
        key, password = created["api_key"], created["password"]
        assert created["timezone"] == "America/Chicago"
        assert run(commands[3], key)["enabled"] is False
        assert status(key, password) == 401
        assert run(commands[4], key)["enabled"] is True
        assert status(key, password) == 200
        rotated = run(commands[5], key)["password"]
        assert rotated != password
        assert status(key, rotated) == 200
        defaults = run(commands[6], key)
        assert (defaults["call_window"], defaults["call_days"]) == ("09:00-20:00", "MON,TUE,WED,THU,FRI")
    finally:
        assert stop_sandbox(running) == 0
    # and once the sandbox is gone, the command says so
    gone = subprocess.run(
        shlex.split(commands[0]), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert gone.returncode == 2
    assert "no sandbox is running" in gone.stderr
