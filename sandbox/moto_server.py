"""`python -m sandbox.moto_server`: moto's server, with DynamoDB's writes atomic as DynamoDB's are.

moto applies a conditional write or an update expression to an item without a lock, so two requests for
the same item at once (a placer recording the carrier's call id while the final status callback lands) can
both read it and the second write loses the first's changes. DynamoDB applies each write to an item
atomically; one lock around moto's writes gives the sandbox the same guarantee.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")


def make_dynamodb_atomic() -> None:
    """Serialize moto's DynamoDB writes (process-wide)."""
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()

    def locked(original: Callable[..., Any]) -> Callable[..., Any]:
        def write(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return original(*args, **kwargs)

        return write

    for name in WRITES:
        setattr(DynamoDBBackend, name, locked(getattr(DynamoDBBackend, name)))


def main(argv: list[str] | None = None) -> None:
    from moto.server import main as moto_main

    make_dynamodb_atomic()
    moto_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
