"""SMS through the Messages API: queued → sent → delivered (undelivered for numbers ending in 4), with Twilio's
message status callbacks (`MessageStatus`) to the message's StatusCallback at each step."""

from __future__ import annotations

import threading
import time

from sandbox.carrier.context import Context
from sandbox.carrier.model import API_VERSION, Message, WebhookRecord, outcome_for
from sandbox.carrier.webhooks import Reply

FINAL = ("delivered", "undelivered", "failed")


def message_done(message: Message) -> bool:
    """The SMS reached a final status and its callbacks were delivered."""
    return message.status in FINAL and message.pending == 0


class Messaging:
    """Plays SMS out on the timer thread."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self.cond = threading.Condition()  # notified on every status change and delivered callback

    def send(self, message: Message) -> None:
        """Start a message's way to the handset."""
        step = self._ctx.timings.sms_delivery / self._ctx.speed
        final = "undelivered" if outcome_for(message.to) == "failed" else "delivered"

        def advance(status: str) -> None:
            if self._ctx.stopping:
                return
            with self.cond:
                message.status = status
                if status == "sent":
                    message.sent = time.time()
                if status == "undelivered":
                    message.error_code = 30003  # unreachable destination handset
                self.cond.notify_all()
            self._ctx.log(message, f"SMS {status}")
            self._status_callback(message, status)
            if status == "sent":
                self._ctx.timers.call_later(step, lambda: advance(final))

        self._ctx.log(message, f'SMS queued "{message.body[:40]}"')
        self._ctx.timers.call_later(step, lambda: advance("sent"))

    def stop(self) -> None:
        """Wake anyone waiting for messages."""
        with self.cond:
            self.cond.notify_all()

    def _status_callback(self, message: Message, status: str) -> None:
        url = message.params.get("StatusCallback", [""])[-1]
        if not url:
            return
        params = {
            "MessageSid": message.sid,
            "SmsSid": message.sid,
            "AccountSid": message.account_sid,
            "From": message.from_,
            "To": message.to,
            "MessageStatus": status,
            "SmsStatus": status,
            "ApiVersion": API_VERSION,
        }
        if message.error_code:
            params["ErrorCode"] = str(message.error_code)
        record = WebhookRecord("message", url, "POST", params)
        message.callbacks.append(record)
        with self.cond:
            message.pending += 1
        self._ctx.outbox.submit(message.sid, record, lambda rec, reply: self._delivered(message, reply))

    def _delivered(self, message: Message, reply: Reply) -> None:
        with self.cond:
            message.pending -= 1
            self.cond.notify_all()
