"""The sandbox: moto (server mode) as AWS, the template's resources, the real handlers behind a local gateway."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from sandbox.gateway import Gateway
from sandbox.iam import Role, function_policies, managed_document, roles, services_called
from sandbox.identities import Credentials, function_roles, start_enforcing
from sandbox.lambdas import Function, Observer, function_environment, template_functions
from sandbox.observe import CallbackLog, RequestLog
from sandbox.sources import RawStreamReads, event_sources
from sandbox.template import REGION, TEMPLATE, Stack, create_stack, http_routes, load_template

POLICY_GUARD = "sandbox.policy_guard"
SIM_ACCOUNT_SID = "AC" + "5a" * 16  # the simulated carrier account's SID
DEMO_CALLER_ID = "12815550100"  # the demo account's caller id
DEMO_SMS_FROM = "12815550199"  # the demo account's SMS number
# The numbers the simulated carrier account owns: like Twilio, it refuses a call or SMS from any other. The
# vendor's own example `from` is among them, so its curl example works as written.
CARRIER_NUMBERS = (DEMO_CALLER_ID, DEMO_SMS_FROM, "12812345678")

Log = Callable[[str], None]
# Waits measured in call time: at --speed N the simulated calls play N times faster, and so do these, so a
# call whose final callback was lost is looked up as soon (in call time) as it would be in a deployment. The
# scheduler's rule fires N times as often too (sandbox/sources.py, schedule_period), unless --schedule-every is given.
SPEED_SCALED_PARAMETERS = (
    "ReconcileRingingAfterSeconds",
    "ReconcileAnsweredAfterSeconds",
    "ReconcileMaxIntervalSeconds",
)


class Clients(dict[str, Any]):
    """boto3 clients by service name, each built when first asked for (building one takes a while)."""

    def __init__(self, session: Any, endpoint: str) -> None:
        super().__init__()
        self._session = session
        self._endpoint = endpoint

    def __missing__(self, service: str) -> Any:
        client = self._session.client(service, endpoint_url=self._endpoint)
        self[service] = client
        return client


class PortBusy(Exception):
    """The requested port is taken."""


@dataclass
class SandboxConfig:
    """What `python -m sandbox` takes on its command line."""

    host: str = "127.0.0.1"
    port: int = 3000
    account: tuple[str, str] | None = None
    speed: float = 1.0
    press: str = "1"
    schedule_every: float | None = None
    faults: bool = False
    seed: int | None = None  # of the carrier's fault draws; None: drawn at start (and printed)
    prefix: str = "callbridge"
    parameters: dict[str, str] = field(default_factory=dict)
    log: Log = field(default=print)
    template: Path = TEMPLATE  # another copy of template.yaml (tests run with a statement removed)
    # More probes for every function's containers, given the created stack (see sandbox/worker.py), and
    # observers of every invocation (see sandbox/lambdas.py): how the benchmarks measure from outside.
    probes: Callable[[Stack], list[tuple[str, Any]]] | None = None
    observers: list[Observer] = field(default_factory=list)
    # Where the demo account's credentials are kept across restarts (unless `account` is given) and where the
    # running sandbox says how to reach it (for `python -m callbridge.admin --sandbox`). None: nowhere.
    state_dir: Path | None = None


CREDENTIALS_FILE = "account.json"
STOP_BUDGET = 1.5  # seconds the event sources get to finish what they are doing when the sandbox stops


def load_credentials(state_dir: Path | None) -> dict[str, str] | None:
    """The demo account kept by an earlier start, if any."""
    if state_dir is None:
        return None
    try:
        data = json.loads((state_dir / CREDENTIALS_FILE).read_text("utf-8"))
        return {k: str(data[k]) for k in ("api_key", "password", "webhook_secret")}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_private(path: Path, data: dict[str, Any]) -> None:
    """Write JSON readable by this user only (it holds a password or an endpoint)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump(data, file, indent=2)


