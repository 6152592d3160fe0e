"""DynamoDB request units of one API call, from what was sent and received (DynamoDB bills units, not calls).

Sizes follow DynamoDB's item-size rules closely enough for a cost model: attribute names and
string/binary values by their UTF-8 length, numbers by about one byte per two digits, documents
with a few bytes of overhead. On-demand tables bill one write unit per started 1 KB written
(two for a transactional write) and one read unit per started 4 KB read strongly consistently
(half for an eventually consistent read, and for every read of a global secondary index).
A write also writes every global secondary index the old or the new item is in: an ALL
projection is as large as the item, a KEYS_ONLY one a few dozen bytes; a changed index key is
a delete plus a put. A write whose condition fails still costs the units of the item it read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Item = Mapping[str, Mapping[str, Any]]
KB = 1024


@dataclass(frozen=True)
class Index:
    name: str
    keys: tuple[str, ...]
    projection: str  # ALL, KEYS_ONLY or INCLUDE


@dataclass(frozen=True)
class TableSchema:
    logical: str
    keys: tuple[str, ...]
    indexes: tuple[Index, ...] = ()


def value_size(value: Mapping[str, Any]) -> int:
    """Bytes DynamoDB counts for one AttributeValue (wire form, e.g. {"S": "x"})."""
    ((kind, data),) = value.items()
    if kind == "S":
        return len(str(data).encode())
    if kind == "N":
        digits = str(data).lstrip("-").replace(".", "").lstrip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if kind == "B":
        return len(data) if isinstance(data, bytes) else len(str(data).encode()) * 3 // 4
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in data.items())
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in data)
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: v}) for v in data)
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: Item) -> int:
    """Bytes of an item: each attribute's name plus its value."""
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / KB))


def read_units(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / (4 * KB)))
    return float(units) if consistent else units / 2


def _project(item: Item, index: Index, table_keys: tuple[str, ...]) -> int:
    if index.projection == "ALL":
        return item_size(item)
    return item_size({k: item[k] for k in (*index.keys, *table_keys) if k in item})


def _in_index(item: Item | None, index: Index) -> bool:
    return item is not None and all(k in item for k in index.keys)


def index_write_units(old: Item | None, new: Item | None, schema: TableSchema) -> int:
    """Units spent on global secondary indexes when `old` becomes `new` (None: absent)."""
    units = 0
    for index in schema.indexes:
        was, now = _in_index(old, index), _in_index(new, index)
        assert old is not None or not was
        if was and now:
            assert old is not None
            assert new is not None
            if any(old[k] != new[k] for k in index.keys):
                units += write_units(_project(old, index, schema.keys)) + write_units(_project(new, index, schema.keys))
            elif index.projection != "KEYS_ONLY" and old != new:
                units += write_units(max(_project(old, index, schema.keys), _project(new, index, schema.keys)))
        elif was:
            assert old is not None
            units += write_units(_project(old, index, schema.keys))
        elif now:
            assert new is not None
            units += write_units(_project(new, index, schema.keys))
    return units


