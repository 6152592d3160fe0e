"""HTTP helpers for the API: request bodies in every form the seed's clients send, and the seed's envelope."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from callbridge.domain import json_objects
from callbridge.domain.errors import FieldProblem, InvalidRequest
from callbridge.domain.limits import LAMBDA_PAYLOAD_BYTES
from callbridge.domain.requests import JSON_OBJECT_PARAMS

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
MULTIPART = "multipart/form-data"
MAX_BODY = 64 * 1024
UTF8_BOM = b"\xef\xbb\xbf"


# The HTML apps the API serves (the console, Swagger UI) hold API credentials once signed in. Only this origin's own
# files and API: no inline script or style, no other origin, no framing by another site (clickjacking), no form
# posts, no referrer sent from them, no content-type sniffing.
PAGE_CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class CrossSiteRequest(Exception):
    """A browser sent a state-changing request for a page of another site (cross-site request forgery)."""


# Methods a page of another site may make a browser send (links, images, form GETs): they change nothing.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# What Sec-Fetch-Site says of a request this site's own pages made, or a person typed or bookmarked.
_OWN_SITE = frozenset({"same-origin", "none"})


def made_for_another_site(method: str, headers: Mapping[str, str], host: str) -> bool:
    """Whether a browser sent this state-changing request because a page of another site asked it to.

    A browser that once signed in to the API in its own Basic dialog (the 401's `WWW-Authenticate` opens it) sends
    those credentials with every request to this origin, a form another site posts here included. Browsers say who
    made a request: `Sec-Fetch-Site` (every current browser), else `Origin` on a POST. API clients (curl, PHP,
    SDKs) send neither and are never refused. `headers` as API Gateway gives them (lower-case names).
    """
    if method.upper() in SAFE_METHODS:
        return False
    site = headers.get("sec-fetch-site")
    if site is not None:
        return site.strip().lower() not in _OWN_SITE
    origin = headers.get("origin")
    if origin is None:
        return False
    origin = origin.strip().lower()
    return origin == "null" or urlsplit(origin).netloc != host.lower()


def envelope(code: int, code_desc: str = "", **data: Any) -> dict[str, Any]:
    """The seed's response envelope: {"data": {..., "code": ..., "code_desc": ...}}."""
    return {"data": {**data, "code": code, "code_desc": code_desc}}


# Bytes of an answer besides its body (status, headers, JSON punctuation): generous.
_ANSWER_OVERHEAD = 16 * 1024


def fits_in_an_answer(text: str) -> bool:
    """Whether `text` can be an answer's body as it is: Lambda carries the answer as JSON, its body a JSON string
    (each newline, quote or backslash escaped), and at most LAMBDA_PAYLOAD_BYTES of it."""
    body = json.dumps(text, ensure_ascii=False).encode()
    return len(body) + _ANSWER_OVERHEAD <= LAMBDA_PAYLOAD_BYTES


# The most problems a 400 lists. A campaign of 10,000 calls with a few bad cells each has tens of thousands, and
# listed twice (code_desc, errors) they would be more than a Lambda function may answer (LAMBDA_PAYLOAD_BYTES: a 500).
MAX_LISTED_PROBLEMS = 1000


def error_envelope(code: int, exc: InvalidRequest | None = None, message: str = "") -> dict[str, Any]:
    """An error in the seed's envelope; a 400 also lists each field and rule (the first MAX_LISTED_PROBLEMS, then
    how many more there are, as one more problem of the `body`)."""
    if exc is None:
        return envelope(code, message)
    problems = exc.problems[:MAX_LISTED_PROBLEMS]
    more = len(exc.problems) - len(problems)
    if more:
        unlisted = FieldProblem("body", f"has {more} more problems (a 400 lists the first {len(problems)})")
        problems = [*problems, unlisted]
    listed = InvalidRequest(problems)
    return envelope(code, str(listed), errors=[{"field": p.field, "message": p.message} for p in listed.problems])


def raw_body(body: str | None, is_base64: bool) -> bytes:
    """The request body as bytes, as API Gateway delivered it."""
    if body is None:
        return b""
    if is_base64:
        try:
            return base64.b64decode(body)
        except (binascii.Error, ValueError) as exc:
            raise InvalidRequest.single("body", "could not be decoded") from exc
    return body.encode("utf-8", errors="surrogatepass")


def _from_json(body: bytes) -> dict[str, Any]:
    """The parameters of a JSON object. Values that are no strings or numbers are kept as given: the call model
    refuses them ("must be a string") together with every other rule the request breaks."""
    try:
        data = json_objects.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidRequest.single("body", "is not valid JSON (UTF-8)") from exc
    if not isinstance(data, dict):
        raise InvalidRequest.single("body", "must be a JSON object of parameters")
    repeated = [FieldProblem(name, json_objects.REPEATED) for name in getattr(data, "repeated", [])]
    params: dict[str, Any] = {}
    for key, value in data.items():
        if key in JSON_OBJECT_PARAMS and value is not None and not isinstance(value, str):
            # An object (or anything but its JSON text) is judged by the parameter's own rule, as JSON text.
            twice = getattr(value, "repeated", [])
            repeated.extend(FieldProblem(key, f"key {k!r} {json_objects.REPEATED}") for k in twice)
            params[key] = json.dumps(value)
        elif value is not None:
            params[key] = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    if repeated:
        raise InvalidRequest(repeated)
    return params


def _from_form(body: bytes) -> dict[str, str]:
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=200)
    except UnicodeDecodeError as exc:
        raise InvalidRequest.single("body", "is not valid UTF-8 (after percent-decoding)") from exc
    except ValueError as exc:
        raise InvalidRequest.single("body", "has too many fields") from exc
    return _unique(pairs)


