"""The cost model's arithmetic with a toy price table, DynamoDB request units and filter patterns."""

from __future__ import annotations

from typing import Any

import pytest

from bench.capacity import CapacityModel, Index, TableSchema, item_size, read_units, value_size, write_units
from bench.cost import (
    PLATFORM_LOG_BYTES_PER_INVOCATION,
    Usage,
    fixed_monthly,
    gb_seconds,
    line_items,
    monitoring_monthly,
    per_million,
    prices,
    usage_from_counts,
)
from sandbox.filters import matches, passing

TOY = {
    "lambda_request": 1.0,
    "lambda_gb_s": 10.0,
    "http_api": 2.0,
    "sqs": 3.0,
    "dynamodb_write": 4.0,
    "dynamodb_read": 5.0,
    "logs_gb": 1024**3,  # one dollar per byte, to see the bytes
    "xray_trace": 100.0,
    "secretsmanager": 7.0,
}


def test_gb_seconds_is_duration_times_memory() -> None:
    usage = Usage(duration_ms={"a": 1000.0, "b": 500.0}, memory_mb={"a": 1024, "b": 512})
    assert gb_seconds(usage) == pytest.approx(1.0 + 0.25)


def test_line_items_multiply_each_quantity_by_its_price() -> None:
    usage = Usage(
        invocations={"a": 2.0, "b": 1.0},
        duration_ms={"a": 1000.0},
        memory_mb={"a": 1024, "b": 128},
        read_units=1.5,
        write_units=2.0,
        sqs_requests=3.0,
        http_api_requests=4.0,
        secretsmanager_requests=0.5,
        log_bytes=100.0,
    )
    items = {row["item"]: row["usd"] for row in line_items(usage, TOY)}
    assert items["Lambda requests"] == 3.0
    assert items["Lambda compute (GB-s)"] == pytest.approx(10.0)
    assert items["HTTP API requests"] == 8.0
    assert items["SQS requests"] == 9.0
    assert items["DynamoDB write units"] == 8.0
    assert items["DynamoDB read units"] == 7.5
    assert items["CloudWatch Logs (GB)"] == pytest.approx(100 + 3 * PLATFORM_LOG_BYTES_PER_INVOCATION)
    assert items["X-Ray traces (5 % sampled)"] == pytest.approx(3 * 0.05 * 100)
    assert items["Secrets Manager requests"] == 3.5


def test_per_million_is_the_sum_times_a_million() -> None:
    usage = Usage(invocations={"a": 1.0}, memory_mb={"a": 128})
    prices = dict.fromkeys(TOY, 0.0) | {"lambda_request": 0.20 / 1_000_000}
    assert per_million(usage, prices)["usd_per_million"] == 0.2


def test_usage_from_counts_adds_the_event_source_mappings_sqs_requests() -> None:
    counts = {
        "functions": {"Api": {"invocations": 1, "duration_ms": 100.0, "requests_total": 2, "log_bytes": 50}},
        "by_operation": {"sqs:SendMessage": 1, "dynamodb:PutItem": 1, "secretsmanager:GetSecretValue": 0.25},
        "dynamodb_units": {"CallsTable:write": 3, "CallsTable:read": 0.5, "PacingTable:write": 1},
        "event_source_requests": {"sqs:ReceiveMessage": 1, "sqs:DeleteMessageBatch": 1},
        "http_api_requests": 6,
    }
    usage = usage_from_counts(counts, {"Api": 512})
    assert usage.sqs_requests == 3
    assert usage.write_units == 4
    assert usage.read_units == 0.5
    assert usage.secretsmanager_requests == 0.25
    assert usage.memory_mb == {"Api": 512}
    assert usage.log_bytes == 50


def test_modelled_durations_replace_moto_wait_and_scale_cpu() -> None:
    counts = {
        "functions": {"Api": {"invocations": 1, "duration_ms": 100.0, "aws_wait_ms": 80.0, "requests_total": 2}},
    }
    usage = usage_from_counts(counts, {"Api": 1769}, model_aws=True)
    assert usage.duration_ms["Api"] == pytest.approx(20.0 + 2 * 8.0)


# --- DynamoDB request units ---------------------------------------------------------------------------


