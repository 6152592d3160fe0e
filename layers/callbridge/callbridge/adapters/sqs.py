"""SQS adapters: CallsQueue and its dead-letter queue."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from callbridge.adapters.aws import LazyClient, aws_errors
from callbridge.domain.messages import CallsQueueMessage, UnreadableMessage
from callbridge.ports import DeadLetter, Outgoing

MAX_BATCH = 10  # SendMessageBatch, DeleteMessageBatch, ReceiveMessage


class SqsCallsQueue:
    """Sends `{"callid": ...}` messages to CallsQueue."""

    def __init__(self, queue_url: str, *, sqs: Any = None) -> None:
        self._url = queue_url
        self._sqs = LazyClient("sqs", sqs)

    def send_call(self, callid: str, *, delay_seconds: int = 0, call_date: str | None = None) -> None:
        with aws_errors("calls queue"):
            self._sqs().send_message(
                QueueUrl=self._url,
                MessageBody=CallsQueueMessage.for_call(callid, call_date),
                DelaySeconds=max(0, min(900, delay_seconds)),
            )

    def send_calls(self, messages: Sequence[Outgoing]) -> list[str]:
        """Up to 10 `{"callid"}` messages in one SendMessageBatch; returns the callids SQS did not accept."""
        if not messages:
            return []
        if len(messages) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} messages per batch")
        entries = [
            {
                "Id": str(n),
                "MessageBody": CallsQueueMessage.for_call(m.callid, m.call_date),
                "DelaySeconds": max(0, min(900, m.delay_seconds)),
            }
            for n, m in enumerate(messages)
        ]
        with aws_errors("calls queue"):
            response = self._sqs().send_message_batch(QueueUrl=self._url, Entries=entries)
        return [messages[int(f["Id"])].callid for f in response.get("Failed", [])]

    def retry_later(self, receipt_handle: str, seconds: float) -> None:
        """Make a received message visible again after `seconds` (backoff), not the queue's default."""
        with aws_errors("calls queue"):
            self._sqs().change_message_visibility(
                QueueUrl=self._url, ReceiptHandle=receipt_handle, VisibilityTimeout=int(max(0, min(43200, seconds)))
            )


class SqsDeadLetters:
    """CallsDeadLetterQueue: the messages CallsQueue gave up on after its maxReceiveCount."""

    def __init__(self, queue_url: str, *, visibility_seconds: int = 600, sqs: Any = None) -> None:
        self._url = queue_url
        self._visibility = visibility_seconds
        self._sqs = LazyClient("sqs", sqs)

    def receive(self, max_messages: int = MAX_BATCH) -> list[DeadLetter]:
        """Up to 10 messages, hidden from other readers for a while (an unhandled one comes back later)."""
        with aws_errors("dead-letter queue"):
            response = self._sqs().receive_message(
                QueueUrl=self._url,
                MaxNumberOfMessages=max(1, min(MAX_BATCH, max_messages)),
                VisibilityTimeout=self._visibility,
                WaitTimeSeconds=0,
            )
        return [_dead_letter(m) for m in response.get("Messages", [])]

    def delete(self, receipt_handles: Sequence[str]) -> None:
        for start in range(0, len(receipt_handles), MAX_BATCH):
            entries = [
                {"Id": str(n), "ReceiptHandle": h} for n, h in enumerate(receipt_handles[start : start + MAX_BATCH])
            ]
            with aws_errors("dead-letter queue"):
                self._sqs().delete_message_batch(QueueUrl=self._url, Entries=entries)


def _dead_letter(message: dict[str, Any]) -> DeadLetter:
    try:
        body = CallsQueueMessage.parse(message.get("Body", ""))
    except UnreadableMessage:
        body = None
    callid = body.callid if body is not None and not body.is_request else None
    return DeadLetter(receipt_handle=message["ReceiptHandle"], callid=callid)
