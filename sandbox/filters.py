"""Event source mapping filter patterns (the subset template.yaml uses), applied as Lambda applies them.

Lambda drops the records that match none of a mapping's FilterCriteria before it invokes the function,
and does not invoke at all (or bill) when none is left; an SQS message it drops is deleted. The
sandbox's event sources do the same, so a function gets in the sandbox exactly what it would get
deployed (a pattern that is wrong for the template's records shows up in the e2e tests). Supported:
literal values, `exists`, `anything-but` and `prefix`, nested objects.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def _leaf(rules: list[Any], present: bool, value: Any) -> bool:
    for rule in rules:
        if isinstance(rule, dict):
            if "exists" in rule:
                if bool(rule["exists"]) == present:
                    return True
                continue
            if not present:
                continue
            if "anything-but" in rule:
                banned = rule["anything-but"]
                if value not in (banned if isinstance(banned, list) else [banned]):
                    return True
            elif "prefix" in rule and isinstance(value, str) and value.startswith(str(rule["prefix"])):
                return True
        elif present and value == rule:
            return True
    return False


def matches(pattern: Mapping[str, Any], data: Any) -> bool:
    """Whether `data` matches an EventBridge-style filter pattern."""
    for key, rule in pattern.items():
        present = isinstance(data, Mapping) and key in data
        value = data[key] if present else None
        if isinstance(rule, Mapping):
            if not present or not matches(rule, value):
                return False
        elif isinstance(rule, list):
            values = value if isinstance(value, list) else [value]
            if not any(_leaf(rule, present, v) for v in values):
                return False
        else:
            raise ValueError(f"filter pattern values must be lists or objects, not {rule!r}")
    return True


def function_filters(template: Mapping[str, Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(function logical id, "stream" or "sqs") → its filter patterns, for event sources that have any."""
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for logical, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in resource.get("Properties", {}).get("Events", {}).values():
            kind = {"DynamoDB": "stream", "SQS": "sqs"}.get(event.get("Type", ""))
            patterns = event_patterns(event.get("Properties", {}))
            if kind and patterns:
                found[(logical, kind)] = patterns
    return found


def event_patterns(properties: Mapping[str, Any]) -> list[dict[str, Any]]:
    """An event source's filter patterns, from its template Properties (none: every record passes)."""
    return [json.loads(f["Pattern"]) for f in properties.get("FilterCriteria", {}).get("Filters", [])]


def kept(record: Any, patterns: list[dict[str, Any]]) -> bool:
    """Whether Lambda hands `record` to the function: no patterns, or one it matches (SQS bodies are matched
    as JSON when they are JSON)."""
    if not patterns:
        return True
    data = record
    if isinstance(record, dict) and "body" in record:
        try:
            data = {**record, "body": json.loads(record["body"])}
        except (TypeError, ValueError):
            data = record
    return any(matches(p, data) for p in patterns)


def passing(records: list[Any], patterns: list[dict[str, Any]]) -> int:
    """How many records match at least one pattern."""
    return sum(1 for record in records if kept(record, patterns))