def test_sizes_follow_dynamodb_rules() -> None:
    assert value_size({"S": "héllo"}) == 6
    assert value_size({"N": "12345"}) == 4  # ceil(5 / 2) + 1
    assert value_size({"BOOL": True}) == 1
    assert value_size({"M": {"a": {"S": "xy"}}}) == 3 + 1 + 2 + 1
    assert item_size({"pk": {"S": "abc"}, "n": {"N": "7"}}) == 2 + 3 + 1 + 2


def test_units_round_up_per_kilobyte_and_four_kilobytes() -> None:
    assert write_units(0) == 1
    assert write_units(1024) == 1
    assert write_units(1025) == 2
    assert read_units(4096, consistent=True) == 1.0
    assert read_units(4097, consistent=True) == 2.0
    assert read_units(100, consistent=False) == 0.5


def _model() -> CapacityModel:
    schema = TableSchema(
        "CallsTable",
        ("callid",),
        (Index("ByAccount", ("account_id",), "ALL"), Index("Due", ("due",), "KEYS_ONLY")),
    )
    return CapacityModel({"calls-physical": schema})


def _put(item: dict[str, dict[str, str]]) -> dict[str, object]:
    return {"TableName": "calls-physical", "Item": item}


def test_put_writes_the_table_and_each_index_the_item_is_in() -> None:
    model = _model()
    big = "x" * 1500
    item = {"callid": {"S": "c1"}, "account_id": {"S": "a"}, "body": {"S": big}}
    # 2 units for the ~1.5 KB item, 2 more for the ALL-projected index, none for Due (no `due` attribute)
    assert model.units("PutItem", _put(item), {}) == {"CallsTable:write": 4}


def test_a_changed_index_key_is_a_delete_and_a_put() -> None:
    model = _model()
    first = {"callid": {"S": "c1"}, "due": {"S": "t1"}}
    assert model.units("PutItem", _put(first), {}) == {"CallsTable:write": 2}
    moved = {"callid": {"S": "c1"}, "due": {"S": "t2"}}
    assert model.units("PutItem", _put(moved), {}) == {"CallsTable:write": 3}
    gone = {"callid": {"S": "c1"}}
    assert model.units("PutItem", _put(gone), {}) == {"CallsTable:write": 2}


def test_a_failed_condition_costs_the_existing_item_and_no_index_writes() -> None:
    model = _model()
    item = {"callid": {"S": "c1"}, "account_id": {"S": "a"}}
    model.units("PutItem", _put(item), {})
    failed = {"Error": {"Code": "ConditionalCheckFailedException"}}
    assert model.units("PutItem", _put(item), failed) == {"CallsTable:write": 1}
    throttled = {"Error": {"Code": "ProvisionedThroughputExceededException"}}
    assert model.units("PutItem", _put(item), throttled) == {}


def test_reads_by_consistency_and_transactions_double() -> None:
    model = _model()
    item = {"callid": {"S": "c1"}}
    get = {"TableName": "calls-physical", "Key": item, "ConsistentRead": True}
    assert model.units("GetItem", get, {"Item": item}) == {"CallsTable:read": 1.0}
    assert model.units("GetItem", {**get, "ConsistentRead": False}, {}) == {"CallsTable:read": 0.5}
    query = {"TableName": "calls-physical", "IndexName": "ByAccount", "ConsistentRead": True}
    assert model.units("Query", query, {"Items": []}) == {"CallsTable:read": 0.5}
    transaction = {"TransactItems": [{"Put": {"TableName": "calls-physical", "Item": {"callid": {"S": "c2"}}}}]}
    assert model.units("TransactWriteItems", transaction, {}) == {"CallsTable:write": 2}


# --- filter patterns ------------------------------------------------------------------------------------

FINAL = {"eventName": ["MODIFY"], "dynamodb": {"NewImage": {"status": {"S": ["COMPLETED", "FAILED"]}}}}


def _record(event: str, status: str, old: str | None = None) -> dict[str, object]:
    images: dict[str, object] = {"NewImage": {"status": {"S": status}}}
    if old is not None:
        images["OldImage"] = {"status": {"S": old}}
    return {"eventName": event, "dynamodb": images}


def test_literal_values_match_any_of_the_list() -> None:
    assert matches(FINAL, _record("MODIFY", "COMPLETED"))
    assert not matches(FINAL, _record("MODIFY", "RINGING"))
    assert not matches(FINAL, _record("INSERT", "COMPLETED"))


