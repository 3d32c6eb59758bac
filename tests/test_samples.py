"""Every sample task parses, and runs to done on its script (answering any question it asks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentctl.tasks import load_task_file
from tests.conftest import SAMPLES, cli

TASKS = sorted(SAMPLES.glob("*.toml"))


def test_there_are_at_least_three_samples() -> None:
    assert len(TASKS) >= 3


@pytest.mark.parametrize("task", TASKS, ids=lambda p: p.stem)
def test_a_sample_task_runs_to_done(task: Path) -> None:
    spec = load_task_file(task)
    assert spec.script, f"{task.name} needs a script to run offline"
    result = cli("run", str(task), "--no-input")
    for _ in range(5):  # answer each question the task asks
        if result.code != 3:
            break
        result = cli("resume", "--input", "tomorrow")
    assert result.code == 0, result.stderr
    [session] = cli("list", "--json").json()
    assert (session["state"], session["outcome"]) == ("done", "succeeded")
