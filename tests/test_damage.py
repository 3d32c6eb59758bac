"""Damage a user can meet: a truncated database, an unwritable store, a full disk, a secret in
the environment. Each gives one clear line and exit 6 (secrets: no trace at all), no more harm."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SAMPLES, cli

TASK = str(SAMPLES / "release_notes.toml")


def test_a_truncated_sqlite_file_is_exit_6(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    env = {"AGENTCTL_STORE": f"sqlite://{db}"}
    assert cli("run", TASK, env=env).code == 0
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])
    result = cli("show", "x", env=env)
    assert result.code == 6, result.stderr
    assert result.stderr.startswith("error: store ")
    assert "malformed" in result.stderr or "not a database" in result.stderr


def cli_first_id(env: dict[str, str]) -> str:
    return str(cli("list", "--json", env=env).json()[0]["id"])


def test_a_store_that_cannot_be_created_is_exit_6(tmp_path: Path) -> None:
    # An unwritable place that even root cannot write to (CI runs as root, which ignores
    # permission bits): a path under a regular file.
    blocker = tmp_path / "file"
    blocker.write_text("")
    where = {"AGENTCTL_STORE": f"sqlite://{blocker / 'a.db'}"}
    result = cli("profile", "set", "airline", "Delta", env=where)  # list would make none
    assert result.code == 6, result.stderr
    assert result.stderr.startswith("error: store ")


def limited(max_bytes: int) -> None:
    """In the child: files may not grow past max_bytes, and going past is an error, not a signal."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))


# Limits that let a session start and then fail mid-run: SQLite's WAL grows in pages, the JSON
# log in lines.
@pytest.mark.parametrize(("backend", "limit"), [("sqlite", 100_000), ("json", 6_000)])
def test_a_full_disk_is_exit_6_and_the_session_survives_it(
    tmp_path: Path, backend: str, limit: int
) -> None:
    url = f"sqlite://{tmp_path / 'a.db'}" if backend == "sqlite" else f"json://{tmp_path / 'j'}"
    env = {"AGENTCTL_STORE": url}
    assert cli("profile", "set", "airline", "Delta", env=env).code == 0  # the store, made
    proc = subprocess.run(
        [sys.executable, "-m", "agentctl", "run", TASK],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: limited(limit),
    )
    assert proc.returncode == 6, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1
    assert "disk full" in errors[0] or "too large" in errors[0], errors
    assert len(cli("history", cli_first_id(env), "--json", env=env).json()) >= 2  # it got going
    # With room again, nothing was lost: the session resumes from its last checkpoint to done.
    assert cli("verify", env=env).code == 0
    resumed = cli("resume", env=env)
    assert resumed.code == 0, resumed.stderr
    assert cli("verify", env=env).code == 0


def test_no_secret_reaches_the_store_the_exports_or_the_output(
    tmp_path: Path, agentctl_home: Path
) -> None:
    secret = "sk-proj-THIS-IS-A-TEST-KEY-0123456789"
    env = {"OPENAI_API_KEY": secret, "AGENTCTL_STORE": f"json://{tmp_path / 'j'}"}
    outputs = []
    runs = (
        ["run", str(SAMPLES / "plan_trip.toml"), "--model", "scripted", "--no-input"],
        ["resume", "--input", "soon", "--model", "scripted"],
        ["run", "a goal for a real model", "--model", "gpt-4o-mini"],  # fails: no network
    )
    for store, commands in (
        (f"sqlite://{agentctl_home / 'agentctl.db'}", runs),
        (f"json://{tmp_path / 'j'}", runs[:1]),
    ):
        env["AGENTCTL_STORE"] = store
        for args in commands:
            result = cli(*args, env={**env, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
            outputs += [result.stdout, result.stderr]
        for session in cli("list", "--json", env=env).json():
            for command in (["show", "--json"], ["history", "--json"], ["show"]):
                result = cli(command[0], session["id"], *command[1:], env=env)
                outputs += [result.stdout, result.stderr]
    assert all(secret not in text for text in outputs)
    files = [p for p in [*agentctl_home.rglob("*"), *tmp_path.rglob("*")] if p.is_file()]
    assert len(files) > 5
    for path in files:
        assert secret.encode() not in path.read_bytes(), path
