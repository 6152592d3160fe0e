"""Twilio's webhook signature (`X-Twilio-Signature`): HMAC-SHA1 over the URL and the sorted POST parameters."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence

SIGNATURE_HEADER = "X-Twilio-Signature"


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str | Sequence[str]] | None = None) -> str:
    """Base64 HMAC-SHA1, keyed with the auth token, of `url` followed by each parameter name and value.

    Names are sorted; a repeated name contributes each of its distinct values, sorted (as the
    official `RequestValidator` computes it). For GET webhooks pass the full URL, query included,
    and no params.
    """
    message = url
    for name in sorted(params or {}):
        raw = (params or {})[name]
        values = [raw] if isinstance(raw, str) else list(raw)
        for value in sorted(set(values)):
            message += name + value
    digest = hmac.new(auth_token.encode(), message.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def valid_signature(
    auth_token: str, url: str, params: Mapping[str, str | Sequence[str]] | None, signature: str
) -> bool:
    """Check a signature in constant time (the receiving side; the simulator uses it in its own tests)."""
    return hmac.compare_digest(twilio_signature(auth_token, url, params), signature)
