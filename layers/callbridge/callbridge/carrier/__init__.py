"""Carriers: the port and its carrier-neutral types here; adapters (e.g. `callbridge.carrier.twilio`) import on use."""

from callbridge.carrier.base import (
    DEFAULT_STATUS_EVENTS,
    Carrier,
    CarrierCall,
    CarrierError,
    CarrierRejected,
    CarrierRetryable,
    CarrierUncertain,
    CreateCall,
    SmsResult,
)

__all__ = [
    "DEFAULT_STATUS_EVENTS",
    "Carrier",
    "CarrierCall",
    "CarrierError",
    "CarrierRejected",
    "CarrierRetryable",
    "CarrierUncertain",
    "CreateCall",
    "SmsResult",
]
