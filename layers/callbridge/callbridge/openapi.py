"""The API's OpenAPI document: Powertools' routes, plus the call request body and the vendor's envelopes."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from callbridge.domain.calls import Attempt, CallStatus
from callbridge.domain.ivr import IvrMenu
from callbridge.domain.requests import CallRequest
from callbridge.domain.suppressions import MAX_BULK, MAX_REASON
from callbridge.logic.calls import MAX_STATS_CALLS

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


class DocModel(BaseModel):
    """A model of the OpenAPI document only: its schema is built on first use (the document), not at import, since
    cold start is a user-visible latency. Every model here derives from it: one built at import would build the
    models it refers to."""

    model_config = ConfigDict(defer_build=True)


class Envelope(DocModel):
    """The vendor's envelope around every answer."""

    model_config = ConfigDict(extra="allow")
    code: int = Field(description="The HTTP status code, repeated.")
    code_desc: str = Field(description="Empty on success; what is wrong otherwise.")


class ErrorDetail(DocModel):
    field: str
    message: str


class ErrorData(Envelope):
    errors: list[ErrorDetail] | None = Field(None, description="Each broken rule (400 only).")


class ErrorResponse(DocModel):
    data: ErrorData


class CallAcceptedData(Envelope):
    callid: str = Field(description="Unique id of the call; needed to cancel a scheduled call.")


class CallAcceptedResponse(DocModel):
    """The parameters as accepted (with `from` and `record` defaulted), code, code_desc and callid."""

    data: CallAcceptedData


class CallSummary(DocModel):
    model_config = ConfigDict(extra="allow")
    callid: str
    status: CallStatus
    created_at: str
    call_date: str | None = None
    request: dict[str, str]
    answered_by: str = Field(description="Person, Machine, or empty when nobody answered.")
    billed_seconds: int = Field(description="Seconds billed, summed over the call's attempts.")
    next_attempt_at: str | None = Field(
        None, description="RETRY_WAIT: when the next attempt is due; SCHEDULED: when the calling window opens."
    )
    metadata: dict[str, str] | None = Field(None, description="Your metadata, as you sent it.")
    attempts: list[Attempt] = Field(
        default_factory=list, description="Each carrier attempt (1, 2, ...); the call's own outcome is the last one's."
    )


class CallListData(Envelope):
    calls: list[CallSummary]
    next: str | None = Field(None, description="Pass as `next` to get the following page; null on the last.")


class CallListResponse(DocModel):
    data: CallListData


class CallDetailData(Envelope):
    call: dict[str, Any]


class CallDetailResponse(DocModel):
    data: CallDetailData


class CallHangupData(Envelope):
    call: dict[str, Any] = Field(
        description="The call as it stands: CANCELED (not dialed yet, or ringing), COMPLETED (hung up), or still "
        "ending at the carrier."
    )


class CallHangupResponse(DocModel):
    data: CallHangupData


class CancelData(Envelope):
    callid: str
    status: CallStatus


class CancelResponse(DocModel):
    data: CancelData


class HourlyCount(DocModel):
    hour: str = Field(description="Start of the hour (UTC).")
    total: int
    answered: int = Field(description="Calls answered by a person or a machine.")
    statuses: dict[str, int] = Field(description="Calls by their current status.")


class StatsData(Envelope):
    since: str
    hours: list[HourlyCount]
    total: int
    finished: int = Field(description="COMPLETED, BUSY, NO_ANSWER or FAILED (cancelled calls are left out).")
    answered: int
    answer_rate: float | None = Field(description="answered / finished; null when no call has finished.")
    complete: bool = Field(
        description=f"False when only the newest {MAX_STATS_CALLS:,} calls of the window were counted."
    )
    counted_since: str | None = Field(description="Creation time of the oldest call counted.")


class StatsResponse(DocModel):
    data: StatsData


class IvrMenuView(IvrMenu):
    """An IVR menu as stored for the account."""

    model_config = ConfigDict(defer_build=True)
    code: str = Field(description="The menu's code, as answer_ivr names it.")
    created_at: str
    updated_at: str


class IvrMenuData(Envelope):
    menu: IvrMenuView


class IvrMenuResponse(DocModel):
    data: IvrMenuData


class IvrMenuPutData(IvrMenuData):
    created: bool = Field(description="True if the menu is new, false if it replaced one.")


class IvrMenuPutResponse(DocModel):
    data: IvrMenuPutData


class IvrMenuListData(Envelope):
    menus: list[IvrMenuView]


class IvrMenuListResponse(DocModel):
    data: IvrMenuListData


class IvrMenuDeleteData(Envelope):
    deleted: str = Field(description="The code of the deleted menu.")


class IvrMenuDeleteResponse(DocModel):
    data: IvrMenuDeleteData


