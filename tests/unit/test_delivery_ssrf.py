"""The callback sender refuses every non-public target, connects only to the address it checked, keeps TLS
name verification, follows no redirects — and the same never-valid URLs are refused at intake.

Sockets may only reach 127.0.0.1 here: refused targets are asserted to be refused before any
connection, and the real deliveries go to servers these tests start on 127.0.0.1.
"""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from callbridge.adapters.delivery import CallbackSender
from callbridge.domain.errors import InvalidRequest
from callbridge.domain.notifications import DeliveryFailed
from callbridge.domain.requests import parse_call_request

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"
BODY = b"callid=abc&status=COMPLETED"
HEADERS = {"Content-Type": "application/x-www-form-urlencoded", "X-Callbridge-Signature": "t=1,v1=00"}
MINIMAL = {"to": "12812345670", "answer_play": "http://example.com/file.wav"}


class Resolver:
    """getaddrinfo for a made-up DNS: host → addresses. Counts look-ups."""

    def __init__(self, names: dict[str, list[str]]) -> None:
        self.names = names
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int, *_args: Any) -> list[tuple[Any, ...]]:
        self.lookups.append(host)
        if host not in self.names:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        infos: list[tuple[Any, ...]] = []
        for address in self.names[host]:
            if ":" in address:
                infos.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
            else:
                infos.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
        return infos


@dataclass
class Recorder:
    """An httpx transport that answers without any network and remembers what it was asked."""

    status: int = 200
    requests: list[httpx.Request] = field(default_factory=list)

    def transport(self) -> httpx.MockTransport:
        def answer(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return httpx.Response(self.status)

        return httpx.MockTransport(answer)


DNS = {
    "public.example": [PUBLIC_V4],
    "public6.example": [PUBLIC_V6],
    "private.example": ["10.0.0.5"],
    "shared.example": ["100.64.12.1"],
    "metadata.example": ["169.254.169.254"],
    "mapped.example": ["::ffff:127.0.0.1"],
    "mapped-private.example": ["::ffff:10.0.0.5"],
    "mapped-public.example": [f"::ffff:{PUBLIC_V4}"],
    "ula.example": ["fd12:3456::1"],
    "linklocal6.example": ["fe80::1"],
    "multicast.example": ["239.1.2.3"],
    "loopback.example": ["127.0.0.1"],
    "loopback6.example": ["::1"],
    "sixtofour.example": ["2002:a00:5::1"],
    "nat64.example": ["64:ff9b::a9fe:a9fe"],
    "mixed.example": [PUBLIC_V4, "10.0.0.5"],
    "unspecified.example": ["0.0.0.0"],  # noqa: S104 - a resolver answer, not a bind
}


def sender(recorder: Recorder, *, allow_loopback: bool = False, names: dict[str, list[str]] | None = None) -> Any:
    return CallbackSender(allow_loopback=allow_loopback, resolve=Resolver(names or DNS), transport=recorder.transport())


# --- refused, before any connection


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/cb",
        "http://127.8.9.10:8080/cb",
        "http://[::1]/cb",
        "http://localhost/cb",
        "http://localhost./cb",
        "http://hooks.localhost/cb",
        "http://10.0.0.5/cb",
        "http://172.16.3.4/cb",
        "http://192.168.1.1/cb",
        "http://100.64.0.1/cb",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fe80::1]/cb",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[fc00::5]/cb",
        "http://224.0.0.1/cb",
        "http://[ff02::1]/cb",
        "http://0.0.0.0/cb",
        "http://[::]/cb",
        "http://240.0.0.1/cb",
        "http://255.255.255.255/cb",
        "http://[::ffff:127.0.0.1]/cb",
        "http://[::ffff:169.254.169.254]/cb",
        "http://[::ffff:10.0.0.5]/cb",
        "http://[::ffff:93.184.216.34]/cb",  # any IPv4-mapped address, even of a public one
        "http://[2002:7f00:1::]/cb",
        "http://[2002:a9fe:a9fe::]/cb",
        "http://[64:ff9b::10.0.0.5]/cb",
        "http://2130706433/cb",
        "http://0x7f000001/cb",
        "http://0x7f.1/cb",
        "http://127.1/cb",
        "http://017700000001/cb",
        "https://user:secret@public.example/cb",
        "ftp://public.example/cb",
        "file:///etc/passwd",
    ],
)
def test_urls_that_can_never_be_valid_are_refused_for_good(url: str) -> None:
    recorder = Recorder()

    with pytest.raises(DeliveryFailed) as refused:
        sender(recorder).send(url, BODY, HEADERS)

    assert refused.value.permanent
    assert "refused" in str(refused.value)
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("private.example", "10.0.0.5"),
        ("shared.example", "100.64.12.1"),
        ("metadata.example", "169.254.169.254"),
        ("mapped.example", "::ffff:"),
        ("mapped-private.example", "::ffff:"),
        ("mapped-public.example", "IPv4-mapped"),
        ("ula.example", "fd12:3456::1"),
        ("linklocal6.example", "fe80::1"),
        ("multicast.example", "239.1.2.3"),
        ("loopback.example", "127.0.0.1"),
        ("loopback6.example", "::1"),
        ("sixtofour.example", "10.0.0.5"),
        ("nat64.example", "169.254.169.254"),
        ("mixed.example", "10.0.0.5"),
        ("unspecified.example", "0.0.0.0"),  # noqa: S104
    ],
)
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_name_that_resolves_to_a_non_public_address_is_refused(host: str, address: str, scheme: str) -> None:
    recorder = Recorder()

    with pytest.raises(DeliveryFailed) as refused:
        sender(recorder).send(f"{scheme}://{host}/outcome", BODY, HEADERS)

    assert f"refused: {host} resolves to" in str(refused.value)
    assert address in str(refused.value)
    assert not refused.value.permanent  # names can be fixed: retried, then the DLQ
    assert recorder.requests == []


