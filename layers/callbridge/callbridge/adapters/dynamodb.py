"""DynamoDB adapters: CallsTable and AccountsTable."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from callbridge.adapters.aws import client
from callbridge.domain.accounts import Account
from callbridge.domain.calls import Call, CallStatus, TimelineEvent, iso
from callbridge.domain.dispatch import DEFAULT_TIMING, Timing, attention, listed_as_scheduled
from callbridge.domain.errors import CallNotFound, Conflict, ServiceUnavailable
from callbridge.domain.ivr import IvrMenu, StoredMenu
from callbridge.ports import CallQuery, Cursor, DueCall, IdempotencyKeyTaken, IdempotencyRecord, Page, VersionConflict

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
_MAX_PAGES = 10  # a filtered list reads at most this many index pages per request


def to_item(data: dict[str, Any]) -> dict[str, Any]:
    """A plain dict as a DynamoDB item (None values dropped)."""
    return {k: _serializer.serialize(v) for k, v in data.items() if v is not None}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as a plain dict (numbers as int/float)."""
    return {k: _plain(_deserializer.deserialize(v)) for k, v in item.items()}


def shard_of(callid: str, shards: int) -> str:
    """The due-index partition of a call: a stable hash of its id, spread over `shards`."""
    return f"{zlib.crc32(callid.encode()) % shards:02d}"


def _unavailable(exc: Exception) -> ServiceUnavailable:
    return ServiceUnavailable(f"storage unavailable: {exc}")


