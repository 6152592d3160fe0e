"""Results as JSON, a Markdown report (targets first) and a PNG chart of the latency distributions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.cost import PRICES_SOURCE, price_table_rows

TARGETS_NOTE = "Targets from docs/targets.md; the sandbox runs on this one machine."


def _ms(value: Any) -> str:
    return "–" if value is None else f"{value:,.0f} ms" if abs(value) >= 10 else f"{value:.1f} ms"


def _get(data: Any, *path: Any) -> Any:
    for key in path:
        if not isinstance(data, dict | list):
            return None
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _row(
    key: str, what: str, target: str, measured: str | None, met: bool | None, value: float | None
) -> dict[str, Any]:
    """One target: `value` is its headline number (for the change against the previous run)."""
    return {
        "key": key,
        "what": what,
        "target": target,
        "measured": measured if measured is not None else "not measured",
        "met": met,
        "value": value,
    }


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of docs/targets.md with what was measured and whether it is met (None: not measured)."""
    rows: list[dict[str, Any]] = []
    immediate = _get(results, "requests", "scenarios", "immediate answered")
    count = _get(immediate, "aws_requests")
    esm = sum((_get(immediate, "event_source_requests") or {}).values())
    rows.append(
        _row(
            "requests",
            "AWS requests per immediate answered call",
            "≤ 8",
            f"{count:g} (inside the functions; + {esm:g} by the SQS event source mapping)"
            if count is not None
            else None,
            None if count is None else count <= 8,
            count,
        )
    )
    usd = _get(results, "cost", "scenarios", "immediate answered", "measured", "usd_per_million")
    rows.append(
        _row(
            "cost",
            "AWS cost per 1M calls (cost model from counted requests)",
            "≤ $15 (stretch ≤ $10)",
            f"${usd:,.2f} (immediate answered call)" if usd is not None else None,
            None if usd is None else usd <= 15,
            usd,
        )
    )
    fixed = _get(results, "cost", "fixed_monthly", "usd_per_month")
    rows.append(
        _row(
            "fixed",
            "fixed AWS cost per month with no calls",
            "≤ $5",
            f"${fixed:,.2f} (tracing {_get(results, 'cost', 'tracing') or 'Active'})" if fixed is not None else None,
            None if fixed is None else fixed <= 5,
            fixed,
        )
    )
    handlers = _get(results, "cold_start", "functions") or {}
    ratios = {k: v["ratio_to_boto3"] for k, v in handlers.items() if "ratio_to_boto3" in v}
    worst = max(ratios, key=lambda k: ratios[k]) if ratios else None
    rows.append(
        _row(
            "import",
            "import time of each handler module vs bare `import boto3`, same run",
            "≤ 1.5×",
            f"worst {ratios[worst]:.2f}× ({worst}); best {min(ratios.values()):.2f}×" if worst else None,
            None if worst is None else ratios[worst] <= 1.5,
            ratios[worst] if worst else None,
        )
    )
    deployment = _get(results, "deployment") or {}
    layer = sum(v["bytes"] for v in (deployment.get("layers") or {}).values()) if deployment.get("built") else None
    sdk = deployment.get("aws_sdk_in_layer")
    rows.append(
        _row(
            "layer",
            "the layer: no boto3/botocore of its own; size",
            "none; reported",
            None
            if layer is None
            else f"{layer / 1024**2:,.1f} MiB; " + (f"carries {', '.join(sdk)}" if sdk else "no AWS SDK of its own")
            if sdk is not None
            else f"{layer / 1024**2:,.1f} MiB",
            None if layer is None or sdk is None else not sdk,
            None if layer is None else round(layer / 1024**2, 1),
        )
    )
    pacing = _get(results, "pacing")
    share = _get(pacing, "share_of_limit")
    rows.append(
        _row(
            "pacing",
            "calls per second to the carrier, any 1-s window",
            "≤ configured CPS, ≥ 90 % of it under backlog",
            f"max {pacing['max_in_any_1s_window']} in 1 s at CPS {pacing['carrier_cps']:g}; "
            f"{share * 100:.1f} % of the limit under a backlog of {pacing['backlog']}"
            if share is not None
            else None,
            None if share is None else bool(pacing["within_limit"]) and share >= 0.9,
            None if share is None else round(share * 100, 1),
        )
    )
    burst = _get(results, "time_to_dial", "burst")
    first = _get(results, "time_to_dial", "first_burst")
    p50, p99 = _get(burst, "dial_ms", "p50"), _get(burst, "dial_ms", "p99")
    first_dial = _get(first, "dial_ms", "p99")
    rows.append(
        _row(
            "dial",
            "burst of 100: accepted → carrier request, p50 / p99 (sandbox)",
            "≤ 100 ms / ≤ 500 ms",
            f"{_ms(p50)} / {_ms(p99)}"
            + (
                f" on warm containers; first burst {_ms(_get(first, 'dial_ms', 'p50'))} / {_ms(first_dial)}"
                if first_dial
                else ""
            )
            if p50 is not None
            else None,
            None if p50 is None else p50 <= 100 and p99 <= 500,
            p99,
        )
    )
    api99 = _get(burst, "api_ms", "p99")
    first_api = _get(first, "api_ms", "p99")
    rows.append(
        _row(
            "api",
            "API response under that burst, p99 (sandbox)",
            "≤ 200 ms",
            f"{_ms(api99)} (p50 {_ms(_get(burst, 'api_ms', 'p50'))})"
            + (f" on warm containers; first burst {_ms(first_api)}" if first_api else "")
            if api99 is not None
            else None,
            None if api99 is None else api99 <= 200,
            api99,
        )
    )
    sets = {k: v for k, v in (_get(results, "schedule") or {}).items() if isinstance(v, dict) and "lateness_ms" in v}
    worst_p99 = max((v["lateness_ms"]["p99"] for v in sets.values()), default=None)
    rows.append(
        _row(
            "schedule",
            "scheduled start lateness p99 (sandbox), every set",
            "≤ 100 ms",
            "; ".join(
                f"{k} {_ms(v['lateness_ms']['p99'])} ({v['placed']}/{v['calls']} placed)" for k, v in sets.items()
            )
            if sets
            else None,
            None if worst_p99 is None else worst_p99 <= 100 and all(v["placed"] == v["calls"] for v in sets.values()),
            worst_p99,
        )
    )
    return rows


