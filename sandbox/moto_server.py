"""`python -m sandbox.moto_server`: moto's server, with DynamoDB's writes atomic as DynamoDB's are, and without
the costs that are moto's own.

moto applies a conditional write or an update expression to an item without a lock, so two requests for
the same item at once (a placer recording the carrier's call id while the final status callback lands) can
both read it and the second write loses the first's changes; and it answers from the stored item, which a
write right after may already have changed. DynamoDB applies each write to an item atomically, and answers
with the item as that write left it; handling DynamoDB requests one at a time gives the sandbox the same.

moto is the sandbox's whole AWS, in one process on one core, so its own per-request costs decide how many
calls a second the sandbox can carry. These model nothing AWS does, and are removed here (each answer is what
moto answers; tests/integration/test_moto_server.py compares the two servers):
- finding the service of a request lists moto's package directory and tries every URL pattern, each time;
  the answer for a host never changes, so it is remembered;
- results that are already DynamoDB JSON (items, stream records) go through moto's generic serializer,
  attribute by attribute: under a burst of calls that was two thirds of moto's time. They are written out
  as JSON;
- each received SQS message asks for every attribute of its queue, whose message counts walk the whole
  queue, to read one number: the retention period is read directly;
- each request lists the handler class's methods (`inspect.getmembers`) to find its action's: they are
  listed once per class;
- an update or condition expression is parsed from its text at every use (a conditional update reads its
  condition twice): the syntax tree of an update expression, and the tokens of a condition, are kept per text;
- a conditional update copies the item twice (the answer's old image, the stream's), each attribute through
  `copy.deepcopy`'s generic protocol: attribute values are copied directly;
- an update copies its expression's syntax tree through `copy.deepcopy` (the validator rewrites its copy): the
  tree is copied node by node;
- turning an attribute value into JSON deep-copies its whole subtree again at every level of it: values are
  converted in one pass;
- an update turns the whole item as it was into JSON to tell which attributes changed, which only the answers
  ALL_OLD, UPDATED_OLD and UPDATED_NEW use: for NONE and ALL_NEW it is not;
- a transaction deep-copies every table it writes to, to roll back if it fails: the items it names are kept
  instead.

One thing moto does unlike SQS is mended: a long poll wakes when a message is sent, but not when a delayed
(or in-flight) message becomes visible, so it saw that message up to a second late. It now also wakes then,
and the sandbox's pollers only long-poll, as Lambda's do, instead of short-polling many times a second.
"""

from __future__ import annotations

import base64
import copy
import functools
import importlib
import json
import logging
import sys
import threading
import types
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any

JSON_HEADERS = {"Content-Type": "application/x-amz-json-1.0", "server": "amazon.com"}


def one_at_a_time(original: Callable[..., Any], lock: threading.RLock) -> Callable[..., Any]:
    """`original` (moto's handling of a DynamoDB request: reading or writing items, then answering) under `lock`.

    moto checks a write's condition and then stores the item without a lock, and its handlers answer from the
    stored items themselves after the backend returns them: a write at the same time could slip between a
    condition and its store, change the item a write is answering with (two ADDs at once could both answer the
    second's value), or add an attribute while a read copies it ("dictionary changed size during iteration").
    One request at a time makes each write atomic and each answer the items as of that request, as DynamoDB's
    are. moto handles a request in Python, one thread at a time anyway, so this costs it nothing in speed."""

    def handle(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return original(*args, **kwargs)

    return handle


def make_dynamodb_atomic() -> None:
    """DynamoDB requests handled one at a time (process-wide)."""
    from moto.dynamodb.responses import DynamoHandler

    setattr(DynamoHandler, "call_action", one_at_a_time(DynamoHandler.call_action, threading.RLock()))  # noqa: B010


def remember_backends_by_host() -> None:
    """Each host's backend is looked up once (moto lists its package directory for every request)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.get_backend_for_host
    known: dict[str | None, Any] = {}

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        if host not in known:
            known[host] = original(self, host)
        return known[host]

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]


def epoch_seconds(value: Any) -> float:
    """JSON for the one non-JSON value these results hold: a stream record's creation time (moto's naive UTC)."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.timestamp()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# Results already in the wire form (DynamoDB JSON): the data plane's reads and writes, and the stream's records.