def stack_parameters(template: dict[str, Any], speed: float, given: dict[str, str]) -> dict[str, str]:
    """The template parameters to create the stack with: `given`, and the call-time waits divided by `speed`."""
    parameters = dict(given)
    for name in SPEED_SCALED_PARAMETERS:
        if name not in parameters:
            default = float(template["Parameters"][name]["Default"])
            parameters[name] = f"{default / speed:g}"
    return parameters


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def ensure_free(host: str, port: int) -> None:
    """Raise PortBusy if `host:port` cannot be bound."""
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise PortBusy(f"{host}:{port} is already in use (another sandbox?); stop it or pass --port") from exc


class MotoExited(RuntimeError):
    """moto's server ended before it listened (its port taken, most often)."""


# Seconds moto's server may take to listen: it imports much of moto first, which takes long on a loaded machine.
MOTO_START_TIMEOUT = 60


def _wait_for_port(host: str, port: int, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise MotoExited(f"moto server exited with code {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {host}:{port} after {timeout:.0f}s")


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """The gateway logs requests itself, in one line each."""


class Sandbox:
    """Everything `make run` starts, as one object tests and benchmarks can start and stop."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.stack: Stack | None = None
        self.aws_endpoint = ""
        self.account: tuple[str, str] = ("", "")
        self.webhook_secret = ""
        self._running_file: Path | None = None
        self._moto: subprocess.Popen[bytes] | None = None
        self._server: BaseWSGIServer | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self.functions: dict[str, Function] = {}
        self.carrier: Any = None
        self.admin = Credentials("", "")
        self.roles: dict[str, Credentials] = {}
        # Every AWS request the functions made, as the policy guard judged it: (function, action, resource, allowed).
        self.requests: Counter[tuple[str, str, str, bool]] = Counter()
        self._requests_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.config.port}"

    def _start_moto(self, attempts: int = 3) -> None:
        """Start moto on a free port; on a busy machine another process can take that port between the look-up
        and moto's bind (moto then exits at once), so a start that ends that way is tried on another port."""
        for attempt in range(1, attempts + 1):
            port = free_port()
            self._moto = subprocess.Popen(
                [sys.executable, "-m", "sandbox.moto_server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                _wait_for_port("127.0.0.1", port, MOTO_START_TIMEOUT, self._moto)
            except MotoExited:
                if attempt == attempts:
                    raise
                continue
            self.aws_endpoint = f"http://127.0.0.1:{port}"
            return

    def _function_environment(self) -> dict[str, str]:
        """What every function's containers get besides the template's variables and their role's credentials."""
        return {
            "AWS_ENDPOINT_URL": self.aws_endpoint,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": os.environ.get("POWERTOOLS_METRICS_DISABLED", "true"),
            # callback_url may point at this machine here (a deployment never allows it).
            "CALLBACK_ALLOW_LOOPBACK": "true",
        }

    def _clients(self, credentials: Credentials | None = None) -> Clients:
        """boto3 clients signed as the sandbox's administrator (or as `credentials`), each built on first use."""
        return Clients((credentials or self.admin).session(), self.aws_endpoint)

    def _observe(
        self, function: str, kind: str, event: Any, result: Any, extras: dict[str, Any], seconds: float
    ) -> None:
        """Keep what the policy guard saw in a container; log each request the function's role refused."""
        seen = extras.get(POLICY_GUARD, [])
        with self._requests_lock:
            for request in seen:
                self.requests[(function, request["action"], request["resource"], request["allowed"])] += 1
        for request in seen:
            if not request["allowed"]:
                self.config.log(
                    f"iam   {function} denied {request['action']} on {request['resource']} ({request['operation']})"
                )

    def _start_carrier(self, clients: dict[str, Any]) -> dict[str, str]:
        """Start the carrier simulator and point the functions at it, as a deployment points them at Twilio."""
        import json
        import secrets

        from sandbox.carrier import CarrierSimulator

        assert self.stack is not None
        token = secrets.token_hex(16)
        cps = float(self.stack.resolve({"Ref": "CarrierCallsPerSecond"}))
        self.carrier = CarrierSimulator(
            account_sid=SIM_ACCOUNT_SID,
            auth_token=token,
            cps=cps,
            speed=self.config.speed,
            press=self.config.press,
            faults=self.config.faults,
            seed=self.config.seed,
            numbers=CARRIER_NUMBERS,
            log=lambda line: self.config.log(f"call  {line}"),
        )
        self.carrier.start(host="127.0.0.1", port=0)
        clients["secretsmanager"].put_secret_value(
            SecretId=self.stack.refs["CarrierSecret"],
            SecretString=json.dumps({"account_sid": SIM_ACCOUNT_SID, "auth_token": token}),
        )
        return {
            "CARRIER_BASE_URL": str(self.carrier.base_url),
            "PUBLIC_API_URL": self.base_url,
            "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
        }

    def _create_account(self, dynamodb: Any) -> tuple[str, str]:
        from callbridge.adapters.dynamodb.accounts import DynamoAccountsStore
        from callbridge.admin import create_account

        assert self.stack is not None
        kept = None if self.config.account else load_credentials(self.config.state_dir)
        key, password = self.config.account or ((kept["api_key"], kept["password"]) if kept else (None, None))
        account, secret = create_account(
            DynamoAccountsStore(self.stack.refs["AccountsTable"], dynamodb=dynamodb),
            caller_id=DEMO_CALLER_ID,
            name="sandbox demo",
            sms_from=DEMO_SMS_FROM,
            api_key=key,
            password=password,
            webhook_secret=kept["webhook_secret"] if kept else None,
        )
        self.webhook_secret = account.webhook_secret
        if self.config.account is None and self.config.state_dir is not None:
            credentials = {"api_key": account.api_key, "password": secret, "webhook_secret": account.webhook_secret}
            write_private(self.config.state_dir / CREDENTIALS_FILE, credentials)
        return account.api_key, secret

    @staticmethod
    def _translate(template: dict[str, Any], into: dict[str, dict[str, Role]]) -> None:
        found = roles(template)
        for role in found.values():
            for arn in role.managed:
                managed_document(str(arn))  # loads moto's copy of AWS's managed policies once
        into["roles"] = found

    def _write_running(self) -> None:
        """Tell `python -m callbridge.admin --sandbox` where this sandbox's AWS is."""
        from callbridge.admin import SANDBOX_FILE

        if self.config.state_dir is None or self.stack is None:
            return
        info = {
            "pid": os.getpid(),
            "base_url": self.base_url,
            "aws_endpoint": self.aws_endpoint,
            "region": REGION,
            "accounts_table": self.stack.refs["AccountsTable"],
            "calls_table": self.stack.refs["CallsTable"],
            # moto enforces IAM: the admin tool signs as the sandbox's administrator (this file is private)
            "aws_access_key_id": self.admin.access_key_id,
            "aws_secret_access_key": self.admin.secret_access_key,
        }
        self._running_file = self.config.state_dir / SANDBOX_FILE
        write_private(self._running_file, info)

    def _remove_running(self) -> None:
        if self._running_file is not None:  # only this sandbox's own (a refused start leaves another's alone)
            self._running_file.unlink(missing_ok=True)
            self._running_file = None

    def start(self) -> None:
        """Start moto, create the stack, load the handlers and serve the API."""
        ensure_free(self.config.host, self.config.port)
        template = load_template(self.config.template)
        translated: dict[str, dict[str, Role]] = {}
        # Working out the roles (aws-sam-translator) takes as long as starting moto: do both at once.
        translating = threading.Thread(target=self._translate, args=(template, translated), daemon=True)
        translating.start()
        self._start_moto()
        self.admin = start_enforcing(self.aws_endpoint)
        clients = self._clients()
        for service in ("dynamodb", "sqs", "s3", "secretsmanager"):  # what create_stack builds with
            clients[service]
        parameters = stack_parameters(template, self.config.speed, self.config.parameters)
        self.stack = create_stack(clients, prefix=self.config.prefix, template=template, parameters=parameters)
        translating.join()
        if "roles" not in translated:
            raise RuntimeError("could not work out the functions' roles from the template")
        policies = function_policies(self.stack, translated["roles"])
        self.roles = function_roles(self.admin, self.aws_endpoint, self.config.prefix, policies)
        overrides = self._start_carrier(clients)
        extra_probes = self.config.probes(self.stack) if self.config.probes else []
        for name in template_functions(self.stack):
            env = {
                **function_environment(self.stack, name, self._function_environment(), overrides),
                **self.roles[name].environment(),
            }
            guard = (POLICY_GUARD, {"policies": policies[name], "principal": f"{self.config.prefix}-{name}"})
            function = Function(
                self.stack,
                name,
                env,
                probes=[guard, *extra_probes],
                services=services_called(policies[name]),
                log=self.config.log,
            )
            function.observers.extend([self._observe, *self.config.observers])
            self.functions[name] = function
        gateway = RequestLog(Gateway(http_routes(self.stack.template), self.functions), self.config.log)
        self._server = make_server(
            self.config.host, self.config.port, gateway, threaded=True, request_handler=_QuietHandler
        )
        thread = threading.Thread(target=self._server.serve_forever, name="gateway", daemon=True)
        thread.start()
        self._threads.append(thread)
        self.account = self._create_account(clients["dynamodb"])
        for number, runner in enumerate(
            event_sources(
                self.stack,
                self.functions,
                lambda name: self._clients(self.roles[name]),
                self.config.log,
                self.config.schedule_every,
                self.config.speed,
            )
        ):
            source = threading.Thread(target=runner, args=(self._stopping,), name=f"source-{number}", daemon=True)
            source.start()
            self._threads.append(source)
        callbacks = CallbackLog(
            RawStreamReads(clients["dynamodbstreams"]),
            self.stack.resolve({"Fn::GetAtt": ["CallsTable", "StreamArn"]}),
            self.config.log,
        )
        observer = threading.Thread(target=callbacks.run, args=(self._stopping,), name="callback-log", daemon=True)
        observer.start()
        self._threads.append(observer)
        self._write_running()
        # Last, so that they do not slow the set-up above on a busy machine: each function's image loads its
        # libraries and runs the function's init, all of them at once. The sandbox says it is ready only when
        # they are, so a first request after "ready" is not held behind an image that is still loading.
        for function in self.functions.values():
            function.start()
        for function in self.functions.values():
            function.wait_ready()

    def stop(self) -> None:
        """Stop serving and end moto; safe to call twice."""
        self._stopping.set()
        self._remove_running()
        for function in self.functions.values():
            function.stop()
        # The pollers and the server wind down together, within one budget: Ctrl-C ends the sandbox in seconds.
        deadline = time.monotonic() + STOP_BUDGET
        server, self._server = self._server, None
        closing = threading.Thread(target=server.shutdown, daemon=True) if server is not None else None
        if closing is not None:
            closing.start()
        for thread in [*self._threads, *([closing] if closing else [])]:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if server is not None:
            server.server_close()
        if self.carrier is not None:
            self.carrier.stop()
            self.carrier = None
        if self._moto is not None:
            # moto keeps everything in memory: nothing to save, and Ctrl-C should end the sandbox at once.
            self._moto.kill()
            self._moto.wait(timeout=5)
            self._moto = None

    def summary(self) -> dict[str, Any]:
        """What a user needs to talk to the sandbox."""
        key, password = self.account
        return {
            "base_url": self.base_url,
            "aws_endpoint": self.aws_endpoint,
            "api_key": key,
            "password": password,
            "webhook_secret": self.webhook_secret,
        }
