"""A campaign: many calls accepted in one request, released at a pace, paused, cancelled and counted.

Every call of a campaign is an ordinary call (validated by `parse_call_request`, stored in CallsTable,
placed by the placer); the campaign adds its own rules: the intake of up to 10,000 calls at once, its
status, its pace, and the counts of its calls by status.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from callbridge.domain.answered import MACHINE, PERSON
from callbridge.domain.calls import FINAL_STATUSES, Call, CallStatus
from callbridge.domain.dispatch import RELEASED
from callbridge.domain.errors import DomainError, FieldProblem, InvalidRequest
from callbridge.domain.metadata import MetadataError, parse_metadata
from callbridge.domain.notifications import callback_url_problem
from callbridge.domain.requests import CallRequest, parse_call_request
from callbridge.domain.scheduling import CallDateError, check_window, parse_call_date

MAX_CALLS = 10_000  # per request
MAX_NAME = 200
CHUNK_SIZE = 100  # calls per fan-out message (and per stored chunk)
METADATA_PREFIX = "metadata."  # a CSV column `metadata.KEY` is metadata[KEY]
# Parameters a campaign call may not set: the campaign decides when its calls start (start_at, pace).
NOT_PER_CALL = ("call_date", "timezone")
# Campaign fields other than `name`, `defaults` and `calls` (also the query parameters of a CSV request).
CAMPAIGN_FIELDS = ("name", "calls_per_second", "max_in_progress", "start_at", "callback_url")
CANCELED_BY_CAMPAIGN = "campaign_canceled"  # error_code of a call its campaign's cancel ended


class CampaignNotFound(DomainError):
    """No such campaign for this account (HTTP 404). Another account's campaign is 'not found' too."""


class CampaignStatus(StrEnum):
    """The life of a campaign."""

    SCHEDULED = "SCHEDULED"  # before start_at
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    CANCELED = "CANCELED"
    FINISHED = "FINISHED"


# Which requests each status allows (anything else is a 409).
PAUSABLE = frozenset({CampaignStatus.SCHEDULED, CampaignStatus.RUNNING})
RESUMABLE = frozenset({CampaignStatus.PAUSED})
CANCELABLE = frozenset({CampaignStatus.SCHEDULED, CampaignStatus.RUNNING, CampaignStatus.PAUSED})
# A campaign in one of these releases its waiting calls (SCHEDULED ones once start_at has come).
RELEASING = frozenset({CampaignStatus.SCHEDULED, CampaignStatus.RUNNING})
# Calls the campaign has released that are not final yet: what max_in_progress bounds.
IN_PROGRESS_STATUSES = frozenset(s for s in CallStatus if s not in FINAL_STATUSES and s is not CallStatus.SCHEDULED)


class Campaign(BaseModel):
    """A stored campaign (its counts are kept apart, see `Counts`)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    account_id: str
    name: str
    status: CampaignStatus
    total: int
    created_at: str
    updated_at: str
    start_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    calls_per_second: float
    max_in_progress: int | None = None
    callback_url: str | None = None
    chunks: int = 0
    metadata_keys: list[str] = Field(default_factory=list)
    # The IVR menus its calls use, as they were when the campaign was accepted (answer_ivr code → menus).
    ivr_menus: dict[str, dict[str, Any]] = Field(default_factory=dict)
    notified_at: str | None = None

    def public(self, counts: Counts) -> dict[str, Any]:
        """The campaign as the API shows it to its owner."""
        body = self.model_dump(exclude={"account_id", "chunks", "metadata_keys", "ivr_menus", "notified_at"})
        body["status"] = self.status.value
        return {**body, **counts.public()}


@dataclass
class Counts:
    """The campaign's calls by status, who answered, and the seconds billed (sums over its calls)."""

    statuses: dict[str, int] = field(default_factory=dict)
    answered: dict[str, int] = field(default_factory=dict)
    billed_seconds: int = 0

    def add(self, other: Counts) -> Counts:
        statuses = dict(self.statuses)
        for k, v in other.statuses.items():
            statuses[k] = statuses.get(k, 0) + v
        answered = dict(self.answered)
        for k, v in other.answered.items():
            answered[k] = answered.get(k, 0) + v
        return Counts(statuses, answered, self.billed_seconds + other.billed_seconds)

    def final(self) -> int:
        return sum(self.statuses.get(s.value, 0) for s in FINAL_STATUSES)

    def in_progress(self) -> int:
        return sum(self.statuses.get(s.value, 0) for s in IN_PROGRESS_STATUSES)

    def public(self) -> dict[str, Any]:
        return {
            "counts": {s.value: self.statuses.get(s.value, 0) for s in CallStatus},
            "answered": {PERSON: self.answered.get(PERSON, 0), MACHINE: self.answered.get(MACHINE, 0)},
            "billed_seconds": self.billed_seconds,
        }


