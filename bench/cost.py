"""USD per million calls, from the requests counted per call, the handlers' durations and memory, and a price table.

The prices are AWS list prices for us-east-1 without free tier, collected on 2026-11-26 (items marked †
came from recent third-party summaries where AWS's pages could not be read). Secrets Manager's is AWS's
published $0.05 per 10,000 API calls, not re-checked on that date. The benchmark prints the table it used
beside its results.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

PRICES_SOURCE = "AWS list prices, us-east-1, no free tier, collected 2026-11-26; † = third-party summary"
MILLION = 1_000_000
SECONDS_PER_MONTH = 30 * 24 * 3600

# Lambda writes START, END and REPORT lines for every invocation (REPORT with the X-Ray trace id): ~340 bytes.
PLATFORM_LOG_BYTES_PER_INVOCATION = 340
# X-Ray's default sampling rule: a reservoir of 1 trace per second, then 5 % of the rest.
XRAY_SAMPLED_SHARE = 0.05
XRAY_RESERVOIR_PER_SECOND = 1.0
# Lambda's SQS event source mapping long-polls each queue with about 5 pollers, 20 s per empty receive.
SQS_IDLE_POLLERS = 5
SQS_LONG_POLL_SECONDS = 20


@dataclass(frozen=True)
class Price:
    key: str
    item: str
    usd: float
    per: float  # units the price is for
    unit: str
    source: str = "AWS list price, 2026-11-26"


PRICE_TABLE: tuple[Price, ...] = (
    Price("lambda_request", "Lambda requests", 0.20, MILLION, "requests"),
    Price("lambda_gb_s", "Lambda compute, arm64 †", 0.0000133334, 1, "GB-s"),
    Price("http_api", "HTTP API requests †", 1.00, MILLION, "requests"),
    Price("sqs", "SQS standard requests †", 0.40, MILLION, "requests (64 KB chunks; empty receives count)"),
    Price("dynamodb_write", "DynamoDB on-demand write request units †", 0.625, MILLION, "WRU (1 KB; transactional ×2)"),
    Price("dynamodb_read", "DynamoDB on-demand read request units †", 0.125, MILLION, "RRU (4 KB; eventual ½)"),
    Price("dynamodb_streams", "DynamoDB Streams reads by Lambda", 0.0, 1, "reads"),
    Price("eventbridge_schedule", "EventBridge scheduled rule invocations", 0.0, 1, "invocations"),
    Price("logs_gb", "CloudWatch Logs ingestion †", 0.50, 1, "GB"),
    Price("xray_trace", "X-Ray traces recorded", 5.00, MILLION, "traces"),
    Price(
        "secretsmanager",
        "Secrets Manager API calls",
        0.05,
        10_000,
        "requests",
        "AWS Secrets Manager pricing (not re-checked 2026-11-26)",
    ),
    Price("secret_month", "Secrets Manager secret", 0.40, 1, "secret-months", "AWS Secrets Manager pricing"),
    Price(
        "alarm_metric_month",
        "CloudWatch alarm, standard resolution",
        0.10,
        1,
        "alarm-metric-months (a metric-math alarm: each metric it reads)",
        "Amazon CloudWatch pricing",
    ),
    Price("dashboard_month", "CloudWatch dashboard", 3.00, 1, "dashboard-months", "Amazon CloudWatch pricing"),
)


def prices(table: tuple[Price, ...] = PRICE_TABLE) -> dict[str, float]:
    """USD per single unit, by key."""
    return {p.key: p.usd / p.per for p in table}


@dataclass
class Usage:
    """What one call uses (means per call)."""

    invocations: dict[str, float] = field(default_factory=dict)  # function → billed invocations
    duration_ms: dict[str, float] = field(default_factory=dict)  # function → total handler ms
    memory_mb: dict[str, int] = field(default_factory=dict)  # function → configured memory
    read_units: float = 0.0
    write_units: float = 0.0
    sqs_requests: float = 0.0
    http_api_requests: float = 0.0
    secretsmanager_requests: float = 0.0
    log_bytes: float = 0.0  # the handlers' own output (platform lines are added here)
    traced: bool = True  # the template's Tracing is Active (X-Ray records a share of invocations)


def gb_seconds(usage: Usage) -> float:
    """Billed GB-s per call: each function's duration times its memory (1 ms granularity is below the noise)."""
    return sum(ms / 1000 * usage.memory_mb.get(name, 128) / 1024 for name, ms in usage.duration_ms.items())


