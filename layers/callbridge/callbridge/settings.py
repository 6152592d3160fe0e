"""Settings: one pydantic model per function, read from the environment once per cold start."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field

from callbridge.domain.dispatch import Timing


def _flag(value: str | None) -> bool:
    """An on/off environment variable: true, 1, yes or on (any case) is on; anything else, or unset, is off."""
    return (value or "").strip().lower() in ("true", "1", "yes", "on")


class DueIndexSettings(BaseModel):
    """How a function that writes calls places them in the due index: its shards and the scheduler's timing.

    Every such function is given the same values (template.yaml's ScheduleShards and Reconcile* parameters), so
    that whichever writes a call, its entry is in a shard the scheduler queries and no later than the time the
    scheduler acts at (the scheduler leaves an entry alone before its time, domain/dispatch.py).
    """

    model_config = ConfigDict(frozen=True)

    schedule_shards: int = Field(16, ge=1, le=64)
    # The template's Reconcile* parameters (the sandbox divides them by --speed, hence fractions).
    reconcile_ringing_after_seconds: float = Field(75, gt=0, le=3600)
    reconcile_answered_after_seconds: float = Field(120, gt=0, le=3600)
    reconcile_max_interval_seconds: float = Field(900, gt=0, le=3600)
    grace_seconds: int = Field(120, ge=30, le=900)

    @staticmethod
    def _index_env() -> dict[str, str]:
        env = os.environ
        names = {
            "schedule_shards": "SCHEDULE_SHARDS",
            "grace_seconds": "DISPATCH_GRACE_SECONDS",
            "reconcile_ringing_after_seconds": "RECONCILE_RINGING_AFTER_SECONDS",
            "reconcile_answered_after_seconds": "RECONCILE_ANSWERED_AFTER_SECONDS",
            "reconcile_max_interval_seconds": "RECONCILE_MAX_INTERVAL_SECONDS",
        }
        return {field: env[name] for field, name in names.items() if env.get(name)}

    def timing(self) -> Timing:
        return Timing(
            grace=self.grace_seconds,
            ringing_after=self.reconcile_ringing_after_seconds,
            answered_after=self.reconcile_answered_after_seconds,
            max_interval=self.reconcile_max_interval_seconds,
        )


class ApiSettings(DueIndexSettings):
    """Settings of the api function."""

    model_config = ConfigDict(frozen=True)

    calls_table: str = Field(min_length=1)
    accounts_table: str = Field(min_length=1)
    calls_queue_url: str = Field(min_length=1)
    account_cache_seconds: int = Field(60, ge=0, le=900)
    login_failures_table: str = Field(min_length=1)
    suppressions_table: str = Field(min_length=1)
    # Listing a number raises the do-not-call mark on the carrier line's item there (adapters/pacing.py).
    pacing_table: str = Field(min_length=1)
    callback_allow_loopback: bool = False  # the sandbox sets it; template.yaml never does
    # DELETE /pcall/calls/{callid} ends calls at the carrier (read on first use only).
    carrier_base_url: str = "https://api.twilio.com"
    carrier_secret_id: str = ""

    @classmethod
    def from_env(cls) -> ApiSettings:
        env = os.environ
        return cls.model_validate(
            {
                **cls._index_env(),
                "calls_table": env.get("CALLS_TABLE", ""),
                "accounts_table": env.get("ACCOUNTS_TABLE", ""),
                "calls_queue_url": env.get("CALLS_QUEUE_URL", ""),
                "carrier_base_url": env.get("CARRIER_BASE_URL", "https://api.twilio.com"),
                "carrier_secret_id": env.get("CARRIER_SECRET_ID", ""),
                "account_cache_seconds": env.get("ACCOUNT_CACHE_SECONDS", "60"),
                "login_failures_table": env.get("LOGIN_FAILURES_TABLE", ""),
                "suppressions_table": env.get("SUPPRESSIONS_TABLE", ""),
                "pacing_table": env.get("PACING_TABLE", ""),
                "callback_allow_loopback": _flag(env.get("CALLBACK_ALLOW_LOOPBACK")),
            }
        )


class CarrierSettings(DueIndexSettings):
    """Where the carrier is and how fast it may be called (shared by placer and webhooks)."""

    model_config = ConfigDict(frozen=True)

    calls_table: str = Field(min_length=1)
    accounts_table: str = Field(min_length=1)
    pacing_table: str = Field(min_length=1)
    suppressions_table: str = Field(min_length=1)
    carrier_base_url: str = Field(min_length=1)
    carrier_secret_id: str = Field(min_length=1)
    carrier_cps: float = Field(1, gt=0)

    @classmethod
    def _env(cls) -> dict[str, str]:
        env = os.environ
        return {
            **cls._index_env(),
            "calls_table": env.get("CALLS_TABLE", ""),
            "accounts_table": env.get("ACCOUNTS_TABLE", ""),
            "pacing_table": env.get("PACING_TABLE", ""),
            "suppressions_table": env.get("SUPPRESSIONS_TABLE", ""),
            "carrier_base_url": env.get("CARRIER_BASE_URL", "https://api.twilio.com"),
            "carrier_secret_id": env.get("CARRIER_SECRET_ID", ""),
            "carrier_cps": env.get("CARRIER_CPS", "1"),
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


class NotifierSettings(DueIndexSettings):
    """Settings of the notifier function."""

    model_config = ConfigDict(frozen=True)

    calls_table: str = Field(min_length=1)
    accounts_table: str = Field(min_length=1)
    notifications_queue_url: str = Field(min_length=1)
    notifications_dead_letter_url: str = Field(min_length=1)
    callback_timeout_seconds: float = Field(10.0, gt=0, le=30)
    callback_allow_loopback: bool = False  # the sandbox sets it; template.yaml never does
    account_cache_seconds: int = Field(60, ge=0, le=900)

    @classmethod
    def from_env(cls) -> NotifierSettings:
        env = os.environ
        return cls.model_validate(
            {
                **cls._index_env(),
                "calls_table": env.get("CALLS_TABLE", ""),
                "accounts_table": env.get("ACCOUNTS_TABLE", ""),
                "notifications_queue_url": env.get("NOTIFICATIONS_QUEUE_URL", ""),
                "notifications_dead_letter_url": env.get("NOTIFICATIONS_DEAD_LETTER_URL", ""),
                "callback_timeout_seconds": env.get("CALLBACK_TIMEOUT_SECONDS", "10"),
                "callback_allow_loopback": _flag(env.get("CALLBACK_ALLOW_LOOPBACK")),
                "account_cache_seconds": env.get("ACCOUNT_CACHE_SECONDS", "60"),
            }
        )


class SchedulerSettings(DueIndexSettings):
    """Settings of the scheduler function (scheduled dispatch and reconciliation)."""

    model_config = ConfigDict(frozen=True)

    calls_table: str = Field(min_length=1)
    calls_queue_url: str = Field(min_length=1)
    calls_dead_letter_queue_url: str = Field(min_length=1)
    carrier_base_url: str = Field(min_length=1)
    carrier_secret_id: str = Field(min_length=1)
    # The rule fires once a minute, give or take its jitter: dispatch what is due before the run after next
    # could start. At most 900 s minus a run's length, the longest SQS delay.
    lookahead_seconds: int = Field(90, ge=61, le=840)
    workers: int = Field(32, ge=1, le=128)

    @classmethod
    def from_env(cls) -> SchedulerSettings:
        env = os.environ
        values = {
            **cls._index_env(),
            "calls_table": env.get("CALLS_TABLE", ""),
            "calls_queue_url": env.get("CALLS_QUEUE_URL", ""),
            "calls_dead_letter_queue_url": env.get("CALLS_DEAD_LETTER_QUEUE_URL", ""),
            "carrier_base_url": env.get("CARRIER_BASE_URL", "https://api.twilio.com"),
            "carrier_secret_id": env.get("CARRIER_SECRET_ID", ""),
        }
        optional = {
            "lookahead_seconds": "DISPATCH_LOOKAHEAD_SECONDS",
            "workers": "SCHEDULER_WORKERS",
        }
        values.update({field: env[name] for field, name in optional.items() if env.get(name)})
        return cls.model_validate(values)


class CampaignSettings(BaseModel):
    """Where campaigns live (read by the api, the placer and the campaigns function)."""

    model_config = ConfigDict(frozen=True)

    campaigns_table: str = Field(min_length=1)
    campaigns_queue_url: str = Field(min_length=1)
    carrier_cps: float = Field(1, gt=0)

    @staticmethod
    def _env() -> dict[str, str]:
        env = os.environ
        return {
            "campaigns_table": env.get("CAMPAIGNS_TABLE", ""),
            "campaigns_queue_url": env.get("CAMPAIGNS_QUEUE_URL", ""),
            "carrier_cps": env.get("CARRIER_CPS", "1"),
        }

    @classmethod
    def from_env(cls) -> CampaignSettings:
        return cls.model_validate(cls._env())


class CampaignWorkerSettings(CampaignSettings, DueIndexSettings):
    """Settings of the campaigns function."""

    calls_table: str = Field(min_length=1)
    accounts_table: str = Field(min_length=1)
    calls_queue_url: str = Field(min_length=1)
    callback_allow_loopback: bool = False  # the sandbox sets it; template.yaml never does

    @classmethod
    def from_env(cls) -> CampaignWorkerSettings:
        env = os.environ
        return cls.model_validate(
            {
                **cls._env(),
                **cls._index_env(),
                "calls_table": env.get("CALLS_TABLE", ""),
                "accounts_table": env.get("ACCOUNTS_TABLE", ""),
                "calls_queue_url": env.get("CALLS_QUEUE_URL", ""),
                "callback_allow_loopback": _flag(env.get("CALLBACK_ALLOW_LOOPBACK")),
            }
        )
