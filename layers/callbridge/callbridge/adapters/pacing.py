"""Carrier pacing across every concurrent placer: a shared counter of request slots in PacingTable.

Time is cut into slots of 1/(CPS × HEADROOM) seconds. The carrier's item holds the next free slot; a placer
takes the current slot when the line is idle, else the next free one, with a conditional write that holds
only if that slot is still free (a failed one says which is free now). No slot beyond the placer's horizon
is taken, so none is reserved that will not be used.
A placer sends when its slot begins, and only if it is not later than the slot by more than `late_after`
(what the headroom allows, below): otherwise it takes a new slot. So no 1-s window holds more than CPS
carrier *requests* (not wake-ups), whichever container sends them, and a backlog drains at HEADROOM × CPS.
"""

from __future__ import annotations

import math
from typing import Any

from callbridge.adapters.aws import ConditionFailed, LazyClient, aws_errors

# Slots are 8 % longer than 1/CPS, so a backlog drains at 92 % of the limit. If every request leaves at most
# L seconds after its slot begins, k requests in a 1-s window span k - 1 slots in less than 1 + L seconds:
# k - 1 < (1 + L) × 0.92 × CPS, which keeps k ≤ CPS for any L < 1/0.92 - 1 = 87 ms, whatever the CPS.
# LATE_AFTER is half of that: the other half absorbs the network's jitter on the way to the carrier, which
# counts the requests as they arrive (at 78 ms a run on a busy machine saw three arrive within 997 ms).
HEADROOM = 0.92
LATE_AFTER = 0.5 * (1 / HEADROOM - 1)  # seconds a request may leave after its slot begins (43 ms)
_ATTEMPTS = 8  # placers racing for the same slot: each failed try learns the next free one


class DynamoPacer:
    """Reserves carrier request slots in PacingTable."""

    def __init__(
        self, table_name: str, carrier_key: str, cps: float, *, horizon_seconds: float = 20, dynamodb: Any = None
    ) -> None:
        self._table = table_name
        self._key = {"pk": {"S": f"{carrier_key}#next"}}
        self.interval = 1.0 / (cps * HEADROOM)
        self.late_after = LATE_AFTER
        self._horizon = horizon_seconds
        self._db = LazyClient("dynamodb", dynamodb)

    def acquire(self, now: float, horizon: float | None = None) -> float | None:
        """The start time of a reserved slot at or after `now`, or None if none is free within the horizon."""
        slot = math.ceil(now / self.interval)
        last = math.floor((now + (self._horizon if horizon is None else horizon)) / self.interval)
        for _ in range(_ATTEMPTS):
            if slot > last:
                return None
            try:  # slot is free if the next free one is not after it
                with aws_errors("pacing table"):
                    self._db().update_item(
                        TableName=self._table,
                        Key=self._key,
                        UpdateExpression="SET next_slot = :after",
                        ConditionExpression="attribute_not_exists(next_slot) OR next_slot <= :slot",
                        ExpressionAttributeValues={":slot": {"N": str(slot)}, ":after": {"N": str(slot + 1)}},
                        ReturnValuesOnConditionCheckFailure="ALL_OLD",
                    )
                return slot * self.interval
            except ConditionFailed as taken:  # try the next free one, as the item said it was then
                seen = (taken.item or {}).get("next_slot", {}).get("N")
                slot = max(slot + 1, int(seen) if seen else 0)
        return None
