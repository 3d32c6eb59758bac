"""The history listing kept as one record (store/listing.py, issue 15 part 4): a run that stops
keeps it, `history` reads it and the rows after it and gives what the rows give, anything that
is not this session's sound listing is ignored, and `verify` finds a listing an edit made
wrong."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from agentctl.domain.lifecycle import CheckpointKind, State
from agentctl.domain.session import Message, ScriptTurn, SessionInfo, TaskSpec
from agentctl.errors import StoreError
from agentctl.llm.scripted import ScriptedModel, ScriptedServer
from agentctl.store import Store, open_store
from agentctl.store.base import CheckpointDraft, CheckpointSummary
from agentctl.store.listing import (
    KEEP_EVERY,
    LISTING_VERSION,
    KeptListing,
    covered,
    head_path_problems,
    header,
    keep_listing,
    summaries,
)
from agentctl.store.ready import owner_of
from agentctl.store.soundness import path_problems
from agentctl.usecases.verify import verify_store
from tests.conftest import run
from tests.test_ready import build, draft, first_request, runner

ROWS = [
    CheckpointSummary(1, None, "new_task", "idle", "planning", "t1", {}),
    CheckpointSummary(2, 1, "model_reply", "planning", "planning", "t2", {"tools": ["x"]}),
    CheckpointSummary(3, 2, "rollback", "planning", "planning", "t3", {"to": 1}),
]


def resealed(listing: KeptListing) -> KeptListing:
    """`listing` with its CRC made sound again: what an edit of the store could do."""
    from agentctl.store.listing import _check

    return listing._replace(check=_check(listing.owner, listing.upto, listing.body))


def test_a_sound_listing_gives_its_checkpoints_back_as_they_were() -> None:
    listing = KeptListing.of("s1 t", ROWS)
    assert summaries(listing, "s1 t", head=3) == ROWS
    assert summaries(listing, "s1 t", head=9) == ROWS  # the rows after it come from the table
    assert all(type(c) is CheckpointSummary for c in summaries(listing, "s1 t", head=3))
    assert covered(listing, "s1 t", head=3) == 3


@pytest.mark.parametrize(
    "body",
    [
        {"not": "a list"},
        [],
        [[1, None, "new_task", "idle", "planning", "t1"]],  # a column short
        [[1, None, "new_task", "idle", "planning", "t1", "{}"]],  # detail not an object
        [[1, None, "new_task", "idle", "planning", "t1", {}], "row"],
        [[1, None, "new_task", "idle", "planning", "t1", {}]],  # ends before its upto (3)
    ],
)
def test_a_listing_whose_text_is_not_a_listing_is_not_used(body: object) -> None:
    listing = KeptListing.of("s1 t", ROWS)
    top = json.loads(listing.body)[0]  # the header, as it is
    for text in (json.dumps(body), json.dumps([top, *body]) if type(body) is list else None):
        if text is not None:
            assert summaries(resealed(listing._replace(body=text)), "s1 t", head=3) == []


def test_a_listing_nested_deeper_than_the_parser_can_go_is_not_used() -> None:
    deep = "[" * 100_000 + "]" * 100_000  # json.loads raises RecursionError, not ValueError
    listing = resealed(KeptListing.of("s1 t", ROWS)._replace(body=deep))
    assert summaries(listing, "s1 t", head=3) == []


def test_a_listing_that_is_not_this_sessions_sound_one_is_not_used() -> None:
    listing = KeptListing.of("s1 t", ROWS)
    assert summaries(None, "s1 t", head=3) == []
    assert summaries(listing, "s1 earlier", head=3) == []  # another session of the same id
    assert summaries(listing, "s1 t", head=2) == []  # past the head
    assert covered(listing, "s1 t", head=2) == covered(listing, "s1 earlier", head=3) == 0
    assert summaries(listing._replace(check=listing.check ^ 1), "s1 t", head=3) == []
    assert summaries(resealed(listing._replace(body=listing.body[:-1])), "s1 t", 3) == []
    assert summaries(resealed(listing._replace(upto=0)), "s1 t", head=3) == []


def one_turn(store: Store) -> None:
    """A resume with one model call, however it stops."""
    with ScriptedServer(ScriptedModel((ScriptTurn(content="thinking"),) * 300)) as server:
        runner(store, server.base_url).run("s1", answer=None, ask=None, max_turns=1)


def test_a_run_that_stops_keeps_the_listing_and_history_reads_it(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path}/s.db")
    head = build(store)
    assert head >= KEEP_EVERY
    assert store.kept_listing("s1") is None
    first_request(store)  # one model call, then the run stops
    kept = store.kept_listing("s1")
    rows = store.history("s1", kept=False)
    assert kept is not None
    assert kept.upto == rows[-1].id > head  # the run's own checkpoints are in it
    assert store.history("s1") == rows
    # The next run adds fewer than KEEP_EVERY checkpoints: the listing stays, the rows after
    # it are read with it.
    one_turn(store)
    assert store.kept_listing("s1") == kept
    assert store.history("s1") == store.history("s1", kept=False)
    assert len(store.history("s1")) > kept.upto
    problems, reports = verify_store(store)
    assert problems == []
    assert [r.problems for r in reports] == [[]]


def test_a_short_history_is_not_worth_keeping(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path}/s.db")
    build(store)
    head = store.head("s1").id
    owner = owner_of(store.info("s1"))
    keep_listing(store, "s1", owner, KEEP_EVERY - 1)  # as if the session were that short
    assert store.kept_listing("s1") is None
    keep_listing(store, "s1", owner, head)
    kept = store.kept_listing("s1")
    assert kept is not None
    keep_listing(store, "s1", owner, head + KEEP_EVERY - 1)  # not yet due again
    assert store.kept_listing("s1") == kept
    store.keep_listing("s1", kept._replace(check=kept.check ^ 1))  # damaged: replaced when due
    keep_listing(store, "s1", owner, head)
    assert store.kept_listing("s1") == kept


def test_an_edited_listing_is_what_verify_reports(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = open_store(f"sqlite://{path}")
    build(store)
    first_request(store)
    kept = store.kept_listing("s1")
    assert kept is not None
    rows = json.loads(kept.body)
    rows[42][2] = "finish"  # checkpoint 42 (after the header): an edit that kept the CRC sound
    edited = resealed(kept._replace(body=json.dumps(rows)))
    db = sqlite3.connect(path)
    db.execute("UPDATE listing SET body = ?, check_sum = ?", (edited.body, edited.check))
    db.commit()
    db.close()
    assert store.history("s1")[41].kind == "finish"  # history reads what it was given...
    assert store.history("s1", kept=False)[41].kind != "finish"
    _, reports = verify_store(store)  # ...and verify reads the rows and says so
    assert reports[0].problems == [
        "its kept history listing disagrees with checkpoint 42: the store was edited "
        "(history and rollback read that listing)"
    ]
    store.close()
    result = run("verify", "s1", env={"AGENTCTL_STORE": f"sqlite://{path}"})
    assert result.code == 6
    assert "kept history listing disagrees with checkpoint 42" in result.stdout


def test_a_damaged_listing_row_is_ignored_and_an_older_store_has_none(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = open_store(f"sqlite://{path}")
    build(store)
    rows = store.history("s1")  # no listing table yet: the store an older agentctl wrote
    assert store.kept_listing("s1") is None
    keep_listing(store, "s1", owner_of(store.info("s1")), store.head("s1").id)
    assert store.check() == []  # the lazily made table is no stranger
    db = sqlite3.connect(path)
    db.execute("UPDATE listing SET upto = 'many'")  # a column of the wrong type
    db.commit()
    db.close()
    assert store.kept_listing("s1") is None
    assert store.history("s1") == rows
    db = sqlite3.connect(path)
    db.execute("DROP TABLE listing")
    db.commit()
    db.close()
    assert store.history("s1") == rows
    store.delete_session("s1")  # with no listing table to clear
    build(store)
    assert store.history("s1") == rows


def test_a_listing_an_older_agentctl_left_behind_is_not_taken_by_a_new_session(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    store = open_store(f"sqlite://{path}")
    build(store)
    keep_listing(store, "s1", owner_of(store.info("s1")), store.head("s1").id)
    store.close()
    # An older agentctl deletes the session without knowing the listing table (nor the
    # triggers that drop a listing with its rows: a listing kept before they were made).
    sql(path, "DROP TRIGGER listing_dropped_by_delete")
    db = sqlite3.connect(path)
    for table in ("checkpoints", "messages", "leases"):
        db.execute(f"DELETE FROM {table} WHERE session_id = 's1'")
    db.execute("DELETE FROM sessions WHERE id = 's1'")
    db.commit()
    assert db.execute("SELECT count(*) FROM listing").fetchone() == (1,)
    db.close()
    store = open_store(f"sqlite://{path}")
    info = SessionInfo(id="s1", spec=TaskSpec(goal="g"), model="m", created_at="t")
    store.create_session(info, draft(None, 1, Message(role="user", content="hi", tokens=1)))
    assert [c.id for c in store.history("s1")] == [1]
    assert store.kept_listing("s1") is None  # cleared when the id was taken again


# -- a resume's damage check reads the listing's header and the rows after it (issue 30) ------


AFTER = 4  # checkpoints appended after the kept listing


def long_session(path: Path, damage_first: str | None = None) -> tuple[Store, int]:
    """A SQLite session of more than KEEP_EVERY checkpoints with its listing kept (after
    `damage_first`, SQL run on the rows before the listing is made), then AFTER more."""
    store = open_store(f"sqlite://{path}")
    upto = build(store)
    if damage_first is not None:
        sql(path, damage_first)
    keep_listing(store, "s1", owner_of(store.info("s1")), upto)
    kept = store.kept_listing("s1")
    assert kept is not None
    assert kept.upto == upto
    result = Message(role="tool", tool_call_id="c0", content="again", tokens=1)
    for n in range(upto, upto + AFTER):
        store.append("s1", n, draft(n, n + 1, result))
    return store, upto


def sql(path: Path, statement: str) -> None:
    db = sqlite3.connect(path)
    db.execute(statement)
    db.commit()
    db.close()


def whole_check(store: Store) -> list[str]:
    """What the damage check found before it read the listing's header: the path through
    every row."""
    rows = store.history("s1", kept=False)
    return path_problems(rows, rows[-1].id)


def refused_on_resume(path: Path) -> str:
    """`agentctl resume` of the session: refused (exit 6, one line), nothing written."""
    before = open_store(f"sqlite://{path}").head("s1").id
    result = run("resume", "s1", "--input", "go on", env={"AGENTCTL_STORE": f"sqlite://{path}"})
    assert result.code == 6, (result.code, result.stdout, result.stderr)
    assert [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")] == [
        result.stderr.splitlines()[0]
    ]
    assert "is damaged" in result.stderr or "cannot be read" in result.stderr
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM leases").fetchone() == (0,)  # not even a lease
    db.close()
    assert open_store(f"sqlite://{path}").head("s1").id == before
    return result.stderr


def test_a_resume_reads_the_rows_after_a_sound_listing_and_no_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, upto = long_session(tmp_path / "s.db")
    head = upto + AFTER
    read: list[int] = []
    page = store.history_page

    def counted(session_id: str, after: int = 0, limit: int | None = None) -> list[Any]:
        rows = page(session_id, after, limit)
        read.extend(c.id for c in rows)
        return rows

    monkeypatch.setattr(store, "history_page", counted)
    monkeypatch.setattr(store, "history", lambda *a, **k: pytest.fail("read the whole history"))
    assert head_path_problems(store, "s1") == []
    assert read == list(range(upto, head + 1))  # the listing's last row, and the rows after it
    # A rollback into the listing: its target's row is read too, and the walk stops there.
    store.append("s1", head, rollback_to(30, head + 1))
    read.clear()
    assert head_path_problems(store, "s1") == []
    assert read == [*range(upto, head + 2), 30]


def rollback_to(target: int, n: int) -> CheckpointDraft:
    landing = draft(target, n)
    return CheckpointDraft(
        target, CheckpointKind.ROLLBACK, State.PLANNING, State.PLANNING, landing.created_at,
        landing.task, landing.usage,
    )  # fmt: skip


DAMAGE_AFTER = {
    "a state that is not a state": "UPDATE checkpoints SET to_state = 'bogus' WHERE id = {n}",
    "a start that is not the state before": "UPDATE checkpoints SET from_state = 'done'"
    " WHERE id = {n}",
    "a parent of 99999": "UPDATE checkpoints SET parent = 99999 WHERE id = {head}",
    "a parent that is not earlier": "UPDATE checkpoints SET parent = {head} WHERE id = {n}",
    "an event the lifecycle does not allow there": "UPDATE checkpoints SET event ="
    " 'task_complete' WHERE id = {n}",
    "a gap": "DELETE FROM checkpoints WHERE id = {n}",
    "a detail that is not JSON": "UPDATE checkpoints SET detail = '{{nope' WHERE id = {n}",
}


@pytest.mark.parametrize("damage", sorted(DAMAGE_AFTER))
def test_damage_in_the_rows_after_the_listing_is_refused_on_resume(
    tmp_path: Path, damage: str
) -> None:
    path = tmp_path / "s.db"
    store, upto = long_session(path)
    sql(path, DAMAGE_AFTER[damage].format(n=upto + 2, head=upto + AFTER))
    if damage == "a detail that is not JSON":  # a row that does not read: a StoreError
        with pytest.raises(StoreError):
            head_path_problems(store, "s1")
    else:
        assert head_path_problems(store, "s1") == whole_check(store) != []
    refused_on_resume(path)


def resealed_listing(path: Path, change: Any) -> None:
    """The kept listing's body changed by `change` (its parsed JSON), its CRC made sound."""
    db = sqlite3.connect(path)
    owner, upto, body = db.execute("SELECT owner, upto, body FROM listing").fetchone()
    db.close()
    edited = resealed(KeptListing(owner, upto, json.dumps(change(json.loads(body))), 0))
    db = sqlite3.connect(path)
    db.execute("UPDATE listing SET body = ?, check_sum = ?", (edited.body, edited.check))
    db.commit()
    db.close()


