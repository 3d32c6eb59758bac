"""The history listing kept as one record (store/listing.py, issue 15 part 4): a run that stops
keeps it, `history` reads it and the rows after it and gives what the rows give, anything that
is not this session's sound listing is ignored, and `verify` finds a listing an edit made
wrong."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from agentctl.domain.session import Message, ScriptTurn, SessionInfo, TaskSpec
from agentctl.llm.scripted import ScriptedModel, ScriptedServer
from agentctl.store import Store, open_store
from agentctl.store.base import CheckpointSummary
from agentctl.store.listing import KEEP_EVERY, KeptListing, covered, keep_listing, summaries
from agentctl.store.ready import owner_of
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
    listing = resealed(KeptListing.of("s1 t", ROWS)._replace(body=json.dumps(body)))
    assert summaries(listing, "s1 t", head=3) == []


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
    rows[41][2] = "finish"  # an edit that kept the listing's CRC sound
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
    # An older agentctl deletes the session without knowing the listing table.
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
