"""`agentctl verify`: clean stores pass; each kind of damage is found and named (exit 6)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import SAMPLES, cli


@pytest.fixture(scope="module", params=["sqlite", "json"])
def pristine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str, str]:
    """A session with a rollback fork in it, made once per backend."""
    root = tmp_path_factory.mktemp(request.param)
    url = f"sqlite://{root / 'a.db'}" if request.param == "sqlite" else f"json://{root / 'j'}"
    env = {"AGENTCTL_STORE": url, "AGENTCTL_HOME": str(root / "home")}
    assert cli("run", str(SAMPLES / "plan_trip.toml"), "--no-input", env=env).code == 3
    sid = cli("list", "--json", env=env).json()[0]["id"]
    assert cli("resume", sid, "--input", "May", env=env).code == 0
    assert cli("rollback", sid, "--steps", "3", env=env).code == 0
    return root, request.param, sid


@pytest.fixture
def walked(pristine: tuple[Path, str, str], tmp_path: Path) -> tuple[dict[str, str], str]:
    """A private copy of the pristine store, free to damage."""
    root, kind, sid = pristine
    shutil.copytree(root, tmp_path / "copy")
    copy = tmp_path / "copy"
    url = f"sqlite://{copy / 'a.db'}" if kind == "sqlite" else f"json://{copy / 'j'}"
    return {"AGENTCTL_STORE": url}, sid


def test_a_sound_store_verifies(walked: tuple[dict[str, str], str]) -> None:
    env, sid = walked
    result = cli("verify", env=env)
    assert result.code == 0, result.stdout
    assert f"✓ {sid}: 12 checkpoints" in result.stdout
    report = cli("verify", sid[:3], "--json", env=env).json()
    assert report == {"store": [], "sessions": [{"id": sid, "checkpoints": 12, "problems": []}]}


def tamper(db_path: Path, sql: str) -> None:
    db = sqlite3.connect(db_path)
    db.execute(sql)
    db.commit()
    db.close()


@pytest.mark.parametrize(
    ("sql", "needle"),
    [
        (
            "UPDATE checkpoints SET to_state = 'done' WHERE id = 3",
            "checkpoint 3 (plan_ready): plan_ready from planning leads to executing, not done",
        ),
        (
            "UPDATE checkpoints SET parent = 1 WHERE id = 5",
            "checkpoint 5 (remember): parent 1, expected 4",
        ),
        ("UPDATE sessions SET head = 7", "the session index says head 7"),
        (
            "UPDATE checkpoints SET event = 'task_complete' WHERE id = 2",
            "checkpoint 2 (task_complete): event 'task_complete' is not allowed in state",
        ),
        (
            "UPDATE checkpoints SET task = '{\"goal\": 5}' WHERE id = 6",
            "checkpoint 6 does not load",
        ),
        (
            "UPDATE checkpoints SET message_tip = 1 WHERE id = 8",
            "checkpoint 8: its conversation does not extend checkpoint 7's",
        ),
    ],
)
@pytest.mark.parametrize("pristine", ["sqlite"], indirect=True)
def test_damage_to_a_sqlite_store_is_named(
    tmp_path: Path, walked: tuple[dict[str, str], str], sql: str, needle: str
) -> None:
    env, _sid = walked
    tamper(Path(env["AGENTCTL_STORE"].removeprefix("sqlite://")), sql)
    result = cli("verify", env=env)
    assert result.code == 6
    assert needle in result.stdout, result.stdout


@pytest.mark.parametrize("pristine", ["json"], indirect=True)
def test_a_corrupt_json_lines_log_is_named(walked: tuple[dict[str, str], str]) -> None:
    env, sid = walked
    log = Path(env["AGENTCTL_STORE"].removeprefix("json://")) / "sessions" / sid / "events.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    lines[3] = lines[3][:20] + "\n"
    log.write_text("".join(lines))
    result = cli("verify", "--json", env=env)
    assert result.code == 6
    assert any("line 4 is corrupt" in p for p in result.json()["store"])
