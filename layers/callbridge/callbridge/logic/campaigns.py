"""Use cases of the campaigns API: accept a campaign, read, list, pause, resume, cancel, its calls and report."""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from callbridge.domain import json_objects
from callbridge.domain.accounts import Account
from callbridge.domain.calls import iso, new_callid
from callbridge.domain.campaign_requests import campaign_from_csv, parse_campaign
from callbridge.domain.campaigns import (
    CANCELABLE,
    PAUSABLE,
    RESUMABLE,
    SUPPRESSED_AT_INTAKE,
    Campaign,
    CampaignCall,
    CampaignNotFound,
    CampaignSpec,
    CampaignStatus,
    Counts,
    campaign_call,
    campaign_callid,
    chunked,
    first_state,
)
from callbridge.domain.errors import Conflict, FieldProblem, InvalidRequest
from callbridge.domain.ivr import snapshot
from callbridge.domain.spreadsheet import spreadsheet_safe
from callbridge.logic.calls import page_limit
from callbridge.logic.intake import IDEMPOTENCY_TTL_SECONDS, MAX_IDEMPOTENCY_KEY, Accepted
from callbridge.logic.ivr import MenuReader, menus_for_call
from callbridge.ports import (
    CallsStore,
    CampaignsQueue,
    CampaignsStore,
    IdempotencyKeyTaken,
    IdempotencyRecord,
    IdempotencyRecords,
    SuppressionList,
)

MAX_BODY = 5 * 1024 * 1024  # 10,000 calls with room to spare; Lambda takes at most 6 MB
CSV = "text/csv"
# The report's columns (before one per metadata key), each with how it is read from the call as the API shows it.
_REPORT: dict[str, Callable[[dict[str, Any]], Any]] = {
    "callid": lambda c: c["callid"],
    "to": lambda c: c["request"].get("to", ""),
    "status": lambda c: c["status"],
    "answered_by": lambda c: c["answered_by"],
    "billed_seconds": lambda c: c["billed_seconds"],
    "attempts": lambda c: len(c["attempts"]),  # every carrier attempt, the current one included
    "digits": lambda c: c["digits"],
    "error_code": lambda c: c["error_code"] or "",
    "error_desc": lambda c: c["error_desc"] or "",
    "started_at": lambda c: c["started_at"] or "",
    "ended_at": lambda c: c["ended_at"] or "",
}
REPORT_COLUMNS = tuple(_REPORT)


@dataclass(frozen=True)
class CampaignPorts:
    """What the campaigns API needs from the outside world."""

    campaigns: CampaignsStore
    calls: CallsStore
    idempotency: IdempotencyRecords
    menus: MenuReader
    queue: CampaignsQueue
    carrier_cps: float
    suppressions: SuppressionList | None = None  # the do-not-call list; None: no number is suppressed
    allow_loopback_callbacks: bool = False


# --- messages to the campaigns function (one home for their shape) ---------------------------


def fanout_message(campaign_id: str, chunk: int, start: int = 0) -> dict[str, Any]:
    """Store a chunk's calls from its `start`-th one on (a fan-out that ran out of time goes on from there)."""
    message: dict[str, Any] = {"kind": "fanout", "campaign": campaign_id, "chunk": chunk}
    if start:
        message["from"] = start
    return message


def tick_message(campaign_id: str, seq: int) -> dict[str, Any]:
    return {"kind": "tick", "campaign": campaign_id, "seq": seq}


def cancel_message(campaign_id: str) -> dict[str, Any]:
    return {"kind": "cancel", "campaign": campaign_id}


def notify_message(campaign_id: str, attempt: int) -> dict[str, Any]:
    return {"kind": "notify", "campaign": campaign_id, "attempt": attempt}


# --- accepting a campaign ------------------------------------------------------------------


def _request_body(
    body: bytes, content_type: str | None, query: Mapping[str, str]
) -> tuple[dict[str, Any], list[int] | None, list[FieldProblem], list[FieldProblem]]:
    """The request as a JSON body makes it, the CSV line of each call (None for JSON), the problems of CSV rows
    that could not be read as calls, and the query parameters sent with a JSON body (its fields belong in it)."""
    if len(body) > MAX_BODY:
        raise InvalidRequest.single("body", f"must be at most {MAX_BODY} bytes")
    media = (content_type or "").partition(";")[0].strip().lower()
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequest.single("body", "must be UTF-8") from exc
    if media == CSV:
        request, lines, unread = campaign_from_csv(text, query)
        return request, lines, unread, []
    if media != "application/json" and not media.endswith("+json"):
        raise InvalidRequest.single("Content-Type", f"must be application/json or {CSV}")
    misplaced = [FieldProblem(k, "belongs in the JSON body") for k in sorted(query)]
    try:
        data = json_objects.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidRequest([*misplaced, FieldProblem("body", "is not valid JSON")]) from exc
    if not isinstance(data, dict):
        raise InvalidRequest([*misplaced, FieldProblem("body", "must be a JSON object")])
    return data, None, [], misplaced