@dataclass(frozen=True)
class CallState:
    """What a campaign counts of one call: its status, who answered, the seconds billed."""

    status: str
    answered_by: str = ""
    billed_seconds: int = 0

    def counts(self) -> Counts:
        answered = {self.answered_by: 1} if self.answered_by in (PERSON, MACHINE) else {}
        return Counts({self.status: 1}, answered, self.billed_seconds)

    def delta(self, old: CallState) -> Counts:
        """What moving one call from `old` to this state changes in the counts."""
        before = old.counts()
        negated = Counts(
            {k: -v for k, v in before.statuses.items()},
            {k: -v for k, v in before.answered.items()},
            -before.billed_seconds,
        )
        return self.counts().add(negated)


@dataclass(frozen=True)
class CampaignCall:
    """One call of a campaign as accepted: its place in the list, its callid, parameters and metadata.

    `request` holds the parameters normalized (as a call stores them), `accepted` as they were given.
    """

    index: int
    callid: str
    request: dict[str, str]
    accepted: dict[str, str]
    metadata: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"i": self.index, "c": self.callid, "r": self.request, "a": self.accepted, "m": self.metadata}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CampaignCall:
        return cls(int(data["i"]), str(data["c"]), dict(data["r"]), dict(data["a"]), dict(data.get("m") or {}))


@dataclass(frozen=True)
class CampaignSpec:
    """A validated campaign request: its fields and its calls' parameters (defaults applied)."""

    name: str
    calls: list[tuple[dict[str, Any], dict[str, str]]]  # (call parameters, metadata)
    requests: list[CallRequest]
    calls_per_second: float
    max_in_progress: int | None
    start_at: datetime | None
    callback_url: str | None
    metadata_keys: list[str]


def campaign_callid(campaign_id: str, index: int) -> str:
    """The callid of the campaign's call `index`: derived, so a redelivered fan-out never makes a second call.

    The campaign id's first 11 characters (its creation time in hex milliseconds) keep callids sortable by
    creation time like any other; 16 hex digits of a hash of the campaign and the index follow.
    """
    digest = hashlib.sha256(f"{campaign_id}:{index}".encode()).hexdigest()[:16]
    return f"{campaign_id[:11]}{digest}"


def chunked(calls: list[CampaignCall], size: int = CHUNK_SIZE) -> list[list[CampaignCall]]:
    return [calls[start : start + size] for start in range(0, len(calls), size)]


# --- the request ---------------------------------------------------------------------------


def _metadata_problems(where: str, metadata: Any) -> tuple[dict[str, str], list[FieldProblem]]:
    """The call's rules for `metadata` (domain/metadata.py), named `<where>.metadata`."""
    if not isinstance(metadata, Mapping):
        return {}, [FieldProblem(f"{where}.metadata", "must be a JSON object of string keys to string values")]
    try:
        return parse_metadata(metadata), []
    except MetadataError as exc:
        return {}, [FieldProblem(f"{where}.metadata", str(exc))]


def _positive_number(name: str, value: Any, *, integer: bool) -> tuple[float | None, list[FieldProblem]]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, []
    kind = "a whole number" if integer else "a number"
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError):
        return None, [FieldProblem(name, f"must be {kind} greater than 0")]
    if not number > 0 or number == float("inf") or (integer and number != int(number)):
        return None, [FieldProblem(name, f"must be {kind} greater than 0")]
    return number, []


def _call_problems(where: str, problems: Iterable[FieldProblem]) -> list[FieldProblem]:
    return [FieldProblem(f"{where}.{p.field}", p.message) for p in problems]


