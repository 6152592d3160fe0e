"""The README's curl examples, run in order against a fresh sandbox as a new user runs them, each as written but
for what the README says to put in (the sandbox's address and credentials, a callid, a campaign's ID): each one
works, and an answer the README shows in full is the answer it gets.

Run in order, the examples share one account: an example must not break a later one (a number put on the
do-not-call list that a later example calls), and none may depend on the day it is run (a fixed date that has
passed). The commands are read with `shlex` and sent with httpx, as curl would send them (this machine needs no
curl).
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.e2e.conftest import ROOT, RunningSandbox, start_sandbox, stop_sandbox

pytestmark = pytest.mark.e2e
EXAMPLE_CALLID = "18f3a2b4c5d6e7f8091a2b3c4d5"  # the README's callid: data.callid of a POST /pcall/call
NOT_FINAL = {"SCHEDULED", "RETRY_WAIT"}  # a call waiting for its time: it cannot end under a test's feet


@dataclass
class Example:
    command: str  # continuation lines joined
    shown: str  # the comment line that follows it in the README: the answer it shows, or ""


def readme_examples(files: Path) -> list[Example]:
    """The README's curl commands against the API, in order; the files they send (`#   name.csv:` and the
    comment lines under it) are written to `files`."""
    readme = (ROOT / "README.md").read_text()
    examples: list[Example] = []
    for block in re.findall(r"```(?:sh|bash)\n(.*?)```", readme, re.S):
        pending, writing, previous = "", None, None  # previous: the block's example a comment may show the answer of
        for line in block.splitlines():
            named = re.match(r"#\s+(\w+\.csv):\s+(.*)$", line)
            if named:
                writing = files / named.group(1)
                writing.write_text(named.group(2) + "\n")
                continue
            if writing and re.match(r"#\s{5,}\S", line):
                writing.write_text(writing.read_text() + line.lstrip("#").strip() + "\n")
                continue
            writing = None
            if not pending and line.startswith("#") and previous and not previous.shown:
                previous.shown = line.lstrip("# ").strip()
            if not pending and (line.startswith("#") or not line.strip()):
                continue
            pending += line + "\n"
            if pending.rstrip().endswith("\\") or not _complete(pending):
                continue
            command, pending = pending.replace("\\\n", " ").strip(), ""
            previous = None
            if command.startswith("curl ") and "<ApiUrl>" not in command:  # a deployed stack's: not the sandbox's
                previous = Example(command, "")
                examples.append(previous)
    return examples


def _complete(text: str) -> bool:
    try:
        shlex.split(text, comments=True)
    except ValueError:  # a quoted body that goes on on the next line
        return False
    return True


@dataclass
class Request:
    method: str
    url: str
    auth: tuple[str, str]
    headers: dict[str, str]
    body: bytes | None


def as_curl_sends_it(command: str, files: Path) -> Request:
    """The request curl makes for `command` (the options the README uses)."""
    words = shlex.split(command, comments=True)[1:]
    # curl asks for no compression unless told to (httpx asks for gzip by default)
    method, url, auth, headers = "", "", ("", ""), {"Accept-Encoding": "identity"}
    form: list[str] = []
    binary: bytes | None = None
    while words:
        word = words.pop(0)
        if word in ("-s", "-i", "-si"):
            continue
        if word == "--compressed":  # curl asks for its encodings, and decodes the answer (as httpx does)
            headers["Accept-Encoding"] = "deflate, gzip"
            continue
        if word.startswith("http"):
            url = word
        elif word == "-u":
            key, _, password = words.pop(0).partition(":")
            auth = (key, password)
        elif word == "-X":
            method = words.pop(0)
        elif word == "-H":
            name, _, value = words.pop(0).partition(":")
            headers[name.strip()] = value.strip()
        elif word in ("-d", "--data"):
            form.append(words.pop(0))
        elif word == "--data-urlencode":
            name, _, value = words.pop(0).partition("=")
            form.append(f"{name}={quote(value, safe='')}")
        elif word == "--data-binary":
            value = words.pop(0)
            binary = (files / value[1:]).read_bytes() if value.startswith("@") else value.encode()
        else:
            raise AssertionError(f"an option this test does not know how curl sends: {word} in {command}")
    body = binary if binary is not None else ("&".join(form).encode() if form else None)
    if body is not None:
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    return Request(method or ("POST" if body is not None else "GET"), url, auth, headers, body)


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[RunningSandbox]:
    running = start_sandbox("--speed", "20", state_dir=tmp_path / "sandbox")
    yield running
    assert stop_sandbox(running) == 0


def waiting_call(client: httpx.Client) -> str:
    """A call of the account's that is waiting for its time (the retry example's, between its attempts)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        calls = client.get("/pcall/calls", params={"limit": 100}).json()["data"]["calls"]
        waiting = [c["callid"] for c in calls if c["status"] in NOT_FINAL]
        if waiting:
            return str(waiting[0])
        time.sleep(0.2)
    raise AssertionError("no call of the examples is waiting for its time")


def test_the_readme_examples_work_in_order_as_written(fresh: RunningSandbox, tmp_path: Path) -> None:
    examples = readme_examples(tmp_path)
    assert len(examples) >= 30, [e.command for e in examples]
    credentials = f"{fresh.api_key}:{fresh.password}"
    given = {  # what the README tells the reader to put in
        "$AUTH": credentials,
        "KEY:PASSWORD": credentials,
        "YOUR_API_KEY:YOUR_API_PASSWORD": credentials,
        "$API": fresh.base_url,
        "https://<your-api>": fresh.base_url,
    }
    last_callid, campaign = "", ""
    with fresh.client() as client:
        for example in examples:
            command = example.command
            for placeholder, value in given.items():
                command = command.replace(placeholder, value)
            if EXAMPLE_CALLID in command:
                callid = waiting_call(client) if " DELETE " in command else last_callid
                command = command.replace(EXAMPLE_CALLID, callid)
            command = re.sub(r"(?<=[/=])ID\b", campaign, command)
            request = as_curl_sends_it(command, tmp_path)
            response = httpx.request(
                request.method,
                request.url,
                auth=request.auth,
                headers=request.headers,
                content=request.body,
                timeout=30,
            )

            shown_status = re.match(r"HTTP/[\d.]+ (\d+)", example.shown)
            expected = int(shown_status.group(1)) if shown_status else 200
            assert response.status_code == expected, (example.command, response.text)
            if not response.headers["Content-Type"].startswith("application/json"):
                continue
            answer: dict[str, Any] = response.json()
            assert answer["data"]["code"] == expected, (example.command, answer)
            if example.shown.startswith("{") and "..." not in example.shown:  # an answer shown in full
                assert answer == json.loads(example.shown), example.command
            last_callid = answer["data"].get("callid", last_callid)
            campaign = campaign or answer["data"].get("campaign", {}).get("id", "")
