"""The do-not-call list, SuppressionsTable: pk = the account, sk = DNC#<E.164 number>.

Every write that lists a number then raises the do-not-call mark on the carrier line (adapters/pacing.py): the
placer skips its claim-time look-up for a call checked at its intake after the last mark.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from callbridge.adapters.aws import ConditionFailed, LazyClient, aws_errors
from callbridge.adapters.dynamodb.codec import from_item, to_item
from callbridge.adapters.pacing import ListingMark
from callbridge.domain.errors import InvalidRequest, ServiceUnavailable
from callbridge.domain.suppressions import Suppression
from callbridge.ports import Cursor

PREFIX = "DNC#"
_BATCH_GET = 100  # keys per BatchGetItem
_BATCH_WRITE = 25  # items per BatchWriteItem
_WORKERS = 8
_ROUNDS = 8  # BatchGet/BatchWrite rounds for what DynamoDB left unprocessed (throttling)
# Pauses before another round, doubling from the first to the cap, each drawn between half and all of it: what
# DynamoDB leaves unprocessed is what a partition could not take, and asking again at once is refused again. The
# whole list of an account is one partition key, which takes about 1,000 writes a second.
_FIRST_PAUSE = 0.05
_MOST_PAUSE = 1.0
_WHAT = "do-not-call list"


def _key(account_id: str, number: str) -> dict[str, Any]:
    return {"pk": {"S": account_id}, "sk": {"S": PREFIX + number}}


def _suppression(data: dict[str, Any]) -> Suppression:
    return Suppression(
        number=str(data["sk"])[len(PREFIX) :],
        reason=str(data.get("reason", "")),
        created_at=str(data.get("created_at", "")),
        callid=data.get("callid") or None,
    )


def _item(account_id: str, entry: Suppression) -> dict[str, Any]:
    item: dict[str, Any] = to_item(
        {
            "pk": account_id,
            "sk": PREFIX + entry.number,
            "reason": entry.reason,
            "created_at": entry.created_at,
            "callid": entry.callid,
        }
    )
    return item


class DynamoSuppressionList:
    """An account's do-not-call list in AccountsTable (the `SuppressionList` port)."""

    def __init__(
        self,
        table_name: str,
        *,
        mark: ListingMark | None = None,
        dynamodb: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        """`mark`: raised after every listing; None for a list that is only read (listing raises an error)."""
        self.table_name = table_name
        self._mark = mark
        self._db = LazyClient("dynamodb", dynamodb, pool=_WORKERS + 2)
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - a pause's jitter, not a secret

    def _pause(self, rounds: int) -> None:
        """Wait before round `rounds` + 1 of what DynamoDB left unprocessed (see _FIRST_PAUSE)."""
        longest = min(_MOST_PAUSE, _FIRST_PAUSE * 2**rounds)
        self._sleep(self._rng.uniform(longest / 2, longest))

    def _listed_now(self) -> None:
        """After a write that lists numbers (new or not): raise the mark, so placers look again."""
        if self._mark is None:
            raise RuntimeError("this do-not-call list was built to be read only: it has no mark to raise")
        self._mark.raise_to_now()

    def get(self, account_id: str, number: str) -> Suppression | None:
        """The entry for `number` (E.164), read consistently: a number suppressed a moment ago is found."""
        with aws_errors(_WHAT):
            response = self._db().get_item(TableName=self.table_name, Key=_key(account_id, number), ConsistentRead=True)
        item = response.get("Item")
        return _suppression(from_item(item)) if item else None

    def add(self, account_id: str, entry: Suppression) -> bool:
        """Put `entry` unless the number is already listed (the first entry is kept); whether it was new."""
        new = True
        try:
            with aws_errors(_WHAT):
                self._db().put_item(
                    TableName=self.table_name,
                    Item=_item(account_id, entry),
                    ConditionExpression="attribute_not_exists(sk)",
                )
        except ConditionFailed:
            new = False
        self._listed_now()
        return new

    def put(self, account_id: str, entry: Suppression) -> tuple[Suppression, bool]:
        """List `entry.number` with `entry.reason`: a new entry, or the listed one with its reason replaced (when
        and in which call it was first listed are kept). The entry as stored, and whether it was new."""
        with aws_errors(_WHAT):
            response = self._db().update_item(
                TableName=self.table_name,
                Key=_key(account_id, entry.number),
                UpdateExpression="SET reason = :reason, created_at = if_not_exists(created_at, :created_at)",
                ExpressionAttributeValues={":reason": {"S": entry.reason}, ":created_at": {"S": entry.created_at}},
                ReturnValues="ALL_OLD",
            )
        self._listed_now()
        old = response.get("Attributes")
        if not old:
            return entry, True
        return replace(_suppression(from_item(old)), reason=entry.reason), False

    def delete(self, account_id: str, number: str) -> bool:
        """Remove `number` from the list; whether it was on it."""
        with aws_errors(_WHAT):
            response = self._db().delete_item(
                TableName=self.table_name, Key=_key(account_id, number), ReturnValues="ALL_OLD"
            )
        return bool(response.get("Attributes"))

    def page(self, account_id: str, limit: int, cursor: Cursor | None) -> tuple[list[Suppression], Cursor | None]:
        """Up to `limit` entries in number order, from `cursor`; and the cursor of the next page (None at the end)."""
        params: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :a AND begins_with(sk, :p)",
            "ExpressionAttributeValues": {":a": {"S": account_id}, ":p": {"S": PREFIX}},
            "Limit": limit,
        }
        if cursor:
            if not str(cursor.get("sk", "")).startswith(PREFIX):
                raise InvalidRequest.single("next", "not a token returned by this listing")
            params["ExclusiveStartKey"] = to_item(cursor)
        with aws_errors(_WHAT):
            response = self._db().query(**params)
        entries = [_suppression(from_item(i)) for i in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return entries, (from_item(last) if last else None)

    def add_many(self, account_id: str, entries: Sequence[Suppression]) -> int:
        """Add the entries whose numbers are not listed yet (listed ones keep theirs); how many were new.

        BatchGetItem finds the listed numbers (100 per request), BatchWriteItem writes the others (25 per
        request), several requests at once: 10,000 numbers are about 500 requests.
        """
        listed = self.listed(account_id, [e.number for e in entries])
        new = [e for e in entries if e.number not in listed]
        try:
            with ThreadPoolExecutor(_WORKERS) as pool:
                writes = [new[i : i + _BATCH_WRITE] for i in range(0, len(new), _BATCH_WRITE)]
                list(pool.map(lambda w: self._write(account_id, w), writes))
        finally:  # some numbers may be listed even when others could not be (a 503): placers must look again
            self._listed_now()
        return len(new)

    def listed(self, account_id: str, numbers: Sequence[str]) -> set[str]:
        """Which of `numbers` (E.164) are on the list: BatchGetItem, 100 numbers per request, several at once."""
        chunks = [list(numbers[i : i + _BATCH_GET]) for i in range(0, len(numbers), _BATCH_GET)]
        with ThreadPoolExecutor(_WORKERS) as pool:
            return {n for found in pool.map(lambda c: self._listed(account_id, c), chunks) for n in found}

    def _listed(self, account_id: str, numbers: list[str]) -> set[str]:
        keys: list[dict[str, Any]] = [_key(account_id, n) for n in numbers]
        found: set[str] = set()
        for rounds in range(_ROUNDS):
            if rounds:
                self._pause(rounds - 1)
            with aws_errors(_WHAT):
                response = self._db().batch_get_item(
                    RequestItems={self.table_name: {"Keys": keys, "ProjectionExpression": "sk"}}
                )
            found.update(i["sk"]["S"][len(PREFIX) :] for i in response.get("Responses", {}).get(self.table_name, []))
            keys = response.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys", [])
            if not keys:
                return found
        raise ServiceUnavailable(f"{_WHAT} unavailable: reads kept being throttled")

    def _write(self, account_id: str, entries: list[Suppression]) -> None:
        requests: list[dict[str, Any]] = [{"PutRequest": {"Item": _item(account_id, e)}} for e in entries]
        for rounds in range(_ROUNDS):
            if rounds:
                self._pause(rounds - 1)
            with aws_errors(_WHAT):
                response = self._db().batch_write_item(RequestItems={self.table_name: requests})
            requests = response.get("UnprocessedItems", {}).get(self.table_name, [])
            if not requests:
                return
        raise ServiceUnavailable(f"{_WHAT} unavailable: writes kept being throttled")