class DynamoCallsStore:
    """CallsTable: one item per call; sparse indexes for the scheduler (DueByShard) and scheduled calls."""

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
        self._idempotency_table = idempotency_table
        self._shards = schedule_shards
        self._timing = timing
        self._client = dynamodb

    @property
    def _db(self) -> Any:
        if self._client is None:
            self._client = client("dynamodb")
        return self._client

    def call_item(self, call: Call) -> dict[str, Any]:
        """The call as a CallsTable item, with the index attributes its state calls for.

        due_key/due_shard (DueByShard): every call that is not final, at its attention time (see
        domain/dispatch.py). scheduled_account (ScheduledByAccount): a call with a call_date not started yet.
        """
        data = call.model_dump(mode="json")
        data["created_key"] = f"{call.created_at}#{call.callid}"
        due = attention(call, self._timing)
        if due is not None:
            data["due_key"] = f"{iso(due)}#{call.callid}"
            data["due_shard"] = shard_of(call.callid, self._shards)
        if listed_as_scheduled(call):
            data["scheduled_account"] = call.account_id
        return to_item(data)

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
            try:
                response = self._db.query(**params)
            except (ClientError, BotoCoreError) as exc:
                raise _unavailable(exc) from exc
            for item in response.get("Items", []):
                key = item["due_key"]["S"]
                found.append(DueCall(callid=item["callid"]["S"], due=key.split("#", 1)[0]))
            last = response.get("LastEvaluatedKey")
            if not last or (limit is not None and len(found) >= limit):
                return found
            params["ExclusiveStartKey"] = last

    def dispatch(self, callid: str, before: str, event: TimelineEvent) -> tuple[bool, Call | None]:
        """SCHEDULED → QUEUED if its call_date is before `before` (ISO): one conditional write, no read.

        The same transition as `domain.dispatch.dispatch`; the index attributes stay as they are (a QUEUED
        call keeps its call_date as due_key, see `call_item`). The version moves, so a read-modify-write
        that read the call before fails and reads again. Returns (True, None) when the call moved, else
        (False, the call as it is, or None if there is no such call).
        """
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"callid": {"S": callid}},
                UpdateExpression=(
                    "SET #s = :queued, updated_at = :at, timeline = list_append(timeline, :event) ADD version :one"
                ),
                ConditionExpression="#s = :scheduled AND call_date < :before",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":queued": {"S": CallStatus.QUEUED.value},
                    ":scheduled": {"S": CallStatus.SCHEDULED.value},
                    ":before": {"S": before},
                    ":at": {"S": event.at},
                    ":one": {"N": "1"},
                    ":event": {"L": [_serializer.serialize(event.model_dump())]},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise _unavailable(exc) from exc
            old: dict[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
            return False, Call.model_validate(from_item(old)) if old else self.get(callid)
        except BotoCoreError as exc:
            raise _unavailable(exc) from exc
        return True, None

    def create(self, call: Call, *, idempotency: IdempotencyRecord | None = None) -> None:
        put_call = {
            "TableName": self._table,
            "Item": self.call_item(call),
            "ConditionExpression": "attribute_not_exists(callid)",
        }
        try:
            if idempotency is None:
                self._db.put_item(**put_call)
                return
            put_idem = {
                "TableName": self._idempotency_table,
                "Item": to_item(
                    {
                        "pk": call.account_id,
                        "sk": f"IDEM#{idempotency.key}",
                        "request_hash": idempotency.request_hash,
                        "response": json.dumps(idempotency.response),
                        "expires_at": idempotency.expires_at,
                    }
                ),
                "ConditionExpression": "attribute_not_exists(pk) OR expires_at < :now",
                "ExpressionAttributeValues": {":now": {"N": str(idempotency.expires_at - 86400)}},
            }
            self._db.transact_write_items(TransactItems=[{"Put": put_call}, {"Put": put_idem}])
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                reasons = exc.response.get("CancellationReasons", [])
                if len(reasons) > 1 and reasons[1].get("Code") == "ConditionalCheckFailed":
                    raise IdempotencyKeyTaken from exc
            raise _unavailable(exc) from exc
        except BotoCoreError as exc:
            raise _unavailable(exc) from exc

    def get(self, callid: str) -> Call | None:
        try:
            response = self._db.get_item(TableName=self._table, Key={"callid": {"S": callid}}, ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable(exc) from exc
        item = response.get("Item")
        return Call.model_validate(from_item(item)) if item else None

    def _query_pages(self, params: dict[str, Any], limit: int, cursor: Cursor | None) -> Page:
        calls: list[Call] = []
        start = cursor
        for _ in range(_MAX_PAGES):
            request = dict(params, Limit=limit - len(calls))
            if start:
                request["ExclusiveStartKey"] = to_item(start)
            try:
                response = self._db.query(**request)
            except (ClientError, BotoCoreError) as exc:
                raise _unavailable(exc) from exc
            calls.extend(Call.model_validate(from_item(i)) for i in response.get("Items", []))
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
        if query.statuses:
            names["#s"] = "status"
            keys = []
            for n, status in enumerate(sorted(query.statuses)):
                values[f":s{n}"] = {"S": status.value}
                keys.append(f":s{n}")
            params["FilterExpression"] = f"#s IN ({', '.join(keys)})"
        return self._query_pages(params, query.limit, query.cursor)

    def list_scheduled(self, account_id: str, limit: int, cursor: Cursor | None) -> Page:
        params = {
            "TableName": self._table,
            "IndexName": "ScheduledByAccount",
            "KeyConditionExpression": "scheduled_account = :a",
            "ExpressionAttributeValues": {":a": {"S": account_id}},
            "ScanIndexForward": True,
        }
        return self._query_pages(params, limit, cursor)

    def cancel(self, callid: str, account_id: str, event: TimelineEvent) -> Call:
        """A scheduled call that has not started (SCHEDULED, or QUEUED with a call_date) → CANCELED.

        The version moves too, so a placer's claim or a scheduler's dispatch that read the call before
        this write fails its own conditional write and reads CANCELED.
        """
        try:
            response = self._db.update_item(
                TableName=self._table,
                Key={"callid": {"S": callid}},
                UpdateExpression=(
                    "SET #s = :canceled, updated_at = :at, ended_at = :at, "
                    "timeline = list_append(if_not_exists(timeline, :empty), :event) "
                    "ADD version :one "
                    "REMOVE due_key, due_shard, scheduled_account"
                ),
                ConditionExpression=(
                    "account_id = :a AND (#s = :scheduled OR (#s = :queued AND attribute_exists(call_date)))"
                ),
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":canceled": {"S": CallStatus.CANCELED.value},
                    ":scheduled": {"S": CallStatus.SCHEDULED.value},
                    ":queued": {"S": CallStatus.QUEUED.value},
                    ":a": {"S": account_id},
                    ":at": {"S": event.at},
                    ":one": {"N": "1"},
                    ":empty": {"L": []},
                    ":event": {"L": [_serializer.serialize(event.model_dump())]},
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise _unavailable(exc) from exc
            old: dict[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
            current = Call.model_validate(from_item(old)) if old else self.get(callid)
            if current is None or current.account_id != account_id:
                raise CallNotFound(callid) from exc
            raise Conflict(
                f"call {callid} is {current.status.value}; only scheduled calls that have not started can be cancelled"
            ) from exc
        except BotoCoreError as exc:
            raise _unavailable(exc) from exc
        return Call.model_validate(from_item(response["Attributes"]))

    def save(self, call: Call, expected_version: int) -> Call:
        """Write `call` if the stored one still has `expected_version`; raises VersionConflict."""
        new = call.model_copy(update={"version": expected_version + 1})
        try:
            self._db.put_item(
                TableName=self._table,
                Item=self.call_item(new),
                ConditionExpression="attribute_exists(callid) AND version = :v",
                ExpressionAttributeValues={":v": {"N": str(expected_version)}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise VersionConflict(call.callid) from exc
            raise _unavailable(exc) from exc
        except BotoCoreError as exc:
            raise _unavailable(exc) from exc
        return new

    def update(self, callid: str, change: Callable[[Call], Call | None], attempts: int = 8) -> Call | None:
        """Read-modify-write with optimistic concurrency: `change` returns the new call, or None to keep it.

        Returns the stored call after the change (or unchanged); None if there is no such call.
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


class DynamoAccountsStore:
    """AccountsTable: accounts (sk=ACCOUNT), idempotency records (IDEM#key), IVR menus (IVR#code)."""

    def __init__(self, table_name: str, *, dynamodb: Any = None) -> None:
        self.table_name = table_name
        self._client = dynamodb

    @property
    def _db(self) -> Any:
        if self._client is None:
            self._client = client("dynamodb")
        return self._client

    def _get(self, pk: str, sk: str, *, consistent: bool = False) -> dict[str, Any] | None:
        try:
            response = self._db.get_item(
                TableName=self.table_name, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=consistent
            )
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable(exc) from exc
        item = response.get("Item")
        return from_item(item) if item else None

    def get_account(self, api_key: str) -> Account | None:
        data = self._get(api_key, "ACCOUNT")
        return Account.model_validate(data) if data else None

    def put_account(self, account: Account) -> None:
        item = to_item({"pk": account.api_key, "sk": "ACCOUNT", **account.model_dump()})
        try:
            self._db.put_item(TableName=self.table_name, Item=item)
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable(exc) from exc

    def list_accounts(self) -> list[Account]:
        accounts: list[Account] = []
        for item in self._scan({"FilterExpression": "sk = :s", "ExpressionAttributeValues": {":s": {"S": "ACCOUNT"}}}):
            accounts.append(Account.model_validate(item))
        return sorted(accounts, key=lambda a: a.created_at)

    def _scan(self, params: dict[str, Any]) -> Iterable[dict[str, Any]]:
        paginator = self._db.get_paginator("scan")
        for page in paginator.paginate(TableName=self.table_name, **params):
            for item in page.get("Items", []):
                yield from_item(item)

    def get_idempotency(self, account_id: str, key: str) -> IdempotencyRecord | None:
        # Consistent: a retry right after the first request must see its record, not a stale "no such key".
        data = self._get(account_id, f"IDEM#{key}", consistent=True)
        if not data:
            return None
        return IdempotencyRecord(
            key=key,
            request_hash=data["request_hash"],
            response=json.loads(data["response"]),
            expires_at=int(data["expires_at"]),
        )

    def ivr_exists(self, account_id: str, code: str) -> bool:
        return self._get(account_id, f"IVR#{code}") is not None

    # --- IVR menus: sk = IVR#<code>, the menu as JSON text (its shape is the domain's, validated on read)

    def get_ivr_menu(self, account_id: str, code: str) -> StoredMenu | None:
        """One menu, read consistently (a call placed right after the menu was saved must find it)."""
        try:
            response = self._db.get_item(
                TableName=self.table_name,
                Key={"pk": {"S": account_id}, "sk": {"S": f"{_IVR}{code}"}},
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable(exc) from exc
        item = response.get("Item")
        return _stored_menu(from_item(item)) if item else None

    def list_ivr_menus(self, account_id: str) -> list[StoredMenu]:
        """Every menu of the account, by code."""
        menus: list[StoredMenu] = []
        try:
            pages = self._db.get_paginator("query").paginate(
                TableName=self.table_name,
                KeyConditionExpression="pk = :a AND begins_with(sk, :p)",
                ExpressionAttributeValues={":a": {"S": account_id}, ":p": {"S": _IVR}},
                ConsistentRead=True,
            )
            for page in pages:
                menus.extend(m for m in (_stored_menu(from_item(i)) for i in page.get("Items", [])) if m)
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable(exc) from exc
        return sorted(menus, key=lambda m: m.code)

    def put_ivr_menu(self, account_id: str, menu: StoredMenu) -> None:
        item = {
            "pk": account_id,
            "sk": f"{_IVR}{menu.code}",
            "menu": menu.menu.model_dump_json(exclude_none=True),
            "created_at": menu.created_at,
            "updated_at": menu.updated_at,
        }
        try:
            self._db.put_item(TableName=self.table_name, Item=to_item(item))
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable(exc) from exc

    def delete_ivr_menu(self, account_id: str, code: str) -> bool:
        """Delete a menu; whether there was one."""
        try:
            response = self._db.delete_item(
                TableName=self.table_name,
                Key={"pk": {"S": account_id}, "sk": {"S": f"{_IVR}{code}"}},
                ReturnValues="ALL_OLD",
            )
        except (ClientError, BotoCoreError) as exc:
            raise _unavailable(exc) from exc
        return bool(response.get("Attributes"))


_IVR = "IVR#"


def _stored_menu(data: dict[str, Any]) -> StoredMenu | None:
    """A menu item as the domain's StoredMenu; None for an item that is not a valid menu."""
    try:
        menu = IvrMenu.model_validate_json(str(data.get("menu", "")))
    except ValidationError:
        return None
    return StoredMenu(
        code=str(data["sk"])[len(_IVR) :],
        menu=menu,
        created_at=str(data.get("created_at", "")),
        updated_at=str(data.get("updated_at", "")),
    )
