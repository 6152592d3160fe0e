"""scheduler: every minute — dispatch calls due soon, re-send lost ones, reconcile stuck ones, drain the calls DLQ."""

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext
from callbridge.adapters.aws import DEADLINE_MARGIN_SECONDS, attempt_seconds, client, within_deadline
from callbridge.adapters.carrier_client import CurrentCarrier
from callbridge.adapters.dynamodb.calls import DynamoCallsStore
from callbridge.adapters.outcome_metrics import count_ended
from callbridge.adapters.sqs import SqsCallsQueue, SqsDeadLetters
from callbridge.carrier.base import Carrier
from callbridge.carrier.twilio import REQUEST_SECONDS
from callbridge.logic.scheduler import Scheduler
from callbridge.settings import SchedulerSettings
from callbridge.tracing import LazyTracer

logger = Logger()
tracer = LazyTracer()
metrics = Metrics()
# Left at the end of a run for the work already started: a carrier look-up (reconciliation) and the write after
# it, which the AWS client starts only if one attempt can end DEADLINE_MARGIN_SECONDS before the timeout. See the
# README's "Time budgets".
WRITES_SECONDS = attempt_seconds() + DEADLINE_MARGIN_SECONDS
SAFETY_SECONDS = REQUEST_SECONDS + WRITES_SECONDS
_METRICS = {
    "dispatched": "CallsDispatched",
    "resent": "CallsResent",
    "reconciled": "CallsReconciled",
    "dead_lettered": "CallsDeadLettered",
    "send_failures": "DispatchSendFailures",
    "errors": "SchedulerErrors",
}


def _warn(message: str, **details: object) -> None:
    logger.warning(message, extra=details)


class Deps:
    """The function's adapters, built once per container on first use."""

    def __init__(self, settings: SchedulerSettings) -> None:
        timing = settings.timing()  # the same as every function that writes calls places them with
        # One connection per worker thread (boto3 clients are thread-safe; their pools hold 10 by default),
        # and patience with throttling: a write that waits a few seconds still dispatches its call on time.
        dynamodb = client("dynamodb", pool=settings.workers + 16, attempts=8)
        self.calls = DynamoCallsStore(
            settings.calls_table, schedule_shards=settings.schedule_shards, timing=timing, dynamodb=dynamodb
        )
        self.settings = settings
        self._carrier: Carrier | None = None
        self.scheduler = Scheduler(
            calls=self.calls,
            index=self.calls,
            queue=SqsCallsQueue(settings.calls_queue_url, sqs=client("sqs", pool=settings.workers)),
            carrier=self.carrier,
            dead_letters=SqsDeadLetters(settings.calls_dead_letter_queue_url),
            timing=timing,
            lookahead=settings.lookahead_seconds,
            workers=settings.workers,
            log=_warn,
        )

    def carrier(self) -> Carrier:
        """The carrier client, built (and its secret read) only when a run has something to ask it."""
        if self._carrier is None:
            self._carrier = CurrentCarrier(self.settings.carrier_secret_id, self.settings.carrier_base_url)
        return self._carrier


@cache
def deps() -> Deps:
    return Deps(SchedulerSettings.from_env())


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=EventBridgeEvent)
@within_deadline
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    scheduler = deps().scheduler
    deadline = scheduler.now() + max(0.0, context.get_remaining_time_in_millis() / 1000 - SAFETY_SECONDS)
    run = scheduler.run(deadline=deadline)
    report = run.as_dict()
    logger.info("scheduler run", extra={"rule_time": event.time, **report})
    for field, name in _METRICS.items():
        if report[field]:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=report[field])
    for call in run.ended:  # reconciliation ended them (their final callback was lost): counted here, once
        count_ended(metrics, call)
    return report