def _from_multipart(body: bytes, content_type: str) -> dict[str, str]:
    # Imported on first use: few clients send multipart, and the email package costs every cold start.
    from email.errors import MessageError
    from email.parser import BytesParser
    from email.policy import HTTP

    try:
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
        )
        if not message.is_multipart():
            raise ValueError("not multipart")
        pairs = []
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if not isinstance(name, str) or not isinstance(payload, bytes):
                raise ValueError("part without a name")
            pairs.append((name, payload.decode("utf-8")))
    # The email package's header parser raises IndexError and friends on some malformed headers.
    except (ValueError, UnicodeError, TypeError, AttributeError, LookupError, MessageError) as exc:
        raise InvalidRequest.single("body", "is not valid multipart/form-data (UTF-8)") from exc
    return _unique(pairs)


def _repeated(names: list[str]) -> list[FieldProblem]:
    """A problem per name given more than once, in the order of their second appearance."""
    seen: set[str] = set()
    repeated: list[str] = []
    for name in names:
        if name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    return [FieldProblem(name, "given more than once") for name in repeated]


def _unique(pairs: list[tuple[str, str]]) -> dict[str, str]:
    repeated = _repeated([name for name, _ in pairs])
    if repeated:
        raise InvalidRequest(repeated)
    return dict(pairs)


def repeated_in_query(raw_query: str | None) -> list[FieldProblem]:
    """A problem per name the query string gives more than once (API Gateway hands such a parameter on as its
    values joined by commas, which would read as one value)."""
    return _repeated([name for name, _ in parse_qsl(raw_query or "", keep_blank_values=True)])


def parse_params(body: bytes, content_type: str | None) -> dict[str, Any]:
    """Parameters from a form-encoded, multipart or JSON body; raises InvalidRequest for anything else.

    Every value is a string, except a JSON body's values that are no strings or numbers (booleans, lists,
    objects): those are left for the call model to refuse. A parameter given twice is refused in every form.
    """
    if len(body) > MAX_BODY:
        raise InvalidRequest.single("body", f"must be at most {MAX_BODY} bytes")
    body = body.removeprefix(UTF8_BOM)  # some editors and Windows tools start a UTF-8 file with one; it is no data
    media = (content_type or "").partition(";")[0].strip().lower()
    # A JSON object sent without a Content-Type, or with curl -d's default form type, is still read as JSON:
    # no parameter name starts with "{", so no form body does.
    if (
        media == JSON
        or media.endswith("+json")
        or (media in ("", FORM, "text/plain") and body.lstrip().startswith(b"{"))
    ):
        return _from_json(body)
    if media in ("", FORM, "text/plain"):
        return _from_form(body)
    if media == MULTIPART:
        return _from_multipart(body, content_type or "")
    raise InvalidRequest.single("Content-Type", f"must be {FORM}, {MULTIPART} or {JSON}")
