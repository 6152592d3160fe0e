"""Settings: one pydantic model per function, read from the environment once per cold start."""

from __future__ import annotations

import os
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from callbridge.domain.dispatch import Timing

TWILIO_API = "https://api.twilio.com"
# A field is read from the variable of its name in capitals, but for these (the names template.yaml gives them).
_ENV_NAMES = {
    "grace_seconds": "DISPATCH_GRACE_SECONDS",
    "lookahead_seconds": "DISPATCH_LOOKAHEAD_SECONDS",
    "workers": "SCHEDULER_WORKERS",
}


def _flag(value: str | None) -> bool:
    """An on/off environment variable: true, 1, yes or on (any case) is on; anything else, or unset, is off."""
    return (value or "").strip().lower() in ("true", "1", "yes", "on")


class EnvSettings(BaseModel):
    """Settings read from the environment: each field from its variable; one unset or empty keeps the field's
    default (a field without one is then reported missing), and a bool field is on/off (`_flag`)."""

    model_config = ConfigDict(frozen=True)

    @classmethod
    def from_env(cls) -> Self:
        values: dict[str, Any] = {}
        for name, field in cls.model_fields.items():
            raw = os.environ.get(_ENV_NAMES.get(name, name.upper()))
            if field.annotation is bool:
                values[name] = _flag(raw)
            elif raw:
                values[name] = raw
        return cls.model_validate(values)


class DueIndexSettings(EnvSettings):
    """How a function that writes calls places them in the due index: its shards and the scheduler's timing.

    Every such function is given the same values (template.yaml's ScheduleShards and Reconcile* parameters), so
    that whichever writes a call, its entry is in a shard the scheduler queries and no later than the time the
    scheduler acts at (the scheduler leaves an entry alone before its time, domain/dispatch.py).
    """

    schedule_shards: int = Field(16, ge=1, le=64)
    # The template's Reconcile* parameters (the sandbox divides them by --speed, hence fractions).
    reconcile_ringing_after_seconds: float = Field(75, gt=0, le=3600)
    reconcile_answered_after_seconds: float = Field(120, gt=0, le=3600)
    reconcile_max_interval_seconds: float = Field(900, gt=0, le=3600)
    grace_seconds: int = Field(120, ge=30, le=900)

    def timing(self) -> Timing:
        return Timing(
            grace=self.grace_seconds,
            ringing_after=self.reconcile_ringing_after_seconds,
            answered_after=self.reconcile_answered_after_seconds,
            max_interval=self.reconcile_max_interval_seconds,
        )


class ApiSettings(DueIndexSettings):
    """Settings of the api function."""

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
    carrier_base_url: str = TWILIO_API
    carrier_secret_id: str = ""


class CarrierSettings(DueIndexSettings):
    """Where the carrier is and how fast it may be called (shared by placer and webhooks)."""

    calls_table: str = Field(min_length=1)
    accounts_table: str = Field(min_length=1)
    pacing_table: str = Field(min_length=1)
    suppressions_table: str = Field(min_length=1)
    carrier_base_url: str = Field(TWILIO_API, min_length=1)
    carrier_secret_id: str = Field(min_length=1)
    carrier_cps: float = Field(1, gt=0)


class PlacerSettings(CarrierSettings):
    """Settings of the placer function."""

    calls_queue_url: str = Field(min_length=1)
    public_api_url: str = Field(min_length=1)
    speech_bucket: str = ""
    ring_timeout_seconds: int = Field(45, ge=5, le=600)


class NotifierSettings(DueIndexSettings):
    """Settings of the notifier function."""

    calls_table: str = Field(min_length=1)
    accounts_table: str = Field(min_length=1)
    notifications_queue_url: str = Field(min_length=1)
    notifications_dead_letter_url: str = Field(min_length=1)
    callback_timeout_seconds: float = Field(10.0, gt=0, le=30)
    callback_allow_loopback: bool = False  # the sandbox sets it; template.yaml never does
    account_cache_seconds: int = Field(60, ge=0, le=900)


class SchedulerSettings(DueIndexSettings):
    """Settings of the scheduler function (scheduled dispatch and reconciliation)."""

    calls_table: str = Field(min_length=1)
    calls_queue_url: str = Field(min_length=1)
    calls_dead_letter_queue_url: str = Field(min_length=1)
    carrier_base_url: str = Field(TWILIO_API, min_length=1)
    carrier_secret_id: str = Field(min_length=1)
    # The rule fires once a minute, give or take its jitter: dispatch what is due before the run after next
    # could start. At most 900 s minus a run's length, the longest SQS delay.
    lookahead_seconds: int = Field(90, ge=61, le=840)
    workers: int = Field(32, ge=1, le=128)


class CampaignSettings(EnvSettings):
    """Where campaigns live (read by the api, the placer and the campaigns function)."""

    campaigns_table: str = Field(min_length=1)
    campaigns_queue_url: str = Field(min_length=1)
    carrier_cps: float = Field(1, gt=0)


class CampaignWorkerSettings(CampaignSettings, DueIndexSettings):
    """Settings of the campaigns function."""

    calls_table: str = Field(min_length=1)
    accounts_table: str = Field(min_length=1)
    calls_queue_url: str = Field(min_length=1)
    callback_allow_loopback: bool = False  # the sandbox sets it; template.yaml never does
