"""Settings: one pydantic model per function, read from the environment once per cold start."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field


class ApiSettings(BaseModel):
    """Settings of the api function."""

    model_config = ConfigDict(frozen=True)

    calls_table: str = Field(min_length=1)
    accounts_table: str = Field(min_length=1)
    calls_queue_url: str = Field(min_length=1)
    schedule_shards: int = Field(16, ge=1, le=64)
    account_cache_seconds: int = Field(60, ge=0, le=900)

    @classmethod
    def from_env(cls) -> ApiSettings:
        env = os.environ
        return cls(
            calls_table=env.get("CALLS_TABLE", ""),
            accounts_table=env.get("ACCOUNTS_TABLE", ""),
            calls_queue_url=env.get("CALLS_QUEUE_URL", ""),
            schedule_shards=int(env.get("SCHEDULE_SHARDS", "16")),
            account_cache_seconds=int(env.get("ACCOUNT_CACHE_SECONDS", "60")),
        )


class CarrierSettings(BaseModel):
    """Where the carrier is and how fast it may be called (shared by placer and webhooks)."""

    model_config = ConfigDict(frozen=True)

    calls_table: str = Field(min_length=1)
    accounts_table: str = Field(min_length=1)
    pacing_table: str = Field(min_length=1)
    carrier_base_url: str = Field(min_length=1)
    carrier_secret_id: str = Field(min_length=1)
    carrier_cps: float = Field(1, gt=0)
    schedule_shards: int = Field(16, ge=1, le=64)

    @staticmethod
    def _env() -> dict[str, str]:
        env = os.environ
        return {
            "calls_table": env.get("CALLS_TABLE", ""),
            "accounts_table": env.get("ACCOUNTS_TABLE", ""),
            "pacing_table": env.get("PACING_TABLE", ""),
            "carrier_base_url": env.get("CARRIER_BASE_URL", "https://api.twilio.com"),
            "carrier_secret_id": env.get("CARRIER_SECRET_ID", ""),
            "carrier_cps": env.get("CARRIER_CPS", "1"),
            "schedule_shards": env.get("SCHEDULE_SHARDS", "16"),
        }

    @classmethod
    def from_env(cls) -> CarrierSettings:
        return cls.model_validate(cls._env())


class PlacerSettings(CarrierSettings):
    """Settings of the placer function."""

    calls_queue_url: str = Field(min_length=1)
    public_api_url: str = Field(min_length=1)
    speech_bucket: str = ""
    ring_timeout_seconds: int = Field(45, ge=5, le=600)

    @classmethod
    def from_env(cls) -> PlacerSettings:
        env = os.environ
        return cls.model_validate(
            {
                **cls._env(),
                "calls_queue_url": env.get("CALLS_QUEUE_URL", ""),
                "public_api_url": env.get("PUBLIC_API_URL", ""),
                "speech_bucket": env.get("SPEECH_BUCKET", ""),
                "ring_timeout_seconds": env.get("RING_TIMEOUT_SECONDS", "45"),
            }
        )
