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
from bench.machine import reference_ms


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


def _previous(out: Path) -> dict[str, Any] | None:
    """The results this run replaces (for the change column), without their own previous run."""
    try:
        previous: dict[str, Any] = json.loads((out / "latest.json").read_text())
    except (OSError, ValueError):
        return None
    previous.pop("previous", None)
    return previous


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
        results: dict[str, Any] = json.loads((args.out / "latest.json").read_text())
        results["cost"] = cost_model(results, template)
        results["targets"] = report.with_previous(report.targets(results), results.get("previous"))
        results["notes"] = notes(results)
        for path in report.write(results, args.out):
            _log(f"wrote {path}")
        return 0
    started = time.monotonic()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False, cwd=ROOT, capture_output=True)
    results = {
        "meta": {
            "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": _machine(),
            "command": "make bench" + (" (--quick)" if args.quick else ""),
            "load_start": _load(),
            "reference_ms_start": reference_ms(),
            "commit": commit.stdout.decode().strip(),
            "uncommitted_changes_outside_bench": _dirty(),
            "functions": sorted(
                n for n, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"
            ),
        },
        "schedule": {},
    }

    # 1. Deployment sizes (sam build: busy, but nothing is timed meanwhile). Then each timed session alone: the
    #    template-rate schedule set (a minute and a half, mostly idle) and the pacing run both measure lateness,
    #    which work beside them skews (runs that overlapped them with sam build and each other saw a template-
    #    rate call 134-200 ms late and a pacing backlog lose a slot).
    if not args.quick:
        _log("sam build for deployment sizes")
        results["deployment"] = coldstart.deployment_sizes(template)
        _log("schedule precision at the template's rate (~1.5 min)")
        rate = _collect(*_session("template-rate", args.burst), timeout=300)
        results["schedule"]["template_rate"] = rate.get("template_rate") or {"error": rate.get("error", "no result")}
    else:
        results["deployment"] = {"built": False, "reason": "skipped (--quick)"}
    _log(f"pacing: CPS {sessions.PACING_CPS}, backlog {sessions.PACING_BACKLOG}")
    pace = _collect(*_session("pacing", args.burst), timeout=300)
    results["pacing"] = pace.get("pacing") or {"error": pace.get("error", "no result")}

    # 2. Cold start while nothing else of this run is busy.
    _log("cold start: handler imports in fresh interpreters")
    results["cold_start"] = coldstart.import_times(template, samples=9)

    # 3. One sandbox for requests per call, time to dial and the fast schedule set.
    _log(f"requests per call, time to dial, schedule every {sessions.FAST_SCHEDULE_EVERY:g} s")
    main_results = _collect(*_session("main", args.burst), timeout=900)
    results["errors"] = {}
    if "error" in main_results:
        results["errors"]["main session"] = main_results["error"]
    results["requests"] = main_results.get("requests")
    results["time_to_dial"] = main_results.get("time_to_dial") or {}
    results["schedule"]["fast"] = main_results.get("schedule_fast")

    # 4. The burst, in a sandbox as deployed: no probes, the scheduler at the template's rate.
    _log(
        f"time to dial: a first burst of {args.burst} on fresh containers, then one on warm containers, then as many"
        " calls at each offered rate"
    )
    burst_results = _collect(*_session("burst", args.burst), timeout=600)
    if "error" in burst_results:
        results["errors"]["burst session"] = burst_results["error"]
    for key in ("first_burst", "burst", "offered"):
        if key in burst_results:
            results["time_to_dial"][key] = burst_results[key]
    if not results["errors"]:
        del results["errors"]

    results["cost"] = cost_model(results, template)
    results["meta"]["seconds"] = round(time.monotonic() - started, 1)
    results["meta"]["load_end"] = _load()
    results["meta"]["reference_ms_end"] = reference_ms()
    previous = _previous(args.out)
    if previous is not None:
        results["previous"] = previous
        results["previous_run"] = {
            "started": previous.get("meta", {}).get("started"),
            "commit": previous.get("meta", {}).get("commit"),
        }
    results["targets"] = report.with_previous(report.targets(results), previous)
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
        monitoring=cost.monitoring_monthly(template, prices),
    )
    out["tracing"] = _tracing(template)
    return out


