"""Attacks on the in-process capture (workspace/incremental.py): each compares what it captures
with what git itself captures, and takes the capture through a rollback round trip (capture,
change the files, restore, and the files are back byte for byte, with their modes)."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from agentctl.workspace.snapshots import Snapshots


def fsck(snaps: Snapshots, tree: str) -> None:
    """Every object `tree` reaches is in the store (git says so)."""
    env = {**os.environ, "GIT_DIR": str(snaps.git_dir)}
    done = subprocess.run(
        ["git", "fsck", "--no-dangling", tree], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("pruned_by", ["this process", "another process"])
def test_a_capture_after_a_prune_names_no_tree_the_prune_gave_back(
    tmp_path: Path, pruned_by: str
) -> None:
    """A prune keeps what the checkpoints name and what git's index names. The index agentctl
    writes names files, not folders, so a folder's tree the last capture made and no checkpoint
    kept is given back; a capture that then reused it from memory named a tree that is gone,
    and a rollback to it (or through it) failed."""
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "f.txt").write_text("f1\n")
    (work / "sub" / "h.txt").write_text("h1\n")
    snaps = Snapshots(work, tmp_path / "data")
    first = snaps.capture().tree
    (work / "sub" / "h.txt").write_text("h2\n")
    snaps.capture(first)  # in process: the tree of sub/ is this capture's own
    pruner = snaps if pruned_by == "this process" else Snapshots(work, tmp_path / "data")
    pruner.collect({first}, set())
    (work / "f.txt").write_text("f3\n")
    third = snaps.capture(first).tree
    fsck(snaps, third)
    snaps.restore(third, first)
    assert (work / "sub" / "h.txt").read_text() == "h1\n"
    assert (work / "f.txt").read_text() == "f1\n"
    snaps.restore(snaps.capture().tree, third)
    assert (work / "sub" / "h.txt").read_text() == "h2\n"
    assert (work / "f.txt").read_text() == "f3\n"


def by_git(workspace: Path, data: Path) -> Snapshots:
    """A store whose every capture goes through git (the reference)."""
    snaps = Snapshots(workspace, data)
    snaps.in_process = False
    return snaps


def files_of(work: Path) -> dict[str, tuple[str, bytes, int]]:
    """Every file and link under `work` (not .git): its kind, bytes (a link's target), mode."""
    out = {}
    for folder, folders, names in os.walk(work):
        if ".git" in folders:
            folders.remove(".git")
        for name in names:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                out[path] = ("link", os.fsencode(os.readlink(path)), 0)
            elif stat.S_ISREG(info.st_mode):
                out[path] = ("file", Path(path).read_bytes(), stat.S_IMODE(info.st_mode))
    return out


def same_as_git_and_round_trip(
    tmp_path: Path, work: Path, change: Callable[[], object]
) -> tuple[str, str]:
    """Capture twice (the second in process), make `change`, capture in process and by git:
    the same tree, skipped and changes. Then roll back to the first capture and forward again:
    every file as it was after the change. Returns the two trees."""
    ours, theirs = Snapshots(work, tmp_path / "ours"), by_git(work, tmp_path / "theirs")
    first = ours.capture().tree
    assert first == theirs.capture().tree
    assert ours.capture(first).tree == first
    change()
    after = files_of(work)
    mine, reference = ours.capture(first), theirs.capture(first)
    assert (mine.tree, mine.skipped, mine.changed) == (
        reference.tree,
        reference.skipped,
        reference.changed,
    )
    ours.restore(mine.tree, first)
    ours.restore(ours.capture().tree, mine.tree)
    assert files_of(work) == after
    return first, mine.tree


@pytest.mark.parametrize(
    ("ignore_file", "made"),
    [
        (b"foo\0bar\n", "foo"),  # git reads "foo": ignored
        (b"*.log\n!keep.log\0x\n", "keep.log"),  # git reads "!keep.log": not ignored
        (b"*.log\n!keep.log \0\r\n", "keep.log"),
    ],
)
def test_a_nul_ends_an_ignore_line_as_it_does_for_git(
    tmp_path: Path, ignore_file: bytes, made: str
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / ".gitignore").write_bytes(ignore_file)
    (work / "a.txt").write_text("a\n")
    same_as_git_and_round_trip(tmp_path, work, lambda: (work / made).write_text("made\n"))
