"""`python -m bench` (`make bench`): latency, schedule precision, pacing, cold start and AWS cost per call.

Runs against the sandbox (moto as AWS, the real handlers, the carrier simulator), one sandbox per
process (bench/sessions.py), with every count taken from outside the handlers. Writes
bench/results/latest.json, latest.md and latency.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import coldstart, cost, report, sessions
from bench.harness import ROOT


def _log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} bench: {message}", flush=True)


def _machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor()
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024**2:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{os.cpu_count()} cores ({model or platform.machine()}){memory}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def _dirty() -> list[str]:
    """Files others are still changing in this working tree (measured as they are on disk)."""
    status = subprocess.run(["git", "status", "--porcelain"], check=False, cwd=ROOT, capture_output=True, text=True)
    paths = [line[3:] for line in status.stdout.splitlines() if line[:2].strip() and not line.startswith("??")]
    return [p for p in paths if not p.startswith(("bench/", "tests/unit/test_bench_", "README.md"))]


def _memory(template: dict[str, Any]) -> dict[str, int]:
    default = int(template.get("Globals", {}).get("Function", {}).get("MemorySize", 128))
    return {
        name: int(r["Properties"].get("MemorySize", default))
        for name, r in template["Resources"].items()
        if r.get("Type") == "AWS::Serverless::Function"
    }


def _tracing(template: dict[str, Any]) -> str:
    """The functions' X-Ray tracing as deployed by default: Globals' Tracing, through its parameter's default."""
    value = template.get("Globals", {}).get("Function", {}).get("Tracing", "PassThrough")
    if isinstance(value, dict) and "Ref" in value:
        value = template.get("Parameters", {}).get(value["Ref"], {}).get("Default", "PassThrough")
    return str(value)


def _session(name: str, burst: int) -> tuple[subprocess.Popen[bytes], Path]:
    handle, path = tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".json")
    os.close(handle)
    process = subprocess.Popen([sys.executable, "-m", "bench.sessions", name, path, str(burst)], cwd=ROOT)
    return process, Path(path)