def test_the_sandbox_setting_allows_loopback_and_nothing_else() -> None:
    recorder = Recorder()
    allowing = sender(recorder, allow_loopback=True, names={**DNS, "localhost": ["127.0.0.1", "::1"]})

    for url in ["http://127.0.0.1:9/cb", "http://localhost:9/cb", "http://loopback.example/cb", "http://[::1]/cb"]:
        assert allowing.send(url, BODY, HEADERS) == 200
    for url in [
        "http://10.0.0.5/cb",
        "http://169.254.169.254/",
        "http://mapped.example/cb",
        "http://metadata.example/",
        "http://[::ffff:127.0.0.1]/cb",
    ]:
        with pytest.raises(DeliveryFailed):
            allowing.send(url, BODY, HEADERS)
    assert len(recorder.requests) == 4


def test_an_unresolvable_name_is_a_retryable_failure() -> None:
    with pytest.raises(DeliveryFailed) as failed:
        sender(Recorder()).send("https://nowhere.example/cb", BODY, HEADERS)

    assert "cannot resolve nowhere.example" in str(failed.value)
    assert not failed.value.permanent


# --- connects to the address it checked


@pytest.mark.parametrize(("host", "netloc"), [("public.example", PUBLIC_V4), ("public6.example", f"[{PUBLIC_V6}]")])
def test_https_goes_to_the_checked_address_with_the_name_for_tls(host: str, netloc: str) -> None:
    recorder = Recorder(status=204)

    status = sender(recorder).send(f"https://{host}/hooks/outcome.php?x=1&y=2", BODY, HEADERS)

    assert status == 204
    (request,) = recorder.requests
    assert str(request.url) == f"https://{netloc}/hooks/outcome.php?x=1&y=2"
    assert request.headers["host"] == host
    assert request.extensions["sni_hostname"] == host  # TLS sends and verifies the name, not the IP
    assert request.method == "POST"
    assert request.content == BODY
    assert request.headers["x-callbridge-signature"] == "t=1,v1=00"


def test_http_goes_to_the_checked_address_with_the_name_in_host() -> None:
    recorder = Recorder()

    sender(recorder).send("http://public.example:8080/cb", BODY, HEADERS)

    (request,) = recorder.requests
    assert str(request.url) == f"http://{PUBLIC_V4}:8080/cb"
    assert request.headers["host"] == "public.example:8080"
    assert "sni_hostname" not in request.extensions


