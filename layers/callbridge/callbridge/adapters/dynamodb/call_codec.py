"""A call as CallsTable stores it: a compact form that reads back to the very same `Call`.

Every write of a call is billed one write unit per started KB of the item (the larger of before and after),
and a call is written five times on its way, so the form keeps an answered call's item under 1 KB:
- a timeline event is a list, `[at, event]` or `[at, event, detail]`, not a map naming at/event/detail, and
  its time is a number of epoch milliseconds when it is an `iso` time (8 bytes instead of 24); an event with
  fields of its own stays a map;
- a field at its default (unset, empty, 0 billed seconds, the `api` source, a retry policy's built-in values)
  is not stored;
- the parameters as given (`accepted`) are stored as what differs from the normalized request
  (`accepted_changes`: a changed or added parameter, or null for a request field that was not given).

Items written in the earlier form (events as maps, every field, `accepted` in full) read back the same way;
a step that appends to such an item's timeline appends in this form, and a mixed timeline reads back in order.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from callbridge.adapters.dynamodb.codec import from_item, plain, to_item, value
from callbridge.domain.calls import Call, TimelineEvent, iso

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
_EVENT_FIELDS = {"at", "event", "detail"}
_ACCEPTED_CHANGES = "accepted_changes"
# Always stored: what the call cannot be read without, the timeline (steps append to it) and the version (a
# read-modify-write compares it). Any other field is left out while it holds its default.
_KEPT = {"timeline", "version"} | {name for name, field in Call.model_fields.items() if field.is_required()}
_DEFAULTS = {
    name: field.get_default(call_default_factory=True)
    for name, field in Call.model_fields.items()
    if name not in _KEPT and name != "policy"
}


def _millis(at: str) -> int | None:
    """An `iso` time as epoch milliseconds, if it reads back as exactly the same text."""
    if not _ISO.fullmatch(at):
        return None
    parsed = datetime.fromisoformat(at.replace("Z", "+00:00"))
    millis = (parsed - _EPOCH) // _MILLISECOND
    return millis if _time(millis) == at else None


def _time(millis: int) -> str:
    return iso(_EPOCH + millis * _MILLISECOND)


def event_value(event: TimelineEvent) -> dict[str, Any]:
    """One timeline event as a DynamoDB attribute value (the compact form)."""
    data = event.model_dump()
    if set(data) != _EVENT_FIELDS:
        return value(data)
    millis = _millis(event.at)
    parts: list[Any] = [event.at if millis is None else millis, event.event]
    if event.detail:
        parts.append(event.detail)
    return value(parts)


def timeline_value(events: list[TimelineEvent]) -> dict[str, Any]:
    """Timeline events as a DynamoDB list (to store, or to append with list_append)."""
    return {"L": [event_value(e) for e in events]}


def _event(stored: Any) -> Any:
    if not isinstance(stored, list):
        return stored  # the map form
    at, name, *rest = stored
    return {"at": _time(at) if isinstance(at, int) else at, "event": name, "detail": rest[0] if rest else {}}


def appended_events(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The timeline events one change of a call appended, as `{at, event, detail}`, from its stream images (a
    step only ever appends), without reading the rest of the call."""
    known = len(((old or {}).get("timeline") or {}).get("L", []))
    return [_event(plain(stored)) for stored in ((new or {}).get("timeline") or {}).get("L", [])[known:]]


def call_attributes(call: Call) -> dict[str, Any]:
    """The call's own attributes as a DynamoDB item (the store adds the index attributes)."""
    data = call.model_dump(mode="json", exclude={"timeline", "policy", "accepted"})
    data = {k: v for k, v in data.items() if k in _KEPT or k not in _DEFAULTS or v != _DEFAULTS[k]}
    data["policy"] = call.policy.model_dump(mode="json", exclude_defaults=True) or None
    if call.accepted:
        changes: dict[str, Any] = {k: v for k, v in call.accepted.items() if call.request.get(k) != v}
        changes.update({k: None for k in call.request if k not in call.accepted})
        data[_ACCEPTED_CHANGES] = changes
    item = to_item(data)
    item["timeline"] = timeline_value(call.timeline)
    return item


def call_data(item: dict[str, Any], *, drop: tuple[str, ...] = ()) -> Call:
    """A CallsTable item (or stream image) as the call it stores, attributes in `drop` left out (indexes)."""
    data = from_item(item)
    for name in drop:
        data.pop(name, None)
    data["timeline"] = [_event(e) for e in data.get("timeline", [])]
    changes = data.pop(_ACCEPTED_CHANGES, None)
    if changes is not None:
        accepted = {**data.get("request", {}), **changes}
        data["accepted"] = {k: v for k, v in accepted.items() if v is not None}
    return Call.model_validate(data)