def line_items(usage: Usage, unit_prices: Mapping[str, float]) -> list[dict[str, Any]]:
    """USD per call, by item: quantity per call, unit price and the product."""
    invocations = sum(usage.invocations.values())
    log_bytes = usage.log_bytes + invocations * PLATFORM_LOG_BYTES_PER_INVOCATION
    rows = [
        ("Lambda requests", invocations, "lambda_request"),
        ("Lambda compute (GB-s)", gb_seconds(usage), "lambda_gb_s"),
        ("HTTP API requests", usage.http_api_requests, "http_api"),
        ("SQS requests", usage.sqs_requests, "sqs"),
        ("DynamoDB write units", usage.write_units, "dynamodb_write"),
        ("DynamoDB read units", usage.read_units, "dynamodb_read"),
        ("CloudWatch Logs (GB)", log_bytes / 1024**3, "logs_gb"),
        ("X-Ray traces (5 % sampled)", invocations * XRAY_SAMPLED_SHARE if usage.traced else 0.0, "xray_trace"),
        ("Secrets Manager requests", usage.secretsmanager_requests, "secretsmanager"),
    ]
    return [
        {"item": item, "per_call": quantity, "unit_usd": unit_prices[key], "usd": quantity * unit_prices[key]}
        for item, quantity, key in rows
    ]


def per_million(usage: Usage, unit_prices: Mapping[str, float]) -> dict[str, Any]:
    """USD per 1M calls, in total and by item."""
    items = line_items(usage, unit_prices)
    for row in items:
        row["usd_per_million"] = round(row["usd"] * MILLION, 4)
    return {"usd_per_million": round(sum(r["usd"] for r in items) * MILLION, 2), "items": items}


def usage_from_counts(
    counts: Mapping[str, Any], memory_mb: Mapping[str, int], *, model_aws: bool = False, traced: bool = True
) -> Usage:
    """A Usage from one scenario of bench/requests_count.py.

    `model_aws`: replace the time handlers spent waiting on the sandbox's moto (much slower than DynamoDB
    and SQS in a region) with 8 ms per AWS request, and scale the rest (the handler's own CPU) by
    1769 MB / memory, Lambda's CPU share at that memory size.
    """
    functions = counts.get("functions", {})
    duration: dict[str, float] = {}
    for name, f in functions.items():
        ms = float(f["duration_ms"])
        if model_aws:
            own = max(0.0, ms - float(f.get("aws_wait_ms", 0)))
            ms = own * max(1.0, 1769 / memory_mb.get(name, 128)) + 8.0 * float(f["requests_total"])
        duration[name] = ms
    operations = counts.get("by_operation", {})
    units = counts.get("dynamodb_units", {})
    return Usage(
        invocations={n: float(f["invocations"]) for n, f in functions.items()},
        duration_ms=duration,
        memory_mb={n: memory_mb.get(n, 128) for n in functions},
        read_units=sum(v for k, v in units.items() if k.endswith(":read")),
        write_units=sum(v for k, v in units.items() if k.endswith(":write")),
        sqs_requests=sum(v for k, v in operations.items() if k.startswith("sqs:"))
        + sum(counts.get("event_source_requests", {}).values()),
        http_api_requests=float(counts.get("http_api_requests", 0)),
        secretsmanager_requests=sum(v for k, v in operations.items() if k.startswith("secretsmanager:")),
        log_bytes=sum(float(f.get("log_bytes", 0)) for f in functions.values()),
        traced=traced,
    )


