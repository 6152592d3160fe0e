"""Shared fixtures: AWS (moto, built from template.yaml), accounts, and API Gateway events for the handlers."""

from __future__ import annotations

import base64
import contextvars
import copy
import importlib
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"

# Safe defaults for every test: no real AWS, no X-Ray, quiet metrics.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "callbridge",
        "POWERTOOLS_METRICS_NAMESPACE": "callbridge",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
)

# Property tests draw the same examples on every run (derandomized: what fails once fails again, and reproduces)
# with no time limit per example, nor on drawing them: speed is measured in bench/, and a loaded machine must not
# fail a test.
settings.register_profile(
    "callbridge", deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("callbridge")


def load_event(name: str) -> dict[str, Any]:
    """A sample event from events/, the same files `sam local invoke -e` takes."""
    data: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return data


@dataclass
class LambdaContext:
    function_name: str = "callbridge-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:callbridge-test"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    remaining_ms: int = 10_000  # a fresh invocation of a function whose Timeout is this

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def aws() -> Iterator[Any]:
    """moto in-process with every table and queue of template.yaml; yields the Stack."""
    from callbridge.adapters.aws import client as _client
    from moto import mock_aws

    from sandbox.template import create_stack

    with mock_aws():
        # clients built once per session (building one takes a while); each test's mock_aws answers them
        clients = {name: _client(name) for name in ("dynamodb", "sqs", "s3", "secretsmanager")}
        stack = create_stack(clients)
        hold_to_roles(stack)
        yield stack
        _ROLES.clear()


# --- each handler runs with its function's deployed permissions ---------------------------------------------
# Every boto3 client of this process is held, while a handler runs, to that function's role as the template
# defines it (expanded by aws-sam-translator; sandbox/policy_guard.py, the same check the sandbox's containers
# make): a request the role does not allow fails with the error AWS answers. Work a handler hands to a thread pool
# (a batch's records, bulk reads and writes) runs as the same function. Requests from the tests' own set-up and
# checks are not held to any role.
_RUNNING: contextvars.ContextVar[str | None] = contextvars.ContextVar("callbridge_function", default=None)
_ROLES: dict[str, Any] = {}  # function → (Policy, principal) for the current test's stack


@cache
def _functions_by_module() -> dict[str, str]:
    """Handler module name (functions.api.app) → the function's logical id, from template.yaml."""
    from sandbox.template import load_template

    found = {}
    for logical, resource in load_template()["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            props = resource["Properties"]
            package = props["CodeUri"].strip("/").replace("/", ".")
            found[f"{package}.{props['Handler'].rpartition('.')[0]}"] = logical
    return found


@cache
def _template_roles() -> Any:
    from sandbox.iam import roles
    from sandbox.template import load_template

    return roles(load_template())


def _running_role() -> Any:
    function = _RUNNING.get()
    return _ROLES.get(function) if function else None


def hold_to_roles(stack: Any) -> None:
    """Hold each handler of this test to its role in `stack` (the resources the roles name)."""
    from sandbox.iam import Policy, function_policies

    _ROLES.clear()
    for function, documents in function_policies(stack, _template_roles()).items():
        _ROLES[function] = (Policy(documents), f"{stack.prefix}-{function}")


def _install_role_guard() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from sandbox.policy_guard import guard_clients

    guard_clients(_running_role)
    # A pool's threads do not inherit the submitter's context: without this, the requests of a batch's records
    # (ConcurrentBatchProcessor) or of bulk do-not-call reads and writes would run as no function, unchecked.
    submit = ThreadPoolExecutor.submit

    def submit_as_the_running_function(pool: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        if _RUNNING.get() is None:
            return submit(pool, fn, *args, **kwargs)
        return submit(pool, contextvars.copy_context().run, fn, *args, **kwargs)

    ThreadPoolExecutor.submit = submit_as_the_running_function  # type: ignore[method-assign]


_install_role_guard()


def _as_its_role(function: str, handler: Any) -> Any:
    def handle(event: Any, context: Any) -> Any:
        token = _RUNNING.set(function)
        try:
            return handler(event, context)
        finally:
            _RUNNING.reset(token)

    return handle


def fresh_module(name: str, env: dict[str, str]) -> ModuleType:
    """Import a handler module anew (a cold start) with `env` applied; its handler runs as its function's role."""
    os.environ.update(env)
    import sys

    sys.modules.pop(name, None)
    module = importlib.import_module(name)
    powertools = getattr(module, "logger", None)
    level = os.environ.get("POWERTOOLS_LOG_LEVEL")
    if powertools is not None and level:
        # Powertools sets a logger's level once per process, when the first Logger of its name is built: an earlier
        # import (another test's) would otherwise keep its level, and the INFO lines a function writes be dropped.
        logging.getLogger(powertools.name).setLevel(level.upper())
    function = _functions_by_module().get(name)
    if function is not None and hasattr(module, "lambda_handler"):
        setattr(module, "lambda_handler", _as_its_role(function, module.lambda_handler))  # noqa: B010
    return module


@contextmanager
def json_log_lines(module: ModuleType) -> Iterator[list[dict[str, Any]]]:
    """The JSON lines a handler module's Powertools logger writes meanwhile, as CloudWatch Logs would get them."""
    import logging

    lines: list[dict[str, Any]] = []
    powertools = module.logger

    class Kept(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(powertools.registered_formatter.format(record)))

    kept = Kept()
    underlying = logging.getLogger(powertools.name)
    underlying.addHandler(kept)
    try:
        yield lines
    finally:
        underlying.removeHandler(kept)


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str]
    body: str

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def data(self) -> Any:
        return self.json["data"]


class ApiClient:
    """Calls the api handler with HTTP API (v2) events, like API Gateway would."""

    def __init__(self, module: ModuleType, auth: tuple[str, str] | None = None) -> None:
        self.module = module
        self.auth = auth

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        query: dict[str, str] | list[tuple[str, str]] | None = None,
        body: str | bytes | None = None,
        content_type: str | None = "application/x-www-form-urlencoded",
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | bool | None = True,
        source_ip: str | None = None,
    ) -> ApiResponse:
        event = copy.deepcopy(load_event("api_create_call.json"))
        if source_ip is not None:
            event["requestContext"]["http"]["sourceIp"] = source_ip
        event["routeKey"] = f"{method} {path}"
        event["rawPath"] = path
        event["requestContext"]["http"]["method"] = method
        event["requestContext"]["http"]["path"] = path
        event["requestContext"]["routeKey"] = event["routeKey"]
        event["rawQueryString"] = urlencode(query or {})
        if query:
            # a name given more than once: its values joined by commas, as API Gateway's payload v2 does
            joined: dict[str, str] = {}
            for name, value in query.items() if isinstance(query, dict) else query:
                joined[name] = f"{joined[name]},{value}" if name in joined else value
            event["queryStringParameters"] = joined
        hdrs: dict[str, str] = {"host": event["headers"]["host"]}
        credentials = self.auth if auth is True else auth
        if credentials:
            token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
            hdrs["authorization"] = f"Basic {token}"
        if params is not None:
            body = urlencode(params) if content_type != "application/json" else json.dumps(params)
        if body is not None and content_type:
            hdrs["content-type"] = content_type
        hdrs.update({k.lower(): v for k, v in (headers or {}).items()})
        event["headers"] = hdrs
        if isinstance(body, bytes):
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
        else:
            event["body"] = body
            event["isBase64Encoded"] = False
        result = self.module.lambda_handler(event, LambdaContext())
        return ApiResponse(result["statusCode"], result.get("headers", {}), result.get("body", ""))

    def post_call(self, params: dict[str, Any], **kwargs: Any) -> ApiResponse:
        return self.request("POST", "/pcall/call", params=params, **kwargs)

    def get(self, path: str, **kwargs: Any) -> ApiResponse:
        return self.request("GET", path, body=None, content_type=None, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> ApiResponse:
        return self.request("DELETE", path, body=None, content_type=None, **kwargs)


@dataclass
class AccountCredentials:
    api_key: str
    password: str
    account: Any


@pytest.fixture
def accounts_store(aws: Any) -> Any:
    from callbridge.adapters.dynamodb.accounts import DynamoAccountsStore

    return DynamoAccountsStore(aws.refs["AccountsTable"])


def make_account(store: Any, **kwargs: Any) -> AccountCredentials:
    from callbridge.admin import create_account

    kwargs.setdefault("caller_id", "12815550100")
    account, password = create_account(store, **kwargs)
    return AccountCredentials(account.api_key, password, account)


@pytest.fixture
def account(accounts_store: Any) -> AccountCredentials:
    return make_account(accounts_store)


@pytest.fixture
def api_module(aws: Any) -> ModuleType:
    return fresh_module("functions.api.app", aws.environment("ApiFunction"))


@pytest.fixture
def api(api_module: ModuleType, account: AccountCredentials) -> ApiClient:
    return ApiClient(api_module, auth=(account.api_key, account.password))


def queue_messages(stack: Any, logical: str = "CallsQueue") -> list[dict[str, Any]]:
    """Every message now visible on a queue (received and left to become visible again)."""
    import boto3

    sqs = boto3.client("sqs")
    messages: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=stack.refs[logical], MaxNumberOfMessages=10, VisibilityTimeout=30, WaitTimeSeconds=0
        ).get("Messages", [])
        if not batch:
            return messages
        messages.extend(json.loads(m["Body"]) for m in batch)


# The end-to-end files that mostly wait for the clock (calling windows, retry intervals, call dates).
_WAITING_FILES = ("tests/e2e/test_policies.py", "tests/e2e/test_campaigns.py")


def sandbox_scope(nodeid: str) -> str | None:
    """The run of tests a sandbox test belongs to under `make test` (None: not a sandbox test)."""
    if nodeid.startswith(_WAITING_FILES):
        return "sandbox-waiting"
    if nodeid.startswith("tests/e2e/") or nodeid.startswith("tests/integration/test_deployed_permissions.py"):
        return "sandbox"
    return None


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under `make test`'s two workers (pytest-xdist), the sandbox tests run in two runs, each on one worker, one
    test after another as a serial run would (they share a sandbox): the tests that mostly wait for the clock, and
    the others. The unit and integration tests fill the time left on both workers."""
    from xdist.scheduler import LoadScopeScheduling

    class SandboxTestsInTurn(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return sandbox_scope(nodeid) or nodeid

    return SandboxTestsInTurn(config, log)