def test_exists_and_anything_but_and_prefix() -> None:
    assert matches({"a": [{"exists": True}]}, {"a": 1})
    assert not matches({"a": [{"exists": True}]}, {"b": 1})
    assert matches({"a": [{"exists": False}]}, {"b": 1})
    assert matches({"a": [{"anything-but": ["x", "y"]}]}, {"a": "z"})
    assert not matches({"a": [{"anything-but": ["x", "y"]}]}, {"a": "x"})
    assert matches({"a": [{"prefix": "CA"}]}, {"a": "CA123"})


def test_passing_counts_records_matching_any_pattern() -> None:
    records = [_record("MODIFY", "COMPLETED"), _record("MODIFY", "RINGING"), _record("MODIFY", "FAILED")]
    assert passing(records, [FINAL]) == 2
    assert passing(records, [{"eventName": ["REMOVE"]}]) == 0


def _stack(dashboard_default: str) -> dict[str, Any]:
    return {
        "Parameters": {"Dashboard": {"Type": "String", "Default": dashboard_default}, "Mail": {"Default": ""}},
        "Conditions": {
            "HasDashboard": {"Fn::Equals": [{"Ref": "Dashboard"}, "true"]},
            "HasMail": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Mail"}, ""]}]},
        },
        "Resources": {
            "One": {"Type": "AWS::CloudWatch::Alarm", "Properties": {"MetricName": "Errors"}},
            "Ratio": {
                "Type": "AWS::CloudWatch::Alarm",
                "Properties": {"Metrics": [{"Id": "a", "MetricStat": {}}, {"Id": "b", "MetricStat": {}}, {"Id": "r"}]},
            },
            "MailOnly": {"Type": "AWS::CloudWatch::Alarm", "Condition": "HasMail", "Properties": {"MetricName": "X"}},
            "Board": {"Type": "AWS::CloudWatch::Dashboard", "Condition": "HasDashboard", "Properties": {}},
            "Secret": {"Type": "AWS::SecretsManager::Secret", "Properties": {}},
        },
    }


def test_monitoring_costs_each_alarm_metric_and_what_the_defaults_create() -> None:
    unit = prices()

    off = {r["item"].split(" (")[0]: r["usd_per_month"] for r in monitoring_monthly(_stack("false"), unit)}
    on = {r["item"].split(" (")[0]: r["usd_per_month"] for r in monitoring_monthly(_stack("true"), unit)}

    # one plain alarm (1 metric) and a metric-math alarm reading 2; the alarm behind an empty parameter is not made
    assert off["CloudWatch alarms"] == round(3 * 0.10, 2)
    assert off["CloudWatch dashboard"] == 0.0
    assert on["CloudWatch dashboard"] == 3.00
    assert off["Secrets Manager"] == 0.40


def test_fixed_monthly_adds_the_monitoring_rows_to_its_total() -> None:
    unit = prices()
    rows = monitoring_monthly(_stack("true"), unit)

    without = fixed_monthly(unit, scheduler_runs_per_month=0, scheduler_run=None, scheduler_memory_mb=512, queues=1)
    with_them = fixed_monthly(
        unit, scheduler_runs_per_month=0, scheduler_run=None, scheduler_memory_mb=512, queues=1, monitoring=rows
    )

    assert with_them["usd_per_month"] == round(without["usd_per_month"] + 0.30 + 3.00 + 0.40, 2)
    assert with_them["items"][-3:] == rows


def test_the_template_leaves_the_dashboard_out_by_default_and_keeps_under_five_dollars_of_monitoring() -> None:
    from sandbox.template import load_template

    template = load_template()
    rows = {r["item"].split(" (")[0]: r for r in monitoring_monthly(template, prices())}

    assert template["Parameters"]["Dashboard"]["Default"] == "false"
    assert template["Resources"]["OperationsDashboard"]["Condition"] == "HasDashboard"
    assert template["Outputs"]["DashboardUrl"]["Condition"] == "HasDashboard"
    assert rows["CloudWatch dashboard"]["usd_per_month"] == 0.0
    assert "true adds $3.00" in rows["CloudWatch dashboard"]["item"]
