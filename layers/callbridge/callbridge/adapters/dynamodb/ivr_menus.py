"""IVR menus in AccountsTable (pk = account, sk = IVR#<code>; the menu as JSON text, validated on read)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from callbridge.adapters.aws import LazyClient, aws_errors
from callbridge.adapters.dynamodb.codec import from_item, to_item
from callbridge.domain.ivr import IvrMenu, StoredMenu

_PREFIX = "IVR#"


class DynamoIvrMenus:
    """An account's IVR menus."""

    def __init__(self, table_name: str, *, dynamodb: Any = None) -> None:
        self.table_name = table_name
        self._db = LazyClient("dynamodb", dynamodb)

    def _key(self, account_id: str, code: str) -> dict[str, Any]:
        return {"pk": {"S": account_id}, "sk": {"S": f"{_PREFIX}{code}"}}

    def get_ivr_menu(self, account_id: str, code: str) -> StoredMenu | None:
        """One menu, read consistently (a call placed right after the menu was saved must find it)."""
        with aws_errors("IVR menus"):
            response = self._db().get_item(
                TableName=self.table_name, Key=self._key(account_id, code), ConsistentRead=True
            )
        item = response.get("Item")
        return _stored_menu(from_item(item)) if item else None

    def list_ivr_menus(self, account_id: str) -> list[StoredMenu]:
        """Every menu of the account, by code."""
        menus: list[StoredMenu] = []
        with aws_errors("IVR menus"):
            pages = (
                self._db()
                .get_paginator("query")
                .paginate(
                    TableName=self.table_name,
                    KeyConditionExpression="pk = :a AND begins_with(sk, :p)",
                    ExpressionAttributeValues={":a": {"S": account_id}, ":p": {"S": _PREFIX}},
                    ConsistentRead=True,
                )
            )
            for page in pages:
                menus.extend(m for m in (_stored_menu(from_item(i)) for i in page.get("Items", [])) if m)
        return sorted(menus, key=lambda m: m.code)

    def put_ivr_menu(self, account_id: str, menu: StoredMenu) -> None:
        """Create or replace the menu of `menu.code`."""
        item = {
            "pk": account_id,
            "sk": f"{_PREFIX}{menu.code}",
            "menu": menu.menu.model_dump_json(exclude_none=True),
            "created_at": menu.created_at,
            "updated_at": menu.updated_at,
        }
        with aws_errors("IVR menus"):
            self._db().put_item(TableName=self.table_name, Item=to_item(item))

    def delete_ivr_menu(self, account_id: str, code: str) -> bool:
        """Delete a menu; whether there was one."""
        with aws_errors("IVR menus"):
            response = self._db().delete_item(
                TableName=self.table_name, Key=self._key(account_id, code), ReturnValues="ALL_OLD"
            )
        return bool(response.get("Attributes"))


def _stored_menu(data: dict[str, Any]) -> StoredMenu | None:
    """A menu item as the domain's StoredMenu; None for an item that is not a valid menu."""
    try:
        menu = IvrMenu.model_validate_json(str(data.get("menu", "")))
    except ValidationError:
        return None
    return StoredMenu(
        code=str(data["sk"])[len(_PREFIX) :],
        menu=menu,
        created_at=str(data.get("created_at", "")),
        updated_at=str(data.get("updated_at", "")),
    )
