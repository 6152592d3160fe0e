"""Scheduled calls (list, cancel), requested calls (filters, pages, tokens) and one call, per account."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.conftest import ApiClient
from tests.integration.conftest import MINIMAL, Clock, queued, stored_call

UNKNOWN = "0123456789abcdef0123456789a"


def schedule(api: ApiClient, call_date: str, to: str = "12812345670") -> str:
    response = api.post_call({**MINIMAL, "to": to, "call_date": call_date})
    assert response.status == 200, response.body
    return str(response.data["callid"])


def immediate(api: ApiClient, clock: Clock | None = None) -> str:
    response = api.post_call(MINIMAL)
    assert response.status == 200, response.body
    if clock:
        clock.advance(seconds=1)
    return str(response.data["callid"])


def ids(response: Any) -> list[str]:
    assert response.status == 200, response.body
    return [c["callid"] for c in response.data["calls"]]


def walk(api: ApiClient, path: str, query: dict[str, str]) -> list[list[str]]:
    """Every page of a listing, following `next` to the end."""
    pages, token = [], None
    while True:
        response = api.get(path, query={**query, **({"next": token} if token else {})})
        pages.append(ids(response))
        token = response.data["next"]
        if token is None:
            return pages
        assert len(pages) < 50, "pagination does not end"


def retoken(token: str, edit: Any) -> str:
    """Decode a `next` token, let `edit` change it, encode it again the same way."""
    data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    edit(data)
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# --- GET /pcall/scheduled


def test_scheduled_calls_soonest_first(api: ApiClient, clock: Clock) -> None:
    # given: scheduled out of order, plus an immediate call that is not scheduled
    late = schedule(api, "2027-03-01 10:00")
    soon = schedule(api, "2027-01-11 08:00")
    middle = schedule(api, "2027-02-01 00:00")
    immediate(api)

    # when
    response = api.get("/pcall/scheduled")

    # then
    assert ids(response) == [soon, middle, late]
    assert response.data["next"] is None
    assert response.data["code"] == 200
    assert response.data["code_desc"] == ""
    first = response.data["calls"][0]
    assert first["status"] == "SCHEDULED"
    assert first["call_date"] == "2027-01-11T08:00:00.000Z"
    assert first["request"]["to"] == "+12812345670"
    assert "account_id" not in first
    assert "timeline" not in first


def test_scheduled_calls_are_per_account(api: ApiClient, other_api: ApiClient, clock: Clock) -> None:
    mine = schedule(api, "2027-01-11 08:00")
    theirs = schedule(other_api, "2027-01-11 07:00")

    assert ids(api.get("/pcall/scheduled")) == [mine]
    assert ids(other_api.get("/pcall/scheduled")) == [theirs]


def test_scheduled_pages(api: ApiClient, clock: Clock) -> None:
    dates = [f"2027-02-{day:02d} 10:00" for day in (5, 1, 4, 2, 3)]
    by_date = {d: schedule(api, d) for d in dates}

    pages = walk(api, "/pcall/scheduled", {"limit": "2"})

    assert [len(p) for p in pages] == [2, 2, 1]
    assert [c for page in pages for c in page] == [by_date[d] for d in sorted(dates)]


def test_scheduled_pages_across_calls_already_sent(api: ApiClient, aws: Any, clock: Clock) -> None:
    # given: two calls due within 15 minutes, sent to the queue at once (their due-index entries need nothing
    # before their time, and say so after the callid), and two later ones
    sent = [schedule(api, "2027-01-10T12:05:00Z"), schedule(api, "2027-01-10T12:10:00Z")]
    later = [schedule(api, "2027-02-01T10:00:00Z"), schedule(api, "2027-02-02T10:00:00Z")]
    assert stored_call(aws, sent[0])["due_key"] == f"2027-01-10T12:05:00.000Z#{sent[0]}#at"
    assert stored_call(aws, later[0])["due_key"] == f"2027-02-01T10:00:00.000Z#{later[0]}"

    # when: one call a page, so every page's token holds one of the keys
    pages = walk(api, "/pcall/scheduled", {"limit": "1"})

    # then: every token is taken, in time order
    assert [c for page in pages for c in page] == sent + later


# --- DELETE /pcall/scheduled/{callid}


def test_cancel_a_scheduled_call(api: ApiClient, aws: Any, clock: Clock) -> None:
    # given
    callid = schedule(api, "2027-01-11 08:00")
    keep = schedule(api, "2027-01-12 08:00")

    # when
    clock.advance(minutes=5)
    response = api.delete(f"/pcall/scheduled/{callid}")

    # then
    assert response.status == 200, response.body
    assert response.data == {"callid": callid, "status": "CANCELED", "code": 200, "code_desc": ""}
    assert ids(api.get("/pcall/scheduled")) == [keep]
    call = stored_call(aws, callid)
    assert call["status"] == "CANCELED"
    assert call["ended_at"] == "2027-01-10T12:05:30.000Z"
    assert call["timeline"][-1]["event"] == "canceled"
    assert queued(aws) == []


def test_cancel_twice_is_a_conflict(api: ApiClient, clock: Clock) -> None:
    callid = schedule(api, "2027-01-11 08:00")
    api.delete(f"/pcall/scheduled/{callid}")

    again = api.delete(f"/pcall/scheduled/{callid}")

    assert again.status == 409
    assert again.data["code"] == 409
    assert "CANCELED" in again.data["code_desc"]


def test_cancel_an_immediate_call_is_a_conflict(api: ApiClient, aws: Any) -> None:
    callid = immediate(api)

    response = api.delete(f"/pcall/scheduled/{callid}")

    assert response.status == 409
    assert "QUEUED" in response.data["code_desc"]
    assert stored_call(aws, callid)["status"] == "QUEUED"


def test_cancel_an_unknown_call_is_not_found(api: ApiClient) -> None:
    for callid in [UNKNOWN, "x", "a" * 65, "not-alnum"]:
        response = api.delete(f"/pcall/scheduled/{callid}")

        assert response.status == 404, callid
        assert response.data["code"] == 404


def test_one_account_cannot_cancel_anothers_call(api: ApiClient, other_api: ApiClient, aws: Any, clock: Clock) -> None:
    # given
    theirs = schedule(other_api, "2027-01-11 08:00")

    # when
    response = api.delete(f"/pcall/scheduled/{theirs}")

    # then: indistinguishable from an unknown call, and nothing changed
    assert response.status == 404
    assert response.data == {"code": 404, "code_desc": f"call {theirs} not found"}
    assert stored_call(aws, theirs)["status"] == "SCHEDULED"
    assert ids(other_api.get("/pcall/scheduled")) == [theirs]


# --- GET /pcall/calls/{callid}


def test_one_call_with_its_request_status_outcome_and_timeline(api: ApiClient, clock: Clock) -> None:
    callid = schedule(api, "2027-01-11 08:00")

    response = api.get(f"/pcall/calls/{callid}")

    assert response.status == 200
    call = response.data["call"]
    assert call["callid"] == callid
    assert call["status"] == "SCHEDULED"
    assert call["request"] == {
        "to": "+12812345670",
        "answer_play": "http://example.com/file.wav",
        "call_date": "2027-01-11 08:00",
        "from": "+12815550100",
        "record": "NO",
    }
    for outcome in ("answered_by", "billed_seconds", "started_at", "answered_at", "ended_at", "recording_url"):
        assert outcome in call
    assert call["timeline"] == [
        {
            "at": "2027-01-10T12:00:30.000Z",
            "event": "accepted",
            "detail": {"status": "SCHEDULED", "call_date": "2027-01-11T08:00:00.000Z"},
        }
    ]
    assert "account_id" not in call


def test_one_account_cannot_read_anothers_call(api: ApiClient, other_api: ApiClient) -> None:
    theirs = immediate(other_api)

    response = api.get(f"/pcall/calls/{theirs}")

    assert response.status == 404
    assert "call" not in response.data
    assert other_api.get(f"/pcall/calls/{theirs}").status == 200


def test_unknown_call_is_not_found(api: ApiClient) -> None:
    for callid in [UNKNOWN, "ä", "a" * 65, "..", "%00"]:
        assert api.get(f"/pcall/calls/{callid}").status == 404, callid


# --- GET /pcall/calls


def test_calls_newest_first(api: ApiClient, other_api: ApiClient, clock: Clock) -> None:
    first = immediate(api, clock)
    second = schedule(api, "2027-02-01 10:00")
    clock.advance(seconds=1)
    third = immediate(api, clock)
    immediate(other_api, clock)

    response = api.get("/pcall/calls")

    assert ids(response) == [third, second, first]
    assert response.data["next"] is None
    assert [c["status"] for c in response.data["calls"]] == ["QUEUED", "SCHEDULED", "QUEUED"]


def test_filter_by_status_comma_list(api: ApiClient, clock: Clock) -> None:
    queued_id = immediate(api, clock)
    scheduled = schedule(api, "2027-02-01 10:00")
    clock.advance(seconds=1)
    canceled = schedule(api, "2027-02-02 10:00")
    clock.advance(seconds=1)
    api.delete(f"/pcall/scheduled/{canceled}")

    assert ids(api.get("/pcall/calls", query={"status": "QUEUED"})) == [queued_id]
    assert ids(api.get("/pcall/calls", query={"status": "scheduled,CANCELED"})) == [canceled, scheduled]
    assert ids(api.get("/pcall/calls", query={"status": "COMPLETED"})) == []


def test_unknown_status_is_refused(api: ApiClient) -> None:
    response = api.get("/pcall/calls", query={"status": "QUEUED,DONE"})

    assert response.status == 400
    assert response.data["errors"][0]["field"] == "status"


def test_filter_by_date_range(api: ApiClient, clock: Clock) -> None:
    # given: one call a day, 2027-01-10 .. 2027-01-14 (12:00:30 UTC)
    by_day = {}
    for day in range(10, 15):
        by_day[day] = immediate(api)
        clock.advance(days=1)

    # then
    assert ids(api.get("/pcall/calls", query={"since": "2027-01-12"})) == [by_day[14], by_day[13], by_day[12]]
    assert ids(api.get("/pcall/calls", query={"until": "2027-01-11"})) == [by_day[11], by_day[10]]
    assert ids(api.get("/pcall/calls", query={"since": "2027-01-11", "until": "2027-01-12"})) == [
        by_day[12],
        by_day[11],
    ]
    assert ids(
        api.get("/pcall/calls", query={"since": "2027-01-13T12:00:30Z", "until": "2027-01-13T12:00:30.000Z"})
    ) == [by_day[13]]


def test_date_range_whole_days_are_in_the_accounts_zone(api_module: Any, accounts_store: Any, clock: Clock) -> None:
    from tests.conftest import make_account

    tokyo = make_account(accounts_store, caller_id="81312345678", timezone="Asia/Tokyo")
    client = ApiClient(api_module, auth=(tokyo.api_key, tokyo.password))
    callid = immediate(client)  # 2027-01-10 12:00:30 UTC = 2027-01-10 21:00:30 in Tokyo

    assert ids(client.get("/pcall/calls", query={"since": "2027-01-10", "until": "2027-01-10"})) == [callid]
    assert ids(client.get("/pcall/calls", query={"since": "2027-01-11"})) == []


def test_bad_date_ranges_are_refused(api: ApiClient) -> None:
    for query in [
        {"since": "yesterday"},
        {"until": "2027-02-30"},
        {"since": "2027-01-12", "until": "2027-01-11"},
        {"until": "9999-12-31T23:59:59-12:00"},
    ]:
        response = api.get("/pcall/calls", query=query)

        assert response.status == 400, query
        assert response.data["errors"][0]["field"] in {"since", "until"}


def test_walking_all_pages_returns_every_call_exactly_once(api: ApiClient, other_api: ApiClient, clock: Clock) -> None:
    # given: 7 calls of mine (newest last) and some of another account's
    mine = [immediate(api, clock) for _ in range(7)]
    for _ in range(3):
        immediate(other_api, clock)

    # when
    pages = walk(api, "/pcall/calls", {"limit": "3"})

    # then
    assert [len(p) for p in pages[:3]] == [3, 3, 1]
    assert [c for page in pages for c in page] == list(reversed(mine))


def test_walking_filtered_pages(api: ApiClient, clock: Clock) -> None:
    scheduled = []
    for n in range(6):
        immediate(api, clock)
        scheduled.append(schedule(api, f"2027-02-0{n + 1} 10:00"))
        clock.advance(seconds=1)

    pages = walk(api, "/pcall/calls", {"limit": "2", "status": "SCHEDULED"})

    assert [c for page in pages for c in page] == list(reversed(scheduled))
    assert all(len(p) <= 2 for p in pages)


def test_a_token_edited_to_another_account_is_refused(
    api: ApiClient, other_api: ApiClient, other: Any, clock: Clock
) -> None:
    # given: a real token of mine, and another account with calls
    for _ in range(3):
        immediate(api, clock)
        immediate(other_api, clock)
    token = api.get("/pcall/calls", query={"limit": "1"}).data["next"]
    assert token

    # when: the token is decoded and pointed at the other account
    def to_other(data: dict[str, Any]) -> None:
        data["c"]["account_id"] = other.api_key

    response = api.get("/pcall/calls", query={"limit": "1", "next": retoken(token, to_other)})

    # then
    assert response.status == 400
    assert response.data["errors"] == [{"field": "next", "message": "not a token returned by this listing"}]


def test_another_accounts_token_is_refused(api: ApiClient, other_api: ApiClient, clock: Clock) -> None:
    for _ in range(2):
        immediate(other_api, clock)
    theirs = other_api.get("/pcall/calls", query={"limit": "1"}).data["next"]

    assert api.get("/pcall/calls", query={"next": theirs}).status == 400


def test_a_scheduled_token_edited_to_another_account_is_refused(
    api: ApiClient, other_api: ApiClient, other: Any, clock: Clock
) -> None:
    for day in (1, 2):
        schedule(api, f"2027-02-0{day} 10:00")
        schedule(other_api, f"2027-02-0{day} 10:00")
    token = api.get("/pcall/scheduled", query={"limit": "1"}).data["next"]

    def to_other(data: dict[str, Any]) -> None:
        data["c"]["scheduled_account"] = other.api_key

    response = api.get("/pcall/scheduled", query={"next": retoken(token, to_other)})

    assert response.status == 400
    assert response.data["errors"][0]["field"] == "next"


def test_a_token_of_one_listing_is_refused_by_the_other(api: ApiClient, clock: Clock) -> None:
    for day in (1, 2):
        schedule(api, f"2027-02-0{day} 10:00")
    token = api.get("/pcall/calls", query={"limit": "1"}).data["next"]

    assert api.get("/pcall/scheduled", query={"next": token}).status == 400


def test_garbage_tokens_are_refused(api: ApiClient) -> None:
    garbage = ["x", "!!!", base64.urlsafe_b64encode(b"[1]").decode(), base64.urlsafe_b64encode(b"[" * 3000).decode()]
    for token in garbage:
        for path in ("/pcall/calls", "/pcall/scheduled"):
            response = api.get(path, query={"next": token})

            assert response.status == 400, (path, token)
            assert response.data["errors"][0]["field"] == "next"


def test_limit_bounds(api: ApiClient) -> None:
    for path in ("/pcall/calls", "/pcall/scheduled", "/pcall/campaigns", "/pcall/suppressions"):
        for limit in ("0", "101", "-1", "abc", "1.5", ""):
            response = api.get(path, query={"limit": limit})

            assert response.status == 400, (path, limit, response.body)
            assert response.data["code"] == 400
            assert response.data["errors"][0]["field"] == "limit"
        assert api.get(path, query={"limit": "100"}).status == 200


def test_limit_errors_in_the_apis_words(api: ApiClient) -> None:
    cases = {"0": "must be at least 1", "101": "must be at most 100", "abc": "must be a whole number"}
    for limit, message in cases.items():
        response = api.get("/pcall/calls", query={"limit": limit})

        assert response.data["errors"] == [{"field": "limit", "message": message}]


def test_a_query_parameter_given_twice_is_refused_in_the_apis_words(api: ApiClient) -> None:
    # `status` takes a comma-separated list; repeating it (or `limit`) is a 400 saying so, as for a body field
    for query in ([("status", "FAILED"), ("status", "BUSY")], [("limit", "1"), ("limit", "2")]):
        response = api.get("/pcall/calls", query=query)

        assert response.status == 400, response.body
        assert response.data["errors"] == [{"field": query[0][0], "message": "given more than once"}]


# --- query parameters: a misspelt filter is refused, not ignored


def test_unknown_query_parameters_are_refused_by_every_route(api: ApiClient, clock: Clock) -> None:
    callid = schedule(api, "2027-02-01 10:00")
    routes = [
        ("GET", "/pcall/calls"),
        ("GET", "/pcall/scheduled"),
        ("GET", f"/pcall/calls/{callid}"),
        ("DELETE", f"/pcall/scheduled/{callid}"),
        ("GET", "/pcall/ivr"),
        ("GET", "/pcall/ivr/main"),
        ("DELETE", "/pcall/ivr/main"),
    ]
    for method, path in routes:
        response = api.request(method, path, query={"stauts": "FAILED"}, body=None, content_type=None)

        assert response.status == 400, (method, path, response.body)
        assert [e["field"] for e in response.data["errors"]] == ["stauts"], (method, path)
    # and: the call was not cancelled by the refused DELETE
    assert api.get(f"/pcall/calls/{callid}").data["call"]["status"] == "SCHEDULED"


def test_the_refusal_names_the_parameters_the_route_takes(api: ApiClient) -> None:
    response = api.get("/pcall/scheduled", query={"status": "FAILED"})

    assert response.data["errors"] == [
        {"field": "status", "message": "unknown query parameter; this route takes limit, next"}
    ]


def test_unknown_and_invalid_parameters_are_reported_together(api: ApiClient) -> None:
    # given: a misspelt filter and a limit out of bounds (Powertools checks the limit before the route runs)
    response = api.get("/pcall/calls", query={"stauts": "FAILED", "limit": "0"})

    assert response.status == 400
    assert {e["field"] for e in response.data["errors"]} == {"stauts", "limit"}


def test_credentials_come_before_query_parameters(api: ApiClient) -> None:
    for query in ({"stauts": "FAILED"}, {"stauts": "FAILED", "limit": "0"}):
        assert api.get("/pcall/calls", query=query, auth=False).status == 401


def test_every_filter_problem_is_reported_at_once(api: ApiClient) -> None:
    response = api.get(
        "/pcall/calls", query={"status": "DONE", "since": "yesterday", "until": "2027-13-01", "next": "x"}
    )

    assert response.status == 400
    assert [e["field"] for e in response.data["errors"]] == ["status", "since", "until", "next"]


# --- paging tokens: checked for shape before they reach DynamoDB


def test_tokens_with_empty_or_oversized_keys_are_refused(api: ApiClient, clock: Clock) -> None:
    # DynamoDB refuses such keys with a ValidationException: it used to surface as a 503
    for day in (1, 2, 3):
        schedule(api, f"2027-02-0{day} 10:00")
    edits: dict[str, Any] = {
        "empty callid": lambda c, k: c.update(callid=""),
        "oversized callid": lambda c, k: c.update(callid="a" * 2000),
        "empty sort key": lambda c, k: c.update({k: ""}),
        "oversized sort key": lambda c, k: c.update({k: c[k] + "x" * 1100}),
        "sort key of another call": lambda c, k: c.update({k: c[k][:-1] + ("0" if c[k][-1] != "0" else "1")}),
    }
    for path, key in {"/pcall/calls": "created_key", "/pcall/scheduled": "due_key"}.items():
        token = api.get(path, query={"limit": "1"}).data["next"]
        assert token
        for name, edit in edits.items():
            edited = retoken(token, lambda data, edit=edit, key=key: edit(data["c"], key))

            response = api.get(path, query={"limit": "1", "next": edited})

            assert response.status == 400, (path, name, response.body)
            assert response.data["errors"] == [{"field": "next", "message": "not a token returned by this listing"}]
        # and: the token as given still works
        assert api.get(path, query={"limit": "1", "next": token}).status == 200
