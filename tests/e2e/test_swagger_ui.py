"""Swagger UI at /pcall/docs, clicked through in headless Chromium as a first-time user would."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from callbridge.openapi import CALL_EXAMPLE
from callbridge.openapi_campaigns import JSON_EXAMPLE as CAMPAIGN_EXAMPLE

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


def execute(
    browser: Browser,
    sandbox: RunningSandbox,
    operation: str,
    fill: dict[str, str] | None = None,
    media: str | None = None,
) -> tuple[int, str, str]:
    """Open an operation, pick the body's `media` type and type `fill` into its parameters if given, else leave it as
    shown; press Execute. (status, response body, the curl command shown)."""
    block = f"[id^=operations-][id*={json.dumps(operation)}]"
    browser.click(f"{block} .opblock-summary-control")
    if media:
        select = f"document.querySelector('{block} .body-param-content-type select')"
        browser.wait_for(f"!!{select}", 10, f"{operation}'s media types")
        browser.evaluate(
            f"(s => {{ s.value = {json.dumps(media)}; s.dispatchEvent(new Event('change', {{bubbles: true}})); }})"
            f"({select})"
        )
        example = f"document.querySelector('{block} .body-param textarea')"
        browser.wait_for(
            f"{select}.value === {json.dumps(media)} && {example}.value.trim()", 10, f"the {media} example"
        )
    for name, value in (fill or {}).items():
        field = f"{block} tr[data-param-name={json.dumps(name)}] input"
        browser.wait_for(f"!!document.querySelector({json.dumps(field)})", 10, f"{operation}'s {name}")
        browser.type_text(field, value)
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
    return status, body, curl


def run(
    browser: Browser, sandbox: RunningSandbox, operation: str, fill: dict[str, str] | None = None
) -> dict[str, Any]:
    """Execute an operation (as shown, or with `fill` typed in) that answers JSON; it must answer 200: its data."""
    status, body, _ = execute(browser, sandbox, operation, fill)
    data: dict[str, Any] = json.loads(body)["data"]
    assert status == 200, (operation, data)
    assert data["code"] == 200, (operation, data)
    return data


def sent_body(curl: str) -> str:
    """The body of the curl command Swagger UI shows."""
    return curl.split("-d '", 1)[1].rsplit("'", 1)[0]


def url_of(curl: str) -> str:
    """The URL of the curl command Swagger UI shows."""
    found = re.search(r"'(https?://[^']*)'", curl)
    assert found, curl
    return found.group(1)


def test_the_default_example_of_post_call_is_the_vendors_curl_example_and_is_accepted(
    docs: Browser, sandbox: RunningSandbox
) -> None:
    # when a user opens POST /pcall/call and presses Execute without changing anything
    status, body, curl = execute(docs, sandbox, "create_call_pcall_call_post")
    data = json.loads(body)["data"]
    # then the call is accepted, and only the two fields of the vendor's example were sent
    assert status == 200, data
    assert data["code"] == 200
    sent = dict(parse_qsl(sent_body(curl)))
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
        "call_stats",
    ):
        run(docs, sandbox, operation)
    # the do-not-call examples chain: the bulk example lists the number the one-number examples then replace, read
    # and take off the list
    added = run(docs, sandbox, "add_suppressions")
    assert (added["count"], added["added"] + added["existing"]) == (2, 2)
    replaced = run(docs, sandbox, "put_suppression")
    assert (replaced["created"], replaced["suppression"]["reason"]) == (False, "asked by phone")
    assert run(docs, sandbox, "get_suppression")["suppression"]["number"] == "+12812345679"
    assert "+12812345679" in {s["number"] for s in run(docs, sandbox, "list_suppressions")["suppressions"]}
    assert run(docs, sandbox, "delete_suppression")["deleted"] == "+12812345679"
    with sandbox.client() as client:  # the bulk example's other number, which no other example takes off
        assert client.delete("/pcall/suppressions/12812345689").status_code == 200
    # the JSON campaign example starts a campaign of two calls; sent as shown, without query parameters
    status, body, curl = execute(docs, sandbox, "create_campaign")
    created = json.loads(body)["data"]
    assert status == 200, created
    assert not urlsplit(url_of(curl)).query, curl
    assert created["campaign"]["total"] == 2
    assert created["suppressed"] == []
    campaign_id = created["campaign"]["id"]
    assert run(docs, sandbox, "get_campaign", {"id": campaign_id})["campaign"]["name"] == "pick-up reminders"
    status, report, _ = execute(docs, sandbox, "campaign_report", {"id": campaign_id})
    assert status == 200, report
    assert report.splitlines()[0].startswith("callid,to,status"), report
    # the id routes take the ids their descriptions point to
    callid = run(docs, sandbox, "create_call")["callid"]
    assert run(docs, sandbox, "get_call", {"callid": callid})["call"]["request"]["to"] == "+12812345670"
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    with sandbox.client() as client:
        scheduled = [
            client.post("/pcall/call", data={**CALL_EXAMPLE, "call_date": tomorrow}).json()["data"]["callid"]
            for _ in range(2)
        ]
        later = client.post("/pcall/campaigns", json={**CAMPAIGN_EXAMPLE, "start_at": tomorrow}).json()["data"]
    assert run(docs, sandbox, "cancel_scheduled", {"callid": scheduled[0]})["status"] == "CANCELED"
    assert run(docs, sandbox, "hang_up_call", {"callid": scheduled[1]})["call"]["status"] == "CANCELED"
    for operation, status_after in (
        ("pause_campaign", "PAUSED"),
        ("resume_campaign", "SCHEDULED"),
        ("cancel_campaign", "CANCELED"),
    ):
        assert run(docs, sandbox, operation, {"id": later["campaign"]["id"]})["campaign"]["status"] == status_after


def test_the_csv_campaign_example_runs_with_a_name(docs: Browser, sandbox: RunningSandbox) -> None:
    # when a user picks text/csv for POST /pcall/campaigns and fills in the name its description asks for
    status, body, curl = execute(docs, sandbox, "create_campaign", {"name": "csv example"}, media="text/csv")
    created = json.loads(body)["data"]
    # then the CSV example's two calls are accepted as a campaign of that name
    assert status == 200, created
    assert parse_qsl(urlsplit(url_of(curl)).query) == [("name", "csv example")], curl
    assert (created["campaign"]["name"], created["campaign"]["total"]) == ("csv example", 2)


def test_the_csv_example_of_the_bulk_do_not_call_route_runs_as_shown(docs: Browser, sandbox: RunningSandbox) -> None:
    # when a user picks text/csv for POST /pcall/suppressions and presses Execute
    status, body, _ = execute(docs, sandbox, "add_suppressions", media="text/csv")
    added = json.loads(body)["data"]
    # then both numbers of the example (after its header line) are on the list
    assert status == 200, added
    assert added["count"] == 2
    with sandbox.client() as client:
        # with the reasons of the example's second column; and off it again: no other example calls them
        for number, reason in (("12812345679", "asked by phone"), ("12812345689", "asked by email")):
            assert client.get(f"/pcall/suppressions/{number}").json()["data"]["suppression"]["reason"] == reason
            assert client.delete(f"/pcall/suppressions/{number}").status_code == 200


def test_the_page_runs_under_its_content_security_policy(docs: Browser, sandbox: RunningSandbox) -> None:
    # given the page loaded and Authorize filled in (the fixture), and one operation executed
    status, _, _ = execute(docs, sandbox, "list_calls")
    assert status == 200
    # then nothing was refused or failed on the way (favicon.ico is not served)
    assert [p for p in docs.problems() if "favicon" not in p] == []
    # and the policy is in force: a script injected into the page does not run, and the browser says so
    docs.evaluate(
        "(() => { const s = document.createElement('script'); s.textContent = 'window.injected = 1';"
        " document.body.appendChild(s); })()"
    )
    assert docs.evaluate("window.injected === undefined") is True
    assert any("Content Security Policy" in p for p in docs.problems())
