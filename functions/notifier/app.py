"""notifier: CallsTable stream and NotificationsQueue → the customer's callback_url, signed, retried, SSRF-safe."""

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import EventType
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from callbridge.adapters.aws import within_deadline
from callbridge.adapters.batching import ConcurrentBatchProcessor, failures_logged_by
from callbridge.adapters.calls_stream import UnreadableImage, call_images
from callbridge.adapters.delivery import CallbackSender
from callbridge.adapters.dynamodb.accounts import DynamoAccountsStore
from callbridge.adapters.dynamodb.calls import DynamoCallsStore
from callbridge.adapters.notification_queue import SqsNotificationQueue
from callbridge.domain.notifications import Retry
from callbridge.logic.notify import Notifier, Result
from callbridge.settings import NotifierSettings
from callbridge.tracing import LazyTracer

logger = Logger()
tracer = LazyTracer()
metrics = Metrics()
# A batch's notifications go out at the same time: one slow endpoint costs the batch one timeout, not one each.
stream_processor = ConcurrentBatchProcessor(EventType.DynamoDBStreams, workers=10, logger=failures_logged_by(logger))
queue_processor = ConcurrentBatchProcessor(EventType.SQS, workers=10, logger=failures_logged_by(logger))
_METRICS = {
    Result.DELIVERED: "CallbacksDelivered",
    Result.RETRY: "CallbacksRetried",
    Result.DEAD_LETTER: "CallbacksDeadLettered",
    Result.REFUSED: "CallbacksRefused",
    Result.DEFERRED: "CallbacksDeferred",
}


def _warn(message: str, **details: object) -> None:
    logger.warning(message, extra=details)


class Deps:
    """The function's adapters, built once per container on first use."""

    def __init__(self, settings: NotifierSettings) -> None:
        self.notifier = Notifier(
            calls=DynamoCallsStore(
                settings.calls_table, schedule_shards=settings.schedule_shards, timing=settings.timing()
            ),
            accounts=DynamoAccountsStore(settings.accounts_table),
            sender=CallbackSender(
                allow_loopback=settings.callback_allow_loopback, timeout=settings.callback_timeout_seconds
            ),
            queue=SqsNotificationQueue(settings.notifications_queue_url, settings.notifications_dead_letter_url),
            account_ttl=settings.account_cache_seconds,
            slow_seconds=settings.callback_timeout_seconds / 2,
            log=_warn,
        )


@cache
def deps() -> Deps:
    return Deps(NotifierSettings.from_env())


def stream_record(record: DynamoDBRecord) -> Result:
    """A change to CallsTable: the first attempt if it finished a call with a callback_url."""
    try:
        old, new = call_images(record.raw_event)
    except UnreadableImage:
        logger.exception("skipping a CallsTable stream record that holds no call", extra={"event_id": record.event_id})
        return Result.IGNORED
    if new is None:
        return Result.IGNORED
    return deps().notifier.on_change(old, new)


def queue_record(record: SQSRecord) -> Result:
    """A retry that came due. A message that is no retry fails, so redrive returns it to the DLQ."""
    return deps().notifier.on_retry(Retry.from_message(record.body))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@within_deadline
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    records = event.get("Records") or []
    from_queue = bool(records) and records[0].get("eventSource") == "aws:sqs"
    processor = queue_processor if from_queue else stream_processor
    with processor(records, queue_record if from_queue else stream_record, context):
        outcomes = processor.process()
    for state, result, _record in outcomes:
        name = _METRICS.get(result) if state == "success" else "CallbackRecordsFailed"
        if name:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    return processor.response()
