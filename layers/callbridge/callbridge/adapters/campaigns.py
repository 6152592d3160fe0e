"""CampaignsTable: campaigns, their stored calls, their waiting calls and their exact counts.

One partition per campaign (pk = campaign id), items by sort key:
- `CAMPAIGN`: the campaign (status, pace, the release chain's position); indexed by account in ByAccount.
- `CHUNK#nnnnn`: up to 100 accepted calls (callid, parameters, metadata), read by the fan-out.
- `WAIT#iiiiii`: a call of the campaign waiting to be released to CallsQueue (the release order is the index);
  `DUE#<time>#iiiiii`: one that must not go before that time (its call_date, its calling window's opening).
- `CALL#<callid>`: what the counts hold of that call (status, answered_by, billed_seconds) and the stream
  sequence number it was counted at.
- `COUNT#nn`: one of 16 counter shards; the campaign's counts are their sum.

Counts are exact by construction: the calls' moves are counted in one transaction that moves each call's
`CALL#` item from the state counted before (condition: that state's sequence number) and adds the sum of the
differences to one counter shard. A redelivered or older stream record fails the condition and changes
nothing; two moves of one call cannot both be counted from the same state. So at every moment the sum of the
shards equals the sum over the calls of the state last counted, and the counts add up to `total`. One
transaction counts up to 99 calls (a stream batch's newest change of each), so counting costs one write per
call changed plus one per batch, not a transaction per change.
"""

from __future__ import annotations

import json
import random
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

from callbridge.adapters.aws import ConditionFailed, LazyClient, TransactionCanceled, aws_errors
from callbridge.adapters.dynamodb.codec import from_item, to_item
from callbridge.adapters.dynamodb.codec import value as codec_value
from callbridge.domain.campaigns import (
    CallChange,
    CallState,
    Campaign,
    CampaignCall,
    CampaignNotFound,
    CampaignStatus,
    Counts,
    WaitingCall,
    first_state,
)
from callbridge.domain.errors import Conflict, ServiceUnavailable
from callbridge.ports import Cursor, IdempotencyKeyTaken, IdempotencyRecord

HEADER = "CAMPAIGN"
COUNTER_SHARDS = 16
WAITING = "WAIT#"  # waiting calls in the campaign's order
DATED = "DUE#"  # waiting calls that must not go before a time, soonest first
_STATUS_PREFIX = "n_"
_ANSWERED_PREFIX = "a_"
_BILLED = "billed_seconds"
_TX_ATTEMPTS = 8
# Calls counted in one transaction: with the counter shard, DynamoDB's 100 items per transaction (and per
# BatchGetItem).
COUNTED_PER_WRITE = 99
_WHAT = "campaign storage"


def _number(value: float | int) -> Decimal:
    return Decimal(str(value))


def _shard(number: int) -> str:
    """One of the campaign's counter shards (they spread its counting writes over 16 items)."""
    return f"COUNT#{number % COUNTER_SHARDS:02d}"


def _counts(item: dict[str, Any]) -> Counts:
    statuses = {k[len(_STATUS_PREFIX) :]: int(v) for k, v in item.items() if k.startswith(_STATUS_PREFIX)}
    answered = {k[len(_ANSWERED_PREFIX) :]: int(v) for k, v in item.items() if k.startswith(_ANSWERED_PREFIX)}
    return Counts(statuses, answered, int(item.get(_BILLED, 0)))


def waiting_key(call: WaitingCall) -> str:
    """The sort key of a waiting call's marker: the release order."""
    if call.not_before:
        return f"{DATED}{call.not_before}#{call.index:06d}"
    return f"{WAITING}{call.index:06d}"


def _waiting_call(item: dict[str, Any]) -> WaitingCall:
    sk = str(item["sk"])
    not_before = sk[len(DATED) :].rpartition("#")[0] if sk.startswith(DATED) else None
    return WaitingCall(int(sk[-6:]), str(item["callid"]), not_before, item.get("call_date") or None)


