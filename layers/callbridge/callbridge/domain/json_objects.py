"""JSON bodies as the API reads them: a key an object gives more than once is refused, never silently replaced.

`json.loads` keeps only the last value of a repeated key. `loads` parses the same way but every object
remembers the keys it gave more than once, and `repeated_problems` names each of them as a broken rule.
Every JSON body of the API (calls, IVR menus, campaigns, the do-not-call list) is read through here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from callbridge.domain.errors import FieldProblem

REPEATED = "given more than once"
Path = tuple[str | int, ...]


class JsonObject(dict[str, Any]):
    """A JSON object as parsed (each key's last value), with the keys it gave more than once, in order."""

    repeated: list[str]


def _object(pairs: list[tuple[str, Any]]) -> JsonObject:
    obj = JsonObject(pairs)
    seen: set[str] = set()
    obj.repeated = []
    for key, _ in pairs:
        if key in seen and key not in obj.repeated:
            obj.repeated.append(key)
        seen.add(key)
    return obj


def loads(text: str | bytes) -> Any:
    """`json.loads`, raising what it raises; every object is a JsonObject that knows its repeated keys."""
    return json.loads(text, object_pairs_hook=_object)


def repeated_keys(value: Any, path: Path = ()) -> list[Path]:
    """The path of every key given more than once in `value` (as `loads` parsed it), outer objects first."""
    found: list[Path] = []
    if isinstance(value, dict):
        found += [(*path, key) for key in getattr(value, "repeated", [])]
        for key, item in value.items():
            found += repeated_keys(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += repeated_keys(item, (*path, index))
    return found


def dotted(path: Path) -> str:
    """A field's name as the API's errors give it: `options.1.number`, `calls.3.to`."""
    return ".".join(str(part) for part in path)


def repeated_problems(value: Any, name: Callable[[Path], str] = dotted) -> list[FieldProblem]:
    """One problem per key given more than once in `value`, named by `name` (dotted by default)."""
    return [FieldProblem(name(path), REPEATED) for path in repeated_keys(value)]
