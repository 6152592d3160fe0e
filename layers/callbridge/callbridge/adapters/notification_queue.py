"""SQS adapter: NotificationsQueue (retries of outcome callbacks) and its dead-letter queue."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from callbridge.adapters.aws import client
from callbridge.domain.errors import ServiceUnavailable
from callbridge.domain.notifications import MAX_DELAY_SECONDS, Retry


class SqsNotificationQueue:
    """Schedules a retry with a delay; hands a notification that ran out of retries to the DLQ."""

    def __init__(self, queue_url: str, dead_letter_url: str, *, sqs: Any = None) -> None:
        self._url = queue_url
        self._dead_letter_url = dead_letter_url
        self._client = sqs

    @property
    def _sqs(self) -> Any:
        if self._client is None:
            self._client = client("sqs")
        return self._client

    def schedule(self, retry: Retry, delay_seconds: int) -> None:
        """Make `retry` due in `delay_seconds` (at most SQS's 900)."""
        try:
            self._sqs.send_message(
                QueueUrl=self._url,
                MessageBody=retry.to_message(),
                DelaySeconds=max(0, min(MAX_DELAY_SECONDS, int(delay_seconds))),
            )
        except (ClientError, BotoCoreError) as exc:
            raise ServiceUnavailable(f"notifications queue unavailable: {exc}") from exc

    def dead_letter(self, retry: Retry, reason: str) -> None:
        """Park a notification no attempt could deliver, with why, for an operator (the DLQ alarms)."""
        try:
            self._sqs.send_message(QueueUrl=self._dead_letter_url, MessageBody=retry.to_message(last_error=reason))
        except (ClientError, BotoCoreError) as exc:
            raise ServiceUnavailable(f"notifications dead-letter queue unavailable: {exc}") from exc
