"""webhooks: the carrier's requests — call-flow TwiML, status and recording callbacks — signature-checked."""

from functools import cache
from typing import Any
from urllib.parse import parse_qsl

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from callbridge.adapters.aws import within_deadline
from callbridge.adapters.carrier_client import CurrentCarrier
from callbridge.adapters.dynamodb.accounts import DynamoAccountsStore
from callbridge.adapters.dynamodb.calls import DynamoCallsStore
from callbridge.adapters.outcome_metrics import count_ended
from callbridge.adapters.pacing import DynamoPacer, ListingMark
from callbridge.adapters.secrets import carrier_credentials
from callbridge.adapters.suppressions import DynamoSuppressionList
from callbridge.carrier.signature import verify_signature
from callbridge.domain.calls import Call
from callbridge.domain.errors import CallNotFound, InvalidRequest, ServiceUnavailable
from callbridge.domain.progress import ATTEMPT
from callbridge.domain.retries import MAX_RETRY_ATTEMPTS
from callbridge.logic.placer import WebhookUrls
from callbridge.logic.webhooks import Webhooks
from callbridge.settings import CarrierSettings
from callbridge.tracing import LazyTracer
from callbridge.web import raw_body

logger = Logger()
tracer = LazyTracer()
metrics = Metrics()
app = APIGatewayHttpResolver()
TWIML = "text/xml; charset=utf-8"


class Deps:
    """The function's adapters, built once per container on first use."""

    def __init__(self, settings: CarrierSettings) -> None:
        self.carrier_secret_id = settings.carrier_secret_id
        accounts = DynamoAccountsStore(settings.accounts_table)

        def sms_from(call: Call) -> str | None:
            account = accounts.get_account(call.account_id)
            return account.sms_from if account else None

        self.webhooks = Webhooks(
            calls=DynamoCallsStore(
                settings.calls_table, schedule_shards=settings.schedule_shards, timing=settings.timing()
            ),
            carrier=CurrentCarrier(settings.carrier_secret_id, settings.carrier_base_url),
            pacer=DynamoPacer(settings.pacing_table, settings.carrier_cps),
            sms_from_default=sms_from,
            suppressions=DynamoSuppressionList(settings.suppressions_table, mark=ListingMark(settings.pacing_table)),
        )


@cache
def deps() -> Deps:
    return Deps(CarrierSettings.from_env())


class BadSignature(Exception):
    """The request does not carry a valid X-Twilio-Signature for the URL it was sent to."""


def _public_url() -> str:
    """The URL exactly as the carrier called it, rebuilt the way API Gateway received it."""
    event = app.current_event
    headers = event.headers
    proto = headers.get("x-forwarded-proto", "https")
    query = event.raw_query_string
    return f"{proto}://{event.request_context.domain_name}{event.raw_path}" + (f"?{query}" if query else "")


def _signed_params() -> dict[str, str]:
    event = app.current_event
    body = raw_body(event.body, bool(event.is_base64_encoded))
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError as exc:
        raise BadSignature("body is not UTF-8") from exc
    signature = event.headers.get("x-twilio-signature", "")
    # The secret as it is now (re-read every few minutes): during a token rotation the previous token counts too.
    tokens = carrier_credentials(deps().carrier_secret_id).signing_tokens
    if not signature or not any(verify_signature(_public_url(), pairs, signature, token) for token in tokens):
        raise BadSignature(_public_url())
    return dict(pairs)


def _urls() -> WebhookUrls:
    event = app.current_event
    proto = event.headers.get("x-forwarded-proto", "https")
    return WebhookUrls(f"{proto}://{event.request_context.domain_name}")


def _attempt() -> int | None:
    """The attempt a callback is about: `?attempt=N` on the URLs of a call that may be retried, else None."""
    value = (app.current_event.query_string_parameters or {}).get(ATTEMPT)
    if value is None:
        return None
    if not value.isdigit() or not 1 <= int(value) <= MAX_RETRY_ATTEMPTS + 1:
        raise InvalidRequest.single(ATTEMPT, f"must be a whole number from 1 to {MAX_RETRY_ATTEMPTS + 1}")
    return int(value)


def _twiml(document: str) -> Response[str]:
    return Response(200, TWIML, document)


@app.post("/carrier/twilio/<callid>/<action>")
def carrier_webhook(callid: str, action: str) -> Response[str]:
    # Every line of this request names its call, a refused signature's included (cleared at each invocation).
    logger.append_keys(callid=callid, action=action)
    params = _signed_params()
    logger.info("carrier request", extra={"carrier_status": params.get("CallStatus", "")})
    hooks = deps().webhooks
    if action == "flow":
        return _twiml(hooks.flow(callid, params, _urls(), _attempt() or 1))
    if action == "status":
        call, ended = hooks.status(callid, params, _attempt())
        if ended:  # this callback ended the call: a repeated or late one, or one after another ending, counts nothing
            count_ended(metrics, call)
        return Response(204, TWIML, "")
    if action == "recording":
        hooks.recording(callid, params, _attempt() or 1)
        return Response(204, TWIML, "")
    if action == "gather":
        query = app.current_event.query_string_parameters or {}
        return _twiml(hooks.gather(callid, params, query, _urls()))
    if action == "dial":
        return _twiml(hooks.dial_ended(callid, params))
    if action == "hold":
        return _twiml(hooks.hold(callid, params, _urls()))
    if action == "leg":
        return _twiml(hooks.second_leg(callid, params))
    if action == "leg-status":
        hooks.second_leg_status(callid, params)
        return Response(204, TWIML, "")
    if action == "sms-status":
        hooks.sms_status(callid, params)
        return Response(204, TWIML, "")
    if action == "fallback":
        return _twiml(hooks.fallback(callid, params))
    raise CallNotFound(f"{callid}/{action}")


@app.exception_handler(BadSignature)
def _forbidden(exc: BadSignature) -> Response[str]:
    logger.warning("rejected a carrier request with a bad signature", extra={"url": str(exc)})
    metrics.add_metric(name="CarrierRequestsRejected", unit=MetricUnit.Count, value=1)
    return Response(403, "text/plain", "invalid signature")


@app.exception_handler(CallNotFound)
def _unknown(exc: CallNotFound) -> Response[str]:
    return Response(404, "text/plain", "unknown call")


@app.exception_handler(InvalidRequest)
def _invalid(exc: InvalidRequest) -> Response[str]:
    return Response(400, "text/plain", str(exc))


@app.exception_handler(ServiceUnavailable)
def _unavailable(exc: ServiceUnavailable) -> Response[str]:
    # 5xx makes the carrier retry the callback (Twilio retries once), which is what we want.
    logger.exception("dependency unavailable")
    return Response(503, "text/plain", "temporarily unavailable")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@within_deadline
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
