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
