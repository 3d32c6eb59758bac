"""Workspace checkpoints: real files, real `git`, real rollbacks of what a shell command did."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentctl.errors import StoreError
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
        "import sys; from agentctl import faults; from agentctl.usecases import rollback as rewind;"
        "from agentctl.config import Settings;"
        "faults.arm('restore_started', 1);"
        f"rewind.rollback_session(Settings.load(), {sid!r}, to=2, steps=None)"
    )
    killed = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True
    )
    assert killed.returncode == -9, killed.stderr
    assert (workspace / "renamed.txt").exists()  # the checkpoint is written, the files not yet
    resumed = cli("resume", sid, "--no-input", "--ask", env=env)  # run --yes persists: ask
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
    from agentctl.config import Settings
    from agentctl.usecases import wiring

    settings = Settings.load(
        {"AGENTCTL_HOME": str(tmp_path / "h"), "AGENTCTL_SNAPSHOT_MAX_FILE": "123"}
    )
    made = wiring.snapshots(settings, str(workspace), lambda _e: None)
    assert made is not None
    assert made.max_file == 123


def test_a_workspace_that_is_home_or_root_is_never_snapshotted(tmp_path: Path) -> None:
    from agentctl.config import Settings
    from agentctl.usecases import wiring

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


# == Issue 29: the boundary, round two. Grouped by attacker; each failed on the code before. ==

# -- a hostile session file or store -----------------------------------------------------------


def _plant_tree(store_dir: Path, value: str) -> None:
    """A JSON-lines store rewritten by hand: every tree id replaced with `value`."""
    import re

    for log in store_dir.rglob("*.jsonl"):
        text = log.read_text()
        log.write_text(
            re.sub(r'"workspace_tree": ?"[0-9a-f]{40}"', f'"workspace_tree": "{value}"', text)
        )


def test_a_tree_id_from_the_store_never_reaches_git_as_an_option(
    tmp_path: Path, workspace: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    env, sid = a_session(tmp_path, workspace, f"json://{tmp_path / 'j'}")
    _plant_tree(tmp_path / "j", f"--output={victim}")
    preview = run("rollback", sid, "--to", "2", "--dry-run", env=env)
    assert victim.read_text() == "precious\n"
    assert preview.code == 6, preview.stderr
    assert "not a snapshot id" in preview.stderr
    snaps = Snapshots(workspace, tmp_path / "data")
    tree = snaps.capture().tree
    for call in (
        lambda: snaps.changes(f"--output={victim}", tree),
        lambda: snaps.has(f"--output={victim}"),
        lambda: snaps.diff(tree, f"--output={victim}"),
        lambda: snaps.restore(tree, f"--output={victim}"),
    ):
        with pytest.raises(StoreError):
            call()
    assert victim.read_text() == "precious\n"


def test_rm_keeps_the_snapshots_a_fork_in_the_same_workspace_names(
    tmp_path: Path, workspace: Path
) -> None:
    before = tree_digest(workspace)
    env, sid = a_session(tmp_path, workspace, f"sqlite://{tmp_path / 's.db'}")
    assert run("fork", sid, "--name", "twin", env=env).code == 0  # same workspace, no capture yet
    twin = next(s["id"] for s in run("list", "--json", env=env).json() if s["id"] != sid)
    assert run("rm", sid, "--yes", env=env).code == 0
    back = run("rollback", twin, "--to", "2", env=env)
    assert back.code == 0, back.stderr
    assert "not restored" not in back.stderr
    assert tree_digest(workspace) == before  # the files came back, not the conversation only


def test_rm_of_a_moved_sessions_record_keeps_the_snapshots_its_copy_names(
    tmp_path: Path, workspace: Path
) -> None:
    before = tree_digest(workspace)
    env, sid = a_session(tmp_path, workspace, f"sqlite://{tmp_path / 'a.db'}")
    there = {"AGENTCTL_STORE": f"sqlite://{tmp_path / 'b.db'}"}
    moved = run("move", sid, "--to", there["AGENTCTL_STORE"], env=env)
    assert moved.code == 0, moved.stderr
    assert run("rm", sid, "--yes", env=env).code == 0  # the record left behind in the first
    back = run("rollback", sid, "--to", "2", env=there)
    assert back.code == 0, back.stderr
    assert tree_digest(workspace) == before  # the files came back, not the conversation only


def test_snapshots_shared_with_another_store_go_only_when_asked(
    tmp_path: Path, workspace: Path
) -> None:
    env_a, first = a_session(tmp_path, workspace, f"sqlite://{tmp_path / 'a.db'}")
    task = tmp_path / "drop.toml"
    task.write_text(TASK.replace(SHELL, "rm big.txt"))
    (workspace / "big.txt").write_bytes(os.urandom(200_000))  # only the first store's trees
    assert run("run", str(task), "--workspace", str(workspace), "--yes", env=env_a).code == 0
    env_b, second = a_session(tmp_path, workspace, f"sqlite://{tmp_path / 'b.db'}")
    doomed = [s["id"] for s in run("list", "--json", env=env_a).json()]
    assert first in doomed
    assert run("rm", *doomed, "--yes", env=env_a).code == 0  # b's session shares them: kept
    size = run("show", second, "--json", env=env_b).json()["snapshot_bytes"]
    listed = run("prune", "--snapshots", "--dry-run", env=env_b)
    assert listed.code == 0, listed.stderr
    assert first in listed.stdout
    assert run("show", second, "--json", env=env_b).json()["snapshot_bytes"] == size
    pruned = run("prune", "--snapshots", "--yes", env=env_b)
    assert pruned.code == 0, pruned.stderr
    assert run("show", second, "--json", env=env_b).json()["snapshot_bytes"] < size
    back = run("rollback", second, "--to", "2", "--force", env=env_b)  # its own trees stay
    assert back.code == 0, back.stderr
    assert "no snapshot" not in back.stderr
    assert run("prune", env=env_b).code == 2  # neither --older-than nor --snapshots


# -- a hostile model -------------------------------------------------------------------------


def test_a_rollback_restores_exact_file_modes(tmp_path: Path, workspace: Path) -> None:
    key = workspace / ".env"
    key.write_text("SECRET=1\n")
    key.chmod(0o600)
    (workspace / "group.txt").write_text("g\n")
    (workspace / "group.txt").chmod(0o640)
    snaps = Snapshots(workspace, tmp_path / "data")
    first = snaps.capture()
    key.unlink()  # the model deletes the key...
    (workspace / "group.txt").chmod(0o666)  # ...and widens another file (same content)
    second = snaps.capture()
    snaps.restore(second.tree, first.tree)
    assert oct(key.stat().st_mode & 0o777) == oct(0o600)
    assert oct((workspace / "group.txt").stat().st_mode & 0o777) == oct(0o640)


def test_a_capture_adds_at_most_its_bound_even_by_rewriting_tracked_files(
    tmp_path: Path, workspace: Path
) -> None:
    (workspace / "t1.bin").write_bytes(b"1" * 100)
    (workspace / "t2.bin").write_bytes(b"2" * 100)
    snaps = Snapshots(workspace, tmp_path / "data", max_file=10_000, max_capture=3000)
    first = snaps.capture()
    (workspace / "t1.bin").write_bytes(os.urandom(2000))  # tracked, rewritten
    (workspace / "t2.bin").write_bytes(os.urandom(2000))
    second = snaps.capture(first.tree)
    assert len(second.skipped) == 1  # one rewrite fits the bound, the other is named
    assert len(second.changed) == 2  # the one left out is out of the tree, not kept stale
    left = second.skipped[0]
    snaps.restore(second.tree, first.tree)
    assert (workspace / left).stat().st_size == 2000  # never captured: never overwritten


def test_a_rollback_listing_shows_newlines_in_file_names(tmp_path: Path, workspace: Path) -> None:
    env, sid = a_session(tmp_path, workspace, f"sqlite://{tmp_path / 's.db'}")
    (workspace / "evil\nremoved  everything").write_text("x")
    refused = run("rollback", sid, "--to", "2", env=env)  # an outside edit, named on one line
    assert refused.code == 2
    assert "evil\\nremoved  everything" in refused.stderr, refused.stderr
    back = run("rollback", sid, "--to", "2", "--force", env=env)
    assert back.code == 0, back.stderr
    assert "removed  everything" not in back.stdout.splitlines()
    assert "evil\\nremoved  everything" in back.stdout


# -- a hostile workspace ---------------------------------------------------------------------


def test_a_git_planted_in_the_workspace_never_runs(
    tmp_path: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    planted = workspace / "git"
    planted.write_text(f"#!/bin/sh\ntouch {tmp_path / 'PWNED'}\nexit 1\n")
    planted.chmod(0o755)
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("PATH", f".:{os.environ['PATH']}")
    snaps = Snapshots(workspace, tmp_path / "data")
    snaps.capture()
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("name", [".GIT", "git~1", ".git.", ".git ", "sub/.Git"])
def test_folders_git_refuses_by_name_are_left_out_and_named(
    tmp_path: Path, workspace: Path, name: str
) -> None:
    (workspace / name).mkdir(parents=True)
    (workspace / name / "config").write_text("[core]\n")
    snaps = Snapshots(workspace, tmp_path / "data")
    first = snaps.capture()  # before: git add failed, and every capture with it
    assert any(name in s and "git refuses" in s for s in first.skipped), first.skipped
    (workspace / "a.txt").write_text("edited\n")
    second = snaps.capture(first.tree)
    assert [c.path for c in second.changed] == ["a.txt"]
    snaps.restore(second.tree, first.tree)
    assert (workspace / "a.txt").read_text() == "a\n"
    assert (workspace / name / "config").read_text() == "[core]\n"


def test_gitattributes_never_change_the_bytes_a_restore_writes(
    tmp_path: Path, workspace: Path
) -> None:
    (workspace / ".gitattributes").write_text(
        "*.txt text=auto\n*.crlf eol=crlf\n*.id ident\n*.u16 working-tree-encoding=UTF-16\n"
    )
    files = {
        "dos.txt": b"one\r\ntwo\r\n",
        "unix.crlf": b"one\ntwo\n",
        "keyword.id": b"$Id$\n",
        "not16.u16": b"plain ascii, not UTF-16\n",
    }
    for name, body in files.items():
        (workspace / name).write_bytes(body)
    snaps = Snapshots(workspace, tmp_path / "data")
    first = snaps.capture()
    for name in files:
        (workspace / name).unlink()
    snaps.restore(snaps.capture().tree, first.tree)
    assert {name: (workspace / name).read_bytes() for name in files} == files


def test_a_restore_never_writes_over_files_it_did_not_capture(
    tmp_path: Path, workspace: Path
) -> None:
    (workspace / ".env").write_text("OLD=1\n")
    (workspace / "big.dat").write_bytes(b"small one")
    snaps = Snapshots(workspace, tmp_path / "data", max_file=1024)
    first = snaps.capture()
    (workspace / ".gitignore").write_text(".env\n")
    (workspace / ".env").unlink()
    snaps.capture()
    (workspace / ".env").write_text("NEW=the user's\n")  # re-created, ignored: not captured
    (workspace / "big.dat").write_bytes(b"y" * 8192)  # now over the cap: not captured
    current = snaps.capture(first.tree)
    left = snaps.restore(current.tree, first.tree)
    assert sorted(left) == [".env", "big.dat"]
    assert (workspace / ".env").read_text() == "NEW=the user's\n"
    assert (workspace / "big.dat").stat().st_size == 8192
    assert not (workspace / ".gitignore").exists()  # what was captured is restored


def test_agentctls_own_store_in_the_workspace_is_never_captured_or_restored(
    tmp_path: Path, workspace: Path
) -> None:
    store = workspace / ".agentctl"
    env, sid = a_session(tmp_path, workspace, f"json://{store}")
    before = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    back = run("rollback", sid, "--to", "2", env=env)
    assert back.code == 0, back.stderr
    assert ".agentctl" not in back.stdout
    grown = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    assert all(grown[p].startswith(body) for p, body in before.items())  # appended, not reset
    assert run("verify", env=env).code == 0
    diff = run("diff", sid, "--json", env=env).json()
    assert not any(f["path"].startswith(".agentctl") for f in diff["files"])


def test_agentctls_data_folder_in_the_workspace_is_never_captured(
    tmp_path: Path, workspace: Path
) -> None:
    snaps = Snapshots(workspace, workspace / ".home")  # AGENTCTL_HOME inside the project
    first = snaps.capture()
    (workspace / ".home" / "agentctl.db").write_bytes(b"the live store")
    second = snaps.capture(first.tree)
    names = snaps._git("ls-tree", "-r", "--name-only", second.tree).split("\n")
    assert not [n for n in names if n.startswith(".home")]
    assert second.changed == ()


def test_fork_into_a_name_too_long_is_a_usage_error(tmp_path: Path, workspace: Path) -> None:
    env, sid = a_session(tmp_path, workspace, f"sqlite://{tmp_path / 's.db'}")
    forked = run("fork", sid, "--workspace", str(tmp_path / ("x" * 300)), env=env)
    assert forked.code == 2, forked.stderr
    assert "--workspace" in forked.stderr


def test_a_killed_fork_leaves_no_half_written_folder(tmp_path: Path, workspace: Path) -> None:
    env, sid = a_session(tmp_path, workspace, f"sqlite://{tmp_path / 's.db'}")
    dest = tmp_path / "copy"
    code = (
        "from pathlib import Path; from agentctl import faults;"
        "from agentctl.usecases import sessions;"
        "from agentctl.config import Settings; faults.arm('fork_written', 1);"
        f"sessions.fork(Settings.load(), {sid!r}, None, None, Path({str(dest)!r}))"
    )
    killed = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True
    )
    assert killed.returncode == -9, killed.stderr
    assert not dest.exists()
    assert run("fork", sid, "--workspace", str(dest), env=env).code == 0
    assert tree_digest(dest) == tree_digest(workspace)


# -- concurrent sessions ---------------------------------------------------------------------

WAITS = """
title = "Write, wait, write"
goal = "Write two files, each once allowed."
max_turns = 8

