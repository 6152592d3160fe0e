"""`make run` installs only requirements-run.txt: everything the sandbox and the functions import must be in it."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What `make run` starts: the sandbox (moto, the carrier simulator, the local gateway) and the functions' code.
RUN_CODE = ("sandbox", "functions", "layers/callbridge/callbridge")
OWN = {"sandbox", "functions", "callbridge", "tests", "bench"}


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pinned(path: Path) -> set[str]:
    names = set()
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(_normalized(re.split(r"[=<>!~\[; ]", line, maxsplit=1)[0]))
    return names


def _is_type_checking(node: ast.AST) -> bool:
    """`if TYPE_CHECKING:` (imports for the type checker only)."""
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _walk_body(node: ast.AST) -> list[ast.AST]:
    assert isinstance(node, ast.If)
    return [inner for statement in node.body for inner in ast.walk(statement)]


def _imported_modules() -> dict[str, str]:
    """Top-level module name -> a file importing it, for every import in the run-time code (lazy ones too)."""
    found: dict[str, str] = {}
    for base in RUN_CODE:
        for path in sorted((ROOT / base).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            typing_only = {id(n) for block in ast.walk(tree) if _is_type_checking(block) for n in _walk_body(block)}
            for node in ast.walk(tree):
                if id(node) in typing_only:
                    continue
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_of_the_run_time_code_is_pinned_in_requirements_run() -> None:
    pinned = _pinned(ROOT / "requirements-run.txt")
    distributions = packages_distributions()
    missing = []
    for module, where in sorted(_imported_modules().items()):
        if module in sys.stdlib_module_names or module in OWN or module == "__future__":
            continue
        owners = {_normalized(d) for d in distributions.get(module, [])}
        assert owners, f"{module} (imported by {where}) is not installed"
        if not owners & pinned:
            missing.append(f"{module} ({', '.join(sorted(owners))}), imported by {where}")
    assert missing == [], "imported at run time but not in requirements-run.txt:\n" + "\n".join(missing)
