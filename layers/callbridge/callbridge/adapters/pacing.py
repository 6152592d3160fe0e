"""Carrier pacing across every concurrent placer: one DynamoDB item per time slot, claimed conditionally.

Time is cut into slots of 1/(CPS × headroom) seconds; a placer claims the first free future slot
with a conditional put and places its call when that slot begins. Any two carrier requests are
therefore at least one slot apart, whichever container sends them, and a backlog drains at
`headroom` × CPS. Slots are distinct keys (no hot partition) and expire by TTL.
"""

from __future__ import annotations

import math
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from callbridge.adapters.aws import client
from callbridge.domain.errors import ServiceUnavailable

# Slots are 8 % longer than 1/CPS so network jitter between a placer and the carrier cannot put two
# requests in one carrier-side second; a backlog still drains at 92 % of the limit.
HEADROOM = 0.92


class DynamoPacer:
    """Reserves carrier request slots in PacingTable."""

    def __init__(
        self, table_name: str, carrier_key: str, cps: float, *, horizon_seconds: float = 20, dynamodb: Any = None
    ) -> None:
        self._table = table_name
        self._key = carrier_key
        self.interval = 1.0 / (cps * HEADROOM)
        self._horizon = horizon_seconds
        self._client = dynamodb

    @property
    def _db(self) -> Any:
        if self._client is None:
            self._client = client("dynamodb")
        return self._client

    def acquire(self, now: float, horizon: float | None = None) -> float | None:
        """The start time of a reserved slot at or after `now`, or None if none is free within the horizon."""
        first = math.ceil(now / self.interval)
        last = math.floor((now + (self._horizon if horizon is None else horizon)) / self.interval)
        for slot in range(first, last + 1):
            try:
                self._db.put_item(
                    TableName=self._table,
                    Item={
                        "pk": {"S": f"{self._key}#{slot}"},
                        "expires_at": {"N": str(int(now) + 3600)},
                    },
                    ConditionExpression="attribute_not_exists(pk)",
                )
                return slot * self.interval
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise ServiceUnavailable(f"pacing table unavailable: {exc}") from exc
            except BotoCoreError as exc:
                raise ServiceUnavailable(f"pacing table unavailable: {exc}") from exc
        return None
