"""Carrier pacing across every concurrent placer: a shared counter of request slots in PacingTable.

Time is cut into slots of 1/(CPS × HEADROOM) seconds. The carrier's item holds the next free slot, which only
ever grows. A placer takes a slot in one conditional write, of one of two kinds:
- the line is idle (the next free slot is not after the current one): it takes the current slot;
- the line is busy: it adds one to the next free slot and takes the one it passed, atomically, however many
  placers take slots at the same moment (no race to lose, so no retries).
It tries first the kind its container last saw (a lone call: idle; a backlog: busy), so a slot costs one write
either way, and two when the line changed meanwhile. No slot beyond the placer's horizon is taken, so none is
reserved that will not be used.
A placer sends when its slot begins, and only if it is not later than the slot by more than `late_after`
(what the headroom allows, below): otherwise it takes a new slot. So no 1-s window holds more than CPS
carrier *requests* (not wake-ups), whichever container sends them, and a backlog drains at HEADROOM × CPS.
"""

from __future__ import annotations

import math
from typing import Any

from callbridge.adapters.aws import ConditionFailed, LazyClient, aws_errors

# Slots are 1/0.95 of 1/CPS long, so a backlog drains at 95 % of the limit. If every request leaves at most
# L seconds after its slot begins, k requests in a 1-s window span k - 1 slots in less than 1 + L seconds:
# k - 1 < (1 + L) × 0.95 × CPS, which keeps k ≤ CPS for any L < 1/0.95 - 1 = 52 ms, whatever the CPS.
# LATE_AFTER is half of that: the other half absorbs the jitter on the way to the carrier, which counts the
# requests as they arrive. (At 0.92 a backlog drained at 89 % of the limit: one slot lost in thirty, to a late
# wake-up or a call that came back from its wait a little late, is 3 %.)
HEADROOM = 0.95
LATE_AFTER = 0.5 * (1 / HEADROOM - 1)  # seconds a request may leave after its slot begins (26 ms)
_KINDS = 3  # tries: the kind last seen, the other, the first again (the line changed twice meanwhile)


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
        self._next_seen = 0  # the next free slot, when this container last looked (a hint only)

    def acquire(self, now: float, horizon: float | None = None) -> float | None:
        """The start time of a reserved slot at or after `now`, or None if none is free within the horizon."""
        slot = math.ceil(now / self.interval)
        last = math.floor((now + (self._horizon if horizon is None else horizon)) / self.interval)
        if slot > last:
            return None
        busy = self._next_seen >= slot
        for _ in range(_KINDS):
            try:
                taken = self._next_free(slot, last) if busy else self._current(slot)
            except ConditionFailed as failed:  # the line is not as this container thought: the other kind
                seen = (failed.item or {}).get("next_slot", {}).get("N")
                self._next_seen = int(seen) if seen else 0
                if self._next_seen > last:
                    return None
                busy = self._next_seen >= slot
                continue
            self._next_seen = taken + 1
            return taken * self.interval
        return None

    def _write(self, **request: Any) -> dict[str, Any]:
        with aws_errors("pacing table"):
            response: dict[str, Any] = self._db().update_item(
                TableName=self._table, Key=self._key, ReturnValuesOnConditionCheckFailure="ALL_OLD", **request
            )
        return response

    def _current(self, slot: int) -> int:
        """The current slot, if the line is idle (the next free slot is not after it)."""
        self._write(
            UpdateExpression="SET next_slot = :after",
            ConditionExpression="attribute_not_exists(next_slot) OR next_slot <= :slot",
            ExpressionAttributeValues={":slot": {"N": str(slot)}, ":after": {"N": str(slot + 1)}},
        )
        return slot

    def _next_free(self, slot: int, last: int) -> int:
        """The next free slot, if the line is busy (it is not before the current one) and it is within the horizon."""
        response = self._write(
            UpdateExpression="ADD next_slot :one",
            ConditionExpression="next_slot >= :slot AND next_slot <= :last",
            ExpressionAttributeValues={":one": {"N": "1"}, ":slot": {"N": str(slot)}, ":last": {"N": str(last)}},
            ReturnValues="UPDATED_NEW",
        )
        return int(response["Attributes"]["next_slot"]["N"]) - 1
