"""The engine's layout is the night: a stage's package never imports one that runs later in the
night (only `run/`, `cli/` and the services may import every stage), the engine never imports
Airflow or the development tools, and no module grows past one idea (450 lines)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parents[2] / "plugins" / "campaign_orchestrator"
# The night's order. Shared concepts first: everything later may import them.
ORDER = ["warehouse", "definitions", "outbox", "ingest", "segments", "targeting", "render", "delivery", "reporting"]
# They wire the stages together; inbox and console are services; erasure reaches every stage's tables.
ANY_STAGE = {"run", "cli", "inbox", "console", "erasure"}
LEAVES = {"errors", "clock", "connections", "outbox.states", "outbox.ids"}  # import nothing of the engine's


def modules() -> list[Path]:
    return sorted(p for p in ENGINE.rglob("*.py") if "__pycache__" not in p.parts)


def package_of(path: Path) -> str:
    return path.relative_to(ENGINE).parts[0].removesuffix(".py")


def imported(path: Path) -> set[str]:
    """Every campaign_orchestrator module this file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        found |= {n.removeprefix("campaign_orchestrator.") for n in names if n.startswith("campaign_orchestrator.")}
    return found


def rank(target: str) -> int | None:
    top = target.split(".")[0]
    return ORDER.index(top) if top in ORDER else None


def test_no_stage_imports_one_that_runs_later_in_the_night():
    later = []
    for path in modules():
        package = package_of(path)
        if package in ANY_STAGE or rank(package) is None:
            continue
        for target in imported(path):
            leaf = target in LEAVES or target.split(".")[0] in LEAVES
            if not leaf and (rank(target) or 0) > (rank(package) or 0):
                later.append(f"{path.relative_to(ENGINE)} imports {target}")
    assert later == []


def test_the_engine_imports_neither_airflow_nor_the_development_tools():
    offenders = []
    for path in modules():
        text = path.read_text()
        for node in ast.walk(ast.parse(text)):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("airflow", "campaign_devtools")]
    assert offenders == []


def test_no_module_is_past_450_lines_and_the_top_level_holds_few():
    long = {str(p.relative_to(ENGINE)): n for p in modules() if (n := len(p.read_text().splitlines())) > 450}
    assert long == {}
    top = [p.name for p in ENGINE.glob("*.py")]
    assert len(top) <= 6, top


@pytest.mark.parametrize(
    ("module", "source", "rule"),
    [
        ("plugins/campaign_orchestrator/render/new.py", "from airflow.sdk import BaseHook\n", "TID251"),
        ("plugins/campaign_orchestrator/ingest/new.py", "import great_expectations as gx\n", "TID253"),
    ],
)
def test_lint_refuses_airflow_in_the_engine_and_heavy_imports_at_module_level(repo, module, source, rule):
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run(
        [str(ruff), "check", "--stdin-filename", module, "--select", rule, "-"],
        input=source,
        capture_output=True,
        text=True,
        cwd=repo,
        check=False,
    )
    assert result.returncode == 1 and rule in result.stdout, result.stdout + result.stderr
