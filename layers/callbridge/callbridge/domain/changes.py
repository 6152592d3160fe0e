"""Changes to a stored call that the store writes in one conditional request, without reading the call first.

A use case describes each step of a call as a `Change`: the statuses the call must be in, the status it moves
to, the fields it sets, the event it adds to the timeline. `apply` is what a Change means for a call in
memory; the DynamoDB store writes the same thing as one conditional UpdateItem (adapters/dynamodb/calls.py),
and a test holds the two to each other. The builders of the steps live with their rules: claiming and
recording a placement in domain/placing.py, the carrier's callbacks in domain/progress.py.

A Change that moves the status out of the waiting states also moves the call in the due index: to
`dispatch.entering(status, since)`, its attention time from that moment (none once final).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from callbridge.domain.calls import Call, CallStatus, TimelineEvent

NOT_FINAL = frozenset(s for s in CallStatus if not s.is_final)


@dataclass(frozen=True)
class Change:
    """One step of a call, written atomically: conditions, then the update.

    `when`: the statuses the call must be in (None: any). `require`: fields that must hold these values
    (None: must be unset). `not_after`: fields that must be unset or at most this text (ISO times sort as text).
    `status`: the status it moves to (updated_at becomes the event's time). `set`: fields set (None unsets).
    `set_once`: fields set only where still unset. `otherwise`: written instead when the conditions do not
    hold, for example a late callback that must still reach the timeline without moving the status; it may have
    an `otherwise` of its own (the first in the chain whose conditions hold is written).
    `since`: when the call entered `status`, if earlier than the event (it places the call in the due index).
    `needs`: fields that must be set while the call is in the given statuses.
    """

    event: TimelineEvent | None = None
    when: frozenset[CallStatus] | None = None
    require: Mapping[str, Any] = field(default_factory=dict)
    not_after: Mapping[str, str] = field(default_factory=dict)
    status: CallStatus | None = None
    set: Mapping[str, Any] = field(default_factory=dict)
    set_once: Mapping[str, Any] = field(default_factory=dict)
    otherwise: Change | None = None
    since: str | None = None
    needs: Mapping[str, frozenset[CallStatus]] = field(default_factory=dict)

    def holds(self, call: Call) -> bool:
        """Whether the call meets this change's conditions."""
        if self.when is not None and call.status not in self.when:
            return False
        for name, wanted in self.require.items():
            if getattr(call, name) != wanted:
                return False
        for name, latest in self.not_after.items():
            current = getattr(call, name)
            if current is not None and current > latest:
                return False
        for name, statuses in self.needs.items():
            if call.status in statuses and getattr(call, name) is None:
                return False
        return True


def apply(call: Call, change: Change) -> tuple[bool, Call | None]:
    """(whether `change` itself applied, the call after it, or None if nothing was written).

    When the conditions fail, its `otherwise` chain is tried in order: the result is (False, the call after the
    first that holds). Every write moves the version, as the store's does.
    """
    if change.holds(call):
        return True, _written(call, change)
    alternative = first_that_holds(alternatives(change), call)
    return (False, _written(call, alternative)) if alternative is not None else (False, None)


def alternatives(change: Change) -> list[Change]:
    """The changes written instead of `change` when its conditions fail, in the order they are tried."""
    chain: list[Change] = []
    while change.otherwise is not None:
        change = change.otherwise
        chain.append(change)
    return chain


def first_that_holds(changes: list[Change], call: Call) -> Change | None:
    return next((c for c in changes if c.holds(call)), None)


def ends(change: Change | None) -> bool:
    """Whether writing `change` (the one a write chose: `change` itself or one of its alternatives) moved the call
    into a final status: it sets one and holds only for a call that is not final yet, so of any number of
    writes about the same call (a callback repeated, another that came late) at most one ends it."""
    return (
        change is not None
        and change.event is not None
        and change.status is not None
        and change.status.is_final
        and change.when is not None
        and change.when <= NOT_FINAL
    )


def _written(call: Call, change: Change) -> Call:
    update: dict[str, Any] = dict(change.set)
    for name, value in change.set_once.items():
        if getattr(call, name) is None:
            update[name] = value
    if change.status is not None and change.event is not None:
        update["status"] = change.status
        update["updated_at"] = change.event.at
    update["version"] = call.version + 1
    if change.event is not None:
        update["timeline"] = [*call.timeline, change.event]
    return call.model_copy(update=update)
