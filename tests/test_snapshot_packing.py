"""Snapshots that pack as captures go (issue 30 item 6): one-file steps in a large flat folder
add about the bytes they changed, not a new copy of the folder's tree per capture; every
snapshot stays readable and restorable; prune's repack and a damaged record are survived."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import pytest

from agentctl.workspace import packing
from agentctl.workspace.packing import TreePack
from agentctl.workspace.snapshots import Snapshots

FILES = 2_000


def flat_folder(root: Path) -> list[Path]:
    root.mkdir()
    paths = [root / f"f{n:05d}.txt" for n in range(FILES)]
    for path in paths:
        path.write_bytes(os.urandom(256).hex().encode())
    return paths


def steps(snaps: Snapshots, paths: list[Path], count: int) -> tuple[list[str], int, list[bytes]]:
    """`count` captures, each after rewriting one file: the trees, the compressed bytes
    changed, and what each step wrote."""
    trees = [snaps.capture().tree]
    changed, bodies = 0, []
    for step in range(count):
        body = os.urandom(256).hex().encode()
        paths[step * 37 % len(paths)].write_bytes(body)
        changed += len(zlib.compress(body))
        bodies.append(body)
        trees.append(snaps.capture(trees[-1]).tree)
    return trees, changed, bodies


def loose_trees(snaps: Snapshots, trees: list[str]) -> list[str]:
    objects = snaps.git_dir / "objects"
    return [t for t in trees if (objects / t[:2] / t[2:]).exists()]


@pytest.mark.process  # hundreds of git or shell processes, or waits out a time limit
def test_one_file_steps_in_a_large_folder_add_about_the_bytes_they_changed(
    tmp_path: Path,
) -> None:
    paths = flat_folder(tmp_path / "work")
    snaps = Snapshots(tmp_path / "work", tmp_path / "data")
    first = snaps.capture().tree
    before = snaps.size()
    trees, changed, _ = steps(snaps, paths, 30)
    assert trees[0] == first
    added = snaps.size() - before
    # Before: each capture wrote the folder's whole tree loose (2,000 entries, ~50 KB): 50x.
    assert added <= 1.5 * changed, (added, changed)
    assert loose_trees(snaps, trees[1:]) == []
    packs = list((snaps.git_dir / "objects" / "pack").glob("*.pack"))
    assert len(packs) == 1  # each capture's tree pack replaced the one before


@pytest.mark.process  # hundreds of git or shell processes, or waits out a time limit
def test_every_packed_snapshot_reads_and_restores(tmp_path: Path) -> None:
    paths = flat_folder(tmp_path / "work")
    snaps = Snapshots(tmp_path / "work", tmp_path / "data")
    original = {p.name: p.read_bytes() for p in paths}
    trees, _, bodies = steps(snaps, paths, 12)
    assert all(snaps.has(tree) for tree in trees)
    assert [c.path for c in snaps.changes(trees[0], trees[1])] == [paths[0].name]
    # Back to the first capture: every file as it was, from the pack's oldest tree.
    current = snaps.capture(trees[-1]).tree
    snaps.restore(current, trees[0])
    assert {p.name: p.read_bytes() for p in paths} == original
    snaps.restore(trees[0], trees[5])
    assert paths[4 * 37].read_bytes() == bodies[4]


@pytest.mark.process  # hundreds of git or shell processes, or waits out a time limit
def test_a_repack_by_prune_or_a_damaged_record_begins_a_new_tree_pack(tmp_path: Path) -> None:
    paths = flat_folder(tmp_path / "work")
    snaps = Snapshots(tmp_path / "work", tmp_path / "data")
    trees, _, _ = steps(snaps, paths, 3)
    snaps.collect(set(trees), set())  # prune: everything repacked into one pack
    more, _, _ = steps(snaps, paths, 2)
    assert all(snaps.has(tree) for tree in [*trees, *more])
    assert loose_trees(snaps, more[1:]) == []
    (snaps.git_dir / "tree-pack").write_text("pack --output=/tmp/x\n../../etc 1\n")
    again, _, _ = steps(snaps, paths, 2)
    assert all(snaps.has(tree) for tree in [*trees, *more, *again])
    assert loose_trees(snaps, again[1:]) == []


@pytest.mark.process  # hundreds of git or shell processes, or waits out a time limit
def test_a_full_tree_pack_is_left_as_it_is(tmp_path: Path, monkeypatch: object) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setattr(packing, "TREE_PACK_LIMIT", 4)
    paths = flat_folder(tmp_path / "work")
    snaps = Snapshots(tmp_path / "work", tmp_path / "data")
    trees, _, _ = steps(snaps, paths, 8)
    packs = list((snaps.git_dir / "objects" / "pack").glob("*.idx"))
    assert 2 <= len(packs) <= 3  # a new one begun each time one was full
    assert all(snaps.has(tree) for tree in trees)
    assert TreePack(snaps.git_dir).size() > 0


def test_small_trees_wait_loose_and_go_into_the_pack_together(tmp_path: Path) -> None:
    """A folder of a hundred files writes a few KB of trees a capture: they wait loose until
    PACK_AFTER bytes of them are waiting, then are packed at once (a git call saved)."""
    root = tmp_path / "work"
    root.mkdir()
    paths = []
    for n in range(400):
        folder = root / f"d{n // 100}"
        folder.mkdir(exist_ok=True)
        paths.append(folder / f"f{n:03d}.txt")
        paths[-1].write_bytes(os.urandom(64).hex().encode())
    snaps = Snapshots(root, tmp_path / "data")
    trees, _, _ = steps(snaps, paths, 40)
    waiting = loose_trees(snaps, trees)
    assert 0 < len(waiting) < 20  # the newest wait; the older ones went into the pack
    assert trees[1] not in waiting
    assert all(snaps.has(tree) for tree in trees)
    current = snaps.capture(trees[-1]).tree
    snaps.restore(current, trees[1])


def test_a_pack_from_the_store_never_brings_setuid_setgid_or_sticky_bits(tmp_path: Path) -> None:
    """A worker takes in the trees other machines kept in the database (store content is
    hostile input): their permissions come with them, but never the bits that make a file run
    as its owner (04755 from a store writer would make the worker's user's file setuid)."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "run.sh").write_text("#!/bin/sh\n")
    (work / "run.sh").chmod(0o750)
    there = Snapshots(work, tmp_path / "data")
    tree = there.capture().tree
    pack, _ = there.pack(tree)
    here = Snapshots(tmp_path / "elsewhere", tmp_path / "data2")
    here.unpack(tree, pack, "4750 run.sh\0" + "7700 other.sh\0" + "x y\0")
    assert here.modes(tree) == {"run.sh": 0o750, "other.sh": 0o700}
