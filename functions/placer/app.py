"""placer: CallsQueue → carrier. Claims each call exactly once and places it at the carrier's pace."""

import math
from datetime import UTC, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from callbridge.adapters.aws import within_deadline
from callbridge.adapters.batching import failures_logged_by
from callbridge.adapters.campaign_queue import SqsCampaignsQueue
from callbridge.adapters.campaigns import DynamoCampaignsStore
from callbridge.adapters.carrier_client import CurrentCarrier
from callbridge.adapters.dynamodb.accounts import DynamoAccountsStore
from callbridge.adapters.dynamodb.calls import DynamoCallsStore
from callbridge.adapters.dynamodb.idempotency import DynamoIdempotency
from callbridge.adapters.dynamodb.ivr_menus import DynamoIvrMenus
from callbridge.adapters.outcome_metrics import count_ended
from callbridge.adapters.pacing import DynamoPacer
from callbridge.adapters.speech import PollySpeechCache
from callbridge.adapters.sqs import SqsCallsQueue
from callbridge.adapters.suppressions import DynamoSuppressionList
from callbridge.carrier.twilio import REQUEST_SECONDS
from callbridge.domain.messages import CallsQueueMessage, UnreadableMessage
from callbridge.logic.campaign_worker import CampaignWorker
from callbridge.logic.external import UnknownAccount, accept_external
from callbridge.logic.intake import Intake
from callbridge.logic.placer import Placement, Placer, WebhookUrls
from callbridge.settings import CampaignSettings, PlacerSettings
from callbridge.tracing import LazyTracer

logger = Logger()
tracer = LazyTracer()
metrics = Metrics()
# Report every failed record in batchItemFailures, even when all of them failed: raising instead would count as
# a function error (alarms, Lambda scaling the poller down) for what is only "try these messages later".
processor = BatchProcessor(
    event_type=EventType.SQS, raise_on_entire_batch_failure=False, logger=failures_logged_by(logger)
)
# Left at the end of an invocation for what follows the wait for a pacing slot: premium speech (one Polly
# synthesis and an S3 write, before the wait but after the horizon is set), the carrier request and the writes
# after it. See the README's "Time budgets".
SPEECH_SECONDS = 4.0
WRITES_SECONDS = 3.0
SAFETY_SECONDS = SPEECH_SECONDS + REQUEST_SECONDS + WRITES_SECONDS


def _warn(message: str, **details: object) -> None:
    logger.warning(message, extra=details)


class Deps:
    """The function's adapters, built once per container on first use."""

    def __init__(self, settings: PlacerSettings) -> None:
        self.calls = DynamoCallsStore(
            settings.calls_table,
            idempotency_table=settings.accounts_table,
            schedule_shards=settings.schedule_shards,
            timing=settings.timing(),
        )
        self.queue = SqsCallsQueue(settings.calls_queue_url)
        suppressions = DynamoSuppressionList(settings.suppressions_table)
        self.intake = Intake(
            calls=self.calls,
            accounts=DynamoAccountsStore(settings.accounts_table),
            idempotency=DynamoIdempotency(settings.accounts_table),
            menus=DynamoIvrMenus(settings.accounts_table),
            queue=self.queue,
            suppressions=suppressions,
        )
        campaigns = CampaignSettings.from_env()
        gate = CampaignWorker(
            campaigns=DynamoCampaignsStore(campaigns.campaigns_table),
            calls=self.calls,
            calls_queue=self.queue,
            queue=SqsCampaignsQueue(campaigns.campaigns_queue_url),
            log=_warn,
        )
        self.placer = Placer(
            calls=self.calls,
            carrier=CurrentCarrier(settings.carrier_secret_id, settings.carrier_base_url),
            pacer=DynamoPacer(settings.pacing_table, settings.carrier_cps),
            urls=WebhookUrls(settings.public_api_url),
            speech=PollySpeechCache(settings.speech_bucket) if settings.speech_bucket else None,
            suppressions=suppressions,
            campaigns=gate,
            ring_timeout=settings.ring_timeout_seconds,
            log=_warn,
        )


@cache
def deps() -> Deps:
    return Deps(PlacerSettings.from_env())


class RetryLater(Exception):
    """Leave this message on the queue; it comes back after its backoff."""


@tracer.capture_method
def record_handler(record: SQSRecord, lambda_context: LambdaContext | None = None) -> None:
    try:
        message = CallsQueueMessage.parse(record.body)
    except UnreadableMessage as exc:
        logger.error("dropping an unreadable CallsQueue message", extra={"id": record.message_id, "error": str(exc)})
        metrics.add_metric(name="MessagesRejected", unit=MetricUnit.Count, value=1)
        return
    if message.is_request:
        try:
            outcome = accept_external(message, deps().intake, now=datetime.now(UTC))
        except UnknownAccount:
            logger.error("dropping a call request for an unknown account", extra={"id": record.message_id})
            metrics.add_metric(name="MessagesRejected", unit=MetricUnit.Count, value=1)
            return
        data = outcome.data
        logger.info("external call request", extra={"callid": data.get("callid"), "result": data})
        # An invalid request is stored as a FAILED call, not accepted; a replayed idempotency_key stores nothing.
        if data.get("code") != 400 and not outcome.replayed:
            metrics.add_metric(name="CallsAccepted", unit=MetricUnit.Count, value=1)
        return
    callid = message.callid or ""
    attempt = int(record.attributes.approximate_receive_count or 1)
    horizon = None
    if lambda_context is not None:
        horizon = max(0.0, lambda_context.get_remaining_time_in_millis() / 1000 - SAFETY_SECONDS)
    result = deps().placer.place(callid, attempt=attempt, horizon=horizon, call_date=message.call_date)
    logger.info("placement", extra={"callid": callid, "placement": result.placement.value})
    if result.placement is Placement.PLACED:
        metrics.add_metric(name="CallsPlaced", unit=MetricUnit.Count, value=1)
        if result.latency is not None:
            metrics.add_metric(name="CarrierLatency", unit=MetricUnit.Milliseconds, value=result.latency * 1000)
        if result.lateness is not None:  # scheduled calls: call_date → carrier request
            metrics.add_metric(name="DispatchLateness", unit=MetricUnit.Seconds, value=result.lateness)
    elif result.ended is not None:  # the carrier refused it: FAILED (unless it had ended meanwhile)
        count_ended(metrics, result.ended)
    elif result.placement is Placement.RETRY and result.waiting:
        # A backlog must drain, not dead-letter: a fresh delayed message replaces this one (deleted on return).
        deps().queue.send_call(callid, delay_seconds=math.ceil(result.retry_after), call_date=message.call_date)
    elif result.placement is Placement.RETRY:
        deps().queue.retry_later(record.receipt_handle, result.retry_after)
        raise RetryLater(f"{callid}: retry in {result.retry_after:.0f}s")


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@within_deadline
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    return process_partial_response(
        event=event,
        record_handler=record_handler,
        processor=processor,
        context=context,
    )
