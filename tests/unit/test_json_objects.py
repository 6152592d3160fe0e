"""JSON bodies: a key an object gives more than once is found wherever it is, and named like the API names fields."""

from __future__ import annotations

from callbridge.domain.errors import FieldProblem
from callbridge.domain.json_objects import loads, repeated_keys, repeated_problems


def test_parses_like_json_loads_keeping_the_last_value() -> None:
    assert loads('{"a": 1, "a": 2, "b": [{"c": 3}]}') == {"a": 2, "b": [{"c": 3}]}


def test_every_repeated_key_is_found_with_its_path_outer_objects_first() -> None:
    data = loads('{"a": 1, "a": 2, "a": 3, "b": {"c": 1, "c": 2}, "d": [{"e": 1}, {"e": 1, "e": 2}]}')

    assert repeated_keys(data) == [("a",), ("b", "c"), ("d", 1, "e")]


def test_a_list_at_the_top_and_a_caller_s_names() -> None:
    data = loads('[{"number": "1"}, {"number": "1", "reason": "x", "reason": "y"}]')

    assert repeated_problems(data, lambda p: f"numbers[{p[0]}].{p[1]}") == [
        FieldProblem("numbers[1].reason", "given more than once")
    ]


def test_repeated_keys_are_named_dotted_by_default() -> None:
    data = loads('{"options": {"1": {"menu": "a", "menu": "b"}}, "timeout": 1, "timeout": 2}')

    assert [p.field for p in repeated_problems(data)] == ["timeout", "options.1.menu"]
    # the same key in two objects is no repetition
    assert repeated_problems(loads('{"a": {"a": 1}, "b": [1, 1]}')) == []