@dataclass
class CapacityModel:
    """Turns DynamoDB calls into request units, remembering the last image of each item it saw."""

    tables: dict[str, TableSchema]  # physical table name → schema
    items: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def _key(self, table: str, item: Item) -> tuple[str, str]:
        schema = self.tables[table]
        return table, json.dumps({k: item.get(k) for k in schema.keys}, sort_keys=True)

    def _write(self, table: str, new: Item | None, key: Item, failed: bool, factor: int = 1) -> tuple[str, int]:
        schema = self.tables[table]
        cache_key = self._key(table, key)
        old = self.items.get(cache_key)
        if failed:  # a failed condition costs the units of the existing item (at least one)
            return schema.logical, write_units(item_size(old) if old else 0) * factor
        sizes = [item_size(i) for i in (old, new) if i is not None]
        units = write_units(max(sizes, default=0)) + index_write_units(old, new, schema)
        if new is None:
            self.items.pop(cache_key, None)
        else:
            self.items[cache_key] = dict(new)
        return schema.logical, units * factor

    def units(self, operation: str, params: Mapping[str, Any], parsed: Mapping[str, Any]) -> dict[str, float]:
        """Request units of one call, as {"<Table>:read": n, "<Table>:write": n}."""
        failed = "Error" in parsed
        code = str(parsed.get("Error", {}).get("Code", ""))
        conditional = code in ("ConditionalCheckFailedException", "TransactionCanceledException")
        if failed and not conditional:
            return {}  # throttles and validation errors are not billed
        out: dict[str, float] = {}

        def add(key: str, value: float) -> None:
            out[key] = out.get(key, 0) + value

        table = str(params.get("TableName", ""))
        if operation == "PutItem" and table in self.tables:
            logical, units = self._write(table, params["Item"], params["Item"], failed)
            add(f"{logical}:write", units)
        elif operation == "UpdateItem" and table in self.tables:
            new = parsed.get("Attributes") if params.get("ReturnValues") == "ALL_NEW" else None
            old = self.items.get(self._key(table, params["Key"]))
            logical, units = self._write(table, new if new is not None else old, params["Key"], failed)
            add(f"{logical}:write", units)
        elif operation == "DeleteItem" and table in self.tables:
            logical, units = self._write(table, None, params["Key"], failed)
            add(f"{logical}:write", units)
        elif operation == "GetItem" and table in self.tables:
            item = parsed.get("Item")
            if item:
                self.items[self._key(table, item)] = dict(item)
            size = item_size(item) if item else 0
            add(f"{self.tables[table].logical}:read", read_units(size, bool(params.get("ConsistentRead"))))
        elif operation in ("Query", "Scan") and table in self.tables:
            size = sum(item_size(i) for i in parsed.get("Items", []))
            consistent = bool(params.get("ConsistentRead")) and not params.get("IndexName")
            add(f"{self.tables[table].logical}:read", read_units(size, consistent))
        elif operation == "TransactWriteItems":
            for entry in params.get("TransactItems", []):
                ((kind, request),) = entry.items()
                name = str(request.get("TableName", ""))
                if name not in self.tables:
                    continue
                if kind == "Put":
                    logical, units = self._write(name, request["Item"], request["Item"], failed, factor=2)
                elif kind == "Delete":
                    logical, units = self._write(name, None, request["Key"], failed, factor=2)
                elif kind == "Update":
                    old = self.items.get(self._key(name, request["Key"]))
                    logical, units = self._write(name, old, request["Key"], failed, factor=2)
                else:  # ConditionCheck
                    logical, units = self.tables[name].logical, 2
                add(f"{logical}:write", units)
        elif operation == "TransactGetItems":
            for entry, response in zip(params.get("TransactItems", []), parsed.get("Responses", []), strict=False):
                name = str(entry.get("Get", {}).get("TableName", ""))
                if name in self.tables:
                    add(f"{self.tables[name].logical}:read", 2 * read_units(item_size(response.get("Item", {})), True))
        elif operation == "BatchGetItem":
            for name, found in parsed.get("Responses", {}).items():
                if name in self.tables:
                    for item in found:
                        consistent = bool(params.get("RequestItems", {}).get(name, {}).get("ConsistentRead"))
                        add(f"{self.tables[name].logical}:read", read_units(item_size(item), consistent))
        elif operation == "BatchWriteItem":
            for name, requests in params.get("RequestItems", {}).items():
                if name not in self.tables:
                    continue
                for request in requests:
                    if "PutRequest" in request:
                        item = request["PutRequest"]["Item"]
                        logical, units = self._write(name, item, item, False)
                    else:
                        logical, units = self._write(name, None, request["DeleteRequest"]["Key"], False)
                    add(f"{logical}:write", units)
        return out


def schemas_from_template(template: Mapping[str, Any], physical: Mapping[str, str]) -> dict[str, TableSchema]:
    """Each DynamoDB table of the template, by physical name (`physical`: logical id → name)."""
    tables: dict[str, TableSchema] = {}
    for logical, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::DynamoDB::Table" or logical not in physical:
            continue
        props = resource.get("Properties", {})
        keys = tuple(k["AttributeName"] for k in props.get("KeySchema", []))
        indexes = tuple(
            Index(
                name=g["IndexName"],
                keys=tuple(k["AttributeName"] for k in g["KeySchema"]),
                projection=g.get("Projection", {}).get("ProjectionType", "ALL"),
            )
            for g in props.get("GlobalSecondaryIndexes", [])
        )
        tables[physical[logical]] = TableSchema(logical, keys, indexes)
    return tables
