"""api: the /pcall HTTP API — accept calls, list and cancel scheduled calls, list requested calls."""

import json
from datetime import UTC, datetime
from functools import cache, cached_property
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import unquote

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from callbridge import console, openapi
from callbridge.adapters.aws import within_deadline
from callbridge.adapters.campaign_queue import SqsCampaignsQueue
from callbridge.adapters.campaigns import DynamoCampaignsStore
from callbridge.adapters.dynamodb.accounts import DynamoAccountsStore
from callbridge.adapters.dynamodb.calls import DynamoCallsStore
from callbridge.adapters.dynamodb.idempotency import DynamoIdempotency
from callbridge.adapters.dynamodb.ivr_menus import DynamoIvrMenus
from callbridge.adapters.login_failures import DynamoLoginFailures
from callbridge.adapters.outcome_metrics import count_ended
from callbridge.adapters.pacing import ListingMark
from callbridge.adapters.sqs import SqsCallsQueue
from callbridge.adapters.suppressions import DynamoSuppressionList
from callbridge.domain.accounts import Account
from callbridge.domain.campaigns import CampaignNotFound
from callbridge.domain.errors import (
    CallNotFound,
    Conflict,
    FieldProblem,
    InvalidRequest,
    IvrMenuNotFound,
    ServiceUnavailable,
    SuppressionNotFound,
    TooManyFailedLogins,
    Unauthorized,
    rule_message,
)
from callbridge.logic import calls as call_queries
from callbridge.logic import campaigns
from callbridge.logic import ivr as ivr_menus
from callbridge.logic import suppressions as dnc
from callbridge.logic.auth import Authenticator, LoginLimiter
from callbridge.logic.calls import MAX_LIMIT
from callbridge.logic.intake import Intake, accept_call
from callbridge.settings import ApiSettings, CampaignSettings
from callbridge.tracing import LazyTracer
from callbridge.web import (
    PAGE_HEADERS,
    CrossSiteRequest,
    envelope,
    error_envelope,
    fits_in_an_answer,
    made_for_another_site,
    parse_params,
    raw_body,
    repeated_in_query,
)

if TYPE_CHECKING:
    from callbridge.carrier.base import Carrier

logger = Logger()
tracer = LazyTracer()
metrics = Metrics()
app = APIGatewayHttpResolver(enable_validation=True)


class Deps:
    """The function's adapters, built once per container on first use."""

    def __init__(self, settings: ApiSettings) -> None:
        self.accounts = DynamoAccountsStore(settings.accounts_table)
        self.menus = DynamoIvrMenus(settings.accounts_table)
        self.idempotency = DynamoIdempotency(settings.accounts_table)
        self.calls = DynamoCallsStore(
            settings.calls_table,
            idempotency_table=settings.accounts_table,
            schedule_shards=settings.schedule_shards,
            timing=settings.timing(),
        )
        self.settings = settings
        mark = ListingMark(settings.pacing_table, clock=lambda: _now().timestamp())  # the clock intake stamps with
        self.suppressions = DynamoSuppressionList(settings.suppressions_table, mark=mark)
        self.intake = Intake(
            calls=self.calls,
            accounts=self.accounts,
            idempotency=self.idempotency,
            menus=self.menus,
            queue=SqsCallsQueue(settings.calls_queue_url),
            suppressions=self.suppressions,
            allow_loopback_callbacks=settings.callback_allow_loopback,
        )
        self.login_limiter = LoginLimiter(DynamoLoginFailures(settings.login_failures_table), on_error=logger.warning)
        self.auth = Authenticator(self.accounts, ttl=settings.account_cache_seconds, limiter=self.login_limiter)
        campaign_settings = CampaignSettings.from_env()
        self.campaigns = campaigns.CampaignPorts(
            campaigns=DynamoCampaignsStore(
                campaign_settings.campaigns_table, idempotency_table=settings.accounts_table
            ),
            calls=self.calls,
            idempotency=self.idempotency,
            menus=self.menus,
            queue=SqsCampaignsQueue(campaign_settings.campaigns_queue_url),
            carrier_cps=campaign_settings.carrier_cps,
            suppressions=self.suppressions,
            allow_loopback_callbacks=settings.callback_allow_loopback,
        )

    @cached_property
    def carrier(self) -> "Carrier":
        """The carrier, for DELETE /pcall/calls/{callid} only: imported and built on the first one (its secret is
        read when it is first used), so the other routes' cold start does not pay for it."""
        from callbridge.adapters.carrier_client import CurrentCarrier

        return CurrentCarrier(self.settings.carrier_secret_id, self.settings.carrier_base_url)


