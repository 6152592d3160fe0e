"""Accounts: who may call, their defaults, and how their password is kept (hashed, never stored)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from pydantic import BaseModel, ConfigDict, Field

# scrypt, memory-hard: ~16 MiB and tens of milliseconds per check, so a stolen table is slow to
# attack; verified credentials are cached per container so honest callers pay it rarely.
_SCRYPT_N = 2**14
_SCRYPT_R = 8
_SCRYPT_P = 1
_PREFIX = "scrypt"


class Account(BaseModel):
    """An API account: the Endpoint the seed's defaults come from."""

    model_config = ConfigDict(extra="ignore")

    api_key: str
    # Secrets stay out of repr(), so an account in a log line or an error message never shows them.
    password_hash: str = Field(repr=False)
    caller_id: str
    record_default: str = "NO"
    timezone: str = "UTC"
    webhook_secret: str = Field(repr=False)
    sms_from: str | None = None
    # Defaults of a call's calling window (a request's own values win); None: calls may ring at any time.
    call_window: str | None = None
    call_days: str | None = None
    recipient_timezone: str | None = None
    enabled: bool = True
    name: str = ""
    created_at: str = ""


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """A self-describing salted scrypt hash of `password`."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32)
    b64 = base64.b64encode
    return f"{_PREFIX}${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches `stored`, compared in constant time."""
    try:
        prefix, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if prefix != _PREFIX:
            return False
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(digest_b64)
        actual = hashlib.scrypt(password.encode(), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


# Checked against when the key is unknown, so a miss costs as long as a hit. It is hash_password("callbridge-dummy",
# salt=16 zero bytes), written out: computing it at import cost every function ~27 ms of its cold start
# (tests/unit/test_auth.py checks the two agree).
DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$kp9ym7/BuSA3cojuHm9GrmwUgdEXfkRYwY3lg1rNGZo="


def new_api_key() -> str:
    """A fresh API key: public, identifies the account."""
    return "cb_" + secrets.token_hex(12)


def new_password() -> str:
    """A fresh API password, shown once."""
    return secrets.token_urlsafe(24)


def new_webhook_secret() -> str:
    """A fresh secret for signing outcome callbacks."""
    return "whsec_" + secrets.token_urlsafe(32)
