"""Every sample task parses, and runs to done on its script (answering any question it asks)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agentctl.domain.tasks import load_task_file
from tests.conftest import SAMPLES, cli

TASKS = sorted(SAMPLES.glob("*.toml"))


def test_there_are_at_least_three_samples() -> None:
    assert len(TASKS) >= 3


# A task's bundled workspace, copied for the test.
WORKSPACES = {"summarize_notes": "notes", "fix_failing_test": "invoice"}


@pytest.mark.parametrize("task", TASKS, ids=lambda p: p.stem)
def test_a_sample_task_runs_to_done(task: Path, tmp_path: Path) -> None:
    spec = load_task_file(task)
    assert spec.script, f"{task.name} needs a script to run offline"
    workspace = tmp_path / "ws"
    if task.stem in WORKSPACES:
        shutil.copytree(SAMPLES / WORKSPACES[task.stem], workspace)
    else:
        workspace.mkdir()
    result = cli("run", str(task), "--no-input", "--workspace", str(workspace))
    for _ in range(5):  # answer each question the task asks, and allow what it wants to do
        if result.code != 3:
            break
        [session] = cli("list", "--json").json()
        question = cli("show", session["id"], "--json").json()["task"]["pending_question"]
        answer = "y" if question["kind"] == "approval" else "tomorrow"
        result = cli("resume", "--input", answer)
    assert result.code == 0, result.stderr
    [session] = cli("list", "--json").json()
    assert (session["state"], session["outcome"]) == ("done", "succeeded")


def test_the_notes_sample_writes_its_summary_in_the_workspace_only(tmp_path: Path) -> None:
    workspace = tmp_path / "notes"
    shutil.copytree(SAMPLES / "notes", workspace)
    result = cli(
        "run", str(SAMPLES / "summarize_notes.toml"), "--workspace", str(workspace), "--yes"
    )
    assert result.code == 0, result.stderr
    summary = (workspace / "summary.md").read_text()
    assert "Who tells support about the cut-over?" in summary
    assert not (SAMPLES / "notes" / "summary.md").exists()


def test_the_failing_test_sample_fixes_the_code_and_the_tests_pass(tmp_path: Path) -> None:
    workspace = tmp_path / "invoice"
    shutil.copytree(SAMPLES / "invoice", workspace)
    tests = [sys.executable, "-m", "unittest", "-q"]
    assert subprocess.run(tests, cwd=workspace, capture_output=True).returncode == 1
    # The task's allow-list lets it run the tests; the edit waits for approval.
    paused = cli(
        "run", str(SAMPLES / "fix_failing_test.toml"), "--workspace", str(workspace), "--no-input"
    )
    assert paused.code == 3, paused.stderr
    assert "Allow edit_file invoice.py?" in paused.stderr
    # The first test run failed, and it says so: the command, its exit code, its output.
    assert "● run_shell $ python3 -m unittest\n  ✗ exit 1" in paused.stderr
    assert "FAILED (failures=2)" in paused.stderr
    done = cli("resume", "--input", "y")
    assert done.code == 0, done.stderr
    assert subprocess.run(tests, cwd=workspace, capture_output=True).returncode == 0
    assert "percent // 10\n" in (SAMPLES / "invoice" / "invoice.py").read_text()  # untouched
