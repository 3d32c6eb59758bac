"""The frozen corpus: every store an earlier agentctl wrote still loads, verifies and resumes."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from agentctl.store import open_store
from agentctl.store.migrations import SCHEMA_VERSION
from agentctl.usecases.verify import verify_store
from tests.conftest import cli

FIXTURES = Path(__file__).resolve().parent / "fixtures"
STORES = sorted([p for p in FIXTURES.glob("*/agentctl.db")] + [p for p in FIXTURES.glob("*/jsonl")])


@pytest.fixture(params=STORES, ids=lambda p: f"{p.parent.name}/{p.name}")
def old_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A copy: opening a store may migrate it, and the corpus must stay as it was written."""
    source: Path = request.param
    copy = tmp_path / source.name
    if source.is_dir():
        shutil.copytree(source, copy)
        return f"json://{copy}"
    shutil.copy(source, copy)
    return f"sqlite://{copy}"


def test_the_corpus_has_every_backend_and_an_old_schema() -> None:
    names = {f"{p.parent.name}/{p.name}" for p in STORES}
    assert {"v0.1-schema1/agentctl.db", "v0.1-schema2/agentctl.db", "v0.1-schema2/jsonl"} <= names


def test_an_old_store_loads_whole_and_verifies(old_store: str) -> None:
    store = open_store(old_store)
    try:
        sessions = store.list_sessions()
        assert sorted(s.state for s in sessions) == ["done", "done", "waiting_feedback"]
        for summary in sessions:
            for checkpoint in store.history(summary.id):
                store.load(summary.id, checkpoint.id)  # every state decodes
        results = [store.load(s.id).task.result or "" for s in sessions if s.state == "done"]
        assert any("departing next Monday" in r for r in results)
        assert store.load_profile().preferences == {"airline": "Delta"}
        store_problems, reports = verify_store(store)
        assert store_problems == []
        assert [r.problems for r in reports] == [[], [], []]
    finally:
        store.close()


def test_an_old_session_continues_with_the_current_code(old_store: str) -> None:
    env = {"AGENTCTL_STORE": old_store}
    waiting = [s for s in cli("list", "--json", env=env).json() if s["state"] == "waiting_feedback"]
    # An older agentctl recorded no grant (trust.py): like any session this user's data folder
    # has no word on, its settings are accepted first, and its script is asked for by name.
    sid = waiting[0]["id"]
    assert cli("resume", sid, "--input", "in March", env=env).code == 2
    result = cli(
        "resume", sid, "--input", "in March", "--accept-settings", "--model", "scripted", env=env
    )
    assert result.code == 0, result.stderr
    assert "departing in March" in result.stdout
    assert cli("verify", env=env).code == 0


def test_a_schema_1_store_is_migrated_on_open(tmp_path: Path) -> None:
    copy = tmp_path / "old.db"
    shutil.copy(FIXTURES / "v0.1-schema1" / "agentctl.db", copy)
    open_store(f"sqlite://{copy}").close()
    db = sqlite3.connect(copy)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("SELECT count(*) FROM leases").fetchone()[0] == 0
    db.close()


def test_an_old_sqlite_store_gets_message_ids_per_session(tmp_path: Path) -> None:
    """Schema 4 renumbers the messages of each session 1, 2, 3... (stores before it numbered
    them across the whole file), keeping every conversation whole."""
    copy = tmp_path / "old.db"
    shutil.copy(FIXTURES / "v0.1-schema2" / "agentctl.db", copy)
    db = sqlite3.connect(copy)
    before = db.execute("SELECT session_id, min(id) FROM messages GROUP BY session_id").fetchall()
    db.close()
    assert sorted(first for _s, first in before)[-1] > 1  # the corpus has global ids
    store = open_store(f"sqlite://{copy}")
    try:
        for summary in store.list_sessions():
            links = store.message_links(summary.id)
            assert sorted(links.messages) == list(range(1, len(links.messages) + 1))
            assert max(t or 0 for t in links.tips.values()) == len(links.messages)
    finally:
        store.close()
