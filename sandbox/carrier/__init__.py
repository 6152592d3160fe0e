"""A carrier simulator speaking Twilio Programmable Voice's REST and webhook protocol, for the sandbox and tests.

Calls play out by rules on the last digit of `To` (1 voicemail, 2 busy, 3 no answer, 4 failed, else a
person answers), fetch and follow the TwiML they are given, and report progress with signed status
callbacks, all in simulated time (`speed`) under a calls-per-second limit (`cps`).
"""

from sandbox.carrier.model import (
    Call,
    CreateRequest,
    FaultConfig,
    Message,
    Recording,
    Timings,
    WebhookRecord,
    outcome_for,
)
from sandbox.carrier.signature import twilio_signature, valid_signature
from sandbox.carrier.simulator import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, CarrierSimulator

__all__ = [
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "Call",
    "CarrierSimulator",
    "CreateRequest",
    "FaultConfig",
    "Message",
    "Recording",
    "Timings",
    "WebhookRecord",
    "outcome_for",
    "twilio_signature",
    "valid_signature",
]