@cache
def deps() -> Deps:
    return Deps(ApiSettings.from_env())


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response[str]:
    return Response(status, content_types.APPLICATION_JSON, json.dumps(body), headers=headers)


def _authenticate() -> Account:
    event = app.current_event
    # Refused before the credentials are read: the browser sent them, not the person.
    host = event.headers.get("host") or str(event.request_context.domain_name)
    if made_for_another_site(event.http_method, event.headers, host):
        raise CrossSiteRequest()
    source = event.request_context.http.get("sourceIp")  # always set by API Gateway
    return deps().auth.authenticate(event.headers.get("authorization"), str(source) if source else None)


def _unknown_query() -> list[FieldProblem]:
    """A problem per query parameter the matched route does not declare (a misspelt filter must not be ignored)."""
    given = app.current_event.query_string_parameters or {}
    route = app.context.get("_route")
    declared = sorted(f.alias for f in route.dependant.query_params) if route is not None else []
    takes = f"this route takes {', '.join(declared)}" if declared else "this route takes none"
    if not declared and route is not None and route.method in ("POST", "PUT"):
        takes = "parameters belong in the request body"
    return [FieldProblem(name, f"unknown query parameter; {takes}") for name in sorted(given) if name not in declared]


def _refused() -> list[FieldProblem]:
    """The query string's problems found before a route's own checks: parameters Powertools refused (kept by
    `_invalid_parameters`) and parameters the route does not take. A route with checks of its own (filters, a
    paging token, a body) hands them to its use case, which reports them with its own: every problem at once."""
    return [*app.context.get(_REFUSED_PARAMETERS, []), *_unknown_query()]


def _account() -> Account:
    """The caller's account (credentials come first), once the request's query parameters are known ones."""
    account = _authenticate()
    unknown = _unknown_query()
    if unknown:
        raise InvalidRequest(unknown)
    return account


def _allowed_methods(path: str) -> list[str]:
    """The methods some route serves at `path` (Powertools keeps no public list of its routes)."""
    routes = app._static_routes + app._dynamic_routes
    return sorted({route.method for route in routes if route.rule.match(path)})


_REFUSED_PARAMETERS = "refused_parameters"  # app.context: the query parameters Powertools refused


def _now() -> datetime:
    return datetime.now(UTC)


# --- routes --------------------------------------------------------------------------------


@app.post(
    "/pcall/call",
    summary="Make or schedule a phone call",
    responses=openapi.responses("CallAcceptedResponse", 409),
    tags=["calls"],
)
@tracer.capture_method
def create_call() -> Response[str]:
    account = _authenticate()
    unknown = _unknown_query()  # reported with the body's problems, not instead of them
    event = app.current_event
    try:
        params = parse_params(raw_body(event.body, bool(event.is_base64_encoded)), event.headers.get("content-type"))
    except InvalidRequest as exc:
        raise InvalidRequest(unknown + exc.problems) from exc
    accepted = accept_call(
        params,
        account,
        deps().intake,
        now=_now(),
        idempotency_key=event.headers.get("idempotency-key"),
        refused=unknown,
    )
    logger.info("call accepted", extra={"callid": accepted.data.get("callid"), "replayed": accepted.replayed})
    if not accepted.replayed:  # a replay (the same Idempotency-Key and request) stored no call
        metrics.add_metric(name="CallsAccepted", unit=MetricUnit.Count, value=1)
    return _json(200, {"data": accepted.data})


