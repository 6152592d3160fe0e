"""The response models of the OpenAPI document: read by `openapi.finish` when the document is built, never when the
API's routes are declared (they name their model), so a cold start builds none of them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from callbridge.domain.calls import Attempt, CallStatus
from callbridge.domain.ivr import IvrMenu
from callbridge.logic.calls import MAX_STATS_CALLS


class Envelope(BaseModel):
    """The vendor's envelope around every answer."""

    model_config = ConfigDict(extra="allow")
    code: int = Field(description="The HTTP status code, repeated.")
    code_desc: str = Field(description="Empty on success; what is wrong otherwise.")


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorData(Envelope):
    errors: list[ErrorDetail] | None = Field(None, description="Each broken rule (400 only).")


class ErrorResponse(BaseModel):
    data: ErrorData


class CallAcceptedData(Envelope):
    callid: str = Field(description="Unique id of the call; needed to cancel a scheduled call.")


class CallAcceptedResponse(BaseModel):
    """The parameters as accepted (with `from` and `record` defaulted), code, code_desc and callid."""

    data: CallAcceptedData


class CallSummary(BaseModel):
    """A call as the lists show it (GET /pcall/calls/{callid} adds its timeline)."""

    model_config = ConfigDict(extra="allow")
    callid: str
    status: CallStatus
    created_at: str
    updated_at: str
    call_date: str | None = Field(None, description="When it is due (ISO 8601, UTC); null for an immediate call.")
    request: dict[str, str] = Field(description="The parameters as accepted (`from` and `record` defaulted).")
    answered_by: str = Field(description="Person, Machine, or empty when nobody answered.")
    billed_seconds: int = Field(description="Seconds billed, summed over the call's attempts.")
    started_at: str | None = Field(None, description="When the carrier started the call.")
    answered_at: str | None = None
    ended_at: str | None = None
    recording_url: str | None = None
    digits: str = Field(description="Every key pressed in its IVR menus, in order.")
    sms_status: str | None = Field(None, description="The voicemail SMS's delivery status (answermachine_sms).")
    error_code: str | None = None
    error_desc: str | None = None
    carrier_call_id: str | None = Field(None, description="The carrier's id of the call (a Twilio CallSid).")
    carrier_error: dict[str, Any] | None = Field(None, description="The carrier's refusal: code, message, http_status.")
    sms_sid: str | None = Field(None, description="The carrier's id of the voicemail SMS.")
    dial_status: str | None = Field(None, description="answer_dial_to: how the dialed leg ended, as the carrier says.")
    second_leg_id: str | None = Field(None, description="answer_dial_to: the carrier's id of the dialed leg.")
    dialed_at: str | None = Field(None, description="When it was taken to be dialed.")
    source: str = Field(description="How it was requested: api, campaign, or sqs (a message to CallsQueue).")
    campaign: str | None = Field(None, description="The id of its campaign; null for other calls.")
    next_attempt_at: str | None = Field(
        None,
        description="RETRY_WAIT: when the next attempt is due; SCHEDULED: when the calling window opens; null once "
        "that attempt is taken to be dialed, and once the call has ended.",
    )
    metadata: dict[str, str] | None = Field(None, description="Your metadata, as you sent it.")
    attempts: list[Attempt] = Field(
        default_factory=list,
        description="Each carrier attempt (1, 2, ...). The call's own outcome (answered_by, started_at, answered_at, "
        "ended_at, error_code, error_desc, ...) is its last attempt's, also while it waits for the next one and once "
        "it ended before that one was dialed (then its error_code and error_desc say why, when the end has a code: "
        "suppressed, campaign_canceled, window_closed).",
    )


class CallDetail(CallSummary):
    timeline: list[dict[str, Any]] = Field(
        description="Every transition and carrier event, with times: {at, event, detail}, as recorded."
    )


class CallListData(Envelope):
    calls: list[CallSummary]
    next: str | None = Field(None, description="Pass as `next` to get the following page; null on the last.")


class CallListResponse(BaseModel):
    data: CallListData


class CallDetailData(Envelope):
    call: CallDetail


class CallDetailResponse(BaseModel):
    data: CallDetailData


class CallHangupData(Envelope):
    call: CallSummary = Field(
        description="The call as it stands: CANCELED (not dialed yet, or ringing), COMPLETED (hung up), or still "
        "ending at the carrier."
    )


class CallHangupResponse(BaseModel):
    data: CallHangupData


class CancelData(Envelope):
    callid: str
    status: CallStatus


class CancelResponse(BaseModel):
    data: CancelData


class HourlyCount(BaseModel):
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


class StatsResponse(BaseModel):
    data: StatsData


class IvrMenuView(IvrMenu):
    """An IVR menu as stored for the account."""

    code: str = Field(description="The menu's code, as answer_ivr names it.")
    created_at: str
    updated_at: str


class IvrMenuData(Envelope):
    menu: IvrMenuView


class IvrMenuResponse(BaseModel):
    data: IvrMenuData


class IvrMenuPutData(IvrMenuData):
    created: bool = Field(description="True if the menu is new, false if it replaced one.")


class IvrMenuPutResponse(BaseModel):
    data: IvrMenuPutData


class IvrMenuListData(Envelope):
    menus: list[IvrMenuView]


class IvrMenuListResponse(BaseModel):
    data: IvrMenuListData


class IvrMenuDeleteData(Envelope):
    deleted: str = Field(description="The code of the deleted menu.")


class IvrMenuDeleteResponse(BaseModel):
    data: IvrMenuDeleteData


class SuppressionView(BaseModel):
    number: str = Field(description="The number in E.164 (+12812345670).")
    reason: str = Field(description="Why it is listed (`opt-out by keypress` for a keypress opt-out).")
    created_at: str
    callid: str | None = Field(None, description="The call in which the person opted out (keypress only).")


class SuppressionData(Envelope):
    suppression: SuppressionView


class SuppressionResponse(BaseModel):
    data: SuppressionData


class SuppressionPutData(SuppressionData):
    created: bool = Field(description="True if the number is new on the list, false if its entry was replaced.")


class SuppressionPutResponse(BaseModel):
    data: SuppressionPutData


class SuppressionListData(Envelope):
    suppressions: list[SuppressionView]
    next: str | None = Field(None, description="Pass as `next` to get the following page; null on the last.")


class SuppressionListResponse(BaseModel):
    data: SuppressionListData


class SuppressionBulkData(Envelope):
    count: int = Field(description="Distinct numbers in the request.")
    added: int = Field(description="Numbers that were not listed before.")
    existing: int = Field(description="Numbers already listed (their entries are kept).")


class SuppressionBulkResponse(BaseModel):
    data: SuppressionBulkData


class SuppressionDeleteData(Envelope):
    deleted: str = Field(description="The number taken off the list, in E.164.")


class SuppressionDeleteResponse(BaseModel):
    data: SuppressionDeleteData


# The models the routes name (`openapi.responses`); the others are parts of these.
RESPONSES = (
    ErrorResponse,
    CallAcceptedResponse,
    CallListResponse,
    CallDetailResponse,
    CallHangupResponse,
    CancelResponse,
    StatsResponse,
    IvrMenuResponse,
    IvrMenuPutResponse,
    IvrMenuListResponse,
    IvrMenuDeleteResponse,
    SuppressionResponse,
    SuppressionPutResponse,
    SuppressionListResponse,
    SuppressionBulkResponse,
    SuppressionDeleteResponse,
)
