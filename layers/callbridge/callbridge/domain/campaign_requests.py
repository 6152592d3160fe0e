"""A campaign's request: up to 10,000 calls in one JSON or CSV body, each judged as `POST /pcall/call` judges a
call (its parameters, then the account's rules), every problem of every call at once; a default wrong on its own
is named once, where it was written."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from callbridge.domain.account_rules import Checkable, MenuProblems, account_rules, checkable, rest_of
from callbridge.domain.accounts import Account
from callbridge.domain.campaigns import AcceptedCall, CampaignSpec
from callbridge.domain.csv_rows import rows_with_lines
from callbridge.domain.errors import FieldProblem, InvalidRequest
from callbridge.domain.limits import MAX_DELAY_SECONDS
from callbridge.domain.metadata import RULE as METADATA_RULE
from callbridge.domain.metadata import MetadataError, parse_metadata
from callbridge.domain.notifications import callback_url_problem
from callbridge.domain.requests import REQUIRES, parameter_problems, parse_call_request
from callbridge.domain.scheduling import CallDateError, check_window, parse_call_date

MAX_CALLS = 10_000  # per request
# Different metadata keys over a campaign's calls: its report has a column for each (and its item lists them).
MAX_METADATA_KEYS = 100
MAX_NAME = 200
METADATA_PREFIX = "metadata."  # a CSV column `metadata.KEY` is metadata[KEY]
# Campaign fields other than `name`, `defaults` and `calls` (also the query parameters of a CSV request).
CAMPAIGN_FIELDS = ("name", "calls_per_second", "max_in_progress", "start_at", "callback_url")


def _metadata_problems(name: str, metadata: Any) -> tuple[dict[str, str], list[FieldProblem]]:
    """The call's rules for `metadata` (domain/metadata.py), its problems named `name`: an object, or its JSON text
    as `POST /pcall/call` takes it (the only way a CSV body's query or a `metadata` column can give it)."""
    if isinstance(metadata, str) and not metadata.strip():
        return {}, []  # blank counts as absent, as for a call
    if not isinstance(metadata, Mapping | str):
        return {}, [FieldProblem(name, METADATA_RULE)]
    try:
        return parse_metadata(metadata), []
    except MetadataError as exc:
        return {}, [FieldProblem(name, str(exc))]


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


def _defaults_for(defaults: Mapping[str, Any], call: Mapping[str, Any]) -> dict[str, Any]:
    """The defaults that apply to a call: all but a modifier whose option the call does not have (a default
    `timezone` is for the calls with a `call_date`)."""
    merged = {**defaults, **call}
    return {k: v for k, v in defaults.items() if k not in REQUIRES or REQUIRES[k] in merged}


@dataclass(frozen=True)
class _WrongDefault:
    """A default wrong whatever a call that takes it gives with it: its problems (named as a call's), and the other
    parameters their verdict read (a call that gives one of those has its own verdict: a call_date is judged in the
    call's own `timezone`)."""

    problems: list[FieldProblem]
    reads: tuple[str, ...] = ()

    def taken(self, name: str, applied: Mapping[str, Any], own: Mapping[str, Any]) -> bool:
        """Whether a call with its `own` parameters, and the defaults `applied` to it, takes this verdict."""
        return name in applied and name not in own and not any(k in own for k in self.reads)


def _wrong_alone(
    defaults: Mapping[str, Any],
    account: Account,
    now: datetime,
    menu_problems: MenuProblems | None,
    allow_loopback_callbacks: bool,
) -> dict[str, _WrongDefault]:
    """The defaults that are wrong whatever a call that takes them gives with them: a value that breaks its
    parameter's rule, an unknown parameter, and the account's rules that read nothing of a call: an IVR menu the
    account does not have, a call_date in the past or too far ahead in the defaults' time zone (or the account's).

    A call that takes one of them is refused for it, but it is named once, where it was written, not once per
    call. A default wrong only together with a call's own parameters (a rule between parameters, a call_date in the
    call's own time zone, a calling window for the call's number) is not here: that is the call's problem."""
    wrong: dict[str, _WrongDefault] = {}
    refused = parameter_problems(defaults, allow_loopback_callbacks=allow_loopback_callbacks)
    for problem in refused:
        wrong.setdefault(problem.field, _WrongDefault([])).problems.append(problem)
    alone = rest_of(defaults, refused)
    # Not the policies: they read the call's number.
    unpoliced = Checkable(None, alone.call_date, alone.timezone, alone.answer_ivr, None)
    for problem in account_rules(unpoliced, account, now, menu_problems).problems:
        reads = ("timezone",) if problem.field == "call_date" else ()
        wrong.setdefault(problem.field, _WrongDefault([], reads)).problems.append(problem)
    return wrong


def _call_order(problem: FieldProblem) -> tuple[int, int]:
    """Where a problem goes in the list: the campaign's own fields first, then the calls' by number (line)."""
    head, _, rest = problem.field.partition(".")
    number = rest.partition(".")[0]
    return (1, int(number)) if head == "calls" and number.isdigit() else (0, 0)


def parse_campaign(
    body: Mapping[str, Any],
    *,
    account: Account,
    now: datetime,
    carrier_cps: float,
    allow_loopback_callbacks: bool = False,
    positions: list[int] | None = None,
    found_before: Iterable[FieldProblem] = (),
    menu_problems: MenuProblems | None = None,
    defaults_in_query: bool = False,
) -> CampaignSpec:
    """Validate a whole campaign request; InvalidRequest lists every broken rule, `calls.<i>.<field>` per call.

    Each call is judged by the rules of `POST /pcall/call`, every problem of a call at once: its parameters', and
    the account's rules (domain/account_rules.py) for those that are valid: its call_date, its policies with the
    account's defaults, and its `answer_ivr` by `menu_problems`, the problems of a menu code for this account.
    A default wrong whatever a call gives with it is named once, `defaults.<field>` (by its name when
    `defaults_in_query`: a CSV body's query parameters), not for each call that takes it.
    `positions` numbers the calls in errors (the CSV line numbers); by default their index. `found_before`: problems
    found before (rows of a CSV body that could not be read as calls), listed with the rest in the calls' order.
    """
    before = list(found_before)
    problems: list[FieldProblem] = list(before)
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
    elif cps is not None and cps * MAX_DELAY_SECONDS < 1:
        # a release step waits 1 / calls_per_second in one SQS delay, at most MAX_DELAY_SECONDS: slower would not
        # be kept
        problems.append(
            FieldProblem("calls_per_second", f"must be at least 1/{MAX_DELAY_SECONDS} (one call every 15 minutes)")
        )
    cap, found = _positive_number("max_in_progress", body.get("max_in_progress"), integer=True)
    problems += found
    start_at = None
    raw_start = body.get("start_at")
    if raw_start is not None and not (isinstance(raw_start, str) and not raw_start.strip()):
        try:
            if not isinstance(raw_start, str):
                raise CallDateError("must be 'YYYY-MM-DD HH:MM' or ISO 8601 with an offset, e.g. 2026-12-01 09:30")
            start_at = parse_call_date(raw_start, account.timezone)
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

    def default_name(name: str) -> str:
        return name if defaults_in_query else f"defaults.{name}"

    default_metadata: dict[str, str] = {}
    if "metadata" in defaults:
        default_metadata, found = _metadata_problems(default_name("metadata"), defaults["metadata"])
        problems += found
    calls = body.get("calls")
    if not isinstance(calls, list) or not calls:
        if not before:  # else every row was refused already, each named
            problems.append(FieldProblem("calls", "required: a list of 1 to 10,000 calls"))
        calls = []
    elif len(calls) > MAX_CALLS:
        problems.append(FieldProblem("calls", f"must have at most {MAX_CALLS:,} calls"))
        calls = []
    accepted: list[AcceptedCall] = []
    metadata_keys: set[str] = set()
    base = {k: v for k, v in defaults.items() if k != "metadata"}
    wrong_defaults = _wrong_alone(base, account, now, menu_problems, allow_loopback_callbacks)
    taken: set[str] = set()  # the wrong defaults some call takes (refused for them, named once)
    for index, call in enumerate(calls):
        where = f"calls.{positions[index] if positions else index}"
        if not isinstance(call, Mapping):
            problems.append(FieldProblem(where, "must be an object of call parameters"))
            continue
        metadata = dict(default_metadata)
        if "metadata" in call:
            own, found = _metadata_problems(f"{where}.metadata", call["metadata"])
            problems += found
            if own and default_metadata:  # the call's own keys over the defaults': the whole must fit too
                metadata, found = _metadata_problems(f"{where}.metadata", {**default_metadata, **own})
                problems += found
            else:
                metadata.update(own)
        metadata_keys.update(metadata)
        own_params = {k: v for k, v in call.items() if k != "metadata"}
        applied = _defaults_for(base, own_params)
        params = {**applied, **own_params}
        try:
            request = parse_call_request(params, allow_loopback_callbacks=allow_loopback_callbacks)
        except InvalidRequest as exc:
            # Every problem of the call at once: the account's rules judge the parameters found valid too.
            found = exc.problems + account_rules(rest_of(params, exc.problems), account, now, menu_problems).problems
        else:
            rules = account_rules(checkable(request), account, now, menu_problems)
            if not rules.problems:
                accepted.append(AcceptedCall(params, metadata, request, rules.policy, rules.due))
                continue
            found = rules.problems
        # A wrong default the call takes is named once, after the calls, not again for each call that takes it.
        inherited = {k: w.problems for k, w in wrong_defaults.items() if w.taken(k, applied, own_params)}
        taken.update(inherited)
        problems += _call_problems(where, [p for p in found if p not in inherited.get(p.field, ())])
    problems += [
        FieldProblem(default_name(p.field), p.message)
        for k, w in wrong_defaults.items()
        if k in taken
        for p in w.problems
    ]
    if len(metadata_keys) > MAX_METADATA_KEYS:
        problems.append(
            FieldProblem(
                "calls",
                f"use {len(metadata_keys):,} different metadata keys; a campaign's calls may use at most "
                f"{MAX_METADATA_KEYS} (its report has a column for each)",
            )
        )
    if problems:
        raise InvalidRequest(sorted(problems, key=_call_order))
    return CampaignSpec(
        name=str(name).strip(),
        calls=accepted,
        calls_per_second=cps or carrier_cps,
        max_in_progress=int(cap) if cap is not None else None,
        start_at=start_at,
        callback_url=callback_url or None,
        metadata_keys=sorted(metadata_keys),
    )


def campaign_from_csv(text: str, query: Mapping[str, str]) -> tuple[dict[str, Any], list[int], list[FieldProblem]]:
    """A CSV body (header row of call parameters; `metadata.KEY` columns) and the query's campaign fields as
    the same request a JSON body makes, the line number of each call (the header is line 1), and the problems of
    the rows that cannot be read as calls (for `parse_campaign` to list with every other problem of the request).

    Query parameters other than the campaign fields are defaults for every call. A header that cannot be read is
    an InvalidRequest at once: no row can be read without it.
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
    if "metadata" in seen and any(c.startswith(METADATA_PREFIX) for c in seen):
        problems.append(FieldProblem("metadata", "give metadata as one column of JSON or as metadata.KEY columns"))
    if problems:
        raise InvalidRequest(problems)
    calls: list[dict[str, Any]] = []
    lines: list[int] = []
    try:
        for line, row in rows_with_lines(reader):
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
    body: dict[str, Any] = {k: v for k, v in query.items() if k in CAMPAIGN_FIELDS}
    defaults = {k: v for k, v in query.items() if k not in CAMPAIGN_FIELDS}
    if defaults:
        body["defaults"] = defaults
    body["calls"] = calls
    return body, lines, problems