def _collect(process: subprocess.Popen[bytes], path: Path, timeout: float) -> dict[str, Any]:
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.terminate()
        process.wait(timeout=30)
        return {"error": f"did not finish in {timeout:.0f} s"}
    try:
        data: dict[str, Any] = json.loads(path.read_text() or "{}")
    except ValueError:
        data = {"error": f"exited {process.returncode} without results"}
    path.unlink(missing_ok=True)
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="skip the template-rate schedule set and sam build")
    parser.add_argument("--burst", type=int, default=100, help="immediate calls in the time-to-dial burst")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="where results go")
    parser.add_argument(
        "--render", action="store_true", help="measure nothing: rebuild latest.md and latency.png from latest.json"
    )
    args = parser.parse_args(argv)

    from sandbox.template import load_template

    template = load_template()
    if args.render:
        results = json.loads((args.out / "latest.json").read_text())
        results["cost"] = cost_model(results, template)
        results["targets"] = report.targets(results)
        results["notes"] = notes(results)
        for path in report.write(results, args.out):
            _log(f"wrote {path}")
        return 0
    started = time.monotonic()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False, cwd=ROOT, capture_output=True)
    results: dict[str, Any] = {
        "meta": {
            "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": _machine(),
            "command": "make bench" + (" (--quick)" if args.quick else ""),
            "load_start": _load(),
            "commit": commit.stdout.decode().strip(),
            "uncommitted_changes_outside_bench": _dirty(),
            "functions": sorted(
                n for n, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"
            ),
        },
        "schedule": {},
    }

    # 1. The template-rate schedule set needs a minute and a half of wall time, mostly idle: its own sandbox
    #    runs it while sam build and the pacing run, which are not latency-sensitive.
    if not args.quick:
        _log("schedule precision at the template's rate (background, ~1.5 min)")
        template_rate = _session("template-rate", args.burst)
        _log("sam build for deployment sizes")
        results["deployment"] = coldstart.deployment_sizes(template)
    else:
        results["deployment"] = {"built": False, "reason": "skipped (--quick)"}
    _log(f"pacing: CPS {sessions.PACING_CPS}, backlog {sessions.PACING_BACKLOG}")
    pace = _collect(*_session("pacing", args.burst), timeout=300)
    results["pacing"] = pace.get("pacing") or {"error": pace.get("error", "no result")}
    if not args.quick:
        _log("waiting for the template-rate schedule set")
        rate = _collect(*template_rate, timeout=300)
        results["schedule"]["template_rate"] = rate.get("template_rate") or {"error": rate.get("error", "no result")}

    # 2. Cold start while nothing else of this run is busy.
    _log("cold start: handler imports in fresh interpreters")
    results["cold_start"] = coldstart.import_times(template, samples=5)

    # 3. One sandbox for requests per call, time to dial and the fast schedule set.
    _log(f"requests per call, time to dial (burst of {args.burst}), schedule every {sessions.FAST_SCHEDULE_EVERY:g} s")
    main_results = _collect(*_session("main", args.burst), timeout=900)
    if "error" in main_results:
        results["errors"] = {"main session": main_results["error"]}
    results["requests"] = main_results.get("requests")
    results["time_to_dial"] = main_results.get("time_to_dial")
    results["schedule"]["fast"] = main_results.get("schedule_fast")

    results["cost"] = cost_model(results, template)
    results["meta"]["seconds"] = round(time.monotonic() - started, 1)
    results["meta"]["load_end"] = _load()
    results["targets"] = report.targets(results)
    results["notes"] = notes(results)
    for path in report.write(results, args.out):
        _log(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    print(report.markdown(results).split("## Time to dial")[0], flush=True)
    return 0


def cost_model(results: dict[str, Any], template: dict[str, Any]) -> dict[str, Any]:
    memory = _memory(template)
    prices = cost.prices()
    traced = _tracing(template) == "Active"
    scenarios = {}
    for name, counts in (results.get("requests") or {}).get("scenarios", {}).items():
        scenarios[name] = {
            "measured": cost.per_million(cost.usage_from_counts(counts, memory, traced=traced), prices),
            "modelled": cost.per_million(cost.usage_from_counts(counts, memory, model_aws=True, traced=traced), prices),
        }
    out: dict[str, Any] = {"source": cost.PRICES_SOURCE, "prices": cost.price_table_rows(), "scenarios": scenarios}
    pace = results.get("pacing") or {}
    if pace.get("placer_seconds_per_call") is not None:
        placer_mb = memory.get("PlacerFunction", 512)
        seconds = float(pace["placer_seconds_per_call"])
        out["backlog_placer"] = {
            "cps": pace["carrier_cps"],
            "seconds_per_call": seconds,
            "usd_per_million": round(seconds * placer_mb / 1024 * prices["lambda_gb_s"] * cost.MILLION, 2),
        }
    idle = (results.get("requests") or {}).get("scheduler_idle_run")
    queues = sum(1 for r in template["Resources"].values() if r.get("Type") == "AWS::SQS::Queue")
    consumed = sum(
        1
        for r in template["Resources"].values()
        if r.get("Type") == "AWS::Serverless::Function"
        for e in r["Properties"].get("Events", {}).values()
        if e.get("Type") == "SQS"
    )
    out["fixed_monthly"] = cost.fixed_monthly(
        prices,
        scheduler_runs_per_month=cost.SECONDS_PER_MONTH / 60,
        scheduler_run=idle,
        scheduler_memory_mb=memory.get("SchedulerFunction", 512),
        queues=consumed or min(queues, 1),
        traced=traced,
    )
    out["tracing"] = _tracing(template)
    return out


def notes(results: dict[str, Any]) -> list[str]:
    """For each target not met: what the numbers say the reason is, and the next step."""
    out = []
    met = {row["what"]: row["met"] for row in results["targets"]}
    ttd = results.get("time_to_dial") or {}
    burst, isolated = ttd.get("burst") or {}, ttd.get("isolated") or {}
    scenarios = (results.get("requests") or {}).get("scenarios") or {}
    immediate = scenarios.get("immediate answered") or {}
    for what, ok in met.items():
        if ok is not False:
            continue
        if what.startswith("scheduled"):
            fast = (results.get("schedule") or {}).get("fast") or {}
            claimed, onward = fast.get("claimed_vs_due_ms", {}), fast.get("claim_to_carrier_ms", {})
            paths = ", ".join(f"{k}: {v}" for k, v in (fast.get("dispatched_by") or {}).items())
            out.append(
                f"Schedule lateness: calls reached the queue by {paths}. The placer claimed them {claimed.get('p50')} "
                f"ms (p50) to {claimed.get('max')} ms (max) after call_date, and the carrier request followed "
                f"{onward.get('p50')} ms (p50) to {onward.get('max')} ms after the claim. A late claim is the queue "
                "delivering late: SQS delays are whole seconds, rounded to the nearest (domain/dispatch.py), so a "
                "message can come up to 0.5 s late; and the sandbox's poller long-polls moto for 1 s, which does not "
                "wake when a delayed message becomes visible. Next step: round the delay down so every message comes "
                "early and the placer holds it until call_date (it already holds early ones); in the sandbox, poll "
                "queues holding delayed messages with a shorter wait."
            )
        elif what.startswith("accepted"):
            cpu = burst.get("cpu_seconds_per_call", {})
            rate = f"{1 / cpu['moto']:.1f}" if cpu.get("moto") else "?"
            out.append(
                f"Time to dial: one call at a time it is {isolated.get('dial_ms', {}).get('p50')} ms p50 / "
                f"{isolated.get('dial_ms', {}).get('p99')} ms p99 (within target); under the burst, calls queue "
                f"behind the sandbox's AWS: moto spent {cpu.get('moto')} CPU-s per call "
                f"({immediate.get('aws_requests')} requests per call plus the pollers'), so its one core "
                f"sustains about {rate} calls/s while the API accepts {burst.get('intake_rps')}/s. Next step: fewer "
                "AWS requests per call (below), which moves this limit proportionally."
            )
        elif what.startswith("AWS requests"):
            functions = immediate.get("functions", {})
            parts = ", ".join(f"{n} {f['requests_total']:g}" for n, f in functions.items())
            webhooks = functions.get("WebhooksFunction", {})
            out.append(
                f"AWS requests per call ({parts}): every change to a call is a read-modify-write of the whole "
                "item (GetItem, then PutItem conditional on its version), and the carrier sends "
                f"{webhooks.get('invocations', '?')} webhooks per answered call (flow + initiated, ringing, answered, "
                "completed), each a read and a write. Next step: conditional UpdateItem per transition without the "
                "read, and subscribing the carrier only to the status events the outcome needs."
            )
        elif what.startswith("AWS cost"):
            items = (results.get("cost") or {}).get("scenarios", {}).get("immediate answered", {}).get("measured", {})
            top = sorted(items.get("items", []), key=lambda r: -r["usd"])[:3]
            units = immediate.get("dynamodb_units", {})
            writes = sum(v for k, v in units.items() if k.endswith(":write"))
            out.append(
                "Cost: the largest items per 1M immediate calls are "
                + ", ".join(f"{r['item']} ${r['usd_per_million']:,.2f}" for r in top)
                + f". {writes:g} write units per call: the call item carries its whole timeline (1-3 KB) and is "
                "rewritten at every step, and the ByAccount index projects ALL attributes, so each write is paid "
                "again in the index. Next step: project ByAccount KEYS_ONLY (or the list's few attributes), keep "
                "the timeline out of the hot item, and the request cuts above."
            )
        elif what.startswith("import time"):
            functions = (results.get("cold_start") or {}).get("functions", {})
            heavy: dict[str, float] = {}
            for f in functions.values():
                for t in f.get("modules", [])[:3]:
                    heavy[t["module"]] = max(heavy.get(t["module"], 0.0), t["ms"])
            ranked = sorted(heavy.items(), key=lambda kv: -kv[1])[:4]
            out.append(
                "Import time: the heaviest imports (ms, under -X importtime) are "
                + ", ".join(f"`{k}` {v:g}" for k, v in ranked)
                + ". `callbridge.adapters.dynamodb` imports boto3's TypeSerializer at module level, so every handler "
                "pays all of boto3's import on top of its own, and Powertools' Tracer loads the X-Ray SDK. Next "
                "step: import boto3 (and the OpenAPI models in api) on first use, as the client factory already does."
            )
        elif what.startswith("calls per second"):
            p = results.get("pacing") or {}
            out.append(
                f"Pacing: {p.get('max_in_any_1s_window')} carrier requests fell in one 1-s window at CPS "
                f"{p.get('carrier_cps')} (smallest gap {p.get('gap_ms', {}).get('min')} ms against a slot of "
                f"{1000 / (float(p.get('carrier_cps') or 1) * 0.92):.0f} ms). Slots space the placers' wake-ups, "
                "not the requests: one that leaves its slot late by more than the 8 % headroom (about 87 ms at CPS 2) "
                "shares a second with the next two. Next step: if the send would leave later than its slot plus "
                "the headroom, take a new slot instead of sending."
            )
    return out


if __name__ == "__main__":
    sys.exit(main())
