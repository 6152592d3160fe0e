"""The do-not-call list over the API (functions/api/app.py against moto): one number, bulk JSON and CSV, paging,
per account, E.164 normalisation, and a call to a listed number refused with a 400 naming `to`."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from callbridge.adapters.pacing import ListingMark
from callbridge.adapters.suppressions import DynamoSuppressionList
from callbridge.domain.suppressions import Suppression

from tests.conftest import AccountCredentials, ApiClient, ApiResponse
from tests.integration.conftest import Clock

SPELLED = "+1 (281) 234-5670"
PLAIN = "12812345670"
E164 = "+12812345670"


def put(api: ApiClient, number: str, body: object = None) -> ApiResponse:
    text = None if body is None else json.dumps(body)
    return api.request("PUT", f"/pcall/suppressions/{quote(number)}", body=text, content_type="application/json")


def bulk(api: ApiClient, body: str | bytes, content_type: str) -> ApiResponse:
    return api.request("POST", "/pcall/suppressions", body=body, content_type=content_type)


def fields(response: ApiResponse) -> dict[str, str]:
    assert response.status == 400, response.body
    return {e["field"]: e["message"] for e in response.data["errors"]}


def test_put_get_delete_one_number_in_any_spelling(api: ApiClient, clock: Clock) -> None:
    created = put(api, SPELLED, {"reason": "asked by phone"})
    assert created.status == 200, created.body
    assert created.data["created"] is True
    assert created.data["suppression"] == {
        "number": E164,
        "reason": "asked by phone",
        "created_at": "2027-01-10T12:00:30.000Z",
    }
    # the other spelling is the same entry
    again = put(api, PLAIN)
    assert again.status == 200
    assert again.data["created"] is False
    assert again.data["suppression"]["reason"] == ""

    got = api.get(f"/pcall/suppressions/{quote(E164)}")
    assert got.status == 200
    assert got.data["suppression"]["number"] == E164

    deleted = api.delete(f"/pcall/suppressions/{quote(SPELLED)}")
    assert deleted.status == 200
    assert deleted.data["deleted"] == E164
    assert api.get(f"/pcall/suppressions/{PLAIN}").status == 404
    assert api.delete(f"/pcall/suppressions/{PLAIN}").status == 404


def test_a_put_of_a_listed_number_replaces_its_reason_and_keeps_when_and_where_it_was_listed(
    api: ApiClient, aws: Any, account: AccountCredentials, clock: Clock
) -> None:
    # given: a number the person opted out of in a call, an hour ago
    listed = DynamoSuppressionList(aws.refs["SuppressionsTable"], mark=ListingMark(aws.refs["PacingTable"]))
    first = Suppression(E164, "opt-out by keypress", "2027-01-10T11:00:30.000Z", callid="1a22fd480e3132aeb387ef8216e")
    assert listed.add(account.api_key, first) is True

    # when: the list is given a reason for it
    again = put(api, PLAIN, {"reason": "asked by phone"})

    # then: the reason is replaced; when it was listed and the call it was listed in are kept
    assert again.status == 200, again.body
    assert again.data["created"] is False
    expected = {**first.public(), "reason": "asked by phone"}
    assert again.data["suppression"] == expected
    assert api.get(f"/pcall/suppressions/{PLAIN}").data["suppression"] == expected


def test_bad_number_and_bad_body_are_400s_naming_each(api: ApiClient, clock: Clock) -> None:
    problems = fields(put(api, "12ab", {"reason": 5, "why": "x"}))
    assert set(problems) == {"number", "reason", "why"}
    assert fields(api.get("/pcall/suppressions/123"))["number"].startswith("must be an international phone number")


def test_bulk_json_list_and_objects(api: ApiClient, clock: Clock) -> None:
    assert put(api, "17134567890", {"reason": "first"}).status == 200
    body = json.dumps([SPELLED, PLAIN, {"number": "17134567890", "reason": "second"}, 18323456789])
    added = bulk(api, body, "application/json")
    assert added.status == 200, added.body
    assert (added.data["count"], added.data["added"], added.data["existing"]) == (3, 2, 1)
    # a number already listed keeps its entry
    assert api.get("/pcall/suppressions/17134567890").data["suppression"]["reason"] == "first"


def test_bulk_csv_with_reasons_and_a_header(api: ApiClient, clock: Clock) -> None:
    csv = 'number,reason\r\n+1 (281) 234-5670,"asked, twice"\n17134567890\n\n'
    added = bulk(api, csv.encode(), "text/csv; charset=utf-8")
    assert added.status == 200, added.body
    assert added.data["added"] == 2
    assert api.get(f"/pcall/suppressions/{PLAIN}").data["suppression"]["reason"] == "asked, twice"


def test_bulk_errors_name_every_bad_entry_and_nothing_is_added(api: ApiClient, clock: Clock) -> None:
    problems = fields(bulk(api, json.dumps([PLAIN, "nope", {"number": "1"}, True]), "application/json"))
    assert set(problems) == {"numbers[1]", "numbers[2]", "numbers[3]"}
    assert fields(bulk(api, b"12812345670\nabc\n", "text/csv")) == {"line 2": problems["numbers[1]"]}
    assert api.get(f"/pcall/suppressions/{PLAIN}").status == 404
    assert "Content-Type" in fields(bulk(api, b"x", "application/xml"))
    assert "body" in fields(bulk(api, json.dumps({"to": PLAIN}), "application/json"))


def test_a_json_key_given_twice_is_named_with_every_other_problem_and_nothing_is_added(
    api: ApiClient, clock: Clock
) -> None:
    # each last value is valid: json.loads alone would have listed the numbers with it
    one = '{"reason": "asked by phone", "reason": "moved away"}'
    body = '[{"number": "1", "number": "12812345670"}, {"number": "17134567890", "reason": "a", "reason": "b"}, "nope"]'
    text = api.request("PUT", f"/pcall/suppressions/{PLAIN}", body=one, content_type="application/json")

    assert fields(text) == {"reason": "given more than once"}
    assert fields(bulk(api, body, "application/json")) == {
        "numbers[0].number": "given more than once",
        "numbers[1].reason": "given more than once",
        "numbers[2]": fields(bulk(api, '["nope"]', "application/json"))["numbers[0]"],
    }
    assert api.get(f"/pcall/suppressions/{PLAIN}").status == 404
    assert api.get("/pcall/suppressions/17134567890").status == 404


def test_bulk_takes_ten_thousand_and_refuses_more(api: ApiClient, clock: Clock) -> None:
    numbers = [f"1281{n:07d}" for n in range(10_000)]
    added = bulk(api, "\n".join(numbers).encode(), "text/csv")
    assert added.status == 200, added.body
    assert added.data["added"] == 10_000
    assert api.get("/pcall/suppressions/12810009999").status == 200
    too_many = bulk(api, json.dumps([*numbers, "17134567890"]), "application/json")
    assert fields(too_many) == {"body": "must name at most 10000 numbers per request"}


def test_list_is_paged_and_per_account(api: ApiClient, other_api: ApiClient, clock: Clock) -> None:
    numbers = [f"+1713456{n:04d}" for n in range(7)]
    assert bulk(api, json.dumps(numbers), "application/json").status == 200
    assert put(other_api, "18323456789").status == 200
    seen: list[str] = []
    token = None
    while True:
        query = {"limit": "3"} | ({"next": token} if token else {})
        page = api.get("/pcall/suppressions", query=query)
        assert page.status == 200, page.body
        seen += [e["number"] for e in page.data["suppressions"]]
        token = page.data["next"]
        if not token:
            break
    assert seen == numbers  # number order, nothing of the other account
    assert other_api.get(f"/pcall/suppressions/{numbers[0][1:]}").status == 404
    first = api.get("/pcall/suppressions", query={"limit": "3"}).data["next"]
    assert other_api.get("/pcall/suppressions", query={"next": first}).status == 400


def test_a_call_to_a_listed_number_is_refused(api: ApiClient, clock: Clock) -> None:
    assert put(api, SPELLED).status == 200
    refused = api.post_call({"to": PLAIN, "answer_play": "https://example.com/a.wav"})
    assert fields(refused) == {"to": "is on your do-not-call list"}
    assert api.post_call({"to": "17134567890", "answer_play": "https://example.com/a.wav"}).status == 200