def parse_campaign(
    body: Mapping[str, Any],
    *,
    timezone: str,
    now: datetime,
    carrier_cps: float,
    allow_loopback_callbacks: bool = False,
    positions: list[int] | None = None,
) -> CampaignSpec:
    """Validate a whole campaign request; InvalidRequest lists every broken rule, `calls.<i>.<field>` per call.

    `positions` numbers the calls in errors (the CSV line numbers); by default their index in `calls`.
    """
    problems: list[FieldProblem] = []
    unknown = set(body) - {*CAMPAIGN_FIELDS, "defaults", "calls"}
    problems += [FieldProblem(k, "unknown parameter") for k in sorted(unknown)]
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(FieldProblem("name", "required"))
    elif len(name.strip()) > MAX_NAME:
        problems.append(FieldProblem("name", f"must be at most {MAX_NAME} characters"))
    cps, found = _positive_number("calls_per_second", body.get("calls_per_second"), integer=False)
    problems += found
    if cps is not None and cps > carrier_cps:
        problems.append(FieldProblem("calls_per_second", f"must be at most the carrier's {carrier_cps:g} calls/s"))
    cap, found = _positive_number("max_in_progress", body.get("max_in_progress"), integer=True)
    problems += found
    start_at = None
    raw_start = body.get("start_at")
    if raw_start is not None and not (isinstance(raw_start, str) and not raw_start.strip()):
        try:
            if not isinstance(raw_start, str):
                raise CallDateError("must be 'YYYY-MM-DD HH:MM' or ISO 8601 with an offset, e.g. 2026-12-01 09:30")
            start_at = parse_call_date(raw_start, timezone)
            check_window(start_at, now)
        except CallDateError as exc:
            problems.append(FieldProblem("start_at", str(exc)))
    callback_url = body.get("callback_url")
    if callback_url is not None and not isinstance(callback_url, str):
        problems.append(FieldProblem("callback_url", "must be a string"))
        callback_url = None
    elif callback_url:
        problem = callback_url_problem(callback_url, allow_loopback=allow_loopback_callbacks)
        if problem:
            problems.append(FieldProblem("callback_url", f"must be a public http(s) URL: {problem}"))
    defaults = body.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        problems.append(FieldProblem("defaults", "must be an object of call parameters"))
        defaults = {}
    default_metadata: dict[str, str] = {}
    if "metadata" in defaults:
        default_metadata, found = _metadata_problems("defaults", defaults["metadata"])
        problems += found
    for key in NOT_PER_CALL:
        if key in defaults:
            problems.append(FieldProblem(f"defaults.{key}", "not allowed in a campaign: use start_at"))
    calls = body.get("calls")
    if not isinstance(calls, list) or not calls:
        problems.append(FieldProblem("calls", "required: a list of 1 to 10,000 calls"))
        calls = []
    elif len(calls) > MAX_CALLS:
        problems.append(FieldProblem("calls", f"must have at most {MAX_CALLS:,} calls"))
        calls = []
    accepted: list[tuple[dict[str, Any], dict[str, str]]] = []
    requests: list[CallRequest] = []
    metadata_keys: set[str] = set()
    base = {k: v for k, v in defaults.items() if k != "metadata" and k not in NOT_PER_CALL}
    for index, call in enumerate(calls):
        where = f"calls.{positions[index] if positions else index}"
        if not isinstance(call, Mapping):
            problems.append(FieldProblem(where, "must be an object of call parameters"))
            continue
        metadata = dict(default_metadata)
        if "metadata" in call:
            own, found = _metadata_problems(where, call["metadata"])
            problems += found
            if own and default_metadata:  # the call's own keys over the defaults': the whole must fit too
                metadata, found = _metadata_problems(where, {**default_metadata, **own})
                problems += found
            else:
                metadata.update(own)
        local = [
            FieldProblem(f"{where}.{k}", "not allowed in a campaign: use start_at") for k in NOT_PER_CALL if k in call
        ]
        params = {**base, **{k: v for k, v in call.items() if k != "metadata" and k not in NOT_PER_CALL}}
        try:
            request = parse_call_request(params, allow_loopback_callbacks=allow_loopback_callbacks)
        except InvalidRequest as exc:
            problems += _call_problems(where, exc.problems)
            problems += local
            continue
        problems += local
        requests.append(request)
        accepted.append((params, metadata))
        metadata_keys.update(metadata)
    if problems:
        raise InvalidRequest(problems)
    return CampaignSpec(
        name=str(name).strip(),
        calls=accepted,
        requests=requests,
        calls_per_second=cps or carrier_cps,
        max_in_progress=int(cap) if cap is not None else None,
        start_at=start_at,
        callback_url=callback_url or None,
        metadata_keys=sorted(metadata_keys),
    )


