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

The line's item also carries the do-not-call mark (`ListingMark`): when the list last gained a number, in any
account. Every slot reservation returns it with the slot, at no extra request, so a placer knows whether a call
checked against the list at its intake needs a second look-up at its claim (see logic/placer.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
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
# The carrier line: one per deployment (one carrier account), so whatever lists a number finds it without
# reading the carrier's secret.
LINE_KEY = {"pk": {"S": "carrier#next"}}
MARK = "dnc_listed_at"  # epoch seconds: the do-not-call list gained a number no later than this
# A slot's write sets the mark to its own time when the item has none (a new line, or one from before the mark):
# a call accepted before then looks the list up again, since a number listed then left no mark.
_MARK_SINCE = f"{MARK} = if_not_exists({MARK}, :now)"


def _mark_of(attributes: dict[str, Any] | None) -> float | None:
    value = (attributes or {}).get(MARK, {}).get("N")
    return float(value) if value is not None else None


class DynamoPacer:
    """Reserves carrier request slots in PacingTable."""

    def __init__(self, table_name: str, cps: float, *, horizon_seconds: float = 20, dynamodb: Any = None) -> None:
        self._table = table_name
        self.interval = 1.0 / (cps * HEADROOM)
        self.late_after = LATE_AFTER
        self._horizon = horizon_seconds
        self._db = LazyClient("dynamodb", dynamodb)
        self._next_seen = 0  # the next free slot, when this container last looked (a hint only)
        # The do-not-call mark as the last write on the line returned it (None: not seen yet).
        self.listed_at: float | None = None

    def acquire(self, now: float, horizon: float | None = None) -> float | None:
        """The start time of a reserved slot at or after `now`, or None if none is free within the horizon."""
        slot = math.ceil(now / self.interval)
        last = math.floor((now + (self._horizon if horizon is None else horizon)) / self.interval)
        if slot > last:
            return None
        busy = self._next_seen >= slot
        for _ in range(_KINDS):
            try:
                taken = self._next_free(slot, last, now) if busy else self._current(slot, now)
            except ConditionFailed as failed:  # the line is not as this container thought: the other kind
                self.listed_at = _mark_of(failed.item)
                seen = (failed.item or {}).get("next_slot", {}).get("N")
                self._next_seen = int(seen) if seen else 0
                if self._next_seen > last:
                    return None
                busy = self._next_seen >= slot
                continue
            self._next_seen = taken + 1
            return taken * self.interval
        return None

    def _write(self, now: float, values: dict[str, Any], **request: Any) -> dict[str, Any]:
        """One conditional write on the line; the item as it is after it (its do-not-call mark is kept)."""
        with aws_errors("pacing table"):
            response: dict[str, Any] = self._db().update_item(
                TableName=self._table,
                Key=LINE_KEY,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                ExpressionAttributeValues={**values, ":now": {"N": f"{now:.3f}"}},
                **request,
            )
        attributes: dict[str, Any] = response["Attributes"]
        self.listed_at = _mark_of(attributes)
        return attributes

    def _current(self, slot: int, now: float) -> int:
        """The current slot, if the line is idle (the next free slot is not after it)."""
        self._write(
            now,
            {":slot": {"N": str(slot)}, ":after": {"N": str(slot + 1)}},
            UpdateExpression=f"SET next_slot = :after, {_MARK_SINCE}",
            ConditionExpression="attribute_not_exists(next_slot) OR next_slot <= :slot",
        )
        return slot

    def _next_free(self, slot: int, last: int, now: float) -> int:
        """The next free slot, if the line is busy (it is not before the current one) and it is within the horizon."""
        attributes = self._write(
            now,
            {":one": {"N": "1"}, ":slot": {"N": str(slot)}, ":last": {"N": str(last)}},
            UpdateExpression=f"ADD next_slot :one SET {_MARK_SINCE}",
            ConditionExpression="next_slot >= :slot AND next_slot <= :last",
        )
        return int(attributes["next_slot"]["N"]) - 1


class ListingMark:
    """Raises the do-not-call mark on the carrier line's item after a number is listed (see the module's doc).

    Raised after every write that lists a number, even one already listed: a listing whose mark failed is
    retried by its client, and the retry finds the number listed.
    """

    def __init__(self, table_name: str, *, clock: Callable[[], float] = time.time, dynamodb: Any = None) -> None:
        self._table = table_name
        self._clock = clock
        self._db = LazyClient("dynamodb", dynamodb)

    def raise_to_now(self) -> None:
        """Set the mark to now unless it is later already (the item is created if there is none)."""
        try:
            with aws_errors("pacing table"):
                self._db().update_item(
                    TableName=self._table,
                    Key=LINE_KEY,
                    UpdateExpression=f"SET {MARK} = :at",
                    ConditionExpression=f"attribute_not_exists({MARK}) OR {MARK} < :at",
                    ExpressionAttributeValues={":at": {"N": f"{self._clock():.3f}"}},
                )
        except ConditionFailed:
            pass  # a later listing raised it further already
