"""The OpenAPI parts of the campaigns routes: response models and the request body Powertools cannot infer (read only
when the document is built)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from callbridge.domain.campaign_requests import CAMPAIGN_FIELDS, MAX_CALLS
from callbridge.domain.campaigns import CampaignStatus
from callbridge.openapi import REF_TEMPLATE, input_schema, schema_ref
from callbridge.openapi_models import Envelope

TAG = "Campaigns: up to 10,000 calls in one request, paced, paused, cancelled, counted and reported."
# Works as it is in Swagger UI (Try it out, Execute): two calls, which the sandbox's carrier answers as a person (a
# number ending in 0) and as voicemail (ending in 1).
JSON_EXAMPLE = {
    "name": "pick-up reminders",
    "defaults": {"answer_play": "http://example.com/file.wav"},
    "calls": [{"to": "12812345670", "metadata": {"order": "A-1"}}, {"to": "12812345671", "metadata": {"order": "A-2"}}],
    "calls_per_second": 1,
}
# The same calls as CSV; the campaign's name then comes from the `name` query parameter.
CSV_EXAMPLE = (
    "to,answer_play,metadata.order\n"
    "12812345670,http://example.com/file.wav,A-1\n"
    "12812345671,http://example.com/file.wav,A-2\n"
)
_QUERY = {
    "name": "The campaign's name (required with a CSV body).",
    "calls_per_second": "At most the carrier's (the default), at least 1/900 (one call every 15 minutes).",
    "max_in_progress": "At most this many of its calls between release and end.",
    "start_at": "When to start, like call_date.",
    "callback_url": "Receives one POST when the campaign finishes.",
}


class CampaignView(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    name: str
    status: CampaignStatus
    total: int = Field(description="Calls in the campaign.")
    created_at: str
    updated_at: str
    start_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    calls_per_second: float
    max_in_progress: int | None = None
    callback_url: str | None = None
    counts: dict[str, int] = Field(description="The campaign's calls by call status (they add up to total).")
    answered: dict[str, int] = Field(description="Answered calls by who answered: Person, Machine.")
    billed_seconds: int = Field(description="Seconds billed, summed over the campaign's calls.")


class CampaignData(Envelope):
    campaign: CampaignView


class CampaignResponse(BaseModel):
    data: CampaignData


class SuppressedCall(BaseModel):
    field: str = Field(description="The call's `to`, named like a 400 names it: calls.<index>.to (CSV: the line).")
    to: str = Field(description="The number, E.164.")
    message: str


class CampaignCreatedData(CampaignData):
    suppressed: list[SuppressedCall] = Field(
        description="Calls to numbers on your do-not-call list: accepted, and ended CANCELED (error_code suppressed)."
    )


class CampaignCreatedResponse(BaseModel):
    data: CampaignCreatedData


class CampaignListData(Envelope):
    campaigns: list[CampaignView]
    next: str | None = Field(None, description="Pass as `next` to get the following page; null on the last.")


class CampaignListResponse(BaseModel):
    data: CampaignListData


class CampaignRequest(BaseModel):
    """A JSON campaign. A `text/csv` body instead: a header row of call parameters (`metadata.KEY` columns
    build `metadata`), one call per line, and the other fields as query parameters."""

    name: str = Field(max_length=200)
    defaults: dict[str, Any] = Field(
        default_factory=dict,
        description="Any POST /pcall/call parameters, for every call (a call's own value wins; a `timezone` applies "
        "to the calls with a `call_date`).",
    )
    calls: list[dict[str, Any]] = Field(
        min_length=1, max_length=MAX_CALLS, description="Each with `to` and any parameter overriding the defaults."
    )
    calls_per_second: float | None = Field(None, description="At most the carrier's; defaults to it.")
    max_in_progress: int | None = Field(None, description="At most this many of its calls between release and end.")
    start_at: str | None = Field(None, description="When to start, like call_date.")
    callback_url: str | None = Field(None, description="Receives one POST when the campaign finishes.")


# The models the campaigns routes name (`openapi.responses`).
RESPONSES = (CampaignResponse, CampaignCreatedResponse, CampaignListResponse)


def add_campaign_request_body(spec: dict[str, Any]) -> None:
    """POST /pcall/campaigns reads its body by hand (JSON or CSV), so its schema is added here."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["CampaignRequest"] = input_schema(CampaignRequest.model_json_schema(ref_template=REF_TEMPLATE))
    post = spec["paths"]["/pcall/campaigns"]["post"]
    post["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {**schema_ref("CampaignRequest"), "example": JSON_EXAMPLE},
            "text/csv": {
                "schema": {
                    "type": "string",
                    "description": "A header row of call parameters, one call per line; the campaign's name in the "
                    "`name` query parameter (required with a CSV body).",
                },
                "example": CSV_EXAMPLE,
            },
        },
    }
    post["description"] = (
        "Try it out as shown: the JSON example starts a campaign of two calls (in the sandbox, one answered by a "
        "person, one by voicemail). For a CSV body, pick `text/csv` and fill in `name`; the other query parameters "
        "are for CSV bodies only. The answer's `data.campaign.id` is what the campaign routes below take."
    )
    for name in CAMPAIGN_FIELDS:
        post.setdefault("parameters", []).append(
            {
                "name": name,
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": f"CSV bodies only (a JSON body carries it). {_QUERY[name]}",
            }
        )
    post.setdefault("parameters", []).append(
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "maxLength": 255},
            "description": "Retries with the same key and body return the first response; another body is a 409.",
        }
    )
    spec.setdefault("tags", []).append({"name": "campaigns", "description": TAG})
    report = spec["paths"]["/pcall/campaigns/{id}/report.csv"]["get"]
    report["responses"]["200"] = {
        "description": "One row per call; gzip-compressed (`Content-Encoding: gzip`) when the request accepts it",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
