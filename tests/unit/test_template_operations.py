"""template.yaml as operated: alarms that reach a person, the dashboard, logs, deletion policies, samconfig.toml.

Structural checks: each fails if the thing it names is removed or broken (an alarm without actions, a
function whose log group is created after it, a dashboard metric no code emits).
"""

from __future__ import annotations

import ast
import json
import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from sandbox.template import load_template

ROOT = Path(__file__).resolve().parents[2]
CODE_DIRS = [ROOT / "functions", ROOT / "layers" / "callbridge" / "callbridge"]


@cache
def template() -> dict[str, Any]:
    return load_template()


def resources(kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template()["Resources"].items() if res["Type"] == kind}


def functions() -> list[str]:
    return sorted(resources("AWS::Serverless::Function"))


def alarm_metrics(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """Every metric an alarm reads: its single metric, or each MetricStat of its metric math."""
    props = alarm["Properties"]
    if "MetricName" in props:
        return [{"Namespace": props["Namespace"], "MetricName": props["MetricName"], "Dimensions": props["Dimensions"]}]
    return [m["MetricStat"]["Metric"] for m in props["Metrics"] if "MetricStat" in m]


def function_env(function: str, name: str) -> Any:
    """A function's environment variable as the template writes it (its own, else the Globals' one)."""
    own = template()["Resources"][function]["Properties"].get("Environment", {}).get("Variables", {})
    if name in own:
        return own[name]
    return template()["Globals"]["Function"]["Environment"]["Variables"][name]


def metrics_identity() -> tuple[Any, Any]:
    """(namespace, service dimension) every function's Powertools Metrics write under: one pair for all."""
    pairs = {
        json.dumps([function_env(f, "POWERTOOLS_METRICS_NAMESPACE"), function_env(f, "POWERTOOLS_SERVICE_NAME")])
        for f in functions()
    }
    assert len(pairs) == 1, f"functions emit metrics under different namespaces or services: {pairs}"
    namespace, service = json.loads(pairs.pop())
    return namespace, service


# --- what the code emits ---------------------------------------------------------------------


def _module_tables(tree: ast.Module) -> dict[str, set[str]]:
    """Module-level dicts whose values are metric names: NAME = {key: "Metric", ...}."""
    tables: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            values = {v.value for v in node.value.values if isinstance(v, ast.Constant) and isinstance(v.value, str)}
            for target in node.targets:
                if isinstance(target, ast.Name) and values:
                    tables[target.id] = values
    return tables


def _metric_names(expr: ast.expr, func: ast.FunctionDef, tables: dict[str, set[str]], where: str) -> set[str]:
    """Every value a metric-name expression can take, or a failure naming the expression this cannot follow.

    Follows literals, `a if c else b`, lookups in a module-level table (`T[k]`, `T.get(k, default)`) and a local
    name bound by assignment or by `for ..., name in T.items()` in the same function.
    """
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return {expr.value}
    if isinstance(expr, ast.IfExp):
        return _metric_names(expr.body, func, tables, where) | _metric_names(expr.orelse, func, tables, where)
    if isinstance(expr, ast.Subscript) and isinstance(expr.value, ast.Name) and expr.value.id in tables:
        return tables[expr.value.id]
    if (
        isinstance(expr, ast.Call)
        and isinstance(expr.func, ast.Attribute)
        and expr.func.attr == "get"
        and isinstance(expr.func.value, ast.Name)
        and expr.func.value.id in tables
    ):
        default = {n for a in expr.args[1:] for n in _metric_names(a, func, tables, where)}
        return tables[expr.func.value.id] | default
    if isinstance(expr, ast.Name):
        names: set[str] = set()
        bound = False
        for node in ast.walk(func):
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == expr.id for t in node.targets):
                names |= _metric_names(node.value, func, tables, where)
                bound = True
            elif isinstance(node, ast.For):
                targets = node.target.elts if isinstance(node.target, ast.Tuple) else [node.target]
                if not any(isinstance(t, ast.Name) and t.id == expr.id for t in targets):
                    continue
                source = node.iter
                unfollowable = f"{where}: cannot tell which metrics `{ast.unparse(node.target)}` names"
                assert isinstance(source, ast.Call), unfollowable
                assert isinstance(source.func, ast.Attribute), unfollowable
                assert source.func.attr in {"items", "values"}, unfollowable
                table = source.func.value
                assert isinstance(table, ast.Name), unfollowable
                assert table.id in tables, unfollowable
                assert isinstance(targets[-1], ast.Name), unfollowable
                assert targets[-1].id == expr.id, unfollowable
                names |= tables[table.id]
                bound = True
        if bound:
            return names
    raise AssertionError(f"{where}: cannot tell which metric `{ast.unparse(expr)}` names; use a literal or a table")


