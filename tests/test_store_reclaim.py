"""`rm` and `prune` cost what they remove (issue 30 item 2): a SQLite store is made in
auto_vacuum=INCREMENTAL mode, so giving back a deleted session's pages moves and cuts only
those, not a VACUUM that rewrites the whole file. A store made before is switched by one last
VACUUM at its first reclaim. The work is counted in the pages it writes (the frames it adds to
the write-ahead log), which is deterministic, not timed."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from agentctl.store import open_store
from agentctl.store.sqlite import SQLiteStore
from agentctl.testing.store_spec import draft, info


def many(path: Path, count: int) -> SQLiteStore:
    store = open_store(f"sqlite://{path}")
    assert isinstance(store, SQLiteStore)
    store._db.execute("PRAGMA synchronous=OFF")  # a fixture: no disk syncs needed
    text = "a message of some length " * 400  # 10 KB: pages of its own
    for n in range(count):
        drafts = [draft(None, 1, text), *(draft(k - 1, k, f"{k} {text}") for k in range(2, 6))]
        store.create_whole(info(f"s{n:05d}"), drafts)
    return store


def reclaim_pages(store: SQLiteStore) -> int:
    """The pages `reclaim` writes: the frames it adds to the write-ahead log, emptied first."""
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.reclaim()
    _busy, frames, _done = store._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(frames)


def auto_vacuum(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA auto_vacuum").fetchone()[0])
    finally:
        db.close()


def test_giving_a_sessions_pages_back_costs_what_it_held_not_the_store(tmp_path: Path) -> None:
    steps = []
    for count in (10, 160):
        store = many(tmp_path / f"{count}.db", count)
        try:
            free_before = store._db.execute("PRAGMA freelist_count").fetchone()[0]
            store.delete_session("s00007")
            assert store._db.execute("PRAGMA freelist_count").fetchone()[0] > free_before
            steps.append(reclaim_pages(store))
            assert store._db.execute("PRAGMA freelist_count").fetchone()[0] == 0
        finally:
            store.close()
    assert steps[1] < 2 * steps[0], steps  # a VACUUM writes the store: 16x as many pages


def test_a_new_store_is_incremental_and_shrinks_after_a_delete(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    many(path, 40).close()
    assert auto_vacuum(path) == 2
    size = path.stat().st_size
    store = open_store(f"sqlite://{path}")
    try:
        for n in range(20):
            store.delete_session(f"s{n:05d}")
        store.reclaim()
    finally:
        store.close()  # the last connection checkpoints the WAL into the file
    assert path.stat().st_size < size * 0.75
    again = open_store(f"sqlite://{path}")
    try:
        assert len(again.match_sessions("")) == 20
        assert again.load("s00032").messages[-1].content.startswith("5 ")
    finally:
        again.close()


def test_an_older_store_is_switched_by_one_vacuum_then_costs_what_it_removes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    many(path, 30).close()
    db = sqlite3.connect(path)  # as an agentctl before this one made its stores
    db.execute("PRAGMA auto_vacuum = NONE")
    db.execute("VACUUM")
    db.close()
    assert auto_vacuum(path) == 0
    store = open_store(f"sqlite://{path}")
    try:
        store.delete_session("s00001")
        first = reclaim_pages(store)  # the one VACUUM: the whole store
        store.delete_session("s00002")
        second = reclaim_pages(store)  # what one session held
    finally:
        store.close()
    assert auto_vacuum(path) == 2
    assert second * 5 < first, (first, second)
    check = open_store(f"sqlite://{path}")
    try:
        assert check.check() == []
        assert len(check.match_sessions("")) == 28
    finally:
        check.close()


def test_a_store_cut_short_inside_a_page_is_refused_for_writing(tmp_path: Path) -> None:
    """A commit there would have its checkpoint fill the torn page out: a write to a store
    that verify calls damaged (seen by tests/test_store_damage.py's random damage)."""
    import pytest

    from agentctl.errors import StoreError
    from agentctl.store.lease import Lease

    path = tmp_path / "s.db"
    many(path, 3).close()
    path.write_bytes(path.read_bytes()[:-100])
    torn = path.read_bytes()
    store = open_store(f"sqlite://{path}")
    try:
        assert len(store.match_sessions("")) == 3  # still read
        with pytest.raises(StoreError, match="not a whole number of its 4096-byte pages"):
            store.acquire_lease("s00001", Lease.mine("t"))
        with pytest.raises(StoreError, match="cut short"):
            store.delete_session("s00002")
    finally:
        store.close()
    assert path.read_bytes() == torn


def test_an_rm_whose_space_cannot_be_given_back_deleted_and_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Giving space back fails after the delete committed (an older store's VACUUM on a
    nearly full disk: 'database or disk is full'): rm and prune succeed, for they deleted."""
    from agentctl.errors import StoreError
    from tests.conftest import run

    path = tmp_path / "s.db"
    many(path, 3).close()

    def full(self: SQLiteStore) -> None:
        raise StoreError(f"store {self.path}: database or disk is full")

    monkeypatch.setattr(SQLiteStore, "reclaim", full)
    env = {"AGENTCTL_STORE": f"sqlite://{path}"}
    removed = run("rm", "s00000", "--yes", env=env)
    assert removed.code == 0, removed.stderr
    pruned = run("prune", "--older-than", "0d", "--yes", env=env)
    assert pruned.code == 0, pruned.stderr
    assert run("list", "--json", env=env).json() == []


@pytest.mark.process
@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small tmpfs (root)")
def test_an_rm_on_a_nearly_full_disk_deletes_and_succeeds(tmp_path: Path) -> None:
    """The same for real: an older store (no auto_vacuum) on a file system with less room
    than its one VACUUM writes."""
    import subprocess

    from tests.conftest import run

    made = tmp_path / "made.db"
    many(made, 30).close()
    db = sqlite3.connect(made)
    db.execute("PRAGMA journal_mode=DELETE")
    db.execute("PRAGMA auto_vacuum=NONE")
    db.execute("VACUUM")
    db.execute("PRAGMA journal_mode=WAL")
    db.close()
    assert auto_vacuum(made) == 0
    small = tmp_path / "small"
    small.mkdir()
    room = made.stat().st_size // 1024 + 200  # KiB: the file and a little, not its copy
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={room}k", "tmpfs", small], check=True)
    try:
        path = small / "s.db"
        path.write_bytes(made.read_bytes())
        path.chmod(0o600)
        env = {"AGENTCTL_STORE": f"sqlite://{path}"}
        removed = run("rm", "s00000", "--yes", env=env)
        assert removed.code == 0, removed.stderr
        assert "s00000" not in [s["id"] for s in run("list", "--json", env=env).json()]
        assert run("verify", env=env).code == 0
    finally:
        subprocess.run(["umount", small], check=True)