@dataclass
class _Menus:
    """The account's IVR menus the calls name, each code looked up once: the snapshots of those found (what the
    campaign keeps) and the problems of those that are not."""

    account: Account
    store: MenuReader
    found: dict[str, Any] = field(default_factory=dict)
    missing: dict[str, list[FieldProblem]] = field(default_factory=dict)

    def problems(self, code: str) -> list[FieldProblem]:
        if code not in self.found and code not in self.missing:
            try:
                self.found[code] = snapshot(menus_for_call(self.store, self.account.api_key, code))
            except InvalidRequest as exc:
                self.missing[code] = exc.problems
        return self.missing.get(code, [])


def _suppressed(spec: CampaignSpec, account: Account, ports: CampaignPorts) -> set[str]:
    """The calls' numbers that are on the account's do-not-call list (read in batches)."""
    if ports.suppressions is None:
        return set()
    return ports.suppressions.listed(account.api_key, sorted({c.request.to for c in spec.calls}))


def _calls(spec: CampaignSpec, campaign_id: str, account: Account, suppressed: set[str]) -> list[CampaignCall]:
    calls = []
    for index, call in enumerate(spec.calls):
        request = call.request
        caller_id = request.from_ or account.caller_id
        record = request.record or account.record_default
        accepted = {k: str(v).strip() for k, v in call.params.items() if str(v).strip()}
        accepted["from"] = accepted.get("from", caller_id)
        accepted["record"] = record
        normalized = {**request.present(), "from": caller_id, "record": record}
        calls.append(
            CampaignCall(
                index,
                campaign_callid(campaign_id, index),
                normalized,
                accepted,
                call.metadata,
                policy=call.policy.model_dump(exclude_defaults=True),
                call_date=iso(call.call_date) if call.call_date else None,
                suppressed=request.to in suppressed,
            )
        )
    return calls


def _suppressed_report(calls: list[CampaignCall], lines: list[int] | None) -> list[dict[str, str]]:
    """The intake's word on each call to a suppressed number, named like a 400 names a call's field."""
    return [
        {
            "field": f"calls.{lines[c.index] if lines else c.index}.to",
            "to": c.request["to"],
            "message": SUPPRESSED_AT_INTAKE,
        }
        for c in calls
        if c.suppressed
    ]