def with_previous(rows: list[dict[str, Any]], previous: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The rows with the previous run's measurement and the change in each headline number."""
    if not previous:
        return rows
    before = {r["key"]: r for r in targets(previous)}
    out = []
    for row in rows:
        old = before.get(row["key"], {})
        change = None
        if row.get("value") is not None and old.get("value") is not None:
            change = row["value"] - old["value"]
        out.append({**row, "previous": old.get("measured", "not measured"), "change": change})
    return out


_UNITS = {
    "requests": "{:+g}",
    "cost": "{:+,.2f} $",
    "fixed": "{:+,.2f} $",
    "import": "{:+.2f}×",
    "layer": "{:+,.1f} MiB",
    "pacing": "{:+.1f} pts",
    "dial": "{:+,.0f} ms (p99)",
    "api": "{:+,.0f} ms",
    "schedule": "{:+,.0f} ms (worst p99)",
}


def _change(row: dict[str, Any]) -> str:
    change = row.get("change")
    return "–" if change is None else _UNITS.get(row["key"], "{:+g}").format(change)


def _targets_table(results: dict[str, Any]) -> list[str]:
    rows = results["targets"]
    previous = results.get("previous_run") or {}
    if not any("previous" in r for r in rows):
        return _table(
            ["what", "target", "measured", "met?"],
            [[r["what"], r["target"], r["measured"], _met(r["met"])] for r in rows],
        )
    label = f"previous run ({previous.get('started', '?')}, commit {previous.get('commit', '?')})"
    return _table(
        ["what", "target", "measured", "met?", label, "change"],
        [[r["what"], r["target"], r["measured"], _met(r["met"]), r["previous"], _change(r)] for r in rows],
    )


def _met(value: bool | None) -> str:
    return "not measured" if value is None else "yes" if value else "**no**"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _speed(meta: dict[str, Any], previous: dict[str, Any]) -> str:
    """The machine's speed at start / end of the run (bench/machine.py's fixed reference work), and the previous
    run's: the CPU a call takes, and so the burst's figures, follow it."""
    if "reference_ms_start" not in meta:
        return ""
    out = (
        f"A fixed piece of Python (bench/machine.py, `reference_ms`) took {meta['reference_ms_start']} / "
        f"{meta.get('reference_ms_end', '?')} ms at start / end"
    )
    if "reference_ms_start" in previous:
        out += f" ({previous['reference_ms_start']} / {previous.get('reference_ms_end', '?')} ms in the previous run)"
    return out + ": the same code's CPU per call scales with it. "


def markdown(results: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    meta = results["meta"]
    out = [
        "# callbridge benchmarks",
        "",
        f"Run {meta['started']} on {meta['machine']}; `{meta['command']}` took {meta['seconds']:.0f} s. "
        f"Load average at start / end: {meta['load_start']} / {meta['load_end']}. "
        + _speed(meta, results.get("previous", {}).get("meta", {}))
        + f"Commit {meta.get('commit', '?')}"
        + (
            f", with uncommitted changes by others in {len(meta['uncommitted_changes_outside_bench'])} files "
            "(measured as on disk; listed in latest.json)."
            if meta.get("uncommitted_changes_outside_bench")
            else "."
        ),
        "",
        "## Against the targets",
        "",
        TARGETS_NOTE,
        "",
        *_targets_table(results),
        "",
    ]
    if results.get("notes"):
        out += ["Notes:", ""] + [f"- {n}" for n in results["notes"]] + [""]
    out += _latency_section(results) + _schedule_section(results) + _pacing_section(results)
    out += _requests_section(results) + _cost_section(results) + _coldstart_section(results)
    return "\n".join(out).rstrip() + "\n"


# Each time-to-dial load, as the tables name it. The bursts run in a sandbox as deployed (no probes, the
# scheduler at the template's rate): the first on the containers the sandbox started with, so most of its
# requests wait for a new one; the second, the one held against the targets, on the containers it left warm.
LOADS = {
    "isolated": "isolated",
    "steady": "steady",
    "first_burst": "first burst (containers starting)",
    "burst": "burst (warm containers)",
}


def _share(fraction: float | None) -> str:
    return "–" if fraction is None else f"{fraction * 100:.0f} %"


def _latency_section(results: dict[str, Any]) -> list[str]:
    ttd = results.get("time_to_dial") or {}
    rows = []
    offered = [(f"offered {r['offered_rate']:g}/s (warm containers)", r) for r in ttd.get("offered") or []]
    for name, r in [(name, ttd.get(key)) for key, name in LOADS.items()] + offered:
        if not r:
            continue
        d, a = r.get("dial_ms", {}), r.get("api_ms", {})
        load = f"{r.get('calls', '?')} calls" + (f", {r.get('concurrency')} at a time" if "burst" in name else "")
        load += f", offered {r['offered_rate']:g}/s" if r.get("offered_rate") else ""
        rows.append(
            [
                name,
                load,
                r.get("errors") or 0,
                r.get("intake_rps") or "–",
                _share(r.get("machine_busy")),
                _share(r.get("moto_busy")),
                _ms(a.get("p50")),
                _ms(a.get("p99")),
                _ms(d.get("p50")),
                _ms(d.get("p95")),
                _ms(d.get("p99")),
                _ms(d.get("max")),
            ]
        )
    out = [
        "## Time to dial",
        "",
        "From the API's 200 (seen by a client in its own process) to the carrier simulator receiving the "
        f"create-call request; CarrierCallsPerSecond = {ttd.get('carrier_cps', '?')} so pacing does not dominate. "
        "Isolated and steady run in the sandbox that counts requests (probes in its containers, the scheduler "
        "every few seconds); the bursts in one as deployed (no probes, the scheduler at the template's rate): "
        "first on the containers the sandbox started with, so most of its requests wait for a new container (a "
        "cold start), then on the containers it left warm, which is the figure held against the targets; then "
        "as many calls again at each offered rate (posted at that rate, not as fast as the API answers), which "
        "shows where the machine's capacity ends. From the first call posted to the last carrier request: machine "
        "busy, the share of all cores in use (every process); moto busy, the share of one core moto used (it "
        "handles one request at a time, so a queue builds in front of it as this nears 100 %).",
        "",
        *_table(
            [
                "load",
                "calls",
                "API errors",
                "intake req/s",
                "machine busy",
                "moto busy",
                "API p50",
                "API p99",
                "dial p50",
                "dial p95",
                "dial p99",
                "dial max",
            ],
            rows,
        ),
        "",
    ]
    for key in LOADS:
        r = ttd.get(key) or {}
        if r.get("error_samples") or r.get("http_errors"):
            handler = ", ".join(f"{k}: {v}" for k, v in (r.get("http_errors") or {}).items())
            samples = "; ".join(f"`{s}`" for s in r.get("error_samples") or [])
            out += [f"- {key}: handlers answered with errors: {handler or 'none'}. Client saw: {samples or 'none'}."]
    out += [""]
    cpu = ttd.get("burst", {}).get("cpu_seconds_per_call")
    if cpu:
        out += [
            f"CPU per call during the burst: moto (the sandbox's AWS) {cpu['moto']:.3f} s, the sandbox process "
            f"(gateway, event sources, simulator) {cpu['sandbox']:.3f} s"
            + (f", the functions' containers {cpu['functions']:.3f} s" if "functions" in cpu else "")
            + ".",
            "",
        ]
    return out


def _schedule_section(results: dict[str, Any]) -> list[str]:
    rows = []
    for key, r in (results.get("schedule") or {}).items():
        if not r or "error" in r:
            rows.append([key, (r or {}).get("error", "not run"), "", "", "", "", ""])
            continue
        every = f"every {r['schedule_every']:g} s" if r.get("schedule_every") else r.get("rule_rate") or "template"
        lat = r["lateness_ms"]
        paths = ", ".join(f"{k}: {v}" for k, v in r.get("dispatched_by", {}).items())
        claimed, onward = r.get("claimed_vs_due_ms") or {}, r.get("claim_to_carrier_ms") or {}
        rows.append(
            [
                key,
                every,
                f"{r['placed']}/{r['calls']}",
                _ms(lat.get("p50")),
                _ms(lat.get("p99")),
                _ms(lat.get("max")),
                f"{_ms(claimed.get('p50'))} / {_ms(claimed.get('max'))}",
                f"{_ms(onward.get('p50'))} / {_ms(onward.get('max'))}",
                paths,
            ]
        )
    return [
        "## Schedule precision",
        "",
        "Calls posted with `call_date` a few seconds to a minute and a half ahead (whole seconds); lateness is the "
        "carrier's receipt of the create-call request minus `call_date` (negative: early).",
        "",
        *_table(
            [
                "set",
                "scheduler fired",
                "placed",
                "lateness p50",
                "p99",
                "max",
                "claimed vs call_date p50 / max",
                "claim → carrier p50 / max",
                "reached the queue by",
            ],
            rows,
        ),
        "",
        "Claimed: the placer's conditional QUEUED → DIALING write (the call's `dialing` event) against call_date, "
        "i.e. how late the queue delivered the message; then claim → carrier: pacing slot, carrier request.",
        "",
    ]


def _pacing_section(results: dict[str, Any]) -> list[str]:
    p = results.get("pacing")
    if not p or "placed" not in p:
        return ["## Pacing", "", f"Not measured: {(p or {}).get('error', 'no result')}.", ""]
    return [
        "## Pacing",
        "",
        *_table(
            ["CPS", "backlog", "placed", "max in any 1 s", "achieved rate", "share of limit", "gap p50 / min"],
            [
                [
                    f"{p['carrier_cps']:g}",
                    p["backlog"],
                    p["placed"],
                    p["max_in_any_1s_window"],
                    f"{p['achieved_rate']:.3f}/s",
                    f"{p['share_of_limit'] * 100:.1f} %",
                    f"{_ms(p['gap_ms'].get('p50'))} / {_ms(p['gap_ms'].get('min'))}",
                ]
            ],
        ),
        "",
        f"The placer's handler time per call under this backlog: {p['placer_seconds_per_call']} s "
        "(it sleeps until its slot).",
        "",
    ]


def _requests_section(results: dict[str, Any]) -> list[str]:
    req = results.get("requests") or {}
    scenarios = req.get("scenarios", {})
    rows = []
    for name, s in scenarios.items():
        ops = ", ".join(f"{k} {v:g}" for k, v in s.get("by_operation", {}).items())
        units = ", ".join(f"{k} {v:g}" for k, v in s.get("dynamodb_units", {}).items())
        esm = ", ".join(f"{k} {v:g}" for k, v in s.get("event_source_requests", {}).items()) or "–"
        rows.append(
            [
                name,
                f"{s.get('aws_requests', 0):g}",
                ops,
                esm,
                units,
                s.get("http_api_requests", "–"),
                s.get("lambda_invocations", "–"),
            ]
        )
    out = [
        "## AWS requests per call",
        "",
        "Counted inside the functions with botocore event hooks, one call at a time (mean of "
        f"{next(iter(scenarios.values())).get('calls', '?') if scenarios else '?'} calls each, warm containers). "
        "The SQS event source mapping's requests (billed) are apart; its stream reads are free and not shown.",
        "",
        *_table(
            [
                "call",
                "requests",
                "by operation",
                "event source mapping",
                "DynamoDB units",
                "HTTP API requests",
                "Lambda invocations",
            ],
            rows,
        ),
        "",
    ]
    for name, reason in req.get("missing", {}).items():
        out += [f"- {name}: {reason}"]
    immediate = scenarios.get("immediate answered")
    if immediate:
        out += [
            "",
            "Immediate answered call, by function:",
            "",
            *_table(
                ["function", "invocations", "requests", "handler ms (sandbox)", "of which on moto", "log bytes"],
                [
                    [
                        name,
                        f["invocations"],
                        ", ".join(f"{k} {v:g}" for k, v in f["requests"].items()),
                        f["duration_ms"],
                        f["aws_wait_ms"],
                        f["log_bytes"],
                    ]
                    for name, f in immediate.get("functions", {}).items()
                ],
            ),
        ]
    filtered = _get(immediate, "filtered_invocations")
    if filtered:
        out += [
            "",
            "Not counted (the template's FilterCriteria drop them in AWS, the sandbox delivers them): "
            + ", ".join(f"{k} {v:g} invocations per call" for k, v in filtered.items())
            + ".",
        ]
    errors = {k: v for s in scenarios.values() for k, v in (s.get("http_errors") or {}).items()}
    if errors:
        out += ["", "HTTP handlers answered errors: " + ", ".join(f"{k} ({v})" for k, v in errors.items()) + "."]
    cold = req.get("cold_first_call")
    if cold:
        out += ["", f"The first call of the run (cold containers) made {cold['aws_requests']:g} requests."]
    return [*out, ""]


def _cost_section(results: dict[str, Any]) -> list[str]:
    cost = results.get("cost") or {}
    scenarios = cost.get("scenarios", {})
    if not scenarios:
        return []
    out = [
        "## Cost per million calls",
        "",
        "Per-call counts above × list prices. Lambda compute uses the handler durations measured in the sandbox and "
        "the memory in template.yaml; the modelled column replaces time spent waiting on moto with 8 ms per AWS "
        "request and scales the handlers' own CPU time to Lambda's CPU share at that memory.",
        "",
        *_table(
            ["call", "USD per 1M (measured durations)", "USD per 1M (modelled AWS durations)"],
            [
                [
                    name,
                    f"${_get(s, 'measured', 'usd_per_million') or 0:,.2f}",
                    f"${_get(s, 'modelled', 'usd_per_million') or 0:,.2f}",
                ]
                for name, s in scenarios.items()
            ],
        ),
        "",
    ]
    immediate = scenarios.get("immediate answered")
    if _get(immediate, "measured", "items"):
        out += [
            "Immediate answered call, by item (measured durations):",
            "",
            *_table(
                ["item", "per call", "USD per 1M calls"],
                [
                    [r["item"], f"{r['per_call']:.4g}", f"${r['usd_per_million']:,.2f}"]
                    for r in immediate["measured"]["items"]
                ],
            ),
            "",
        ]
    backlog = cost.get("backlog_placer")
    if backlog:
        out += [
            f"Under a backlog the placer sleeps until its slot: {backlog['seconds_per_call']} s per call at CPS "
            f"{backlog['cps']:g} adds ${backlog['usd_per_million']:,.2f} per 1M calls of Lambda compute.",
            "",
        ]
    fixed = cost.get("fixed_monthly")
    if fixed:
        out += [
            f"Fixed costs, whatever the volume (about ${fixed['usd_per_month']:,.2f} a month):",
            "",
            *_table(["item", "USD per month"], [[r["item"], f"${r['usd_per_month']:,.2f}"] for r in fixed["items"]]),
            "",
            "Not modelled: CloudWatch custom metrics (the functions' metric names, $0.30 each in a month they are "
            "emitted, so not with no calls), KMS requests for the tables' AWS-managed keys, data transfer, and the "
            "carrier's own charges.",
            "",
        ]
    out += [
        f"Price table ({PRICES_SOURCE}):",
        "",
        *_table(
            ["item", "USD", "per", "unit", "source"],
            [[p["item"], p["usd"], f"{p['per']:,.0f}", p["unit"], p["source"]] for p in price_table_rows()],
        ),
        "",
    ]
    return out


def _coldstart_section(results: dict[str, Any]) -> list[str]:
    cold = results.get("cold_start") or {}
    rows = []
    sizes = _get(results, "deployment", "functions") or {}
    for name, f in (cold.get("functions") or {}).items():
        size = sizes.get(name)
        size_text = (
            f"{size['bytes'] / 1024:,.0f} KiB / {size['with_layer_bytes'] / 1024**2:,.1f} MiB "
            f"({size['with_layer_zipped'] / 1024**2:,.1f} MiB zipped)"
            if size
            else "–"
        )
        if "error" in f:
            rows.append([name, f["error"], "", "", "", size_text])
            continue
        top = ", ".join(f"{t['package']} {t['ms']:g}" for t in f.get("packages", [])[:3])
        heavy = ", ".join(f"`{t['module']}` {t['ms']:g}" for t in f.get("modules", [])[:3])
        rows.append([name, _ms(f.get("median_ms")), f"{f.get('ratio_to_boto3', 0):.2f}×", top, heavy, size_text])
    out = [
        "## Cold start and deployment size",
        "",
        f"Median of {cold.get('samples', '?')} fresh interpreters (Python {cold.get('python', '?')}, bytecode "
        "cached) per handler module, each just after a bare `import boto3` "
        f"(median {_ms(cold.get('boto3_median_ms'))}): "
        "the ratio is the median of those pairs' ratios, since this machine's speed changes from second to second. "
        "Top imports from one `python -X importtime` run (ms, inflated by the tracing).",
        "",
        *_table(
            [
                "function",
                "import (median)",
                "vs boto3",
                "packages (ms)",
                "heaviest modules it imports (ms)",
                "deployed: function / with layer",
            ],
            rows,
        ),
        "",
    ]
    deployment = results.get("deployment") or {}
    if not deployment.get("built"):
        out += [f"Deployment size: {deployment.get('reason', 'not measured')}.", ""]
    else:
        layers = ", ".join(
            f"{n} {v['bytes'] / 1024**2:,.1f} MiB ({v['zipped'] / 1024**2:,.1f} MiB zipped)"
            for n, v in deployment["layers"].items()
        )
        biggest = ", ".join(
            f"{b['package']} {b['bytes'] / 1024**2:,.1f} MiB" for b in deployment["layer_largest_packages"]
        )
        out += [
            f"`sam build` (python3.13, arm64) took {deployment['seconds']:.0f} s. Layer: {layers}; "
            f"largest packages in it: {biggest}. Lambda's limit is 250 MiB unzipped, function and layers together.",
            "",
        ]
    return out


# ---------------------------------------------------------------------------------------------- chart


def chart(results: dict[str, Any], path: Path) -> bool:
    """Cumulative distributions of time to dial and schedule lateness, with the targets; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), dpi=110)
    colors = {"isolated": "#2a9d8f", "steady": "#e9c46a", "first_burst": "#9b5de5", "burst": "#e76f51"}
    for key, result in (results.get("time_to_dial") or {}).items():
        if not isinstance(result, dict) or not result.get("dial_seconds"):
            continue
        values = sorted(v * 1000 for v in result["dial_seconds"])
        shares = [(i + 1) / len(values) for i in range(len(values))]
        left.step(values, shares, where="post", color=colors.get(key), label=f"{key} (n={len(values)})", linewidth=2)
        before = _get(results, "previous", "time_to_dial", key, "dial_seconds")
        if before:  # the previous run, for the change
            old = sorted(v * 1000 for v in before)
            left.step(
                old,
                [(i + 1) / len(old) for i in range(len(old))],
                where="post",
                color=colors.get(key),
                linestyle=":",
                linewidth=1.2,
                label=f"{key}, previous run",
            )
    for ms, text in ((100, "p50 target 100 ms"), (500, "p99 target 500 ms")):
        left.axvline(ms, color="#555", linestyle="--", linewidth=1)
        left.text(ms * 1.05, 0.04, text, rotation=90, fontsize=8, color="#555", va="bottom")
    left.set_xscale("log")
    left.set_xlabel("API 200 → carrier create-call request (ms, log scale)")
    left.set_ylabel("share of calls")
    left.set_title("Time to dial")
    left.grid(True, which="both", alpha=0.3)
    left.legend(loc="lower right", fontsize=9)
    for key, color in (("fast", "#264653"), ("template_rate", "#f4a261")):
        result = (results.get("schedule") or {}).get(key)
        if not isinstance(result, dict) or not result.get("lateness_seconds"):
            continue
        values = sorted(result["lateness_seconds"])
        shares = [(i + 1) / len(values) for i in range(len(values))]
        right.step(values, shares, where="post", color=color, label=f"{key} (n={len(values)})", linewidth=2)
        right.plot(values, shares, "o", color=color, markersize=3)
        before = _get(results, "previous", "schedule", key, "lateness_seconds")
        if before:
            old = sorted(before)
            right.step(
                old,
                [(i + 1) / len(old) for i in range(len(old))],
                where="post",
                color=color,
                linestyle=":",
                linewidth=1.2,
                label=f"{key}, previous run",
            )
    right.axvline(0.1, color="#555", linestyle="--", linewidth=1)
    right.text(0.11, 0.04, "p99 target 100 ms", rotation=90, fontsize=8, color="#555", va="bottom")
    right.axvline(0.0, color="#aaa", linewidth=0.8)
    right.set_xlabel("carrier request − call_date (s)")
    right.set_title("Schedule lateness")
    right.grid(True, alpha=0.3)
    right.legend(loc="lower right", fontsize=9)
    fig.suptitle(f"callbridge sandbox, {results['meta']['started']} — cumulative distributions", fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def write(results: dict[str, Any], directory: Path) -> list[Path]:
    """latest.json, latest.md and latency.png in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    json_path = directory / "latest.json"
    json_path.write_text(json.dumps(results, indent=2, sort_keys=False, default=str) + "\n")
    written.append(json_path)
    md_path = directory / "latest.md"
    md_path.write_text(markdown(results))
    written.append(md_path)
    png = directory / "latency.png"
    if chart(results, png):
        written.append(png)
    return written
