"""The web console at /pcall/console, used in headless Chromium as a person uses it: against the sandbox.

`UPDATE_SCREENSHOTS=1` (what `make screenshots` sets) also writes the screenshots to docs/ for the README.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import httpx
import pytest
from callbridge.admin import SANDBOX_FILE

from tests.e2e.browser import Browser
from tests.e2e.conftest import ROOT, RunningSandbox, start_sandbox, stop_sandbox

pytestmark = pytest.mark.e2e
PERSON, MACHINE, BUSY, NO_ANSWER = "12812345670", "12812345671", "12812345672", "12812345673"


def screenshot(browser: Browser, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    browser.screenshot(path)
    assert path.stat().st_size > 10_000, "an empty page"
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        (ROOT / "docs" / name).write_bytes(path.read_bytes())
    return path


def place(sandbox: RunningSandbox, to: str, **extra: str) -> str:
    with sandbox.client() as client:
        response = client.post("/pcall/call", data={"to": to, "answer_play": "http://example.com/a.wav", **extra})
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["callid"])


def signed_in(browser: Browser, sandbox: RunningSandbox) -> None:
    browser.goto(f"{sandbox.base_url}/pcall/console")
    browser.wait_for("!document.querySelector('#view-signin').hidden", 30, "the sign-in form")
    browser.type_text("#signin-key", sandbox.api_key)
    browser.type_text("#signin-password", sandbox.password)
    browser.click("#signin-form button[type=submit]")
    browser.wait_for("!document.querySelector('#view-calls').hidden", 30, "the calls view")


def row(callid: str, status: str | None = None) -> str:
    selector = f"#calls-table tr[data-callid={json.dumps(callid)}]"
    return selector + (f"[data-status={status}]" if status else "")


@pytest.fixture
def browser() -> Iterator[Browser]:
    with Browser(1280, 900) as opened:
        yield opened
        # no script error and no Content-Security-Policy violation in the whole test
        assert opened.problems() == []


def test_sign_in_see_a_call_complete_read_its_timeline_and_sign_out(
    browser: Browser, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    # a wrong password is refused on the form
    browser.goto(f"{sandbox.base_url}/pcall/console")
    browser.wait_for("!document.querySelector('#view-signin').hidden", 30, "the sign-in form")
    browser.type_text("#signin-key", sandbox.api_key)
    browser.type_text("#signin-password", "not-the-password")
    browser.click("#signin-form button[type=submit]")
    error = "document.querySelector('#signin-error').innerText"
    assert "refused" in browser.wait_for(f"{error}.includes('refused') && {error}", 30, "the refusal")
    assert browser.evaluate("document.querySelector('#notice').innerText") == ""  # said once, on the form
    # the right one signs in; the credentials stay in this tab's session storage, never in a URL or cookie
    signed_in(browser, sandbox)
    stored = json.loads(browser.evaluate("sessionStorage.getItem('callbridge.console')"))
    assert stored["key"] == sandbox.api_key
    assert browser.evaluate("document.cookie") == ""
    assert sandbox.password not in browser.evaluate("location.href")
    # a call placed through the API appears, and the table follows it to COMPLETED without a reload
    callid = place(sandbox, PERSON)
    browser.wait_for(f"!!document.querySelector('{row(callid)}')", 30, "the new call in the table")
    browser.wait_for(f"!!document.querySelector('{row(callid, 'COMPLETED')}')", 60, "the call to be completed")
    cells = browser.evaluate(f"Array.from(document.querySelectorAll('{row(callid)} td')).map(td => td.innerText)")
    assert cells[0] == "Completed"
    assert cells[1] == f"+{PERSON}"
    assert cells[5] == "Person"
    # its timeline reads in words, with each raw event one click away
    browser.click(f"{row(callid)} a")
    browser.wait_for("document.querySelectorAll('#timeline li').length >= 5", 30, "the timeline")
    lines = browser.evaluate("Array.from(document.querySelectorAll('#timeline .what')).map(e => e.innerText)")
    for words in ("Accepted", "Placing the call", "The carrier took the call"):
        assert words in lines, lines
    for start in ("Answered by a person", "Hung up after"):
        assert any(line.startswith(start) for line in lines), lines
    browser.click("#timeline li[data-event='carrier.status'] details summary")
    raw = browser.evaluate("document.querySelector('#timeline li[data-event=\"carrier.status\"] pre').innerText")
    assert json.loads(raw)["detail"]["CallStatus"]
    outcome = browser.evaluate("document.querySelector('#call-outcome').innerText")
    assert "Person" in outcome
    assert callid in outcome
    screenshot(browser, tmp_path, "console-call.png")
    # signing out forgets the credentials
    browser.click("#sign-out")
    browser.wait_for("!document.querySelector('#view-signin').hidden", 10, "the sign-in form")
    assert browser.evaluate("sessionStorage.getItem('callbridge.console')") is None
    # credentials refused once signed in (a rotated password, say) sign the tab out, saying why
    signed_in(browser, sandbox)
    browser.evaluate(
        "sessionStorage.setItem('callbridge.console', JSON.stringify({key: 'k', token: btoa('k:wrong')}));"
        " location.reload()"
    )
    browser.wait_for("document.querySelector('#notice').innerText.includes('sign in again')", 30, "the sign-out")
    assert not browser.evaluate("document.querySelector('#view-signin').hidden")
    assert browser.evaluate("sessionStorage.getItem('callbridge.console')") is None


def test_the_calls_page_with_its_chart_filters_and_pages(
    browser: Browser, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    # given calls of every outcome
    callids = [place(sandbox, to) for to in (PERSON, MACHINE, BUSY, NO_ANSWER, PERSON, PERSON)]
    for callid in callids:
        sandbox.wait_final(callid)
    with sandbox.client() as client:
        stats = client.get("/pcall/stats").json()["data"]
    signed_in(browser, sandbox)
    # the chart draws the last 24 hours by outcome, and says the answer rate the API computes
    browser.wait_for("document.querySelectorAll('#chart-plot rect.bar').length > 0", 30, "the chart's bars")
    rate = browser.evaluate("document.querySelector('#chart-rate').innerText")
    # in whole percent, a half rounded up as a person reads it (5 of 8 answered is 63 %; Python's round says 62)
    assert f"answer rate {math.floor(stats['answer_rate'] * 100 + 0.5)} %" in rate
    # filtered by status: only busy calls
    browser.evaluate("document.querySelector('#filter-status').value = 'BUSY'")
    browser.click("#filters button[type=submit]")
    browser.wait_for(
        "Array.from(document.querySelectorAll('#calls-table tbody tr')).every(tr => tr.dataset.status === 'BUSY')",
        30,
        "only busy calls",
    )
    browser.click("#filter-clear")
    browser.wait_for(f"!!document.querySelector('{row(callids[-1])}')", 30, "the unfiltered list")
    screenshot(browser, tmp_path, "console.png")
    # pages of 25: the older page continues where the first ended
    total = len(
        httpx.get(f"{sandbox.base_url}/pcall/calls?limit=100", auth=(sandbox.api_key, sandbox.password)).json()["data"][
            "calls"
        ]
    )
    if total > 25:
        first = browser.evaluate(
            "Array.from(document.querySelectorAll('#calls-table tbody tr')).map(tr => tr.dataset.callid)"
        )
        browser.click("#calls-older")
        browser.wait_for("document.querySelector('#calls-page').innerText === 'Page 2'", 30, "page 2")
        second = browser.evaluate(
            "Array.from(document.querySelectorAll('#calls-table tbody tr')).map(tr => tr.dataset.callid)"
        )
        assert len(first) == 25
        assert not set(first) & set(second)


def test_the_calls_page_says_when_the_api_cannot_be_reached_and_recovers(
    browser: Browser, sandbox: RunningSandbox
) -> None:
    callid = place(sandbox, PERSON)
    signed_in(browser, sandbox)
    browser.wait_for(f"!!document.querySelector('{row(callid)}')", 30, "the call in the table")
    # the network goes away: the page keeps what it showed, and says since when it has not been updated
    browser.command("Network.enable")
    offline = {"latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
    browser.command("Network.emulateNetworkConditions", {"offline": True, **offline})
    notice = "document.querySelector('#notice').innerText"
    said = browser.wait_for(f"{notice}.startsWith('Not updated') && {notice}", 30, "the stale notice")
    assert "since" in said
    assert "cannot be reached" in said
    assert browser.evaluate(f"!!document.querySelector('{row(callid)}')")
    # it comes back: the refresh carries on and the notice goes
    browser.command("Network.emulateNetworkConditions", {"offline": False, **offline})
    browser.wait_for(f"{notice} === ''", 30, "the notice to go")
    assert browser.evaluate(f"!!document.querySelector('{row(callid)}')")


def test_a_calls_metadata_is_shown_on_its_page_as_text(browser: Browser, sandbox: RunningSandbox) -> None:
    # given a call with metadata (markup in a key and a value, an empty value, a key as long as the API takes)
    # and a call without
    long_key = "k" * 1500
    metadata = {"order": "A-17", "<b>team</b>": "<img src=x onerror=alert(1)>", "note": "", long_key: "x"}
    with sandbox.client() as client:
        response = client.post(
            "/pcall/call", json={"to": PERSON, "answer_play": "http://example.com/a.wav", "metadata": metadata}
        )
    assert response.status_code == 200, response.text
    tagged = response.json()["data"]["callid"]
    plain = place(sandbox, PERSON)
    signed_in(browser, sandbox)
    # its page lists each key and value as text, in the API's order, and adds no element of the caller's
    browser.goto(f"{sandbox.base_url}/pcall/console#call/{tagged}")
    browser.wait_for("!document.querySelector('#call-metadata-box').hidden", 30, "the metadata")
    terms = browser.evaluate("Array.from(document.querySelectorAll('#call-metadata dt'), e => e.textContent)")
    values = browser.evaluate("Array.from(document.querySelectorAll('#call-metadata dd'), e => e.textContent)")
    assert dict(zip(terms, values, strict=True)) == metadata
    with sandbox.client() as client:
        assert terms == list(client.get(f"/pcall/calls/{tagged}").json()["data"]["call"]["metadata"])
    assert browser.evaluate("document.querySelector('#call-metadata').querySelectorAll('b, img').length") == 0
    # the longest key wraps: the page is no wider than the screen, each value on it
    assert browser.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert browser.evaluate(
        "Array.from(document.querySelectorAll('#call-metadata dd'))"
        ".every(e => { const r = e.getBoundingClientRect(); return r.left >= 0 && r.right <= window.innerWidth; })"
    )
    # a call without metadata shows none (nor the last call's)
    browser.goto(f"{sandbox.base_url}/pcall/console#call/{plain}")
    browser.wait_for(f"document.querySelector('#call-outcome').innerText.includes('{plain}')", 30, "the other call")
    assert browser.evaluate("document.querySelector('#call-metadata-box').hidden")
    assert browser.evaluate("document.querySelectorAll('#call-metadata dt').length") == 0


def test_cancel_a_scheduled_call(browser: Browser, sandbox: RunningSandbox) -> None:
    due = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%d %H:%M")
    callid = place(sandbox, PERSON, call_date=due)
    signed_in(browser, sandbox)
    browser.click("#nav a[data-view=scheduled]")
    selector = f"#scheduled-table tr[data-callid={json.dumps(callid)}]"
    browser.wait_for(f"!!document.querySelector('{selector}')", 30, "the scheduled call")
    browser.click(f"{selector} button")
    browser.wait_for(f"!document.querySelector('{selector}')", 30, "the call to leave the list")
    assert "cancelled" in browser.evaluate("document.querySelector('#notice').innerText")
    with sandbox.client() as client:
        assert client.get(f"/pcall/calls/{callid}").json()["data"]["call"]["status"] == "CANCELED"


def test_a_call_waiting_to_retry_reads_in_words_shows_its_next_attempt_and_is_cancelled(
    browser: Browser, sandbox: RunningSandbox
) -> None:
    # a busy first attempt, the next one a day later: the call waits as RETRY_WAIT
    callid = place(sandbox, BUSY, retry_attempts="1", retry_interval="86400", retry_on="BUSY")
    deadline = time.monotonic() + 60
    with sandbox.client() as client:
        while (call := client.get(f"/pcall/calls/{callid}").json()["data"]["call"])["status"] != "RETRY_WAIT":
            assert time.monotonic() < deadline, call["status"]
            time.sleep(0.2)
    signed_in(browser, sandbox)
    # the calls table says it in words, and the status filter offers it
    browser.wait_for(f"!!document.querySelector('{row(callid, 'RETRY_WAIT')}')", 30, "the waiting call")
    assert browser.evaluate(f"document.querySelector('{row(callid)} td').innerText") == "Waiting to retry"
    options = browser.evaluate("Array.from(document.querySelectorAll('#filter-status option')).map(o => o.value)")
    assert "RETRY_WAIT" in options
    # the scheduled list shows when it is due (its next attempt; it has no call_date)
    browser.click("#nav a[data-view=scheduled]")
    selector = f"#scheduled-table tr[data-callid={json.dumps(callid)}]"
    browser.wait_for(f"!!document.querySelector('{selector}')", 30, "the waiting call among the scheduled")
    due = browser.evaluate(f"document.querySelector('{selector} td').innerText")
    assert str(datetime.now(UTC).year) in due or str(datetime.now(UTC).year + 1) in due, due
    # its page: the next attempt, the timeline in words (no raw ISO time), and a Cancel (it is not dialing)
    browser.click(f"{selector} a")
    browser.wait_for("!!document.querySelector('#call-cancel')", 30, "the Cancel button")
    assert browser.evaluate("document.querySelector('#call-hangup')") is None
    outcome = browser.evaluate("document.querySelector('#call-outcome').innerText")
    assert "Next attempt" in outcome
    assert "Waiting to retry" in outcome
    # ... and, as its own outcome, its busy attempt's: when it ended and why
    assert "Ended" in outcome
    assert "the number was busy (SIP 486)" in outcome
    lines = browser.evaluate("Array.from(document.querySelectorAll('#timeline .what')).map(e => e.innerText)")
    retry = [line for line in lines if line.startswith("Attempt 1 ended")]
    assert retry, lines
    assert ".000Z" not in retry[0], retry
    browser.click("#call-cancel")
    browser.wait_for("document.querySelector('#notice').innerText.includes('cancelled')", 30, "the cancel")
    with sandbox.client() as client:
        assert client.get(f"/pcall/calls/{callid}").json()["data"]["call"]["status"] == "CANCELED"


def queued_for_now(sandbox: RunningSandbox) -> str:
    """A call accepted for now that the dialer has not taken yet: QUEUED, without a call_date.

    The sandbox's placer takes such a call within a second, too soon to act on it from a page; so a call placed for
    a month ahead is made into one in CallsTable, signed as the sandbox's administrator (as `make admin` signs).
    """
    due = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%d %H:%M")
    callid = place(sandbox, PERSON, call_date=due)
    assert sandbox.state_dir is not None
    aws = json.loads((sandbox.state_dir / SANDBOX_FILE).read_text("utf-8"))
    db = boto3.client(
        "dynamodb",
        endpoint_url=aws["aws_endpoint"],
        region_name=aws["region"],
        aws_access_key_id=aws["aws_access_key_id"],
        aws_secret_access_key=aws["aws_secret_access_key"],
    )
    db.update_item(
        TableName=aws["calls_table"],
        Key={"callid": {"S": callid}},
        # its accepted event (timeline[0]: [at, name, detail]) too says QUEUED with no call_date, as for a call for now
        UpdateExpression="SET #s = :queued, timeline[0][2].#s = :queued "
        "REMOVE call_date, scheduled_account, #r.call_date, timeline[0][2].call_date",
        ExpressionAttributeNames={"#s": "status", "#r": "request"},
        ExpressionAttributeValues={":queued": {"S": "QUEUED"}},
    )
    with sandbox.client() as client:
        call = client.get(f"/pcall/calls/{callid}").json()["data"]["call"]
    assert (call["status"], call["call_date"], call["next_attempt_at"]) == ("QUEUED", None, None)
    return callid


def test_a_queued_call_is_cancelled_from_its_page_not_hung_up(browser: Browser, sandbox: RunningSandbox) -> None:
    # given a call not dialed yet, queued for now (no time to wait for)
    callid = queued_for_now(sandbox)
    signed_in(browser, sandbox)
    browser.goto(f"{sandbox.base_url}/pcall/console#call/{callid}")
    browser.wait_for(f"document.querySelector('#call-outcome').innerText.includes('{callid}')", 30, "its page")
    # its page offers to cancel it, as for a scheduled call, and no hang-up: it is not at the carrier
    assert "Queued" in browser.evaluate("document.querySelector('#call-title').innerText")
    assert browser.evaluate("document.querySelector('#call-cancel').innerText") == "Cancel this call"
    assert browser.evaluate("document.querySelector('#call-hangup')") is None
    # Cancel: it is CANCELED, never dialed, and the page says so and offers nothing more
    browser.click("#call-cancel")
    browser.wait_for("document.querySelector('#notice').innerText === 'The call is cancelled.'", 30, "the notice")
    browser.wait_for("document.querySelector('#call-title').innerText.includes('Cancelled')", 30, "cancelled")
    assert browser.evaluate("document.querySelectorAll('#call-actions button').length") == 0
    with sandbox.client() as client:
        call = client.get(f"/pcall/calls/{callid}").json()["data"]["call"]
    assert call["status"] == "CANCELED"
    assert "dialing" not in [entry["event"] for entry in call["timeline"]]
    lines = browser.evaluate("Array.from(document.querySelectorAll('#timeline .what')).map(e => e.innerText)")
    assert "Cancelled by you" in lines, lines


def test_an_ivr_menu_is_edited_as_json_with_the_apis_messages(browser: Browser, sandbox: RunningSandbox) -> None:
    signed_in(browser, sandbox)
    browser.click("#nav a[data-view=ivr]")
    browser.wait_for("document.querySelectorAll('#ivr-list li').length > 0", 30, "the menus")
    browser.click("#ivr-new")
    browser.type_text("#ivr-code", "console-menu")
    menu = {
        "prompt": {"speak": "Press 1.", "speak_lang": "en-US"},
        "options": {"x": {"action": "repeat"}},
        "timeout": 99,
    }
    browser.type_text("#ivr-json", json.dumps(menu))
    browser.click("#ivr-form button[type=submit]")
    errors = browser.wait_for("document.querySelector('#ivr-errors').innerText", 30, "the API's messages")
    assert "options.x" in errors
    assert "timeout" in errors
    menu = {"prompt": {"speak": "Press 1.", "speak_lang": "en-US"}, "options": {"1": {"action": "repeat"}}}
    browser.type_text("#ivr-json", json.dumps(menu))
    browser.click("#ivr-form button[type=submit]")
    browser.wait_for("location.hash === '#ivr/console-menu'", 30, "the saved menu")
    browser.wait_for(
        "Array.from(document.querySelectorAll('#ivr-list button')).some(b => b.innerText === 'console-menu')"
    )
    with sandbox.client() as client:
        assert client.get("/pcall/ivr/console-menu").json()["data"]["menu"]["options"]["1"]["action"] == "repeat"


def test_the_console_says_bridge_flow_and_ignored_events_in_words(browser: Browser, sandbox: RunningSandbox) -> None:
    # the timeline's wording of events a call reaches only through a bridge, a failed flow or a stray request
    browser.goto(f"{sandbox.base_url}/pcall/console")
    browser.wait_for("typeof describe === 'function'", 30, "the console's script")
    entries = [
        {"event": "carrier.ignored", "detail": {"webhook": "gather", "CallSid": "CA9"}},
        {"event": "dial.second_leg", "detail": {"error": "carrier refused"}},
        {"event": "dial.second_leg.status", "detail": {"CallStatus": "busy"}},
        {"event": "dial.not_bridged", "detail": {"reason": "no-answer"}},
        {"event": "dial.not_bridged.error", "detail": {"error": "HTTP 404"}},
        {"event": "flow.error", "detail": {"ErrorCode": "11200"}},
    ]

    said = browser.evaluate(f"{json.dumps(entries)}.map(e => describe(e, {{}}))")
    # a status callback naming another carrier call than the one placed is kept on the timeline, and said so
    placed = {"timeline": [{"event": "carrier.created", "detail": {"sid": "CA1"}}]}
    statuses = [
        {"event": "carrier.status", "detail": {"CallSid": sid, "CallStatus": "busy"}} for sid in ("CA1", "CA9", "")
    ]
    said_of_statuses = browser.evaluate(f"{json.dumps(statuses)}.map(e => describe(e, {json.dumps(placed)}))")

    assert said == [
        "A carrier gather request about another call (ignored)",
        "Could not dial the second number: carrier refused",
        "The second number: the line was busy",
        "Not connected (the second number: no-answer): told the caller and hung up",
        "Could not tell the caller the second number did not answer: HTTP 404",
        "The carrier could not run the call's flow (error 11200); hung up",
    ]
    assert said_of_statuses == [
        "The line was busy",
        "A carrier status callback about another call (ignored)",
        "A carrier status callback about another call (ignored)",
    ]


def test_the_console_works_from_the_keyboard(browser: Browser, sandbox: RunningSandbox) -> None:
    callid = place(sandbox, PERSON)
    sandbox.wait_final(callid)
    browser.goto(f"{sandbox.base_url}/pcall/console")
    browser.wait_for("document.activeElement && document.activeElement.id === 'signin-key'", 30, "focus on the key")
    browser.command("Input.insertText", {"text": sandbox.api_key})
    browser.press("Tab", key_code=9)
    assert browser.evaluate("document.activeElement.id") == "signin-password"
    browser.command("Input.insertText", {"text": sandbox.password})
    browser.press("Enter", key_code=13, text="\r")
    browser.wait_for(f"!!document.querySelector('{row(callid)}')", 30, "the calls table")
    # Tab reaches the call's link; Enter opens it
    for _ in range(60):
        if browser.evaluate(f"document.activeElement === document.querySelector('{row(callid)} a')"):
            break
        browser.press("Tab", key_code=9)
    else:
        pytest.fail("Tab never reached the call's link")
    browser.press("Enter", key_code=13, text="\r")
    browser.wait_for(f"location.hash === '#call/{callid}'", 10, "the call's page")
    browser.wait_for("document.querySelectorAll('#timeline li').length > 0", 30, "the timeline")


def test_a_refresh_leaves_the_keyboard_focus_where_it_was(browser: Browser, sandbox: RunningSandbox) -> None:
    # the calls table and a campaign's buttons are rebuilt every few seconds: a keyboard user's place in them stays
    callid = place(sandbox, PERSON)
    sandbox.wait_final(callid)
    start = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    campaign = {"name": "focus", "defaults": {"answer_play": "http://example.com/a.wav"}, "calls": [{"to": PERSON}]}
    with sandbox.client() as client:
        response = client.post("/pcall/campaigns", json={**campaign, "start_at": start})
    assert response.status_code == 200, response.text
    campaign_id = response.json()["data"]["campaign"]["id"]
    pause = f"#campaigns-list li[data-campaign={json.dumps(campaign_id)}] [data-action=pause]"
    signed_in(browser, sandbox)
    for view, focused in (("calls", f"{row(callid)} a"), ("campaigns", pause)):
        browser.click(f"#nav a[data-view={view}]")
        browser.wait_for(f"!!document.querySelector('{focused}')", 30, f"the {view} view")
        # a first refresh: by then the navigation has moved the focus to the page's main part, as it does
        browser.evaluate(f"(window.seen = document.querySelector('{focused}')) && true")
        browser.wait_for(f"document.querySelector('{focused}') !== window.seen", 15, f"a first refresh of {view}")
        browser.evaluate(f"(window.focusedBefore = document.querySelector('{focused}')).focus() || true")
        browser.wait_for(f"document.querySelector('{focused}') !== window.focusedBefore", 15, f"a refresh of {view}")
        assert browser.evaluate(f"!!document.querySelector('{focused}')"), view
        assert browser.evaluate(f"document.activeElement === document.querySelector('{focused}')"), view


def test_readable_at_phone_width(browser: Browser, sandbox: RunningSandbox, tmp_path: Path) -> None:
    place(sandbox, PERSON)
    browser.resize(390, 844, mobile=True)
    signed_in(browser, sandbox)
    browser.wait_for("document.querySelectorAll('#calls-table tbody tr[data-callid]').length > 0", 30, "calls")
    browser.wait_for("!!document.querySelector('#chart-plot svg')", 30, "the chart")
    # nothing wider than the screen: no sideways scrolling to read a call
    assert browser.evaluate("document.documentElement.scrollWidth") <= 390
    assert browser.evaluate("document.querySelector('#chart-plot svg').getBoundingClientRect().width") <= 390
    screenshot(browser, tmp_path, "console-phone.png")


def test_a_campaign_is_followed_paused_resumed_cancelled_and_its_report_downloaded(
    browser: Browser, sandbox: RunningSandbox, tmp_path: Path
) -> None:
    # given a campaign of three calls that starts tomorrow
    start = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    campaign = {
        "name": "console campaign",
        "defaults": {"answer_play": "http://example.com/a.wav"},
        "calls": [{"to": PERSON}, {"to": MACHINE}, {"to": BUSY}],
        "start_at": start,
    }
    with sandbox.client() as client:
        response = client.post("/pcall/campaigns", json=campaign)
    assert response.status_code == 200, response.text
    campaign_id = response.json()["data"]["campaign"]["id"]
    item = f"#campaigns-list li[data-campaign={json.dumps(campaign_id)}]"
    signed_in(browser, sandbox)
    browser.click("#nav a[data-view=campaigns]")
    browser.wait_for(f"!!document.querySelector('{item}')", 30, "the campaign")
    assert browser.evaluate(f"document.querySelector('{item} progress').max") == 3
    # pause, resume, cancel: each button is there when the campaign's status allows it
    for action, status in (("pause", "PAUSED"), ("resume", "SCHEDULED"), ("cancel", "CANCELED")):
        browser.click(f"{item} button[data-action={action}]")
        browser.wait_for(f"!!document.querySelector('{item}[data-status={status}]')", 30, f"{action} → {status}")
    browser.wait_for(f"document.querySelector('{item} progress').value === 3", 30, "every call ended")
    # the report downloads as a CSV file, one row per call
    browser.browser_command("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    browser.click(f"{item} button[data-action=report]")
    deadline = time.monotonic() + 30
    while not (reports := list(tmp_path.glob("campaign-*.csv"))):
        assert time.monotonic() < deadline, "no report downloaded"
        time.sleep(0.2)
    assert len(reports[0].read_text().strip().splitlines()) == 4  # the header and three calls


def test_a_number_is_added_to_and_removed_from_the_do_not_call_list(browser: Browser, sandbox: RunningSandbox) -> None:
    number = "17134560091"
    signed_in(browser, sandbox)
    browser.click("#nav a[data-view=dnc]")
    browser.wait_for("!document.querySelector('#view-dnc').hidden", 30, "the do-not-call page")
    # a number that is not one is refused with the API's message, naming the field
    browser.type_text("#dnc-number", "not-a-number")
    browser.click("#dnc-form button[type=submit]")
    errors = browser.wait_for("document.querySelector('#dnc-errors').innerText", 30, "the API's message")
    assert "number" in errors
    # a real one is listed, with its reason, and the API then refuses calls to it
    browser.type_text("#dnc-number", number)
    browser.type_text("#dnc-reason", "asked not to be called")
    browser.click("#dnc-form button[type=submit]")
    listed = f"#dnc-table tr[data-number='+{number}']"
    browser.wait_for(f"!!document.querySelector({json.dumps(listed)})", 30, "the number in the list")
    assert browser.evaluate("document.querySelector('#dnc-errors').innerText") == ""
    cells = browser.evaluate(f"Array.from(document.querySelectorAll({json.dumps(listed + ' td')}), td => td.innerText)")
    assert cells[:2] == [f"+{number}", "asked not to be called"]
    assert "will not be called" in browser.evaluate("document.querySelector('#notice').innerText")
    with sandbox.client() as client:
        assert client.get(f"/pcall/suppressions/{number}").status_code == 200
        refused = client.post("/pcall/call", data={"to": number, "answer_play": "http://example.com/a.wav"})
    assert refused.status_code == 400, refused.text
    # Remove takes it off the list, and calls to it are accepted again
    browser.click(f"{listed} button")
    browser.wait_for(f"!document.querySelector({json.dumps(listed)})", 30, "the number to leave the list")
    assert "may be called again" in browser.evaluate("document.querySelector('#notice').innerText")
    with sandbox.client() as client:
        assert client.get(f"/pcall/suppressions/{number}").status_code == 404
    place(sandbox, number)


def test_the_longest_values_wrap_and_every_control_stays_on_screen(browser: Browser, sandbox: RunningSandbox) -> None:
    # given the longest reason and campaign name the API takes, without a space to break them at, and markup
    reason = "<b>x</b>" + "x" * 492
    name = "<i>n</i>" + "N" * 192
    start = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    with sandbox.client() as client:
        assert client.put("/pcall/suppressions/17134560092", json={"reason": reason}).status_code == 200
        created = client.post(
            "/pcall/campaigns",
            json={
                "name": name,
                "defaults": {"answer_play": "http://example.com/a.wav"},
                "calls": [{"to": PERSON}],
                "start_at": start,
            },
        )
    assert created.status_code == 200, created.text
    campaign_id = created.json()["data"]["campaign"]["id"]
    signed_in(browser, sandbox)
    on_screen = "(e => { const r = e.getBoundingClientRect(); return r.left >= 0 && r.right <= window.innerWidth; })"
    wide = "document.documentElement.scrollWidth > window.innerWidth"
    # the do-not-call row: the reason is shown as text, wrapped; its Remove button is on screen, the page not wider
    browser.click("#nav a[data-view=dnc]")
    listed = "#dnc-table tr[data-number='+17134560092']"
    browser.wait_for(f"!!document.querySelector({json.dumps(listed)})", 30, "the number in the list")
    assert browser.evaluate(f"document.querySelector({json.dumps(listed + ' td:nth-child(2)')}).innerText") == reason
    assert browser.evaluate(f"{on_screen}(document.querySelector({json.dumps(listed + ' button')}))")
    assert not browser.evaluate(wide)
    # the campaign: its name wraps inside its card, its buttons on screen
    browser.click("#nav a[data-view=campaigns]")
    item = f"#campaigns-list li[data-campaign={json.dumps(campaign_id)}]"
    browser.wait_for(f"!!document.querySelector('{item}')", 30, "the campaign")
    assert browser.evaluate(f"document.querySelector('{item} h2 .name').innerText") == name
    assert browser.evaluate(f"{on_screen}(document.querySelector('{item} button[data-action=report]'))")
    assert browser.evaluate(f"{on_screen}(document.querySelector('{item} h2 .badge'))")
    assert not browser.evaluate(wide)
    with sandbox.client() as client:
        client.delete(f"/pcall/campaigns/{campaign_id}")
        client.delete("/pcall/suppressions/17134560092")


@pytest.fixture(scope="module")
def real_time() -> Iterator[RunningSandbox]:
    """A sandbox whose simulated calls take real time, so a person can act on a call while it is in progress."""
    running = start_sandbox("--speed", "1", "--schedule-every", "1")
    yield running
    stop_sandbox(running)


def test_a_call_in_progress_is_hung_up_from_its_page(browser: Browser, real_time: RunningSandbox) -> None:
    # given a call answered by a person and hearing a long message (about 40 s at 15 characters a second)
    text = "This message is long enough to be interrupted. " * 13
    speech = {"to": PERSON, "answer_speak": text, "answer_speak_lang": "en-US"}
    with real_time.client() as client:
        callid = client.post("/pcall/call", data=speech).json()["data"]["callid"]
    signed_in(browser, real_time)
    browser.goto(f"{real_time.base_url}/pcall/console#call/{callid}")
    # the page follows the call live until it is in progress, and offers to hang up
    browser.wait_for("document.querySelector('#call-title').innerText.includes('In progress')", 60, "in progress")
    browser.click("#call-hangup")
    browser.wait_for("document.querySelector('#notice').innerText.includes('Hanging up')", 30, "the notice")
    # the call ends at once, completed and billed up to the hang-up; no hang-up button on a finished call
    browser.wait_for("document.querySelector('#call-title').innerText.includes('Completed')", 30, "completed")
    assert browser.evaluate("document.querySelector('#call-hangup')") is None
    with real_time.client() as client:
        call = client.get(f"/pcall/calls/{callid}").json()["data"]["call"]
    assert (call["status"], call["answered_by"]) == ("COMPLETED", "Person")
    assert call["billed_seconds"] < 40
    lines = browser.evaluate("Array.from(document.querySelectorAll('#timeline .what')).map(e => e.innerText)")
    assert "Hung up by you" in lines, lines