def _hash(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def accept_campaign(
    body: bytes,
    content_type: str | None,
    query: Mapping[str, str],
    account: Account,
    ports: CampaignPorts,
    *,
    now: datetime,
    idempotency_key: str | None = None,
    refused: Sequence[FieldProblem] = (),
) -> Accepted:
    """Validate a whole campaign (all or nothing), store it, and hand its calls to the fan-out; the response data
    (a replay of the first response when the Idempotency-Key and request come again: nothing new is stored).

    `refused`: problems the caller found in the request before its fields (a query parameter given twice),
    reported with theirs; the request is then refused whatever its fields."""
    before = list(refused)
    if idempotency_key is not None and not (
        0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY and idempotency_key.isascii() and idempotency_key.isprintable()
    ):
        before.append(FieldProblem("Idempotency-Key", f"must be 1-{MAX_IDEMPOTENCY_KEY} printable ASCII characters"))
    try:
        request, lines, unread, misplaced = _request_body(body, content_type, query)
    except InvalidRequest as exc:
        raise InvalidRequest([*before, *exc.problems]) from exc
    # A JSON key given twice (`calls.3.to`), a query parameter beside a JSON body, or a bad Idempotency-Key is
    # refused with the campaign's other problems, before any replay.
    repeated = [*before, *misplaced, *json_objects.repeated_problems(request)]
    request_hash = _hash(request)
    if idempotency_key and not repeated:
        existing = ports.idempotency.get(account.api_key, idempotency_key)
        if existing and existing.expires_at > now.timestamp():
            return _replay(existing, request_hash, ports)
    menus = _Menus(account, ports.menus)
    try:
        spec = parse_campaign(
            request,
            account=account,
            now=now,
            carrier_cps=ports.carrier_cps,
            allow_loopback_callbacks=ports.allow_loopback_callbacks,
            positions=lines,
            found_before=unread,
            menu_problems=menus.problems,
            defaults_in_query=lines is not None,  # a CSV body: its query parameters are the defaults
        )
    except InvalidRequest as exc:
        raise InvalidRequest(repeated + exc.problems) from exc
    if repeated:
        raise InvalidRequest(repeated)
    # The menus of the calls' codes (a default's code every call overrides was looked up too, and is not kept).
    ivr_menus = {code: menus.found[code] for code in sorted({c.request.answer_ivr or "" for c in spec.calls}) if code}
    campaign_id = new_callid(now.timestamp())
    calls = _calls(spec, campaign_id, account, _suppressed(spec, account, ports))
    at = iso(now)
    later = spec.start_at is not None and spec.start_at > now
    campaign = Campaign(
        id=campaign_id,
        account_id=account.api_key,
        name=spec.name,
        status=CampaignStatus.SCHEDULED if later else CampaignStatus.RUNNING,
        total=len(calls),
        created_at=at,
        updated_at=at,
        start_at=iso(spec.start_at) if spec.start_at else None,
        started_at=None if later else at,
        calls_per_second=spec.calls_per_second,
        max_in_progress=spec.max_in_progress,
        callback_url=spec.callback_url,
        chunks=len(chunked(calls)),
        metadata_keys=spec.metadata_keys,
        ivr_menus=ivr_menus,
    )
    counts = _first_counts(calls)
    data = {
        "campaign": campaign.public(counts),
        "suppressed": _suppressed_report(calls, lines),
        "code": 200,
        "code_desc": "",
    }
    record = (
        IdempotencyRecord(idempotency_key, request_hash, data, int(now.timestamp()) + IDEMPOTENCY_TTL_SECONDS)
        if idempotency_key
        else None
    )
    try:
        ports.campaigns.create(campaign, chunked(calls), counts, record)
    except IdempotencyKeyTaken:
        existing = ports.idempotency.get(account.api_key, idempotency_key or "")
        if existing is None:
            raise Conflict("Idempotency-Key is in use by a request still in progress; retry") from None
        return _replay(existing, request_hash, ports)
    _start(campaign, ports.queue, now)
    return Accepted(data)


def _first_counts(calls: list[CampaignCall]) -> Counts:
    """The counts before any call is stored: each call waiting, or ended if its number was suppressed."""
    counts = Counts()
    for call in calls:
        counts = counts.add(first_state(call).counts())
    return counts


def _start(campaign: Campaign, queue: CampaignsQueue, now: datetime) -> None:
    """Fan the calls out and start the release chain (again after a replay: both are idempotent)."""
    delay = 0
    if campaign.start_at:
        delay = max(0, int((datetime.fromisoformat(campaign.start_at.replace("Z", "+00:00")) - now).total_seconds()))
    messages = [(fanout_message(campaign.id, n), 0) for n in range(campaign.chunks)]
    messages.append((tick_message(campaign.id, 1), delay))
    queue.send(messages)


def _replay(existing: IdempotencyRecord, request_hash: str, ports: CampaignPorts) -> Accepted:
    if existing.request_hash != request_hash:
        raise Conflict("Idempotency-Key was already used with a different request")
    campaign_id = existing.response.get("campaign", {}).get("id")
    campaign = ports.campaigns.get(str(campaign_id)) if campaign_id else None
    if campaign is not None and campaign.status in (CampaignStatus.SCHEDULED, CampaignStatus.RUNNING):
        # The first response may have been lost with a failed send: send again (the fan-out is idempotent).
        ports.queue.send([(fanout_message(campaign.id, n), 0) for n in range(campaign.chunks)])
    return Accepted(existing.response, replayed=True)


# --- reading ----------------------------------------------------------------------------------


def _owned(ports: CampaignPorts, account: Account, campaign_id: str) -> Campaign:
    campaign = ports.campaigns.get(campaign_id) if _plausible(campaign_id) else None
    if campaign is None or campaign.account_id != account.api_key:
        raise CampaignNotFound(campaign_id)
    return campaign


def _plausible(value: str) -> bool:
    return 0 < len(value) <= 64 and value.isalnum()


def get_campaign(ports: CampaignPorts, account: Account, campaign_id: str) -> dict[str, Any]:
    """The campaign with its counts; another account's is not found."""
    campaign = _owned(ports, account, campaign_id)
    return campaign.public(ports.campaigns.counts(campaign.id))


def _token(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def _untoken(token: str | None) -> str | None:
    if not token:
        return None
    try:
        value = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest.single("next", "not a token returned by this listing") from exc
    if not 0 < len(value) <= 128 or not all(c.isalnum() or c in "-:.#TZ" for c in value):
        raise InvalidRequest.single("next", "not a token returned by this listing")
    return value


def list_campaigns(
    ports: CampaignPorts,
    account: Account,
    *,
    limit: int = 50,
    next_token: str | None = None,
    refused: Sequence[FieldProblem] = (),
) -> dict[str, Any]:
    """The account's campaigns, newest first, with their counts (`refused`: see InvalidRequest.gathering)."""
    problems = InvalidRequest.gathering(refused)
    after = problems.checked(lambda: _untoken(next_token), None)
    size = problems.checked(lambda: page_limit(limit), limit)
    problems.raise_if_any()
    cursor = None
    if after:
        campaign_id = after.rpartition("#")[2]
        # Built from the caller's own account: an edited token cannot reach another account's campaigns.
        cursor = {"pk": campaign_id, "sk": "CAMPAIGN", "account_id": account.api_key, "created_key": after}
    campaigns, last = ports.campaigns.list_campaigns(account.api_key, size, cursor)
    return {
        "campaigns": [c.public(ports.campaigns.counts(c.id)) for c in campaigns],
        "next": _token(str(last["created_key"])) if last else None,
    }


def list_campaign_calls(
    ports: CampaignPorts,
    account: Account,
    campaign_id: str,
    *,
    limit: int = 50,
    next_token: str | None = None,
    refused: Sequence[FieldProblem] = (),
) -> dict[str, Any]:
    """The campaign's calls (GET /pcall/calls?campaign=<id>), a page at a time."""
    problems = InvalidRequest.gathering(refused)
    after = problems.checked(lambda: _untoken(next_token), None)
    size = problems.checked(lambda: page_limit(limit), limit)
    problems.raise_if_any()
    campaign = _owned(ports, account, campaign_id)
    cursor = {"pk": campaign.id, "sk": f"CALL#{after}"} if after else None
    callids, last = ports.campaigns.members(campaign.id, size, cursor)
    calls = [c for c in (ports.calls.get(callid) for callid in callids) if c is not None]
    return {
        "calls": [c.public(with_timeline=False) for c in calls],
        "next": _token(str(last["sk"])[5:]) if last else None,
    }


# --- control ----------------------------------------------------------------------------------


def pause(ports: CampaignPorts, account: Account, campaign_id: str, *, now: datetime) -> dict[str, Any]:
    """No further call of the campaign is dialed (calls already dialing go on); 409 unless SCHEDULED or RUNNING."""
    _owned(ports, account, campaign_id)
    campaign = ports.campaigns.move(campaign_id, account.api_key, PAUSABLE, CampaignStatus.PAUSED, iso(now))
    return campaign.public(ports.campaigns.counts(campaign.id))


def resume(ports: CampaignPorts, account: Account, campaign_id: str, *, now: datetime) -> dict[str, Any]:
    """A paused campaign goes on (SCHEDULED again if it had not started); 409 unless PAUSED."""
    current = _owned(ports, account, campaign_id)
    target = CampaignStatus.RUNNING if current.started_at else CampaignStatus.SCHEDULED
    campaign = ports.campaigns.move(campaign_id, account.api_key, RESUMABLE, target, iso(now))
    header = ports.campaigns.header(campaign_id) or {}
    ports.queue.send([(tick_message(campaign_id, int(header.get("tick_seq", 0)) + 1), 0)])
    return campaign.public(ports.campaigns.counts(campaign.id))


def cancel(ports: CampaignPorts, account: Account, campaign_id: str, *, now: datetime) -> dict[str, Any]:
    """Every call not yet dialing ends CANCELED, and the campaign CANCELED; 409 once FINISHED or CANCELED."""
    _owned(ports, account, campaign_id)
    campaign = ports.campaigns.move(campaign_id, account.api_key, CANCELABLE, CampaignStatus.CANCELED, iso(now))
    ports.queue.send([(cancel_message(campaign_id), 0)])
    return campaign.public(ports.campaigns.counts(campaign.id))


# --- the report -----------------------------------------------------------------------------


def report_csv(ports: CampaignPorts, account: Account, campaign_id: str) -> str:
    """One row per call: its outcome and one column per metadata key."""
    campaign = _owned(ports, account, campaign_id)
    accepted = ports.campaigns.chunks(campaign.id)
    stored = ports.calls.get_many([c.callid for c in accepted])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([*REPORT_COLUMNS, *(f"metadata.{k}" for k in campaign.metadata_keys)])
    for entry in accepted:
        call = stored.get(entry.callid) or campaign_call(entry, campaign)  # not stored yet (the fan-out is running)
        shown = call.public(with_timeline=False)
        row = [read(shown) for read in _REPORT.values()]
        # Your metadata and the carrier's words are anyone's text: no cell may open as a formula in a spreadsheet.
        cells = [*row, *(entry.metadata.get(k, "") for k in campaign.metadata_keys)]
        writer.writerow([spreadsheet_safe(cell) for cell in cells])
    return out.getvalue()
