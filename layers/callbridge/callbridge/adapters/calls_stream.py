"""CallsTable's stream: the calls before and after a change, from a DynamoDB stream record."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from callbridge.adapters.dynamodb.calls import call_from_item
from callbridge.domain.calls import Call


class UnreadableImage(ValueError):
    """A stream image that is not a call."""


def _call(image: Any) -> Call | None:
    if not image:
        return None
    try:
        return call_from_item(image)
    except (ValidationError, TypeError, ValueError, AttributeError) as exc:
        raise UnreadableImage(f"stream image is not a call: {exc}") from exc


def call_images(record: Mapping[str, Any]) -> tuple[Call | None, Call | None]:
    """(old, new) of one stream record (NEW_AND_OLD_IMAGES); None where the record has no image."""
    change = record.get("dynamodb") or {}
    return _call(change.get("OldImage")), _call(change.get("NewImage"))
