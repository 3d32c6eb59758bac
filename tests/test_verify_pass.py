"""`verify` of a whole SQLite store reads it in one ordered pass per table (store/sqlite_verify.py,
issue 30 item 2) and validates the sessions' rows in batches. It must find every damage the
per-session reads find, and name it the same way: for each kind of damage below, the reports of
the pass equal those of the per-session reads (`verify_store` with the ids named), and the
damage is found. The pass costs a fixed number of statements, however many sessions."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from agentctl.domain.lifecycle import CheckpointKind, State
from agentctl.domain.records import SessionReport
from agentctl.domain.session import Usage
from agentctl.store import open_store
from agentctl.store.listing import KeptListing
from agentctl.store.ready import owner_of
from agentctl.store.sqlite import SQLiteStore
from agentctl.testing.store_spec import build, draft, info
from agentctl.usecases.verify import verify_store

DEEP = "[" * 5_000 + "]" * 5_000


def fixture_store(path: Path, sessions: int = 12) -> None:
    """Sessions of 5 checkpoints (s00..), a fork, a rollback, and a kept listing on s03."""
    store = open_store(f"sqlite://{path}")
    try:
        for n in range(sessions):
            build(store, 5, f"s{n:02d}")
        rolled = "s05"
        store.append(rolled, 5, replace(draft(2, 6, "again"), kind=CheckpointKind.ROLLBACK))
        fork = info("s04-fork").model_copy(update={"forked_from": "s04:3"})
        store.copy_session(store, "s04", fork, upto=3)
        listed = store.history("s03", kept=False)
        store.keep_listing("s03", KeptListing.of(owner_of(store.info("s03")), listed))
    finally:
        store.close()


def both(path: Path) -> tuple[list[str], list[SessionReport], list[SessionReport]]:
    store = open_store(f"sqlite://{path}")
    try:
        assert isinstance(store, SQLiteStore)
        problems, by_pass = verify_store(store)
        _, one_by_one = verify_store(store, store.match_sessions(""))
        return problems, by_pass, one_by_one
    finally:
        store.close()


def sql(*statements: str) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        db = sqlite3.connect(path)
        db.execute("PRAGMA foreign_keys=OFF")
        for statement in statements:
            db.execute(statement)
        db.commit()
        db.close()

    return damage


def relisted(path: Path) -> None:
    """s03's kept listing says checkpoint 4 went elsewhere (its CRC recomputed)."""
    store = open_store(f"sqlite://{path}")
    try:
        rows = store.history("s03", kept=False)
        rows[3] = rows[3]._replace(to_state=State.WAITING_FEEDBACK.value)
        store.keep_listing("s03", KeptListing.of(owner_of(store.info("s03")), rows))
    finally:
        store.close()