def test_the_name_is_looked_up_once_so_a_rebinding_dns_cannot_redirect_the_connection() -> None:
    class Rebinding(Resolver):
        def __call__(self, host: str, port: int, *args: Any) -> list[tuple[Any, ...]]:
            # Public for the check, loopback for anyone who asks again.
            self.names[host] = [PUBLIC_V4] if not self.lookups else ["127.0.0.1"]
            return super().__call__(host, port, *args)

    resolver, recorder = Rebinding({}), Recorder()
    delivery = CallbackSender(resolve=resolver, transport=recorder.transport())

    delivery.send("https://rebind.example/cb", BODY, HEADERS)

    assert resolver.lookups == ["rebind.example"]
    assert recorder.requests[0].url.host == PUBLIC_V4


# --- real connections, on 127.0.0.1 only


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A callback receiver on 127.0.0.1 that answers by path: /redirect → 302, /slow → never, /trickle → 200 a byte
    at a time, else 200."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.seen: list[Seen] = []
        self.server_names: list[str | None] = []
        self.release = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                receiver.seen.append(Seen("POST", self.path, dict(self.headers), self.rfile.read(length)))
                if self.path.startswith("/slow"):
                    receiver.release.wait(5)
                    return
                if self.path.startswith("/trickle"):
                    # the status line and a header a byte at a time, each well within a read timeout, for 4 s
                    answer = b"HTTP/1.1 200 OK\r\nX-Trickle: " + b"a" * 80 + b"\r\nContent-Length: 0\r\n\r\n"
                    for byte in answer:
                        if receiver.release.wait(0.04):
                            return
                        self.wfile.write(bytes([byte]))
                    return
                if self.path.startswith("/redirect"):
                    self.send_response(302)
                    self.send_header("Location", "/elsewhere")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if context is not None:

            def remember(sock: ssl.SSLSocket, name: str | None, _context: ssl.SSLContext) -> None:
                self.server_names.append(name)

            context.sni_callback = remember  # type: ignore[assignment]  # typeshed types it for SSLObject
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def test_delivers_to_a_local_receiver_when_loopback_is_allowed(receiver: Receiver) -> None:
    names = {"callback.test": ["127.0.0.1"]}
    delivery = CallbackSender(allow_loopback=True, resolve=Resolver(names))

    status = delivery.send(f"http://callback.test:{receiver.port}/hook?a=1", BODY, HEADERS)

    assert status == 200
    (seen,) = receiver.seen
    assert seen.path == "/hook?a=1"
    assert seen.headers["Host"] == f"callback.test:{receiver.port}"
    assert seen.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert seen.headers["User-Agent"].startswith("callbridge-notifier/")
    assert seen.body == BODY


def test_the_same_receiver_is_refused_without_the_sandbox_setting(receiver: Receiver) -> None:
    with pytest.raises(DeliveryFailed):
        CallbackSender().send(f"http://127.0.0.1:{receiver.port}/hook", BODY, HEADERS)

    assert receiver.seen == []


def test_redirects_are_not_followed(receiver: Receiver) -> None:
    status = CallbackSender(allow_loopback=True).send(f"http://127.0.0.1:{receiver.port}/redirect", BODY, HEADERS)

    assert status == 302
    assert [s.path for s in receiver.seen] == ["/redirect"]


def test_a_receiver_that_does_not_answer_times_out(receiver: Receiver) -> None:
    with pytest.raises(DeliveryFailed) as failed:
        CallbackSender(allow_loopback=True, timeout=0.2).send(f"http://127.0.0.1:{receiver.port}/slow", BODY, HEADERS)

    assert "timed out" in str(failed.value)
    assert not failed.value.permanent


def test_a_receiver_that_trickles_its_answer_times_out_as_a_whole(receiver: Receiver) -> None:
    # each byte comes well within the timeout, the whole answer long after it
    with pytest.raises(DeliveryFailed) as failed:
        CallbackSender(allow_loopback=True, timeout=0.5).send(
            f"http://127.0.0.1:{receiver.port}/trickle", BODY, HEADERS
        )

    assert "timed out" in str(failed.value)
    assert not failed.value.permanent


def test_a_closed_port_is_a_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DeliveryFailed) as failed:
        CallbackSender(allow_loopback=True).send(f"http://127.0.0.1:{port}/cb", BODY, HEADERS)

    assert "cannot connect to 127.0.0.1" in str(failed.value)


