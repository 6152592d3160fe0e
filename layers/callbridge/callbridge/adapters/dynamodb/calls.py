"""CallsTable: one item per call, its timeline appended in place; sparse indexes for the scheduler and the lists.

The steps of a call's life are the domain's `Change`s (domain/changes.py), each written as one conditional
UpdateItem with no read before it: the conditions become the ConditionExpression, the update appends the
event to the timeline without rewriting the rest of the item, and the answer (ALL_NEW, or ALL_OLD when the
condition failed) is the call. Rare steps that need the whole call to decide (reconciliation, re-sends, IVR
keys) read it and write it back conditionally on its version (`update`). The item's form is call_codec.py's.

The due index (DueByShard) holds each call that is not final no later than its attention time: an answer keeps
the call's place when that is earlier (domain/dispatch.py, `placement`), so it writes no index. Its key is
`<time>#<callid>` for a call the scheduler dispatches ahead of its time, `<time>#<callid>#at` for one that needs
nothing before it (`DueKind`, `due_key`): the time comes first, so the index and ScheduledByAccount stay in time
order and `due_key < <time>` still means "due before it".

ByAccount and ScheduledByAccount project only keys: a status change never writes to them; a list reads the
page's keys from the index, then the calls (BatchGetItem). A campaign's call its campaign holds until a time (its
call_date, its calling window's opening) is in ScheduledByAccount only: its `due_key` (at that time) with no
`due_shard`, so DueByShard never holds it, and the scheduler's dispatch holds only for a call that has a `due_shard`.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from callbridge.adapters.aws import ConditionFailed, LazyClient, TransactionCanceled, aws_errors
from callbridge.adapters.dynamodb.call_codec import call_attributes, call_data, timeline_value
from callbridge.adapters.dynamodb.codec import from_item, to_item, value
from callbridge.adapters.dynamodb.idempotency import DynamoIdempotency
from callbridge.domain.calls import UNCLAIMED, Call, CallStatus, TimelineEvent, iso
from callbridge.domain.changes import Change, alternatives, first_that_holds
from callbridge.domain.dispatch import (
    DEFAULT_TIMING,
    DueKind,
    Placement,
    Timing,
    attention,
    due_kind,
    entering,
    entering_kind,
    held_until,
    listed_as_scheduled,
    moment,
    placement,
)
from callbridge.domain.errors import CallNotFound, Conflict, ServiceUnavailable
from callbridge.domain.progress import settled
from callbridge.ports import (
    CallAlreadyStored,
    CallOutcome,
    CallQuery,
    Cursor,
    DueCall,
    IdempotencyKeyTaken,
    IdempotencyRecord,
    Page,
    VersionConflict,
)

_MAX_PAGES = 10  # a filtered list reads at most this many index pages per request
_BATCH_GET = 100  # keys per BatchGetItem
_MAX_UNPROCESSED_ROUNDS = 8  # BatchGetItem requests for one batch's keys DynamoDB left unprocessed
_INDEXED = ("due_key", "due_shard", "scheduled_account", "created_key")
_WHAT = "calls table"
# Writes of a step's alternatives when each finds the call changed again since the last (a race each time).
_RETRIES = 3


def shard_of(callid: str, shards: int) -> str:
    """The due-index partition of a call: a stable hash of its id, spread over `shards`."""
    return f"{zlib.crc32(callid.encode()) % shards:02d}"


def due_key(callid: str, due: datetime, kind: DueKind) -> str:
    """The sort key of a call's due-index entry: its time, its callid and, unless it is dispatched ahead, its kind.

    An AHEAD entry keeps the form every entry had before kinds existed, so an old entry reads as AHEAD.
    """
    key = f"{iso(due)}#{callid}"
    return key if kind is DueKind.AHEAD else f"{key}#{kind.value}"


def due_entry(callid: str, key: str) -> DueCall:
    """A due-index entry from its sort key (an entry without a kind, or of a kind this code does not know, is
    AHEAD: the scheduler handles it as it handled every entry before kinds)."""
    due, _, rest = key.partition("#")
    _, _, marker = rest.partition("#")
    kind = DueKind.AT if marker == DueKind.AT.value else DueKind.AHEAD
    return DueCall(callid=callid, due=due, kind=kind)


def call_from_item(item: dict[str, Any]) -> Call:
    """A CallsTable item (or stream image) as a call, its outcome settled from its carrier events."""
    return settled(call_data(item, drop=_INDEXED))


class _Expression:
    """Builds one UpdateItem's expressions with generated placeholders."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        self.sets: list[str] = []
        self.removes: list[str] = []
        self.conditions: list[str] = ["attribute_exists(callid)"]

    def name(self, attribute: str) -> str:
        placeholder = f"#n{len(self.names)}"
        self.names[placeholder] = attribute
        return placeholder

    def value(self, data: Any) -> str:
        return self.typed(value(data))

    def typed(self, attribute: dict[str, Any]) -> str:
        """A placeholder for a value already in DynamoDB's typed form."""
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = attribute
        return placeholder

    def params(self) -> dict[str, Any]:
        update = "SET " + ", ".join(self.sets) + " ADD version " + self.value(1)
        if self.removes:
            update += " REMOVE " + ", ".join(self.removes)
        params: dict[str, Any] = {
            "UpdateExpression": update,
            "ConditionExpression": " AND ".join(self.conditions),
            "ExpressionAttributeNames": self.names,
        }
        if self.values:
            params["ExpressionAttributeValues"] = self.values
        return params