@cache
def metrics_by_file() -> dict[str, frozenset[str]]:
    """Metric names each source file passes to Powertools' add_metric, read from its syntax tree."""
    found: dict[str, frozenset[str]] = {}
    for directory in CODE_DIRS:
        for path in sorted(directory.rglob("*.py")):
            tree = ast.parse(path.read_text())
            tables = _module_tables(tree)
            names: set[str] = set()
            calls = 0
            for func in ast.walk(tree):
                if not isinstance(func, ast.FunctionDef):
                    continue
                for call in ast.walk(func):
                    if not (isinstance(call, ast.Call) and getattr(call.func, "attr", "") == "add_metric"):
                        continue
                    calls += 1
                    where = f"{path.relative_to(ROOT)}:{call.lineno}"
                    name = next((k.value for k in call.keywords if k.arg == "name"), None)
                    assert name is not None, f"{where}: add_metric without name="
                    names |= _metric_names(name, func, tables, where)
            assert calls == path.read_text().count(".add_metric("), f"{path}: an add_metric outside a function"
            if names:
                found[str(path.relative_to(ROOT))] = frozenset(names)
    return found


@cache
def emitted_metrics() -> frozenset[str]:
    """Every metric name the code emits (under the functions' namespace and service dimension)."""
    return frozenset().union(*metrics_by_file().values())


def test_the_metric_scan_sees_literal_and_table_driven_names() -> None:
    # CallsPlaced is a literal in the placer; CallbacksDelivered comes from the notifier's table, DispatchSendFailures
    # from the scheduler's loop over its table, CallsCanceled from the outcome metrics' table look-up (in the layer,
    # which every function that ends calls uses) and CallsAnsweredByPerson from the default of one.
    by_file = metrics_by_file()
    assert "CallsPlaced" in by_file["functions/placer/app.py"]
    assert {"CallbacksDelivered", "CallbackRecordsFailed"} <= by_file["functions/notifier/app.py"]
    assert "DispatchSendFailures" in by_file["functions/scheduler/app.py"]
    assert "CarrierRequestsRejected" in by_file["functions/webhooks/app.py"]
    outcomes = by_file["layers/callbridge/callbridge/adapters/outcome_metrics.py"]
    assert {"CallsCanceled", "CallsAnsweredByMachine", "CallsAnsweredByPerson"} <= outcomes
    # only metric names: not the other strings of the functions that emit them
    assert "Machine" not in emitted_metrics()
    assert "NoSuchMetric" not in emitted_metrics()


def test_the_metric_scan_refuses_a_name_it_cannot_follow() -> None:
    tree = ast.parse("def f(m, x):\n    m.add_metric(name=x.upper(), value=1)\n")
    func = tree.body[0]
    assert isinstance(func, ast.FunctionDef)
    call = func.body[0].value  # type: ignore[attr-defined]
    with pytest.raises(AssertionError, match="cannot tell which metric"):
        _metric_names(call.keywords[0].value, func, {}, "f")


# --- alarms ----------------------------------------------------------------------------------


def test_every_alarm_notifies_the_alarm_topic_when_it_fires_and_when_it_recovers() -> None:
    alarms = resources("AWS::CloudWatch::Alarm")
    assert len(alarms) >= 17
    for name, alarm in alarms.items():
        props = alarm["Properties"]
        assert props.get("AlarmActions") == [{"Ref": "AlarmTopic"}], name
        assert props.get("OKActions") == [{"Ref": "AlarmTopic"}], name
        assert props.get("AlarmDescription"), name
    assert template()["Resources"]["AlarmTopic"]["Type"] == "AWS::SNS::Topic"


def test_the_alarm_email_is_subscribed_only_when_given() -> None:
    parameter = template()["Parameters"]["AlarmEmail"]
    assert parameter["Default"] == ""
    assert template()["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
    subscription = template()["Resources"]["AlarmEmailSubscription"]
    assert subscription["Type"] == "AWS::SNS::Subscription"
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
    }


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_every_function_has_an_errors_and_a_throttles_alarm(metric: str) -> None:
    watched = {
        dimension["Value"]["Ref"]
        for alarm in resources("AWS::CloudWatch::Alarm").values()
        for m in alarm_metrics(alarm)
        if m["Namespace"] == "AWS/Lambda" and m["MetricName"] == metric
        for dimension in m["Dimensions"]
        if dimension["Name"] == "FunctionName"
    }
    assert watched == set(functions())


def _alarm_on(namespace: str, metric: str) -> list[dict[str, Any]]:
    return [
        alarm
        for alarm in resources("AWS::CloudWatch::Alarm").values()
        if any(m["Namespace"] == namespace and m["MetricName"] == metric for m in alarm_metrics(alarm))
    ]


