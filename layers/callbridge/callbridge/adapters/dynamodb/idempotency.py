"""Idempotency records in AccountsTable (pk = account, sk = IDEM#<key>): written with the call, read back.

A record is written in the same transaction as the call it answered (`put`), so a key is never taken by a
request whose call was not stored; it expires by TTL.
"""

from __future__ import annotations

import json
from typing import Any

from callbridge.adapters.aws import LazyClient, aws_errors
from callbridge.adapters.dynamodb.codec import from_item, to_item
from callbridge.ports import IdempotencyRecord

_PREFIX = "IDEM#"


class DynamoIdempotency:
    """An account's Idempotency-Key records."""

    def __init__(self, table_name: str, *, dynamodb: Any = None) -> None:
        self.table_name = table_name
        self._db = LazyClient("dynamodb", dynamodb)

    def put(self, account_id: str, record: IdempotencyRecord, *, now: float) -> dict[str, Any]:
        """The transaction entry that stores `record` unless a live record already holds its key."""
        item = {
            "pk": account_id,
            "sk": f"{_PREFIX}{record.key}",
            "request_hash": record.request_hash,
            "response": json.dumps(record.response),
            "expires_at": record.expires_at,
        }
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": to_item(item),
                "ConditionExpression": "attribute_not_exists(pk) OR expires_at < :now",
                "ExpressionAttributeValues": {":now": {"N": str(int(now))}},
            }
        }

    def get(self, account_id: str, key: str) -> IdempotencyRecord | None:
        """The record of `key`, read consistently (a retry right after the first request must find it)."""
        with aws_errors("idempotency records"):
            response = self._db().get_item(
                TableName=self.table_name,
                Key={"pk": {"S": account_id}, "sk": {"S": f"{_PREFIX}{key}"}},
                ConsistentRead=True,
            )
        item = response.get("Item")
        if not item:
            return None
        data = from_item(item)
        return IdempotencyRecord(
            key=key,
            request_hash=data["request_hash"],
            response=json.loads(data["response"]),
            expires_at=int(data["expires_at"]),
        )
