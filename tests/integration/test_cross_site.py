"""A browser holding the API's Basic credentials cannot be made to act on the account by a page of another site."""

from __future__ import annotations

import pytest

from tests.conftest import ApiClient

CURL_EXAMPLE = {"to": "12812345670", "answer_play": "http://example.com/file.wav"}
HOST = "abc123.execute-api.us-east-1.amazonaws.com"  # the host of the test events (events/api_create_call.json)


@pytest.mark.parametrize(
    "browser",
    [
        {"sec-fetch-site": "cross-site", "origin": "https://evil.example"},  # any current browser
        {"origin": "https://evil.example"},  # an older one, without Sec-Fetch-Site
    ],
)
def test_a_form_another_site_posts_with_the_browsers_credentials_places_no_call(
    api: ApiClient, browser: dict[str, str]
) -> None:
    # when another site's page posts the vendor's form to POST /pcall/call and the browser adds its Basic credentials
    forged = api.post_call(CURL_EXAMPLE, headers=browser)
    # then it is refused before anything is read or stored, and the account has no call
    assert forged.status == 403
    assert "cross-site request refused" in forged.data["code_desc"]
    assert api.get("/pcall/calls").data["calls"] == []
    # nor can it change anything else, such as the do-not-call list
    assert (
        api.request("POST", "/pcall/suppressions", body="12812345670", content_type="text/csv", headers=browser).status
        == 403
    )
    assert api.get("/pcall/suppressions").data["suppressions"] == []


def test_the_consoles_own_requests_and_api_clients_are_accepted(api: ApiClient) -> None:
    same_origin = api.post_call(CURL_EXAMPLE, headers={"sec-fetch-site": "same-origin", "origin": f"https://{HOST}"})
    curl = api.post_call(CURL_EXAMPLE)
    linked = api.get("/pcall/calls", headers={"sec-fetch-site": "cross-site"})  # a link from another site: a read

    assert (same_origin.status, curl.status, linked.status) == (200, 200, 200)
    assert len(linked.data["calls"]) == 2
