"""`agentctl show ID --transcript` (issue 25 part 3): the conversation as a person reads it, at
any checkpoint, cut at a bound unless --full, paged on a terminal, plain when piped."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agentctl.loop import prompts
from agentctl.terminal.transcript import _user_heading
from tests.conftest import SAMPLES, run
from tests.test_terminal import run_in_terminal

FIX = str(SAMPLES / "fix_failing_test.toml")
NOTES = str(SAMPLES / "release_notes.toml")


def fixed_session(tmp_path: Path) -> str:
    root = tmp_path / "invoice"
    shutil.copytree(SAMPLES / "invoice", root)
    assert run("run", FIX, "--workspace", str(root), "--yes").code == 0
    [session] = run("list", "--json").json()
    return str(session["id"])


def test_the_transcript_reads_as_a_conversation(tmp_path: Path) -> None:
    sid = fixed_session(tmp_path)
    shown = run("show", sid, "--transcript")
    assert shown.code == 0, shown.stderr
    text = shown.stdout
    assert text.startswith(f"session {sid} at checkpoint 19 (done): 17 messages\n")
    assert "\nuser (the goal)\n  Goal: The tests of this small invoicing module fail." in text
    assert "\nassistant\n  Two tests fail, both through apply_discount" in text
    assert '  → run_shell(command="python3 -m unittest")  [call_1_0]' in text
    assert '→ edit_file(path="invoice.py", old="percent // 10\\n", new="percent // 100\\n")' in text
    assert "\nrun_shell result  [call_1_0]\n  exit 1\n" in text
    assert "more lines (--full shows them) …" in text  # a long result is cut...
    assert "FAILED (failures=2)" in text  # ...keeping its end
    assert "\x1b[" not in text  # piped: plain
    whole = run("show", sid, "--transcript", "--full").stdout
    assert "--full shows them" not in whole
    assert "AssertionError" not in text
    assert "AssertionError" in whole
    assert len(whole.splitlines()) > len(text.splitlines())


def test_the_transcript_at_a_checkpoint_and_a_follow_up(tmp_path: Path) -> None:
    sid = fixed_session(tmp_path)
    early = run("show", sid, "--transcript", "--at", "5").stdout
    assert early.startswith(f"session {sid} at checkpoint 5 (executing)")
    assert "run_shell(" in early
    assert "read_file(" not in early
    assert run("show", sid, "--transcript", "--at", "99").code == 2
    # A follow-up (the script has no reply for it: the run stops, the instruction is kept).
    run("resume", sid, "--input", "now add a test for 0 per cent")
    later = run("show", sid, "--transcript").stdout
    assert "\nfollow-up\n  Follow-up: now add a test for 0 per cent" in later


def test_headings_for_compaction_notes_and_follow_ups() -> None:
    note = prompts.compaction_note(7, "they fixed a test", ["a", "b"], 1)
    assert _user_heading(note) == "context compacted"
    assert _user_heading(prompts.follow_up_message("more")) == "follow-up"
    assert _user_heading("hello") == "user"


def test_text_in_a_transcript_is_data(tmp_path: Path) -> None:
    task = tmp_path / "odd.toml"
    task.write_text(
        'goal = "say \\u001b[31m [bold]odd[/bold]"\n[[script]]\ncontent = "x"\n'
        '[[script.tool_calls]]\nname = "finish"\narguments = { result = "ok" }\n'
    )
    run("run", str(task), "--no-input")
    [session] = run("list", "--json").json()
    text = run("show", session["id"], "--transcript").stdout
    assert "say \\x1b[31m [bold]odd[/bold]" in text
    assert "\x1b" not in text


def test_on_a_terminal_the_transcript_goes_through_the_pager(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert run("run", NOTES).code == 0
    [session] = run("list", "--json").json()
    monkeypatch.setenv("AGENTCTL_PAGER", "sed s/^/PAGED:/")
    screen = run_in_terminal(["show", session["id"], "--transcript"])
    assert screen.code == 0, screen.text
    assert "PAGED:\x1b[1msession" in screen.text  # paged, and coloured for the terminal
    assert "PAGED:\x1b[34;1massistant" in screen.text
