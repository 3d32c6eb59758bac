"""`agentctl watch` against real drivers: a run killed with -9 while watched ends the watch
with exit 7 and one line; a session interrupted earlier is said not running at once; a live
run is followed through several heartbeats of its lease to its end (exit 0)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentctl.errors import ExitCode
from agentctl.store import open_store
from tests.conftest import cli
from tests.test_process import slow_run

pytestmark = pytest.mark.process


def newest(env: dict[str, str]) -> str:
    return str(cli("list", "--json", env=env).json()[0]["id"])


def watching(env: dict[str, str], sid: str, err: Path) -> subprocess.Popen[str]:
    """`agentctl watch SID` in its own process, its stderr in `err`; returned once it follows."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentctl", "watch", sid],
        env={**os.environ, **env, "COLUMNS": "200"},
        stdout=subprocess.DEVNULL,
        stderr=err.open("w"),
        stdin=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 60
    while "watching session" not in err.read_text():
        assert proc.poll() is None, err.read_text()
        assert time.monotonic() < deadline, "watch never started following"
        time.sleep(0.05)
    return proc


def test_a_driver_killed_while_watched_ends_the_watch_with_exit_7(tmp_path: Path) -> None:
    env = {"AGENTCTL_STORE": f"sqlite://{tmp_path / 's.db'}"}
    driver = slow_run(env, delay=120, until=1)  # waits for its model's reply: never comes
    err = tmp_path / "watch.err"
    watch = None
    try:
        sid = newest(env)
        watch = watching(env, sid, err)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
        assert watch.wait(timeout=60) == ExitCode.NOT_RUNNING == 7
    finally:
        for proc in (driver, watch):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    said = err.read_text()
    line = f"session {sid} is not running: the process that ran it (process {driver.pid} on "
    assert line in said
    assert f"is gone; continue with: agentctl resume {sid}" in said
    assert said.count("is not running") == 1


def test_watch_of_an_interrupted_session_says_so_at_once(tmp_path: Path) -> None:
    env = {"AGENTCTL_STORE": f"sqlite://{tmp_path / 's.db'}"}
    driver = slow_run(env, delay=120, until=1)
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    sid = newest(env)
    shown = cli("watch", sid, env=env, timeout=60)
    assert shown.code == 7
    assert f"session {sid} is not running" in shown.stderr
    assert f"agentctl resume {sid}" in shown.stderr
    streamed = cli("watch", sid, "--json", env=env, timeout=60)
    assert streamed.code == 7
    events = streamed.events()
    assert "is not running" in events[-2]["text"]
    assert events[-1]["type"] == "result"
    assert (events[-1]["stop"], events[-1]["exit_code"]) == ("not_running", 7)
    assert events[-1]["state"] == "planning"
    # and resume continues it, as the line says
    assert cli("resume", sid, env=env, timeout=120).code == 0


def test_a_live_driver_is_followed_through_its_heartbeats_to_the_end(tmp_path: Path) -> None:
    """Replies 3 s apart, the lease renewed every 2 s (TTL 6 s): the watch reads the lease in
    every pause and never calls the run gone; the test sees the renewals happen."""
    env = {"AGENTCTL_STORE": f"sqlite://{tmp_path / 's.db'}", "AGENTCTL_LEASE_TTL": "6"}
    driver = slow_run(env, delay=3, until=1)
    err = tmp_path / "watch.err"
    watch = None
    renewals: set[float] = set()
    try:
        sid = newest(env)
        watch = watching(env, sid, err)
        store = open_store(env["AGENTCTL_STORE"])
        try:
            deadline = time.monotonic() + 120
            while watch.poll() is None and time.monotonic() < deadline:
                held = store.lease_of(sid)
                if held is not None:
                    renewals.add(held.expires_at)
                time.sleep(0.1)
        finally:
            store.close()
        assert watch.wait(timeout=60) == 0, err.read_text()
        assert driver.wait(timeout=60) == 0
    finally:
        for proc in (driver, watch):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert len(renewals) >= 3, renewals  # the first lease and at least two heartbeats
    assert "not running" not in err.read_text()


def test_watch_of_a_session_whose_lease_file_is_hostile_is_one_line_and_exit_7(
    tmp_path: Path,
) -> None:
    """A lease.json agentctl never writes (an expiry of 400 digits: JSON reads it as an int
    that no float holds; one before the epoch; terminal control in the host): the watch said
    "internal error (OverflowError ...)" with exit 1; now it reads as no lease, one line."""
    import json

    env = {"AGENTCTL_STORE": f"json://{tmp_path / 'store'}"}
    driver = slow_run(env, delay=120, until=1)
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    sid = newest(env)
    lease = tmp_path / "store" / "sessions" / sid / "lease.json"
    hostile = {"host": "h\x1b[2J", "pid": 1, "token": "t", "user": "u"}
    for expiry in ("1" + "0" * 400, "-1e308"):
        lease.write_text(json.dumps({**hostile, "expires_at": 0}).replace(" 0}", f" {expiry}}}"))
        shown = cli("watch", sid, env=env, timeout=60)
        assert shown.code == 7, shown.stderr
        assert "internal error" not in shown.stderr
        assert "\x1b" not in shown.stderr
        lines = [line for line in shown.stderr.splitlines() if "is not running" in line]
        assert lines == [
            f"session {sid} is not running: no process holds it (its run stopped before it "
            f"was done or waiting for input); continue with: agentctl resume {sid}"
        ]
