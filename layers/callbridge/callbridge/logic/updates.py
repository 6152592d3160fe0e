"""A read-modify-write of a call (`CallsStore.update`) that also says what it did.

Whether the step's own change was the one written (it may find the call moved on and change nothing), and whether
that write ended the call: moved it from a status that is not final into a final one. The write is conditional on
the version it read, so of any number of steps racing to end the same call (a callback and its repeat, a
reconciliation, a hang-up) exactly one ends it; the outcome metrics count that one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from callbridge.domain.calls import Call
from callbridge.ports import CallsStore


@dataclass(frozen=True)
class Updated:
    """The stored call after the step (None: there is no such call), and what the step wrote."""

    call: Call | None
    wrote: bool  # the step's change was written (False: it left the call as it was)
    ended: bool  # and that write moved the call into a final status


def update(calls: CallsStore, callid: str, change: Callable[[Call], Call | None]) -> Updated:
    """`calls.update(callid, change)`, telling whether `change` was written and whether it ended the call."""
    seen: list[tuple[bool, bool]] = [(False, False)]

    def tracked(call: Call) -> Call | None:
        changed = change(call)
        ended = changed is not None and not call.status.is_final and changed.status.is_final
        seen[0] = (changed is not None, ended)
        return changed

    stored = calls.update(callid, tracked)
    wrote, ended = seen[0] if stored is not None else (False, False)
    return Updated(stored, wrote, ended)
