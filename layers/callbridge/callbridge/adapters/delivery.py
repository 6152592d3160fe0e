"""The outcome callback's HTTP client: SSRF-safe by construction.

Each delivery resolves the host once, refuses it unless every address is a public unicast one,
then connects to an address it checked (no second look-up a DNS rebinding could change): the URL
carries the IP, `Host` carries the name, and for https the TLS handshake still sends and verifies
the name (SNI + certificate check). Redirects are never followed; proxies from the environment
are never used (they would resolve the name again).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from callbridge.domain.notifications import (
    TIMEOUT_SECONDS,
    DeliveryFailed,
    IPAddress,
    address_problem,
    callback_url_problem,
    literal_address,
)

if TYPE_CHECKING:
    import httpx

Resolver = Callable[..., Sequence[tuple[Any, ...]]]
USER_AGENT = "callbridge-notifier/1.0"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_ADDRESSES = 3  # addresses tried, in the resolver's order, when a connection cannot be made


def _host_ascii(host: str) -> str:
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise DeliveryFailed(f"host {host!r} is not a valid DNS name", permanent=True) from exc


class _Cutoff:
    """Ends an attempt that outlives its time by shutting its connection down.

    httpx's timeouts bound each read, not the whole answer: a receiver that trickles its status line and headers a
    byte at a time, each within the read timeout, would hold the attempt (and the notifier's batch) until the
    function itself timed out. This timer bounds the attempt as a whole.
    """

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def trace(self, event: str, info: Mapping[str, Any]) -> None:
        """httpcore's `trace` extension: learns the connection's socket as soon as it is connected."""
        if event != "connection.connect_tcp.complete":
            return
        found = info["return_value"].get_extra_info("socket")
        with self._lock:
            self._socket = found
            if self.fired:
                self._shut()

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            self._shut()

    def _shut(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


class CallbackSender:
    """POSTs one notification to a customer's callback_url; returns the HTTP status or raises DeliveryFailed."""

    def __init__(
        self,
        *,
        allow_loopback: bool = False,
        timeout: float = TIMEOUT_SECONDS,
        resolve: Resolver = socket.getaddrinfo,
        verify: ssl.SSLContext | bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.allow_loopback = allow_loopback
        self._timeout = timeout
        self._resolve = resolve
        self._verify = verify
        self._transport = transport
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def _http(self) -> httpx.Client:
        # Built on first use (httpx is not needed to import the handler) and shared by the worker threads.
        with self._lock:
            if self._client is None:
                import httpx

                self._client = httpx.Client(
                    timeout=httpx.Timeout(self._timeout),
                    follow_redirects=False,
                    trust_env=False,
                    verify=self._verify,
                    # A kept-alive connection is keyed by IP alone: it must not carry another host's request.
                    limits=httpx.Limits(max_keepalive_connections=0),
                    transport=self._transport,
                )
            return self._client

    def addresses(self, host: str, port: int) -> list[IPAddress]:
        """Every address `host` resolves to, each checked; raises DeliveryFailed if any is not public."""
        literal = literal_address(host)
        if literal is not None:
            found: list[IPAddress] = [literal]
        else:
            try:
                infos = self._resolve(host, port, 0, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            except (OSError, UnicodeError) as exc:
                raise DeliveryFailed(f"cannot resolve {host}: {exc}") from exc
            found = []
            for info in infos:
                address = literal_address(str(info[4][0]))
                if address is None:
                    raise DeliveryFailed(f"{host} resolves to {info[4][0]!r}, not an IP address")
                if address not in found:
                    found.append(address)
        if not found:
            raise DeliveryFailed(f"{host} has no address")
        for address in found:
            problem = address_problem(address, allow_loopback=self.allow_loopback)
            if problem:
                raise DeliveryFailed(f"refused: {host} resolves to {problem}")
        return found

    def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """POST `body` to `url` at one of its checked addresses; the response's status code.

        Raises DeliveryFailed for a refused target (permanent when the URL itself can never be
        valid), a failed look-up, a connection error or a timeout.
        """
        import httpx

        problem = callback_url_problem(url, allow_loopback=self.allow_loopback)
        if problem:
            raise DeliveryFailed(f"refused: callback_url {problem}", permanent=True)
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = _host_ascii((parts.hostname or "").rstrip("."))
        port = parts.port or _DEFAULT_PORTS[scheme]
        named = f"[{host}]" if ":" in host else host
        host_header = named if parts.port in (None, _DEFAULT_PORTS[scheme]) else f"{named}:{port}"
        client = self._http()
        addresses = self.addresses(host, port)[:_MAX_ADDRESSES]
        cutoff = _Cutoff(self._timeout)  # the whole attempt, every address tried included
        extensions: dict[str, Any] = {"trace": cutoff.trace}
        if scheme == "https":
            extensions["sni_hostname"] = host
        timed_out = f"timed out after {self._timeout:g} s"
        last: Exception | None = None
        try:
            for address in addresses:
                netloc = f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
                target = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
                request = client.build_request(
                    "POST",
                    target,
                    content=body,
                    headers={**headers, "Host": host_header, "User-Agent": USER_AGENT},
                    extensions=extensions,
                )
                try:
                    response = client.send(request, stream=True, follow_redirects=False)
                except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                    if cutoff.fired:
                        raise DeliveryFailed(timed_out) from exc
                    last = exc
                    continue
                except httpx.TimeoutException as exc:
                    raise DeliveryFailed(timed_out) from exc
                except httpx.HTTPError as exc:
                    raise DeliveryFailed(timed_out if cutoff.fired else f"{type(exc).__name__}: {exc}") from exc
                # The status is the answer; the body is not read (a receiver cannot make us download anything).
                response.close()
                return response.status_code
        finally:
            cutoff.cancel()
        raise DeliveryFailed(f"cannot connect to {host}: {last}") from last
