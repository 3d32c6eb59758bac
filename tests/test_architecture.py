"""The dependency rules of design.md §7, checked: heavy SDKs stay in their adapters and out of
start-up, and the layers import downward only."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "agentctl"


def top_level_imports(path: Path) -> set[str]:
    """Modules imported at module level (not inside functions or TYPE_CHECKING blocks)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


MODULES = {p.relative_to(PACKAGE).as_posix(): top_level_imports(p) for p in PACKAGE.rglob("*.py")}


@pytest.mark.parametrize(
    ("sdk", "owner", "lazy"),
    [("openai", "llm.py", True), ("tiktoken", "context.py", True), ("rich", "render.py", False)],
)
def test_an_sdk_is_imported_only_by_its_adapter(sdk: str, owner: str, lazy: bool) -> None:
    for module, imports in MODULES.items():
        if module == owner and not lazy:
            continue
        assert not any(i == sdk or i.startswith(sdk + ".") for i in imports), (
            f"{module} imports {sdk} at module level"
        )
    sources = {
        p.name
        for p in PACKAGE.rglob("*.py")
        if f"import {sdk}" in p.read_text() or f"from {sdk}" in p.read_text()
    }
    assert sources <= {owner}, sources


PURE = {"lifecycle.py", "errors.py", "state.py"}


def test_the_pure_core_imports_nothing_of_the_outer_layers() -> None:
    allowed = {"agentctl.errors", "agentctl.lifecycle"}
    for module in PURE:
        ours = {i for i in MODULES[module] if i.startswith("agentctl")}
        assert ours <= allowed, (module, ours)


def test_lower_layers_never_import_the_cli_or_rendering() -> None:
    for module, imports in MODULES.items():
        if module in ("cli.py", "__main__.py"):
            continue
        assert "agentctl.cli" not in imports, module
        if module != "cli.py":
            assert "agentctl.render" not in imports, module


def test_store_modules_do_not_import_the_runner_or_model() -> None:
    for module, imports in MODULES.items():
        if module.startswith("store/"):
            assert not imports & {"agentctl.runner", "agentctl.llm", "agentctl.service"}, module


def loaded_heavy_modules(command: list[str]) -> str:
    code = (
        "import sys, runpy; sys.argv = ['agentctl', *sys.argv[1:]]\n"
        "try:\n    runpy.run_module('agentctl', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "roots = {m.split('.')[0] for m in sys.modules}\n"
        "heavy = sorted(roots & {'openai', 'tiktoken', 'httpx2', 'httpx', 'pydantic'})\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *command], capture_output=True, text=True, timeout=60
    )
    return proc.stderr


# pydantic too: `list` and `history` read index columns only (typer is capped below 0.29, whose
# parameter parsing imports pydantic).
@pytest.mark.parametrize(
    "command",
    [
        ["--help"],
        ["list"],
        ["list", "--json"],
        ["history", "nosuchsession"],
        ["config", "show"],
    ],
)
def test_commands_that_call_no_model_do_not_load_heavy_modules(command: list[str]) -> None:
    assert "HEAVY []" in loaded_heavy_modules(command)


def test_the_probe_does_see_openai_when_a_model_is_called() -> None:
    task = str(PACKAGE.parent / "sample_tasks" / "release_notes.toml")
    assert "'openai'" in loaded_heavy_modules(["run", task])
