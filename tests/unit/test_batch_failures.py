"""A queue or stream record whose handling fails is logged with its error, in every function that processes batches.

Powertools reports a failed record to the event source (batchItemFailures) and, without a logger, to nobody else:
a campaign's cancel that failed on every delivery left no line in the logs.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch import BasePartialBatchProcessor, process_partial_response

SQS_RECORD = {
    "messageId": "m-1",
    "receiptHandle": "r",
    "body": "{}",
    "attributes": {"ApproximateReceiveCount": "1"},
    "messageAttributes": {},
    "md5OfBody": "",
    "eventSource": "aws:sqs",
    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
    "awsRegion": "us-east-1",
}
STREAM_RECORD = {
    "eventID": "e-1",
    "eventName": "MODIFY",
    "eventSource": "aws:dynamodb",
    "dynamodb": {"Keys": {"pk": {"S": "x"}}, "SequenceNumber": "1", "StreamViewType": "NEW_AND_OLD_IMAGES"},
}


def _processor(name: str) -> tuple[BasePartialBatchProcessor, dict[str, Any]]:
    if name == "placer":
        from functions.placer.app import processor

        return processor, SQS_RECORD
    if name == "campaigns":
        from functions.campaigns.app import queue_processor

        return queue_processor, SQS_RECORD
    from functions.notifier.app import queue_processor as notifier_queue
    from functions.notifier.app import stream_processor

    return (notifier_queue, SQS_RECORD) if name == "notifier queue" else (stream_processor, STREAM_RECORD)


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize("name", ["placer", "campaigns", "notifier queue", "notifier stream"])
def test_a_failed_record_is_logged_with_its_error(name: str) -> None:
    processor, record = _processor(name)
    failing = {**record, "messageId": "fails", "eventID": "fails"}
    if "dynamodb" in record:
        failing["dynamodb"] = {**record["dynamodb"], "SequenceNumber": "2"}
    identifier = "2" if "dynamodb" in record else "fails"  # a stream record is named by its sequence number
    kept = _Kept()
    function_logger = logging.getLogger(processor.logger.name if processor.logger else "-")

    def handler(record: Any) -> None:
        if getattr(record, "message_id", None) == "fails" or getattr(record, "event_id", None) == "fails":
            raise RuntimeError(f"storage unavailable ({name})")

    function_logger.addHandler(kept)
    try:
        response = process_partial_response(
            event={"Records": [record, failing]}, record_handler=handler, processor=processor
        )
    finally:
        function_logger.removeHandler(kept)

    # the record goes back to its source, and the function's log says why
    assert response["batchItemFailures"] == [{"itemIdentifier": identifier}]
    logged = [r for r in kept.records if r.levelno == logging.WARNING and r.exc_info]
    assert len(logged) == 1, f"nothing logged for a failed record: {kept.records}"
    assert str(logged[0].exc_info[1]) == f"storage unavailable ({name})"  # type: ignore[index]
