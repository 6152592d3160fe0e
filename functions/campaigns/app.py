"""campaigns: CampaignsQueue (fan-out, release steps, cancels, notifications) and CallsTable's stream (counts)."""

import json
import random
import time
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from callbridge.adapters.aws import within_deadline
from callbridge.adapters.batching import failures_logged_by
from callbridge.adapters.calls_stream import UnreadableImage, call_images
from callbridge.adapters.campaign_queue import SqsCampaignsQueue
from callbridge.adapters.campaigns import DynamoCampaignsStore
from callbridge.adapters.delivery import CallbackSender
from callbridge.adapters.dynamodb.accounts import DynamoAccountsStore
from callbridge.adapters.dynamodb.calls import DynamoCallsStore
from callbridge.adapters.sqs import SqsCallsQueue
from callbridge.domain.calls import Call
from callbridge.domain.campaigns import CallChange, CallState
from callbridge.logic.campaign_worker import CampaignWorker
from callbridge.settings import CampaignWorkerSettings
from callbridge.tracing import LazyTracer

logger = Logger()
tracer = LazyTracer()
metrics = Metrics()
queue_processor = BatchProcessor(
    event_type=EventType.SQS, raise_on_entire_batch_failure=False, logger=failures_logged_by(logger)
)
SAFETY_SECONDS = 10.0  # a fan-out or cancel stops this long before the function's timeout, and goes on in a new message
_rng = random.Random()  # noqa: S311 - retry jitter, not a secret


def _warn(message: str, **details: object) -> None:
    logger.warning(message, extra=details)


class Deps:
    """The function's adapters, built once per container on first use."""

    def __init__(self, settings: CampaignWorkerSettings) -> None:
        self.worker = CampaignWorker(
            campaigns=DynamoCampaignsStore(settings.campaigns_table),
            calls=DynamoCallsStore(
                settings.calls_table, schedule_shards=settings.schedule_shards, timing=settings.timing()
            ),
            calls_queue=SqsCallsQueue(settings.calls_queue_url),
            queue=SqsCampaignsQueue(settings.campaigns_queue_url),
            sender=CallbackSender(allow_loopback=settings.callback_allow_loopback),
            accounts=DynamoAccountsStore(settings.accounts_table),
            log=_warn,
        )


@cache
def deps() -> Deps:
    return Deps(CampaignWorkerSettings.from_env())


def queue_record(record: SQSRecord, lambda_context: LambdaContext | None = None) -> None:
    try:
        message = json.loads(record.body)
        kind, campaign = str(message["kind"]), str(message["campaign"])
    except (ValueError, KeyError, TypeError):
        logger.error("dropping a CampaignsQueue message that is not campaign work", extra={"id": record.message_id})
        return
    worker = deps().worker
    remaining = lambda_context.get_remaining_time_in_millis() / 1000 if lambda_context else 30.0
    deadline = time.time() + max(1.0, remaining - SAFETY_SECONDS)
    if kind == "fanout":
        stored = worker.fanout(campaign, int(message["chunk"]), start=int(message.get("from", 0)), deadline=deadline)
        metrics.add_metric(name="CampaignCallsStored", unit=MetricUnit.Count, value=stored)
    elif kind == "tick":
        step = worker.tick(campaign, int(message["seq"]), record.message_id)
        logger.debug("release step", extra={"campaign": campaign, "step": step.value})
    elif kind == "cancel":
        worker.cancel_all(campaign, deadline=deadline)
    elif kind == "notify":
        worker.notify(campaign, int(message.get("attempt", 1)), _rng.random)
    else:
        logger.error("dropping a CampaignsQueue message of an unknown kind", extra={"kind": kind})


def stream_batch(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Changes to CallsTable: those of campaign calls are counted, the batch at once (see CampaignWorker.count), and
    a retry that came due outside its calling window is marked waiting for its campaign (`hold_retries`).

    A campaign whose counting failed reports its first record: the stream sends the batch again from there,
    and what was counted already is not counted twice.
    """
    changes: list[tuple[str, CallChange]] = []
    calls: list[tuple[str, Call]] = []
    for raw in records:
        record = DynamoDBRecord(raw)
        try:
            _old, new = call_images(raw)
        except UnreadableImage:
            logger.exception(
                "skipping a CallsTable stream record that holds no call", extra={"event_id": record.event_id}
            )
            continue
        if new is None or not new.campaign:
            continue
        sequence = str(raw.get("dynamodb", {}).get("SequenceNumber", "0"))
        state = CallState(new.status.value, new.answered_by, new.billed_seconds)
        changes.append((sequence, CallChange(new.campaign, new.callid, state, int(sequence))))
        calls.append((sequence, new))
    worker = deps().worker
    failed = worker.count(change for _sequence, change in changes)
    failed |= worker.hold_retries(call for _sequence, call in calls)
    first = next((sequence for sequence, change in changes if change.campaign in failed), None)
    return {"batchItemFailures": [{"itemIdentifier": first}] if first is not None else []}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@within_deadline
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    records = event.get("Records") or []
    if not records:
        return {"batchItemFailures": []}
    if records and records[0].get("eventSource") == "aws:sqs":
        return process_partial_response(
            event=event, record_handler=queue_record, processor=queue_processor, context=context
        )
    return stream_batch(records)
