"""Accounts in AccountsTable (pk = the account's API key, sk = ACCOUNT)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from callbridge.adapters.aws import LazyClient, aws_errors
from callbridge.adapters.dynamodb.codec import from_item, to_item
from callbridge.domain.accounts import Account
from callbridge.domain.errors import ServiceUnavailable

_SK = "ACCOUNT"


class DynamoAccountsStore:
    """The accounts callbridge serves."""

    def __init__(self, table_name: str, *, dynamodb: Any = None) -> None:
        self.table_name = table_name
        self._db = LazyClient("dynamodb", dynamodb)

    def get_account(self, api_key: str) -> Account | None:
        with aws_errors("accounts table"):
            response = self._db().get_item(TableName=self.table_name, Key={"pk": {"S": api_key}, "sk": {"S": _SK}})
        item = response.get("Item")
        return _account(from_item(item)) if item else None

    def put_account(self, account: Account) -> None:
        item = to_item({"pk": account.api_key, "sk": _SK, **account.model_dump()})
        with aws_errors("accounts table"):
            self._db().put_item(TableName=self.table_name, Item=item)

    def list_accounts(self) -> list[Account]:
        """Every account, oldest first (a scan: for the admin CLI, not for requests)."""
        accounts = [_account(item) for item in self._scan()]
        return sorted(accounts, key=lambda a: a.created_at)

    def _scan(self) -> Iterator[dict[str, Any]]:
        params = {"FilterExpression": "sk = :s", "ExpressionAttributeValues": {":s": {"S": _SK}}}
        with aws_errors("accounts table"):
            for page in self._db().get_paginator("scan").paginate(TableName=self.table_name, **params):
                for item in page.get("Items", []):
                    yield from_item(item)


def _account(item: dict[str, Any]) -> Account:
    """The account an item holds. A malformed item is an operator's error, named by its fields alone: pydantic's own
    message would quote the item (its password hash and webhook secret) into the log."""
    try:
        return Account.model_validate(item)
    except ValidationError as exc:
        problems = ", ".join(f"{'.'.join(map(str, e['loc']))}: {e['type']}" for e in exc.errors(include_input=False))
        raise ServiceUnavailable(
            f"account {item.get('api_key', '?')} in AccountsTable is malformed ({problems})"
        ) from None