CP = "UPDATE checkpoints SET {} WHERE session_id = '{}' AND id = {}"
DAMAGE: dict[str, Callable[[Path], None]] = {
    "detail not JSON": sql(CP.format("detail = '{nope'", "s01", 2)),
    "detail not an object": sql(CP.format("detail = '[1]'", "s01", 2)),
    "detail a JSON string": sql(CP.format("detail = '\"x\"'", "s02", 3)),
    "detail nested too deep": sql(CP.format(f"detail = '{DEEP}'", "s01", 2)),
    "a task that is not valid": sql(CP.format("task = '{}'", "s02", 5)),
    "a task of a newer version": sql(
        CP.format("task = '{\"schema_version\": 99, \"goal\": \"g\"}'", "s02", 4)
    ),
    "a task nested too deep": sql(CP.format(f"task = '{DEEP}'", "s06", 5)),
    "a task that is text": sql(CP.format("task = 'garbage'", "s06", 3)),
    "a usage that is not valid": sql(CP.format("usage = '{\"calls\": \"many\"}'", "s07", 2)),
    "a usage that is a list": sql(CP.format("usage = '[]'", "s07", 3)),
    # Each row's text alone is not JSON, but joined with its neighbours' it would be three
    # valid tasks: only a row-by-row reading finds them.
    "tasks that are JSON only when joined": sql(
        CP.format("task = '{\"goal\": \"a\"}, {\"goal\": \"b\"}'", "s08", 2),
        CP.format("task = '{\"goal\": \"c\"'", "s08", 3),
        CP.format("task = '\"data\": {}}'", "s08", 4),
    ),
    "a state that is not a state": sql(CP.format("to_state = 'bogus'", "s03", 5)),
    "an event that is not an event": sql(CP.format("event = 'bogus'", "s09", 4)),
    "an event that is a number": sql(CP.format("event = 5", "s09", 3)),
    "a checkpoint id that is text": sql(CP.format("id = 'x'", "s10", 5)),
    "a checkpoint id of 0": sql(CP.format("id = 0", "s10", 1)),
    "a parent of 99": sql(CP.format("parent = 99", "s11", 5)),
    "a parent one back too far": sql(CP.format("parent = 2", "s11", 4)),
    "a rollback that lands elsewhere": sql(CP.format("to_state = 'planning'", "s05", 6)),
    "a time going backwards": sql(
        CP.format("created_at = '2020-01-01T00:00:00.000+00:00'", "s00", 4)
    ),
    "a message tip pointing nowhere": sql(CP.format("message_tip = 999", "s00", 5)),
    "a tip that does not extend its parent's": sql(CP.format("message_tip = 1", "s04", 4)),
    "a message body that is garbage": sql(
        "UPDATE messages SET body = 'garbage' WHERE session_id = 's01' AND id = 2"
    ),
    "a message body nested too deep": sql(
        f"UPDATE messages SET body = '{DEEP}' WHERE session_id = 's01' AND id = 3"
    ),
    "a message of a newer version": sql(
        "UPDATE messages SET body = json_set(body, '$.schema_version', 99)"
        " WHERE session_id = 's02' AND id = 2"
    ),
    # Two sessions' messages: one body holds two messages, the next session's two bodies make
    # one between them: joined in a batch, the count would agree.
    "messages that are JSON only when joined": sql(
        "UPDATE messages SET body = body || ',' || body WHERE session_id = 's06' AND id = 4",
        "UPDATE messages SET body = '{\"role\": \"user\"' WHERE session_id = 's07' AND id = 2",
        "UPDATE messages SET body = '\"content\": \"x\"}' WHERE session_id = 's07' AND id = 3",
    ),
    "a message chain cycle": sql(
        "UPDATE messages SET parent = 5 WHERE session_id = 's03' AND id = 1"
    ),
    "a message that is not UTF-8": sql(
        "UPDATE messages SET body = CAST(X'7B22726F6C65223AFF7D' AS TEXT)"
        " WHERE session_id = 's04' AND id = 2"
    ),
    "a message missing": sql("DELETE FROM messages WHERE session_id = 's09' AND id = 3"),
    "facts that are not JSON": sql("UPDATE sessions SET info = '{nope' WHERE id = 's05'"),
    "facts of a newer version": sql(
        "UPDATE sessions SET info = json_set(info, '$.schema_version', 99) WHERE id = 's06'"
    ),
    "facts that do not validate": sql("UPDATE sessions SET info = '{}' WHERE id = 's07'"),
    "facts that are a number": sql("UPDATE sessions SET info = 5 WHERE id = 's08'"),
    "a session with no checkpoints": sql("DELETE FROM checkpoints WHERE session_id = 's10'"),
    "a session index that disagrees": sql("UPDATE sessions SET head = 7 WHERE id = 's11'"),
    "rows of no session and a session id that is a number": sql(
        "INSERT INTO checkpoints SELECT 's00a', id, parent, event, from_state, to_state,"
        " created_at, detail, 'garbage', usage, message_tip FROM checkpoints"
        " WHERE session_id = 's00'",
        "INSERT INTO messages (session_id, id, parent, body, seq) SELECT 's00a', id, parent,"
        " 'garbage', seq + 100000 FROM messages WHERE session_id = 's00'",
        "UPDATE sessions SET id = 7 WHERE id = 's01'",
        "UPDATE sessions SET info = 'garbage' WHERE id = 's02'",
    ),
    "a kept listing that disagrees with the rows": relisted,
    # Text or bytes where a number or a time belongs: verify stopped on an internal error
    # (a TypeError comparing them), exit 1, and named no damage.
    "a session index head that is text": sql("UPDATE sessions SET head = 'x' WHERE id = 's00'"),
    "a message parent that is text": sql(
        "UPDATE messages SET parent = 'x' WHERE session_id = 's01' AND id = 3"
    ),
    "a message id that is text": sql(
        "UPDATE messages SET id = 'x' WHERE session_id = 's01' AND id = 3"
    ),
    "a checkpoint dated by bytes": sql(CP.format("created_at = X'00ff'", "s01", 3)),
    "a checkpoint dated by a number": sql(CP.format("created_at = 5", "s01", 3)),
}  # fmt: skip

# Damage that is no damage: older versions are upgraded on load, as by the per-session reads.
SOUND: dict[str, Callable[[Path], None]] = {
    "a task of an older version": sql(
        CP.format('task = \'{"schema_version": 2, "goal": "g", "approved": ["c1"]}\'', "s02", 4)
    ),
    "facts of an older version": sql(
        "UPDATE sessions SET info = json_remove(info, '$.schema_version') WHERE id = 's06'"
    ),
    "a message of an older version": sql(
        "UPDATE messages SET body = json_remove(body, '$.schema_version')"
        " WHERE session_id = 's02' AND id = 2"
    ),
}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pass") / "s.db"
    fixture_store(path)
    return path


