"""`metadata`: the caller's own string keys and values, kept with a call and sent back with its outcome."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from callbridge.domain import json_objects

MAX_KEYS = 20
MAX_BYTES = 2048  # of the JSON text, UTF-8
RULE = "must be a JSON object of string keys to string values"


class MetadataError(ValueError):
    """`metadata` breaks a rule; the message says which."""


def parse_metadata(value: str | Mapping[str, Any]) -> dict[str, str]:
    """A JSON object (or its text) of string keys to string values, at most 20 keys and 2,048 bytes."""
    data: Any = value
    if isinstance(value, str):
        try:
            data = json_objects.loads(value)
        except (ValueError, RecursionError) as exc:
            raise MetadataError(RULE) from exc
        repeated = getattr(data, "repeated", [])
        if repeated:  # the text of a form's metadata: json.loads would keep each key's last value
            keys = ", ".join(repr(k) for k in repeated)
            raise MetadataError(f"key{'s' if len(repeated) > 1 else ''} {keys} {json_objects.REPEATED}")
    if not isinstance(data, Mapping) or not all(isinstance(v, str) for v in data.values()):
        raise MetadataError(RULE)
    if len(data) > MAX_KEYS:
        raise MetadataError(f"must have at most {MAX_KEYS} keys")
    parsed = {str(k): v for k, v in data.items()}
    if len(metadata_text(parsed).encode()) > MAX_BYTES:
        raise MetadataError(f"must be at most {MAX_BYTES} bytes as JSON")
    return parsed


def metadata_text(metadata: Mapping[str, str]) -> str:
    """The canonical JSON text of metadata (compact, UTF-8 as is): what is stored, measured and sent."""
    return json.dumps(dict(metadata), ensure_ascii=False, separators=(",", ":"))
