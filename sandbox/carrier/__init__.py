"""A carrier simulator speaking Twilio Programmable Voice's REST and webhook protocol, for the sandbox and tests.

Calls play out by rules on the last digit of `To` (1 voicemail, 2 busy, 3 no answer, 4 failed, else a
person answers), fetch and follow the TwiML they are given, and report progress with signed status
callbacks, all in simulated time (`speed`) under a calls-per-second limit (`cps`).

It refuses what Twilio refuses, so a client's mistake fails against it too: a `From` the account does not
own, a `<Say>` voice Twilio does not have or a language no voice speaks, a `<Dial callerId>` that is not the
call's or the account's; a conference nobody joins is never bridged, and `AnsweredBy` comes only where Twilio
sends it. Each rule names its source where it is implemented (`rest`, `interpreter`, `voices`, `callbacks`).
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
