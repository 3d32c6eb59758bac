"""Attacks on the in-process capture (workspace/incremental.py): each compares what it captures
with what git itself captures, and takes the capture through a rollback round trip (capture,
change the files, restore, and the files are back byte for byte, with their modes)."""

from __future__ import annotations

import os
import subprocess
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
