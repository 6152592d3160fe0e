"""SQS adapter: NotificationsQueue (retries of outcome callbacks) and its dead-letter queue."""

from __future__ import annotations

from typing import Any

from callbridge.adapters.aws import LazyClient, aws_errors
from callbridge.domain.limits import MAX_DELAY_SECONDS
from callbridge.domain.notifications import Retry


class SqsNotificationQueue:
    """Schedules a retry with a delay; hands a notification that ran out of retries to the DLQ."""

    def __init__(self, queue_url: str, dead_letter_url: str, *, sqs: Any = None) -> None:
        self._url = queue_url
        self._dead_letter_url = dead_letter_url
        self._sqs = LazyClient("sqs", sqs)

    def schedule(self, retry: Retry, delay_seconds: int) -> None:
        """Make `retry` due in `delay_seconds` (at most SQS's 900)."""
        with aws_errors("notifications queue"):
            self._sqs().send_message(
                QueueUrl=self._url,
                MessageBody=retry.to_message(),
                DelaySeconds=max(0, min(MAX_DELAY_SECONDS, int(delay_seconds))),
            )

    def dead_letter(self, retry: Retry, reason: str) -> None:
        """Park a notification no attempt could deliver, with why, for an operator (the DLQ alarms)."""
        with aws_errors("notifications dead-letter queue"):
            self._sqs().send_message(QueueUrl=self._dead_letter_url, MessageBody=retry.to_message(last_error=reason))
