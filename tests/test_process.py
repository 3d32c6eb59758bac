"""Real processes: kill -9 a run midway, resume it in a new process, and check that nothing was
lost, nothing duplicated, and no stored model reply was asked for again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentctl.store import open_store
from tests.conftest import SAMPLES, cli

TASK = str(SAMPLES / "release_notes.toml")


def checkpoints(env: dict[str, str]) -> int:
    """The head of the newest session, read the way a second process would (fast, to poll)."""
    try:
        store = open_store(env["AGENTCTL_STORE"])
    except Exception:
        return 0
    try:
        sessions = store.list_sessions()
    finally:
        store.close()
    return sessions[0].head if sessions else 0


def slow_run(
    env: dict[str, str], *, delay: float, until: int, output: int = subprocess.DEVNULL
) -> subprocess.Popen[str]:
    """Start `agentctl run` with slow model replies; return once it has `until` checkpoints."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentctl", "run", TASK],
        env={**os.environ, **env, "AGENTCTL_SCRIPTED_DELAY": str(delay)},
        stdout=output,
        stderr=output,
        text=True,
    )
    deadline = time.monotonic() + 60
    while checkpoints(env) < until:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return proc


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, str]]:
    """The checkpoints of an uninterrupted run: what every killed-and-resumed run must end with."""
    env = {"AGENTCTL_STORE": f"sqlite://{tmp_path_factory.mktemp('clean') / 'a.db'}"}
    assert cli("run", TASK, env=env).code == 0
    sid = cli("list", "--json", env=env).json()[0]["id"]
    history = cli("history", sid, "--json", env=env).json()
    return [(c["event"], c["from_state"], c["to_state"]) for c in history]


# Model calls follow checkpoints 1, 3 and 5 of this task; the others are followed at once by a
# commit, so killing "after 2" or "after 4" lands anywhere from a commit to the next model call.
@pytest.mark.parametrize(
    ("store_kind", "kill_after"),
    [("sqlite", 1), ("sqlite", 4), ("json", 2), ("postgres", 3)],
    indirect=["store_kind"],
)
def test_kill_9_midway_then_resume_reaches_done(
    tmp_path: Path, store_kind: str, kill_after: int, reference: list[tuple[str, str, str]]
) -> None:
    log = tmp_path / "requests.log"
    env = {"AGENTCTL_STORE": store_kind, "AGENTCTL_SCRIPTED_LOG": str(log)}
    proc = slow_run(env, delay=0.4, until=kill_after)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = checkpoints(env)
    assert killed_at < len(reference)

    resumed = cli("resume", env=env)
    assert resumed.code == 0, resumed.stderr
    sid = cli("list", "--json", env=env).json()[0]["id"]
    history = cli("history", sid, "--json", env=env).json()
    assert [c["id"] for c in history] == list(range(1, len(history) + 1))  # none lost, none twice
    assert [c["parent"] for c in history] == [None, *range(1, len(history))]
    assert [(c["event"], c["from_state"], c["to_state"]) for c in history] == reference
    turns = log.read_text().split()
    # The only turn that may be asked twice is the one in flight when the process died.
    assert len(turns) - len(set(turns)) <= 1
    assert sorted(set(turns)) == ["0", "1", "2"]


# Signals are handled above the store: one backend is enough.
def test_ctrl_c_saves_and_exits_130_with_the_resume_command(sqlite_url: str) -> None:
    env = {"AGENTCTL_STORE": sqlite_url}
    proc = slow_run(env, delay=0.5, until=2, output=subprocess.PIPE)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    sid = cli("list", "--json", env=env).json()[0]["id"]
    assert f"agentctl resume {sid}" in stderr
    assert cli("resume", sid, env=env).code == 0


def test_a_closed_terminal_sighup_is_handled_like_ctrl_c(sqlite_url: str) -> None:
    env = {"AGENTCTL_STORE": sqlite_url}
    proc = slow_run(env, delay=0.5, until=2)
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=30) == 130
    assert cli("resume", env=env).code == 0
