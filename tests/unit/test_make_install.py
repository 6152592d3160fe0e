"""How `make run` and `make test` install: through uv, and through pip where uv cannot be installed or fails.

The Makefile's recipes run for real against stand-ins for the interpreters and uv (shell scripts that write
down how they were called), so what is checked is the order and the arguments of the installs, not the network.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _stub(path: Path, name: str, log: Path, fails_on: str | None = None) -> None:
    """A program that appends `NAME ARGS` to `log`, and exits 1 if its arguments contain `fails_on`."""
    fail = f'case "$*" in *{fails_on}*) exit 1;; esac\n' if fails_on else ""
    path.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\n{fail}exit 0\n')
    path.chmod(0o755)


def _make(tmp_path: Path, target: str, *, uv: str | None) -> list[str]:
    """Run `make TARGET` with .venv, the interpreter and uv replaced by stand-ins; the calls they saw, in order.

    uv: None (not installed yet), "ok" or "fails".
    """
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    log = tmp_path / "calls.log"
    log.touch()
    _stub(venv / "bin" / "python", "venv-python", log)
    if uv is not None:
        _stub(venv / "bin" / "uv", "uv", log, fails_on="pip" if uv == "fails" else None)
    host = tmp_path / "host-python"
    _stub(host, "host-python", log)
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), target, f"VENV={venv}", f"PYTHON={host}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    calls = log.read_text().splitlines()
    return [re.sub(re.escape(str(venv)), ".venv", call) for call in calls]


def _uv_pin() -> str:
    match = re.search(r"^UV := (uv==\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, "the Makefile pins uv (UV := uv==VERSION)"
    return match.group(1)


def test_uv_pin_is_one_exact_release() -> None:
    assert re.fullmatch(r"uv==\d+\.\d+\.\d+", _uv_pin())


def test_run_installs_uv_first_then_the_run_set_through_it(tmp_path: Path) -> None:
    calls = _make(tmp_path, "run", uv=None)

    install_uv = f"install --quiet --no-compile --only-binary=:all: {_uv_pin()}"
    assert calls[0] == f"host-python -m pip --python .venv/bin/python {install_uv}"
    # the stand-in pip installed no uv: the run set goes through pip, then the sandbox starts
    assert calls[1:] == [
        "host-python -m pip --python .venv/bin/python install --no-compile -r requirements-run.txt",
        "venv-python -m sandbox",
    ]


def test_run_with_uv_installs_the_run_set_with_uv_only(tmp_path: Path) -> None:
    calls = _make(tmp_path, "run", uv="ok")

    assert calls == ["uv pip install --python .venv/bin/python -r requirements-run.txt", "venv-python -m sandbox"]


def test_run_falls_back_to_pip_when_uv_fails(tmp_path: Path) -> None:
    calls = _make(tmp_path, "run", uv="fails")

    assert calls == [
        "uv pip install --python .venv/bin/python -r requirements-run.txt",
        "host-python -m pip --python .venv/bin/python install --no-compile -r requirements-run.txt",
        "venv-python -m sandbox",
    ]


def test_tool_targets_add_a_pip_and_the_dev_set_through_uv_or_else_pip(tmp_path: Path) -> None:
    # `make typecheck` installs what `make test` does (requirements-dev.txt) before running one tool
    with_uv = _make(tmp_path / "uv", "typecheck", uv="ok")
    failing_uv = _make(tmp_path / "failing", "typecheck", uv="fails")

    dev_with_uv = "uv pip install --python .venv/bin/python --compile-bytecode -r requirements-dev.txt"
    assert "venv-python -m pip --version" in with_uv  # the tools' pip: ensurepip runs where there is none
    assert dev_with_uv in with_uv
    assert not any("requirements-dev.txt" in call and call.startswith("venv-python") for call in with_uv)
    # there is no .venv/bin/pip here, so the fallback is the interpreter's pip, into .venv
    fallback = "host-python -m pip --python .venv/bin/python install -r requirements-dev.txt"
    assert failing_uv.index(dev_with_uv) < failing_uv.index(fallback)
