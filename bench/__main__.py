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


def _memory(template: dict[str, Any]) -> dict[str, int]:
    default = int(template.get("Globals", {}).get("Function", {}).get("MemorySize", 128))
    return {
        name: int(r["Properties"].get("MemorySize", default))
        for name, r in template["Resources"].items()
        if r.get("Type") == "AWS::Serverless::Function"
    }


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
    args = parser.parse_args(argv)

    from sandbox.template import load_template

    template = load_template()
    started = time.monotonic()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False, cwd=ROOT, capture_output=True)
    results: dict[str, Any] = {
        "meta": {
            "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": _machine(),
            "command": "make bench" + (" (--quick)" if args.quick else ""),
            "load_start": _load(),
            "commit": commit.stdout.decode().strip(),
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
    scenarios = {}
    for name, counts in (results.get("requests") or {}).get("scenarios", {}).items():
        scenarios[name] = {
            "measured": cost.per_million(cost.usage_from_counts(counts, memory), prices),
            "modelled": cost.per_million(cost.usage_from_counts(counts, memory, model_aws=True), prices),
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
    )
    return out


def notes(results: dict[str, Any]) -> list[str]:
    """A sentence for each target not met: the numbers that explain it."""
    out = []
    met = {row["what"]: row["met"] for row in results["targets"]}
    burst = (results.get("time_to_dial") or {}).get("burst") or {}
    isolated = (results.get("time_to_dial") or {}).get("isolated") or {}
    immediate = ((results.get("requests") or {}).get("scenarios") or {}).get("immediate answered") or {}
    for what, ok in met.items():
        if ok is not False:
            continue
        if what.startswith("accepted"):
            cpu = burst.get("cpu_seconds_per_call", {})
            out.append(
                "Time to dial under a burst: isolated calls dial in "
                f"{isolated.get('dial_ms', {}).get('p50')} ms (p50), but the burst queues behind the sandbox's AWS: "
                f"moto used {cpu.get('moto')} CPU-s per call ({immediate.get('aws_requests')} AWS requests per call "
                f"plus the pollers'), so one core sustains about {1 / cpu['moto']:.1f} calls/s against an intake "
                f"of {burst.get('intake_rps')}/s."
                if cpu.get("moto")
                else "Time to dial under a burst exceeds the target."
            )
        elif what.startswith("AWS requests"):
            functions = immediate.get("functions", {})
            parts = ", ".join(f"{n} {f['requests_total']:g}" for n, f in functions.items())
            out.append(f"AWS requests per immediate answered call by function: {parts}.")
        elif what.startswith("AWS cost"):
            items = (results.get("cost") or {}).get("scenarios", {}).get("immediate answered", {}).get("measured", {})
            top = sorted(items.get("items", []), key=lambda r: -r["usd"])[:3]
            out.append(
                "Largest cost items per 1M immediate calls: "
                + ", ".join(f"{r['item']} ${r['usd_per_million']:,.2f}" for r in top)
                + "."
            )
        elif what.startswith("import time"):
            functions = (results.get("cold_start") or {}).get("functions", {})
            tops: dict[str, float] = {}
            for f in functions.values():
                for t in f.get("packages", [])[:3]:
                    tops[t["package"]] = max(tops.get(t["package"], 0.0), t["ms"])
            out.append("Import time is spent in: " + ", ".join(f"{k} (up to {v:g} ms)" for k, v in tops.items()) + ".")
        elif what.startswith("scheduled"):
            fast = (results.get("schedule") or {}).get("fast") or {}
            out.append(f"Schedule lateness (fast set): {fast.get('lateness_ms')}; paths: {fast.get('dispatched_by')}.")
        elif what.startswith("calls per second"):
            p = results.get("pacing") or {}
            out.append(f"Pacing: gaps between carrier requests {p.get('gap_ms')}.")
    return out


if __name__ == "__main__":
    sys.exit(main())