JSON_RESULTS = {
    "moto.dynamodb.responses.DynamoHandler": frozenset(
        {
            "GetItem",
            "PutItem",
            "UpdateItem",
            "DeleteItem",
            "Query",
            "Scan",
            "BatchGetItem",
            "BatchWriteItem",
            "TransactGetItems",
            "TransactWriteItems",
        }
    ),
    "moto.dynamodbstreams.responses.DynamoDBStreamsHandler": frozenset({"GetRecords"}),
}


def write_results_as_json() -> None:
    """The actions in JSON_RESULTS write their result straight out as JSON, with the headers moto's serializer
    gives; anything else, or a result that is not plain JSON, goes through moto's serializer as before."""
    from moto.core.responses import ActionResult, PaginatedResult

    for path, actions in JSON_RESULTS.items():
        module_name, class_name = path.rsplit(".", 1)
        handler = getattr(importlib.import_module(module_name), class_name)
        original = handler.serialized

        def serialized(self: Any, result: Any, original: Any = original, actions: frozenset[str] = actions) -> Any:
            plain = isinstance(result, ActionResult) and not isinstance(result, PaginatedResult)
            if plain and isinstance(result.result, dict) and self._get_action() in actions:
                try:
                    body = json.dumps(result.result, default=epoch_seconds)
                except TypeError:
                    return original(self, result)
                headers = {**JSON_HEADERS, "date": formatdate(usegmt=True), **self.response_headers}
                return 200, headers, body
            return original(self, result)

        handler.serialized = serialized


def parse_update_expressions_once() -> None:
    """An update expression's syntax tree is built once per expression text: both of moto's readers of it (the
    request's checks and the item update, which works on a deep copy) only read it."""
    from moto.dynamodb import models, responses
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    parse = functools.lru_cache(maxsize=1024)(UpdateExpressionParser.make)

    class CachedParser:
        make = staticmethod(parse)

    models.UpdateExpressionParser = CachedParser  # type: ignore[attr-defined]
    responses.UpdateExpressionParser = CachedParser  # type: ignore[attr-defined]


def list_actions_once() -> None:
    """A handler class's method names, listed once per class (moto lists them for every request)."""
    from moto.core import responses, utils

    names = functools.lru_cache(maxsize=None)(lambda clazz: frozenset(utils.method_names_from_class(clazz)))
    setattr(responses, "method_names_from_class", names)  # noqa: B010


def lex_conditions_once() -> None:
    """A condition expression's tokens, read once per text: the parser's later steps only read them (a token is
    an immutable tuple), and an invalid text raises as before, since nothing is kept for it."""
    from collections import deque

    from moto.dynamodb.comparisons import ConditionExpressionParser

    lex = ConditionExpressionParser._lex_condition_expression

    @functools.lru_cache(maxsize=1024)
    def tokens(text: str) -> tuple[Any, ...]:
        parser = ConditionExpressionParser(text, None, None)
        return tuple(lex(parser))

    def lex_once(self: Any) -> Any:
        return deque(tokens(self.condition_expression))

    setattr(ConditionExpressionParser, "_lex_condition_expression", lex_once)  # noqa: B010