class SuppressionView(DocModel):
    number: str = Field(description="The number in E.164 (+12812345670).")
    reason: str = Field(description="Why it is listed (`opt-out by keypress` for a keypress opt-out).")
    created_at: str
    callid: str | None = Field(None, description="The call in which the person opted out (keypress only).")


class SuppressionData(Envelope):
    suppression: SuppressionView


class SuppressionResponse(DocModel):
    data: SuppressionData


class SuppressionPutData(SuppressionData):
    created: bool = Field(description="True if the number is new on the list, false if its entry was replaced.")


class SuppressionPutResponse(DocModel):
    data: SuppressionPutData


class SuppressionListData(Envelope):
    suppressions: list[SuppressionView]
    next: str | None = Field(None, description="Pass as `next` to get the following page; null on the last.")


class SuppressionListResponse(DocModel):
    data: SuppressionListData


class SuppressionBulkData(Envelope):
    count: int = Field(description="Distinct numbers in the request.")
    added: int = Field(description="Numbers that were not listed before.")
    existing: int = Field(description="Numbers already listed (their entries are kept).")


class SuppressionBulkResponse(DocModel):
    data: SuppressionBulkData


class SuppressionDeleteData(Envelope):
    deleted: str = Field(description="The number taken off the list, in E.164.")


class SuppressionDeleteResponse(DocModel):
    data: SuppressionDeleteData


def _errors(*codes: int) -> dict[int, Any]:
    text = {
        400: "Invalid request: `code_desc` and `errors` name each field and rule.",
        401: "Invalid API credentials.",
        429: "Too many failed logins from this address or for this API key; retry after `Retry-After` seconds.",
        404: "No such call (or IVR menu, or listed number) for this account.",
        409: "Conflict with the call's state or an Idempotency-Key; or an IVR menu another menu still leads to.",
        503: "A dependency is unavailable; retry (with the same Idempotency-Key).",
    }
    return {c: {"description": text[c], "content": {"application/json": {"model": ErrorResponse}}} for c in codes}


def responses(model: type[BaseModel], *errors: int) -> dict[int, Any]:
    """Powertools `responses=` for a route answering `model`, plus the given error codes."""
    if 401 in errors:  # a route that checks credentials also refuses a burst of failed ones
        errors = (*errors, 429)
    return {200: {"description": "Success", "content": {"application/json": {"model": model}}}, **_errors(*errors)}


def call_request_body() -> tuple[dict[str, Any], dict[str, Any]]:
    """The requestBody of POST /pcall/call in the three accepted media types."""
    schema = CallRequest.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    schema.pop("title", None)
    return {
        "required": True,
        "content": {
            media: {"schema": {"$ref": "#/components/schemas/CallRequest"}}
            for media in ("application/x-www-form-urlencoded", "multipart/form-data", "application/json")
        },
    }, schema


def finish(document: str) -> dict[str, Any]:
    """Add the parts Powertools cannot infer (the request body parsed by hand, Basic auth)."""
    spec: dict[str, Any] = json.loads(document)
    # Invalid parameters are answered 400 in the seed's envelope, never with Powertools' default 422.
    for operations in spec["paths"].values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
    for unused in ("HTTPValidationError", "ResponseValidationError", "ValidationError"):
        spec.get("components", {}).get("schemas", {}).pop(unused, None)
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
    schema = IvrMenu.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        schemas[name] = input_schema(definition)
    schemas["IvrMenu"] = input_schema(schema)
    spec["paths"]["/pcall/ivr/{code}"]["put"]["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IvrMenu"}, "example": IVR_EXAMPLE}},
    }


# Swagger UI's files ship with the package (no CDN): the docs page works offline, in the sandbox too.
SWAGGER_ASSETS = {
    "swagger-ui-bundle.js": "application/javascript; charset=utf-8",
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
    """A Swagger UI page for the document at `spec_url`, loading its files from `assets_url`."""
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{TITLE}</title>
  <link rel="stylesheet" href="{assets_url}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{assets_url}/swagger-ui-bundle.js"></script>
  <script>
    // Swagger UI sends every optional form field it shows, empty ones too, unless "Send empty value" is
    // unticked; this plugin makes unticked the default, so only the fields filled in are sent.
    const OnlyFilledFields = () => ({{
      wrapComponents: {{
        ParameterIncludeEmpty: (Original, system) => (props) => system.React.createElement(Original, {{
          ...props, isIncludedOptions: {{...props.isIncludedOptions, defaultValue: false}},
        }}),
      }},
    }});
    window.ui = SwaggerUIBundle({{url: "{spec_url}", dom_id: "#swagger-ui", deepLinking: true,
                                  tryItOutEnabled: true, plugins: [OnlyFilledFields]}});
  </script>
</body>
</html>
"""
