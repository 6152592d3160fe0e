"""Cold start: each handler module's import time in fresh interpreters, beside bare `import boto3`; deployment sizes.

Each sample is a new interpreter (the venv's), importing one thing and printing how long it took, with
the environment Lambda gives the function: template.yaml's variables (references replaced by
placeholders), AWS_LAMBDA_FUNCTION_NAME, AWS_REGION and tracing left on, the layer on the path as
/opt/python would be. Each handler's sample is paired with a bare boto3 import just before it, so the
machine's drift hits both sides of a ratio alike.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from bench.harness import ROOT

IMPORT_BY_PATH = (
    "import importlib.util, sys, time\n"
    "t = time.perf_counter()\n"
    "spec = importlib.util.spec_from_file_location('handler_module', sys.argv[1])\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "spec.loader.exec_module(module)\n"
    "print(time.perf_counter() - t)\n"
)
IMPORT_BOTO3 = "import time\nt = time.perf_counter()\nimport boto3\nprint(time.perf_counter() - t)\n"


def _functions(template: dict[str, Any]) -> dict[str, Path]:
    found = {}
    for logical, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        module = str(props["Handler"]).rsplit(".", 1)[0].replace(".", "/") + ".py"
        found[logical] = ROOT / str(props["CodeUri"]) / module
    return found


def _environment(template: dict[str, Any], logical: str, code_dir: Path) -> dict[str, str]:
    """The function's Lambda environment: template variables with intrinsic values as placeholders."""

    def plain(value: Any) -> str:
        if isinstance(value, dict):
            ((kind, arg),) = value.items()
            if kind == "Ref":
                default = template.get("Parameters", {}).get(str(arg), {}).get("Default")
                return str(default) if default is not None else f"placeholder-{arg}"
            return f"placeholder-{kind}"
        return str(value)

    variables = dict(template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
    props = template["Resources"][logical]["Properties"]
    variables.update(props.get("Environment", {}).get("Variables", {}))
    env = {k: plain(v) for k, v in variables.items()}
    keep = ("PATH", "HOME", "LANG", "SYSTEMROOT", "TMPDIR")
    base = {k: v for k, v in os.environ.items() if k in keep}
    return {
        **base,
        **env,
        "AWS_LAMBDA_FUNCTION_NAME": f"callbridge-{logical}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "PYTHONPATH": os.pathsep.join([str(code_dir), str(ROOT / "layers" / "callbridge")]),
    }


def _sample(code: str, args: list[str], env: dict[str, str]) -> float:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], check=False, env=env, capture_output=True, text=True, timeout=120
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}")
    return float(out.stdout.strip().splitlines()[-1])


def _top_imports(path: Path, env: dict[str, str], count: int = 5) -> dict[str, list[dict[str, Any]]]:
    """Where the handler's import spends its time (`python -X importtime`): by top-level package, and the
    heaviest modules the handler imports itself (cumulative, so a module includes what it imports)."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", IMPORT_BY_PATH, str(path)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    totals: dict[str, int] = {}
    modules: dict[str, int] = {}
    for line in out.stderr.splitlines():
        found = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if found and len(found.group(2)) == 1:  # top level: one space of indentation
            package = found.group(3).split(".")[0]
            totals[package] = totals.get(package, 0) + int(found.group(1))
            modules[found.group(3)] = int(found.group(1))
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:count]
    heaviest = sorted(modules.items(), key=lambda kv: -kv[1])[:count]
    return {
        "packages": [{"package": name, "ms": round(us / 1000, 1)} for name, us in ranked],
        "modules": [{"module": name, "ms": round(us / 1000, 1)} for name, us in heaviest],
    }


def import_times(template: dict[str, Any], samples: int = 5) -> dict[str, Any]:
    """Median import time of each handler module and of bare boto3 (seconds), and their ratios.

    This machine's speed changes from one second to the next (a fixed piece of Python varies 50-80 ms on it),
    so each handler's sample is paired with a bare boto3 import taken just before it, and its ratio is the
    median of its pairs' ratios: a slow moment slows both sides of a pair alike."""
    functions = _functions(template)
    boto3_subject: tuple[str, list[str], dict[str, str]] = (
        IMPORT_BOTO3,
        [],
        _environment(template, next(iter(functions)), ROOT),
    )
    subjects: dict[str, tuple[str, list[str], dict[str, str]]] = {}
    for logical, path in functions.items():
        subjects[logical] = (IMPORT_BY_PATH, [str(path)], _environment(template, logical, path.parent))
    times: dict[str, list[float]] = {name: [] for name in subjects}
    pairs: dict[str, list[float]] = {name: [] for name in subjects}
    boto3_times: list[float] = []
    errors: dict[str, str] = {}
    # One unmeasured round first: it writes any missing bytecode, which the runtime's boto3 already has.
    for round_ in range(samples + 1):
        for name, (code, args, env) in subjects.items():
            if name in errors:
                continue
            try:
                before = _sample(*boto3_subject)
                sample = _sample(code, args, env)
            except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
                errors[name] = str(exc)
                continue
            if round_ > 0:
                boto3_times.append(before)
                times[name].append(sample)
                pairs[name].append(sample / before)
    if not boto3_times:
        raise RuntimeError(f"no import could be timed: {errors}")
    handlers: dict[str, dict[str, Any]] = {}
    for logical, path in functions.items():
        if logical in errors:
            handlers[logical] = {"error": errors[logical]}
            continue
        handlers[logical] = {
            "module": str(path.relative_to(ROOT)),
            "median_ms": round(statistics.median(times[logical]) * 1000, 1),
            "samples_ms": [round(t * 1000, 1) for t in times[logical]],
            "ratio_to_boto3": round(statistics.median(pairs[logical]), 2),
            "ratio_samples": [round(r, 2) for r in pairs[logical]],
            **_top_imports(path, subjects[logical][2]),
        }
    return {
        "samples": samples,
        "python": sys.version.split()[0],
        "boto3_median_ms": round(statistics.median(boto3_times) * 1000, 1),
        "boto3_samples_ms": [round(t * 1000, 1) for t in boto3_times],
        "functions": handlers,
    }


