"""Store-wide commands cost what they show (issue 30 item 2), on SQLite: `list` reads the rows
it prints, the forks of a session come from an index, and a store written before that index
(schema 6) gets it on open. The work is counted in SQLite's virtual-machine steps (a progress
handler), which is deterministic, not timed."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from agentctl.errors import UnknownSessionError
from agentctl.store import open_store
from agentctl.store.sqlite import SQLiteStore
from agentctl.testing.store_spec import draft, info


def many(path: Path, count: int) -> SQLiteStore:
    store = open_store(f"sqlite://{path}")
    assert isinstance(store, SQLiteStore)
    store._db.execute("PRAGMA synchronous=OFF")  # a fixture: no disk syncs needed
    for n in range(count):
        made = info(f"s{n:05d}").model_copy(
            update={"forked_from": "s00007:1" if n in (11, 900) else None}
        )
        store.create_whole(made, [draft(None, 1, "hello"), draft(1, 2, "world")])
    return store


def steps(store: SQLiteStore, action: Callable[[], object]) -> int:
    counted = [0]

    def count() -> int:
        counted[0] += 1
        return 0

    store._db.set_progress_handler(count, 100)
    try:
        action()
    finally:
        store._db.set_progress_handler(None, 0)
    return counted[0]


def test_list_reads_the_rows_it_prints_and_forks_come_from_an_index(tmp_path: Path) -> None:
    store = many(tmp_path / "a.db", 2000)
    try:
        everything = steps(store, store.list_sessions)
        first_50 = steps(store, lambda: store.select_sessions(None, 50))
        assert first_50 * 20 < everything, (first_50, everything)
        assert [s.id for s in store.select_sessions(None, 3)] == ["s01999", "s01998", "s01997"]
        forks = steps(store, lambda: store.forks_of("s00007"))
        assert store.forks_of("s00007") == [("s00011", "1"), ("s00900", "1")]
        assert forks * 100 < everything, (forks, everything)
    finally:
        store.close()


def test_a_schema_6_store_gets_the_indexes_of_forks_search_and_usage(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    many(path, 20).close()
    db = sqlite3.connect(path)  # as an agentctl before migration 7 left it
    db.executescript(
        "DROP INDEX sessions_forks; DROP INDEX sessions_recent;"
        " ALTER TABLE sessions DROP COLUMN forked_from;"
        " CREATE INDEX sessions_updated ON sessions (updated_at);"
        " DROP TABLE message_text; DROP INDEX messages_seq;"
        " ALTER TABLE messages DROP COLUMN seq; ALTER TABLE sessions DROP COLUMN model;"
        " ALTER TABLE sessions DROP COLUMN usage; PRAGMA user_version = 6;"
    )
    db.close()
    store = open_store(f"sqlite://{path}")
    try:
        assert store.forks_of("s00007") == [("s00011", "1")]
        assert [s.id for s in store.select_sessions(None, 2)] == ["s00019", "s00018"]
        # Migration 8 indexes the messages it finds, for search, in the order they were written
        assert [h.session_id for h in store.search("world", 3)] == ["s00019", "s00018", "s00017"]
        assert len(store.search("hello", 100)) == 20
        # Migration 9 keeps each session's model and head usage in its row, for `usage`
        assert [f.calls for f in store.usage_facts()] == [2] * 20
        assert {f.model for f in store.usage_facts()} == {"scripted"}
    finally:
        store.close()


def long_one(store: SQLiteStore, session_id: str, length: int) -> None:
    drafts = [draft(None, 1, "m1")] + [draft(n - 1, n, f"m{n}") for n in range(2, length + 1)]
    store.create_whole(info(session_id), drafts)


def test_deleting_a_session_costs_what_it_holds(tmp_path: Path) -> None:
    """`rm` of a 10,000-message session took 17 s: SQLite checked each deleted message for
    children by scanning the session's rows (no index on `parent`), N² in all. A session's
    keys point only within it, so its delete runs unchecked: linear in its rows. The checks
    are on again after it, whether it deleted or refused."""
    store = many(tmp_path / "a.db", 0)
    try:
        long_one(store, "short1", 500)
        long_one(store, "long01", 2000)
        short = steps(store, lambda: store.delete_session("short1"))
        long = steps(store, lambda: store.delete_session("long01"))
        assert long < 6 * short, (short, long)  # 4x the rows; N² would be 16x
        assert store.match_sessions("") == []
        assert store._db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        with pytest.raises(UnknownSessionError):
            store.delete_session("long01")
        assert store._db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    finally:
        store.close()


def test_a_schema_9_store_lets_its_forks_share_search_entries(tmp_path: Path) -> None:
    """Migration 10: a seq was unique; now a fork's copies keep their source's (so the fork
    indexes nothing again). A store written before keeps its sessions, and forks after it."""
    path = tmp_path / "old.db"
    many(path, 3).close()
    db = sqlite3.connect(path)  # as an agentctl before migration 10 left it
    db.executescript(
        "DROP INDEX messages_seq; CREATE UNIQUE INDEX messages_seq ON messages (seq);"
        " PRAGMA user_version = 9;"
    )
    db.close()
    store = open_store(f"sqlite://{path}")
    try:
        store.copy_session(store, "s00001", info("fork01"))
        assert [h.session_id for h in store.search("world", 10)] == [
            "s00002",
            "fork01",
            "s00001",
            "s00000",
        ]
        store.delete_session("s00001")
        assert [h.session_id for h in store.search("hello", 10)] == ["s00002", "fork01", "s00000"]
    finally:
        store.close()


def test_a_fork_copies_its_rows_and_little_more(tmp_path: Path) -> None:
    """Issue 30 item 1: a fork's copy (copy_session) costs about what copying its rows with
    INSERT … SELECT does, counted in SQLite's steps: it indexed every copied message again
    (1.78x the row copy) and checked every copied row's keys (1.41x); now 1.11x."""
    store = many(tmp_path / "a.db", 0)
    try:
        long_one(store, "long01", 2000)

        def rows() -> None:
            db = store._db
            db.execute("BEGIN IMMEDIATE")
            for table, columns in (
                ("sessions", "id, info, goal, title, created_at, updated_at, head, state"),
                ("messages", "session_id, id, parent, body"),
                ("checkpoints", "session_id, id, parent, event, from_state, to_state,"
                 " created_at, detail, task, usage, message_tip"),
            ):  # fmt: skip
                copied = columns.replace("session_id", "'copy01'").replace(
                    "id, info", "'copy01', info"
                )
                key = "id" if table == "sessions" else "session_id"
                db.execute(
                    f"INSERT INTO {table} ({columns}) SELECT {copied} FROM {table}"
                    f" WHERE {key} = 'long01'"
                )
            db.execute("ROLLBACK")

        store._db.execute("PRAGMA foreign_keys=OFF")
        floor = steps(store, rows)
        store._db.execute("PRAGMA foreign_keys=ON")
        fork = steps(store, lambda: store.copy_session(store, "long01", info("fork01")))
        assert fork < 1.25 * floor, (fork, floor)
        assert store.load("fork01").messages == store.load("long01").messages
        assert store.history("fork01") == store.history("long01")
    finally:
        store.close()
