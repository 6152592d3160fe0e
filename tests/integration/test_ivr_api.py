"""IVR menus over the API (functions/api/app.py against moto): create, read, list, replace, delete; every 400
names its field; accounts see only their own menus; answer_ivr must name one; accepted calls keep their copy.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from callbridge.domain.ivr import parse_menu

from tests.conftest import AccountCredentials, ApiClient, ApiResponse
from tests.integration.conftest import START, Clock, local, stored_call

MAIN: dict[str, Any] = {
    "prompt": {"speak": "Press 1 for sales, 2 to talk to us.", "speak_lang": "en-US"},
    "options": {
        "1": {"action": "menu", "menu": "sales"},
        "2": {"action": "dial", "number": "18323456789"},
        "#": {"action": "repeat"},
    },
    "timeout": 6,
    "retries": 1,
    "invalid": {"speak": "That is not an option.", "speak_lang": "en-US"},
}
SALES: dict[str, Any] = {
    "prompt": {"tts": "Sales. Press 1 to hear our hours.", "tts_voice": "en-US_AllisonVoice"},
    "options": {
        "1": {"action": "say", "play": "https://example.com/hours.wav"},
        "0": {"action": "menu", "menu": "main"},
    },
}
CALL = {"to": "17134567890", "answer_ivr": "main"}


def put(
    api: ApiClient, code: str, menu: Any, content_type: str | None = "application/json", **kwargs: Any
) -> ApiResponse:
    body = menu if isinstance(menu, str | bytes) else json.dumps(menu)
    return api.request("PUT", f"/pcall/ivr/{code}", body=body, content_type=content_type, **kwargs)


def create_both(api: ApiClient) -> None:
    # sales first: main leads to it, so it must exist (sales leading back to main is fine once main exists... it
    # does not yet, so sales is created without that option and completed afterwards)
    assert put(api, "sales", {**SALES, "options": {"1": SALES["options"]["1"]}}).status == 200
    assert put(api, "main", MAIN).status == 200
    assert put(api, "sales", SALES).status == 200


def assert_invalid(response: ApiResponse, field: str, rule: str) -> None:
    assert response.status == 400, response.body
    data = response.data
    assert data["code"] == 400
    assert any(e["field"] == field and rule in e["message"] for e in data["errors"]), data["errors"]
    assert field in data["code_desc"]


# --- create, read, list, replace, delete


def test_create_read_list_replace_delete(api: ApiClient, clock: Clock) -> None:
    # create
    created = put(api, "sales", SALES | {"options": {"1": SALES["options"]["1"]}})
    assert created.status == 200, created.body
    assert created.data["code"] == 200
    assert created.data["code_desc"] == ""
    assert created.data["created"] is True
    menu = created.data["menu"]
    assert menu["code"] == "sales"
    assert menu["prompt"] == {"tts": "Sales. Press 1 to hear our hours.", "tts_voice": "Joanna"}  # normalized
    assert menu["options"] == {"1": {"action": "say", "play": "https://example.com/hours.wav"}}
    assert (menu["timeout"], menu["retries"]) == (5, 2)  # defaults
    assert menu["created_at"] == menu["updated_at"] == "2027-01-10T12:00:30.000Z"

    # read
    got = api.get("/pcall/ivr/sales")
    assert got.status == 200
    assert got.data["menu"] == menu

    # list, by code
    clock.advance(minutes=1)
    assert put(api, "main", MAIN).status == 200
    listed = api.get("/pcall/ivr")
    assert listed.status == 200
    assert [m["code"] for m in listed.data["menus"]] == ["main", "sales"]

    # replace: created_at stays, updated_at moves
    clock.advance(minutes=1)
    replaced = put(api, "sales", SALES)
    assert replaced.status == 200
    assert replaced.data["created"] is False
    assert replaced.data["menu"]["created_at"] == "2027-01-10T12:00:30.000Z"
    assert replaced.data["menu"]["updated_at"] == "2027-01-10T12:02:30.000Z"
    assert api.get("/pcall/ivr/sales").data["menu"]["options"]["0"] == {"action": "menu", "menu": "main"}

    # delete: not while another menu leads to it (sales leads back to main, main to sales)
    assert api.delete("/pcall/ivr/main").status == 409
    assert put(api, "sales", SALES | {"options": {"1": SALES["options"]["1"]}}).status == 200
    deleted = api.delete("/pcall/ivr/main")
    assert deleted.status == 200
    assert deleted.data == {"deleted": "main", "code": 200, "code_desc": ""}
    assert api.get("/pcall/ivr/main").status == 404
    assert api.delete("/pcall/ivr/main").status == 404
    assert [m["code"] for m in api.get("/pcall/ivr").data["menus"]] == ["sales"]


def test_an_unknown_menu_is_404_in_the_envelope(api: ApiClient) -> None:
    for response in (api.get("/pcall/ivr/nope"), api.delete("/pcall/ivr/nope"), api.get("/pcall/ivr/bad%20code")):
        assert response.status == 404
        assert response.data["code"] == 404
        assert "not found" in response.data["code_desc"]


def test_an_empty_list(api: ApiClient) -> None:
    assert api.get("/pcall/ivr").data == {"menus": [], "code": 200, "code_desc": ""}


def test_a_menu_may_lead_to_itself(api: ApiClient) -> None:
    response = put(api, "loop", {**MAIN, "options": {"1": {"action": "menu", "menu": "loop"}}})

    assert response.status == 200, response.body


def test_a_json_body_is_read_whatever_its_content_type(api: ApiClient) -> None:
    # `curl --data '{...}'` sends application/x-www-form-urlencoded; the body is still the menu
    menu = {**MAIN, "options": {"9": {"action": "repeat"}}}
    assert put(api, "m1", menu, content_type="application/x-www-form-urlencoded").status == 200
    assert put(api, "m2", json.dumps(menu).encode()).status == 200  # base64-encoded by API Gateway
    assert put(api, "m3", menu, content_type=None).status == 200


# --- 400s name the field


@pytest.mark.parametrize(
    ("menu", "field", "rule"),
    [
        ({**MAIN, "options": {"1": {"action": "menu", "menu": "nowhere"}}}, "options.1.menu", "unknown menu 'nowhere'"),
        ({**MAIN, "options": {"x": {"action": "repeat"}}}, "options.x", "0-9, * or #"),
        ({**MAIN, "options": {"10": {"action": "repeat"}}}, "options.10", "0-9, * or #"),
        ({**MAIN, "options": {"1": {"action": "dial", "number": "555"}}}, "options.1.number", "phone number"),
        ({**MAIN, "options": {"1": {"action": "fly"}}}, "options.1.action", "one of say, dial, menu, repeat"),
        ({**MAIN, "prompt": {"speak": "&" * 900, "speak_lang": "en-US"}}, "prompt", "the carrier's limit is 4000"),
        ({**MAIN, "invalid": {"speak": "<" * 900, "speak_lang": "en-US"}}, "invalid", "the carrier's limit is 4000"),
        ({**MAIN, "prompt": {"speak": "Hi"}}, "prompt.speak_lang", "required with speak"),
        ({**MAIN, "timeout": 0}, "timeout", "must be at least 1"),
        ({**MAIN, "retries": 9}, "retries", "must be at most 5"),
        ({**MAIN, "retries": True}, "retries", "must be a whole number"),
        ({**MAIN, "timeout": "soon"}, "timeout", "must be a whole number"),
        ({**MAIN, "options": {}}, "options", "1-12 options"),
        ({**MAIN, "extra": 1}, "extra", "unknown field"),
        ("not json", "body", "JSON object"),
        ("[1, 2]", "body", "JSON object"),
    ],
)
def test_invalid_menus_are_400_naming_the_field(api: ApiClient, menu: Any, field: str, rule: str) -> None:
    response = put(api, "main", menu)

    assert_invalid(response, field, rule)
    assert api.get("/pcall/ivr/main").status == 404, "nothing is stored"


def test_a_key_given_twice_is_400_naming_it_and_nothing_is_stored(api: ApiClient) -> None:
    # each last value is valid: json.loads alone would have stored the menu with it
    body = json.dumps(MAIN | {"options": {"#": {"action": "repeat"}}})
    body = body.replace('"prompt": {', '"prompt": {"play": "https://example.com/a.wav"}, "prompt": {', 1)
    body = body.replace('{"action": "repeat"}', '{"action": "repeat", "action": "repeat"}', 1)
    response = put(api, "main", body)

    assert_invalid(response, "prompt", "given more than once")
    assert_invalid(response, "options.#.action", "given more than once")
    assert len(response.data["errors"]) == 2
    assert api.get("/pcall/ivr/main").status == 404


def test_a_bad_code_in_the_path_is_400(api: ApiClient) -> None:
    assert_invalid(put(api, "a" * 65, MAIN), "code", "1-64 letters")
    assert_invalid(put(api, "bad.code", MAIN), "code", "1-64 letters")


def test_an_account_keeps_at_most_max_menus(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from callbridge.logic import ivr

    monkeypatch.setattr(ivr, "MAX_MENUS", 2)
    simple = {**MAIN, "options": {"1": {"action": "repeat"}}}
    assert put(api, "a", simple).status == 200
    assert put(api, "b", simple).status == 200

    assert_invalid(put(api, "c", simple), "code", "at most 2 menus")
    assert put(api, "b", simple).status == 200, "replacing one is fine"


def test_menus_leading_to_too_many_menus_are_refused(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from callbridge.logic import ivr

    monkeypatch.setattr(ivr, "MAX_LINKED_MENUS", 2)
    simple = {**MAIN, "options": {"1": {"action": "repeat"}}}
    assert put(api, "c", simple).status == 200
    assert put(api, "b", {**MAIN, "options": {"1": {"action": "menu", "menu": "c"}}}).status == 200

    response = put(api, "a", {**MAIN, "options": {"1": {"action": "menu", "menu": "b"}}})
    assert_invalid(response, "options", "leads to 3 menus")


# --- credentials and accounts


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/pcall/ivr/main"), ("GET", "/pcall/ivr/main"), ("GET", "/pcall/ivr"), ("DELETE", "/pcall/ivr/main")],
)
def test_every_route_needs_credentials(api: ApiClient, account: AccountCredentials, method: str, path: str) -> None:
    for auth in (False, (account.api_key, "wrong-password")):
        response = api.request(method, path, body=json.dumps(MAIN), content_type="application/json", auth=auth)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Basic ")
        assert response.data["code"] == 401


def test_an_invalid_body_without_credentials_is_still_401(api: ApiClient) -> None:
    assert put(api, "main", "not json", auth=False).status == 401


def test_accounts_see_only_their_own_menus(api: ApiClient, other_api: ApiClient) -> None:
    create_both(api)
    theirs = {**MAIN, "options": {"1": {"action": "repeat"}}}
    assert put(other_api, "theirs", theirs).status == 200

    assert other_api.get("/pcall/ivr/main").status == 404
    assert other_api.delete("/pcall/ivr/main").status == 404
    assert [m["code"] for m in other_api.get("/pcall/ivr").data["menus"]] == ["theirs"]
    assert [m["code"] for m in api.get("/pcall/ivr").data["menus"]] == ["main", "sales"]
    # another account's menu is no target either
    assert_invalid(
        put(api, "x", {**MAIN, "options": {"1": {"action": "menu", "menu": "theirs"}}}), "options.1.menu", ""
    )
    # nor an answer_ivr
    assert_invalid(api.post_call({**CALL, "answer_ivr": "theirs"}), "answer_ivr", "unknown IVR menu code 'theirs'")
    # the same code in two accounts is two menus
    assert put(other_api, "main", theirs).status == 200
    assert (
        api.get("/pcall/ivr/main").data["menu"]["options"]
        == parse_menu(MAIN).model_dump(mode="json", exclude_none=True)["options"]
    )


# --- answer_ivr


def test_an_unknown_answer_ivr_is_400(api: ApiClient) -> None:
    assert_invalid(api.post_call(CALL), "answer_ivr", "unknown IVR menu code 'main' for this account")


def test_a_known_answer_ivr_is_accepted_and_the_call_keeps_the_menus_it_can_reach(api: ApiClient, aws: Any) -> None:
    create_both(api)
    other = {**MAIN, "options": {"1": {"action": "repeat"}}}
    assert put(api, "unrelated", other).status == 200

    response = api.post_call(CALL)

    assert response.status == 200, response.body
    assert response.data["answer_ivr"] == "main"
    item = stored_call(aws, response.data["callid"])
    assert set(item["ivr_menus"]) == {"main", "sales"}
    assert parse_menu(item["ivr_menus"]["sales"]) == parse_menu(SALES)
    # the copy is the service's business: the API shows the request, not the menus
    shown = api.get(f"/pcall/calls/{response.data['callid']}").data["call"]
    assert shown["request"]["answer_ivr"] == "main"
    assert "ivr_menus" not in shown
    assert shown["digits"] == ""


def test_answer_ivr_and_a_bad_call_date_are_reported_together(api: ApiClient, clock: Clock) -> None:
    response = api.post_call({**CALL, "call_date": "2020-01-01 10:00"})

    assert response.status == 400
    assert {e["field"] for e in response.data["errors"]} == {"call_date", "answer_ivr"}


# --- deleting a menu calls still use: allowed; accepted calls keep their copy (documented choice)


def test_deleting_a_menu_another_menu_leads_to_is_409(api: ApiClient) -> None:
    create_both(api)

    response = api.delete("/pcall/ivr/sales")

    assert response.status == 409
    assert response.data["code"] == 409
    assert "menu(s) main" in response.data["code_desc"]
    assert api.get("/pcall/ivr/sales").status == 200


def test_a_scheduled_call_keeps_its_menus_when_they_are_edited_or_deleted(
    api: ApiClient, aws: Any, clock: Clock
) -> None:
    # given a call scheduled for tomorrow with the two-level menu
    create_both(api)
    response = api.post_call({**CALL, "call_date": local(START + timedelta(days=1))})
    assert response.status == 200, response.body
    callid = response.data["callid"]
    before = stored_call(aws, callid)["ivr_menus"]
    assert stored_call(aws, callid)["status"] == "SCHEDULED"

    # when the menus are edited (sales no longer leads back to main), then deleted
    changed = {"prompt": {"speak": "Changed.", "speak_lang": "en-US"}, "options": {"1": {"action": "repeat"}}}
    assert put(api, "sales", changed).status == 200
    assert api.delete("/pcall/ivr/main").status == 200
    assert api.delete("/pcall/ivr/sales").status == 200

    # then the scheduled call still has the menus it was accepted with
    after = stored_call(aws, callid)
    assert after["status"] == "SCHEDULED"
    assert after["ivr_menus"] == before
    assert parse_menu(after["ivr_menus"]["sales"]) == parse_menu(SALES)
    # and a new call with the deleted code is refused
    assert_invalid(api.post_call(CALL), "answer_ivr", "unknown IVR menu code 'main'")


def test_a_call_whose_submenu_is_gone_is_refused(api: ApiClient, aws: Any) -> None:
    # given main leading to sales, and sales removed behind the API's back (a race with a delete)
    create_both(api)
    from callbridge.adapters.dynamodb.ivr_menus import DynamoIvrMenus

    store = DynamoIvrMenus(aws.refs["AccountsTable"])
    account_id = api.auth[0] if api.auth else ""
    assert store.delete_ivr_menu(account_id, "sales")

    assert_invalid(api.post_call(CALL), "answer_ivr", "menu 'main' leads to menu 'sales', which does not exist")