# ---------------------------------------------------------------------------------------------- sizes


def _python313() -> tuple[dict[str, str] | None, str]:
    """An environment in which `python3.13` runs (sam build needs the Lambda runtime's Python), or why not."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(ROOT / ".venv" / "bin"), env.get("PATH", "")])
    if shutil.which("python3.13", path=env["PATH"]) is None:
        return None, "python3.13 is not on PATH"
    if subprocess.run(["python3.13", "--version"], check=False, env=env, capture_output=True).returncode == 0:
        return env, ""
    if shutil.which("pyenv"):  # a pyenv shim with no 3.13 selected: pick an installed 3.13.x
        listed = subprocess.run(
            ["pyenv", "versions", "--bare"], check=False, capture_output=True, text=True
        ).stdout.split()
        versions = [v for v in listed if v.startswith("3.13")]
        if versions:
            env["PYENV_VERSION"] = versions[-1]
            if subprocess.run(["python3.13", "--version"], check=False, env=env, capture_output=True).returncode == 0:
                return env, ""
    return None, "python3.13 is on PATH but does not run (a pyenv shim without 3.13 installed?)"


def _dir_size(path: Path) -> tuple[int, int]:
    """Bytes of every file under `path`, and of the same files zipped (deflate, as `sam deploy` uploads them)."""
    total = 0
    with tempfile.TemporaryFile() as handle:
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                total += file.stat().st_size
                archive.write(file, file.relative_to(path))
        handle.seek(0, os.SEEK_END)
        zipped = handle.tell()
    return total, zipped


def deployment_sizes(template: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
    """`sam build` into a temporary directory; each function's size alone and with the layer."""
    env, why = _python313()
    if env is None:
        return {"built": False, "reason": f"sam build not run: {why}"}
    sam = ROOT / ".venv" / "bin" / "sam"
    if not sam.exists():
        return {"built": False, "reason": "sam build not run: .venv/bin/sam is missing"}
    env["SAM_CLI_TELEMETRY"] = "0"
    with tempfile.TemporaryDirectory(prefix="callbridge-bench-") as tmp:
        build = Path(tmp) / "build"
        started = time.monotonic()
        command = [str(sam), "build", "--template-file", str(ROOT / "template.yaml"), "--build-dir", str(build)]
        try:
            out = subprocess.run(
                command, check=False, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return {"built": False, "reason": f"sam build did not finish in {timeout:.0f} s"}
        if out.returncode != 0:
            tail = (out.stdout + out.stderr).strip().splitlines()[-3:]
            return {"built": False, "reason": "sam build failed: " + " / ".join(tail)}
        seconds = time.monotonic() - started
        layers = {
            name: _dir_size(build / name)
            for name, r in template["Resources"].items()
            if r.get("Type") == "AWS::Serverless::LayerVersion" and (build / name).is_dir()
        }
        layer_bytes = sum(b for b, _ in layers.values())
        layer_zipped = sum(z for _, z in layers.values())
        functions = {}
        for name in _functions(template):
            if not (build / name).is_dir():
                continue
            size, zipped = _dir_size(build / name)
            functions[name] = {
                "bytes": size,
                "zipped": zipped,
                "with_layer_bytes": size + layer_bytes,
                "with_layer_zipped": zipped + layer_zipped,
            }
        biggest = _biggest(build / next(iter(layers))) if layers else []
        # The runtime has boto3 and botocore; a copy in the layer is dead weight (and shadows the runtime's).
        sdk = sorted({p for name in layers for p in ("boto3", "botocore", "s3transfer") if _in_layer(build / name, p)})
        return {
            "aws_sdk_in_layer": sdk,
            "built": True,
            "seconds": round(seconds, 1),
            "layers": {n: {"bytes": b, "zipped": z} for n, (b, z) in layers.items()},
            "functions": functions,
            "layer_largest_packages": biggest,
            "lambda_limit_unzipped_bytes": 250 * 1024 * 1024,
        }


def _in_layer(layer: Path, package: str) -> bool:
    root = layer / "python" if (layer / "python").is_dir() else layer
    return (root / package).is_dir()


def _biggest(layer: Path, count: int = 5) -> list[dict[str, Any]]:
    root = layer / "python" if (layer / "python").is_dir() else layer
    sizes = []
    for child in root.iterdir():
        if child.name.endswith((".dist-info", ".pth")) or child.name == "__pycache__":
            continue
        files = child.rglob("*") if child.is_dir() else [child]
        size = sum(p.stat().st_size for p in files if p.is_file())
        sizes.append((child.name, size))
    return [{"package": n, "bytes": s} for n, s in sorted(sizes, key=lambda kv: -kv[1])[:count]]
