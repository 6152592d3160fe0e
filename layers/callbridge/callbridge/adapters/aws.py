"""boto3 clients built lazily, once per container (cold start is a user-visible latency)."""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def client(service: str) -> Any:
    """A shared boto3 client; endpoints come from the standard AWS_ENDPOINT_URL* variables."""
    import boto3
    from botocore.config import Config

    session: Any = boto3.session.Session()
    return session.client(service, config=Config(retries={"mode": "standard", "max_attempts": 3}, tcp_keepalive=True))
