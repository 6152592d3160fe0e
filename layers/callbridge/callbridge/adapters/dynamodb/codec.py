"""Plain Python values ⇄ DynamoDB's typed JSON (S, N, BOOL, NULL, M, L), without importing boto3."""

from __future__ import annotations

from decimal import Decimal
from typing import Any


def value(data: Any) -> dict[str, Any]:
    """One plain value as a DynamoDB attribute value."""
    if data is None:
        return {"NULL": True}
    if isinstance(data, bool):
        return {"BOOL": data}
    if isinstance(data, str):
        return {"S": data}
    if isinstance(data, int | float | Decimal):
        return {"N": str(data)}
    if isinstance(data, dict):
        return {"M": {str(k): value(v) for k, v in data.items()}}
    if isinstance(data, list | tuple):
        return {"L": [value(v) for v in data]}
    if isinstance(data, bytes):
        return {"B": data}
    if isinstance(data, set | frozenset) and data and all(isinstance(v, str) for v in data):
        return {"SS": sorted(data)}
    if isinstance(data, set | frozenset) and data and all(isinstance(v, int | float | Decimal) for v in data):
        return {"NS": sorted(str(v) for v in data)}
    raise TypeError(f"cannot store a {type(data).__name__} in DynamoDB")


def plain(attribute: dict[str, Any]) -> Any:
    """One DynamoDB attribute value as a plain value (numbers as int or float)."""
    ((kind, data),) = attribute.items()
    if kind in {"S", "B"}:
        return data
    if kind == "N":
        number = Decimal(data)
        return int(number) if number == number.to_integral_value() else float(number)
    if kind == "BOOL":
        return bool(data)
    if kind == "NULL":
        return None
    if kind == "M":
        return {k: plain(v) for k, v in data.items()}
    if kind == "L":
        return [plain(v) for v in data]
    if kind in ("SS", "BS"):
        return set(data)
    if kind == "NS":
        return {plain({"N": n}) for n in data}
    raise TypeError(f"unknown DynamoDB type {kind}")


def to_item(data: dict[str, Any]) -> dict[str, Any]:
    """A plain dict as a DynamoDB item (None values dropped)."""
    return {k: value(v) for k, v in data.items() if v is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as a plain dict (numbers as int/float)."""
    return {k: plain(v) for k, v in item.items()}
