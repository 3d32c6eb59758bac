"""A session you come back to and keep talking to (issue 24): follow-ups after done, approvals
that carry words, answers from any terminal, project instructions, the approval mode across a
resume. On every store backend, with real processes and a real pty where a terminal is
involved."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SAMPLES, cli, run
from tests.test_terminal import run_in_terminal

TRIP = str(SAMPLES / "plan_trip.toml")
FOLLOW_UP = "Also find me a hotel near the old town"


@pytest.fixture(params=["sqlite", "json", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    url = {
        "sqlite": f"sqlite://{tmp_path / 's.db'}",
        "json": f"json://{tmp_path / 'j'}",
    }.get(request.param) or str(request.getfixturevalue("pg_url"))
    return {"AGENTCTL_STORE": url}


def done_trip(env: dict[str, str]) -> str:
    assert run("run", TRIP, "--no-input", env=env).code == 3
    sid = run("list", "--json", env=env).json()[0]["id"]
    assert run("resume", sid, "--input", "next Monday", env=env).code == 0
    return str(sid)


# -- 1. follow-ups ---------------------------------------------------------------------------


def test_a_done_session_takes_a_follow_up_and_keeps_its_conversation(
    env: dict[str, str], tmp_path: Path
) -> None:
    sid = done_trip(env)
    before = run("show", sid, "--json", env=env).json()
    finished = before["head"]
    followed = run("resume", sid, "--input", FOLLOW_UP, env=env)
    assert followed.code == 0, followed.stderr
    assert "Hotel Alfama Patio" in followed.stdout
    after = run("show", sid, "--json", env=env).json()
    assert after["state"] == "done"
    assert after["task"]["goal"] == FOLLOW_UP
    [earlier] = after["task"]["earlier"]
    assert earlier["goal"] == before["task"]["goal"]
    assert earlier["result"] == before["task"]["result"]
    assert earlier["outcome"] == "succeeded"
    # The conversation so far is kept: the earlier messages lead the new ones.
    assert after["messages"][: len(before["messages"])] == before["messages"]
    assert any(FOLLOW_UP in (m.get("content") or "") for m in after["messages"])
    history = run("history", sid, "--json", env=env).json()
    [follow] = [c for c in history if c["event"] == "follow_up"]
    assert (follow["from_state"], follow["to_state"]) == ("done", "planning")
    assert follow["detail"] == {"input": FOLLOW_UP}
    assert "follow-up: " + FOLLOW_UP in run("history", sid, env=env).stdout
    assert "follow-up" in run("history", sid, "--graph", env=env).stdout
    shown = run("show", sid, env=env).stdout
    assert "goal 1:" in shown
    assert "goal 2:" in shown
    assert FOLLOW_UP in shown
    assert run("search", "old town", "--json", env=env).json()[0]["session"] == sid
    [usage] = run("usage", sid, "--json", env=env).json()
    assert usage["calls"] == after["usage"]["calls"] > before["usage"]["calls"]
    assert run("verify", sid, env=env).code == 0
    # A rollback to before it is back at done, with the first goal and result.
    assert run("rollback", sid, "--to", str(finished), env=env).code == 0
    back = run("show", sid, "--json", env=env).json()
    assert (back["state"], back["task"]["goal"]) == ("done", before["task"]["goal"])
    assert back["task"]["earlier"] == []
    # export, import and move carry it.
    exported = tmp_path / "trip.jsonl"
    assert run("export", sid, "-o", str(exported), env=env).code == 0
    other = {"AGENTCTL_STORE": f"sqlite://{tmp_path / 'other.db'}"}
    assert run("import", str(exported), env=other).code == 0
    copied = run("history", sid, "--json", env=other).json()
    assert [c["event"] for c in copied] == [
        c["event"] for c in run("history", sid, "--json", env=env).json()
    ]
    assert run("verify", sid, env=other).code == 0
    moved_to = f"json://{tmp_path / 'moved'}"
    assert run("move", sid, "--to", moved_to, env=env).code == 0
    assert run("resume", sid, "--input", FOLLOW_UP, env={"AGENTCTL_STORE": moved_to}).code == 0


def test_a_follow_up_needs_words_and_a_running_session_takes_none(env: dict[str, str]) -> None:
    sid = done_trip(env)
    empty = run("resume", sid, "--input", "  ", env=env)
    assert empty.code == 2
    assert "follow-up needs some text" in empty.stderr
    assert run("history", sid, "--json", env=env).json()[-1]["event"] == "task_complete"


def test_the_follow_up_prompt_on_a_terminal_continues_the_same_session(tmp_path: Path) -> None:
    screen = run_in_terminal(
        ["run", TRIP],
        {"What dates": "next Monday", "follow-up?": FOLLOW_UP, "same dates as the flight": ""},
    )
    assert screen.code == 0, screen.text
    assert "departing next Monday" in screen.text
    assert "Hotel Alfama Patio" in screen.text
    assert screen.text.count("follow-up?") == 2  # offered again after the second result
    [session] = cli("list", "--json").json()
    assert cli("show", session["id"], "--json").json()["task"]["goal"] == FOLLOW_UP


def test_no_follow_up_prompt_without_a_terminal_or_with_no_input() -> None:
    ran = cli("run", str(SAMPLES / "release_notes.toml"))
    assert ran.code == 0
    assert "follow-up" not in ran.stderr
    screen = run_in_terminal(["run", str(SAMPLES / "release_notes.toml"), "--no-input"])
    assert screen.code == 0, screen.text
    assert "follow-up" not in screen.text


def test_the_scripted_model_serves_a_follow_up_from_the_script(tmp_path: Path) -> None:
    task = tmp_path / "t.toml"
    task.write_text(
        'goal = "say hi"\n'
        '[[script]]\n[[script.tool_calls]]\nname = "submit_plan"\n'
        'arguments = { steps = ["hi"] }\n'
        '[[script]]\n[[script.tool_calls]]\nname = "finish"\narguments = { result = "hi" }\n'
        '[[script]]\n[[script.tool_calls]]\nname = "submit_plan"\n'
        'arguments = { steps = ["bye"] }\n'
        '[[script]]\n[[script.tool_calls]]\nname = "finish"\n'
        'arguments = { result = "bye after {{last_input}}" }\n'
    )
    assert run("run", str(task)).code == 0
    sid = run("list", "--json").json()[0]["id"]
    second = run("resume", sid, "--input", "now say bye")
    assert second.code == 0, second.stderr
    assert second.stdout.startswith("bye after Plan accepted")
    messages = run("show", sid, "--json").json()["messages"]
    assert json.dumps(messages).count("now say bye") == 1


# -- 2. approvals that carry words -------------------------------------------------------------

SHELL_TASK = """
goal = "greet twice"
[[script]]
[[script.tool_calls]]
name = "submit_plan"
arguments = { steps = ["greet"] }
[[script]]
[[script.tool_calls]]
name = "run_shell"
arguments = { command = "echo hi" }
[[script]]
[[script.tool_calls]]
name = "run_shell"
arguments = { command = "echo hi" }
[[script]]
[[script.tool_calls]]
name = "run_shell"
arguments = { command = "echo other" }
[[script]]
[[script.tool_calls]]
name = "finish"
arguments = { result = "last: {{last_input}}" }
"""


def events(env: dict[str, str], sid: str) -> list[dict[str, object]]:
    return list(run("history", sid, "--json", env=env).json())


def test_an_approval_refused_in_words_sends_the_words_to_the_model(
    env: dict[str, str], tmp_path: Path
) -> None:
    task = tmp_path / "t.toml"
    task.write_text(SHELL_TASK)
    (tmp_path / "ws").mkdir()
    ws = str(tmp_path / "ws")
    assert run("run", str(task), "--no-input", "--workspace", ws, env=env).code == 3
    sid = run("list", "--json", env=env).json()[0]["id"]
    words = "no, print other.txt instead"
    assert run("resume", sid, "--input", words, "--no-input", env=env).code == 3
    messages = run("show", sid, "--json", env=env).json()["messages"]
    refusal = next(m for m in messages if m["role"] == "tool" and "refused" in m["content"])
    assert refusal["content"] == f"The user refused: {words}"
    answered = next(e for e in events(env, sid) if e["event"] == "input_received")
    assert answered["detail"] == {"input": words, "approved": False}
    assert "(refused)" in run("history", sid, env=env).stdout
    # A plain n still gets the standard refusal.
    assert run("resume", sid, "--input", "n", "--no-input", env=env).code == 3
    messages = run("show", sid, "--json", env=env).json()["messages"]
    last_result = [m for m in messages if m["role"] == "tool"][-1]
    assert last_result["content"].startswith("Error: the user did not allow this action")


def test_a_allows_this_exact_command_for_the_rest_of_the_session_until_a_rollback(
    env: dict[str, str], tmp_path: Path
) -> None:
    task = tmp_path / "t.toml"
    task.write_text(SHELL_TASK)
    (tmp_path / "ws").mkdir()
    ws = str(tmp_path / "ws")
    assert run("run", str(task), "--no-input", "--workspace", ws, env=env).code == 3
    sid = run("list", "--json", env=env).json()[0]["id"]
    asked_at = run("show", sid, "--json", env=env).json()["head"]
    paused = run("resume", sid, "--input", "a", "--no-input", env=env)
    assert paused.code == 3  # echo hi ran twice, unasked the second time; echo other asks
    shown = run("show", sid, "--json", env=env).json()
    assert "echo other" in shown["task"]["pending_question"]["question"]
    [grant] = shown["task"]["grants"]
    assert (grant["tool"], grant["command"], grant["session"]) == ("run_shell", "echo hi", sid)
    assert "allowed for this session: run_shell: echo hi" in run("show", sid, env=env).stdout
    history = events(env, sid)
    assert [e["event"] for e in history].count("needs_input") == 2
    assert sum(1 for e in history if e["event"] == "tool_result") == 2
    granted = next(e for e in history if e["event"] == "input_received")
    assert granted["detail"]["granted"] == "run_shell: echo hi"  # type: ignore[index]
    # A fork does not inherit it: its second echo hi asks again.
    assert run("fork", sid, "--at", str(grant["at"]), env=env).code == 0
    fork_id = next(s["id"] for s in run("list", "--json", env=env).json() if s["id"] != sid)
    assert run("resume", fork_id, "--no-input", env=env).code == 3
    forked = run("show", fork_id, "--json", env=env).json()
    assert "echo hi" in forked["task"]["pending_question"]["question"]
    assert "allowed for this session" not in run("show", fork_id, env=env).stdout
    # A rollback to before the answer undoes it: allowed once, the second echo hi asks.
    assert run("rollback", sid, "--to", str(asked_at), env=env).code == 0
    assert run("show", sid, "--json", env=env).json()["task"]["grants"] == []
    assert run("resume", sid, "--input", "y", "--no-input", env=env).code == 3
    again = run("show", sid, "--json", env=env).json()["task"]["pending_question"]
    assert "echo hi" in again["question"]


def test_an_edit_known_to_fail_is_answered_at_once_without_asking(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one two two\n")
    task = tmp_path / "t.toml"
    task.write_text(
        'goal = "edit"\n'
        '[[script]]\n[[script.tool_calls]]\nname = "submit_plan"\n'
        'arguments = { steps = ["edit"] }\n'
        '[[script]]\n[[script.tool_calls]]\nname = "edit_file"\n'
        'arguments = { path = "a.txt", old = "two", new = "2" }\n'
        '[[script]]\n[[script.tool_calls]]\nname = "edit_file"\n'
        'arguments = { path = "a.txt", old = "three", new = "3" }\n'
        '[[script]]\n[[script.tool_calls]]\nname = "finish"\n'
        'arguments = { result = "{{last_input}}" }\n'
    )
    ran = run("run", str(task), "--no-input", "--workspace", str(tmp_path))
    assert ran.code == 0, ran.stderr  # nothing waited for an approval
    sid = run("list", "--json").json()[0]["id"]
    history = events({}, sid)
    assert "needs_input" not in [e["event"] for e in history]
    errors = [e["detail"]["message"] for e in history if e["event"] == "tool_result"]  # type: ignore[index]
    assert errors == [
        "`old` occurs 2 times in a.txt; it must occur once",
        "`old` occurs 0 times in a.txt; it must occur once",
    ]
    assert (tmp_path / "a.txt").read_text() == "one two two\n"


WRITE_TASK = """
goal = "write a note"
[[script]]
[[script.tool_calls]]
name = "submit_plan"
arguments = { steps = ["write"] }
[[script]]
[[script.tool_calls]]
name = "write_file"
arguments = { path = "note.txt", content = "alpha\\nbeta\\n" }
[[script]]
[[script.tool_calls]]
name = "finish"
arguments = { result = "model read: {{last_input}}" }
"""


def test_an_approval_at_the_terminal_is_printed_once_coloured_and_takes_words(
    tmp_path: Path,
) -> None:
    task = tmp_path / "t.toml"
    task.write_text(WRITE_TASK)
    words = "no: call it notes.md"
    screen = run_in_terminal(
        ["run", str(task), "--workspace", str(tmp_path)], {"or type what to do instead": words}
    )
    assert screen.code == 0, screen.text
    assert screen.text.count("Allow write_file note.txt?") == 1
    assert screen.text.count("+alpha") == 1
    assert "\x1b[32m+alpha" in screen.text  # the diff's added lines in green, as `diff` shows
    assert f"model read: The user refused: {words}" in screen.text
    assert not (tmp_path / "note.txt").exists()


# -- 6. --yes across a resume: the session's approval mode ------------------------------------

ASK_THEN_SHELL = """
goal = "ask, then greet"
[[script]]
[[script.tool_calls]]
name = "submit_plan"
arguments = { steps = ["ask", "greet"] }
[[script]]
[[script.tool_calls]]
name = "ask_user"
arguments = { question = "Whom?" }
[[script]]
[[script.tool_calls]]
name = "run_shell"
arguments = { command = "echo hi" }
[[script]]
[[script.tool_calls]]
name = "finish"
arguments = { result = "{{last_input}}" }
"""


def test_yes_is_remembered_by_the_session_and_changed_on_resume(
    env: dict[str, str], tmp_path: Path
) -> None:
    task = tmp_path / "t.toml"
    task.write_text(ASK_THEN_SHELL)
    (tmp_path / "ws").mkdir()
    start = ("run", str(task), "--no-input", "--workspace", str(tmp_path / "ws"))
    # run --yes, paused at a question: the resume without --yes still runs the command.
    assert run(*start, "--yes", env=env).code == 3
    sid = run("list", "--json", env=env).json()[0]["id"]
    assert run("show", sid, "--json", env=env).json()["task"]["auto_approve"] is True
    assert "run without asking (--yes" in run("show", sid, env=env).stdout
    resumed = run("resume", sid, "--input", "you", "--no-input", env=env)
    assert resumed.code == 0, resumed.stderr
    assert "run without asking (this session's --yes)" in resumed.stderr
    # run --yes, then resume --ask: recorded on a checkpoint, and the command asks.
    assert run(*start, "--yes", env=env).code == 3
    second = run("list", "--json", env=env).json()[0]["id"]
    waiting_at = run("show", second, "--json", env=env).json()["head"]
    asked = run("resume", second, "--input", "you", "--ask", "--no-input", env=env)
    assert asked.code == 3
    assert "asked again (--ask)" in asked.stderr
    mode = [e for e in events(env, second) if e["event"] == "approval_mode"]
    assert [m["detail"] for m in mode] == [{"auto_approve": False}]
    assert run("show", second, "--json", env=env).json()["task"]["auto_approve"] is False
    # A rollback to before the change brings --yes back.
    assert run("rollback", second, "--to", str(waiting_at), env=env).code == 0
    assert run("show", second, "--json", env=env).json()["task"]["auto_approve"] is True
    # Without --yes at the start, resume --yes turns it on for the rest of the session.
    assert run(*start, env=env).code == 3
    third = run("list", "--json", env=env).json()[0]["id"]
    assert run("show", third, "--json", env=env).json()["task"]["auto_approve"] is False
    on = run("resume", third, "--input", "you", "--yes", "--no-input", env=env)
    assert on.code == 0, on.stderr
    assert "run without asking (--yes)" in on.stderr
    assert run("resume", third, "--yes", "--ask", env=env).code == 2
    assert run("verify", env=env).code == 0


# -- 3. answers from any terminal ----------------------------------------------------------------

QUESTION_TASK = """
goal = "pick a colour"
[[script]]
[[script.tool_calls]]
name = "submit_plan"
arguments = { steps = ["ask"] }
[[script]]
[[script.tool_calls]]
name = "ask_user"
arguments = { question = "Which colour?" }
[[script]]
[[script.tool_calls]]
name = "finish"
arguments = { result = "colour: {{last_input}}" }
"""


class Terminal:
    """agentctl running with a pty as its terminal, read while the test does other things."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        controller, terminal = pty.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agentctl", *args],
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            env={**os.environ, "COLUMNS": "200", "TERM": "xterm-256color", **env},
            close_fds=True,
        )
        os.close(terminal)
        self.controller = controller
        self.seen = b""

    @property
    def text(self) -> str:
        return self.seen.decode(errors="replace")

    def read(self, until: str | None = None, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (until is None or until not in self.text):
            ready, _, _ = select.select([self.controller], [], [], 0.05)
            if ready:
                try:
                    data = os.read(self.controller, 65536)
                except OSError:
                    break
                if not data:
                    break
                self.seen += data
            elif self.proc.poll() is not None and until is not None:
                break
        assert until is None or until in self.text, self.text
        return self.text

    def type(self, line: str) -> None:
        os.write(self.controller, line.encode() + b"\r")

    def wait(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.read(timeout=0.1)
        code = self.proc.wait(timeout=5)
        self.read(timeout=0.2)
        return code

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        os.close(self.controller)


def test_a_question_waiting_at_a_prompt_is_answered_from_another_terminal(
    env: dict[str, str], tmp_path: Path
) -> None:
    task = tmp_path / "t.toml"
    task.write_text(QUESTION_TASK)
    first = Terminal(["run", str(task)], env)
    try:
        first.read(until="Which colour?")
        first.read(until="> ")
        sid = cli("list", "--json", env=env).json()[0]["id"]
        # The prompt holds no lease: the answer from elsewhere proceeds at once.
        other = cli("resume", sid, "--input", "blue", env=env)
        assert other.code == 0, other.stderr
        assert other.stdout == "colour: blue\n"
        code = first.wait()
        assert "answered in another terminal" in first.text
        assert code == 0  # it followed the session to done, and exits as `run` would
        assert "colour: blue" in first.text
    finally:
        first.close()
    history = cli("history", sid, "--json", env=env).json()
    assert [c["event"] for c in history].count("input_received") == 1  # one writer, one answer
    assert cli("verify", sid, env=env).code == 0


def test_an_answer_typed_after_another_terminal_answered_is_not_applied(
    tmp_path: Path,
) -> None:
    task = tmp_path / "t.toml"
    task.write_text(QUESTION_TASK)
    env = {"AGENTCTL_STORE": f"sqlite://{tmp_path / 's.db'}"}
    first = Terminal(["run", str(task)], env)
    try:
        first.read(until="> ")
        sid = cli("list", "--json", env=env).json()[0]["id"]
        assert cli("resume", sid, "--input", "blue", env=env).code == 0
        first.type("red")  # typed at (nearly) the same moment: never a second answer
        assert first.wait() == 0
    finally:
        first.close()
    history = cli("history", sid, "--json", env=env).json()
    answers = [c["detail"]["input"] for c in history if c["event"] == "input_received"]
    assert answers == ["blue"]
    assert "answered in another terminal" in first.text


def test_an_answer_taken_elsewhere_but_not_yet_written_is_followed_to_its_end(
    tmp_path: Path,
) -> None:
    """Another process has taken the lease to answer, and not written its answer yet, when an
    answer is typed here: this terminal follows the session until that answer lands and on to
    the end, and exits as `run` would; it never says the session still waits (whose `resume
    --input` would then start a new task)."""
    from agentctl.store import open_store
    from agentctl.store.lease import Lease

    task = tmp_path / "t.toml"
    task.write_text(QUESTION_TASK)
    url = f"sqlite://{tmp_path / 's.db'}"
    env = {"AGENTCTL_STORE": url}
    first = Terminal(["run", str(task)], env)
    store = open_store(url)
    try:
        first.read(until="> ")
        sid = cli("list", "--json", env=env).json()[0]["id"]
        other = Lease.mine("the other terminal")
        store.acquire_lease(sid, other)  # the other process holds it, its answer not written
        first.type("red")
        first.read(until="answered in another terminal")
        store.release_lease(sid, other.token)
        assert cli("resume", sid, "--input", "blue", env=env).code == 0
        assert first.wait() == 0, first.text
    finally:
        first.close()
        store.close()
    assert "waiting for input" not in first.text
    history = cli("history", sid, "--json", env=env).json()
    answers = [c["detail"]["input"] for c in history if c["event"] == "input_received"]
    assert answers == ["blue"]


def test_ctrl_c_on_watch_says_nothing_about_resuming(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "AGENTCTL_STORE": f"sqlite://{tmp_path / 's.db'}",
        "AGENTCTL_SCRIPTED_DELAY": "3",
    }
    task = tmp_path / "t.toml"
    task.write_text(QUESTION_TASK)
    runner = subprocess.Popen(
        [sys.executable, "-m", "agentctl", "run", str(task), "--no-input"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    watcher = None
    try:
        deadline = time.monotonic() + 30

        def listed() -> list[dict[str, object]]:  # exit 2 until the run has made its store
            found = cli("list", "--json", env=env)
            return list(found.json()) if found.code == 0 else []

        while not listed() and time.monotonic() < deadline:
            time.sleep(0.1)
        sid = cli("list", "--json", env=env).json()[0]["id"]
        watcher = subprocess.Popen(
            [sys.executable, "-m", "agentctl", "watch", sid],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert watcher.stderr is not None
        assert "watching session" in watcher.stderr.readline()
        watcher.send_signal(signal.SIGINT)
        _, stderr = watcher.communicate(timeout=30)
        assert watcher.returncode == 130
        assert "agentctl resume" not in stderr
        assert "stopped following" in stderr
        assert f"agentctl watch {sid}" in stderr
    finally:
        runner.kill()
        runner.wait()
        if watcher is not None:
            watcher.kill()
            watcher.wait()


# -- 4. project instructions, files in the goal, a goal from stdin, empty answers ---------------


def test_agents_md_goes_into_the_prompt_marked_stored_and_a_change_is_noticed(
    env: dict[str, str], tmp_path: Path, agentctl_home: Path
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "AGENTS.md").write_text("Use tabs, never spaces.\n")
    agentctl_home.mkdir(parents=True, exist_ok=True)
    (agentctl_home / "AGENTS.md").write_text("Answer briefly.\n")  # beside config.toml
    task = tmp_path / "t.toml"
    task.write_text(QUESTION_TASK)
    started = run("run", str(task), "--no-input", "--workspace", str(ws), env=env)
    assert started.code == 3
    assert f"project instructions: {ws / 'AGENTS.md'} (24 characters)" in started.stderr
    assert f"project instructions: {agentctl_home / 'AGENTS.md'}" in started.stderr
    sid = run("list", "--json", env=env).json()[0]["id"]
    shown = run("show", sid, "--json", env=env).json()
    system = shown["messages"][0]["content"]
    assert f"Project instructions from {ws / 'AGENTS.md'}" in system
    assert "<<<AGENTS.md\nUse tabs, never spaces.\n>>>AGENTS.md" in system
    assert system.index("Answer briefly.") < system.index("Use tabs")  # the workspace's wins
    assert [f["path"] for f in shown["task"]["instructions"]] == [
        str(agentctl_home / "AGENTS.md"),
        str(ws / "AGENTS.md"),
    ]
    assert f"instructions: {ws / 'AGENTS.md'} (24 characters" in run("show", sid, env=env).stdout
    # Changed while the session waits: noticed on resume, told to the model, used from then on.
    (ws / "AGENTS.md").write_text("Use spaces after all.\n")
    resumed = run("resume", sid, "--input", "blue", env=env)
    assert resumed.code == 0, resumed.stderr
    assert "instructions changed since this session read them" in resumed.stderr
    history = run("history", sid, "--json", env=env).json()
    [changed] = [c for c in history if c["event"] == "instructions"]
    assert changed["detail"]["chars"] == len("Answer briefly.\n") + len("Use spaces after all.\n")
    messages = run("show", sid, "--json", env=env).json()["messages"]
    note = next(m for m in messages if "instructions changed" in (m.get("content") or ""))
    assert "Use spaces after all." in note["content"]
    assert messages[0]["content"] == system  # the text the session started with is kept
    assert run("verify", sid, env=env).code == 0
    # The same file again: nothing new to say.
    assert run("resume", sid, "--input", "And now?", env=env).code == 2  # the script ran out
    assert [c["event"] for c in run("history", sid, "--json", env=env).json()].count(
        "instructions"
    ) == 1


def test_agents_md_is_bounded_and_a_link_out_of_the_workspace_is_not_read(
    tmp_path: Path,
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "AGENTS.md").write_text("x" * 100_000)
    task = tmp_path / "t.toml"
    task.write_text(QUESTION_TASK)
    assert run("run", str(task), "--no-input", "--workspace", str(ws)).code == 3
    sid = run("list", "--json").json()[0]["id"]
    system = run("show", sid, "--json").json()["messages"][0]["content"]
    assert "x" * 16_000 in system
    assert "x" * 16_001 not in system
    assert "[… cut: the file is 100000 bytes; 16000 characters kept]" in system
    secret = tmp_path / "secret.md"
    secret.write_text("the secret")
    (ws / "AGENTS.md").unlink()
    (ws / "AGENTS.md").symlink_to(secret)
    assert run("run", str(task), "--no-input", "--workspace", str(ws)).code == 3
    newest = run("list", "--json").json()[0]["id"]
    assert "the secret" not in json.dumps(run("show", newest, "--json").json())


def model_env(tmp_path: Path, turns: int = 6) -> tuple[Any, dict[str, str]]:
    from agentctl.domain.session import ScriptToolCall, ScriptTurn
    from agentctl.llm.scripted import ScriptedModel

    plan = ScriptTurn(tool_calls=(ScriptToolCall(name="submit_plan", arguments={"steps": ["x"]}),))
    done = ScriptTurn(
        tool_calls=(ScriptToolCall(name="finish", arguments={"result": "ok"}),),
    )
    kept: list[dict[str, Any]] = []
    model = ScriptedModel((plan, done) * (turns // 2), kept=kept)
    return model, {"AGENTCTL_MODEL": "m", "OPENAI_API_KEY": "sk-test"}


def test_at_path_attaches_a_workspace_file_to_the_goal_and_a_follow_up(tmp_path: Path) -> None:
    from agentctl.llm.scripted import ScriptedServer

    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "notes.txt").write_text("the meeting moved to Tuesday\n")
    (ws / "later.txt").write_text("and the budget is 40k\n")
    (tmp_path / "outside.txt").write_text("private")
    model, env = model_env(tmp_path)
    with ScriptedServer(model) as server:
        env["OPENAI_BASE_URL"] = server.base_url
        done = run(
            "run", "Summarize @notes.txt, mail me@example.com", "--workspace", str(ws), env=env
        )
        assert done.code == 0, done.stderr
        sid = run("list", "--json").json()[0]["id"]
        goal = run("show", sid, "--json").json()["messages"][1]["content"]
        assert goal.startswith("Goal: Summarize @notes.txt, mail me@example.com")
        assert "Attached file notes.txt (@notes.txt):\n```\nthe meeting moved to Tuesday" in goal
        assert run("resume", sid, "--input", "Now add @later.txt", env=env).code == 0
        messages = run("show", sid, "--json").json()["messages"]
        follow = next(m for m in messages if "Follow-up: Now add" in (m.get("content") or ""))
        assert "and the budget is 40k" in follow["content"]
        assert run("show", sid, "--json").json()["task"]["goal"] == "Now add @later.txt"
        out = run("run", "Read @../outside.txt", "--workspace", str(ws), env=env)
        assert out.code == 2
        assert "@../outside.txt" in out.stderr
        assert "outside the workspace" in out.stderr
        assert len(run("list", "--json").json()) == 1  # refused before a session was made
    assert "private" not in json.dumps(model.kept)


def test_run_dash_reads_the_goal_from_standard_input(tmp_path: Path) -> None:
    from agentctl.llm.scripted import ScriptedServer

    ws = tmp_path / "ws"
    ws.mkdir()
    model, env = model_env(tmp_path)
    with ScriptedServer(model) as server:
        env["OPENAI_BASE_URL"] = server.base_url
        done = run("run", "-", "--workspace", str(ws), env=env, stdin="Plan the offsite\n")
        assert done.code == 0, done.stderr
    sid = run("list", "--json").json()[0]["id"]
    assert run("show", sid, "--json").json()["task"]["goal"] == "Plan the offsite"
    assert run("run", "-", "--workspace", str(ws), env=env, stdin="  \n").code == 2


def test_an_empty_answer_to_a_question_asks_again(tmp_path: Path) -> None:
    task = tmp_path / "t.toml"
    task.write_text(QUESTION_TASK)
    screen = run_in_terminal(["run", str(task)], {"> ": "", "type one": "blue"})
    assert screen.code == 0, screen.text
    assert "colour: blue" in screen.text
    [session] = cli("list", "--json").json()
    answers = [
        c["detail"]["input"]
        for c in cli("history", session["id"], "--json").json()
        if c["event"] == "input_received"
    ]
    assert answers == ["blue"]
    assert cli("run", str(task), "--no-input").code == 3
    newest = cli("list", "--json").json()[0]["id"]
    assert cli("resume", newest, "--input", " ").code == 2