[[script]]
[[script.tool_calls]]
name = "submit_plan"
arguments = { steps = ["Write"] }

[[script]]
[[script.tool_calls]]
name = "run_shell"
arguments = { command = "echo one > first.txt" }

[[script]]
[[script.tool_calls]]
name = "run_shell"
arguments = { command = "echo two > second.txt" }

[[script]]
[[script.tool_calls]]
name = "finish"
arguments = { result = "written" }
"""


def test_an_edit_made_while_the_session_waits_is_an_outside_edit(
    tmp_path: Path, workspace: Path
) -> None:
    task = tmp_path / "waits.toml"
    task.write_text(WAITS)
    env = {"AGENTCTL_STORE": f"sqlite://{tmp_path / 's.db'}"}
    paused = run("run", str(task), "--workspace", str(workspace), "--no-input", env=env)
    assert paused.code == 3, paused.stderr  # asks before the shell command
    sid = run("list", "--json", env=env).json()[0]["id"]
    assert run("resume", sid, "--input", "y", "--no-input", env=env).code == 3  # asks again
    (workspace / "user.txt").write_text("the user's, written while it waited\n")  # or a session's
    assert run("resume", sid, "--input", "y", env=env).code == 0
    assert (workspace / "second.txt").exists()
    refused = run("rollback", sid, "--to", "2", env=env)
    assert refused.code == 2, refused.stderr
    assert "user.txt" in refused.stderr
    assert (workspace / "user.txt").exists()
    forced = run("rollback", sid, "--to", "2", "--force", env=env)
    assert forced.code == 0, forced.stderr
    assert not (workspace / "first.txt").exists()


CAPTURES = """
import sys
from pathlib import Path
from agentctl.workspace.snapshots import Snapshots
ws, data, me = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
snaps = Snapshots(ws, data)
failed = 0
for n in range(12):
    (ws / f"{me}.txt").write_text(str(n))
    try:
        capture = snaps.capture()
        assert snaps.has(capture.tree)
    except Exception as exc:
        failed += 1
        print(exc, file=sys.stderr)
