"""A rotated carrier auth token reaches warm containers: the client follows the secret."""

from __future__ import annotations

from typing import Any

import pytest
from callbridge.adapters.carrier_client import CurrentCarrier
from callbridge.adapters.secrets import CarrierCredentials

OLD = CarrierCredentials("AC1", "old-token")
NEW = CarrierCredentials("AC1", "new-token", previous_auth_token="old-token")


class FakeClient:
    def __init__(self, credentials: CarrierCredentials) -> None:
        self.credentials = credentials
        self.fetched: list[str] = []

    def fetch_call(self, sid: str) -> Any:
        self.fetched.append(sid)
        return None


def test_a_new_client_is_built_only_when_the_secret_changes() -> None:
    secret = {"value": OLD}
    built: list[FakeClient] = []

    def factory(credentials: CarrierCredentials, base_url: str) -> Any:
        assert base_url == "https://carrier.example"
        built.append(FakeClient(credentials))
        return built[-1]

    carrier = CurrentCarrier("sec", "https://carrier.example", credentials=lambda _id: secret["value"], factory=factory)

    carrier.fetch_call("CA1")
    carrier.fetch_call("CA2")
    secret["value"] = NEW
    carrier.fetch_call("CA3")

    assert [c.credentials.auth_token for c in built] == ["old-token", "new-token"]
    assert built[0].fetched == ["CA1", "CA2"]
    assert built[1].fetched == ["CA3"]


def test_signing_tokens_are_the_current_then_the_previous() -> None:
    assert OLD.signing_tokens == ("old-token",)
    assert NEW.signing_tokens == ("new-token", "old-token")


def test_a_warm_container_keeps_its_credentials_when_the_secret_cannot_be_re_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aws_lambda_powertools.utilities import parameters
    from callbridge.adapters import secrets as secrets_module
    from callbridge.domain.errors import ServiceUnavailable

    answers: list[Any] = [{"account_sid": "AC1", "auth_token": "tok"}]

    def get_secret(secret_id: str, **_: Any) -> Any:
        if not answers:
            raise parameters.exceptions.GetParameterError("unreachable")
        return answers.pop()

    monkeypatch.setattr(parameters, "get_secret", get_secret)
    monkeypatch.setattr(secrets_module, "_use_bounded_client", lambda: None)  # no Secrets Manager client needed
    monkeypatch.setattr(secrets_module, "_last_read", {})

    first = secrets_module.carrier_credentials("sec-1")
    assert secrets_module.carrier_credentials("sec-1") == first == CarrierCredentials("AC1", "tok")
    with pytest.raises(ServiceUnavailable):  # a secret never read: nothing to fall back on
        secrets_module.carrier_credentials("sec-2")
