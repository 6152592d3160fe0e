"""boto3 clients built lazily, once per container (cold start is a user-visible latency)."""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def client(service: str, pool: int = 10, attempts: int = 3) -> Any:
    """A shared boto3 client; endpoints come from the standard AWS_ENDPOINT_URL* variables.

    `pool`: connections kept open (botocore's default is 10), for a client many threads share.
    `attempts`: tries per request, throttling included (standard retry mode, exponential backoff).
    """
    import boto3
    from botocore.config import Config

    session: Any = boto3.session.Session()
    config = Config(
        retries={"mode": "standard", "max_attempts": attempts}, tcp_keepalive=True, max_pool_connections=pool
    )
    return session.client(service, config=config)