def _event_sources(kind: str) -> dict[str, set[str]]:
    """For each function, the logical ids its events of `kind` read (SQS: the queue; DynamoDB: the table)."""
    found: dict[str, set[str]] = {}
    for function in functions():
        for event in template()["Resources"][function]["Properties"].get("Events", {}).values():
            if event["Type"] == kind:
                source = event["Properties"]["Queue" if kind == "SQS" else "Stream"]["Fn::GetAtt"][0]
                found.setdefault(function, set()).add(source)
    return found


def _watched(namespace: str, metric: str, dimension: str) -> list[str]:
    """The resource each alarm on `metric` watches, by its `dimension` (one entry per alarm)."""
    return [
        value.get("Ref") or value["Fn::GetAtt"][0]
        for alarm in _alarm_on(namespace, metric)
        for m in alarm_metrics(alarm)
        if m["Namespace"] == namespace and m["MetricName"] == metric
        for d in m["Dimensions"]
        if d["Name"] == dimension and (value := d["Value"])
    ]


def test_every_queue_a_function_reads_has_an_age_of_oldest_message_alarm() -> None:
    # A consumer that stopped without failing (its event source mapping disabled, or outpaced) shows only as age.
    queues = set().union(*_event_sources("SQS").values())
    assert queues == {"CallsQueue", "NotificationsQueue", "CampaignsQueue"}
    assert sorted(_watched("AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName")) == sorted(queues)


# Queues whose messages are sent with DelaySeconds by design, up to SQS's longest: their age alarm must not count
# a message's own delay as lateness (the notifier's retries wait out their backoff there, the campaigns' release
# steps their pause).
DELAYED_BY_DESIGN = ("NotificationsQueue", "CampaignsQueue")


@pytest.mark.parametrize("queue", DELAYED_BY_DESIGN)
def test_the_age_alarm_of_a_queue_of_delayed_messages_waits_longer_than_the_longest_delay(queue: str) -> None:
    from callbridge.domain.limits import MAX_DELAY_SECONDS

    (alarm,) = [
        a
        for a in _alarm_on("AWS/SQS", "ApproximateAgeOfOldestMessage")
        if alarm_metrics(a)[0]["Dimensions"][0]["Value"] == {"Fn::GetAtt": [queue, "QueueName"]}
    ]
    assert alarm["Properties"]["Threshold"] > MAX_DELAY_SECONDS


def test_api_5xx_rate_is_alarmed_as_a_share_of_requests() -> None:
    (alarm,) = _alarm_on("AWS/ApiGateway", "5xx")
    metrics = {m["Id"]: m for m in alarm["Properties"]["Metrics"]}
    assert {"errors", "requests"} <= set(metrics)
    assert metrics["requests"]["MetricStat"]["Metric"]["MetricName"] == "Count"
    for metric in alarm_metrics(alarm):
        assert metric["Dimensions"] == [{"Name": "ApiId", "Value": {"Ref": "CallbridgeHttpApi"}}]
    (expression,) = [m["Expression"] for m in metrics.values() if "Expression" in m]
    assert "errors" in expression
    assert "/ FILL(requests" in expression


def test_webhook_403_rate_is_alarmed_on_a_metric_the_webhooks_emit() -> None:
    (alarm,) = _alarm_on("callbridge", "CarrierRequestsRejected")
    assert "CarrierRequestsRejected" in emitted_metrics()
    denominators = [m for m in alarm_metrics(alarm) if m["Namespace"] == "AWS/Lambda"]
    assert denominators == [
        {
            "Namespace": "AWS/Lambda",
            "MetricName": "Invocations",
            "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": "WebhooksFunction"}}],
        }
    ]


def test_every_stream_consumer_s_lag_is_alarmed() -> None:
    # A stream batch that fails again and again holds its shard for up to 24 hours: only the lag shows it.
    consumers = set(_event_sources("DynamoDB")) | set(_event_sources("Kinesis"))
    assert consumers == {"NotifierFunction", "CampaignsFunction"}
    assert sorted(_watched("AWS/Lambda", "IteratorAge", "FunctionName")) == sorted(consumers)