def campaign_from_csv(text: str, query: Mapping[str, str]) -> tuple[dict[str, Any], list[int]]:
    """A CSV body (header row of call parameters; `metadata.KEY` columns) and the query's campaign fields as
    the same request a JSON body makes, and the line number of each call (the header is line 1).

    Query parameters other than the campaign fields are defaults for every call.
    """
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidRequest.single("body", "is empty: a header row of call parameters is required") from None
    except csv.Error as exc:
        raise InvalidRequest.single("body", f"is not valid CSV: {exc}") from exc
    columns = [c.strip() for c in header]
    problems = [FieldProblem(f"column {n + 1}", "has no name") for n, c in enumerate(columns) if not c]
    seen: set[str] = set()
    for column in columns:
        if column and column in seen:
            problems.append(FieldProblem(column, "column given more than once"))
        seen.add(column)
    if problems:
        raise InvalidRequest(problems)
    calls: list[dict[str, Any]] = []
    lines: list[int] = []
    try:
        start = reader.line_num + 1
        for row in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(columns):
                problems.append(FieldProblem(f"calls.{line}", f"has {len(row)} cells; the header names {len(columns)}"))
                continue
            call: dict[str, Any] = {}
            metadata: dict[str, str] = {}
            for column, cell in zip(columns, row, strict=False):
                if not cell.strip():
                    continue
                if column.startswith(METADATA_PREFIX):
                    metadata[column[len(METADATA_PREFIX) :]] = cell
                else:
                    call[column] = cell
            if metadata:
                call["metadata"] = metadata
            calls.append(call)
            lines.append(line)
            if len(calls) > MAX_CALLS:
                break
    except csv.Error as exc:
        raise InvalidRequest.single("body", f"is not valid CSV: {exc}") from exc
    if problems:
        raise InvalidRequest(problems)
    body: dict[str, Any] = {k: v for k, v in query.items() if k in CAMPAIGN_FIELDS}
    defaults = {k: v for k, v in query.items() if k not in CAMPAIGN_FIELDS}
    if defaults:
        body["defaults"] = defaults
    body["calls"] = calls
    return body, lines


# --- a campaign's calls: the moves the campaign makes (pure; the store applies them atomically) -------


def release(call: Call, at: str) -> Call | None:
    """A campaign call waiting for its turn (SCHEDULED) → QUEUED; None if it is no longer waiting."""
    if call.status is not CallStatus.SCHEDULED or call.call_date:
        return None
    moved = call.model_copy(update={"status": CallStatus.QUEUED, "updated_at": at})
    return moved.with_event(at, RELEASED)


def hold(call: Call, token: str, at: str) -> Call | None:
    """A call claimed (DIALING, not dialed yet) while its campaign is paused → SCHEDULED, waiting again."""
    if call.status is not CallStatus.DIALING or call.claim_token != token:
        return None
    held = call.model_copy(
        update={"status": CallStatus.SCHEDULED, "updated_at": at, "claim_token": None, "dialed_at": None}
    )
    return held.with_event(at, "campaign.paused")


def cancel(call: Call, at: str, token: str | None = None) -> Call | None:
    """A campaign call not dialing yet → CANCELED (`token`: the placer's own claim, not dialed yet)."""
    waiting = call.status in (CallStatus.SCHEDULED, CallStatus.QUEUED)
    claimed = token is not None and call.status is CallStatus.DIALING and call.claim_token == token
    if not (waiting or claimed):
        return None
    done = call.model_copy(
        update={
            "status": CallStatus.CANCELED,
            "updated_at": at,
            "ended_at": at,
            "claim_token": None,
            "error_code": CANCELED_BY_CAMPAIGN,
            "error_desc": "its campaign was cancelled before the call was dialed",
        }
    )
    return done.with_event(at, "canceled", by="campaign")