def attribute_copy(value: Any) -> Any:
    """A copy of a DynamoDB attribute value as moto holds it (`DynamoType`, with lists and maps of them)."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    if isinstance(value, DynamoType):
        copied = DynamoType.__new__(DynamoType)
        copied.type = value.type
        copied.value = attribute_copy(value.value)
        return copied
    if isinstance(value, list):
        return [attribute_copy(v) for v in value]
    if isinstance(value, dict):
        return {k: attribute_copy(v) for k, v in value.items()}
    return value  # str, bytes, bool, None: immutable


def copy_attributes_directly() -> None:
    from moto.dynamodb.models.dynamo_type import DynamoType

    setattr(DynamoType, "__deepcopy__", lambda self, _memo: attribute_copy(self))  # noqa: B010


IMMUTABLE = (str, int, float, bool, type(None))


def regular_json(value: Any) -> dict[str, Any]:
    """A DynamoDB attribute value as moto holds it (`DynamoType`), as DynamoDB JSON, built in one pass: moto's
    `to_regular_json` deep-copies the value's whole subtree at every level before converting it."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    def plain(inner: Any) -> Any:
        return regular_json(inner) if isinstance(inner, DynamoType) else _value_copy(inner)

    held = value.value
    if isinstance(held, dict):
        held = {key: plain(inner) for key, inner in held.items()}
    elif isinstance(held, list):
        held = [plain(inner) for inner in held]
    elif value.is_binary() and isinstance(held, str):
        held = base64.b64decode(held)
    return {value.type: held}


def convert_values_directly() -> None:
    from moto.dynamodb.models.dynamo_type import DynamoType

    setattr(DynamoType, "to_regular_json", regular_json)  # noqa: B010


def tree_copy(node: Any, parent: Any = None) -> Any:
    """A copy of an expression's syntax tree as moto's parser builds it: nodes with `type`, `children` (nodes, or
    a leaf's token text) and `parent`. Each node is new and points to its new parent, as `copy.deepcopy` makes it."""
    from moto.dynamodb.parsing.ast_nodes import Node  # type: ignore[attr-defined]

    copied = object.__new__(type(node))
    copied.__dict__.update(node.__dict__)
    copied.parent = parent
    if isinstance(node.children, list):
        copied.children = [
            tree_copy(child, copied) if isinstance(child, Node) else _value_copy(child) for child in node.children
        ]
    return copied


def _value_copy(value: Any) -> Any:
    return value if isinstance(value, IMMUTABLE) else copy.deepcopy(value)


def copy_syntax_trees_directly() -> None:
    """moto's update validator deep-copies the expression's syntax tree at every use (it rewrites its copy);
    a root node is copied node by node instead, and anything else as before."""
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.ast_nodes import Node  # type: ignore[attr-defined]

    def deepcopy(value: Any, memo: Any = None) -> Any:
        if isinstance(value, Node) and value.parent is None:
            return tree_copy(value)
        return copy.deepcopy(value, memo)

    setattr(validators, "deepcopy", deepcopy)  # noqa: B010


_OLD_IMAGE_UNUSED = threading.local()


def skip_unused_old_images() -> None:
    """moto's UpdateItem turns the whole item as it was into JSON to tell which attributes changed, which only
    the answers ALL_OLD, UPDATED_OLD and UPDATED_NEW use. For NONE and ALL_NEW (every update of the call
    path) the item as it was is not read: moto's answer is the same without it."""
    from moto.dynamodb import responses

    original = responses.DynamoHandler.update_item

    def update_item(self: Any) -> Any:
        _OLD_IMAGE_UNUSED.on = self.body.get("ReturnValues", "NONE") in ("NONE", "ALL_NEW")
        try:
            return original(self)
        finally:
            _OLD_IMAGE_UNUSED.on = False

    def old_image(item: Any) -> Any:
        return None if getattr(_OLD_IMAGE_UNUSED, "on", False) else copy.deepcopy(item)

    setattr(responses, "copy", types.SimpleNamespace(deepcopy=old_image))  # noqa: B010
    setattr(responses.DynamoHandler, "update_item", update_item)  # noqa: B010


