"""Carrier credentials from Secrets Manager, through Powertools parameters (cached per container)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from callbridge.domain.errors import ServiceUnavailable

CACHE_SECONDS = 300


@dataclass(frozen=True)
class CarrierCredentials:
    account_sid: str
    auth_token: str


def carrier_credentials(secret_id: str) -> CarrierCredentials:
    """The carrier account SID and auth token in the JSON secret `secret_id`."""
    from aws_lambda_powertools.utilities import parameters

    try:
        value: Any = parameters.get_secret(secret_id, transform="json", max_age=CACHE_SECONDS)
        return CarrierCredentials(account_sid=str(value["account_sid"]), auth_token=str(value["auth_token"]))
    except (parameters.exceptions.GetParameterError, parameters.exceptions.TransformParameterError) as exc:
        raise ServiceUnavailable(f"carrier credentials unavailable: {exc}") from exc
    except (KeyError, TypeError) as exc:
        raise ServiceUnavailable("carrier secret must be JSON with account_sid and auth_token") from exc
