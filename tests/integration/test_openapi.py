"""The OpenAPI 3.1 document: committed in docs/, served at /pcall/openapi.json, shown at /pcall/docs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from callbridge import openapi, openapi_campaigns, openapi_models
from callbridge.domain.errors import ServiceUnavailable

from functions.api.app import app, openapi_document
from sandbox.template import http_routes
from tests.conftest import ApiClient
from tests.unit.test_requests import EVERY_PARAMETER

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def rendered() -> str:
    """docs/openapi.json exactly as `make openapi` writes it."""
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


def test_committed_document_is_up_to_date() -> None:
    assert COMMITTED.exists(), "docs/openapi.json is missing: run `make openapi` and commit it"
    assert COMMITTED.read_text() == rendered(), (
        "docs/openapi.json is stale: the API changed since it was generated. Run `make openapi` and commit the result."
    )


def test_every_route_of_the_template_is_documented_with_its_method() -> None:
    documented = {(method.upper(), path) for path, ops in openapi_document()["paths"].items() for method in ops}
    # The catch-all routes (ANY) only let the API answer unknown paths and methods in its envelope.
    routes = {(r.method, r.path) for r in http_routes() if r.function == "ApiFunction" and r.method != "ANY"}
    undocumented = {(m, p) for m, p in routes if p.startswith(("/pcall/openapi.json", "/pcall/docs"))}

    assert documented == routes - undocumented
    assert {
        ("POST", "/pcall/call"),
        ("GET", "/pcall/scheduled"),
        ("DELETE", "/pcall/scheduled/{callid}"),
        ("GET", "/pcall/calls"),
        ("GET", "/pcall/calls/{callid}"),
    } <= documented


def test_the_call_request_body_lists_every_seed_parameter_in_three_media_types() -> None:
    spec = openapi_document()

    body = spec["paths"]["/pcall/call"]["post"]["requestBody"]
    assert set(body["content"]) == {"application/x-www-form-urlencoded", "multipart/form-data", "application/json"}
    schema = spec["components"]["schemas"]["CallRequest"]
    policies = {"retry_attempts", "retry_interval", "retry_on", "call_window", "call_days", "recipient_timezone"}
    assert set(schema["properties"]) == set(EVERY_PARAMETER) | {"timezone", "metadata"} | policies
    assert schema["required"] == ["to"]
    assert schema["additionalProperties"] is False


def test_basic_auth_and_the_idempotency_key_are_documented() -> None:
    spec = openapi_document()

    assert spec["openapi"].startswith("3.1")
    assert spec["components"]["securitySchemes"]["basic"] == {"type": "http", "scheme": "basic"}
    assert spec["security"] == [{"basic": []}]
    parameters = spec["paths"]["/pcall/call"]["post"]["parameters"]
    assert {"name": "Idempotency-Key", "in": "header"}.items() <= parameters[0].items()


def test_documented_responses_are_the_ones_the_api_gives() -> None:
    # The handlers answer invalid parameters with 400 in the seed's envelope, never Powertools' 422.
    spec = openapi_document()

    codes = {
        (method.upper(), path): set(op["responses"])
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    }
    # every route checks credentials (401, 429 for a burst of failed ones) and its query parameters (400), and reads
    # its account from storage (503)
    every = {"200", "400", "401", "429", "503"}
    # and a route that changes something refuses a request a browser sent for another site's page (403)
    changes = every | {"403"}
    assert codes[("POST", "/pcall/call")] == changes | {"409"}
    assert codes[("GET", "/pcall/calls")] == every
    assert codes[("GET", "/pcall/calls/{callid}")] == every | {"404"}
    assert codes[("DELETE", "/pcall/scheduled/{callid}")] == changes | {"404", "409"}
    assert codes[("PUT", "/pcall/ivr/{code}")] == changes
    assert codes[("DELETE", "/pcall/ivr/{code}")] == changes | {"404", "409"}
    assert all("422" not in c for c in codes.values())


def test_every_operation_that_changes_something_answers_its_documented_403_to_another_sites_page(
    api: ApiClient,
) -> None:
    for method, path, op in operations():
        response = api.request(method, path, content_type=None, headers={"sec-fetch-site": "cross-site"})

        assert ("403" in op["responses"]) is (response.status == 403), (method, path, response.status)


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    """Every documented operation: its method, its path with its parameters filled in (an id no account has), and
    its documentation."""
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "x1", path), op)
        for path, ops in openapi_document()["paths"].items()
        for method, op in ops.items()
    ]


def test_every_operation_refuses_a_query_parameter_it_does_not_take_with_its_documented_400(api: ApiClient) -> None:
    for method, path, op in operations():
        response = api.request(method, path, query={"not_a_parameter": "1"}, content_type=None)

        assert response.status == 400, (method, path, response.body)
        assert "400" in op["responses"], (method, path)


def test_every_operation_answers_its_documented_503_when_storage_is_unavailable(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: the accounts table, which every request's credentials are checked against, does not answer
    def unavailable(key: str) -> None:
        raise ServiceUnavailable("accounts unavailable: the table did not answer")

    monkeypatch.setattr(api.module.deps().accounts, "get_account", unavailable)

    for method, path, op in operations():
        response = api.request(method, path, content_type=None)

        assert response.status == 503, (method, path, response.body)
        assert "503" in op["responses"], (method, path)


def test_a_campaign_has_the_fields_its_schema_documents(api: ApiClient) -> None:
    response = api.request(
        "POST", "/pcall/campaigns", body=json.dumps(openapi_campaigns.JSON_EXAMPLE), content_type="application/json"
    )

    assert response.status == 200, response.body
    documented = openapi_document()["components"]["schemas"]["CampaignView"]["properties"]
    assert set(response.data["campaign"]) == set(documented)


def test_a_call_has_the_fields_its_schema_documents(api: ApiClient) -> None:
    callid = api.post_call({"to": "12812345670", "answer_play": "http://example.com/a.wav"}).data["callid"]
    schemas = openapi_document()["components"]["schemas"]

    listed = api.get("/pcall/calls").data["calls"]
    one = api.get(f"/pcall/calls/{callid}").data["call"]

    assert [c["callid"] for c in listed] == [callid]
    assert set(listed[0]) == set(schemas["CallSummary"]["properties"])
    assert set(one) == set(schemas["CallDetail"]["properties"])


def test_every_reference_resolves() -> None:
    spec = openapi_document()
    text = json.dumps(spec)
    refs = {part.split('"')[0] for part in text.split('"$ref": "#/components/schemas/')[1:]}

    assert refs
    assert refs <= set(spec["components"]["schemas"])


def test_served_without_credentials(api: ApiClient) -> None:
    response = api.get("/pcall/openapi.json", auth=False)

    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    served: dict[str, Any] = response.json
    assert served == openapi_document()


def test_swagger_ui(api: ApiClient) -> None:
    response = api.get("/pcall/docs", auth=False)
    initializer = api.get("/pcall/docs/swagger-initializer.js", auth=False)

    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert 'data-url="/pcall/openapi.json"' in response.body
    assert initializer.status == 200
    assert "SwaggerUIBundle(" in initializer.body
    assert "validatorUrl: null" in initializer.body  # no request to validator.swagger.io


def test_swagger_ui_is_served_under_the_consoles_strict_policy(api: ApiClient) -> None:
    # Swagger UI holds the API password once Authorize is filled in: another site must not frame it, inject
    # script into it, or read it from a referrer.
    page = api.get("/pcall/docs", auth=False)
    policy = page.headers["Content-Security-Policy"]
    directives = dict(d.strip().partition(" ")[::2] for d in policy.split(";"))

    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert (
        page.headers["Content-Security-Policy"]
        == api.get("/pcall/console", auth=False).headers["Content-Security-Policy"]
    )
    # no inline script or style for the policy to refuse: everything comes from the bundled files
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.body)
    assert "<style" not in page.body
    assert " style=" not in page.body
    for name in re.findall(r'(?:src|href)="/pcall/docs/([^"]+)"', page.body):
        asset = api.get(f"/pcall/docs/{name}", auth=False)
        assert asset.status == 200, name
        assert asset.headers["X-Content-Type-Options"] == "nosniff", name


def test_limit_bounds_are_in_the_schema() -> None:
    for path in ("/pcall/calls", "/pcall/scheduled"):
        params = {p["name"]: p for p in openapi_document()["paths"][path]["get"]["parameters"]}

        schema = params["limit"]["schema"]
        assert (schema["minimum"], schema["maximum"], schema["default"]) == (1, 100, 50), path


def test_a_route_naming_a_response_model_that_is_not_given_fails_the_document() -> None:
    # Routes name their response model (openapi.responses); a misspelt name must not yield a dangling $ref.
    given = [m for m in (*openapi_models.RESPONSES, *openapi_campaigns.RESPONSES) if m.__name__ != "StatsResponse"]
    with pytest.raises(ValueError, match="routes name response models that were not given: StatsResponse"):
        openapi.finish(app.get_openapi_json_schema(title=openapi.TITLE, version=openapi.VERSION), models=given)