# --- https: the connection goes to the IP, TLS still checks the name


@dataclass
class Certificates:
    authority: Path
    chain: Path
    key: Path


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A private CA and a server certificate for callback.test only (nothing is trusted by default)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "callbridge test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "callback.test")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("callback.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    files = Certificates(folder / "ca.pem", folder / "leaf.pem", folder / "leaf.key")
    files.authority.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files


@pytest.fixture
def tls_receiver(certificates: Certificates) -> Iterator[Receiver]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates.chain, certificates.key)
    server = Receiver(context)
    yield server
    server.close()


def _trusting(certificates: Certificates) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certificates.authority))
    assert context.check_hostname
    return context


def test_https_to_the_checked_ip_still_verifies_the_certificate_name(
    tls_receiver: Receiver, certificates: Certificates
) -> None:
    resolver = Resolver({"callback.test": ["127.0.0.1"]})
    delivery = CallbackSender(allow_loopback=True, resolve=resolver, verify=_trusting(certificates))

    status = delivery.send(f"https://callback.test:{tls_receiver.port}/hook", BODY, HEADERS)

    assert status == 200
    assert tls_receiver.server_names == ["callback.test"]
    assert tls_receiver.seen[0].headers["Host"] == f"callback.test:{tls_receiver.port}"


def test_https_refuses_a_certificate_for_another_name(tls_receiver: Receiver, certificates: Certificates) -> None:
    resolver = Resolver({"impostor.test": ["127.0.0.1"]})
    delivery = CallbackSender(allow_loopback=True, resolve=resolver, verify=_trusting(certificates))

    with pytest.raises(DeliveryFailed) as failed:
        delivery.send(f"https://impostor.test:{tls_receiver.port}/hook", BODY, HEADERS)

    assert "certificate" in str(failed.value).lower() or "hostname" in str(failed.value).lower()
    assert tls_receiver.seen == []


# --- at intake: the same never-valid URLs are a 400 naming callback_url


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/cb",
        "http://localhost:8080/cb",
        "https://api.localhost/cb",
        "http://10.1.2.3/cb",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/cb",
        "http://[fd00::1]/cb",
        "http://[::ffff:127.0.0.1]/cb",
        "http://[ff02::1]/cb",
        "http://2130706433/cb",
        "http://0x7f.1/cb",
        "https://user:password@hooks.example.com/cb",
        "https://:token@hooks.example.com/cb",
    ],
)
def test_intake_refuses_callback_urls_that_can_never_be_valid(url: str) -> None:
    with pytest.raises(InvalidRequest) as invalid:
        parse_call_request({**MINIMAL, "callback_url": url})

    ((name, message),) = [(p.field, p.message) for p in invalid.value.problems]
    assert name == "callback_url"
    assert message.startswith("must be a public http(s) URL: ")


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/outcome.php",
        "http://93.184.216.34:8080/cb?x=1",
        "https://[2606:4700:4700::1111]/cb",
        "https://private.example/cb",  # names are checked, with their addresses, at delivery
    ],
)
def test_intake_accepts_public_and_named_callback_urls(url: str) -> None:
    assert parse_call_request({**MINIMAL, "callback_url": url}).callback_url == url


def test_intake_allows_loopback_only_with_the_sandbox_setting() -> None:
    local = {**MINIMAL, "callback_url": "http://127.0.0.1:8099/cb"}

    assert parse_call_request(local, allow_loopback_callbacks=True).callback_url == "http://127.0.0.1:8099/cb"
    with pytest.raises(InvalidRequest):
        parse_call_request(local)
    with pytest.raises(InvalidRequest):
        parse_call_request({**MINIMAL, "callback_url": "http://10.0.0.5/cb"}, allow_loopback_callbacks=True)


def test_a_stored_request_is_not_judged_again() -> None:
    from callbridge.domain.requests import CallRequest

    # Webhooks re-read the stored request; a sandbox call's loopback callback must still load.
    stored = CallRequest.model_validate({**MINIMAL, "callback_url": "http://127.0.0.1:8099/cb"})

    assert stored.callback_url == "http://127.0.0.1:8099/cb"
    assert ipaddress.ip_address("127.0.0.1").is_loopback
