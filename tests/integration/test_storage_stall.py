"""A stalled AWS endpoint costs a request a 503 with Retry-After, never the function's whole timeout.

The endpoint here accepts connections and never answers, as a frozen DynamoDB or a black-holed network path
does. botocore's defaults (60 s to connect, 60 s to read, several attempts) would hang the API past its 10-s
Lambda timeout; callbridge's clients give up within their budget.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from callbridge.adapters import aws as aws_clients

from sandbox.template import Stack, load_template
from tests.conftest import ApiClient, fresh_module
from tests.integration.conftest import MINIMAL

SHORTEST_TIMEOUT = load_template()["Globals"]["Function"]["Timeout"]  # the API's and the webhooks' (10 s)


class StalledEndpoint:
    """A TCP server that accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self.connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self._server.settimeout(0.1)
        while not self._stop.is_set():
            try:
                connection, _ = self._server.accept()
            except TimeoutError:
                continue
            self.connections.append(connection)  # held open, never answered

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for connection in self.connections:
            connection.close()
        self._server.close()


@pytest.fixture
def stalled(monkeypatch: pytest.MonkeyPatch) -> Iterator[StalledEndpoint]:
    endpoint = StalledEndpoint()
    for name, value in {
        "AWS_ENDPOINT_URL": endpoint.url,
        "AWS_ACCESS_KEY_ID": "stalled",
        "AWS_SECRET_ACCESS_KEY": "stalled",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    aws_clients.client.cache_clear()  # clients are built once per container: this container's point at the stall
    yield endpoint
    aws_clients.client.cache_clear()
    endpoint.close()


@pytest.fixture
def api_on_stall(stalled: StalledEndpoint) -> ModuleType:
    # The API function's environment as the template gives it (names only: nothing answers at the endpoint).
    env = Stack(template=load_template(), prefix="stalled").environment("ApiFunction")
    return fresh_module("functions.api.app", env)


def test_a_storage_stall_answers_503_with_retry_after(api_on_stall: ModuleType, stalled: StalledEndpoint) -> None:
    # when: a request needs storage (its credentials are looked up first), and storage never answers
    response = ApiClient(api_on_stall, auth=("cb_someone", "secret")).post_call(MINIMAL)

    # then: a 503 in the envelope, with Retry-After, after the client's few attempts
    assert response.status == 503
    assert response.headers["Retry-After"]
    assert response.json == {"data": {"code": 503, "code_desc": "temporarily unavailable, please retry"}}
    assert 1 <= len(stalled.connections) <= aws_clients.ATTEMPTS


def test_no_attempt_starts_that_could_end_after_the_deadline(stalled: StalledEndpoint) -> None:
    # given: an invocation with room for one attempt only (a previous call used most of its time)
    from callbridge.adapters.dynamodb.accounts import DynamoAccountsStore
    from callbridge.domain.errors import ServiceUnavailable

    store = DynamoAccountsStore("callbridge-AccountsTable")

    # when: storage stalls
    with aws_clients.deadline(aws_clients.attempt_seconds() + 1.0), pytest.raises(ServiceUnavailable) as caught:
        store.get_account("cb_someone")

    # then: it gives up for lack of time, before a second attempt that would outlive the function
    assert "no time left for another attempt" in str(caught.value)
    assert len(stalled.connections) <= 1


def test_a_blip_is_retried_within_the_shortest_function_timeout() -> None:
    # Two stalled attempts and the standard retry mode's first backoff (at most 1 s) fit in the API's 10 s with
    # the margin; the deadline stops a third one that would not (previous test).
    two_attempts = 2 * aws_clients.attempt_seconds() + 1

    assert two_attempts + aws_clients.DEADLINE_MARGIN_SECONDS <= SHORTEST_TIMEOUT
    assert (aws_clients.CONNECT_TIMEOUT, aws_clients.READ_TIMEOUT, aws_clients.ATTEMPTS) == (1.0, 2.0, 3)


def test_the_clients_carry_the_timeouts(stalled: StalledEndpoint) -> None:
    config = aws_clients.client("dynamodb").meta.config

    assert (config.connect_timeout, config.read_timeout) == (1.0, 2.0)
    assert config.retries["total_max_attempts"] == 3


def test_a_secrets_manager_stall_ends_within_the_deadline_and_a_warm_container_keeps_its_credentials(
    stalled: StalledEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The carrier secret is read through Powertools, whose own client has botocore's defaults (60 s to read, up to 5
    # attempts): a stalled Secrets Manager would hold a webhook past the carrier's 15 s and a placer past its
    # Timeout, with a call claimed and never dialed. It must be held to the same budget as every other AWS call.
    from aws_lambda_powertools.utilities.parameters.base import DEFAULT_PROVIDERS  # type: ignore[attr-defined]
    from callbridge.adapters import secrets
    from callbridge.domain.errors import ServiceUnavailable

    monkeypatch.setattr(secrets, "_last_read", {"warm": secrets.CarrierCredentials("AC1", "kept")})
    saved = DEFAULT_PROVIDERS.pop("secrets", None)  # a cold container: no provider built yet
    outcomes: dict[str, Any] = {}

    def read() -> None:
        with aws_clients.deadline(SHORTEST_TIMEOUT - aws_clients.DEADLINE_MARGIN_SECONDS):
            try:
                secrets.carrier_credentials("cold")
            except ServiceUnavailable as exc:
                outcomes["cold"] = exc
            outcomes["warm"] = secrets.carrier_credentials("warm")

    started = time.monotonic()
    reader = threading.Thread(target=read, daemon=True)
    try:
        reader.start()
        reader.join(timeout=2 * SHORTEST_TIMEOUT + 5)
    finally:  # the provider built on the stalled endpoint is not for the next test
        DEFAULT_PROVIDERS.pop("secrets", None)
        if saved is not None:
            DEFAULT_PROVIDERS["secrets"] = saved

    # then: both reads ended within the invocation's time, the cold one a 503 and the warm one with what it had
    assert not reader.is_alive(), "the secret read was still waiting on a stalled Secrets Manager"
    assert time.monotonic() - started <= SHORTEST_TIMEOUT
    assert isinstance(outcomes.get("cold"), ServiceUnavailable)
    assert outcomes.get("warm") == secrets.CarrierCredentials("AC1", "kept")
