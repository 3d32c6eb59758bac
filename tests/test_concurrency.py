"""Real parallel processes: one writer per session, and sessions that do not block each other."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SAMPLES, cli

TASK = str(SAMPLES / "release_notes.toml")


def unfinished_session(env: dict[str, str]) -> str:
    """A session left half done: its run stopped at the turn limit."""
    assert cli("run", TASK, "--max-turns", "1", env=env).code == 1
    return str(cli("list", "--json", env=env).json()[0]["id"])


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agentctl", *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("store_kind", "racers"),
    [("sqlite", 5), ("json", 3), ("postgres", 6)],
    indirect=["store_kind"],
)
def test_of_several_resumes_of_one_session_exactly_one_proceeds(
    store_kind: str, racers: int
) -> None:
    env = {"AGENTCTL_STORE": store_kind}
    sid = unfinished_session(env)
    slow = {**env, "AGENTCTL_SCRIPTED_DELAY": "0.5"}
    procs = [spawn(["resume", sid], slow) for _ in range(racers)]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0] + [4] * (racers - 1), results
    winner = next(p for p, (code, _) in zip(procs, results, strict=True) if code == 0)
    for code, stderr in results:
        if code == 4:
            assert f"session {sid} is running in process {winner.pid}" in stderr
    history = cli("history", sid, "--json", env=env).json()
    assert [c["id"] for c in history] == list(range(1, len(history) + 1))
    assert history[-1]["to_state"] == "done"
    assert sum(c["event"] == "task_complete" for c in history) == 1


def test_rollback_of_a_running_session_is_busy(sqlite_url: str) -> None:
    env = {"AGENTCTL_STORE": sqlite_url}
    sid = unfinished_session(env)
    before = len(cli("history", sid, "--json", env=env).json())
    runner = spawn(["resume", sid], {**env, "AGENTCTL_SCRIPTED_DELAY": "4.0"})
    try:
        # Once the resumer has written a checkpoint it holds the lease, and its next model
        # call takes 4 s: only then is the rollback sure to meet a running session. (With 1 s,
        # a loaded machine's two CLI start-ups, the poll's and the rollback's, outlasted the
        # call, and the rollback met a finished session.)
        while len(cli("history", sid, "--json", env=env).json()) <= before:
            assert runner.poll() is None
        busy = cli("rollback", sid, "--to", "1", env=env)
        assert busy.code == 4, busy.stderr
        assert "is running in process" in busy.stderr
    finally:
        assert runner.wait(timeout=60) == 0


def test_different_sessions_run_in_parallel(sqlite_url: str) -> None:
    env = {"AGENTCTL_STORE": sqlite_url}
    first, second = unfinished_session(env), unfinished_session(env)
    slow = {**env, "AGENTCTL_SCRIPTED_DELAY": "0.4"}
    procs = [spawn(["resume", sid], slow) for sid in (first, second)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    spans = []
    for sid in (first, second):
        times = [c["created_at"] for c in cli("history", sid, "--json", env=env).json()[3:]]
        spans.append((min(times), max(times)))
    # Their resumed checkpoints interleave in time: neither waited for the other to finish.
    assert spans[0][0] < spans[1][1], spans
    assert spans[1][0] < spans[0][1], spans


OPENER = """
import sys
from agentctl.store import open_store
sys.stdin.readline()
store = open_store(sys.argv[1])
store.close()
"""


@pytest.mark.parametrize("kind", ["sqlite", "json"])
def test_processes_creating_one_new_store_at_once_all_open_it(tmp_path: Path, kind: str) -> None:
    url = (
        f"sqlite://{tmp_path / 'new' / 'a.db'}"
        if kind == "sqlite"
        else f"json://{tmp_path / 'new'}"
    )
    for _ in range(5):  # the race is narrow: several rounds of eight processes
        target = tmp_path / "new"
        if target.exists():
            shutil.rmtree(target)
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", OPENER, url],
                stdin=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(8)
        ]
        for p in procs:  # all are started and importing; one line releases them together
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        results = [(p.wait(timeout=60), p.stderr.read() if p.stderr else "") for p in procs]
        assert all(code == 0 for code, _ in results), results
    assert cli("list", "--json", env={"AGENTCTL_STORE": url}).json() == []
