"""Workspace checkpoints: real files, real `git`, real rollbacks of what a shell command did."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentctl.workspace.snapshots import Snapshots
from tests.conftest import cli, run

SHELL = (
    "echo changed > a.txt && rm sub/b.txt && echo new > 'new file ü.txt' && "
    "mv c.txt renamed.txt && chmod +x tool.sh && mkdir -p made && echo x > made/y.txt"
)
TASK = f'''
title = "Reshape the files"
goal = "Reshape the files with one shell command."
allow = ["run_shell:*"]
max_turns = 6

[[script]]
[[script.tool_calls]]
name = "submit_plan"
arguments = {{ steps = ["Reshape"] }}

[[script]]
[[script.tool_calls]]
name = "run_shell"
arguments = {{ command = "{SHELL}" }}

[[script]]
[[script.tool_calls]]
name = "finish"
arguments = {{ result = "reshaped" }}
'''


def tree_digest(root: Path) -> dict[str, tuple[str, str]]:
    """Every file and link under `root` (the user's .git folders included): kind, mode and
    content. Directories count by what they hold: like git, snapshots keep no empty folder."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            continue
        else:
            body = hashlib.sha256(path.read_bytes()).hexdigest()
            out[rel] = (oct(path.stat().st_mode & 0o777), body)
    return out


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "work"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("a\n")
    (root / "sub" / "b.txt").write_text("b\n")
    (root / "c.txt").write_text("c\n")
    (root / "tool.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "blob.bin").write_bytes(bytes(range(256)) * 4)
    (root / "with space ü.txt").write_text("unicode\n")
    os.symlink("a.txt", root / "link")
    os.symlink("/etc/hostname", root / "outside")  # restored as a link, never followed
    return root


def a_session(tmp_path: Path, workspace: Path, store: str) -> tuple[dict[str, str], str]:
    task = tmp_path / "reshape.toml"
    task.write_text(TASK)
    env = {"AGENTCTL_STORE": store}
    result = run("run", str(task), "--workspace", str(workspace), "--yes", env=env)
    assert result.code == 0, result.stderr
    return env, run("list", "--json", env=env).json()[0]["id"]


@pytest.mark.parametrize("backend", ["sqlite", "json"])
def test_a_rollback_undoes_what_a_shell_command_did_and_can_itself_be_undone(
    tmp_path: Path, workspace: Path, backend: str
) -> None:
    before = tree_digest(workspace)
    store = f"sqlite://{tmp_path / 's.db'}" if backend == "sqlite" else f"json://{tmp_path / 'j'}"
    env, sid = a_session(tmp_path, workspace, store)
    after = tree_digest(workspace)
    assert after != before
    history = run("history", sid, "--json", env=env).json()
    started = next(c["id"] for c in history if c["event"] == "tool_started")
    shown = run("history", sid, env=env).stdout
    assert "run_shell ok (" in shown  # the checkpoint that changed files says how many

    preview = run("rollback", sid, "--to", str(started), "--dry-run", env=env)
    assert preview.code == 0
    assert "renamed.txt" in preview.stdout
    assert tree_digest(workspace) == after  # a dry run changes nothing

    back = run("rollback", sid, "--to", str(started), env=env)
    assert back.code == 0, back.stderr
    assert "removed  renamed.txt" in back.stdout
    assert tree_digest(workspace) == before  # edits, deletions, renames, new files, modes

    head = run("list", "--json", env=env).json()[0]["head"]
    undo = run("rollback", sid, "--to", str(head - 1), env=env)  # the abandoned branch's end
    assert undo.code == 0, undo.stderr
    assert tree_digest(workspace) == after
    assert run("verify", env=env).code == 0
    assert os.readlink(workspace / "outside") == "/etc/hostname"


def test_edits_made_outside_agentctl_are_refused_unless_forced(
    tmp_path: Path, workspace: Path
) -> None:
    env, sid = a_session(tmp_path, workspace, f"sqlite://{tmp_path / 's.db'}")
    (workspace / "mine.txt").write_text("the user's own work\n")
    refused = run("rollback", sid, "--to", "2", env=env)
    assert refused.code == 2
    assert "mine.txt (new)" in refused.stderr
    assert (workspace / "mine.txt").exists()
    assert len(run("history", sid, "--json", env=env).json()) == 8  # nothing written
    forced = run("rollback", sid, "--to", "2", "--force", env=env)
    assert forced.code == 0, forced.stderr
    assert not (workspace / "mine.txt").exists()
    # ...and even the forced-over edit comes back: it was captured before the restore.
    undo = run("rollback", sid, "--to", "6", env=env)
    assert undo.code == 0


def test_conversation_only_and_files_only(tmp_path: Path, workspace: Path) -> None:
    env, sid = a_session(tmp_path, workspace, f"sqlite://{tmp_path / 's.db'}")
    after = tree_digest(workspace)
    kept = run("rollback", sid, "--to", "2", "--conversation-only", env=env)
    assert kept.code == 0
    assert "left as they are" in kept.stderr
    assert tree_digest(workspace) == after
    files = run("rollback", sid, "--to", "1", "--files-only", env=env)
    assert files.code == 0, files.stderr
    assert (workspace / "c.txt").exists()
    shown = run("show", sid, "--json", env=env).json()
    assert shown["state"] == "planning"  # the conversation stayed where --conversation-only put it
    assert shown["snapshot_bytes"] > 0


def test_diff_between_checkpoints(tmp_path: Path, workspace: Path) -> None:
    env, sid = a_session(tmp_path, workspace, f"sqlite://{tmp_path / 's.db'}")
    patch = run("diff", sid, env=env)
    assert patch.code == 0
    assert "+changed" in patch.stdout
    stat = run("diff", sid, "--stat", env=env)
    assert "a.txt" in stat.stdout
    data = run("diff", sid, "--json", env=env).json()
    assert {"status": "D", "path": "c.txt"} in data["files"]
    assert run("diff", sid, "--from", "99", env=env).code == 2


def test_the_users_git_folders_are_never_touched(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    git = ["git", "-c", "user.email=u@example.com", "-c", "user.name=u"]
    subprocess.run([*git, "init", "-q", str(root)], check=True)
    (root / "tracked.txt").write_text("one\n")
    subprocess.run([*git, "-C", str(root), "add", "."], check=True)
    subprocess.run([*git, "-C", str(root), "commit", "-qm", "one"], check=True)
    (root / "tracked.txt").write_text("uncommitted\n")
    nested = root / "vendor" / "lib"
    nested.mkdir(parents=True)
    subprocess.run([*git, "init", "-q", str(nested)], check=True)
    (nested / "n.txt").write_text("n\n")
    dot_git = {p: tree_digest(p) for p in (root / ".git", nested / ".git")}

    snaps = Snapshots(root, tmp_path / "data")
    first = snaps.capture()
    (root / "tracked.txt").write_text("agent edit\n")
    second = snaps.capture()
    snaps.restore(second.tree, first.tree)
    assert (root / "tracked.txt").read_text() == "uncommitted\n"
    snaps.restore(snaps.capture().tree, second.tree)
    assert {p: tree_digest(p) for p in dot_git} == dot_git
    status = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True
    )
    assert " M tracked.txt" in status.stdout  # the user's repository sees only the edit


def test_ignore_rules_and_the_size_cap(tmp_path: Path, workspace: Path) -> None:
    (workspace / ".gitignore").write_text("*.log\n")
    (workspace / "node_modules").mkdir()
    (workspace / "node_modules" / "dep.js").write_text("x")
    (workspace / "run.log").write_text("log")
    (workspace / "big.dat").write_bytes(b"x" * 2048)
    snaps = Snapshots(workspace, tmp_path / "data", max_file=1024)
    first = snaps.capture()
    assert first.skipped == ("big.dat",)
    (workspace / "run.log").write_text("changed log")
    (workspace / "a.txt").write_text("edited")
    second = snaps.capture()
    assert [c.path for c in snaps.changes(first.tree, second.tree)] == ["a.txt"]
    snaps.restore(second.tree, first.tree)
    assert (workspace / "a.txt").read_text() == "a\n"
    assert (workspace / "run.log").read_text() == "changed log"  # ignored: left alone
    assert (workspace / "big.dat").exists()  # not captured: never deleted either
    assert snaps.capture().tree == first.tree  # unchanged workspace, the same tree


def test_a_restore_killed_midway_is_finished_by_the_next_resume(
    tmp_path: Path, workspace: Path
) -> None:
    env, sid = a_session(tmp_path, workspace, f"sqlite://{tmp_path / 's.db'}")
    code = (
        "import sys; from agentctl import faults, rewind; from agentctl.config import Settings;"
        "faults.arm('restore_started', 1);"
        f"rewind.rollback_session(Settings.load(), {sid!r}, to=2, steps=None)"
    )
    killed = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True
    )
    assert killed.returncode == -9, killed.stderr
    assert (workspace / "renamed.txt").exists()  # the checkpoint is written, the files not yet
    resumed = cli("resume", sid, "--no-input", env=env)
    assert "finished restoring the workspace files" in resumed.stderr
    assert (workspace / "c.txt").exists()
    assert not (workspace / "renamed.txt").exists()


def test_the_per_capture_cap_and_the_settings_that_set_both_caps(
    tmp_path: Path, workspace: Path
) -> None:
    snaps = Snapshots(workspace, tmp_path / "data", max_file=10_000, max_capture=3000)
    first = snaps.capture()  # the workspace's own files fit; the next new ones do not all
    (workspace / "n1.txt").write_bytes(b"1" * 2000)
    (workspace / "n2.txt").write_bytes(b"2" * 2000)
    second = snaps.capture(first.tree)
    assert len(second.skipped) == 1
    assert len(second.changed) == 1
    from agentctl import wiring
    from agentctl.config import Settings

    settings = Settings.load(
        {"AGENTCTL_HOME": str(tmp_path / "h"), "AGENTCTL_SNAPSHOT_MAX_FILE": "123"}
    )
    made = wiring.snapshots(settings, str(workspace), lambda _e: None)
    assert made is not None
    assert made.max_file == 123


def test_a_workspace_that_is_home_or_root_is_never_snapshotted(tmp_path: Path) -> None:
    from agentctl import wiring
    from agentctl.config import Settings

    said: list[object] = []
    settings = Settings.load({"AGENTCTL_HOME": str(tmp_path / "h"), "HOME": str(tmp_path)})
    assert wiring.snapshots(settings, str(tmp_path), said.append) is None
    assert wiring.snapshots(settings, "/", said.append) is None
    assert "home folder" in str(said[0])
    assert not (tmp_path / "h" / "snapshots").exists()


def test_a_fork_can_take_a_checkpoints_files_into_a_new_folder(
    tmp_path: Path, workspace: Path
) -> None:
    before = tree_digest(workspace)
    env, sid = a_session(tmp_path, workspace, f"sqlite://{tmp_path / 's.db'}")
    after = tree_digest(workspace)
    early, late = tmp_path / "early", tmp_path / "late"
    assert run("fork", sid, "--at", "2", "--workspace", str(early), env=env).code == 0
    assert run("fork", sid, "--workspace", str(late), env=env).code == 0
    assert tree_digest(early) == before
    assert tree_digest(late) == after
    assert tree_digest(workspace) == after  # the original is untouched
    late_id = next(
        s["id"] for s in run("list", "--json", env=env).json() if s["workspace"] == str(late)
    )
    # Deleting the original keeps the trees the fork's checkpoints name (it owns them too).
    assert run("rm", sid, "--yes", env=env).code == 0
    back = run("rollback", late_id, "--to", "2", env=env)  # the fork reaches the old trees
    assert back.code == 0, back.stderr
    assert tree_digest(late) == before
    assert run("fork", sid, "--workspace", str(late), env=env).code == 2  # not empty


def test_deleting_sessions_gives_their_snapshots_back_and_keeps_the_rest(
    tmp_path: Path, workspace: Path
) -> None:
    env, first = a_session(tmp_path, workspace, f"sqlite://{tmp_path / 's.db'}")
    (workspace / "big.txt").write_bytes(os.urandom(200_000))  # only the second session's
    task = tmp_path / "second.toml"
    task.write_text(TASK.replace(SHELL, "echo again >> a.txt && rm big.txt"))
    assert run("run", str(task), "--workspace", str(workspace), "--yes", env=env).code == 0
    second = next(s for s in (x["id"] for x in run("list", "--json", env=env).json()) if s != first)
    shown = run("show", first, "--json", env=env).json()["snapshot_bytes"]
    assert run("rm", second, "--yes", env=env).code == 0
    after = run("show", first, "--json", env=env).json()["snapshot_bytes"]
    assert after < shown - 100_000  # the big file's snapshot went with the session
    # The second session changed the files since: --force. The first's snapshots are all there.
    back = run("rollback", first, "--to", "2", "--force", env=env)
    assert back.code == 0, back.stderr
    assert (workspace / "c.txt").exists()
