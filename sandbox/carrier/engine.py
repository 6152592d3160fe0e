"""The simulator's machinery, assembled: CPS dispatcher, call lifecycle, TwiML interpreter, callbacks and SMS.

The REST API and the simulator's Python API use it through this one object.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterable

from sandbox.carrier.callbacks import Callbacks
from sandbox.carrier.context import Context
from sandbox.carrier.dispatch import Dispatcher
from sandbox.carrier.interpreter import Interpreter
from sandbox.carrier.lifecycle import CallLifecycle
from sandbox.carrier.model import Call, FaultConfig, LogHook, Message, Press, Recording, Timings
from sandbox.carrier.sms import Messaging
from sandbox.carrier.webhooks import Outbox, Timers, WebhookClient


class Engine:
    """Runs calls and messages; shared by the REST front end and the simulator's Python API."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        speed: float,
        cps: float | None,
        timings: Timings,
        press: Press,
        faults: FaultConfig | None,
        seed: int | None,
        log: LogHook | None,
        base_url: Callable[[], str],
        numbers: Iterable[str] = (),
    ) -> None:
        # Without a seed, faults are still reproducible: the log names the seed drawn for this run.
        self.seed = seed if seed is not None else secrets.randbits(32)
        client = WebhookClient(auth_token)
        self.ctx = Context(
            account_sid=account_sid,
            speed=speed,
            timings=timings,
            press=press,
            base_url=base_url,
            client=client,
            outbox=Outbox(client),
            timers=Timers(),
            log_hook=log,
            numbers=frozenset(numbers),
        )
        self.callbacks = Callbacks(self.ctx, faults, self.seed)
        self.interpreter = Interpreter(self.ctx, self.callbacks)
        self.lifecycle = CallLifecycle(self.ctx, self.callbacks, self.interpreter)
        self.dispatcher = Dispatcher(cps, self.lifecycle.run, self.ctx.log)
        self.messaging = Messaging(self.ctx)

    @property
    def recordings(self) -> dict[str, Recording]:
        """Every recording made, by sid."""
        return self.ctx.recordings

    @property
    def messages_cond(self) -> threading.Condition:
        """Notified whenever a message changes status or a message callback is delivered."""
        return self.messaging.cond

    def log(self, call: Call | Message, text: str) -> None:
        """One line for the log hook."""
        self.ctx.log(call, text)

    def next_slot(self, now: float) -> float:
        """The monotonic time the CPS limit lets a call created `now` start; reserves it."""
        return self.dispatcher.next_slot(now)

    def enqueue(self, call: Call) -> None:
        """Start a new call at its CPS slot."""
        self.callbacks.track(call)
        self.dispatcher.enqueue(call)

    def cancel_queued(self, call: Call) -> bool:
        """Cancel a call still waiting for its CPS slot (no callbacks); False when it has started."""
        return self.dispatcher.cancel_queued(call)

    def send_message(self, message: Message) -> None:
        """Start an SMS on its way."""
        self.messaging.send(message)

    def stop(self) -> None:
        """End every call without further callbacks, then stop the threads and the HTTP client."""
        self.ctx.stopping = True
        for call in self.dispatcher.stop():
            self.ctx.wake(call)
        self.dispatcher.join()
        self.ctx.timers.stop()
        self.ctx.outbox.stop()
        self.ctx.client.close()
        self.messaging.stop()
