"""Carrier credentials from Secrets Manager, through Powertools parameters (cached per container).

Powertools builds its Secrets Manager client with botocore's defaults (60 s to connect, 60 s to read, several
attempts): a stalled endpoint would hold a webhook or a placer past its Timeout. Its default provider is given
callbridge's client instead (adapters/aws.py: short timeouts, few attempts, none started past the deadline).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from callbridge.domain.errors import ServiceUnavailable

CACHE_SECONDS = 300


@dataclass(frozen=True)
class CarrierCredentials:
    account_sid: str
    auth_token: str = field(repr=False)  # never in a log line or an error message
    # While an auth token is rotated, the one the carrier may still sign webhooks with (see docs/runbook.md).
    previous_auth_token: str = field(default="", repr=False)

    @property
    def signing_tokens(self) -> tuple[str, ...]:
        """Tokens a webhook signature may be made with: the current one, then the previous one if set."""
        return tuple(t for t in (self.auth_token, self.previous_auth_token) if t)


# The last credentials read per secret: when a re-read fails (Secrets Manager unreachable), a warm container
# keeps the ones it has rather than refusing every webhook and carrier request.
_last_read: dict[str, CarrierCredentials] = {}


def _use_bounded_client() -> None:
    """Make Powertools' default Secrets Manager provider use the shared, time-bounded client (once per client)."""
    from aws_lambda_powertools.utilities.parameters.base import DEFAULT_PROVIDERS  # type: ignore[attr-defined]
    from aws_lambda_powertools.utilities.parameters.secrets import SecretsProvider

    from callbridge.adapters.aws import client

    bounded = client("secretsmanager")
    provider = DEFAULT_PROVIDERS.get("secrets")
    if provider is None or provider.client is not bounded:
        DEFAULT_PROVIDERS["secrets"] = SecretsProvider(boto3_client=bounded)


def carrier_credentials(secret_id: str) -> CarrierCredentials:
    """The carrier account SID and auth token(s) in the JSON secret `secret_id`, re-read every CACHE_SECONDS."""
    from aws_lambda_powertools.utilities import parameters

    try:
        _use_bounded_client()
        value: Any = parameters.get_secret(secret_id, transform="json", max_age=CACHE_SECONDS)
    except parameters.exceptions.GetParameterError as exc:
        if secret_id in _last_read:
            return _last_read[secret_id]
        raise ServiceUnavailable(f"carrier credentials unavailable: {exc}") from exc
    except parameters.exceptions.TransformParameterError as exc:
        raise ServiceUnavailable(f"carrier credentials unavailable: {exc}") from exc
    try:
        credentials = CarrierCredentials(
            account_sid=str(value["account_sid"]),
            auth_token=str(value["auth_token"]),
            previous_auth_token=str(value.get("previous_auth_token") or ""),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ServiceUnavailable("carrier secret must be JSON with account_sid and auth_token") from exc
    _last_read[secret_id] = credentials
    return credentials
