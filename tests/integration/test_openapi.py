"""The OpenAPI 3.1 document: committed in docs/, served at /pcall/openapi.json, shown at /pcall/docs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from callbridge import openapi, openapi_campaigns, openapi_models

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
    # The catch-all route only lets the API answer unknown paths and methods in its envelope.
    routes = {(r.method, r.path) for r in http_routes() if r.function == "ApiFunction" and "{proxy+}" not in r.path}
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
    # every route that checks credentials may also refuse a burst of failed logins (429)
    assert codes[("POST", "/pcall/call")] == {"200", "400", "401", "409", "429", "503"}
    assert codes[("GET", "/pcall/calls")] == {"200", "400", "401", "429"}
    assert codes[("DELETE", "/pcall/scheduled/{callid}")] == {"200", "401", "404", "409", "429"}
    assert codes[("PUT", "/pcall/ivr/{code}")] == {"200", "400", "401", "429", "503"}
    assert codes[("DELETE", "/pcall/ivr/{code}")] == {"200", "401", "404", "409", "429"}
    assert all("422" not in c for c in codes.values())


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

    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert "SwaggerUIBundle" in response.body
    assert 'url: "/pcall/openapi.json"' in response.body


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