@pytest.fixture
def store_file(template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "s.db"
    path.write_bytes(template.read_bytes())
    path.chmod(0o600)
    return path


def test_a_sound_store_passes_both_ways(store_file: Path) -> None:
    problems, by_pass, one_by_one = both(store_file)
    assert problems == []
    assert by_pass == one_by_one
    assert [r.problems for r in by_pass] == [[]] * 13
    assert [r.checkpoints for r in by_pass[:6]] == [5, 5, 5, 5, 5, 3]  # s04-fork: 3


@pytest.mark.parametrize("name", sorted(DAMAGE))
def test_the_pass_finds_each_damage_as_the_per_session_reads_do(
    store_file: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    DAMAGE[name](store_file)
    # One batch for all, and batches that split the damaged ones; the per-session reads a
    # page of rows at a time (sql.GRAPH_PAGE, core.HISTORY_PAGE), pages that split a
    # session's rows too.
    for batch, page in ((200, 2000), (2, 2), (200, 3)):
        monkeypatch.setattr("agentctl.store.sqlite_verify.BATCH", batch)
        monkeypatch.setattr("agentctl.store.sql.GRAPH_PAGE", page)
        monkeypatch.setattr("agentctl.store.core.HISTORY_PAGE", page)
        _, by_pass, one_by_one = both(store_file)
        assert by_pass == one_by_one
        assert any(r.problems for r in by_pass), by_pass


@pytest.mark.parametrize("name", sorted(SOUND))
def test_older_versions_pass_both_ways(store_file: Path, name: str) -> None:
    SOUND[name](store_file)
    _, by_pass, one_by_one = both(store_file)
    assert by_pass == one_by_one
    assert not any(r.problems for r in by_pass), by_pass


def test_the_pass_costs_the_same_statements_however_many_sessions(tmp_path: Path) -> None:
    counts = []
    for sessions in (8, 40):
        path = tmp_path / f"{sessions}.db"
        fixture_store(path, sessions)
        store = open_store(f"sqlite://{path}")
        assert isinstance(store, SQLiteStore)
        statements: list[str] = []
        store._db.set_trace_callback(statements.append)
        try:
            _, reports = verify_store(store)
        finally:
            store._db.set_trace_callback(None)
            store.close()
        assert len(reports) == sessions + 1
        assert not any(r.problems for r in reports)
        counts.append(len(statements))
    assert counts[0] == counts[1], counts


def test_a_rollback_fixture_is_what_it_says(store_file: Path) -> None:
    store = open_store(f"sqlite://{store_file}")
    try:
        assert store.history("s05")[-1].kind == CheckpointKind.ROLLBACK
        assert store.head("s05").usage == Usage(calls=6)
    finally:
        store.close()


# -- verify of one session holds its message graph, not its messages (issue 30 item 3) --------


@pytest.mark.parametrize("page", [2, 3, 2000])
@pytest.mark.parametrize(
    ("damage", "found"),
    [
        (None, []),
        # The copy of the turn a compaction kept says something else.
        (
            "UPDATE messages SET body = replace(body, '\"m6\"', '\"m7\"') WHERE id = 8",
            ["checkpoint 7: the compacted conversation lost the newest turns"],
        ),
        # The copy does not decode: read when compared, it is the reason, not the message.
        (
            "UPDATE messages SET body = '{nope' WHERE id = 8",
            ["message 8 does not decode", "checkpoint 7: the compacted conversation lost the"],
        ),
    ],
)
def test_one_session_is_verified_from_pages_of_its_rows_as_the_pass_verifies_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page: int, damage: str | None, found: list
) -> None:
    """`verify ID` reads a session's messages a page at a time and keeps only their graph
    (sql.message_graph): the messages are never all held (message_links is not read), a
    compaction's kept turns are read when compared, and what it finds is what the
    store-wide pass finds."""
    from tests.test_transfer import a_session_with_branches_and_a_compaction

    path = tmp_path / "s.db"
    a_session_with_branches_and_a_compaction(open_store(f"sqlite://{path}"))
    if damage is not None:
        sql(damage)(path)
    monkeypatch.setattr("agentctl.store.sql.GRAPH_PAGE", page)
    monkeypatch.setattr("agentctl.store.core.HISTORY_PAGE", page)
    store = open_store(f"sqlite://{path}")
    try:
        _, by_pass = verify_store(store)
        monkeypatch.setattr(SQLiteStore, "message_links", lambda *a: pytest.fail("read whole"))
        _, one = verify_store(store, ["abc123"])
    finally:
        store.close()
    assert one == by_pass
    assert len(one[0].problems) == len(found)
    assert all(p.startswith(f) for p, f in zip(one[0].problems, found, strict=True))
