"""Issue 29, the store side of the boundary: what the second round of attacks and a new user
found in the stores, export, import and move, and the commands around them. Each test failed on
the code before its fix; where a store is involved, it runs on every backend."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agentctl.store import open_store
from agentctl.store.sqlite import SQLiteStore
from agentctl.testing.store_spec import draft, info
from tests.conftest import run


@pytest.fixture(params=["memory", "sqlite", "json", "postgres"])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL of every backend (memory: one process, so the CLI runs in process)."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return {
        "memory": "memory:",
        "sqlite": f"sqlite://{tmp_path / 's' / 'agentctl.db'}",
        "json": f"json://{tmp_path / 'j'}",
    }[request.param]


# -- search -----------------------------------------------------------------------------------


@pytest.mark.parametrize("store_kind", ["sqlite", "json", "postgres"], indirect=True)
def test_search_prints_a_message_holding_the_snippet_marker(store_kind: str) -> None:
    """`search` crashed (rich markup error) on a message holding U+E001, on every backend."""
    store = open_store(store_kind)
    store.create_session(info("mark01"), draft(None, 1, "see \ue001 the needle \ue000 here"))
    store.close()
    env = {"AGENTCTL_STORE": store_kind}
    shown = run("search", "needle", env=env)
    assert shown.code == 0, shown.stderr
    assert "needle" in shown.stdout
    found = run("search", "needle", "--json", env=env).json()
    assert [h["session"] for h in found] == ["mark01"]


def test_an_existing_sqlite_search_index_is_rebuilt_for_substrings(tmp_path: Path) -> None:
    """A store whose index an earlier agentctl built (whole words) is migrated: its next
    search matches parts of words, as a new store's does."""
    path = tmp_path / "agentctl.db"
    store = SQLiteStore(path)
    store.create_session(info("old001"), draft(None, 1, "always fly Delta"))
    store.close()
    db = sqlite3.connect(path)  # as schema 5 left it: the index of whole words, built
    db.execute(
        "CREATE VIRTUAL TABLE messages_fts USING fts5("
        "content, session_id UNINDEXED, message_id UNINDEXED)"
    )
    db.execute(
        "INSERT INTO messages_fts (content, session_id, message_id)"
        " SELECT json_extract(body, '$.content'), session_id, id FROM messages"
    )
    db.execute("PRAGMA user_version = 5")
    db.commit()
    db.close()
    store = SQLiteStore(path)
    assert [h.session_id for h in store.search("delt", 10)] == ["old001"]
    assert [h.session_id for h in store.search("always fly", 10)] == ["old001"]
    store.close()
    (sql,) = (
        sqlite3.connect(path)
        .execute("SELECT sql FROM sqlite_master WHERE name = 'messages_fts'")
        .fetchone()
    )
    assert "trigram" in sql
