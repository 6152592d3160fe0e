"""A 400 reports every problem of the request at once, whichever layer finds it: a query parameter the route
does not take or one Powertools checks before the route runs (`limit`, `hours`), the route's own filters and
paging token, a path parameter, and the body. Earlier, the first layer to find a problem answered alone, so a
client fixing one 400 met the next."""

from __future__ import annotations

import json

from tests.conftest import ApiClient, ApiResponse
from tests.integration.conftest import Clock

JSON = "application/json"
BAD_MENU = json.dumps({"prompt": {"speak": "Hello"}, "options": {"x": {"action": "repeat"}}, "timeout": 0})


def fields(response: ApiResponse) -> list[str]:
    assert response.status == 400, response.body
    assert response.data["code"] == 400
    return [e["field"] for e in response.data["errors"]]


def test_a_listings_own_problems_come_with_those_of_the_parameters_checked_before_it(api: ApiClient) -> None:
    cases = {
        "/pcall/calls": {"limit": "0", "status": "DONE", "since": "yesterday", "next": "x"},
        "/pcall/scheduled": {"limit": "abc", "next": "x"},
        "/pcall/campaigns": {"limit": "101", "next": "!"},
        "/pcall/suppressions": {"limit": "0", "next": "x"},
    }
    for path, query in cases.items():
        response = api.get(path, query=query)

        assert sorted(fields(response)) == sorted(query), (path, response.body)


def test_a_listings_own_problems_come_with_its_unknown_parameters(api: ApiClient) -> None:
    cases = {
        "/pcall/calls": {"stauts": "FAILED", "status": "DONE", "until": "2027-13-01"},
        "/pcall/scheduled": {"status": "FAILED", "next": "x"},
        "/pcall/campaigns": {"state": "RUNNING", "next": "!"},
        "/pcall/suppressions": {"number": "12812345670", "next": "x"},
        "/pcall/stats": {"days": "1", "hours": "0"},
    }
    for path, query in cases.items():
        response = api.get(path, query=query)

        assert sorted(fields(response)) == sorted(query), (path, response.body)


def test_a_menus_body_problems_come_with_its_code_and_query_problems(api: ApiClient) -> None:
    bad_code = api.request("PUT", "/pcall/ivr/no%20spaces", body=BAD_MENU, content_type=JSON)
    unknown = api.request("PUT", "/pcall/ivr/main", query={"lang": "en"}, body=BAD_MENU, content_type=JSON)

    assert fields(bad_code) == ["code", "prompt.speak_lang", "options.x", "timeout"]
    assert fields(unknown) == ["lang", "prompt.speak_lang", "options.x", "timeout"]
    assert api.get("/pcall/ivr").data["menus"] == []


def test_a_do_not_call_bodys_problems_come_with_the_query_problems(api: ApiClient, clock: Clock) -> None:
    one, bulk = "/pcall/suppressions/12812345670", "/pcall/suppressions"
    put = api.request("PUT", one, query={"reason": "x"}, body='{"reason": 5}', content_type=JSON)
    post = api.request("POST", bulk, query={"dry_run": "1"}, body='["12812345671", 5]', content_type=JSON)

    assert fields(put) == ["reason", "reason"]  # the query parameter, then the body's field
    for method in ("GET", "DELETE"):
        path = api.request(method, "/pcall/suppressions/not-a-number", query={"x": "1"}, body=None, content_type=None)
        assert fields(path) == ["x", "number"], method
    assert fields(post) == ["dry_run", "numbers[1]"]
    assert api.get("/pcall/suppressions").data["suppressions"] == []


def test_a_json_campaigns_problems_come_with_the_query_parameters_it_does_not_take(api: ApiClient) -> None:
    # given: a JSON campaign's field sent in the query string (it belongs in the body), and a bad call
    body = json.dumps({"name": "outage", "calls": [{"to": "12812345670", "answer_play": "ftp://x"}]})

    response = api.request("POST", "/pcall/campaigns", query={"calls_per_second": "1"}, body=body, content_type=JSON)

    assert fields(response) == ["calls_per_second", "calls.0.answer_play"]
    assert response.data["errors"][0]["message"] == "belongs in the JSON body"


def test_a_query_parameter_beside_a_json_campaign_is_refused_not_replayed(api: ApiClient) -> None:
    body = json.dumps({"name": "outage", "calls": [{"to": "12812345670", "answer_play": "https://example.com/a.wav"}]})
    key = {"Idempotency-Key": "outage-1"}
    first = api.request("POST", "/pcall/campaigns", body=body, content_type=JSON, headers=key)
    assert first.status == 200, first.body

    again = api.request("POST", "/pcall/campaigns", query={"name": "x"}, body=body, content_type=JSON, headers=key)

    assert fields(again) == ["name"]


def test_a_campaigns_bad_idempotency_key_comes_with_its_other_problems(api: ApiClient) -> None:
    body = json.dumps({"name": "", "calls": [{"to": "12812345670", "answer_play": "ftp://x"}]})
    bad_key = {"Idempotency-Key": "x" * 256}

    response = api.request("POST", "/pcall/campaigns", body=body, content_type=JSON, headers=bad_key)
    unreadable = api.request("POST", "/pcall/campaigns", body="{}", content_type="text/plain", headers=bad_key)

    assert fields(response) == ["Idempotency-Key", "name", "calls.0.answer_play"]
    assert fields(unreadable) == ["Idempotency-Key", "Content-Type"]
