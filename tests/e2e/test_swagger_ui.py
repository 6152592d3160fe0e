"""Swagger UI at /pcall/docs, clicked through in headless Chromium as a first-time user would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import parse_qsl

import pytest

from tests.e2e.browser import Browser
from tests.e2e.conftest import RunningSandbox

pytestmark = pytest.mark.e2e


@pytest.fixture
def docs(sandbox: RunningSandbox) -> Iterator[Browser]:
    with Browser() as browser:
        browser.goto(f"{sandbox.base_url}/pcall/docs")
        browser.wait_for("document.querySelectorAll('.opblock').length >= 9", 60, "the operations")
        # Authorize: the dialog's Basic fields, as a person fills them in
        browser.click(".auth-wrapper .authorize")
        browser.type_text(".modal-ux input[type=text]", sandbox.api_key)
        browser.type_text(".modal-ux input[type=password]", sandbox.password)
        browser.click(".modal-ux .auth-btn-wrapper .authorize")
        browser.click(".modal-ux .btn-done")
        yield browser


def execute(browser: Browser, operation: str) -> tuple[int, dict[str, str], str]:
    """Open an operation, press Execute as it is; (status, response JSON's data, the curl command shown)."""
    block = f"[id^=operations-][id*={json.dumps(operation)}]"
    browser.click(f"{block} .opblock-summary-control")
    # the path parameters' inputs take their examples as the block renders
    inputs = f"document.querySelectorAll('{block} tr[data-param-in=path] input')"
    browser.wait_for(f"Array.from({inputs}).every(input => input.value)", 10, f"{operation}'s examples")
    browser.click(f"{block} .execute")
    cell = f"document.querySelector('{block} .live-responses-table tbody .response-col_status')"
    status = int(browser.wait_for(f"{cell} && {cell}.innerText.trim()", 90, f"{operation}'s response"))
    body = browser.evaluate(f"document.querySelector('{block} .live-responses-table .microlight').innerText")
    curl = browser.evaluate(f"document.querySelector('{block} .curl-command .curl').innerText")
    browser.click(f"{block} .opblock-summary-control")  # fold it again
    return status, json.loads(body)["data"], curl


def test_the_default_example_of_post_call_is_the_vendors_curl_example_and_is_accepted(
    docs: Browser, sandbox: RunningSandbox
) -> None:
    # when a user opens POST /pcall/call and presses Execute without changing anything
    status, data, curl = execute(docs, "create_call_pcall_call_post")
    # then the call is accepted, and only the two fields of the vendor's example were sent
    assert status == 200, data
    assert data["code"] == 200
    sent = dict(parse_qsl(curl.split("-d '", 1)[1].rsplit("'", 1)[0]))
    assert sent == {"to": "12812345670", "answer_play": "http://example.com/file.wav"}
    with sandbox.client() as client:
        call = client.get(f"/pcall/calls/{data['callid']}").json()["data"]["call"]
    assert call["request"]["to"] == "+12812345670"
    assert not docs.problems() or all("favicon" in p or "404" in p for p in docs.problems())


def test_each_operation_runs_as_shown(docs: Browser) -> None:
    # the IVR example creates menu `main`, which the other IVR examples then find
    for operation in (
        "put_ivr_menu",
        "get_ivr_menu",
        "list_ivr_menus",
        "delete_ivr_menu",
    ):
        status, data, _ = execute(docs, operation)
        assert status == 200, (operation, data)
        assert data["code"] == 200
