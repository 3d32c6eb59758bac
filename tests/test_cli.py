"""The CLI contract in real processes: the README walk-through on both backends, exit codes,
one-line errors, and stores left untouched by bad input."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from agentctl.domain.session import SessionInfo, Task, TaskSpec, Usage
from agentctl.store import open_store
from agentctl.store.base import CheckpointDraft
from tests.conftest import SAMPLES, Result, cli, run

TRIP = str(SAMPLES / "plan_trip.toml")


def one_error_line(result: Result, code: int, *needles: str) -> None:
    assert result.code == code, (result.code, result.stdout, result.stderr)
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])


def test_the_readme_walk_through(store_url: str) -> None:
    env = {"AGENTCTL_STORE": store_url}
    started = cli("run", TRIP, "--no-input", env=env)
    assert started.code == 3, started.stderr
    assert "What dates do you want to travel?" in started.stderr
    assert "scripted model" in started.stderr

    listed = cli("list", "--json", env=env).json()
    assert len(listed) == 1
    sid = listed[0]["id"]
    assert listed[0]["state"] == "waiting_feedback"
    assert {"id", "state", "goal", "updated_at"} <= set(listed[0])
    assert f"agentctl resume {sid} --input" in started.stderr

    answered = cli("resume", sid[:4], "--input", "next Monday", env=env)
    assert answered.code == 0, answered.stderr
    assert "departing next Monday" in answered.stdout

    history = cli("history", sid, "--json", env=env).json()
    assert [c["id"] for c in history] == list(range(1, len(history) + 1))
    assert {"id", "parent", "event", "from_state", "to_state", "created_at"} <= set(history[0])
    assert history[0]["from_state"] == "idle"
    assert history[-1]["to_state"] == "done"
    done_head = history[-1]["id"]

    rolled = cli("rollback", sid, "--steps", "3", env=env)
    assert rolled.code == 0, rolled.stderr
    shown = cli("show", sid, "--json", env=env).json()
    assert shown["state"] == "waiting_feedback"
    assert {"id", "state", "head", "task", "messages"} <= set(shown)
    assert shown["head"] == done_head + 1

    branched = cli("resume", sid, "--input", "next Tuesday", env=env)
    assert branched.code == 0, branched.stderr
    assert "departing next Tuesday" in branched.stdout

    history = cli("history", sid, "--json", env=env).json()
    rollback = history[done_head]  # the checkpoint after the first done
    assert rollback["event"] == "rollback"
    assert rollback["parent"] == done_head - 3
    assert history[done_head - 1]["to_state"] == "done"  # the abandoned branch is still there

    # Rolling forward to the abandoned branch works too: history is a tree.
    assert cli("rollback", sid, "--to", str(done_head), env=env).code == 0
    shown = cli("show", sid, "--json", env=env).json()
    assert shown["state"] == "done"
    assert "next Monday" in shown["task"]["result"]
    assert cli("show", sid, "--at", str(done_head - 3), "--json", env=env).json()["state"] == (
        "waiting_feedback"
    )
    table = cli("history", sid, env=env)
    assert table.code == 0
    assert "rolled back" in table.stdout


def test_the_profile_keeps_what_the_agent_remembered(agentctl_home: Path) -> None:
    assert run("run", TRIP, "--no-input").code == 3
    store = open_store(f"sqlite://{agentctl_home / 'agentctl.db'}")
    assert store.load_profile().preferences == {"airline": "Delta"}
    store.close()
    # The next session's system prompt carries it.
    assert run("run", TRIP, "--no-input").code == 3
    sid = run("list", "--json").json()[0]["id"]
    system = run("show", sid, "--json").json()["messages"][0]["content"]
    assert '\n- "airline": "Delta"' in system  # quoted data, not an instruction


def store_digest(home: Path) -> str:
    return hashlib.sha256(
        b"".join(p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file())
    ).hexdigest()


@pytest.fixture
def two_sessions(agentctl_home: Path) -> str:
    """Sessions aa11 and aa22, made through the store API so their ids share a prefix."""
    store = open_store(f"sqlite://{agentctl_home / 'agentctl.db'}")
    for sid in ("aa11", "aa22"):
        info = SessionInfo(
            id=sid, spec=TaskSpec(goal="g"), model="scripted", created_at="2026-01-01T00:00:00"
        )
        first = CheckpointDraft(
            None,
            "new_task",
            "idle",
            "planning",
            "2026-01-01T00:00:00",
            Task(goal="g"),
            Usage(),
        )
        store.create_session(info, first)
    store.close()
    return store_digest(agentctl_home)


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("show", "zz"), ("no session matches 'zz'",)),
        (("history", "zz"), ("no session matches 'zz'",)),
        (("resume", "zz"), ("no session matches 'zz'",)),
        (("show", "aa"), ("'aa' matches 2 sessions: aa11, aa22",)),
        (("rollback", "aa11", "--steps", "1"), ("only 0 steps from its first checkpoint",)),
        (("rollback", "aa11", "--to", "7"), ("has checkpoints 1 to 1; there is no 7",)),
        (("rollback", "aa11", "--to", "1"), ("already stands on checkpoint 1",)),
        (("rollback", "aa11"), ("exactly one of --to",)),
        (("resume", "aa11", "--input", "x"), ("is planning, not waiting for input",)),
        (("show", "aa11", "--at", "5"), ("has no checkpoint 5",)),
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    agentctl_home: Path, two_sessions: str, args: tuple[str, ...], needles: tuple[str, ...]
) -> None:
    one_error_line(run(*args), 2, *needles)
    assert store_digest(agentctl_home) == two_sessions


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (
            "goal = 'x'\n[[script]]\ncontent = 1\n",
            "script[0].content must be a string: the reply's text, not a number",
        ),
        ("title = 'no goal'\n", 'goal is missing: it must be a string: goal = "what to do"'),
        ("goal = \n", "not valid TOML"),
        ("goal = 'x'\nx = " + "[" * 100_000 + "]" * 100_000 + "\n", "nested too deep"),
        ("goal = 'x'\nmax_turns = 0\n", "max_turns must be a whole number, 1 or more"),
        ("goal = 'x'\nsurprise = true\n", "unknown key 'surprise'; the keys here are allow,"),
    ],
)
def test_a_bad_task_file_names_file_and_field(tmp_path: Path, content: str, needle: str) -> None:
    task = tmp_path / "bad.toml"
    task.write_text(content)
    one_error_line(run("run", str(task)), 2, "bad.toml", needle)
    assert run("list", "--json").json() == []


def test_a_missing_task_file_is_a_usage_error(tmp_path: Path) -> None:
    one_error_line(run("run", str(tmp_path / "nope.toml")), 2, "does not exist")


def test_a_goal_with_no_model_is_a_model_error() -> None:
    one_error_line(run("run", "book a table for two"), 5, "no model is configured")
    assert run("list", "--json").json() == []


def test_an_unreachable_model_leaves_the_session_resumable(agentctl_home: Path) -> None:
    env = {
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "OPENAI_API_KEY": "sk-test-not-a-real-key-42",
        "AGENTCTL_RETRIES": "1",  # one retry, one second: the give-up path all the same
    }
    result = run("run", "book a table for two", "--model", "some-model", env=env)
    one_error_line(result, 5, "cannot reach the model server")
    assert "gave up after 2 attempts" in result.stderr
    [session] = run("list", "--json").json()
    assert session["state"] == "planning"
    shown = run("show", session["id"], "--json").json()
    assert "cannot reach" in shown["task"]["last_error"]
    # The key reached neither the store nor the output.
    for path in agentctl_home.rglob("*"):
        if path.is_file():
            assert b"sk-test-not-a-real-key-42" not in path.read_bytes()
    assert "sk-test" not in result.stderr + result.stdout


def test_a_corrupt_store_is_exit_6(agentctl_home: Path) -> None:
    agentctl_home.mkdir(parents=True)
    (agentctl_home / "agentctl.db").write_bytes(b"garbage" * 1000)
    one_error_line(run("list"), 6, "not a database")


def test_a_newer_store_is_exit_6_and_untouched(agentctl_home: Path) -> None:
    assert run("profile", "set", "airline", "Delta").code == 0  # list makes no store
    db = sqlite3.connect(agentctl_home / "agentctl.db")
    db.execute("PRAGMA user_version = 99")
    db.close()
    before = store_digest(agentctl_home)
    one_error_line(run("list"), 6, "newer than this agentctl", "upgrade agentctl")
    assert store_digest(agentctl_home) == before


def test_json_store_urls_work_from_the_flag(tmp_path: Path) -> None:
    url = f"json://{tmp_path / 'j'}"
    assert run("run", str(SAMPLES / "release_notes.toml"), "--store", url).code == 0
    assert [s["state"] for s in run("list", "--json", "--store", url).json()] == ["done"]
    assert (tmp_path / "j" / "sessions").is_dir()


def test_the_console_script_and_module_agree() -> None:
    script = Path(sys.executable).parent / "agentctl"
    exe = str(script) if script.exists() else shutil.which("agentctl")
    assert exe, "the agentctl console script is installed"
    import subprocess

    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    for command in ("run", "resume", "rollback", "list", "show", "history"):
        assert command in proc.stdout


def test_profile_set_show_unset_and_its_effect_on_new_sessions() -> None:
    assert run("profile", "set", "seat", "aisle").code == 0
    assert run("profile", "set", "airline", "KLM").code == 0
    assert run("profile", "show", "--json").json()["preferences"] == {
        "airline": "KLM",
        "seat": "aisle",
    }
    one_error_line(run("profile", "unset", "meal"), 2, "no preference 'meal' to unset")
    assert run("profile", "unset", "airline").code == 0
    assert run("run", TRIP, "--no-input").code == 3
    sid = run("list", "--json").json()[0]["id"]
    system = run("show", sid, "--json").json()["messages"][0]["content"]
    assert '- "seat": "aisle"' in system
    assert "KLM" not in system
    # The agent's remember tool wrote to the same profile.
    assert run("profile", "show", "--json").json()["preferences"] == {
        "airline": "Delta",
        "seat": "aisle",
    }
