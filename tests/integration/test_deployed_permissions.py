"""Each function runs with its own deployed permissions: a statement missing from the template breaks its path.

The sandbox runs every handler in its own container process, signed as that function's role (expanded from the
template by aws-sam-translator), against moto with IAM enforcement on and the sandbox's policy guard in each
container. These tests remove one needed statement from a copy of template.yaml and watch the path that needs it
fail as it would on AWS, next to the same path working with the template as it is.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.runtime import Sandbox, SandboxConfig, free_port
from sandbox.template import TEMPLATE, load_template

FINAL = {"COMPLETED", "BUSY", "NO_ANSWER", "FAILED", "CANCELED"}
PREMIUM_TTS = {
    "to": "12812345670",
    "answer_play": "http://example.com/file.wav",
    "answer_tts": "Your appointment is tomorrow at nine.",
    "answer_tts_voice": "en-US_AllisonVoice",
}


def _without_statement(tmp_path: Path, function: str, action: str) -> Path:
    """A copy of template.yaml whose `function` has no statement granting `action`."""
    text = TEMPLATE.read_text()
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith(f"  {function}:"))
    found = next(i for i in range(start, len(lines)) if lines[i].strip() == f"Action: {action}")
    # the statement is the "- Effect: Allow" line above `Action:` and the `Resource:` line below it
    assert lines[found - 1].strip() == "- Effect: Allow", lines[found - 1]
    assert lines[found + 1].strip().startswith("Resource:"), lines[found + 1]
    copy = tmp_path / "template.yaml"
    copy.write_text("".join(lines[: found - 1] + lines[found + 2 :]))
    # the copy is still a template, and that statement is all that is missing
    original, changed = load_template(), load_template(copy)
    assert changed["Resources"].keys() == original["Resources"].keys()
    return copy


class Running:
    def __init__(self, sandbox: Sandbox, log: list[str]) -> None:
        self.sandbox = sandbox
        self.log = log

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.sandbox.base_url, auth=self.sandbox.account, timeout=30)

    def final(self, callid: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while time.monotonic() < deadline:
                call: dict[str, Any] = client.get(f"/pcall/calls/{callid}").json()["data"]["call"]
                if call["status"] in FINAL:
                    return call
                time.sleep(0.2)
        raise AssertionError(f"call {callid} not final after {timeout}s")

    def speech_objects(self) -> list[str]:
        assert self.sandbox.stack is not None
        s3 = self.sandbox._clients()["s3"]
        listed = s3.list_objects_v2(Bucket=self.sandbox.stack.refs["SpeechBucket"])
        return [item["Key"] for item in listed.get("Contents", [])]

    def denied(self, function: str) -> set[str]:
        return {action for (name, action, _, allowed) in self.sandbox.requests if name == function and not allowed}


def _start(template: Path) -> Iterator[Running]:
    log: list[str] = []
    sandbox = Sandbox(SandboxConfig(port=free_port(), speed=20, schedule_every=1, template=template, log=log.append))
    try:
        sandbox.start()
        yield Running(sandbox, log)
    finally:
        sandbox.stop()


@pytest.fixture
def as_deployed() -> Iterator[Running]:
    yield from _start(TEMPLATE)


@pytest.fixture
def placer_cannot_list_the_speech_bucket(tmp_path: Path) -> Iterator[Running]:
    yield from _start(_without_statement(tmp_path, "PlacerFunction", "s3:ListBucket"))


def test_premium_tts_is_synthesized_once_and_cached_with_the_templates_permissions(as_deployed: Running) -> None:
    with as_deployed.client() as client:
        callid = client.post("/pcall/call", data=PREMIUM_TTS).json()["data"]["callid"]
    call = as_deployed.final(callid)
    assert call["status"] == "COMPLETED"
    # the placer found no cached audio (a 404), synthesized it and stored it for the next call
    assert len(as_deployed.speech_objects()) == 1
    assert as_deployed.denied("PlacerFunction") == set()


def test_without_s3_list_bucket_the_placer_never_caches_speech(placer_cannot_list_the_speech_bucket: Running) -> None:
    running = placer_cannot_list_the_speech_bucket
    with running.client() as client:
        callid = client.post("/pcall/call", data=PREMIUM_TTS).json()["data"]["callid"]
    call = running.final(callid)
    # the call still completes (the carrier speaks the text itself), but S3 answered 403 instead of 404 as it
    # does on AWS, so nothing was ever synthesized: the bug the template had
    assert call["status"] == "COMPLETED"
    assert running.speech_objects() == []
    assert running.denied("PlacerFunction") == {"s3:ListBucket"}
    assert any("PlacerFunction denied s3:ListBucket" in line for line in running.log)