STALE = {
    # the row the listing ends with was changed after it was kept: the listing is stale
    "its last row edited": "UPDATE checkpoints SET to_state = 'bogus' WHERE id = {upto}",
    "its last row's parent edited": "UPDATE checkpoints SET parent = {upto} WHERE id = {upto}",
    # the listing is not sound, not this session's, or not of this layout: the rows are read
    "a torn listing": "UPDATE listing SET check_sum = check_sum + 1",
    "another session's listing": "UPDATE listing SET owner = 's1 earlier'",
    "a listing past the head": "UPDATE listing SET upto = upto + 100",
}


@pytest.mark.parametrize("stale", sorted(STALE))
def test_damage_that_makes_the_kept_listing_wrong_or_stale_is_refused_on_resume(
    tmp_path: Path, stale: str
) -> None:
    path = tmp_path / "s.db"
    store, upto = long_session(path)
    if not stale.startswith("its last row"):  # and damage in the listing's part of the rows
        sql(path, "UPDATE checkpoints SET from_state = 'done' WHERE id = 40")
    sql(path, STALE[stale].format(upto=upto))
    assert head_path_problems(store, "s1") == whole_check(store) != []
    refused_on_resume(path)


def test_a_listing_of_the_older_layout_is_not_trusted_and_is_rebuilt(tmp_path: Path) -> None:
    import zlib

    path = tmp_path / "s.db"
    store, upto = long_session(path)
    db = sqlite3.connect(path)
    owner, body = db.execute("SELECT owner, body FROM listing").fetchone()
    db.close()
    # Layout 1, as the agentctl before it kept it: the rows alone, the version in the CRC.
    old = json.dumps(json.loads(body)[1:], ensure_ascii=False, separators=(",", ":"))
    check = zlib.crc32(old.encode(), zlib.crc32(f"1:{owner}:{upto}:".encode()))
    db = sqlite3.connect(path)
    db.execute("UPDATE listing SET body = ?, check_sum = ?", (old, check))
    db.commit()
    db.close()
    assert store.history("s1") == store.history("s1", kept=False)  # not read: the rows are
    sql(path, "UPDATE checkpoints SET from_state = 'done' WHERE id = 40")
    assert head_path_problems(store, "s1") == whole_check(store) != []
    refused_on_resume(path)
    sql(path, "UPDATE checkpoints SET from_state = 'planning' WHERE id = 40")
    assert head_path_problems(store, "s1") == []
    keep_listing(store, "s1", owner, upto + AFTER)  # when the next run stops: rebuilt
    kept = store.kept_listing("s1")
    assert kept is not None
    assert kept.upto == upto + AFTER
    assert kept.body.startswith('[{"version":2')


