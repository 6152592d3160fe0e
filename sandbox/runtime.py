"""The sandbox: moto (server mode) as AWS, the template's resources, the real handlers behind a local gateway."""

from __future__ import annotations

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
from sandbox.sources import event_sources
from sandbox.template import TEMPLATE, Stack, create_stack, http_routes, load_template

POLICY_GUARD = "sandbox.policy_guard"
SIM_ACCOUNT_SID = "AC" + "5a" * 16  # the simulated carrier account's SID

Log = Callable[[str], None]


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
    prefix: str = "callbridge"
    parameters: dict[str, str] = field(default_factory=dict)
    log: Log = field(default=print)
    template: Path = TEMPLATE  # another copy of template.yaml (tests run with a statement removed)
    # More probes for every function's containers, given the created stack (see sandbox/worker.py), and
    # observers of every invocation (see sandbox/lambdas.py): how the benchmarks measure from outside.
    probes: Callable[[Stack], list[tuple[str, Any]]] | None = None
    observers: list[Observer] = field(default_factory=list)


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


def _wait_for_port(host: str, port: int, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"moto server exited with code {process.returncode}")
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

    def _start_moto(self) -> None:
        port = free_port()
        self._moto = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port("127.0.0.1", port, 30, self._moto)
        self.aws_endpoint = f"http://127.0.0.1:{port}"

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
        from callbridge.adapters.dynamodb import DynamoAccountsStore
        from callbridge.admin import create_account

        assert self.stack is not None
        key, password = self.config.account or (None, None)
        account, secret = create_account(
            DynamoAccountsStore(self.stack.refs["AccountsTable"], dynamodb=dynamodb),
            caller_id="12815550100",
            name="sandbox demo",
            sms_from="12815550199",
            api_key=key,
            password=password,
        )
        return account.api_key, secret

    @staticmethod
    def _translate(template: dict[str, Any], into: dict[str, dict[str, Role]]) -> None:
        found = roles(template)
        for role in found.values():
            for arn in role.managed:
                managed_document(str(arn))  # loads moto's copy of AWS's managed policies once
        into["roles"] = found

    def _log_request(self, method: str, path: str, status: int, started: float) -> None:
        self.config.log(f"http  {method} {path} → {status} ({(time.monotonic() - started) * 1000:.0f} ms)")

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
        self.stack = create_stack(
            clients, prefix=self.config.prefix, template=template, parameters=self.config.parameters
        )
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
            function.start()  # its image loads libraries and runs the function's init meanwhile
            self.functions[name] = function
        gateway = Gateway(http_routes(self.stack.template), self.functions, on_request=self._log_request)
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
            )
        ):
            source = threading.Thread(target=runner, args=(self._stopping,), name=f"source-{number}", daemon=True)
            source.start()
            self._threads.append(source)
        # Ready when every function is: the first request to each is then a fork, not an import.
        for function in self.functions.values():
            if not function.wait_ready():
                self.config.log(f"lambda {function.logical}: its init failed; each invocation will report it")

    def stop(self) -> None:
        """Stop serving and end moto; safe to call twice."""
        self._stopping.set()
        for function in self.functions.values():
            function.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        deadline = time.monotonic() + 1.5  # event sources end within a poll; none waits for an invocation
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self.carrier is not None:
            self.carrier.stop()
            self.carrier = None
        if self._moto is not None:
            self._moto.terminate()
            try:
                self._moto.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._moto.kill()
            self._moto = None

    def summary(self) -> dict[str, Any]:
        """What a user needs to talk to the sandbox."""
        key, password = self.account
        return {"base_url": self.base_url, "aws_endpoint": self.aws_endpoint, "api_key": key, "password": password}