class DynamoCallsStore:
    """Calls, the due index (DueByShard) and the account lists (ByAccount, ScheduledByAccount)."""

    def __init__(
        self,
        table_name: str,
        *,
        idempotency_table: str = "",
        schedule_shards: int = 16,
        timing: Timing = DEFAULT_TIMING,
        dynamodb: Any = None,
    ) -> None:
        self._table = table_name
        self._idempotency = DynamoIdempotency(idempotency_table, dynamodb=dynamodb) if idempotency_table else None
        self._shards = schedule_shards
        self._timing = timing
        self._db = LazyClient("dynamodb", dynamodb)

    # --- the item

    def _due(self, callid: str, due: datetime, kind: DueKind) -> dict[str, str]:
        return {"due_key": due_key(callid, due, kind), "due_shard": shard_of(callid, self._shards)}

    def call_item(self, call: Call) -> dict[str, Any]:
        """The call as a CallsTable item, with the index attributes its state calls for.

        due_key/due_shard (DueByShard): every call that is not final, at its attention time, with its kind (see
        domain/dispatch.py). scheduled_account (ScheduledByAccount, sorted by due_key): a call listed as scheduled.
        A campaign's call its campaign holds until a time (its call_date, its calling window's opening) has no
        attention time: its due_key is that time, with no due_shard, so it is listed and not in the due index. For a
        call_date the key is the one its release writes (QUEUED at its call_date: an AT entry), so the release does
        not move its ScheduledByAccount entry.
        """
        data = {"created_key": f"{call.created_at}#{call.callid}"}
        due = attention(call, self._timing)
        if due is not None:
            data.update(self._due(call.callid, due, due_kind(call)))
        if listed_as_scheduled(call):
            data["scheduled_account"] = call.account_id
        held = held_until(call)
        if held:
            data["due_key"] = due_key(call.callid, moment(held), DueKind.AT)
        return {**call_attributes(call), **to_item(data)}

    def _update(self, callid: str, change: Change, *, keep_place: bool = True) -> dict[str, Any]:
        """The UpdateItem request that writes `change` (its conditions, then its update).

        A change into a status that keeps an earlier place in the due index (`Placement.KEEP_IF_EARLIER`) is
        written on the condition that the place is that early, unless `keep_place` is False: then it moves it.
        """
        x = _Expression()
        if change.when is not None:
            options = ", ".join(x.value(s.value) for s in sorted(change.when))
            x.conditions.append(f"{x.name('status')} IN ({options})")
        for field, wanted in change.require.items():
            if wanted is None:
                x.conditions.append(f"attribute_not_exists({x.name(field)})")
            else:
                x.conditions.append(f"{x.name(field)} = {x.value(wanted)}")
        for field, latest in change.not_after.items():
            n = x.name(field)
            x.conditions.append(f"(attribute_not_exists({n}) OR {n} <= {x.value(latest)})")
        for field, statuses in change.needs.items():
            options = ", ".join(x.value(s.value) for s in sorted(statuses))
            x.conditions.append(f"(NOT {x.name('status')} IN ({options}) OR attribute_exists({x.name(field)}))")
        for field, data in change.set.items():
            if data is None:
                x.removes.append(x.name(field))
            else:
                x.sets.append(f"{x.name(field)} = {x.value(data)}")
        for field, data in change.set_once.items():
            n = x.name(field)
            x.sets.append(f"{n} = if_not_exists({n}, {x.value(data)})")
        if change.event is not None:
            t = x.name("timeline")
            appended = x.typed(timeline_value([change.event]))
            x.sets.append(f"{t} = list_append(if_not_exists({t}, {x.value([])}), {appended})")
        if change.status is not None and change.event is not None:
            x.sets.append(f"{x.name('status')} = {x.value(change.status.value)}")
            x.sets.append(f"{x.name('updated_at')} = {x.value(change.event.at)}")
            if change.status not in UNCLAIMED:
                x.removes.append(x.name("scheduled_account"))
            place = self._placement(change)
            if place is not Placement.KEEP:
                due = entering(change.status, moment(change.since or change.event.at), self._timing)
                entry = None if due is None else self._due(callid, due, entering_kind(change.status))
                if entry is None:
                    x.removes += [x.name("due_key"), x.name("due_shard")]
                elif place is Placement.KEEP_IF_EARLIER and keep_place:
                    # the time comes first in the key: the entry kept (of either kind) is no later than `due`
                    x.conditions.append(f"{x.name('due_key')} <= {x.value(entry['due_key'])}")
                else:
                    for field, data in entry.items():
                        x.sets.append(f"{x.name(field)} = {x.value(data)}")
        if not x.sets:  # the version still moves, so a read-modify-write that read before fails and reads again
            x.sets.append(f"{x.name('callid')} = {x.value(callid)}")
        return {"TableName": self._table, "Key": {"callid": {"S": callid}}, **x.params()}

    def apply(self, callid: str, change: Change) -> tuple[bool, Call | None]:
        """Write `change` in one conditional request: (whether it held, the call after it). See `write`."""
        chosen, call = self.write(callid, change)
        return chosen is change, call

    def write(self, callid: str, change: Change) -> tuple[Change | None, Call | None]:
        """Write `change` in one conditional request: (the change written, the call after it).

        When its conditions fail, the first of its `otherwise` chain that holds for the call as the failed write
        returned it is written instead (that alternative, the call after it); with none, (None, the call as it
        is). (None, None): there is no such call. When that write fails too, the call changed in between (another
        writer's step landed): the choice is made again from the call as it is now, `change` itself included.
        When only the due-index condition failed (the call's place is later than the change would put it), it
        is written again moving it. The change written is known from the writes' own answers, with no read:
        `domain.changes.ends` says from it whether this write moved the call into a final status.
        """
        try:
            return change, self._placed(callid, change)
        except ConditionFailed as failed:
            item = failed.item
        chain = alternatives(change)
        for _ in range(_RETRIES):
            if item is None:
                return None, None
            current = call_data(item, drop=_INDEXED)
            chosen = change if change.holds(current) else first_that_holds(chain, current)
            if chosen is None:
                return None, settled(current)
            try:
                return chosen, self._placed(callid, chosen)
            except ConditionFailed as again:
                item = again.item
        return None, call_from_item(item) if item else None

    @staticmethod
    def _placement(change: Change) -> Placement:
        """What writing `change` does with the call's due-index entry (KEEP when it moves no status out of the
        unclaimed ones)."""
        if change.status is None or change.event is None or change.status in UNCLAIMED:
            return Placement.KEEP
        return placement(change.status)

    def _placed(self, callid: str, change: Change) -> Call:
        """Write `change`; when it keeps an earlier place in the due index and only that condition failed (the
        call's place is later), write it again, moving the call there. Raises ConditionFailed."""
        try:
            return self._write(callid, change)
        except ConditionFailed as failed:
            if failed.item is None or self._placement(change) is not Placement.KEEP_IF_EARLIER:
                raise
            if not change.holds(call_data(failed.item, drop=_INDEXED)):
                raise
            return self._write(callid, change, keep_place=False)

    def _write(self, callid: str, change: Change, *, keep_place: bool = True) -> Call:
        with aws_errors(_WHAT):
            response = self._db().update_item(
                **self._update(callid, change, keep_place=keep_place),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        return call_from_item(response["Attributes"])

    # --- a call as a whole

    def create(self, call: Call, *, idempotency: IdempotencyRecord | None = None) -> None:
        """Store a new call (and its idempotency record, atomically). Raises IdempotencyKeyTaken, or
        CallAlreadyStored (without an idempotency record) when the callid is stored already."""
        put_call = {
            "TableName": self._table,
            "Item": self.call_item(call),
            "ConditionExpression": "attribute_not_exists(callid)",
        }
        if idempotency is None:
            try:
                with aws_errors(_WHAT):
                    self._db().put_item(**put_call)
            except ConditionFailed as exc:
                raise CallAlreadyStored(call.callid) from exc
            return
        if self._idempotency is None:
            raise ValueError("this store was built without an idempotency table")
        put_record = self._idempotency.put(call.account_id, idempotency, now=moment(call.created_at).timestamp())
        try:
            with aws_errors(_WHAT):
                self._db().transact_write_items(TransactItems=[{"Put": put_call}, put_record])
        except TransactionCanceled as exc:
            if len(exc.reasons) > 1 and exc.reasons[1] == "ConditionalCheckFailed":
                raise IdempotencyKeyTaken from exc
            raise ServiceUnavailable(f"{_WHAT} unavailable: {exc}") from exc

    def get(self, callid: str) -> Call | None:
        with aws_errors(_WHAT):
            response = self._db().get_item(TableName=self._table, Key={"callid": {"S": callid}}, ConsistentRead=True)
        item = response.get("Item")
        return call_from_item(item) if item else None

    def get_many(self, callids: Sequence[str], readers: int = 8) -> dict[str, Call]:
        """The stored calls of `callids` by callid (a callid with no call is left out), read consistently: 100 a
        request (BatchGetItem), `readers` requests at once. A campaign's report reads its 10,000 calls in 100
        requests instead of 10,000."""
        unique = list(dict.fromkeys(callids))
        batches = [unique[start : start + _BATCH_GET] for start in range(0, len(unique), _BATCH_GET)]

        def read(batch: list[str]) -> list[Call]:
            found: list[Call] = []
            pending: dict[str, Any] = {
                self._table: {"Keys": [{"callid": {"S": c}} for c in batch], "ConsistentRead": True}
            }
            for attempt in range(_MAX_UNPROCESSED_ROUNDS):
                with aws_errors(_WHAT):
                    response = self._db().batch_get_item(RequestItems=pending)
                found += [call_from_item(i) for i in response.get("Responses", {}).get(self._table, [])]
                pending = response.get("UnprocessedKeys") or {}
                if not pending:
                    return found
                time.sleep(min(1.0, 0.05 * 2**attempt))  # throttled: what is left, after a pause
            raise ServiceUnavailable(f"{_WHAT} is throttling reads")

        if len(batches) <= 1:
            return {c.callid: c for batch in batches for c in read(batch)}
        with ThreadPoolExecutor(min(readers, len(batches))) as pool:
            return {c.callid: c for found in pool.map(read, batches) for c in found}

    def save(self, call: Call, expected_version: int) -> Call:
        """Write `call` if the stored one still has `expected_version`; raises VersionConflict."""
        new = call.model_copy(update={"version": expected_version + 1})
        try:
            with aws_errors(_WHAT):
                self._db().put_item(
                    TableName=self._table,
                    Item=self.call_item(new),
                    ConditionExpression="attribute_exists(callid) AND version = :v",
                    ExpressionAttributeValues={":v": {"N": str(expected_version)}},
                )
        except ConditionFailed as exc:
            raise VersionConflict(call.callid) from exc
        return new

    def update(self, callid: str, change: Callable[[Call], Call | None], attempts: int = 8) -> Call | None:
        """Read-modify-write with optimistic concurrency: `change` returns the new call, or None to keep it.

        For the steps that need the whole call to decide; the others are a `Change` (`apply`). Returns the
        stored call after the change (or unchanged); None if there is no such call.
        """
        for _ in range(attempts):
            current = self.get(callid)
            if current is None:
                return None
            changed = change(current)
            if changed is None:
                return current
            try:
                return self.save(changed, current.version)
            except VersionConflict:
                continue
        raise ServiceUnavailable(f"call {callid} is changing too fast to update")

    def cancel(self, callid: str, account_id: str, event: TimelineEvent) -> Call:
        """A scheduled call that has not started (SCHEDULED, or QUEUED with a call_date) → CANCELED.

        A campaign's call waiting for its release is SCHEDULED: its campaign counts it CANCELED from the table's
        stream, and its release finds it ended and skips it.

        The version moves too, so a placer's claim or a scheduler's dispatch that read the call before
        this write fails its own conditional write and reads CANCELED.
        """
        try:
            with aws_errors(_WHAT):
                response = self._db().update_item(
                    TableName=self._table,
                    Key={"callid": {"S": callid}},
                    UpdateExpression=(
                        "SET #s = :canceled, updated_at = :at, ended_at = :at, "
                        "timeline = list_append(if_not_exists(timeline, :empty), :event) "
                        "ADD version :one "
                        "REMOVE due_key, due_shard, scheduled_account"
                    ),
                    ConditionExpression=(
                        "account_id = :a AND (#s = :scheduled OR #s = :retry_wait OR "
                        "(#s = :queued AND (attribute_exists(call_date) OR attribute_exists(next_attempt_at))))"
                    ),
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={
                        ":canceled": {"S": CallStatus.CANCELED.value},
                        ":scheduled": {"S": CallStatus.SCHEDULED.value},
                        ":retry_wait": {"S": CallStatus.RETRY_WAIT.value},
                        ":queued": {"S": CallStatus.QUEUED.value},
                        ":a": {"S": account_id},
                        ":at": {"S": event.at},
                        ":one": {"N": "1"},
                        ":empty": {"L": []},
                        ":event": timeline_value([event]),
                    },
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
        except ConditionFailed as exc:
            current = call_from_item(exc.item) if exc.item else None
            if current is None or current.account_id != account_id:
                raise CallNotFound(callid) from exc
            raise Conflict(
                f"call {callid} is {current.status.value}; only scheduled calls that have not started can be cancelled"
            ) from exc
        return call_from_item(response["Attributes"])

    # --- the due index (the scheduler)

    @property
    def shards(self) -> list[str]:
        """Every partition of the due index."""
        return [f"{n:02d}" for n in range(self._shards)]

    def due(self, shard: str, before: str, limit: int | None = None) -> list[DueCall]:
        """Calls of one due-index shard whose attention time is before `before` (ISO), soonest first."""
        params: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "DueByShard",
            "KeyConditionExpression": "due_shard = :s AND due_key < :b",
            "ExpressionAttributeValues": {":s": {"S": shard}, ":b": {"S": before}},
        }
        found: list[DueCall] = []
        while True:
            if limit is not None:
                params["Limit"] = limit - len(found)
            with aws_errors(_WHAT):
                response = self._db().query(**params)
            for item in response.get("Items", []):
                found.append(due_entry(item["callid"]["S"], item["due_key"]["S"]))
            last = response.get("LastEvaluatedKey")
            if not last or (limit is not None and len(found) >= limit):
                return found
            params["ExclusiveStartKey"] = last

    def dispatch(self, callid: str, before: str, event: TimelineEvent) -> tuple[bool, Call | None]:
        """Record a SCHEDULED or RETRY_WAIT call's message as sent (`dispatched_at`, its status kept) if it is due
        before `before` (ISO) and not dispatched yet: one conditional write, no read.

        The same transition as `domain.dispatch.dispatch`; the index attributes stay as they are (a dispatched
        call keeps its due time as due_key, see `call_item`, and its entry stays AHEAD rather than pay an index
        write to become AT: a run before its time tries this once more and fails). Returns (True, None) when the
        call moved, else (False, the call as it is, or None if there is no such call).
        """
        try:
            with aws_errors(_WHAT):
                self._db().update_item(
                    TableName=self._table,
                    Key={"callid": {"S": callid}},
                    UpdateExpression=(
                        "SET dispatched_at = :at, updated_at = :at, timeline = list_append(timeline, :event) "
                        "ADD version :one"
                    ),
                    # due_key is "<due>#<callid>" (a waiting call's entry is AHEAD: no kind after it): it sorts before
                    # `before` exactly when the call is due before it (its call_date, or the next_attempt_at of a
                    # retry or a calling window's opening). A campaign's call its campaign holds has a due_key (its
                    # place in ScheduledByAccount) but no due_shard: it is not in the due index, and never dispatched.
                    ConditionExpression=(
                        "(#s = :scheduled OR #s = :retry_wait) AND due_key < :before "
                        "AND attribute_exists(due_shard) AND attribute_not_exists(dispatched_at)"
                    ),
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={
                        ":scheduled": {"S": CallStatus.SCHEDULED.value},
                        ":retry_wait": {"S": CallStatus.RETRY_WAIT.value},
                        ":before": {"S": before},
                        ":at": {"S": event.at},
                        ":one": {"N": "1"},
                        ":event": timeline_value([event]),
                    },
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
        except ConditionFailed as exc:
            return False, call_from_item(exc.item) if exc.item else None
        return True, None

    def move(self, callid: str, version: int, due: datetime, kind: DueKind) -> bool:
        """Move the call's due-index entry to `due` (an entry of `kind`) if the call is still at `version`: whether
        it moved.

        The version stays: the index attributes follow from the call, so a read-modify-write that read the call
        before still writes what it means (and places the call itself).
        """
        try:
            with aws_errors(_WHAT):
                self._db().update_item(
                    TableName=self._table,
                    Key={"callid": {"S": callid}},
                    UpdateExpression="SET due_key = :due",
                    ConditionExpression="version = :v AND attribute_exists(due_shard)",  # in the due index
                    ExpressionAttributeValues={
                        ":due": {"S": due_key(callid, due, kind)},
                        ":v": {"N": str(version)},
                    },
                )
        except ConditionFailed:
            return False
        return True

    # --- the lists

    def _batch_get(self, keys: Sequence[dict[str, Any]]) -> list[Call]:
        """The calls of `keys`, in their order (eventually consistent, as the index that named them is)."""
        found: dict[str, Call] = {}
        for start in range(0, len(keys), _BATCH_GET):
            pending: dict[str, Any] = {
                self._table: {"Keys": [{"callid": k["callid"]} for k in keys[start : start + _BATCH_GET]]}
            }
            while pending:
                with aws_errors(_WHAT):
                    response = self._db().batch_get_item(RequestItems=pending)
                for item in response.get("Responses", {}).get(self._table, []):
                    call = call_from_item(item)
                    found[call.callid] = call
                pending = response.get("UnprocessedKeys") or {}
        return [found[k["callid"]["S"]] for k in keys if k["callid"]["S"] in found]

    def _query_pages(
        self, params: dict[str, Any], limit: int, cursor: Cursor | None, keep: Callable[[Call], bool]
    ) -> Page:
        calls: list[Call] = []
        start = cursor
        for _ in range(_MAX_PAGES):
            request = dict(params, Limit=limit - len(calls))
            if start:
                request["ExclusiveStartKey"] = to_item(start)
            with aws_errors(_WHAT):
                response = self._db().query(**request)
            calls.extend(c for c in self._batch_get(response.get("Items", [])) if keep(c))
            last = response.get("LastEvaluatedKey")
            start = from_item(last) if last else None
            if start is None or len(calls) >= limit:
                break
        return Page(calls=calls, cursor=start)

    def list_calls(self, query: CallQuery) -> Page:
        names = {"#a": "account_id"}
        values: dict[str, Any] = {":a": {"S": query.account_id}}
        condition = "#a = :a"
        if query.since or query.until:
            names["#k"] = "created_key"
        if query.since and query.until:
            condition += " AND #k BETWEEN :since AND :until"
            values[":since"] = {"S": query.since}
            values[":until"] = {"S": query.until + "~"}
        elif query.since:
            condition += " AND #k >= :since"
            values[":since"] = {"S": query.since}
        elif query.until:
            condition += " AND #k <= :until"
            values[":until"] = {"S": query.until + "~"}
        params: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "ByAccount",
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
        }
        statuses = query.statuses
        return self._query_pages(params, query.limit, query.cursor, lambda c: not statuses or c.status in statuses)

    def outcomes_since(self, account_id: str, since: str, limit: int) -> list[CallOutcome]:
        """The newest `limit` calls the account created at or after `since`, as the hourly chart counts them.

        The index holds keys only and the outcome is settled from each call's carrier events, so the calls
        are read whole (BatchGetItem, 100 at a time).
        """
        params: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "ByAccount",
            "KeyConditionExpression": "#a = :a AND #k >= :since",
            "ExpressionAttributeNames": {"#a": "account_id", "#k": "created_key"},
            "ExpressionAttributeValues": {":a": {"S": account_id}, ":since": {"S": since}},
            "ScanIndexForward": False,
            "PaginationConfig": {"MaxItems": limit, "PageSize": min(limit, 1000)},
        }
        outcomes: list[CallOutcome] = []
        with aws_errors(_WHAT):
            for page in self._db().get_paginator("query").paginate(**params):
                for call in self._batch_get(page.get("Items", [])):
                    outcomes.append(
                        CallOutcome(created_at=call.created_at, status=call.status, answered_by=call.answered_by)
                    )
        return outcomes

    def list_scheduled(self, account_id: str, limit: int, cursor: Cursor | None) -> Page:
        params = {
            "TableName": self._table,
            "IndexName": "ScheduledByAccount",
            "KeyConditionExpression": "scheduled_account = :a",
            "ExpressionAttributeValues": {":a": {"S": account_id}},
            "ScanIndexForward": True,
        }
        # The index is eventually consistent: a call it still names may have started since.
        return self._query_pages(params, limit, cursor, listed_as_scheduled)
