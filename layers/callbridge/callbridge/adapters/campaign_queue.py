"""SQS adapter: CampaignsQueue, the campaigns function's work queue."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from callbridge.adapters.aws import LazyClient, aws_error
from callbridge.domain.errors import ServiceUnavailable
from callbridge.domain.limits import MAX_DELAY_SECONDS

_BATCH = 10  # SendMessageBatch


class SqsCampaignsQueue:
    """Sends JSON messages (fan-out chunks, release steps, cancels, notifications) to CampaignsQueue."""

    def __init__(self, queue_url: str, *, sqs: Any = None) -> None:
        self._url = queue_url
        self._client = LazyClient("sqs", sqs)

    @property
    def _sqs(self) -> Any:
        return self._client()

    def send(self, messages: Sequence[tuple[dict[str, Any], int]]) -> None:
        for start in range(0, len(messages), _BATCH):
            entries = [
                {
                    "Id": str(n),
                    "MessageBody": json.dumps(body, separators=(",", ":")),
                    "DelaySeconds": max(0, min(MAX_DELAY_SECONDS, int(delay))),
                }
                for n, (body, delay) in enumerate(messages[start : start + _BATCH])
            ]
            try:
                response = self._sqs.send_message_batch(QueueUrl=self._url, Entries=entries)
            except aws_error() as exc:
                raise ServiceUnavailable(f"campaigns queue unavailable: {exc}") from exc
            if response.get("Failed"):
                raise ServiceUnavailable(f"campaigns queue refused {len(response['Failed'])} message(s)")
