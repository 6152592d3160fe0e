"""`X-Twilio-Signature`: Base64 HMAC-SHA1 (key: the auth token) of the URL Twilio requested plus its POST parameters.

Compatible with twilio-python's `RequestValidator` (the reference the tests check against) without importing it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qs, urlparse

SIGNATURE_HEADER = "X-Twilio-Signature"
BODY_HASH_PARAM = "bodySHA256"

Params = Mapping[str, str | Sequence[str]] | Sequence[tuple[str, str]]


def _group(params: Params) -> dict[str, list[str]]:
    """Every value of every parameter name, whether given as a mapping (values or lists) or as pairs."""
    grouped: dict[str, list[str]] = {}
    items = params.items() if isinstance(params, Mapping) else params
    for name, value in items:
        grouped.setdefault(name, []).extend([value] if isinstance(value, str) else value)
    return grouped


def _sign(url: str, grouped: Mapping[str, Sequence[str]], auth_token: str, *, dedupe: bool) -> str:
    parts = [url]
    for name in sorted(grouped):
        values = grouped[name]
        for value in sorted(set(values) if dedupe else values):
            parts.append(name + value)
    mac = hmac.new(auth_token.encode("utf-8"), "".join(parts).encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def compute_signature(url: str, params: Params, auth_token: str) -> str:
    """The `X-Twilio-Signature` Twilio sends when it requests `url` with form `params`.

    Names are sorted; a repeated name contributes each of its distinct values, sorted (as twilio-python does).
    """
    return _sign(url, _group(params), auth_token, dedupe=True)


def _url_variants(url: str) -> list[str]:
    """`url` as given, and with its port toggled: Twilio signs some URLs with the default port and some without."""
    parsed = urlparse(url)
    port = parsed.port  # raises ValueError for a port that is not a number in range
    userinfo, at, hostport = parsed.netloc.rpartition("@")
    if port is None:
        default = 443 if parsed.scheme == "https" else 80
        toggled = f"{hostport}:{default}"
    else:
        toggled = hostport[: hostport.rindex(":")]
    variants = [url, parsed.geturl(), parsed._replace(netloc=userinfo + at + toggled).geturl()]
    return list(dict.fromkeys(variants))


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "replace"), b.encode("utf-8", "replace"))


def verify_signature(
    url: str,
    params: Params,
    signature: str | None,
    auth_token: str,
    *,
    body: str | bytes | None = None,
) -> bool:
    """Whether `signature` is Twilio's for this request, compared in constant time.

    `url` is the full URL Twilio requested (scheme, host, path, query). For a form-encoded request pass its
    parameters; for a JSON request pass the raw `body`: then the URL must carry `bodySHA256` with the body's
    SHA-256 and the signature covers the URL alone. A body without `bodySHA256` (or the reverse) fails, so an
    unsigned body is never accepted.
    """
    if not signature:
        return False
    try:
        candidates = _url_variants(url)
    except ValueError:
        return False
    body_hash = parse_qs(urlparse(url).query).get(BODY_HASH_PARAM)
    if body_hash is not None or body is not None:
        if body_hash is None or body is None:
            return False
        raw = body.encode("utf-8") if isinstance(body, str) else body
        if not _same(hashlib.sha256(raw).hexdigest(), body_hash[0]):
            return False
        grouped: dict[str, list[str]] = {}
    else:
        grouped = _group(params)
    # twilio-python keeps one of identical repeated values, other SDKs keep all: accept either reading.
    readings = [True]
    if any(len(set(values)) != len(values) for values in grouped.values()):
        readings.append(False)
    valid = False
    try:
        for candidate in candidates:
            for dedupe in readings:
                valid |= _same(_sign(candidate, grouped, auth_token, dedupe=dedupe), signature)
    except UnicodeEncodeError:  # lone surrogates: not text Twilio could have sent
        return False
    return valid
