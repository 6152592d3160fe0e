"""The API's OpenAPI document: Powertools' routes, plus the call request body and the vendor's envelopes.

What the routes declare (`responses`) names a response model; the models themselves (openapi_models,
openapi_campaigns) are read only when the document is built (`finish`), so a cold start builds none of them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from html import escape
from typing import Any, Literal

from pydantic import BaseModel

from callbridge.domain.ivr import IvrMenu
from callbridge.domain.requests import CallRequest
from callbridge.domain.suppressions import MAX_BULK, MAX_REASON
from callbridge.web import SAFE_METHODS

# Where the document's schemas live (pydantic's `ref_template`).
REF_TEMPLATE = "#/components/schemas/{model}"
TITLE = "callbridge — Make calls API"
VERSION = "1.0.0"
DESCRIPTION = (
    "Place and schedule phone calls programmatically. `POST /pcall/call` takes the vendor's parameters "
    "form-encoded (as `curl --data` and PHP's `http_build_query` send them), as multipart/form-data, or as "
    'JSON. Every answer uses the vendor\'s envelope `{"data": {..., "code", "code_desc"}}`.\n\n'
    "Authenticate with HTTP Basic: your API key and API password (**Authorize** above). Each operation's "
    "example works as it is: **Try it out**, then **Execute**. Optional fields are sent only when you fill "
    "them in."
)
# The vendor's curl example: the default request of POST /pcall/call.
CALL_EXAMPLE = {"to": "12812345670", "answer_play": "http://example.com/file.wav"}
# A menu PUT /pcall/ivr/{code} accepts as it is (code `main`, which GET and DELETE then find).
IVR_EXAMPLE = {
    "prompt": {"speak": "Press 1 to hear our opening hours, star to hear this again.", "speak_lang": "en-US"},
    "options": {
        "1": {"action": "say", "speak": "We are open nine to five. Goodbye.", "speak_lang": "en-US"},
        "*": {"action": "repeat"},
    },
    "timeout": 5,
    "retries": 2,
}
# The do-not-call examples' numbers, used by no other example (POST /pcall/call to a listed number is a 400): the
# bulk example adds both, PUT, GET and DELETE of one number then find the first.
SUPPRESSION_EXAMPLE_NUMBER = "12812345679"
SUPPRESSION_PUT_EXAMPLE = {"reason": "asked by phone"}
SUPPRESSIONS_JSON_EXAMPLE = [SUPPRESSION_EXAMPLE_NUMBER, {"number": "+1 (281) 234-5689", "reason": "asked by email"}]
SUPPRESSIONS_CSV_EXAMPLE = (
    f"number,reason\n{SUPPRESSION_EXAMPLE_NUMBER},asked by phone\n+1 (281) 234-5689,asked by email\n"
)
TAGS = {
    "calls": "Make a call now or at a time; follow it from request to outcome.",
    "scheduled": "Calls with a `call_date` that have not started: list them, cancel one.",
    "ivr": "The menus `answer_ivr` names: a prompt and what each key does.",
    "suppressions": "Your do-not-call list: numbers that are never called (E.164, per account).",
}
# Path parameters that can have a working example. An id that only exists once created (a callid, a campaign's id)
# has none: its description says where to get one.
PATH_EXAMPLES = {"code": "main", "number": SUPPRESSION_EXAMPLE_NUMBER}


def _errors(*codes: int) -> dict[int, Any]:
    text = {
        400: "Invalid request: `code_desc` and `errors` name each field and rule.",
        401: "Invalid API credentials.",
        429: "Too many failed logins from this address or for this API key; retry after `Retry-After` seconds.",
        404: "No such call (or campaign, IVR menu, or listed number) for this account.",
        409: "Conflict with the call's (or campaign's) state or an Idempotency-Key; or an IVR menu another menu still "
        "leads to.",
        406: "The answer is more than Lambda carries uncompressed: ask for it with `Accept-Encoding: gzip`.",
        503: "A dependency is unavailable; retry (with the same Idempotency-Key).",
        403: "A browser sent this request for a page of another site (`Sec-Fetch-Site`, `Origin`): refused.",
    }
    return {c: {"description": text[c], "content": {"application/json": schema_ref("ErrorResponse")}} for c in codes}


def schema_ref(model: str) -> dict[str, Any]:
    """A media type's schema: the document's schema named `model`."""
    return {"schema": {"$ref": REF_TEMPLATE.format(model=model)}}


# What every route may answer, besides its own errors: every route checks credentials (401), refuses a burst of failed
# ones (429), refuses a query parameter it does not take (400), and reads its account from storage (503).
_EVERY_ROUTE = (400, 401, 429, 503)


def responses(model: str, *errors: int) -> dict[int, Any]:
    """Powertools `responses=` for a route answering the response model named `model`, plus the errors every route
    may answer and the route's own (`errors`: 404, 409).

    The route names its model and `finish` adds the models' schemas: declaring the routes builds no model, so a cold
    start does not pay for the document (openapi_models)."""
    codes = sorted({*_EVERY_ROUTE, *errors})
    return {200: {"description": "Success", "content": {"application/json": schema_ref(model)}}, **_errors(*codes)}


def call_request_body() -> tuple[dict[str, Any], dict[str, Any]]:
    """The requestBody of POST /pcall/call in the three accepted media types."""
    schema = CallRequest.model_json_schema(by_alias=True, ref_template=REF_TEMPLATE)
    schema.pop("title", None)
    return {
        "required": True,
        "content": {
            media: schema_ref("CallRequest")
            for media in ("application/x-www-form-urlencoded", "multipart/form-data", "application/json")
        },
    }, schema


def finish(document: str, models: Iterable[type[BaseModel]]) -> dict[str, Any]:
    """Add the parts Powertools cannot infer: the response models the routes name (from `models`), the request
    bodies parsed by hand, Basic auth."""
    spec: dict[str, Any] = json.loads(document)
    # Invalid parameters are answered 400 in the seed's envelope, never with Powertools' default 422.
    for operations in spec["paths"].values():
        for method, operation in operations.items():
            operation.get("responses", {}).pop("422", None)
            if method.upper() not in SAFE_METHODS:  # what changes something is refused to another site's page
                operation.setdefault("responses", {}).update({str(c): r for c, r in _errors(403).items()})
    for unused in ("HTTPValidationError", "ResponseValidationError", "ValidationError"):
        spec.get("components", {}).get("schemas", {}).pop(unused, None)
    _add_response_models(spec, models)
    body, schema = call_request_body()
    spec.setdefault("components", {}).setdefault("schemas", {})["CallRequest"] = {
        "title": "CallRequest",
        **input_schema(schema),
    }
    for name, media in body["content"].items():
        media["example"] = CALL_EXAMPLE
        if name != "application/json":
            media["schema"] = form_schema(spec["components"]["schemas"]["CallRequest"], CALL_EXAMPLE)
    post = spec["paths"]["/pcall/call"]["post"]
    post["requestBody"] = body
    post.setdefault("parameters", []).append(
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "maxLength": 255},
            "description": "Retries with the same key and body return the first response; another body is a 409.",
        }
    )
    _ivr_menu_body(spec)
    _suppressions_body(spec)
    spec["tags"] = [{"name": name, "description": text} for name, text in TAGS.items()]
    for operations in spec["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                parameter["schema"] = input_schema(parameter.get("schema", {}))
                if parameter["in"] == "path" and parameter["name"] in PATH_EXAMPLES:
                    parameter["example"] = PATH_EXAMPLES[parameter["name"]]
    return spec


def _add_response_models(spec: dict[str, Any], models: Iterable[type[BaseModel]]) -> None:
    """The schemas of the response models the routes name (`responses`), with the models they refer to, written
    as Powertools writes the schemas it generates (through its OpenAPI `Components` model)."""
    from aws_lambda_powertools.event_handler.openapi.models import Components
    from pydantic.json_schema import models_json_schema

    by_name = {model.__name__: model for model in models}
    prefix = REF_TEMPLATE.format(model="")
    named = {
        content["schema"]["$ref"].removeprefix(prefix)
        for operations in spec["paths"].values()
        for operation in operations.values()
        for response in operation.get("responses", {}).values()
        for content in response.get("content", {}).values()
        if content.get("schema", {}).get("$ref", "").startswith(prefix)
    }
    unknown = sorted(named - set(by_name))
    if unknown:
        raise ValueError(f"routes name response models that were not given: {', '.join(unknown)}")
    serialized: Literal["serialization"] = "serialization"  # as Powertools documents what a route returns
    _, schemas = models_json_schema([(by_name[name], serialized) for name in sorted(named)], ref_template=REF_TEMPLATE)
    written = json.loads(Components(schemas=schemas.get("$defs", {})).model_dump_json(by_alias=True, exclude_none=True))
    spec.setdefault("components", {}).setdefault("schemas", {}).update(written["schemas"])


def form_schema(schema: dict[str, Any], example: dict[str, str]) -> dict[str, Any]:
    """A form's schema whose fields Swagger UI fills with `example`, and leaves every other field empty.

    Swagger UI fills a form field with its property's example, else with a sample (`string`) it then sends.
    """
    properties = {
        name: {**prop, "example": example.get(name, "")} for name, prop in schema.get("properties", {}).items()
    }
    return {**schema, "properties": properties}


def input_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A request schema as a form shows it: an optional field is absent, never `null`.

    Pydantic spells `str | None = None` as `anyOf: [string, null]` with `default: null`; Swagger UI then sends
    the text `null` for every optional field left empty. Absent is how the API takes "not given".
    """
    if isinstance(schema, list):
        return [input_schema(item) for item in schema]  # type: ignore[return-value]
    if not isinstance(schema, dict):
        return schema
    result = {key: input_schema(value) for key, value in schema.items()}
    variants = result.get("anyOf")
    if isinstance(variants, list) and {"type": "null"} in variants:
        rest = [v for v in variants if v != {"type": "null"}]
        del result["anyOf"]
        if len(rest) == 1:
            result = {**rest[0], **result}
        else:
            result["anyOf"] = rest
    if "default" in result and result["default"] is None:
        del result["default"]
    return result


