"""Least privilege, one function at a time: each function gets only the settings it reads and the actions it uses.

What each function may do is checked against its role as deployed (expanded from template.yaml by
aws-sam-translator, sandbox/iam.py); that every needed action is granted is checked by the e2e suite, where each
function runs signed as its role and any refused request fails the run.
"""

from __future__ import annotations

import types
from typing import Any

import pytest
from callbridge import settings
from callbridge.domain.dispatch import Timing
from callbridge.tracing import TRACING_ENV

from sandbox.iam import Policy, function_policies
from sandbox.template import Stack, load_template

# The settings each function's handler reads at its cold start (functions/<name>/app.py).
SETTINGS: dict[str, tuple[type[Any], ...]] = {
    "ApiFunction": (settings.ApiSettings, settings.CampaignSettings),
    "PlacerFunction": (settings.PlacerSettings, settings.CampaignSettings),
    "WebhooksFunction": (settings.CarrierSettings,),
    "NotifierFunction": (settings.NotifierSettings,),
    "SchedulerFunction": (settings.SchedulerSettings,),
    "CampaignsFunction": (settings.CampaignWorkerSettings,),
}


class _Recording(dict[str, str]):
    """An environment that remembers which variables were asked for."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)


def test_every_function_in_the_template_is_covered() -> None:
    functions = {k for k, v in load_template()["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}
    assert functions == set(SETTINGS)


@pytest.mark.parametrize("function", sorted(SETTINGS))
def test_a_function_gets_only_the_variables_its_settings_read(function: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # given the function's environment as the template defines it (Globals merged; references by name)
    env = Stack(template=load_template(), prefix="test").environment(function)
    recording = _Recording(env)
    monkeypatch.setattr(settings, "os", types.SimpleNamespace(environ=recording))
    # when its settings are read, as at a cold start
    for model in SETTINGS[function]:
        model.from_env()
    # then it was given every variable it needs (it validated) and none it never reads (Powertools' own and the
    # tracing switch, which every function reads, aside)
    given = {name for name in env if not name.startswith("POWERTOOLS_") and name != TRACING_ENV}
    assert given - recording.read == set()


@pytest.fixture
def policies(aws: Any) -> tuple[dict[str, Policy], Any]:
    return {name: Policy(docs) for name, docs in function_policies(aws).items()}, aws


def _arn(stack: Any, logical: str) -> str:
    return str(stack.attrs[(logical, "Arn")])


def test_every_function_places_calls_in_the_due_index_as_the_scheduler_looks_for_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given: parameters off their defaults (the sandbox divides the Reconcile* ones by --speed)
    parameters = {
        "ScheduleShards": "4",
        "ReconcileRingingAfterSeconds": "3.75",
        "ReconcileAnsweredAfterSeconds": "6",
        "ReconcileMaxIntervalSeconds": "45",
    }
    stack = Stack(template=load_template(), prefix="test", parameters=parameters)
    placed: dict[str, tuple[int, Timing]] = {}
    # when: each function reads its settings, as at a cold start
    for function, models in SETTINGS.items():
        monkeypatch.setattr(settings, "os", types.SimpleNamespace(environ=stack.environment(function)))
        for model in models:
            read = model.from_env()
            if isinstance(read, settings.DueIndexSettings):
                placed[function] = (read.schedule_shards, read.timing())
    # then: every function writes calls, and places them with the scheduler's shards and timing: whichever
    # wrote an entry, the scheduler queries its shard and finds it no later than it must act
    assert set(placed) == set(SETTINGS)
    assert set(placed.values()) == {(4, Timing(ringing_after=3.75, answered_after=6, max_interval=45))}


def test_the_webhooks_read_accounts_but_never_write_them(policies: tuple[dict[str, Policy], Any]) -> None:
    roles, stack = policies
    accounts = _arn(stack, "AccountsTable")
    assert roles["WebhooksFunction"].allows("dynamodb:GetItem", accounts)
    for action in ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"):
        assert not roles["WebhooksFunction"].allows(action, accounts), action


def test_the_webhooks_may_only_add_to_the_do_not_call_list(policies: tuple[dict[str, Policy], Any]) -> None:
    # an IVR opt-out adds the called number; nothing else of the list is the webhooks' business
    roles, stack = policies
    listed = _arn(stack, "SuppressionsTable")
    assert roles["WebhooksFunction"].allows("dynamodb:PutItem", listed)
    for action in ("dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:Query", "dynamodb:BatchWriteItem"):
        assert not roles["WebhooksFunction"].allows(action, listed), action


def test_whatever_lists_a_number_may_raise_the_do_not_call_mark(policies: tuple[dict[str, Policy], Any]) -> None:
    # the API (PUT/POST /pcall/suppressions) and the webhooks (an IVR opt-out) raise the mark on the carrier line's
    # item after listing, so that placers look the list up again (adapters/pacing.py)
    roles, stack = policies
    for function in ("ApiFunction", "WebhooksFunction"):
        assert roles[function].allows("dynamodb:UpdateItem", _arn(stack, "PacingTable")), function


@pytest.mark.parametrize(
    ("function", "action", "table"),
    [
        ("NotifierFunction", "dynamodb:PutItem", "AccountsTable"),
        ("SchedulerFunction", "dynamodb:GetItem", "AccountsTable"),
        ("SchedulerFunction", "dynamodb:UpdateItem", "PacingTable"),
        ("ApiFunction", "dynamodb:PutItem", "PacingTable"),  # it raises the do-not-call mark, never replaces the line
        ("WebhooksFunction", "dynamodb:PutItem", "PacingTable"),
        ("ApiFunction", "dynamodb:DeleteItem", "CallsTable"),
        ("PlacerFunction", "dynamodb:DeleteItem", "CallsTable"),
        ("PlacerFunction", "dynamodb:Query", "CallsTable"),
        # no code path updates an account item: accounts are written by the admin command, with its own credentials
        ("ApiFunction", "dynamodb:UpdateItem", "AccountsTable"),
        ("PlacerFunction", "dynamodb:UpdateItem", "AccountsTable"),
        # the placer's pacer only ever makes one conditional UpdateItem on the carrier line
        ("PlacerFunction", "dynamodb:GetItem", "PacingTable"),
        ("PlacerFunction", "dynamodb:PutItem", "PacingTable"),
        # waiting marks go with BatchWriteItem's DeleteRequest
        ("CampaignsFunction", "dynamodb:DeleteItem", "CampaignsTable"),
    ],
)
def test_no_function_may_touch_a_table_it_does_not_use(
    policies: tuple[dict[str, Policy], Any], function: str, action: str, table: str
) -> None:
    roles, stack = policies
    assert not roles[function].allows(action, _arn(stack, table))


def test_only_the_api_lists_calls_and_only_through_the_account_indexes(policies: tuple[dict[str, Policy], Any]) -> None:
    roles, stack = policies
    calls = _arn(stack, "CallsTable")
    assert roles["ApiFunction"].allows("dynamodb:Query", f"{calls}/index/ByAccount")
    assert not roles["ApiFunction"].allows("dynamodb:Query", f"{calls}/index/DueByShard")
    assert roles["SchedulerFunction"].allows("dynamodb:Query", f"{calls}/index/DueByShard")
    assert not roles["SchedulerFunction"].allows("dynamodb:Query", f"{calls}/index/ByAccount")


def test_an_index_grants_queries_only(policies: tuple[dict[str, Policy], Any]) -> None:
    # an index can only be queried (or scanned): any other action granted on it is a grant nobody reviews
    roles, stack = policies
    by_account = f"{_arn(stack, 'CampaignsTable')}/index/ByAccount"
    assert roles["ApiFunction"].allows("dynamodb:Query", by_account)
    for action in ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem"):
        assert not roles["ApiFunction"].allows(action, by_account), action


def test_the_carrier_secret_is_read_only_by_the_functions_that_call_the_carrier(
    policies: tuple[dict[str, Policy], Any],
) -> None:
    roles, stack = policies
    secret = stack.refs["CarrierSecret"]
    readers = {name for name, role in roles.items() if role.allows("secretsmanager:GetSecretValue", secret)}
    # the api calls the carrier too: DELETE /pcall/calls/{callid} cancels or hangs up a call there
    assert readers == {"ApiFunction", "PlacerFunction", "WebhooksFunction", "SchedulerFunction"}


def _without(documents: dict[str, Any], action: str) -> dict[str, Any]:
    """The role's policy documents with `action` taken out of every statement that grants it."""
    trimmed: dict[str, Any] = {}
    for name, document in documents.items():
        statements = []
        for statement in document.get("Statement", []):
            actions = statement.get("Action", [])
            actions = actions if isinstance(actions, list) else [actions]
            kept = [a for a in actions if a != action]
            if kept:
                statements.append({**statement, "Action": kept})
        trimmed[name] = {**document, "Statement": statements}
    return trimmed


def test_work_a_handler_hands_to_a_thread_pool_is_held_to_its_role(aws: Any, api: Any) -> None:
    # Bulk do-not-call writes run on a thread pool (adapters/suppressions.py). Threads do not inherit the running
    # function, so they used to go unchecked here: a role without BatchWriteItem passed every integration test.
    from tests import conftest

    documents = function_policies(aws)["ApiFunction"]
    conftest._ROLES["ApiFunction"] = (Policy(_without(documents, "dynamodb:BatchWriteItem")), "test-ApiFunction")
    refused = api.request("POST", "/pcall/suppressions", body='["12812345670"]', content_type="application/json")
    assert refused.status == 503, refused.body  # AccessDeniedException: the store is unavailable to this role

    conftest._ROLES["ApiFunction"] = (Policy(documents), "test-ApiFunction")
    added = api.request("POST", "/pcall/suppressions", body='["12812345670"]', content_type="application/json")
    assert added.status == 200, added.body
