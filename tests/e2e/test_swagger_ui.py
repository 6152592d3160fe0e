"""Swagger UI at /pcall/docs, clicked through in headless Chromium as a first-time user would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import pytest

from tests.e2e.browser import Browser, BrowserError
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


# Execute reads the operation from Swagger UI's store, not from the page: the store has the operation only once its
# references are resolved (asynchronously, after the block opens), and until then an input can show its example while
# the store holds no value for it. Pressed in that moment, Execute finds a required parameter missing and sends nothing.
READY = """(() => {{
  const block = document.querySelector({block});
  const path = block.querySelector('.opblock-summary-path').dataset.path;
  const method = block.querySelector('.opblock-summary-method').innerText.toLowerCase();
  if (!ui.specSelectors.specResolvedSubtree(['paths', path, method])) return false;
  const values = ui.specSelectors.parameterValues([path, method]).toJS();
  return Array.from(block.querySelectorAll('tr[data-param-name]')).every(row => {{
    const input = row.querySelector('input');
    return !input || input.value === (values[`${{row.dataset.paramIn}}.${{row.dataset.paramName}}`] || '');
  }});
}})()"""


def execute(browser: Browser, sandbox: RunningSandbox, operation: str) -> tuple[int, dict[str, Any], str]:
    """Open an operation, press Execute as it is; (status, response JSON's data, the curl command shown)."""
    block = f"[id^=operations-][id*={json.dumps(operation)}]"
    browser.click(f"{block} .opblock-summary-control")
    # the path parameters' inputs take their examples as the block renders
    inputs = f"document.querySelectorAll('{block} tr[data-param-in=path] input')"
    browser.wait_for(f"Array.from({inputs}).every(input => input.value)", 10, f"{operation}'s examples")
    browser.wait_for(READY.format(block=json.dumps(block)), 30, f"{operation} ready to execute")
    browser.click(f"{block} .execute")
    # the request is on its way (Swagger UI's spinner) or already answered
    cell = f"document.querySelector('{block} .live-responses-table tbody .response-col_status')"
    sent = f"document.querySelector('{block} .loading-container') || {cell}"
    browser.wait_for(f"!!({sent})", 30, f"Execute to send {operation}'s request")
    try:
        status = int(browser.wait_for(f"{cell} && {cell}.innerText.trim()", 90, f"{operation}'s response"))
    except BrowserError as exc:
        # what the sandbox served meanwhile, to tell a request never answered from an answer never shown
        served = [line for line in sandbox.output[-200:] if " http " in f" {line}"]
        raise BrowserError(f"{exc}; the sandbox's last requests:\n" + "\n".join(served[-20:])) from exc
    body = browser.evaluate(f"document.querySelector('{block} .live-responses-table .microlight').innerText")
    curl = browser.evaluate(f"document.querySelector('{block} .curl-command .curl').innerText")
    browser.click(f"{block} .opblock-summary-control")  # fold it again
    return status, json.loads(body)["data"], curl


def test_the_default_example_of_post_call_is_the_vendors_curl_example_and_is_accepted(
    docs: Browser, sandbox: RunningSandbox
) -> None:
    # when a user opens POST /pcall/call and presses Execute without changing anything
    status, data, curl = execute(docs, sandbox, "create_call_pcall_call_post")
    # then the call is accepted, and only the two fields of the vendor's example were sent
    assert status == 200, data
    assert data["code"] == 200
    sent = dict(parse_qsl(curl.split("-d '", 1)[1].rsplit("'", 1)[0]))
    assert sent == {"to": "12812345670", "answer_play": "http://example.com/file.wav"}
    with sandbox.client() as client:
        call = client.get(f"/pcall/calls/{data['callid']}").json()["data"]["call"]
    assert call["request"]["to"] == "+12812345670"
    assert not docs.problems() or all("favicon" in p or "404" in p for p in docs.problems())


def test_each_operation_runs_as_shown(docs: Browser, sandbox: RunningSandbox) -> None:
    # the IVR example creates menu `main`, which the other IVR examples then find
    for operation in (
        "put_ivr_menu",
        "get_ivr_menu",
        "list_ivr_menus",
        "delete_ivr_menu",
        "list_calls",
        "list_scheduled",
        "list_campaigns",
        "list_suppressions",
        "call_stats",
    ):
        status, data, _ = execute(docs, sandbox, operation)
        assert status == 200, (operation, data)
        assert data["code"] == 200
