"""What every part of the simulator shares: its settings, the event log, and a call's simulated time.

A live call runs on its own thread and lets simulated time pass with `Context.sleep` (real seconds are simulated
seconds divided by `speed`). A REST update (hang-up, redirect), a conference join or the simulator stopping wakes
the thread early; `sleep` then raises the matching control exception for the call's thread to act on.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sandbox.carrier.model import Call, LogHook, Message, Press, Recording, Timings
from sandbox.carrier.webhooks import Outbox, Timers, WebhookClient

DEFAULT_TIME_LIMIT = 4 * 3600  # seconds an answered call may last (Twilio's default TimeLimit)


class Ended(Exception):
    """The call ends now with `status` (completed, canceled, busy, ...)."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


class Redirected(Exception):
    """A REST update gave the live call new TwiML: stop the current document."""


class Shutdown(Exception):
    """The simulator is stopping: end the call without further callbacks."""


def number(value: str | None, default: float) -> float:
    """A numeric TwiML attribute or create parameter; `default` when absent or not a number."""
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        return default


def truthy(value: str | None) -> bool:
    """Twilio's boolean parameters: `true` (any case)."""
    return (value or "").strip().lower() == "true"


@dataclass
class Context:
    """The simulator's settings and shared state, handed to each of its parts."""

    account_sid: str
    speed: float
    timings: Timings
    press: Press
    base_url: Callable[[], str]  # where the simulator is reached (for RecordingUrl)
    client: WebhookClient  # synchronous webhooks (TwiML fetches)
    outbox: Outbox  # asynchronous webhooks, in order per call
    timers: Timers  # delayed work (async AMD, delayed callbacks, SMS steps)
    log_hook: LogHook | None = None
    numbers: frozenset[str] = frozenset()  # the account's own numbers: the only valid `From` (and callerId)
    recordings: dict[str, Recording] = field(default_factory=dict)
    stopping: bool = False

    def log(self, call: Call | Message, text: str) -> None:
        """One human-readable line per event for the log hook; a failing hook never breaks a call."""
        if self.log_hook is None:
            return
        with contextlib.suppress(Exception):
            self.log_hook(f"{call.sid[:8]}… {call.to} {text}")

    def sleep(self, call: Call, seconds: float, until: Callable[[], bool] | None = None) -> bool:
        """Let `seconds` of simulated time pass on the call; True when `until` came true first.

        Nominal step times are what the call is billed for (durations stay exact whatever the
        machine's load); an interrupted step counts the simulated time that really passed.
        Raises when the call is hung up, redirected, over its time limit, or the simulator stops.
        """
        over_limit = False
        if call.answer_clock is not None:
            limit = call.answer_clock + number(call.param("TimeLimit"), DEFAULT_TIME_LIMIT)
            if call.clock + seconds > limit:
                seconds, over_limit = max(0.0, limit - call.clock), True
        start = time.monotonic()
        deadline = start + seconds / self.speed
        interrupted = False
        with call.cond:
            while True:
                interrupted = (
                    self.stopping
                    or call.hangup is not None
                    or call.redirect is not None
                    or (until is not None and until())
                )
                remaining = deadline - time.monotonic()
                if interrupted or remaining <= 0:
                    break
                call.cond.wait(remaining)
        call.clock += min(seconds, (time.monotonic() - start) * self.speed) if interrupted else seconds
        self.check(call)
        if over_limit:
            self.log(call, "time limit reached")
            raise Ended("completed")
        return interrupted

    def check(self, call: Call) -> None:
        """Raise what the call's control fields ask for: stop, hang up (or cancel), or follow a redirect."""
        if self.stopping:
            raise Shutdown
        if call.hangup is not None:
            raise Ended(call.hangup if call.answer_time is not None else "canceled")
        if call.redirect is not None and call.answer_time is not None:
            raise Redirected

    @staticmethod
    def wake(call: Call) -> None:
        """Make the call's thread look at its control fields now (hang-up, redirect, conference)."""
        with call.cond:
            call.cond.notify_all()
