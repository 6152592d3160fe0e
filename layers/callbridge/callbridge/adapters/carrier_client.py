"""The carrier client for the credentials in the carrier secret now, so a rotated auth token reaches warm
containers within minutes, without a redeploy (see docs/runbook.md)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from callbridge.adapters.secrets import CarrierCredentials, carrier_credentials
from callbridge.carrier.base import Carrier, CarrierCall, CreateCall, SmsResult


class CurrentCarrier:
    """A Carrier that reads the secret before each request (Powertools keeps it CACHE_SECONDS, so this costs
    no request) and builds a new client when the credentials changed."""

    def __init__(
        self,
        secret_id: str,
        base_url: str,
        *,
        credentials: Callable[[str], CarrierCredentials] = carrier_credentials,
        factory: Callable[[CarrierCredentials, str], Carrier] | None = None,
    ) -> None:
        self._secret_id = secret_id
        self._base_url = base_url
        self._credentials = credentials
        self._factory = factory or _twilio
        self._lock = threading.Lock()
        self._built: tuple[CarrierCredentials, Carrier] | None = None

    def current(self) -> Carrier:
        """The client for the secret's credentials now."""
        credentials = self._credentials(self._secret_id)
        with self._lock:
            if self._built is None or self._built[0] != credentials:
                self._built = (credentials, self._factory(credentials, self._base_url))
            return self._built[1]

    def ready(self) -> None:
        self.current().ready()

    def create_call(self, call: CreateCall) -> CarrierCall:
        return self.current().create_call(call)

    def fetch_call(self, sid: str) -> CarrierCall | None:
        return self.current().fetch_call(sid)

    def hangup(self, sid: str) -> CarrierCall:
        return self.current().hangup(sid)

    def cancel(self, sid: str) -> CarrierCall:
        return self.current().cancel(sid)

    def redirect(self, sid: str, twiml: str) -> None:
        self.current().redirect(sid, twiml)

    def send_sms(self, to: str, from_: str, body: str, status_callback: str | None = None) -> SmsResult:
        return self.current().send_sms(to, from_, body, status_callback)


def _twilio(credentials: CarrierCredentials, base_url: str) -> Carrier:
    from callbridge.carrier.twilio import TwilioClient

    return TwilioClient(credentials.account_sid, credentials.auth_token, base_url=base_url)