def notes(results: dict[str, Any]) -> list[str]:
    """For each target not met: what the numbers say the reason is. And what the stretch cost would take."""
    out = []
    met = {row["key"]: row["met"] for row in results["targets"]}
    ttd = results.get("time_to_dial") or {}
    burst = ttd.get("burst") or {}
    scenarios = (results.get("requests") or {}).get("scenarios") or {}
    immediate = scenarios.get("immediate answered") or {}
    functions = immediate.get("functions", {})
    items = (results.get("cost") or {}).get("scenarios", {}).get("immediate answered", {}).get("measured", {})
    ranked = sorted(items.get("items", []), key=lambda r: -r["usd"])
    if met.get("requests") is False:
        parts = ", ".join(f"{n} {f['requests_total']:g}" for n, f in functions.items())
        out.append(f"AWS requests per call by function: {parts}.")
    if ranked:
        usd = items.get("usd_per_million", 0.0)
        top = ", ".join(f"{r['item']} ${r['usd_per_million']:,.2f}" for r in ranked[:4])
        units = immediate.get("dynamodb_units", {})
        writes = sum(v for k, v in units.items() if k.endswith(":write"))
        write_usd = sum(r["usd_per_million"] for r in ranked if r["item"] == "DynamoDB write units")
        out.append(
            f"Cost: ${usd:,.2f} per 1M immediate answered calls; the largest items are {top}. {writes:g} DynamoDB "
            "write units per call (on demand): each step pays for the call item's size (under 1 KB: one unit), "
            "and entering the due index and moving in it are index writes. ≤ $10 would take, roughly in order of "
            "effect: CallsTable on provisioned capacity with auto scaling once the volume is steady ($0.00065 a "
            "write unit-hour, used at 70 %, is about 40 % of on-demand's price per write: some "
            f"${0.6 * write_usd:,.2f} here), an immediate call's due entry placed at intake where its claim can "
            "keep it (the claim's two index units), and the handlers' per-call log lines sampled."
        )
    if met.get("fixed") is False:
        rows = (results.get("cost") or {}).get("fixed_monthly", {}).get("items", [])
        out.append("Fixed cost: " + ", ".join(f"{r['item']} ${r['usd_per_month']:,.2f}" for r in rows) + ".")
    if met.get("import") is False:
        heavy: dict[str, float] = {}
        for f in ((results.get("cold_start") or {}).get("functions") or {}).values():
            for t in f.get("modules", [])[:3]:
                heavy[t["module"]] = max(heavy.get(t["module"], 0.0), t["ms"])
        top_modules = sorted(heavy.items(), key=lambda kv: -kv[1])[:4]
        out.append(
            "Import time: the heaviest imports (ms, under -X importtime) are "
            + ", ".join(f"`{k}` {v:g}" for k, v in top_modules)
            + "."
        )
    if met.get("pacing") is False:
        p = results.get("pacing") or {}
        out.append(
            f"Pacing: {p.get('max_in_any_1s_window')} carrier requests in one 1-s window at CPS "
            f"{p.get('carrier_cps')} (smallest gap {p.get('gap_ms', {}).get('min')} ms), "
            f"{(p.get('share_of_limit') or 0) * 100:.1f} % of the limit under the backlog."
        )
    if met.get("dial") is False or met.get("api") is False:
        cpu = burst.get("cpu_seconds_per_call", {})
        rate = f"{1 / cpu['moto']:.1f}" if cpu.get("moto") else "?"
        out.append(
            f"Burst: the API accepted {burst.get('intake_rps')} calls/s (p99 {burst.get('api_ms', {}).get('p99')} "
            f"ms); moto, the sandbox's AWS, spent {cpu.get('moto')} CPU-s per call (about {rate} calls/s on its one "
            f"core), the sandbox process {cpu.get('sandbox')} CPU-s and the functions' containers "
            f"{cpu.get('functions', '?')} CPU-s." + closed_loop(burst)
        )
    if met.get("schedule") is False:
        for key, r in (results.get("schedule") or {}).items():
            if not isinstance(r, dict) or "lateness_ms" not in r:
                continue
            claimed, onward = r.get("claimed_vs_due_ms", {}), r.get("claim_to_carrier_ms", {})
            out.append(
                f"Schedule ({key}): lateness p99 {r['lateness_ms'].get('p99')} ms; the placer claimed the calls "
                f"{claimed.get('p50')} ms (p50) to {claimed.get('max')} ms (max) after call_date, and the carrier "
                f"request followed {onward.get('p50')} ms (p50) to {onward.get('max')} ms after the claim."
            )
    return out


def closed_loop(burst: dict[str, Any]) -> str:
    """What the burst's clients imply: each waits for its answer before it posts again, so at the intake rate X
    their C requests in flight take C / X seconds each on average (Little's law), whatever the path costs; and
    how busy the machine was meanwhile."""
    intake, clients = burst.get("intake_rps"), burst.get("concurrency")
    if not intake or not clients:
        return ""
    said = (
        f" Its {clients} clients each post again as soon as they are answered, so {clients} requests are always "
        f"in flight: at {intake} calls/s each takes {clients / intake * 1000:.0f} ms on average (Little's law; "
        f"measured {burst.get('api_ms', {}).get('mean')} ms), however fast the path"
    )
    busy, moto = burst.get("machine_busy"), burst.get("moto_busy")
    if busy is None or moto is None:
        return said + "."
    return said + (
        f". Until the last dial the machine was {busy * 100:.0f} % busy (all cores) and moto, which handles one "
        f"request at a time, used {moto * 100:.0f} % of its core."
    )


if __name__ == "__main__":
    sys.exit(main())
