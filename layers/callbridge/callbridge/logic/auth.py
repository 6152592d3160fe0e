"""HTTP Basic authentication against AccountsTable, cached briefly per container."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

from callbridge.domain.accounts import DUMMY_HASH, Account, verify_password
from callbridge.domain.errors import Unauthorized
from callbridge.ports import AccountsStore

MAX_KEY = 256  # far above any issued key, far below DynamoDB's 2048-byte partition key limit


def parse_basic(header: str | None) -> tuple[str, str]:
    """(key, password) from an `Authorization: Basic ...` header; raises Unauthorized."""
    if not header:
        raise Unauthorized("no credentials given")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        raise Unauthorized("HTTP Basic credentials required")
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise Unauthorized("malformed Basic credentials") from exc
    key, sep, password = decoded.partition(":")
    if not sep or not key or len(key) > MAX_KEY:
        raise Unauthorized("malformed Basic credentials")
    return key, password


class Authenticator:
    """Checks credentials; remembers accounts and verified credentials for `ttl` seconds.

    The cache holds an HMAC of the presented password under a per-container random key,
    never the password itself.
    """

    def __init__(self, accounts: AccountsStore, ttl: float = 60, clock: Callable[[], float] = time.monotonic) -> None:
        self._accounts = accounts
        self._ttl = ttl
        self._clock = clock
        self._pepper = secrets.token_bytes(32)
        self._accounts_cache: dict[str, tuple[float, Account | None]] = {}
        self._verified: dict[bytes, float] = {}

    def _account(self, key: str) -> Account | None:
        now = self._clock()
        hit = self._accounts_cache.get(key)
        if hit and hit[0] > now:
            return hit[1]
        account = self._accounts.get_account(key)
        if len(self._accounts_cache) > 10_000:
            self._accounts_cache.clear()
        self._accounts_cache[key] = (now + self._ttl, account)
        return account

    def authenticate(self, header: str | None) -> Account:
        """The enabled account these credentials belong to; raises Unauthorized otherwise."""
        key, password = parse_basic(header)
        account = self._account(key)
        if account is None:
            verify_password(password, DUMMY_HASH)
            raise Unauthorized("wrong API key or password")
        fingerprint = hmac.new(
            self._pepper, f"{key}\0{password}\0{account.password_hash}".encode(), hashlib.sha256
        ).digest()
        now = self._clock()
        if self._verified.get(fingerprint, 0) <= now:
            if not verify_password(password, account.password_hash):
                raise Unauthorized("wrong API key or password")
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[fingerprint] = now + self._ttl
        if not account.enabled:
            raise Unauthorized("account disabled")
        return account