def _named_items(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Any, Any, Any, Any]]:
    """Each item a transaction names, as it is now (None: absent): (table, hash key, range key, a copy)."""
    kept = []
    for entry in transact_items:
        op: Any = next(iter(entry.values()), None)
        table = backend.tables.get(op.get("TableName")) if isinstance(op, dict) else None
        if table is None:
            continue
        try:
            key = op.get("Key") or {
                name: op["Item"][name] for name in (table.hash_key_attr, table.range_key_attr) if name is not None
            }
            hash_key, range_key = backend.get_keys_value(table, key)
            item = table.get_item(hash_key, range_key)
        except Exception:  # noqa: S112 - moto refuses this one itself, before writing anything of it
            continue
        kept.append((table, hash_key, range_key, copy.deepcopy(item) if item is not None else None))
    return kept


def _put_back(kept: list[tuple[Any, Any, Any, Any]], records: dict[Any, int]) -> None:
    """The items as `_named_items` kept them, and each table's stream as long as it was."""
    for table, hash_key, range_key, item in reversed(kept):
        rows = table.items[hash_key] if range_key is not None else table.items
        slot = range_key if range_key is not None else hash_key
        if item is None:
            rows.pop(slot, None)
        else:
            rows[slot] = item
    for shard, length in records.items():
        del shard.items[length:]


def roll_back_transactions_by_item() -> None:
    """A transaction is rolled back item by item: moto deep-copies every table a transaction writes to before
    it, to put the copy in its place if it fails (in a campaign, whose counters are transactions next to a
    table of a thousand calls, that was 40 % of moto's time). The items it names are kept instead, and put back,
    with its table's stream records cut back, if it fails: the same tables after it either way."""
    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    def tables_kept(value: Any, memo: Any = None) -> Any:  # moto then "restores" the table itself: no change
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> Any:
        kept = _named_items(self, transact_items)
        shards = {t.stream_shard for t, _, _, _ in kept if t.stream_shard is not None}
        records = {shard: len(shard.items) for shard in shards}
        try:
            return original(self, transact_items)
        except Exception:
            _put_back(kept, records)
            raise

    setattr(models, "copy", types.SimpleNamespace(deepcopy=tables_kept))  # noqa: B010
    setattr(models.DynamoDBBackend, "transact_write_items", transact_write_items)  # noqa: B010


def within_retention(backend: Any, queue_name: str, message: Any) -> bool:
    """moto's retention check for a received message, reading only the queue's retention period."""
    from moto.core.utils import unix_time

    retention = int(backend.get_queue(queue_name).message_retention_period)
    return bool(retention + message.sent_timestamp / 1000 > unix_time())


def read_retention_directly() -> None:
    from moto.sqs.models import SQSBackend

    setattr(SQSBackend, "is_message_valid_based_on_retention_period", within_retention)  # noqa: B010


def next_visible(messages: Any, now_ms: float) -> float | None:
    """When the next message not visible now becomes visible (epoch milliseconds, moto's clock), if any."""
    times = [at for m in messages for at in (m.visible_at, m.delayed_until) if at > now_ms]
    return min(times, default=None)


def wait_for_messages(queue: Any, timeout: float) -> None:
    """A long poll's wait: until a message is sent (moto's own wake-up) or one becomes visible, or `timeout`."""
    from moto.core.utils import unix_time_millis

    with queue._messages_lock:
        end = unix_time_millis() + timeout * 1000
        while not queue.messages:
            now = unix_time_millis()
            wake = min(end, next_visible(queue._messages, now) or end)
            if wake <= now:
                return
            queue._messages_lock.wait((wake - now) / 1000 + 0.001)  # moto's `visible` is strictly after


def wake_when_visible() -> None:
    from moto.sqs.models import Queue

    setattr(Queue, "wait_for_messages", wait_for_messages)  # noqa: B010


def main(argv: list[str] | None = None) -> None:
    from moto.server import main as moto_main

    make_dynamodb_atomic()
    remember_backends_by_host()
    write_results_as_json()
    parse_update_expressions_once()
    read_retention_directly()
    list_actions_once()
    lex_conditions_once()
    copy_attributes_directly()
    copy_syntax_trees_directly()
    convert_values_directly()
    skip_unused_old_images()
    roll_back_transactions_by_item()
    wake_when_visible()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request, read by nobody
    moto_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