def fixed_monthly(
    unit_prices: Mapping[str, float],
    *,
    scheduler_runs_per_month: float,
    scheduler_run: Mapping[str, Any] | None,
    scheduler_memory_mb: int,
    queues: int,
    traced: bool = True,
    monitoring: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Costs that do not grow with calls: the scheduler's idle runs, SQS idle polling, X-Ray's reservoir, and
    `monitoring` (alarms, dashboard, secret: monitoring_monthly).

    With tracing Active, X-Ray's reservoir records up to 1 trace a second whatever the volume; with
    PassThrough (the template's default) nothing is traced.
    """
    rows: list[dict[str, Any]] = []
    if scheduler_run is not None:
        requests = scheduler_run.get("requests", {})
        units = scheduler_run.get("units", {})
        per_run = (
            unit_prices["lambda_request"]
            + float(scheduler_run["duration"]) * scheduler_memory_mb / 1024 * unit_prices["lambda_gb_s"]
            + sum(v for k, v in units.items() if k.endswith(":read")) * unit_prices["dynamodb_read"]
            + sum(v for k, v in units.items() if k.endswith(":write")) * unit_prices["dynamodb_write"]
            + sum(v for k, v in requests.items() if k.startswith("sqs:")) * unit_prices["sqs"]
            + (float(scheduler_run.get("log_bytes", 0)) + PLATFORM_LOG_BYTES_PER_INVOCATION)
            / 1024**3
            * unit_prices["logs_gb"]
        )
        rows.append(
            {
                "item": f"scheduler idle runs ({scheduler_runs_per_month:,.0f} per month)",
                "usd_per_month": round(per_run * scheduler_runs_per_month, 2),
            }
        )
    receives = queues * SQS_IDLE_POLLERS * SECONDS_PER_MONTH / SQS_LONG_POLL_SECONDS
    rows.append(
        {
            "item": f"SQS idle long polls by Lambda ({queues} queues × {SQS_IDLE_POLLERS} pollers)",
            "usd_per_month": round(receives * unit_prices["sqs"], 2),
        }
    )
    rows.append(
        {
            "item": "X-Ray sampling reservoir (1 trace/s)"
            if traced
            else "X-Ray (Tracing: PassThrough, nothing traced)",
            "usd_per_month": round(XRAY_RESERVOIR_PER_SECOND * SECONDS_PER_MONTH * unit_prices["xray_trace"], 2)
            if traced
            else 0.0,
        }
    )
    rows += monitoring or []
    return {"items": rows, "usd_per_month": round(sum(r["usd_per_month"] for r in rows), 2)}


def _by_default(resource: Mapping[str, Any], template: Mapping[str, Any]) -> bool:
    """Whether a resource is created with every parameter at its default (its Condition an Equals or Not of one
    parameter and a value, as the template's are)."""
    name = resource.get("Condition")
    if name is None:
        return True
    condition = template["Conditions"][name]
    negated = "Fn::Not" in condition
    left, right = (condition["Fn::Not"][0] if negated else condition)["Fn::Equals"]
    default = template["Parameters"][left["Ref"]].get("Default")
    return (str(default) == str(right)) != negated


def monitoring_monthly(template: Mapping[str, Any], unit_prices: Mapping[str, float]) -> list[dict[str, Any]]:
    """What the stack's alarms, dashboard and secret cost a month as deployed with the template's defaults:
    CloudWatch bills each metric an alarm reads (a metric-math alarm, each of its metrics) and each dashboard."""
    resources = [r for r in template["Resources"].values() if _by_default(r, template)]
    alarms = [r["Properties"] for r in resources if r["Type"] == "AWS::CloudWatch::Alarm"]
    metrics = sum(sum(1 for m in a["Metrics"] if "MetricStat" in m) if "Metrics" in a else 1 for a in alarms)
    dashboards = sum(1 for r in resources if r["Type"] == "AWS::CloudWatch::Dashboard")
    every_dashboard = sum(1 for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard")
    secrets = sum(1 for r in resources if r["Type"] == "AWS::SecretsManager::Secret")
    dashboard_price = unit_prices["dashboard_month"]
    if dashboards == every_dashboard:
        dashboard = "the Dashboard parameter's default creates it"
    else:
        dashboard = f"left out by the Dashboard parameter's default; true adds ${every_dashboard * dashboard_price:.2f}"
    return [
        {
            "item": f"CloudWatch alarms ({len(alarms)} alarms reading {metrics} metrics)",
            "usd_per_month": round(metrics * unit_prices["alarm_metric_month"], 2),
        },
        {
            "item": f"CloudWatch dashboard ({dashboard})",
            "usd_per_month": round(dashboards * dashboard_price, 2),
        },
        {
            "item": f"Secrets Manager ({secrets} secret: the carrier's credentials)",
            "usd_per_month": round(secrets * unit_prices["secret_month"], 2),
        },
    ]


def price_table_rows(table: tuple[Price, ...] = PRICE_TABLE) -> list[dict[str, Any]]:
    return [asdict(p) for p in table]
