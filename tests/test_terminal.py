"""agentctl in a real terminal (a pty, as a user's shell gives it): text streams as it arrives,
a spinner shows while the model thinks, and questions are answered at the prompt. Without a
terminal the same run prints plain text only."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import SAMPLES, cli

TEXT = (
    "Looking at the three options, the early train is cheapest and arrives before the meeting, "
    "so I will plan around it."
)
STREAMING_TASK = f"""
goal = "plan the trip"
[[script]]
content = "{TEXT}"
delay = 0.6
stream_delay = 0.08
[[script.tool_calls]]
name = "submit_plan"
arguments = {{ steps = ["Pick the train"] }}

[[script]]
[[script.tool_calls]]
name = "complete_step"
arguments = {{ summary = "early train" }}
[[script.tool_calls]]
name = "finish"
arguments = {{ result = "Take the 7:02 train." }}
"""


@dataclass
class Screen:
    """Everything the terminal received, with the time each piece arrived."""

    pieces: list[tuple[float, bytes]] = field(default_factory=list)
    code: int | None = None

    @property
    def text(self) -> str:
        return b"".join(p for _, p in self.pieces).decode(errors="replace")

    def first_seen(self, needle: str) -> float:
        seen = b""
        for at, piece in self.pieces:
            seen += piece
            if needle.encode() in seen:
                return at
        raise AssertionError(f"{needle!r} never appeared in {self.text!r}")


def run_in_terminal(
    args: list[str], answers: dict[str, str] | None = None, columns: int = 200
) -> Screen:
    """Run agentctl with a pty as its terminal; type an answer when a prompt shows up. The
    follow-up prompt of a run that reached done is ended with Enter unless `answers` names it."""
    answers = dict(answers or {})
    answers.setdefault("follow-up?", "")
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentctl", *args],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env={**os.environ, "COLUMNS": str(columns), "TERM": "xterm-256color"},
        close_fds=True,
    )
    os.close(terminal)
    screen = Screen()
    start = time.monotonic()
    try:
        while time.monotonic() - start < 60:
            ready, _, _ = select.select([controller], [], [], 0.05)
            if ready:
                try:
                    data = os.read(controller, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                screen.pieces.append((time.monotonic() - start, data))
                for prompt in list(answers):
                    if prompt in screen.text:
                        os.write(controller, answers.pop(prompt).encode() + b"\r")
            elif proc.poll() is not None:
                break
        screen.code = proc.wait(timeout=10)
    finally:
        proc.kill()
        os.close(controller)
    return screen


def test_text_streams_to_the_terminal_as_it_arrives(tmp_path: Path) -> None:
    task = tmp_path / "trip.toml"
    task.write_text(STREAMING_TASK)
    screen = run_in_terminal(["run", str(task)])
    assert screen.code == 0, screen.text
    assert "\x1b[" in screen.text  # a terminal gets colour
    assert "thinking" in screen.text  # the spinner, while the model takes its time
    # The reply arrived in pieces over about a second: its first words were on the screen
    # well before its last ones.
    opening, ending = screen.first_seen("Looking at"), screen.first_seen("plan around it.")
    assert ending - opening > 0.4, (opening, ending)
    assert "Take the 7:02 train." in screen.text
    # Checkpointed once complete: the stored reply is the whole text, not a piece of it.
    [session] = cli("list", "--json").json()
    messages = cli("show", session["id"], "--json").json()["messages"]
    assert next(m["content"] for m in messages if m["role"] == "assistant") == TEXT


def test_without_a_terminal_output_is_plain_and_stdout_carries_only_the_result(
    tmp_path: Path,
) -> None:
    task = tmp_path / "trip.toml"
    task.write_text(STREAMING_TASK.replace("stream_delay = 0.08", "").replace("0.6", "0"))
    result = cli("run", str(task))
    assert result.code == 0
    assert result.stdout == "Take the 7:02 train.\n"
    assert "\x1b[" not in result.stdout + result.stderr
    assert "thinking" not in result.stderr
    assert TEXT in result.stderr  # the streamed text, whole, on stderr
    as_json = cli("run", str(task), "--json")
    assert as_json.stderr == ""
    assert as_json.events()[-1]["result"] == "Take the 7:02 train."


def test_an_approval_is_answered_at_the_terminal_prompt(tmp_path: Path) -> None:
    workspace = tmp_path / "invoice"
    shutil.copytree(SAMPLES / "invoice", workspace)
    task = SAMPLES / "fix_failing_test.toml"
    screen = run_in_terminal(
        ["run", str(task), "--workspace", str(workspace)],
        answers={"[y/N]": "y"},
    )
    assert screen.code == 0, screen.text
    assert "all 4 tests pass" in screen.text
    assert "percent // 100\n" in (workspace / "invoice.py").read_text()


def test_resume_without_an_id_offers_the_unfinished_sessions_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = f"sqlite://{tmp_path / 's.db'}"
    monkeypatch.setenv("AGENTCTL_STORE", store)
    trip = str(SAMPLES / "plan_trip.toml")
    for _ in range(2):
        assert cli("run", trip, "--no-input", env={"AGENTCTL_STORE": store}).code == 3
    older = cli("list", "--json", env={"AGENTCTL_STORE": store}).json()[1]["id"]
    screen = run_in_terminal(
        ["resume"], {"resume which?": "2", "What dates do you want to travel?": "next Monday"}
    )
    assert "unfinished sessions:" in screen.text
    assert f"resuming session {older}" in screen.text


def test_shell_completion_offers_ids_and_names(tmp_path: Path) -> None:
    env = {"AGENTCTL_STORE": f"sqlite://{tmp_path / 's.db'}"}
    assert cli("run", str(SAMPLES / "plan_trip.toml"), "--no-input", env=env).code == 3
    sid = cli("list", "--json", env=env).json()[0]["id"]
    assert cli("rename", sid, "lisbon", env=env).code == 0
    words = cli(
        env={
            **env,
            "_AGENTCTL_COMPLETE": "complete_bash",
            "COMP_WORDS": "agentctl show l",
            "COMP_CWORD": "2",
        },
    )
    assert words.stdout.split() == ["lisbon"]
    shown = cli("--show-completion", "bash", env=env)
    assert "_agentctl_completion" in shown.stdout


def test_a_session_from_elsewhere_is_accepted_at_the_terminal(tmp_path: Path) -> None:
    """Its settings are shown whole in the question; a yes takes them, then it goes on."""
    other = {
        "AGENTCTL_HOME": str(tmp_path / "other-user"),
        "AGENTCTL_STORE": f"sqlite://{tmp_path / 'other.db'}",
    }
    assert cli("run", str(SAMPLES / "plan_trip.toml"), "--no-input", env=other).code == 3
    sid = cli("list", "--json", env=other).json()[0]["id"]
    export = tmp_path / "trip.jsonl"
    assert cli("export", sid, "-o", str(export), env=other).code == 0
    (tmp_path / "ws").mkdir()
    assert cli("import", str(export), "--workspace", str(tmp_path / "ws")).code == 0
    screen = run_in_terminal(
        ["resume", sid, "--model", "scripted"],
        {
            "Continue it here with its settings": "y",
            "What dates do you want to travel?": "next Monday",
        },
    )
    assert screen.code == 0, screen.text
    assert f"workspace {tmp_path / 'ws'}" in screen.text
    assert f"accepted the settings of session {sid}" in screen.text
    assert "accepted by you" in cli("show", sid).stdout
