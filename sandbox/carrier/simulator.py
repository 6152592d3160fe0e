"""The carrier simulator's Python API: configure, start on a loopback port, inspect calls, wait for them."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

from sandbox.carrier.engine import Engine
from sandbox.carrier.model import (
    ARRIVED,
    Account,
    Call,
    CreateRequest,
    FaultConfig,
    LogHook,
    Message,
    Press,
    Recording,
    Timings,
    normalize_number,
)
from sandbox.carrier.rest import RestApi
from sandbox.carrier.sms import message_done

DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "sandbox-auth-token"  # noqa: S105 - the documented sandbox credential, not a secret
# The numbers the simulated account owns unless told otherwise: Twilio's magic test number for valid calls.
DEFAULT_NUMBERS = ("+15005550006",)


def _own_numbers(numbers: Iterable[str]) -> frozenset[str]:
    owned = {normalize_number(number) for number in numbers}
    if None in owned:
        raise ValueError(f"numbers must be phone numbers: {sorted(numbers)}")
    return frozenset(n for n in owned if n is not None)


class _QuietHandler(WSGIRequestHandler):
    """No access log (the event log hook says what matters), and no Nagle delay on responses."""

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; with Nagle on, the client's delayed ACK adds ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def parse_request(self) -> bool:
        # A request arrives when its request line has been read, not when this thread gets round to the handler
        # (on a busy machine that can be hundreds of ms later, and bunch requests up that came apart).
        self.arrived = (time.monotonic(), time.time())
        return bool(super().parse_request())

    def make_environ(self) -> WSGIEnvironment:
        environ = super().make_environ()
        environ[ARRIVED] = self.arrived
        return environ


class CarrierSimulator:
    """A local Twilio Programmable Voice: REST API, call progress by rule, TwiML, signed webhooks.

    `cps`: calls per second before calls queue (None or 0: no limit); `speed`: simulated time runs this
    many times faster; `press`: digits a person presses at every <Gather> (or a function of the called
    number); `faults`: True (or a FaultConfig) to duplicate, reorder, delay and drop status callbacks,
    reproducibly with `seed`; `log`: receives one line per call event; `public_url`: the base URL to put
    in RecordingUrl when the simulator is reached through another address; `numbers`: the phone numbers the
    account owns (bought or verified), the only ones Twilio accepts as a call's `From`, a `<Dial callerId>`
    other than the call's own numbers, or an SMS's `From`.
    """

    def __init__(
        self,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        *,
        cps: float | None = 1.0,
        speed: float = 1.0,
        press: Press = "1",
        faults: bool | FaultConfig = False,
        seed: int | None = None,
        log: LogHook | None = None,
        timings: Timings | None = None,
        public_url: str | None = None,
        numbers: Iterable[str] = DEFAULT_NUMBERS,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be greater than 0")
        if cps is not None and cps < 0:
            raise ValueError("cps must be positive (or None for no limit)")
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.speed = speed
        self.cps = cps
        self.account = Account(account_sid, auth_token)
        self.calls: dict[str, Call] = self.account.calls
        self.messages: list[Message] = self.account.messages
        self.create_requests: list[CreateRequest] = self.account.create_requests
        self.lock = self.account.lock
        self._public_url = public_url
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False
        fault_config = FaultConfig() if faults is True else (faults or None)
        self.engine = Engine(
            account_sid=account_sid,
            auth_token=auth_token,
            speed=speed,
            cps=cps,
            timings=timings or Timings(),
            press=press,
            faults=fault_config,
            seed=seed,
            log=log,
            base_url=lambda: self.base_url,
            numbers=_own_numbers(numbers),
        )
        self.seed = self.engine.seed  # of the fault draws: given, or drawn (then logged, to replay the run)
        self.wsgi = RestApi(
            self.account, self.engine
        )  # mountable WSGI app, if another server should carry the REST API
        if fault_config is not None and log is not None:
            log(f"carrier faults seed: {self.engine.seed}")

    # ------------------------------------------------------------------ server

    def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve the REST API on `host:port` (port 0: any free port) in a background thread; returns the port."""
        if self._server is not None:
            raise RuntimeError("the simulator is already running")
        self._server = make_server(host, port, self.wsgi, threaded=True, request_handler=_QuietHandler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="carrier-http", daemon=True
        )
        self._thread.start()
        return self.port

    @property
    def port(self) -> int:
        """The bound port (after `start`)."""
        if self._server is None:
            raise RuntimeError("the simulator is not running")
        return int(self._server.server_port)

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`: what a Twilio client uses instead of https://api.twilio.com."""
        if self._public_url:
            return self._public_url.rstrip("/")
        if self._server is None:
            return "http://127.0.0.1"
        return f"http://{self._server.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The account's REST base: `{base_url}/2010-04-01/Accounts/{AccountSid}`."""
        return f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}"

    def stop(self) -> None:
        """Stop serving, end live calls without further callbacks, and join every thread."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._thread = None
        if not self._stopped:
            self._stopped = True
            self.engine.stop()

    def __enter__(self) -> CarrierSimulator:
        if self._server is None:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ inspection

    @property
    def recordings(self) -> list[Recording]:
        """Every recording made, in order."""
        return list(self.engine.recordings.values())

    def wait_for(self, sid: str, timeout: float = 10.0) -> Call:
        """Wait until the call has ended and its webhooks are delivered (or given up); returns it."""
        call = self.calls.get(sid)
        if call is None:
            raise KeyError(sid)
        with call.cond:
            if not call.cond.wait_for(lambda: call.done, timeout=timeout):
                raise TimeoutError(f"call {sid} still {call.status} after {timeout}s")
        return call

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until every call and SMS so far has finished and its webhooks are delivered."""
        deadline = time.monotonic() + timeout
        for sid in list(self.calls):
            self.wait_for(sid, max(0.0, deadline - time.monotonic()))
        with self.engine.messages_cond:
            if not self.engine.messages_cond.wait_for(
                lambda: all(message_done(m) for m in self.messages), timeout=max(0.0, deadline - time.monotonic())
            ):
                raise TimeoutError(f"messages still in flight after {timeout}s")