def _suppressions_body(spec: dict[str, Any]) -> None:
    """The do-not-call routes read their bodies by hand, so their schemas are added here."""
    put = spec["paths"]["/pcall/suppressions/{number}"]["put"]
    put["requestBody"] = {
        "required": False,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"reason": {"type": "string", "maxLength": MAX_REASON}},
                    "additionalProperties": False,
                },
                "example": SUPPRESSION_PUT_EXAMPLE,
            }
        },
    }
    entry = {
        "oneOf": [
            {"type": "string", "description": "A number, e.g. 12812345670 or +1 (281) 234-5670."},
            {
                "type": "object",
                "properties": {"number": {"type": "string"}, "reason": {"type": "string", "maxLength": MAX_REASON}},
                "required": ["number"],
                "additionalProperties": False,
            },
        ]
    }
    spec["paths"]["/pcall/suppressions"]["post"]["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "array", "items": entry, "minItems": 1, "maxItems": MAX_BULK},
                "example": SUPPRESSIONS_JSON_EXAMPLE,
            },
            "text/csv": {
                "schema": {
                    "type": "string",
                    "description": "One number per line; an optional reason column (a header line is skipped).",
                },
                "example": SUPPRESSIONS_CSV_EXAMPLE,
            },
        },
    }


def _ivr_menu_body(spec: dict[str, Any]) -> None:
    """PUT /pcall/ivr/{code} reads its JSON body by hand (any Content-Type), so its schema is added here."""
    schemas = spec["components"]["schemas"]
    schema = IvrMenu.model_json_schema(ref_template=REF_TEMPLATE)
    for name, definition in schema.pop("$defs", {}).items():
        schemas[name] = input_schema(definition)
    schemas["IvrMenu"] = input_schema(schema)
    spec["paths"]["/pcall/ivr/{code}"]["put"]["requestBody"] = {
        "required": True,
        "content": {"application/json": {**schema_ref("IvrMenu"), "example": IVR_EXAMPLE}},
    }


# Swagger UI's files ship with the package (no CDN): the docs page works offline, in the sandbox too.
SWAGGER_ASSETS = {
    "swagger-ui-bundle.js": "application/javascript; charset=utf-8",
    "swagger-initializer.js": "application/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
}


def swagger_asset(name: str) -> tuple[str, str] | None:
    """(content, content type) of a bundled Swagger UI file, or None for any other name."""
    content_type = SWAGGER_ASSETS.get(name)
    if content_type is None:
        return None
    from importlib.resources import files

    return (files("callbridge").joinpath("static", "swagger-ui", name).read_text("utf-8"), content_type)


def swagger_html(spec_url: str, assets_url: str) -> str:
    """A Swagger UI page for the document at `spec_url`, loading its files from `assets_url`.

    No inline script or style: the page is served under web.PAGE_HEADERS' Content-Security-Policy."""
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{TITLE}</title>
  <link rel="stylesheet" href="{escape(assets_url)}/swagger-ui.css">
  <script src="{escape(assets_url)}/swagger-ui-bundle.js" defer></script>
  <script src="{escape(assets_url)}/swagger-initializer.js" defer></script>
</head>
<body>
  <div id="swagger-ui" data-url="{escape(spec_url)}"></div>
</body>
</html>
"""
