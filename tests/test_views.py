"""What the reading commands print (issue 25 part 2): one line per checkpoint, tables that fit
the terminal and are never cut when piped, plurals, and the slips a new user found."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agentctl.store.base import SessionSummary
from agentctl.terminal import ask, render
from tests.conftest import SAMPLES, run

FIX = str(SAMPLES / "fix_failing_test.toml")
NOTES = str(SAMPLES / "release_notes.toml")


def workspace(tmp_path: Path) -> str:
    root = tmp_path / "invoice"
    shutil.copytree(SAMPLES / "invoice", root)
    return str(root)


def only_session() -> str:
    [session] = run("list", "--json").json()
    return str(session["id"])


def test_history_is_one_line_per_checkpoint_even_for_an_approval_with_a_diff(
    tmp_path: Path,
) -> None:
    assert run("run", FIX, "--workspace", workspace(tmp_path), "--no-input").code == 3
    sid = only_session()
    history = run("history", sid).stdout.splitlines()
    checkpoints = run("history", sid, "--json").json()
    assert "\n" in checkpoints[-1]["detail"]["question"]  # the approval shows a diff...
    assert len(history) == 2 + len(checkpoints)  # ...and history still one line each
    assert "Allow edit_file invoice.py? …" in history[-1]


def test_verify_says_1_session_and_show_marks_no_step_of_a_done_session() -> None:
    assert run("run", NOTES).code == 0
    sid = only_session()
    assert "1 session checked, all sound" in run("verify").stdout
    shown = run("show", sid).stdout
    assert "▶" not in shown
    assert "✓ 1. Classify the pull requests" in shown


def test_piped_list_is_never_cut_at_80_columns(tmp_path: Path) -> None:
    goal = "Write down " + " ".join(f"word{n}" for n in range(40)) + " and stop"
    task = tmp_path / "long.toml"
    task.write_text(f'goal = "{goal}"\n[[script]]\ncontent = "hm"\n')
    run("run", str(task), "--no-input")
    listed = run("list", env={"COLUMNS": "60"}).stdout
    assert "and stop" in listed, listed


def test_a_forward_rollback_does_not_say_reverted(tmp_path: Path) -> None:
    assert run("run", FIX, "--workspace", workspace(tmp_path), "--yes").code == 0
    sid = only_session()
    head = run("show", sid, "--json").json()["head"]
    back = run("rollback", sid, "--to", "2")
    assert back.code == 0, back.stderr
    assert "reverted  invoice.py" in back.stdout
    forward = run("rollback", sid, "--to", str(head))
    assert forward.code == 0, forward.stderr
    assert "updated  invoice.py" in forward.stdout
    assert "reverted" not in forward.stdout


def summary(sid: str, name: str | None, state: str, goal: str) -> SessionSummary:
    return SessionSummary(
        id=sid,
        state=state,
        goal=goal,
        title=None,
        head=3,
        created_at="2026-12-01T10:00:00",
        updated_at="2026-12-01T10:00:00",
        name=name,
    )


def test_the_resume_picker_is_aligned(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("builtins.input", lambda: "")
    recent = [
        summary("a1b2c3d4", "trip", "waiting_feedback", "Plan a trip"),
        summary("e5f6a7b8", None, "executing", "Fix the tests"),
    ]
    assert ask.pick_session(recent) == "a1b2c3d4"
    rows = [line for line in capsys.readouterr().err.splitlines() if ". " in line][:2]
    assert rows[0].index("Plan a trip") == rows[1].index("Fix the tests"), rows
    assert rows[0].index("2026") == rows[1].index("2026"), rows


def test_fit_cuts_at_a_word_and_plural_counts() -> None:
    assert render.fit("the quick brown fox jumps", 14) == "the quick…"
    assert render.fit("short", 14) == "short"
    assert render.fit("anything at all", None) == "anything at all"
    assert render.plural(1, "session") == "1 session"
    assert render.plural(1200, "checkpoint") == "1,200 checkpoints"
    assert render.one_line("Allow x?\n--- a\n+++ b") == "Allow x? …"


@pytest.mark.parametrize("columns", [60, 200])
def test_tables_fit_the_terminal_without_breaking_words(tmp_path: Path, columns: int) -> None:
    import re

    from tests.test_terminal import run_in_terminal

    goal = "Write down " + " ".join(f"word{n}" for n in range(40)) + " and stop"
    task = tmp_path / "long.toml"
    task.write_text(f'goal = "{goal}"\n[[script]]\ncontent = "hm"\n')
    run("run", str(task), "--no-input")
    sid = only_session()
    for command in (["list"], ["history", sid]):
        screen = run_in_terminal(command, columns=columns)
        assert screen.code == 0, screen.text
        plain = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", screen.text)
        rows = [line for line in plain.replace("\r", "").split("\n") if line]
        assert all(len(row) <= columns for row in rows), (command, rows)
        cut = [row for row in rows if row.endswith("…")]
        assert cut or columns == 200, (command, rows)
        for row in cut:  # cut after a whole word, never inside one
            assert re.search(r"(word\d+|\w)…$", row), row
            assert not re.search(r"wor…$|word…$", row), row
