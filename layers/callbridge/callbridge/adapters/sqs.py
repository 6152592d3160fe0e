"""SQS adapter: CallsQueue."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from callbridge.adapters.aws import client
from callbridge.domain.errors import ServiceUnavailable


class SqsCallsQueue:
    """Sends `{"callid": ...}` messages to CallsQueue."""

    def __init__(self, queue_url: str, *, sqs: Any = None) -> None:
        self._url = queue_url
        self._client = sqs

    @property
    def _sqs(self) -> Any:
        if self._client is None:
            self._client = client("sqs")
        return self._client

    def send_call(self, callid: str, *, delay_seconds: int = 0) -> None:
        try:
            self._sqs.send_message(
                QueueUrl=self._url,
                MessageBody=json.dumps({"callid": callid}),
                DelaySeconds=max(0, min(900, delay_seconds)),
            )
        except (ClientError, BotoCoreError) as exc:
            raise ServiceUnavailable(f"calls queue unavailable: {exc}") from exc

    def retry_later(self, receipt_handle: str, seconds: float) -> None:
        """Make a received message visible again after `seconds` (backoff), not the queue's default."""
        try:
            self._sqs.change_message_visibility(
                QueueUrl=self._url, ReceiptHandle=receipt_handle, VisibilityTimeout=int(max(0, min(43200, seconds)))
            )
        except (ClientError, BotoCoreError) as exc:
            raise ServiceUnavailable(f"calls queue unavailable: {exc}") from exc
