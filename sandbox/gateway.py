"""A local API Gateway: serves the template's HTTP API routes as payload v2 events to the real handlers."""

from __future__ import annotations

import base64
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from werkzeug.wrappers import Request, Response

from sandbox.lambdas import Function, FunctionError, RequestTooLarge
from sandbox.template import Route

BODY_LIMIT = 10 * 1024 * 1024  # API Gateway's most for a request body (bytes); Lambda's 6 MB event limit comes first
_TEXT_TYPES = ("text/", "application/json", "application/x-www-form-urlencoded", "application/xml", "+json", "+xml")


@dataclass(frozen=True)
class _CompiledRoute:
    route: Route
    pattern: re.Pattern[str]


def _compile(route: Route) -> _CompiledRoute:
    """A route's pattern as API Gateway matches it: a greedy variable takes one segment or more, and a path
    ending in a slash matches the route without it (a route's path cannot end in one), as sent to the function."""
    parts = []
    for segment in route.path.strip("/").split("/"):
        if segment.startswith("{") and segment.endswith("+}"):
            parts.append(f"(?P<{segment[1:-2]}>.+)")
        elif segment.startswith("{") and segment.endswith("}"):
            parts.append(f"(?P<{segment[1:-1]}>[^/]+)")
        else:
            parts.append(re.escape(segment))
    path = "/" + "/".join(parts)
    return _CompiledRoute(route, re.compile(f"^{path}$" if path == "/" else f"^{path}/?$"))


def _is_text(content_type: str) -> bool:
    lowered = content_type.lower()
    return any(marker in lowered for marker in _TEXT_TYPES)


class Gateway:
    """WSGI app: matches a route, builds the HTTP API v2 event, invokes the function, maps the result."""

    def __init__(
        self,
        routes: list[Route],
        functions: dict[str, Function],
        api_id: str = "sandbox",
        on_request: Callable[[str, str, int, float], None] | None = None,
    ) -> None:
        self._routes = [_compile(r) for r in routes]
        self._functions = functions
        self._api_id = api_id
        self._on_request = on_request

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        allowed = False
        for compiled in self._routes:
            found = compiled.pattern.match(path)
            if found:
                allowed = True
                if compiled.route.method in (method, "ANY"):
                    return compiled.route, found.groupdict()
        return None if not allowed else (Route("", "", ""), {})

    def event(self, request: Request, route: Route, path_params: dict[str, str]) -> dict[str, Any]:
        headers: dict[str, str] = {}
        for key, value in request.headers.items():
            name = key.lower()
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        # API Gateway adds these; the webhooks rebuild the carrier's URL from them to check signatures.
        headers.setdefault("x-forwarded-proto", request.scheme)
        headers.setdefault("x-forwarded-port", str(request.environ.get("SERVER_PORT", "")))
        headers.setdefault("x-forwarded-for", request.remote_addr or "127.0.0.1")
        query: dict[str, str] = {}
        for key, value in request.args.items(multi=True):
            query[key] = f"{query[key]},{value}" if key in query else value
        body_bytes = request.get_data(cache=False)
        content_type = request.headers.get("content-type", "")
        body: str | None = None
        is_base64 = False
        if body_bytes:
            try:
                if not _is_text(content_type):
                    raise UnicodeDecodeError("utf-8", b"", 0, 1, "binary content type")
                body = body_bytes.decode("utf-8")
            except UnicodeDecodeError:
                body = base64.b64encode(body_bytes).decode()
                is_base64 = True
        now = datetime.now(UTC)
        route_key = f"{route.method} {route.path}"
        host = request.host
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": request.path,
            "rawQueryString": request.query_string.decode("latin-1"),
            "headers": headers,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": self._api_id,
                "domainName": host,
                "domainPrefix": host.split(".")[0],
                "http": {
                    "method": request.method,
                    "path": request.path,
                    "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                    "sourceIp": request.remote_addr or "127.0.0.1",
                    "userAgent": request.headers.get("user-agent", ""),
                },
                "requestId": str(uuid.uuid4()),
                "routeKey": route_key,
                "stage": "$default",
                "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "timeEpoch": int(now.timestamp() * 1000),
            },
            "isBase64Encoded": is_base64,
        }
        if query:
            event["queryStringParameters"] = query
        if path_params:
            event["pathParameters"] = path_params
        if body is not None:
            event["body"] = body
        if request.cookies:
            event["cookies"] = [f"{k}={v}" for k, v in request.cookies.items()]
        return event

    @staticmethod
    def response(result: Any) -> Response:
        if not isinstance(result, dict) or "statusCode" not in result:
            # Payload v2 lets a handler return just a body; API Gateway infers a 200 JSON answer.
            import json

            return Response(json.dumps(result), status=200, content_type="application/json")
        body = result.get("body") or ""
        data = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
        response = Response(data, status=int(result["statusCode"]))
        for key, value in (result.get("headers") or {}).items():
            response.headers[key] = str(value)
        for key, values in (result.get("multiValueHeaders") or {}).items():
            for value in values:
                response.headers.add(key, str(value))
        for cookie in result.get("cookies") or []:
            response.headers.add("Set-Cookie", cookie)
        return response

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        started = time.monotonic()
        found = self.match(request.method, request.path)
        if (request.content_length or 0) > BODY_LIMIT:
            response = Response(f"HTTP content length exceeded {BODY_LIMIT} bytes.", status=413)
        elif found is None:
            response = Response('{"message":"Not Found"}', status=404, content_type="application/json")
        elif not found[0].function:
            response = Response('{"message":"Method Not Allowed"}', status=405, content_type="application/json")
        else:
            route, params = found
            function = self._functions[route.function]
            try:
                # Each container is a process serving one event at a time, so requests run side by side.
                response = self.response(function.invoke(self.event(request, route, params)))
            except RequestTooLarge:  # Lambda refused the event (the body, escaped into it, is over its 6 MB)
                response = Response('{"message":"Request Too Long"}', status=413, content_type="application/json")
            except FunctionError:  # a handler error or timeout (or an answer over 6 MB) is a 500 from API Gateway
                response = Response('{"message":"Internal Server Error"}', status=500, content_type="application/json")
        if self._on_request:
            self._on_request(request.method, request.full_path.rstrip("?"), response.status_code, started)
        return response(environ, start_response)