print(failed)
"""


def test_sessions_sharing_a_workspace_capture_without_failing(tmp_path: Path) -> None:
    ws = tmp_path / "shared"
    ws.mkdir()
    (ws / "base.txt").write_text("base\n")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CAPTURES, str(ws), str(tmp_path / "data"), f"s{n}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [out.strip() for out, _ in results] == ["0", "0", "0"], [e for _, e in results]


def test_a_stale_index_lock_from_a_killed_capture_is_recovered(
    tmp_path: Path, workspace: Path
) -> None:
    env, sid = a_session(tmp_path, workspace, f"sqlite://{tmp_path / 's.db'}")
    code = (
        "from agentctl import faults; from agentctl.usecases import rollback as rewind;"
        "from agentctl.config import Settings;"
        "faults.arm('restore_in_git', 1);"
        f"rewind.rollback_session(Settings.load(), {sid!r}, to=2, steps=None)"
    )
    killed = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True
    )
    assert killed.returncode == -9, killed.stderr
    assert list(Path(os.environ["AGENTCTL_HOME"]).rglob("index.lock"))  # what kill -9 leaves
    back = run("rollback", sid, "--to", "3", "--conversation-only", env=env)
    assert back.code == 0, back.stderr
    assert (workspace / "c.txt").exists()  # the cut-short restore was finished first
    assert not (workspace / "renamed.txt").exists()


def test_a_capture_that_fails_is_said_on_its_checkpoint(tmp_path: Path, workspace: Path) -> None:
    env, _ = a_session(tmp_path, workspace, f"sqlite://{tmp_path / 's.db'}")
    home = Path(os.environ["AGENTCTL_HOME"])
    [objects] = list(home.glob("snapshots/*/objects"))
    import shutil

    shutil.rmtree(objects)
    objects.write_text("not a folder\n")  # the snapshot store is damaged: captures fail
    again = tmp_path / "again.toml"
    again.write_text(TASK.replace(SHELL, "echo more >> a.txt"))
    assert run("run", str(again), "--workspace", str(workspace), "--yes", env=env).code == 0
    second = run("list", "--json", env=env).json()[0]["id"]
    shown = run("history", second, env=env).stdout
    assert "no snapshot: workspace snapshot: git" in shown, shown
    back = run("rollback", second, "--to", "2", "--conversation-only", env=env)
    assert back.code == 0, back.stderr  # the conversation is never held back by the snapshots
