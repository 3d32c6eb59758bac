"""A session you come back to and keep talking to (issue 24): follow-ups after done, approvals
that carry words, answers from any terminal, project instructions, the approval mode across a
resume. On every store backend, with real processes and a real pty where a terminal is
involved."""

from __future__ import annotations

import json
from pathlib import Path

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