class DynamoCampaignsStore:
    """CampaignsTable (see the module's docstring for its items)."""

    def __init__(self, table_name: str, *, idempotency_table: str = "", dynamodb: Any = None) -> None:
        self._table = table_name
        self._idempotency_table = idempotency_table
        self._client = LazyClient("dynamodb", dynamodb)

    @property
    def _db(self) -> Any:
        return self._client()

    def _key(self, campaign_id: str, sk: str) -> dict[str, Any]:
        return {"pk": {"S": campaign_id}, "sk": {"S": sk}}

    def _get(self, campaign_id: str, sk: str) -> dict[str, Any] | None:
        """One item of the campaign, read consistently (plain values), or None."""
        with aws_errors(_WHAT):
            response = self._db.get_item(TableName=self._table, Key=self._key(campaign_id, sk), ConsistentRead=True)
        item = response.get("Item")
        return from_item(item) if item else None

    def _update(self, campaign_id: str, sk: str, expression: str, **params: Any) -> dict[str, Any]:
        """One UpdateItem of a campaign item; raises ConditionFailed when its condition does not hold."""
        with aws_errors(_WHAT):
            response: dict[str, Any] = self._db.update_item(
                TableName=self._table, Key=self._key(campaign_id, sk), UpdateExpression=expression, **params
            )
        return response

    # --- the campaign ---------------------------------------------------------------------

    def create(
        self,
        campaign: Campaign,
        chunks: Sequence[Sequence[CampaignCall]],
        counts: Counts,
        idempotency: IdempotencyRecord | None,
    ) -> None:
        """Store the calls, then the campaign with its first counts (and the idempotency record) at once.

        The campaign item is the commit point: until it exists nothing reads the chunks. Raises
        IdempotencyKeyTaken when the key was used meanwhile.
        """
        self._batch_write(
            [
                {
                    "pk": campaign.id,
                    "sk": f"CHUNK#{n:05d}",
                    "calls": json.dumps([c.to_json() for c in chunk], separators=(",", ":")),
                }
                for n, chunk in enumerate(chunks)
            ]
        )
        header = {
            **campaign.model_dump(mode="json"),
            "pk": campaign.id,
            "sk": HEADER,
            "created_key": f"{campaign.created_at}#{campaign.id}",
            "tick_seq": 0,
        }
        header["calls_per_second"] = _number(campaign.calls_per_second)
        first = {f"{_STATUS_PREFIX}{k}": v for k, v in counts.statuses.items()}  # every call as it starts
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": to_item(header),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {"Put": {"TableName": self._table, "Item": to_item({"pk": campaign.id, "sk": _shard(0), **first})}},
        ]
        if idempotency is not None:
            items.append(
                {
                    "Put": {
                        "TableName": self._idempotency_table,
                        "Item": to_item(
                            {
                                "pk": campaign.account_id,
                                "sk": f"IDEM#{idempotency.key}",
                                "request_hash": idempotency.request_hash,
                                "response": json.dumps(idempotency.response),
                                "expires_at": idempotency.expires_at,
                            }
                        ),
                        "ConditionExpression": "attribute_not_exists(pk) OR expires_at < :now",
                        "ExpressionAttributeValues": {":now": {"N": str(int(time.time()))}},
                    }
                }
            )
        try:
            with aws_errors(_WHAT):
                self._db.transact_write_items(TransactItems=items)
        except TransactionCanceled as exc:
            if exc.reasons[2:3] == ["ConditionalCheckFailed"]:
                raise IdempotencyKeyTaken from exc
            raise ServiceUnavailable(f"{_WHAT} unavailable: {exc}") from exc

    def _batch_write(self, items: list[dict[str, Any]]) -> None:
        """Put the items, 25 per request, again for what DynamoDB left unprocessed."""
        self._batch([{"PutRequest": {"Item": to_item(item)}} for item in items])

    def _batch(self, writes: list[dict[str, Any]]) -> None:
        """BatchWriteItem requests (puts or deletes), 25 per request, again for what DynamoDB left unprocessed."""
        for start in range(0, len(writes), 25):
            pending = {self._table: writes[start : start + 25]}
            for attempt in range(_TX_ATTEMPTS):
                with aws_errors(_WHAT):
                    response = self._db.batch_write_item(RequestItems=pending)
                pending = response.get("UnprocessedItems") or {}
                if not pending:
                    break
                time.sleep(min(1.0, 0.05 * 2**attempt))
            if pending:
                raise ServiceUnavailable(f"{_WHAT} is throttling writes")

    def get(self, campaign_id: str) -> Campaign | None:
        item = self._get(campaign_id, HEADER)
        return Campaign.model_validate(item) if item else None

    def header(self, campaign_id: str) -> dict[str, Any] | None:
        """The campaign item with its release-chain attributes (tick_seq, fanned_out)."""
        return self._get(campaign_id, HEADER)

    def _query(self, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        with aws_errors(_WHAT):
            for page in self._db.get_paginator("query").paginate(TableName=self._table, **params):
                for item in page.get("Items", []):
                    yield from_item(item)

    def _page(self, params: dict[str, Any], cursor: Cursor | None) -> tuple[list[dict[str, Any]], Cursor | None]:
        """One Query page (plain values) from `cursor`, and the cursor of the next one."""
        if cursor:
            params = {**params, "ExclusiveStartKey": to_item(cursor)}
        with aws_errors(_WHAT):
            response = self._db.query(TableName=self._table, **params)
        last = response.get("LastEvaluatedKey")
        return [from_item(i) for i in response.get("Items", [])], (from_item(last) if last else None)

    def _prefixed(self, campaign_id: str, prefix: str) -> Iterator[dict[str, Any]]:
        return self._query(
            {
                "KeyConditionExpression": "pk = :c AND begins_with(sk, :p)",
                "ExpressionAttributeValues": {":c": {"S": campaign_id}, ":p": {"S": prefix}},
                "ConsistentRead": True,
            }
        )

    def counts(self, campaign_id: str) -> Counts:
        """The sum of the counter shards, read consistently."""
        total = Counts()
        for item in self._prefixed(campaign_id, "COUNT#"):
            total = total.add(_counts(item))
        return total

    def list_campaigns(
        self, account_id: str, limit: int, cursor: Cursor | None
    ) -> tuple[list[Campaign], Cursor | None]:
        """The account's campaigns, newest first."""
        items, last = self._page(
            {
                "IndexName": "ByAccount",
                "KeyConditionExpression": "account_id = :a",
                "ExpressionAttributeValues": {":a": {"S": account_id}},
                "ScanIndexForward": False,
                "Limit": limit,
            },
            cursor,
        )
        return [Campaign.model_validate(i) for i in items], last

    def move(
        self,
        campaign_id: str,
        account_id: str,
        allowed: Iterable[CampaignStatus],
        target: CampaignStatus,
        at: str,
        **fields: Any,
    ) -> Campaign:
        """Status in `allowed` → `target` (and `fields`) in one conditional write; Conflict if it is not allowed.

        Raises CampaignNotFound if there is no such campaign for this account.
        """
        names = {"#s": "status"}
        values: dict[str, Any] = {":t": {"S": target.value}, ":at": {"S": at}, ":a": {"S": account_id}}
        sets = ["#s = :t", "updated_at = :at"]
        for n, (name, value) in enumerate(fields.items()):
            names[f"#f{n}"] = name
            values[f":f{n}"] = codec_value(value)
            sets.append(f"#f{n} = :f{n}")
        keys = []
        for n, status in enumerate(sorted(allowed)):
            values[f":s{n}"] = {"S": status.value}
            keys.append(f":s{n}")
        try:
            response = self._update(
                campaign_id,
                HEADER,
                "SET " + ", ".join(sets),
                ConditionExpression=f"account_id = :a AND #s IN ({', '.join(keys)})",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as exc:
            old = from_item(exc.item or {})
            if old.get("account_id") != account_id:
                raise CampaignNotFound(campaign_id) from exc
            raise Conflict(f"campaign {campaign_id} is {old.get('status')}") from exc
        return Campaign.model_validate(from_item(response["Attributes"]))

    def claim_tick(self, campaign_id: str, seq: int, owner: str) -> dict[str, Any] | None:
        """Take release step `seq` of the campaign's chain for the message `owner`; None if it is not its turn.

        Step `seq` follows step `seq - 1`; the same message may take its step again until the step is done (a
        retry after a failure). A duplicate of a step already taken by another message, a step already done, or
        a stale one gets None and ends its chain.
        """
        try:
            response = self._update(
                campaign_id,
                HEADER,
                "SET tick_seq = :seq, tick_owner = :me",
                ConditionExpression=(
                    "attribute_exists(pk) AND (tick_seq = :prev OR (tick_seq = :seq AND tick_owner = :me"
                    " AND (attribute_not_exists(tick_done) OR tick_done < :seq)))"
                ),
                ExpressionAttributeValues={":seq": {"N": str(seq)}, ":prev": {"N": str(seq - 1)}, ":me": {"S": owner}},
                ReturnValues="ALL_NEW",
            )
        except ConditionFailed:
            return None
        return from_item(response["Attributes"])

    def tick_done(self, campaign_id: str, seq: int) -> None:
        """Release step `seq` is complete: a redelivery of its message does nothing."""
        self._update(campaign_id, HEADER, "SET tick_done = :seq", ExpressionAttributeValues={":seq": {"N": str(seq)}})

    def chunk_done(self, campaign_id: str, chunk: int) -> dict[str, Any]:
        """Record that a chunk's calls are all stored (a set: a redelivered chunk is counted once)."""
        response = self._update(
            campaign_id,
            HEADER,
            "ADD fanned_out :n",
            ExpressionAttributeValues={":n": {"NS": [str(chunk)]}},
            ReturnValues="ALL_NEW",
        )
        return from_item(response["Attributes"])

    def mark_notified(self, campaign_id: str, at: str) -> bool:
        """Whether this caller is the one to notify the campaign's end (only the first one is)."""
        try:
            self._update(
                campaign_id,
                HEADER,
                "SET notified_at = :at",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(notified_at)",
                ExpressionAttributeValues={":at": {"S": at}},
            )
        except ConditionFailed:
            return False
        return True

    # --- calls ----------------------------------------------------------------------------

    def chunk(self, campaign_id: str, number: int) -> list[CampaignCall]:
        item = self._get(campaign_id, f"CHUNK#{number:05d}")
        return [CampaignCall.from_json(c) for c in json.loads(item["calls"])] if item else []

    def chunks(self, campaign_id: str) -> list[CampaignCall]:
        """Every accepted call, in order."""
        calls: list[CampaignCall] = []
        for item in self._prefixed(campaign_id, "CHUNK#"):
            calls.extend(CampaignCall.from_json(c) for c in json.loads(item["calls"]))
        return sorted(calls, key=lambda c: c.index)

    def add_members(self, campaign_id: str, calls: Sequence[CampaignCall]) -> None:
        """A `CALL#` item per call, in the state the first counts hold it in; one already there (a redelivery) is left
        as it is."""
        for call in calls:
            state = first_state(call)
            item = {
                "pk": campaign_id,
                "sk": f"CALL#{call.callid}",
                "index": call.index,
                "status": state.status,
                "answered_by": state.answered_by,
                _BILLED: state.billed_seconds,
                "seq": 0,
            }
            try:
                with aws_errors(_WHAT):
                    self._db.put_item(
                        TableName=self._table, Item=to_item(item), ConditionExpression="attribute_not_exists(pk)"
                    )
            except ConditionFailed:
                pass

    def members(
        self, campaign_id: str, limit: int | None = None, cursor: Cursor | None = None
    ) -> tuple[list[str], Cursor | None]:
        """Callids of the campaign's calls (in callid order), a page at a time when `limit` is given."""
        params: dict[str, Any] = {
            "KeyConditionExpression": "pk = :c AND begins_with(sk, :p)",
            "ExpressionAttributeValues": {":c": {"S": campaign_id}, ":p": {"S": "CALL#"}},
            "ProjectionExpression": "pk, sk",
        }
        if limit is None:
            return [str(i["sk"])[5:] for i in self._query(params)], None
        items, last = self._page({**params, "Limit": limit}, cursor)
        return [str(i["sk"])[5:] for i in items], last

    def members_in(self, campaign_id: str, statuses: Iterable[str]) -> list[str]:
        """Callids of the campaign's calls last counted in one of `statuses`."""
        names = {f":s{n}": {"S": status} for n, status in enumerate(statuses)}
        params = {
            "KeyConditionExpression": "pk = :c AND begins_with(sk, :p)",
            "FilterExpression": f"#s IN ({', '.join(names)})",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":c": {"S": campaign_id}, ":p": {"S": "CALL#"}, **names},
            "ProjectionExpression": "sk",
            "ConsistentRead": True,
        }
        return [str(i["sk"])[5:] for i in self._query(params)]

    def add_waiting(self, campaign_id: str, calls: Iterable[WaitingCall]) -> None:
        """Mark calls as waiting for their release (idempotent)."""
        self._batch_write(
            [{"pk": campaign_id, "sk": waiting_key(c), "callid": c.callid, "call_date": c.call_date} for c in calls]
        )

    def _marks(self, campaign_id: str, low: str, high: str, limit: int) -> list[WaitingCall]:
        if limit <= 0:
            return []
        items, _ = self._page(
            {
                "KeyConditionExpression": "pk = :c AND sk BETWEEN :low AND :high",
                "ExpressionAttributeValues": {":c": {"S": campaign_id}, ":low": {"S": low}, ":high": {"S": high}},
                "ConsistentRead": True,
                "Limit": limit,
            },
            None,
        )
        return [_waiting_call(i) for i in items]

    def waiting(self, campaign_id: str, limit: int, due_by: str | None = None) -> list[WaitingCall]:
        """The first `limit` waiting calls in release order (read consistently): the dated ones due by `due_by`
        (all of them when None), soonest first, then the others in the campaign's order."""
        dated = self._marks(campaign_id, DATED, f"{DATED}{due_by or '~'}#~", limit)
        return dated + self._marks(campaign_id, WAITING, f"{WAITING}~", limit - len(dated))

    def remove_waiting(self, campaign_id: str, calls: Iterable[WaitingCall]) -> None:
        """Remove the calls' waiting marks (25 per request; one already gone is no error)."""
        keys = {waiting_key(c) for c in calls}
        self._batch([{"DeleteRequest": {"Key": self._key(campaign_id, key)}} for key in sorted(keys)])

    # --- counting -------------------------------------------------------------------------

    def count(self, campaign_id: str, changes: Sequence[CallChange]) -> int:
        """Count changes of the campaign's calls (one per call), each exactly once and never over a newer one.

        A write per `COUNTED_PER_WRITE` calls: one transaction moves each call's `CALL#` item from the state it was
        counted in (condition: that state's sequence number) and adds the sum of the differences to one counter
        shard. A change whose sequence number is not newer than the one counted (a redelivery, an older record),
        or of a call the fan-out has not stored, is left out. How many changes were counted.
        """
        counted = 0
        for start in range(0, len(changes), COUNTED_PER_WRITE):
            counted += self._count_group(campaign_id, changes[start : start + COUNTED_PER_WRITE])
        return counted

    def _count_group(self, campaign_id: str, changes: Sequence[CallChange]) -> int:
        for attempt in range(_TX_ATTEMPTS):
            members = self._members_by_callid(campaign_id, [c.callid for c in changes])
            moves: list[dict[str, Any]] = []
            delta = Counts()
            for change in changes:
                member = members.get(change.callid)
                if member is None:
                    continue  # not a call of this campaign's fan-out
                seen = int(member.get("seq", 0))
                if seen >= change.seq:
                    continue
                old = CallState(str(member["status"]), str(member.get("answered_by", "")), int(member.get(_BILLED, 0)))
                delta = delta.add(change.state.delta(old))
                moves.append(self._move(campaign_id, change, seen))
            if not moves:
                return 0
            # The shard moves on with each attempt: a conflict on one shard is not met again on the retry.
            shard = _shard(zlib.crc32(changes[0].callid.encode()) + attempt)
            try:
                with aws_errors(_WHAT):
                    self._db.transact_write_items(TransactItems=[*moves, *self._add_counts(campaign_id, shard, delta)])
                return len(moves)
            except TransactionCanceled:  # another change of one of the calls was counted meanwhile, or a conflict
                time.sleep(random.uniform(0, 0.02 * 2**attempt))  # noqa: S311 - jitter, not a secret
        raise ServiceUnavailable(f"campaign {campaign_id}: counting keeps conflicting")

    def _members_by_callid(self, campaign_id: str, callids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The `CALL#` items of these calls (at most 100), read consistently, by callid; absent ones left out."""
        keys = [self._key(campaign_id, f"CALL#{callid}") for callid in dict.fromkeys(callids)]
        pending: dict[str, Any] = {self._table: {"Keys": keys, "ConsistentRead": True}}
        found: dict[str, dict[str, Any]] = {}
        for attempt in range(_TX_ATTEMPTS):
            with aws_errors(_WHAT):
                response = self._db.batch_get_item(RequestItems=pending)
            for item in response.get("Responses", {}).get(self._table, []):
                member = from_item(item)
                found[str(member["sk"])[len("CALL#") :]] = member
            pending = response.get("UnprocessedKeys") or {}
            if not pending:
                return found
            time.sleep(min(1.0, 0.05 * 2**attempt))
        raise ServiceUnavailable(f"{_WHAT} is throttling reads")

    def _move(self, campaign_id: str, change: CallChange, seen: int) -> dict[str, Any]:
        """A call's `CALL#` item to the state of `change`, if it is still in the one counted at `seen`."""
        return {
            "Update": {
                "TableName": self._table,
                "Key": self._key(campaign_id, f"CALL#{change.callid}"),
                "UpdateExpression": "SET #s = :s, answered_by = :a, billed_seconds = :b, seq = :seq",
                "ConditionExpression": "seq = :seen",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": {
                    ":s": {"S": change.state.status},
                    ":a": {"S": change.state.answered_by},
                    ":b": {"N": str(change.state.billed_seconds)},
                    ":seq": {"N": str(change.seq)},
                    ":seen": {"N": str(seen)},
                },
            }
        }

    def _add_counts(self, campaign_id: str, shard: str, delta: Counts) -> list[dict[str, Any]]:
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        adds = []
        changes = [(f"{_STATUS_PREFIX}{k}", v) for k, v in delta.statuses.items() if v]
        changes += [(f"{_ANSWERED_PREFIX}{k}", v) for k, v in delta.answered.items() if v]
        if delta.billed_seconds:
            changes.append((_BILLED, delta.billed_seconds))
        for n, (name, value) in enumerate(changes):
            names[f"#c{n}"] = name
            values[f":c{n}"] = {"N": str(value)}
            adds.append(f"#c{n} :c{n}")
        if not adds:
            return []
        return [
            {
                "Update": {
                    "TableName": self._table,
                    "Key": self._key(campaign_id, shard),
                    "UpdateExpression": "ADD " + ", ".join(adds),
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": values,
                }
            }
        ]
