"""The tool and task-file reference (issue 25 part 5): `agentctl tools`, a wrong task-file
shape named with the shape expected, and a script that runs out said in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SAMPLES, run


def test_tools_lists_every_tool_with_its_arguments_and_side_effect() -> None:
    listed = run("tools", str(SAMPLES / "fix_failing_test.toml"), "--json")
    assert listed.code == 0, listed.stderr
    tools = {t["name"]: t for t in listed.json()}
    assert {"submit_plan", "finish", "read_file", "write_file", "run_shell"} <= set(tools)
    search = tools["search_files"]
    assert search["side_effect"] == "read"
    assert [(a["name"], a["required"]) for a in search["arguments"]] == [
        ("pattern", True),
        ("path", False),
    ]
    assert tools["run_shell"]["side_effect"] == "exec"
    assert "run_shell:python3 -m unittest *" in tools["run_shell"]["approval"]
    assert tools["submit_plan"]["side_effect"] == "control"
    assert tools["submit_plan"]["arguments"][0]["type"] == "array of strings"
    shown = run("tools")
    assert shown.code == 0
    assert "search_files   read" in shown.stdout
    assert "pattern: string, required" in shown.stdout


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (
            '[script]\ncontent = "hi"\n',
            "script must be an array of tables: one [[script]] per reply (not [script]), "
            "not a table",
        ),
        ('allow = "write_file"\n', "allow must be an array of strings"),
        (
            '[[script]]\n[script.tool_calls]\nname = "x"\n',
            "script[0].tool_calls must be an array of tables: one [[script.tool_calls]] per call",
        ),
        ('max_turns = "ten"\n', "max_turns must be a whole number, 1 or more, not a string"),
        ('modle = "x"\n', "unknown key 'modle'; the keys here are allow,"),
    ],
)
def test_a_wrong_task_file_shape_names_the_key_and_the_shape(
    tmp_path: Path, body: str, says: str
) -> None:
    task = tmp_path / "t.toml"
    task.write_text('goal = "x"\n' + body)
    result = run("run", str(task))
    assert result.code == 2
    assert f"error: {task}: {says}" in result.stderr
    assert "Input should be" not in result.stderr.split("(")[0]
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_script_that_runs_out_says_so_in_one_line(tmp_path: Path) -> None:
    task = tmp_path / "short.toml"
    task.write_text(
        'goal = "x"\n[[script]]\n[[script.tool_calls]]\nname = "submit_plan"\n'
        'arguments = { steps = ["a"] }\n'
    )
    work = tmp_path / "w"
    work.mkdir()
    result = run("run", str(task), "--workspace", str(work))
    assert result.code == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith(("error", "try"))]
    assert errors == [
        f"error: the task's script ran out: the model was asked for reply 2 and {task} has "
        "1 reply; add a [[script]] entry for each reply still to come, then resume the session"
    ]
    assert "400" not in result.stderr