def test_a_listing_of_a_newer_layout_is_neither_read_nor_replaced(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store, upto = long_session(path)
    resealed_listing(path, lambda rows: [{**rows[0], "version": 3}, *rows[1:]])
    newer = store.kept_listing("s1")
    assert newer is not None
    assert summaries(newer, newer.owner, upto) == []  # history reads the rows
    assert store.history("s1") == store.history("s1", kept=False)
    keep_listing(store, "s1", newer.owner, upto + KEEP_EVERY)
    assert store.kept_listing("s1") == newer  # a newer agentctl's: not ours to replace
    sql(path, "UPDATE checkpoints SET from_state = 'done' WHERE id = 40")
    assert head_path_problems(store, "s1") == whole_check(store) != []


def test_damage_the_listing_found_when_it_was_kept_is_walked_into_and_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    store, upto = long_session(path, "UPDATE checkpoints SET from_state = 'done' WHERE id = 40")
    top = header(store.kept_listing("s1"))  # type: ignore[arg-type]
    assert top is not None
    assert top.sound == 39
    assert top.version == LISTING_VERSION
    assert head_path_problems(store, "s1") == whole_check(store) != []
    refused_on_resume(path)
    # A rollback past the damage: the path no longer passes it, and the session is writable.
    store.append("s1", upto + AFTER, rollback_to(30, upto + AFTER + 1))
    assert head_path_problems(store, "s1") == whole_check(store) == []


def test_postgresql_trusts_its_kept_listing_for_resume_and_history(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same reads on PostgreSQL, whose `list` row of one session is not an index read:
    the owner comes from the session's facts, and every session is not listed to find it."""
    from agentctl.store.listing import outline

    store = open_store(pg_url)
    upto = build(store)
    keep_listing(store, "s1", owner_of(store.info("s1")), upto)
    monkeypatch.setattr(store, "history", lambda *a, **k: pytest.fail("read the whole history"))
    monkeypatch.setattr(store, "list_sessions", lambda *a, **k: pytest.fail("listed them all"))
    assert head_path_problems(store, "s1") == []
    shape = outline(store, "s1")
    assert shape is not None
    assert shape.head == upto
    store.close()


# -- damage in the rows a kept listing covers (store attacks) -----------------------------------

COVERED = {
    "a parent that is not there": "UPDATE checkpoints SET parent = 99999 WHERE id = 50",
    "a parent that is not earlier": "UPDATE checkpoints SET parent = 60 WHERE id = 50",
    "a state that is not a state": "UPDATE checkpoints SET to_state = 'bogus' WHERE id = 50",
    "a start that is not the state before": "UPDATE checkpoints SET from_state = 'done'"
    " WHERE id = 50",
    "a gap": "DELETE FROM checkpoints WHERE id = 50",
    "a detail that is not JSON": "UPDATE checkpoints SET detail = '{nope' WHERE id = 50",
}


@pytest.mark.parametrize("damage", sorted(COVERED))
def test_damage_in_the_rows_the_listing_covers_is_refused_on_resume(
    tmp_path: Path, damage: str
) -> None:
    """A row the kept listing stands for, changed after it was kept: the resume's damage
    check walked only the rows after the listing and wrote on top of it."""
    path = tmp_path / "s.db"
    store, _upto = long_session(path)
    sql(path, COVERED[damage])
    assert store.kept_listing("s1") is None  # dropped by the change: the rows are read
    refused_on_resume(path)


def test_listings_kept_before_their_guard_was_there_or_without_it_are_not_read(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    store, upto = long_session(path)
    build(store, "s2")
    sql(path, "DROP TRIGGER listing_dropped_by_delete")  # as an older agentctl kept it
    assert store.kept_listing("s1") is None  # a listing without its guard is not read
    sql(path, "DELETE FROM checkpoints WHERE id = 41")  # unseen by any trigger
    # Keeping another session's listing puts the guard back, and drops the listings kept
    # while it was not there.
    keep_listing(store, "s2", owner_of(store.info("s2")), upto)
    assert store.kept_listing("s2") is not None
    assert store.kept_listing("s1") is None
    refused_on_resume(path)


@pytest.mark.parametrize("damage", sorted(COVERED))
def test_damage_in_the_rows_the_listing_covers_is_found_on_postgresql(
    pg_url: str, damage: str
) -> None:
    import psycopg

    store = open_store(pg_url)
    upto = build(store)
    keep_listing(store, "s1", owner_of(store.info("s1")), upto)
    assert store.kept_listing("s1") is not None
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("SET search_path TO agentctl")
        conn.execute(COVERED[damage].replace("WHERE id", "WHERE session_id = 's1' AND id"))
    assert store.kept_listing("s1") is None  # dropped by the change: the rows are read
    if damage == "a detail that is not JSON":
        with pytest.raises(StoreError):
            head_path_problems(store, "s1")
    else:
        assert head_path_problems(store, "s1") == whole_check(store) != []
    store.close()


# -- a listing kept a page of rows at a time (issue 30 item 3) ----------------------------------


def c(n: int, parent: int | None, kind: str, frm: str, to: str) -> CheckpointSummary:
    return CheckpointSummary(n, parent, kind, frm, to, f"t{n:03d}", {"n": n} if n % 7 else {})


def histories() -> list[list[CheckpointSummary]]:
    """Sound, and damaged at several places in the ways the links check tells apart."""
    sound = [c(1, None, "new_task", "idle", "planning")]
    sound += [c(n, n - 1, "model_reply", "planning", "planning") for n in range(2, 30)]
    sound += [c(30, 20, "rollback", "planning", "planning")]
    sound += [c(n, n - 1, "model_reply", "planning", "planning") for n in range(31, 41)]
    out = [sound]
    for at, row in [
        (1, c(1, 5, "new_task", "idle", "planning")),  # the first with a parent
        (12, c(12, 11, "model_reply", "executing", "planning")),  # not from the head's state
        (17, c(17, 3, "model_reply", "planning", "planning")),  # a parent not the one before
        (25, c(25, 24, "model_reply", "planning", "no_state")),  # not a transition
        (30, c(30, 40, "rollback", "planning", "planning")),  # rolls back forward
        (30, c(30, 20, "rollback", "planning", "done")),  # lands where its target was not
        (33, c(34, 33, "model_reply", "planning", "planning")),  # a gap in the numbering
    ]:
        out.append([*sound[: at - 1], row, *sound[at:]])
    return out


def test_a_listing_made_a_page_at_a_time_is_the_listing_of_the_whole_history() -> None:
    from agentctl.store.listing import _Builder
    from agentctl.store.soundness import SoundPrefix, sound_prefix

    expected_sound = [40, 0, 11, 16, 24, 29, 29, 32]
    for history, sound in zip(histories(), expected_sound, strict=True):
        assert sound_prefix(history) == sound
        rows = [list(r) for r in history]
        pairs = sorted({(r.from_state, r.to_state) for r in history}, key=repr)
        top = {"version": LISTING_VERSION, "sound": sound, "last": rows[-1]}
        top["transitions"] = [list(p) for p in pairs]
        text = json.dumps([top, *rows], ensure_ascii=False, separators=(",", ":"))
        assert KeptListing.of("o", history).body == text
        for size in (1, 2, 3, 7, 16, 40, 41):
            built, prefix = _Builder(), SoundPrefix()
            for start in range(0, len(history), size):
                built.add(history[start : start + size])
                prefix.feed(history[start : start + size])
            assert built.made("o") == KeptListing.of("o", history)
            assert prefix.value == sound


def test_a_listing_is_kept_from_pages_of_rows_not_the_whole_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the end of a run the rows are read a page at a time (never all of them at once),
    and what is kept is the listing of all of them."""
    import agentctl.store.listing as listing

    store = open_store(f"sqlite://{tmp_path}/s.db")
    head = build(store)
    rows = store.history("s1", kept=False)
    monkeypatch.setattr(listing, "KEEP_PAGE", 7)
    monkeypatch.setattr(store, "history", lambda *a, **k: pytest.fail("read whole"))
    pages: list[int] = []
    read_page = store.history_page

    def page(session_id: str, after: int = 0, limit: int | None = None) -> Any:
        assert limit == 7
        pages.append(after)
        return read_page(session_id, after, limit)

    monkeypatch.setattr(store, "history_page", page)
    keep_listing(store, "s1", owner_of(store.info("s1")), head)
    assert pages == list(range(0, head + 1, 7))
    assert store.kept_listing("s1") == KeptListing.of(owner_of(store.info("s1")), rows)


def test_verify_knows_a_listing_that_is_the_rows_own_without_parsing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kept listing that is, byte for byte, the listing of the rows agrees with them: verify
    does not parse it (35 MB at 100,000 checkpoints). Any other is parsed and compared."""
    import agentctl.store.listing as listing
    from agentctl.store.listing import agrees

    store, upto = long_session(tmp_path / "s.db")
    kept = store.kept_listing("s1")
    rows = store.history("s1", kept=False)
    assert kept is not None
    assert agrees(kept, rows)
    assert not agrees(kept, rows[: upto - 1])  # fewer rows than it lists
    edited = kept.body[:-2] + " ]]"  # its last row, with a space
    assert json.loads(edited) == json.loads(kept.body)
    assert not agrees(kept._replace(body=edited), rows)  # parses the same, but other bytes
    assert not agrees(kept._replace(body="[]"), rows)
    monkeypatch.setattr(listing, "summaries", lambda *a: pytest.fail("parsed"))
    for ids in (["s1"], None):
        problems, reports = verify_store(store, ids)
        assert problems == []
        assert [r.problems for r in reports] == [[]]
