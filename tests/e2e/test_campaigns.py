"""Campaigns in the sandbox, driven over HTTP like a user: 20 calls of mixed outcomes to FINISHED, and each call's own
rules (the do-not-call list, retries, call_date) applied to a campaign's calls, a dated one listed as scheduled."""

from __future__ import annotations

import csv
import io
import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.e2e.conftest import RunningSandbox

# The carrier simulator's outcome by the last digit of `to` (README, "The sandbox").
OUTCOMES = {
    "1": ("COMPLETED", "Machine"),
    "2": ("BUSY", ""),
    "3": ("NO_ANSWER", ""),
    "4": ("FAILED", ""),
}


def wait_campaign(sandbox: RunningSandbox, campaign_id: str, status: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with sandbox.client() as client:
        while time.monotonic() < deadline:
            campaign: dict[str, Any] = client.get(f"/pcall/campaigns/{campaign_id}").json()["data"]["campaign"]
            if campaign["status"] == status:
                return campaign
            time.sleep(0.5)
    raise AssertionError(f"campaign {campaign_id} not {status} after {timeout}s: {campaign}")


def test_a_20_call_campaign_of_mixed_outcomes_finishes_with_exact_counts_and_report(
    sandbox: RunningSandbox, receiver: Any
) -> None:
    numbers = [f"1281555{n:04d}" for n in range(20)]  # last digits 0-9, twice
    body = {
        "name": "e2e mixed",
        "defaults": {
            "answer_play": "http://example.com/a.wav",
            "answermachine_play": "http://example.com/b.wav",
            "callback_url": receiver.url,  # each call's outcome callback
        },
        "calls": [{"to": to, "metadata": {"row": str(n)}} for n, to in enumerate(numbers)],
        "callback_url": receiver.url,
    }
    with sandbox.client() as client:
        response = client.post("/pcall/campaigns", json=body)
        assert response.status_code == 200, response.text
        campaign_id = response.json()["data"]["campaign"]["id"]

        done = wait_campaign(sandbox, campaign_id, "FINISHED")
        report = client.get(f"/pcall/campaigns/{campaign_id}/report.csv")
        listed = client.get("/pcall/calls", params={"campaign": campaign_id, "limit": 100}).json()["data"]["calls"]

    expected = Counter(OUTCOMES.get(to[-1], ("COMPLETED", "Person")) for to in numbers)
    statuses = Counter[str]()
    answered = Counter[str]()
    for (status, by), n in expected.items():
        statuses[status] += n
        if by:
            answered[by] += n
    assert {k: v for k, v in done["counts"].items() if v} == dict(statuses)
    assert done["answered"] == {"Person": answered["Person"], "Machine": answered["Machine"]}
    assert done["total"] == 20
    assert done["started_at"]
    assert done["finished_at"]
    rows = list(csv.DictReader(io.StringIO(report.text)))
    assert len(rows) == 20
    assert [r["metadata.row"] for r in rows] == [str(n) for n in range(20)]
    for row, to in zip(rows, numbers, strict=True):
        status, by = OUTCOMES.get(to[-1], ("COMPLETED", "Person"))
        assert row["to"] == f"+{to}"
        assert (row["status"], row["answered_by"]) == (status, by)
        assert row["attempts"] == "1"
    assert sum(int(r["billed_seconds"]) for r in rows) == done["billed_seconds"]
    assert done["billed_seconds"] > 0
    assert {c["campaign"] for c in listed} == {campaign_id}
    assert len(listed) == 20
    notified = receiver.wait_for(lambda r: "campaign.finished" in r["body"])
    assert json.loads(notified["body"])["campaign"]["status"] == "FINISHED"
    deadline = time.monotonic() + 60
    while len(outcomes := [r["form"] for r in receiver.requests if "callid" in r["form"]]) < 20:
        assert time.monotonic() < deadline, f"{len(outcomes)} outcome callbacks of 20"
        time.sleep(0.2)
    assert {o["callid"] for o in outcomes} == {c["callid"] for c in listed}
    assert {o["campaign"] for o in outcomes} == {campaign_id}
    time.sleep(2)  # a second notification would have come by now
    assert sum(1 for r in receiver.requests if '"campaign.finished"' in r["body"]) == 1


def listed_as_scheduled(client: Any, campaign_id: str, timeout: float = 20) -> list[dict[str, Any]]:
    """The campaign's calls GET /pcall/scheduled lists, once it lists any (its fan-out stores them shortly)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        calls = client.get("/pcall/scheduled", params={"limit": 100}).json()["data"]["calls"]
        if found := [c for c in calls if c["campaign"] == campaign_id]:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no call of campaign {campaign_id} listed as scheduled after {timeout}s")


def test_each_campaign_call_keeps_its_own_rules_do_not_call_retries_and_call_date(
    sandbox: RunningSandbox, receiver: Any
) -> None:
    # ...32: busy, retried once 30 s later; ...30: a person, not before its call_date; ...31 is on the list
    call_date = (datetime.now(UTC) + timedelta(seconds=40)).replace(microsecond=0)
    body = {
        "name": "e2e rules",
        "defaults": {"answer_play": "http://example.com/a.wav"},
        "calls": [
            {"to": "12815550032", "retry_attempts": "1", "retry_interval": "30", "retry_on": "busy"},
            {"to": "12815550030", "call_date": call_date.isoformat()},
            {"to": "12815550031"},
        ],
    }
    with sandbox.client() as client:
        assert client.put("/pcall/suppressions/12815550031").status_code == 200
        response = client.post("/pcall/campaigns", json=body)
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        scheduled = listed_as_scheduled(client, data["campaign"]["id"])  # well before its call_date, 40 s ahead
        done = wait_campaign(sandbox, data["campaign"]["id"], "FINISHED")
        listed = client.get("/pcall/calls", params={"campaign": done["id"], "limit": 10}).json()["data"]["calls"]
        found = [client.get(f"/pcall/calls/{c['callid']}").json()["data"]["call"] for c in listed]
    calls = {c["request"]["to"]: c for c in found}

    assert [s["field"] for s in data["suppressed"]] == ["calls.2.to"]
    assert {k: v for k, v in done["counts"].items() if v} == {"BUSY": 1, "COMPLETED": 1, "CANCELED": 1}
    busy, dated, suppressed = calls["+12815550032"], calls["+12815550030"], calls["+12815550031"]
    assert [a["status"] for a in busy["attempts"]] == ["BUSY", "BUSY"]
    gap = datetime.fromisoformat(busy["attempts"][1]["started_at"]) - datetime.fromisoformat(
        busy["attempts"][0]["ended_at"]
    )
    assert gap >= timedelta(seconds=30)
    assert datetime.fromisoformat(dated["started_at"]) >= call_date  # never rang before its call_date
    assert dated["call_date"] == call_date.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    # listed before its release, as a call of the campaign that waits for its time; the undated ones are not (the
    # busy one may be, waiting for its retry)
    assert [(c["callid"], c["status"], c["call_date"]) for c in scheduled if c["status"] == "SCHEDULED"] == [
        (dated["callid"], "SCHEDULED", dated["call_date"])
    ]
    assert {c["callid"] for c in scheduled} <= {dated["callid"], busy["callid"]}
    assert (suppressed["status"], suppressed["error_code"], suppressed["attempts"]) == ("CANCELED", "suppressed", [])


def test_a_bad_campaign_names_each_calls_problems_at_once_and_a_wrong_default_once(sandbox: RunningSandbox) -> None:
    # over HTTP, as a user sends them: a CSV whose query gives a wrong default voice (line 3 gives its own, valid),
    # and whose line 4 has a bad record and a call_date in the past; a JSON body with the same wrong default
    csv_body = (
        "to,answer_tts_voice,record,call_date\n"
        "12815550100,,,\n"
        "12815550101,Joanna,,\n"
        "12815550102,,MAYBE,2020-01-01 10:00\n"
    )
    query = {"name": "e2e bad", "answer_tts": "Hello", "answer_tts_voice": "Bogus"}
    calls = [{"to": "12815550100"}, {"to": "12815550101", "answer_tts_voice": "Joanna"}, {"to": "12815550102"}]
    body = {"name": "e2e bad", "defaults": {"answer_tts": "Hello", "answer_tts_voice": "Bogus"}, "calls": calls}
    with sandbox.client() as client:
        as_csv = client.post("/pcall/campaigns", params=query, content=csv_body, headers={"Content-Type": "text/csv"})
        as_json = client.post("/pcall/campaigns", json=body)
        listed = client.get("/pcall/campaigns").json()["data"]["campaigns"]

    assert as_csv.status_code == 400, as_csv.text
    assert [e["field"] for e in as_csv.json()["data"]["errors"]] == [
        "answer_tts_voice",
        "calls.4.record",
        "calls.4.call_date",
    ]
    assert as_json.status_code == 400, as_json.text
    assert [e["field"] for e in as_json.json()["data"]["errors"]] == ["defaults.answer_tts_voice"]
    assert [c["name"] for c in listed if c["name"] == "e2e bad"] == []