def test_a_scheduler_that_stopped_running_is_alarmed() -> None:
    # No run at all raises no Errors: a heartbeat on its invocations, where missing data is the failure.
    (alarm,) = [a for a in _alarm_on("AWS/Lambda", "Invocations") if "MetricName" in a["Properties"]]
    props = alarm["Properties"]
    assert props["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "SchedulerFunction"}}]
    assert (props["Statistic"], props["ComparisonOperator"], props["Threshold"]) == ("Sum", "LessThanThreshold", 1)
    assert props["TreatMissingData"] == "breaching"
    # each period holds at least one run when the schedule fires
    (event,) = template()["Resources"]["SchedulerFunction"]["Properties"]["Events"].values()
    match = re.fullmatch(r"rate\((\d+) minutes?\)", event["Properties"]["Schedule"])
    assert match is not None
    assert props["Period"] >= int(match.group(1)) * 60


@pytest.mark.parametrize("queue", ["CallsDeadLetterQueue", "NotificationsDeadLetterQueue", "CampaignsDeadLetterQueue"])
def test_dead_letter_alarms_count_hidden_messages_too(queue: str) -> None:
    # The scheduler hides calls-DLQ messages it cannot handle for 10 minutes: an alarm on the visible
    # count alone would clear while they are hidden and fire again when they come back.
    (alarm,) = [
        a
        for a in _alarm_on("AWS/SQS", "ApproximateNumberOfMessagesVisible")
        if alarm_metrics(a)[0]["Dimensions"][0]["Value"] == {"Fn::GetAtt": [queue, "QueueName"]}
    ]
    read = {(m["MetricName"], m["Dimensions"][0]["Value"]["Fn::GetAtt"][0]) for m in alarm_metrics(alarm)}
    assert read == {("ApproximateNumberOfMessagesVisible", queue), ("ApproximateNumberOfMessagesNotVisible", queue)}
    (expression,) = [m["Expression"] for m in alarm["Properties"]["Metrics"] if "Expression" in m]
    ids = [m["Id"] for m in alarm["Properties"]["Metrics"] if "MetricStat" in m]
    assert all(i in expression for i in ids)
    assert "+" in expression


def test_calls_dead_letter_alarm_waits_longer_than_the_scheduler_hides_a_message() -> None:
    props = template()["Resources"]["CallsDeadLetterAlarm"]["Properties"]
    period = {m["MetricStat"]["Period"] for m in props["Metrics"] if "MetricStat" in m}.pop()
    assert props["DatapointsToAlarm"] == props["EvaluationPeriods"]
    assert props["EvaluationPeriods"] * period > 600


def test_custom_metrics_in_alarms_are_emitted_under_the_functions_namespace_and_service() -> None:
    for name, alarm in resources("AWS::CloudWatch::Alarm").items():
        for metric in alarm_metrics(alarm):
            if metric["Namespace"].startswith("AWS/"):
                continue
            namespace, service = metrics_identity()
            assert metric["Namespace"] == namespace, name
            assert metric["Dimensions"] == [{"Name": "service", "Value": service}], name
            assert metric["MetricName"] in emitted_metrics(), name


# --- dashboard -------------------------------------------------------------------------------


def _as_sub(value: Any) -> str:
    """How a template value is written inside a Fn::Sub string: "x" stays "x", {"Ref": "X"} is "${X}"."""
    return f"${{{value['Ref']}}}" if isinstance(value, dict) else str(value)


@cache
def dashboard() -> dict[str, Any]:
    """The dashboard body, each ${...} replaced by itself spelt out (so a value can be compared to the template's)."""
    body = template()["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    names = set(re.findall(r"\$\{([^}]+)\}", body))
    known = set(template()["Resources"]) | {"AWS::Region", "AWS::StackName"}
    for name in names:
        assert name.split(".")[0] in known, f"the dashboard refers to {name}, which the template does not define"
    data: dict[str, Any] = json.loads(body)
    return data


def dashboard_metrics() -> list[list[Any]]:
    return [
        m
        for widget in dashboard()["widgets"]
        for m in widget.get("properties", {}).get("metrics", [])
        if isinstance(m[0], str)
    ]


def test_every_custom_metric_on_the_dashboard_is_emitted_by_the_code() -> None:
    custom = [m for m in dashboard_metrics() if not m[0].startswith("AWS/")]
    assert custom
    for metric in custom:
        namespace, service = metrics_identity()
        assert metric[0] == _as_sub(namespace)
        assert metric[2:4] == ["service", _as_sub(service)]
        assert metric[1] in emitted_metrics(), metric[1]


# Metrics the code emits that neither the dashboard nor an alarm reads, each with the reason.
NOT_SHOWN = {
    # The fan-out's progress: once a campaign's chunks are stored it equals its CampaignCallsAccepted (on the
    # dashboard); a campaign's own progress is GET /pcall/campaigns/{id}.
    "CampaignCallsStored": "equals CampaignCallsAccepted once each campaign's fan-out is done",
}


def custom_metrics_read() -> set[str]:
    """Names of the functions' own metrics (namespace callbridge) the dashboard or an alarm reads."""
    shown = {m[1] for m in dashboard_metrics() if not m[0].startswith("AWS/")}
    alarmed = {
        m["MetricName"]
        for alarm in resources("AWS::CloudWatch::Alarm").values()
        for m in alarm_metrics(alarm)
        if not m["Namespace"].startswith("AWS/")
    }
    return shown | alarmed


def test_every_metric_the_code_emits_is_read_by_the_dashboard_or_an_alarm_or_left_off_on_purpose() -> None:
    read = custom_metrics_read()
    unread = emitted_metrics() - read - set(NOT_SHOWN)
    assert not unread, f"metrics emitted but on no dashboard line nor alarm (add them, or to NOT_SHOWN): {unread}"
    never = read - emitted_metrics()
    assert not never, f"read but never emitted (INSUFFICIENT_DATA forever): {never}"
    assert not set(NOT_SHOWN) & read, "a metric listed as left off is shown"
    assert set(NOT_SHOWN) <= emitted_metrics(), "NOT_SHOWN names a metric the code no longer emits"


def test_the_dashboard_shows_what_operators_asked_for() -> None:
    shown = {(m[0], m[1], m[-1].get("stat")) for m in dashboard_metrics()}
    for name in ("CallsAccepted", "CallsPlaced", "CallsCompleted", "CallsFailed"):
        assert ("callbridge", name, "Sum") in shown
    for name in ("CallbacksDelivered", "CallbacksRetried", "CallbacksDeadLettered"):
        assert ("callbridge", name, "Sum") in shown
    assert {("callbridge", "DispatchLateness", "p50"), ("callbridge", "DispatchLateness", "p99")} <= shown
    assert any(m[1] == "CarrierLatency" for m in shown)
    for queue_metric in ("ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"):
        assert ("AWS/SQS", queue_metric, "Maximum") in shown
    # every dead-letter queue the template has is on it
    queues = {m[3] for m in dashboard_metrics() if m[0] == "AWS/SQS"}
    targets = {
        queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for queue in resources("AWS::SQS::Queue").values()
        if "RedrivePolicy" in queue["Properties"]
    }
    assert len(targets) == 3
    for name in targets:
        assert f"${{{name}.QueueName}}" in queues, name
    expressions = [
        m[0]["expression"]
        for widget in dashboard()["widgets"]
        for m in widget.get("properties", {}).get("metrics", [])
        if isinstance(m[0], dict)
    ]
    assert any("completed" in e and "busy" in e and "noanswer" in e for e in expressions)  # the answer rate
    body = template()["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    for function in functions():
        for metric in ("Errors", "Duration"):
            assert f'"AWS/Lambda", "{metric}", "FunctionName", "${{{function}}}"' in body, (function, metric)


def _as_dashboard_value(value: Any) -> str:
    """A dimension value as the dashboard's Fn::Sub body writes it: {"Fn::GetAtt": [X, A]} is "${X.A}"."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        resource, attribute = value["Fn::GetAtt"]
        return f"${{{resource}.{attribute}}}"
    return _as_sub(value)


def test_every_metric_an_alarm_reads_is_on_the_dashboard() -> None:
    # When an alarm fires, the dashboard shows what it saw, and since when.
    shown = {tuple(m[:4]) for m in dashboard_metrics() if len(m) >= 5}
    for name, alarm in resources("AWS::CloudWatch::Alarm").items():
        for metric in alarm_metrics(alarm):
            (dimension,) = metric["Dimensions"]
            value = _as_dashboard_value(dimension["Value"])
            line = (metric["Namespace"], metric["MetricName"], dimension["Name"], value)
            assert line in shown, f"{name} reads {line}, which the dashboard does not show"


# --- logs ------------------------------------------------------------------------------------


def test_every_function_writes_to_a_log_group_created_before_it_with_the_retention_parameter() -> None:
    groups = resources("AWS::Logs::LogGroup")
    for function in functions():
        logging = template()["Resources"][function]["Properties"].get("LoggingConfig", {})
        group = logging.get("LogGroup", {}).get("Ref")
        assert group in groups, function
        props = groups[group]["Properties"]
        assert props["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        # The function refers to the group (so CloudFormation creates the group first), never the reverse.
        name = json.dumps(props["LogGroupName"])
        assert f"${{{function}}}" not in name, function
        assert json.dumps({"Ref": function}) not in name, function


def test_api_access_logs_are_json_with_the_fields_operators_need() -> None:
    api = template()["Resources"]["CallbridgeHttpApi"]["Properties"]
    settings = api["AccessLogSettings"]
    group = settings["DestinationArn"]["Fn::GetAtt"][0]
    assert template()["Resources"][group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    # API Gateway writes "-" for a value it does not have; numbers are written bare.
    line = re.sub(r"\$context\.[A-Za-z.]+", "200", settings["Format"])
    record = json.loads(line)
    assert settings["Format"].count("\n") == 0
    wanted = {
        "requestId": "$context.requestId",
        "sourceIp": "$context.identity.sourceIp",
        "routeKey": "$context.routeKey",
        "status": "$context.status",
        "responseLatency": "$context.responseLatency",
        "integrationError": "$context.integrationErrorMessage",
    }
    for field, variable in wanted.items():
        assert field in record
        assert re.search(rf'"{field}":"?{re.escape(variable)}"?[,}}]', settings["Format"]), field


# --- deploying -------------------------------------------------------------------------------

STATEFUL = {
    "AWS::DynamoDB::Table",
    "AWS::S3::Bucket",
    "AWS::SecretsManager::Secret",
    "AWS::SQS::Queue",
    "AWS::Logs::LogGroup",
}


def test_stateful_resources_say_what_happens_to_them_on_delete_and_replace() -> None:
    for name, res in template()["Resources"].items():
        if res["Type"] in STATEFUL:
            assert res.get("DeletionPolicy") in {"Retain", "Delete", "Snapshot"}, name
            assert res.get("UpdateReplacePolicy") == res["DeletionPolicy"], name
    keep = template()["Resources"]
    for name in ("CarrierSecret", "SpeechBucket", "CallsTable", "AccountsTable"):
        assert keep[name]["DeletionPolicy"] == "Retain", name


def test_every_table_a_deleted_stack_leaves_is_named_in_the_readme_and_removed_by_the_runbook() -> None:
    retained = {name for name, res in resources("AWS::DynamoDB::Table").items() if res["DeletionPolicy"] == "Retain"}
    assert {"CallsTable", "AccountsTable", "CampaignsTable", "SuppressionsTable"} <= retained
    deploying = " ".join(_readme_section("Deploying").split())
    kept = deploying.split("**Deleting a stack** keeps what cannot be recreated:", 1)[1].split(".", 1)[0]
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    removal = runbook.split("\n## Deleting a stack completely\n", 1)[1]
    for table in retained:
        assert table in kept, f"README: deleting a stack keeps {table}, which it does not say"
        assert table in removal.split("```", 1)[0], f"docs/runbook.md: {table} is not among what a deletion leaves"
        assert f"delete-table --table-name <{table}Name>" in removal, f"docs/runbook.md: how to remove {table}"


def test_the_carrier_secret_name_includes_the_stack_name() -> None:
    name = template()["Resources"]["CarrierSecret"]["Properties"]["Name"]["Fn::Sub"]
    assert "${AWS::StackName}" in name


@cache
def samconfig() -> dict[str, Any]:
    return tomllib.loads((ROOT / "samconfig.toml").read_text())


@pytest.mark.parametrize("environment", ["default", "prod"])
def test_samconfig_deploys_each_environment_without_a_hard_coded_bucket(environment: str) -> None:
    config = samconfig()[environment]
    assert config["global"]["parameters"]["stack_name"]
    deploy = config["deploy"]["parameters"]
    assert deploy["resolve_s3"] is True
    assert "s3_bucket" not in deploy
    assert "CAPABILITY_IAM" in deploy["capabilities"].split()
    assert deploy["region"]
    overrides = dict(re.findall(r'(\w+)="([^"]*)"', deploy["parameter_overrides"]))
    assert overrides
    parameters = template()["Parameters"]
    for name, value in overrides.items():
        assert name in parameters, name
        allowed = parameters[name].get("AllowedValues")
        if allowed:
            assert value in [str(v) for v in allowed], (name, value)
    expected = "prod" if environment == "prod" else "dev"
    assert overrides["Environment"] == expected


def test_the_two_environments_are_two_stacks() -> None:
    names = {samconfig()[env]["global"]["parameters"]["stack_name"] for env in ("default", "prod")}
    assert len(names) == 2


# --- the runbook -----------------------------------------------------------------------------


def test_the_runbook_says_what_each_alarm_means() -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    headings = [line for line in runbook.splitlines() if line.startswith("### ")]
    for name in resources("AWS::CloudWatch::Alarm"):
        assert any(f"`{name}`" in heading for heading in headings), f"docs/runbook.md has no section for {name}"
    for section in ("Redriving the dead-letter queues", "Rotating the Twilio auth token", "Disabling an account"):
        assert f"## {section}" in runbook
    assert "## Reading a call's timeline" in runbook


def test_the_runbook_says_how_to_redrive_every_dead_letter_queue() -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    section = runbook.split("\n## Redriving the dead-letter queues\n", 1)[1].split("\n## ", 1)[0]
    headings = [line for line in section.splitlines() if line.startswith("### ")]
    targets = {
        queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for queue in resources("AWS::SQS::Queue").values()
        if "RedrivePolicy" in queue["Properties"]
    }
    for name in targets:
        assert any(f"(`{name}`)" in heading for heading in headings), f"docs/runbook.md: no redrive of {name}"


# --- what the README's deploy section and the runbook name -------------------------------------


def _readme_section(title: str) -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index(f"\n## {title}\n")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end != -1 else None]


def _allowed(parameter: dict[str, Any]) -> str:
    """A parameter's allowed values as the README's table writes them."""
    if "AllowedValues" in parameter:
        return ", ".join(f"`{v}`" for v in parameter["AllowedValues"])
    if "MinValue" in parameter:
        return f"`{parameter['MinValue']}`–`{parameter['MaxValue']}`"
    return ""


def test_the_readme_lists_every_parameter_with_its_default_and_allowed_values() -> None:
    rows = {
        cells[0].strip("`"): cells
        for line in _readme_section("Deploying").splitlines()
        if line.startswith("| `") and (cells := [c.strip() for c in line.strip("|").split("|")]) and len(cells) == 4
    }
    parameters = template()["Parameters"]
    assert set(rows) == set(parameters)
    for name, parameter in parameters.items():
        _, default, allowed, _ = rows[name]
        assert default == (f"`{parameter['Default']}`" if parameter["Default"] != "" else "empty"), name
        if _allowed(parameter):
            assert allowed == _allowed(parameter), name


def test_the_guided_deploy_asks_for_the_parameters_in_the_template_s_order() -> None:
    (row,) = [line for line in _readme_section("Deploying").splitlines() if "`Parameter Environment`" in line]
    asked = re.findall(r"`(?:Parameter )?(\w+)`", row.split("|")[1])
    assert asked == list(template()["Parameters"])


def test_every_output_the_docs_name_exists_and_the_readme_lists_them_all() -> None:
    outputs = set(template()["Outputs"])
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"`(\w+)` output", readme + runbook))
    named |= {n for n in re.findall(r"<([A-Z]\w+)>", readme + runbook) if re.search(r"(Url|Arn|Name)$", n)}
    assert named
    assert named <= outputs, named - outputs
    listed = _readme_section("Deploying").split("The stack's outputs", 1)[1].split("\n\n", 1)[0]
    assert set(re.findall(r"`(\w+)`", listed)) == outputs
    # a queue's ARN, for a redrive, comes from its URL output (the runbook shows how)
    for queue in re.findall(r"<(\w+Queue) ARN>", readme + runbook):
        assert f"{queue}Url" in outputs or f"{queue}Arn" in outputs, queue


# CloudWatch's price of a standard-resolution alarm, per metric it reads (a metric math alarm pays for each).
ALARM_METRIC_USD_PER_MONTH = 0.10


def test_the_readme_counts_the_alarms_and_their_monthly_cost_as_the_template_has_them() -> None:
    alarms = resources("AWS::CloudWatch::Alarm")
    metrics = sum(len(alarm_metrics(alarm)) for alarm in alarms.values())
    text = " ".join(_readme_section("Operating").split())
    usd = metrics * ALARM_METRIC_USD_PER_MONTH
    assert f"The {len(alarms)} alarms read {metrics} metrics;" in text
    assert f"${ALARM_METRIC_USD_PER_MONTH:.2f} per alarm metric a month that is ${usd:.2f} a month" in text


_COMPARISONS = {
    "GreaterThanThreshold": "above",
    "GreaterThanOrEqualToThreshold": "at least",
    "LessThanThreshold": "below",
    "LessThanOrEqualToThreshold": "at most",
}


def _dimension(dimension: dict[str, Any]) -> str:
    value = dimension["Value"]
    if value == {"Ref": "AWS::StackName"}:
        shown = "the stack's name"
    elif "Ref" in value:
        shown = value["Ref"]
    else:
        shown = value["Fn::GetAtt"][0]
    return f"{dimension['Name']} {shown}"


def _metric(metric: dict[str, Any], stat: str, period: int) -> str:
    dimensions = ", ".join(_dimension(d) for d in metric["Dimensions"])
    return f"`{metric['Namespace']}` `{metric['MetricName']}` ({dimensions}), {stat} per {period} s"


def alarm_summary(name: str) -> str:
    """What an alarm measures, in the words docs/runbook.md gives it under its heading (built from template.yaml)."""
    props = template()["Resources"][name]["Properties"]
    if "MetricName" in props:
        measured = _metric(alarm_metrics(template()["Resources"][name])[0], props["Statistic"], props["Period"])
    else:
        parts = [
            f"{m['Id']} = {_metric(m['MetricStat']['Metric'], m['MetricStat']['Stat'], m['MetricStat']['Period'])}"
            for m in props["Metrics"]
            if "MetricStat" in m
        ]
        (expression,) = [m["Expression"] for m in props["Metrics"] if "Expression" in m]
        measured = f"`{expression}`, where " + "; ".join(parts)
    evaluation = props["EvaluationPeriods"]
    datapoints = props.get("DatapointsToAlarm", evaluation)
    comparison = _COMPARISONS[props["ComparisonOperator"]]
    return (
        f"**Alarm `{name}`:** {measured}; fires when {comparison} {props['Threshold']} in {datapoints} of "
        f"{evaluation} periods (missing data: {props.get('TreatMissingData', 'missing')})."
    )


def test_the_runbook_says_what_each_alarm_measures_as_the_template_has_it() -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    sections = {chunk.splitlines()[0]: chunk for chunk in runbook.split("\n### ")[1:] if chunk.startswith("`")}
    for name in resources("AWS::CloudWatch::Alarm"):
        (section,) = [text for heading, text in sections.items() if f"`{name}`" in heading]
        assert alarm_summary(name) in section.replace("\n", " "), f"docs/runbook.md: {name}\n{alarm_summary(name)}"


# Fields Powertools' Logger writes on every line of a handler decorated with inject_lambda_context (the api's and the
# webhooks' add correlation_id), and on a line logged with an exception.
POWERTOOLS_FIELDS = {
    "level",
    "location",
    "message",
    "timestamp",
    "service",
    "cold_start",
    "function_name",
    "function_memory_size",
    "function_arn",
    "function_request_id",
    "correlation_id",
    "exception",
    "exception_name",
    "xray_trace_id",
}


@cache
def logged_fields() -> frozenset[str]:
    """Field names the code adds to its log lines: extra={...} keys, keywords of log(...)/_warn(...), append_keys."""
    fields: set[str] = set()
    for directory in CODE_DIRS:
        for path in directory.rglob("*.py"):
            for call in ast.walk(ast.parse(path.read_text())):
                if not isinstance(call, ast.Call):
                    continue
                name = getattr(call.func, "attr", getattr(call.func, "id", ""))
                if name in {"debug", "info", "warning", "error", "exception"}:
                    for keyword in call.keywords:
                        if keyword.arg == "extra" and isinstance(keyword.value, ast.Dict):
                            fields |= {str(k.value) for k in keyword.value.keys if isinstance(k, ast.Constant)}
                elif name in {"log", "_log", "_warn", "append_keys"}:
                    fields |= {k.arg for k in call.keywords if k.arg}
    return frozenset(fields)


def access_log_fields() -> set[str]:
    fmt = template()["Resources"]["CallbridgeHttpApi"]["Properties"]["AccessLogSettings"]["Format"]
    return set(json.loads(re.sub(r"\$context\.[A-Za-z.]+", "0", fmt)))


def test_the_runbook_s_logs_insights_queries_read_fields_the_logs_have() -> None:
    docs = (ROOT / "docs" / "runbook.md").read_text() + (ROOT / "README.md").read_text()
    queries = [line for line in docs.splitlines() if line.startswith("fields @")]
    assert len(queries) >= 4
    known = POWERTOOLS_FIELDS | logged_fields() | access_log_fields()
    assert {"callid", "campaign", "placement", "carrier_status", "error"} <= logged_fields()
    for query in queries:
        for field in (f.strip() for f in query.removeprefix("fields ").split(",")):
            assert field.startswith("@") or field in known, f"{field}: no log line has it ({query})"
        assert "@requestId" not in query  # Lambda sets it on its own lines, not on the functions' JSON ones


def _queue_concurrency(function: str) -> int:
    (cap,) = [
        event["Properties"]["ScalingConfig"]["MaximumConcurrency"]
        for event in template()["Resources"][function]["Properties"]["Events"].values()
        if event["Type"] == "SQS"
    ]
    return int(cap)


def test_the_runbook_s_concurrency_caps_are_the_template_s() -> None:
    text = " ".join((ROOT / "docs" / "runbook.md").read_text().split())
    placer, notifier = _queue_concurrency("PlacerFunction"), _queue_concurrency("NotifierFunction")
    assert placer == notifier
    assert f"capped at {placer} concurrent invocations each, the campaigns function's at " in text
    assert f"the campaigns function's at {_queue_concurrency('CampaignsFunction')};" in text
    throttling = template()["Resources"]["CallbridgeHttpApi"]["Properties"]["DefaultRouteSettings"]
    rate, burst = throttling["ThrottlingRateLimit"], throttling["ThrottlingBurstLimit"]
    assert f"({rate:,} requests per second, bursts of {burst:,})" in text


def test_production_has_the_dashboard_and_the_dev_stack_the_template_s_default() -> None:
    overrides = {env: samconfig()[env]["deploy"]["parameters"]["parameter_overrides"] for env in ("default", "prod")}

    assert 'Dashboard="true"' in overrides["prod"]
    assert "Dashboard" not in overrides["default"]
    assert template()["Parameters"]["Dashboard"]["Default"] == "false"