@app.get(
    "/pcall/scheduled",
    summary="List scheduled calls, soonest first",
    responses=openapi.responses("CallListResponse"),
    tags=["scheduled"],
)
def list_scheduled(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Calls per page (1-{MAX_LIMIT}).")] = 50,
    next: Annotated[str | None, Query(description="Token from the previous page.")] = None,
) -> Response[str]:
    account = _authenticate()
    page = call_queries.list_scheduled(deps().calls, account, limit=limit, next_token=next, refused=_refused())
    return _json(200, envelope(200, **page))


@app.delete(
    "/pcall/scheduled/<callid>",
    summary="Cancel a scheduled call",
    responses=openapi.responses("CancelResponse", 404, 409),
    tags=["scheduled"],
)
def cancel_scheduled(
    callid: Annotated[
        str,
        Path(
            description="The callid of a call with a call_date: `data.callid` in the answer to POST /pcall/call, "
            "or a `callid` from GET /pcall/scheduled."
        ),
    ],
) -> Response[str]:
    result = call_queries.cancel_scheduled(deps().calls, _account(), callid, now=_now())
    logger.info("scheduled call canceled", extra={"callid": callid})
    return _json(200, envelope(200, **result))


@app.get(
    "/pcall/calls",
    summary="List requested calls, newest first",
    responses=openapi.responses("CallListResponse"),
    tags=["calls"],
)
def list_calls(
    status: Annotated[str | None, Query(description="One or more statuses, comma-separated.")] = None,
    since: Annotated[str | None, Query(description="Created at or after (YYYY-MM-DD or ISO 8601).")] = None,
    until: Annotated[str | None, Query(description="Created at or before (YYYY-MM-DD or ISO 8601).")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Calls per page (1-{MAX_LIMIT}).")] = 50,
    next: Annotated[str | None, Query(description="Token from the previous page.")] = None,
    campaign: Annotated[
        str | None, Query(description="Only the calls of this campaign (its id, as GET /pcall/campaigns lists it).")
    ] = None,
) -> Response[str]:
    account, refused = _authenticate(), _refused()
    if campaign is not None:
        if status or since or until:
            refused.append(FieldProblem("campaign", "cannot be combined with status, since or until"))
        found = campaigns.list_campaign_calls(
            deps().campaigns, account, campaign, limit=limit, next_token=next, refused=refused
        )
        return _json(200, envelope(200, **found))
    page = call_queries.list_calls(
        deps().calls, account, status=status, since=since, until=until, limit=limit, next_token=next, refused=refused
    )
    return _json(200, envelope(200, **page))


def _callid() -> Any:
    return Path(
        description="The call's id: `data.callid` in the answer to POST /pcall/call, or a `callid` from "
        "GET /pcall/calls."
    )


@app.get(
    "/pcall/calls/<callid>",
    summary="One call: request, status, outcome and timeline",
    responses=openapi.responses("CallDetailResponse", 404),
    tags=["calls"],
)
def get_call(callid: Annotated[str, _callid()]) -> Response[str]:
    call = call_queries.get_call(deps().calls, _account(), callid)
    return _json(200, envelope(200, call=call))


@app.delete(
    "/pcall/calls/<callid>",
    summary="Hang up or cancel a call",
    responses=openapi.responses("CallHangupResponse", 404, 409),
    tags=["calls"],
)
def hang_up_call(callid: Annotated[str, _callid()]) -> Response[str]:
    from callbridge.logic.hangup import hang_up  # only this route ends calls at the carrier

    hung_up = hang_up(deps().calls, lambda: deps().carrier, _account(), callid, now=_now())
    logger.info("call hung up or canceled", extra={"callid": callid, "status": hung_up.call.status.value})
    if hung_up.ended_dialed:  # it ended a dialed call: counted here, so its late final callback counts nothing
        count_ended(metrics, hung_up.call)
    return _json(200, envelope(200, call=hung_up.call.public(with_timeline=False)))


@app.get(
    "/pcall/stats",
    summary="Calls per hour by status, with the answer rate (the console's chart)",
    responses=openapi.responses("StatsResponse"),
    tags=["calls"],
)
def call_stats(
    hours: Annotated[
        int, Query(description="How many hours back, counting the current one.", ge=1, le=call_queries.MAX_STATS_HOURS)
    ] = 24,
) -> Response[str]:
    account = _authenticate()
    stats = call_queries.hourly_outcomes(deps().calls, account, now=_now(), hours=hours, refused=_refused())
    return _json(200, envelope(200, **stats))


@app.get("/pcall/console", include_in_schema=False)
def console_page() -> Response[str]:
    return Response(200, "text/html; charset=utf-8", console.page(), headers=console.HEADERS)


@app.get("/pcall/console/<asset>", include_in_schema=False)
def console_asset(asset: str) -> Response[str]:
    found = console.asset(asset)
    if found is None:
        return _json(404, error_envelope(404, message="no such file"))
    content, content_type = found
    return Response(200, content_type, content, headers=console.HEADERS)


# --- campaigns (see logic/campaigns.py) ---------------------------------------------------------


def _campaign_id() -> Any:
    return Path(
        description="The campaign's id: `data.campaign.id` in the answer to POST /pcall/campaigns, or an `id` from "
        "GET /pcall/campaigns."
    )


@app.post(
    "/pcall/campaigns",
    summary="Start a campaign: up to 10,000 calls in one request (JSON, or CSV with the fields as query parameters)",
    responses=openapi.responses("CampaignCreatedResponse", 409),
    tags=["campaigns"],
)
def create_campaign() -> Response[str]:
    account = _authenticate()  # a CSV campaign's fields are query parameters: the use case checks them
    event = app.current_event
    accepted = campaigns.accept_campaign(
        raw_body(event.body, bool(event.is_base64_encoded)),
        event.headers.get("content-type"),
        event.query_string_parameters or {},
        account,
        deps().campaigns,
        now=_now(),
        idempotency_key=event.headers.get("idempotency-key"),
        refused=repeated_in_query(event.raw_query_string),
    )
    campaign = accepted.data["campaign"]
    logger.info("campaign accepted", extra={"campaign": campaign["id"], "total": campaign["total"]})
    if not accepted.replayed:  # a replay (the same Idempotency-Key and request) stored no campaign
        metrics.add_metric(name="CampaignCallsAccepted", unit=MetricUnit.Count, value=campaign["total"])
    return _json(200, {"data": accepted.data})


@app.get(
    "/pcall/campaigns",
    summary="List campaigns, newest first",
    responses=openapi.responses("CampaignListResponse"),
    tags=["campaigns"],
)
def list_campaigns(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Campaigns per page (1-{MAX_LIMIT}).")] = 50,
    next: Annotated[str | None, Query(description="Token from the previous page.")] = None,
) -> Response[str]:
    account = _authenticate()
    found = campaigns.list_campaigns(deps().campaigns, account, limit=limit, next_token=next, refused=_refused())
    return _json(200, envelope(200, **found))


@app.get(
    "/pcall/campaigns/<id>",
    summary="One campaign with the counts of its calls",
    responses=openapi.responses("CampaignResponse", 404),
    tags=["campaigns"],
)
def get_campaign(id: Annotated[str, _campaign_id()]) -> Response[str]:
    found = campaigns.get_campaign(deps().campaigns, _account(), id)
    return _json(200, envelope(200, campaign=found))


@app.post(
    "/pcall/campaigns/<id>/pause",
    summary="Pause a campaign: no further call of it is dialed",
    responses=openapi.responses("CampaignResponse", 404, 409),
    tags=["campaigns"],
)
def pause_campaign(id: Annotated[str, _campaign_id()]) -> Response[str]:
    found = campaigns.pause(deps().campaigns, _account(), id, now=_now())
    return _json(200, envelope(200, campaign=found))


@app.post(
    "/pcall/campaigns/<id>/resume",
    summary="Resume a paused campaign",
    responses=openapi.responses("CampaignResponse", 404, 409),
    tags=["campaigns"],
)
def resume_campaign(id: Annotated[str, _campaign_id()]) -> Response[str]:
    found = campaigns.resume(deps().campaigns, _account(), id, now=_now())
    return _json(200, envelope(200, campaign=found))


@app.delete(
    "/pcall/campaigns/<id>",
    summary="Cancel a campaign: every call not yet dialing ends CANCELED",
    responses=openapi.responses("CampaignResponse", 404, 409),
    tags=["campaigns"],
)
def cancel_campaign(id: Annotated[str, _campaign_id()]) -> Response[str]:
    found = campaigns.cancel(deps().campaigns, _account(), id, now=_now())
    return _json(200, envelope(200, campaign=found))


@app.get(
    "/pcall/campaigns/<id>/report.csv",
    summary="The campaign's report: one CSV row per call",
    responses=openapi.responses("CampaignResponse", 404, 406),
    tags=["campaigns"],
)
def campaign_report(id: Annotated[str, _campaign_id()]) -> Response[str]:
    report = campaigns.report_csv(deps().campaigns, _account(), id)
    if "gzip" not in app.current_event.headers.get("accept-encoding", "") and not fits_in_an_answer(report):
        message = (
            f"the report is {len(report.encode()):,} bytes, more than an answer carries uncompressed; "
            "ask for it gzip-compressed: Accept-Encoding: gzip (curl --compressed)"
        )
        return _json(406, error_envelope(406, message=message))
    # gzip-compressed for every client that accepts it (a 10,000-call report is about 1 MB of text)
    return Response(200, "text/csv; charset=utf-8", report, compress=True)


def _ivr_code() -> Any:
    return Path(description="The menu's code: 1-64 letters, digits, '-' or '_' (what answer_ivr names).")


@app.put(
    "/pcall/ivr/<code>",
    summary="Create or replace an IVR menu",
    responses=openapi.responses("IvrMenuPutResponse"),
    tags=["ivr"],
)
def put_ivr_menu(code: Annotated[str, _ivr_code()]) -> Response[str]:
    account = _authenticate()
    menu = ivr_menus.put_menu(deps().menus, account, code, _body(), now=_now(), refused=_refused())
    return _json(200, envelope(200, **menu))


@app.get(
    "/pcall/ivr/<code>",
    summary="One IVR menu",
    responses=openapi.responses("IvrMenuResponse", 404),
    tags=["ivr"],
)
def get_ivr_menu(code: Annotated[str, _ivr_code()]) -> Response[str]:
    return _json(200, envelope(200, **ivr_menus.get_menu(deps().menus, _account(), code)))


@app.get(
    "/pcall/ivr",
    summary="List IVR menus, by code",
    responses=openapi.responses("IvrMenuListResponse"),
    tags=["ivr"],
)
def list_ivr_menus() -> Response[str]:
    return _json(200, envelope(200, **ivr_menus.list_menus(deps().menus, _account())))


@app.delete(
    "/pcall/ivr/<code>",
    summary="Delete an IVR menu (calls already accepted keep their copy)",
    responses=openapi.responses("IvrMenuDeleteResponse", 404, 409),
    tags=["ivr"],
)
def delete_ivr_menu(code: Annotated[str, _ivr_code()]) -> Response[str]:
    return _json(200, envelope(200, **ivr_menus.delete_menu(deps().menus, _account(), code)))


def _number() -> Any:
    return Path(description="A phone number in any usual spelling (12812345670, +1 (281) 234-5670), URL-encoded.")


def _body() -> bytes:
    event = app.current_event
    return raw_body(event.body, bool(event.is_base64_encoded))


@app.put(
    "/pcall/suppressions/<number>",
    summary="Add a number to the do-not-call list (or replace its reason)",
    responses=openapi.responses("SuppressionPutResponse"),
    tags=["suppressions"],
)
def put_suppression(number: Annotated[str, _number()]) -> Response[str]:
    account = _authenticate()
    result = dnc.put_suppression(deps().suppressions, account, unquote(number), _body(), now=_now(), refused=_refused())
    return _json(200, envelope(200, **result))


@app.get(
    "/pcall/suppressions/<number>",
    summary="One number of the do-not-call list",
    responses=openapi.responses("SuppressionResponse", 404),
    tags=["suppressions"],
)
def get_suppression(number: Annotated[str, _number()]) -> Response[str]:
    account = _authenticate()
    found = dnc.get_suppression(deps().suppressions, account, unquote(number), refused=_refused())
    return _json(200, envelope(200, **found))


@app.delete(
    "/pcall/suppressions/<number>",
    summary="Take a number off the do-not-call list",
    responses=openapi.responses("SuppressionDeleteResponse", 404),
    tags=["suppressions"],
)
def delete_suppression(number: Annotated[str, _number()]) -> Response[str]:
    account = _authenticate()
    deleted = dnc.delete_suppression(deps().suppressions, account, unquote(number), refused=_refused())
    return _json(200, envelope(200, **deleted))


@app.get(
    "/pcall/suppressions",
    summary="List the do-not-call list, by number",
    responses=openapi.responses("SuppressionListResponse"),
    tags=["suppressions"],
)
def list_suppressions(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Numbers per page (1-{MAX_LIMIT}).")] = 50,
    next: Annotated[str | None, Query(description="Token from the previous page.")] = None,
) -> Response[str]:
    account = _authenticate()
    page = dnc.list_suppressions(deps().suppressions, account, limit=limit, next_token=next, refused=_refused())
    return _json(200, envelope(200, **page))


@app.post(
    "/pcall/suppressions",
    summary="Add up to 10,000 numbers to the do-not-call list (JSON list or text/csv)",
    responses=openapi.responses("SuppressionBulkResponse"),
    tags=["suppressions"],
)
def add_suppressions() -> Response[str]:
    account = _authenticate()
    content_type = app.current_event.headers.get("content-type")
    result = dnc.add_suppressions(deps().suppressions, account, _body(), content_type, now=_now(), refused=_refused())
    return _json(200, envelope(200, **result))


@app.get("/pcall/openapi.json", include_in_schema=False)
def openapi_json() -> Response[str]:
    return _json(200, openapi_document())


@app.get("/pcall/docs", include_in_schema=False)
def swagger_ui() -> Response[str]:
    page = openapi.swagger_html("/pcall/openapi.json", "/pcall/docs")
    return Response(200, "text/html; charset=utf-8", page, headers={**PAGE_HEADERS, "Cache-Control": "no-cache"})


@app.get("/pcall/docs/<asset>", include_in_schema=False)
def swagger_asset(asset: str) -> Response[str]:
    found = openapi.swagger_asset(asset)
    if found is None:
        return _json(404, error_envelope(404, message="no such file"))
    content, content_type = found
    return Response(200, content_type, content, headers={**PAGE_HEADERS, "Cache-Control": "public, max-age=86400"})


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of this API (also committed as docs/openapi.json)."""
    # Only the document needs these (GET /pcall/openapi.json, `make openapi`): a cold start does not load them.
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBase
    from callbridge import openapi_campaigns, openapi_models

    document = openapi.finish(
        app.get_openapi_json_schema(
            title=openapi.TITLE,
            version=openapi.VERSION,
            description=openapi.DESCRIPTION,
            security_schemes={"basic": HTTPBase(scheme="basic")},
            security=[{"basic": []}],
        ),
        models=(*openapi_models.RESPONSES, *openapi_campaigns.RESPONSES),
    )
    openapi_campaigns.add_campaign_request_body(document)
    return document


# --- domain errors → HTTP, in one place ----------------------------------------------------


@app.exception_handler(InvalidRequest)
def _invalid(exc: InvalidRequest) -> Response[str]:
    return _json(400, error_envelope(400, exc))


@app.exception_handler(RequestValidationError)
def _invalid_parameters(exc: RequestValidationError) -> Response[str]:
    # Powertools validates parameters before the route runs: credentials still come first, and unknown
    # parameters are reported with the invalid ones.
    try:
        _authenticate()
    except Unauthorized as unauthorized:
        response: Response[str] = _unauthorized(unauthorized)  # the decorated handler is untyped
        return response
    except TooManyFailedLogins as refused:
        too_many: Response[str] = _too_many_failed_logins(refused)
        return too_many
    except CrossSiteRequest as forged:
        cross_site: Response[str] = _cross_site(forged)
        return cross_site
    problems = [_parameter_problem(e) for e in exc.errors()]
    route = app.context.get("_route")
    if route is not None and route.method == "GET":
        # The route's own checks (filters, a paging token) run too, with the parameters refused here left at their
        # defaults; handed these problems (`_refused`), its use case reports them with its own before it reads
        # anything. Only GET routes are run so: nothing is written for a refused request.
        app.context[_REFUSED_PARAMETERS] = problems
        try:
            route.func(**_valid_arguments(route, {p.field for p in problems}))
        except InvalidRequest as found:
            invalid: Response[str] = _invalid(found)  # the decorated handler is untyped
            return invalid
    return _json(400, error_envelope(400, InvalidRequest(problems + _unknown_query())))


def _valid_arguments(route: Any, refused: set[str]) -> dict[str, Any]:
    """The route's path and query arguments Powertools did not refuse, validated as it validates them."""
    arguments = dict(app.context.get("_route_args") or {})  # path parameters: strings, never refused
    given = app.current_event.query_string_parameters or {}
    for parameter in route.dependant.query_params:
        if parameter.alias in given and parameter.alias not in refused:
            value, errors = parameter.validate(given[parameter.alias], loc=("query", parameter.alias))
            if not errors:
                arguments[parameter.name] = value
    return arguments


def _parameter_problem(error: dict[str, Any]) -> FieldProblem:
    """A Powertools (pydantic) parameter error in the API's words."""
    name = str((error.get("loc") or ("?",))[-1])
    if isinstance(error.get("input"), list):  # Powertools reads a name repeated in the query string as a list
        return FieldProblem(name, "given more than once")
    return FieldProblem(name, rule_message(error))


@app.exception_handler(Unauthorized)
def _unauthorized(exc: Unauthorized) -> Response[str]:
    metrics.add_metric(name="AuthFailures", unit=MetricUnit.Count, value=1)
    return _json(
        401,
        error_envelope(401, message=f"Invalid API credentials: {exc}"),
        headers={"WWW-Authenticate": 'Basic realm="callbridge", charset="UTF-8"'},
    )


@app.exception_handler(CrossSiteRequest)
def _cross_site(exc: CrossSiteRequest) -> Response[str]:
    message = (
        "cross-site request refused: a page of another site cannot make your browser send requests to this API "
        "(Sec-Fetch-Site or Origin)"
    )
    return _json(403, error_envelope(403, message=message))


@app.exception_handler(TooManyFailedLogins)
def _too_many_failed_logins(exc: TooManyFailedLogins) -> Response[str]:
    metrics.add_metric(name="AuthRateLimited", unit=MetricUnit.Count, value=1)
    return _json(
        429,
        error_envelope(429, message=f"Too many failed logins: retry after {exc.retry_after} seconds"),
        headers={"Retry-After": str(exc.retry_after)},
    )


@app.exception_handler(CallNotFound)
def _not_found(exc: CallNotFound) -> Response[str]:
    return _json(404, error_envelope(404, message=f"call {exc} not found"))


@app.exception_handler(CampaignNotFound)
def _no_campaign(exc: CampaignNotFound) -> Response[str]:
    return _json(404, error_envelope(404, message=f"campaign {exc} not found"))


@app.exception_handler(IvrMenuNotFound)
def _no_menu(exc: IvrMenuNotFound) -> Response[str]:
    return _json(404, error_envelope(404, message=f"IVR menu {exc} not found"))


@app.exception_handler(SuppressionNotFound)
def _not_listed(exc: SuppressionNotFound) -> Response[str]:
    return _json(404, error_envelope(404, message=f"{exc} is not on your do-not-call list"))


@app.exception_handler(Conflict)
def _conflict(exc: Conflict) -> Response[str]:
    return _json(409, error_envelope(409, message=str(exc)))


@app.exception_handler(ServiceUnavailable)
def _unavailable(exc: ServiceUnavailable) -> Response[str]:
    logger.exception("dependency unavailable")
    return _json(503, error_envelope(503, message="temporarily unavailable, please retry"), {"Retry-After": "1"})


@app.not_found
def _no_route(_: Exception) -> Response[str]:
    allowed = _allowed_methods(app.current_event.path)
    if allowed:
        methods = ", ".join(allowed)
        return _json(
            405, error_envelope(405, message=f"method not allowed; this path takes {methods}"), {"Allow": methods}
        )
    return _json(404, error_envelope(404, message="no such path"))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
@metrics.log_metrics
@within_deadline
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
