"""The api function's cold start: what importing its handler leaves for later, and that the API still works.

Each check runs in a fresh interpreter, as a new Lambda container would: the handler module imported by its path
with the function's code and the layer on the path. Timings belong to bench/ (`make bench`); these tests check
which modules are loaded, which is what the timings follow from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HANDLER = ROOT / "functions" / "api" / "app.py"
COMMITTED = ROOT / "docs" / "openapi.json"
# Loaded by the first request that needs them, never by the import: the OpenAPI document's models, Powertools' and the
# API's own (GET /pcall/openapi.json only), the carrier's client (DELETE /pcall/calls/{callid} only), the AWS SDK (the
# first request to AWS).
DOCUMENT = (
    "aws_lambda_powertools.event_handler.openapi.models",
    "callbridge.openapi_campaigns",
    "callbridge.openapi_models",
)
LATER = (*DOCUMENT, "callbridge.adapters.carrier_client", "boto3")

COLD_CONTAINER = """
import importlib.util, json, sys

spec = importlib.util.spec_from_file_location("handler_module", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
later = json.loads(sys.argv[2])
report = {"after_import": sorted(name for name in later if name in sys.modules)}
# Credentials are checked against AccountsTable; this container has none, so every caller is this account.
from callbridge.domain.accounts import Account

account = Account(api_key="key", password_hash="unused", caller_id="12815550100", webhook_secret="unused")
module._authenticate = lambda: account


class Context:
    function_name = "callbridge-ApiFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:callbridge-ApiFunction"
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self):
        return 10_000


answers = []
for event in json.loads(sys.argv[3]):
    answer = module.lambda_handler(event, Context())
    answers.append({"status": answer["statusCode"], "body": answer["body"]})
    report.setdefault("after_each_request", []).append(sorted(name for name in later if name in sys.modules))
report["answers"] = answers
print(json.dumps(report))
"""


def _event(method: str, path: str, query: dict[str, str] | None = None) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((ROOT / "events" / "api_create_call.json").read_text())
    event.update(routeKey=f"{method} {path}", rawPath=path, body=None, queryStringParameters=query)
    event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in (query or {}).items())
    event["requestContext"]["http"].update(method=method, path=path)
    event["requestContext"]["routeKey"] = event["routeKey"]
    event["headers"] = {"host": event["headers"]["host"]}
    return event


def cold_start(*events: dict[str, Any]) -> dict[str, Any]:
    """Import the handler in a new interpreter, then answer `events` in order; what was loaded, and the answers."""
    env = {
        "PYTHONPATH": os.pathsep.join([str(HANDLER.parent), str(ROOT / "layers" / "callbridge")]),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "callbridge",
        "POWERTOOLS_METRICS_NAMESPACE": "callbridge",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        # The function's settings, as template.yaml gives them (its adapters are built, never used: no AWS here).
        **dict.fromkeys(("CALLS_TABLE", "ACCOUNTS_TABLE", "CALLS_QUEUE_URL", "LOGIN_FAILURES_TABLE"), "unused"),
        **dict.fromkeys(("SUPPRESSIONS_TABLE", "PACING_TABLE", "CAMPAIGNS_TABLE", "CAMPAIGNS_QUEUE_URL"), "unused"),
    }
    result = subprocess.run(
        [sys.executable, "-c", COLD_CONTAINER, str(HANDLER), json.dumps(LATER), json.dumps(list(events))],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_the_import_leaves_the_document_the_carrier_and_the_sdk_for_later() -> None:
    assert cold_start()["after_import"] == []


def test_parameters_are_validated_without_the_document_models() -> None:
    # given: a cold container; when: a list with an out-of-range limit and an unknown parameter
    report = cold_start(_event("GET", "/pcall/calls", {"limit": "0", "sinse": "2027-01-01"}))

    # then: both problems in one 400, in the API's words, and the models still not loaded
    (answer,) = report["answers"]
    assert answer["status"] == 400
    errors = json.loads(answer["body"])["data"]["errors"]
    assert [e["field"] for e in errors] == ["limit", "sinse"]
    assert errors[0]["message"] == "must be at least 1"
    assert errors[1]["message"].startswith("unknown query parameter; this route takes ")
    assert report["after_each_request"] == [[]]


def test_a_cold_container_serves_the_committed_document() -> None:
    report = cold_start(_event("GET", "/pcall/docs"), _event("GET", "/pcall/openapi.json"))

    docs, document = report["answers"]
    assert docs["status"] == 200
    assert "/pcall/openapi.json" in docs["body"]
    # Swagger UI's page needs no model; the document loads them, and comes out as committed in docs/.
    assert report["after_each_request"] == [[], sorted(DOCUMENT)]
    assert document["status"] == 200
    assert json.loads(document["body"]) == json.loads(COMMITTED.read_text())
