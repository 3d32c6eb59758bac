"""Sessions that move between stores: export, import (idempotent) and move, on every backend."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agentctl.config import Settings
from agentctl.domain.checkpoints import CompactionDetail, RollbackDetail
from agentctl.domain.lifecycle import CheckpointKind, State
from agentctl.domain.session import Message
from agentctl.store import Store, open_store
from agentctl.store.base import CheckpointDraft
from agentctl.testing.postgres import PASSWORD
from agentctl.testing.store_spec import draft, info
from agentctl.usecases.transfer import export_lines, import_session, read_export
from tests.conftest import SAMPLES, run

TRIP = str(SAMPLES / "plan_trip.toml")


@pytest.fixture(params=["memory", "sqlite", "json", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    kind = request.param
    url = {
        "memory": "memory:",
        "sqlite": f"sqlite://{tmp_path / 'target.db'}",
        "json": f"json://{tmp_path / 'target'}",
    }.get(kind) or request.getfixturevalue("pg_url")
    store = open_store(url)
    yield store
    store.close()


def step(
    parent: int | None, kind: CheckpointKind, before: State, after: State, *texts: str, **more: Any
) -> CheckpointDraft:
    messages = tuple(Message(role="user", content=t, tokens=len(t)) for t in texts)
    return replace(
        draft(parent, parent or 0, kind=kind),
        from_state=before,
        to_state=after,
        new_messages=messages,
        **more,
    )


def a_session_with_branches_and_a_compaction(store: Store) -> None:
    """A history the lifecycle allows: planning, work, a compaction, a rollback, a question."""
    k, s = CheckpointKind, State
    store.create_session(info(), step(None, k.NEW_TASK, s.IDLE, s.PLANNING, "m1", "m2"))
    steps = [
        (1, k.MODEL_REPLY, s.PLANNING, s.PLANNING, ("m3",), {}),
        (2, k.PLAN_READY, s.PLANNING, s.EXECUTING, (), {}),
        (3, k.MODEL_REPLY, s.EXECUTING, s.EXECUTING, ("m4",), {}),
        (4, k.TOOL_RESULT, s.EXECUTING, s.EXECUTING, ("m5",), {}),
        (5, k.MODEL_REPLY, s.EXECUTING, s.EXECUTING, ("m6",), {}),
        (
            6,
            k.CONTEXT_COMPACTED,
            s.EXECUTING,
            s.EXECUTING,
            ("note", "m6"),
            {"keep_messages": 2, "detail": CompactionDetail("drop", 3, 1, 20, 10)},
        ),
        (7, k.MODEL_REPLY, s.EXECUTING, s.EXECUTING, ("m8",), {}),
        (4, k.ROLLBACK, s.EXECUTING, s.EXECUTING, (), {"detail": RollbackDetail(4, 8)}),
        (9, k.NEEDS_INPUT, s.EXECUTING, s.WAITING_FEEDBACK, (), {}),
    ]
    for head, (parent, kind, before, after, texts, more) in enumerate(steps, 1):
        at = f"2026-01-01T00:00:{head + 1:02d}.000+00:00"
        store.append(
            "abc123", head, step(parent, kind, before, after, *texts, created_at=at, **more)
        )


def test_a_session_copies_to_every_backend_exactly(target: Store) -> None:
    source = open_store("memory:")
    a_session_with_branches_and_a_compaction(source)
    exported = read_export(export_lines(source, "abc123"), "test")
    report = import_session(target, exported)
    assert (report.checkpoints, report.added) == (10, 10)
    for n in range(1, 11):
        assert target.load("abc123", n) == source.load("abc123", n)
    assert target.history("abc123") == source.history("abc123")
    again = import_session(target, exported)  # idempotent
    assert again.added == 0
    assert len(target.history("abc123")) == 10


def test_an_import_cut_short_is_completed_not_duplicated(target: Store) -> None:
    source = open_store("memory:")
    a_session_with_branches_and_a_compaction(source)
    lines = list(export_lines(source, "abc123"))
    # header + 4 checkpoints, as an import cut short wrote them (the header's count, which
    # makes import refuse an export cut short, left out)
    header = {k: v for k, v in json.loads(lines[0]).items() if k != "checkpoints"}
    import_session(target, read_export([json.dumps(header), *lines[1:5]], "first part"))
    report = import_session(target, read_export(lines, "whole"))
    assert report.added == 6
    assert target.load("abc123") == source.load("abc123")


def test_a_different_session_with_the_same_id_is_refused_or_imported_beside(
    tmp_path: Path,
) -> None:
    env = {"AGENTCTL_STORE": f"sqlite://{tmp_path / 'a.db'}"}
    other = {"AGENTCTL_STORE": f"sqlite://{tmp_path / 'b.db'}"}
    assert run("run", TRIP, "--no-input", env=env).code == 3
    sid = run("list", "--json", env=env).json()[0]["id"]
    export = tmp_path / "s.jsonl"
    assert run("export", sid, "-o", str(export), env=env).code == 0
    assert export.stat().st_mode & 0o777 == 0o600
    lines = export.read_text().splitlines()
    header = json.loads(lines[0])
    header["session"]["spec"]["goal"] = "something else"
    (tmp_path / "forged.jsonl").write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    assert run("import", str(export), env=other).code == 0
    refused = run("import", str(tmp_path / "forged.jsonl"), env=other)
    assert refused.code == 2
    assert "different session" in refused.stderr
    beside = run("import", str(tmp_path / "forged.jsonl"), "--new-id", env=other)
    assert beside.code == 0, beside.stderr
    assert len(run("list", "--json", env=other).json()) == 2


@pytest.mark.parametrize(
    "content",
    [
        "not json\n",
        '{"format": "something-else"}\n',
        '{"format": "agentctl-session", "version": 9}\n',
        "",
        "[" * 100_000 + "]" * 100_000 + "\n",  # nested deeper than the JSON parser goes
    ],
)
def test_a_file_that_is_not_an_export_is_one_line_exit_2(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    result = run("import", str(path), env={"AGENTCTL_STORE": f"sqlite://{tmp_path / 'a.db'}"})
    assert result.code == 2
    assert result.stderr.count("\n") <= 2
    assert run("import", str(tmp_path / "missing"), env={}).code == 2


def test_the_round_trip_sqlite_postgres_jsonl_sqlite_continues_to_done_on_each_side(
    tmp_path: Path, pg_url: str
) -> None:
    stores = [
        f"sqlite://{tmp_path / 'laptop.db'}",
        pg_url,
        f"json://{tmp_path / 'files'}",
        f"sqlite://{tmp_path / 'back.db'}",
    ]
    first = {"AGENTCTL_STORE": stores[0]}
    assert run("run", TRIP, "--no-input", env=first).code == 3
    sid = run("list", "--json", env=first).json()[0]["id"]
    export = tmp_path / "0.jsonl"
    assert run("export", sid, "-o", str(export), env=first).code == 0
    for n, there in enumerate(stores[1:], 1):
        env = {"AGENTCTL_STORE": there}
        imported = run("import", str(export), env=env)
        assert imported.code == 0, imported.stderr
        export = tmp_path / f"{n}.jsonl"  # what the next store gets: this one's own export
        assert run("export", sid, "-o", str(export), env=env).code == 0
        # Each copy is a whole session: it continues to done on its own (a session from
        # elsewhere once its settings are accepted, its script only when asked for).
        done = run(
            "resume", sid, "--input", "next Monday", "--accept-settings", "--model", "scripted",
            env=env,
        )  # fmt: skip
        assert done.code == 0, done.stderr
        assert "departing next Monday" in done.stdout
        assert run("verify", env=env).code == 0


def test_a_moved_session_continues_there_and_its_old_copy_refuses(
    tmp_path: Path, pg_url: str
) -> None:
    laptop = {"AGENTCTL_STORE": f"sqlite://{tmp_path / 'laptop.db'}"}
    team = {"AGENTCTL_STORE": pg_url}
    assert run("run", TRIP, "--no-input", env=laptop).code == 3
    sid = run("list", "--json", env=laptop).json()[0]["id"]
    moved = run("move", sid, "--to", pg_url, env=laptop)
    assert moved.code == 0, moved.stderr
    assert PASSWORD not in moved.stdout + moved.stderr
    for args in (["resume", sid, "--input", "x"], ["rollback", sid, "--to", "2"]):
        refused = run(*args, env=laptop)
        assert refused.code == 2
        assert "was moved to postgresql://agentctl:****@" in refused.stderr
        assert PASSWORD not in refused.stderr
    exported = run("export", sid, env=laptop)  # the record of the move holds no password
    assert PASSWORD not in exported.stdout
    done = run("resume", sid, "--input", "next Monday", env=team)
    assert done.code == 0, done.stderr
    # ...and it comes back: the laptop's record of the move gives way to the continuation.
    back = run("move", sid, "--to", laptop["AGENTCTL_STORE"], env=team)
    assert back.code == 0, back.stderr
    shown = run("show", sid, "--json", env=laptop).json()
    assert shown["state"] == "done"
    assert run("resume", sid, env=team).code == 2  # now the team's copy is the record
    assert run("verify", env=laptop).code == 0


def test_no_api_key_reaches_an_export(tmp_path: Path) -> None:
    env = {"AGENTCTL_STORE": f"sqlite://{tmp_path / 'a.db'}", "OPENAI_API_KEY": "sk-secret-123"}
    assert run("run", TRIP, "--no-input", env=env).code == 3
    sid = run("list", "--json", env=env).json()[0]["id"]
    assert "sk-secret-123" not in run("export", sid, env=env).stdout


@pytest.mark.parametrize("hostile", ["../../escaped", "[red]x", "a/b", ""])
def test_an_export_naming_a_hostile_session_id_is_refused(tmp_path: Path, hostile: str) -> None:
    """An export is a file from anywhere: its session id becomes a folder name (JSON lines)
    and a word on the terminal, so it must be an id agentctl could have made."""
    env = {"AGENTCTL_STORE": f"sqlite://{tmp_path / 'a.db'}"}
    assert run("run", TRIP, "--no-input", env=env).code == 3
    sid = run("list", "--json", env=env).json()[0]["id"]
    lines = run("export", sid, env=env).stdout.splitlines()
    header = json.loads(lines[0])
    header["session"]["id"] = hostile
    forged = tmp_path / "forged.jsonl"
    forged.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    target = {"AGENTCTL_STORE": f"json://{tmp_path / 'deep' / 'store'}"}
    refused = run("import", str(forged), env=target)
    assert refused.code == 2
    assert "session id" in refused.stderr
    assert not (tmp_path / "escaped").exists()
    assert not (tmp_path / "deep" / "escaped").exists()


# -- export streams (issue 30 item 3): the same bytes, a page at a time ------------------------


def whole_export(store: Store, session_id: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The export as it was made before it streamed: the session read whole first
    (copying.read_session), then written. The store is made to look like one that reads no
    id ranges, which is what still takes that way."""
    from agentctl.store import core

    with monkeypatch.context() as patched:
        real = core.capabilities
        patched.setattr(core, "capabilities", lambda s: {**real(s), "ranged_reads": False})
        return list(export_lines(store, session_id))


def a_store_of_every_kind_of_session(tmp_path: Path, url: str) -> tuple[str, list[str]]:
    """Through the CLI: a run that paused with tool calls and a question, it continued to done,
    a fork of it with a label, a rollback of the fork that branched; and the branchy,
    compacted session of the tests above, imported. Their ids."""
    env = {"AGENTCTL_STORE": url}
    assert run("run", TRIP, "--no-input", env=env).code == 3
    sid = run("list", "--json", env=env).json()[0]["id"]
    done = run("resume", sid, "--input", "next Monday", "--model", "scripted", env=env)
    assert done.code == 0, done.stderr
    forked = run("fork", sid, "--at", "3", "--name", "the fork", env=env)
    assert forked.code == 0, forked.stderr
    ids = [s["id"] for s in run("list", "--json", env=env).json()]
    fork = next(i for i in ids if i != sid)
    assert run("tag", fork, "red", env=env).code == 0
    assert run("rollback", fork, "--to", "2", env=env).code == 0
    branchy = open_store("memory:")
    a_session_with_branches_and_a_compaction(branchy)
    store = open_store(url)
    import_session(store, read_export(export_lines(branchy, "abc123"), "test"))
    store.close()
    return url, [sid, fork, "abc123"]


@pytest.mark.parametrize("kind", ["sqlite", "postgres", "json", "memory"])
def test_a_streamed_export_is_the_export_read_whole_byte_for_byte(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    from agentctl.store import copying

    if kind == "memory":  # no CLI on a memory store: the branchy session alone
        store = open_store("memory:")
        a_session_with_branches_and_a_compaction(store)
        ids = ["abc123"]
    else:
        url = {
            "sqlite": f"sqlite://{tmp_path / 's.db'}",
            "json": f"json://{tmp_path / 'j'}",
        }.get(kind) or request.getfixturevalue("pg_url")
        url, ids = a_store_of_every_kind_of_session(tmp_path, url)
        store = open_store(url)
    for page in (1, 2, 3, 1000):
        monkeypatch.setattr(copying, "PAGE", page)
        for sid in ids:
            streamed = list(export_lines(store, sid))
            assert streamed == whole_export(store, sid, monkeypatch), (sid, page)
            assert len(streamed) == len(store.history(sid)) + 1
    store.close()


def test_the_cli_export_streams_the_same_bytes_and_imports_back_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentctl.store import copying

    monkeypatch.setattr(copying, "PAGE", 2)
    url, ids = a_store_of_every_kind_of_session(tmp_path, f"sqlite://{tmp_path / 's.db'}")
    env = {"AGENTCTL_STORE": url}
    source = open_store(url)
    for sid in ids:
        printed = run("export", sid, env=env)
        assert printed.code == 0, printed.stderr
        written = tmp_path / f"{sid}.jsonl"
        assert run("export", sid, "-o", str(written), env=env).code == 0
        assert written.read_text() == printed.stdout
        assert printed.stdout == "".join(
            line + "\n" for line in whole_export(source, sid, monkeypatch)
        )
        other = {"AGENTCTL_STORE": f"sqlite://{tmp_path / 'other.db'}"}
        assert run("import", str(written), env=other).code == 0
        target = open_store(other["AGENTCTL_STORE"])
        assert target.history(sid) == source.history(sid)
        for c in source.history(sid):  # the facts differ in the folder it works in
            there, here = target.load(sid, c.id), source.load(sid, c.id)
            assert (there.checkpoint, there.messages) == (here.checkpoint, here.messages)
        again = run("export", sid, env=other)
        # ...and its own export is the same bytes, but for the folder the import chose
        assert again.stdout.split("\n")[1:] == printed.stdout.split("\n")[1:]
        target.close()
    source.close()


def test_an_export_writes_its_first_lines_before_it_reads_the_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentctl.store import copying
    from agentctl.store.sqlite import SQLiteStore
    from agentctl.usecases import transfer

    monkeypatch.setattr(copying, "PAGE", 2)
    monkeypatch.setattr(transfer, "CHUNK", 1)  # every line handed on as it is made
    url, ids = a_store_of_every_kind_of_session(tmp_path, f"sqlite://{tmp_path / 's.db'}")
    read: list[int] = []
    page = SQLiteStore.checkpoints_page

    def counted(
        self: SQLiteStore, session_id: str, after: int = 0, limit: int | None = None
    ) -> Any:
        rows = page(self, session_id, after, limit)
        read.extend(c.id for c in rows)
        return rows

    monkeypatch.setattr(SQLiteStore, "checkpoints_page", counted)
    monkeypatch.setattr(SQLiteStore, "message_links", lambda *a: pytest.fail("read whole"))
    seen: list[tuple[int, int]] = []  # (lines written, checkpoints read) at each write
    settings = Settings.load({"AGENTCTL_STORE": url})
    sid, count = transfer.export_session(
        settings, ids[0], None, lambda text: seen.append((text.count("\n"), len(read)))
    )
    assert count == len(open_store(url).history(sid)) > 4
    assert seen[0] == (1, 0)  # the header, before any checkpoint is read
    written = 0
    for lines, checkpoints in seen:
        written += lines
        assert checkpoints <= written - 1 + 2  # at most a page ahead of what was written


def test_an_export_that_meets_damage_stops_there_and_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from agentctl.store import copying

    monkeypatch.setattr(copying, "PAGE", 2)
    url, ids = a_store_of_every_kind_of_session(tmp_path, f"sqlite://{tmp_path / 's.db'}")
    db = sqlite3.connect(tmp_path / "s.db")
    db.execute("UPDATE checkpoints SET task = '{}' WHERE session_id = ? AND id = 4", (ids[0],))
    db.commit()
    db.close()
    env = {"AGENTCTL_STORE": url}
    written = tmp_path / "out.jsonl"
    refused = run("export", ids[0], "-o", str(written), env=env)
    assert refused.code == 6
    assert not written.exists()
    assert list(tmp_path.glob(".out.jsonl*")) == []  # no temporary left either
    printed = run("export", ids[0], env=env)
    assert printed.code == 6
    assert "checkpoint 4 cannot be read" in printed.stderr
    assert len(printed.stdout.splitlines()) <= 4  # the header and what came before the damage


def test_what_standard_output_had_of_an_export_that_met_damage_is_refused_by_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`export > file` with damage midway: the lines before it were written (exit 6), and an
    import of that file must not take it for the whole session."""
    import sqlite3

    from agentctl.errors import StoreError
    from agentctl.store import copying
    from agentctl.usecases import transfer

    monkeypatch.setattr(copying, "PAGE", 2)
    monkeypatch.setattr(transfer, "CHUNK", 1)  # every line out as it is made, as at 50,000
    url, ids = a_store_of_every_kind_of_session(tmp_path, f"sqlite://{tmp_path / 's.db'}")
    db = sqlite3.connect(tmp_path / "s.db")
    db.execute("UPDATE checkpoints SET task = '{}' WHERE session_id = ? AND id = 4", (ids[0],))
    db.commit()
    db.close()
    given: list[str] = []
    with pytest.raises(StoreError, match="checkpoint 4 cannot be read"):
        transfer.export_session(Settings.load({"AGENTCTL_STORE": url}), ids[0], None, given.append)
    partial = tmp_path / "partial.jsonl"
    partial.write_text("".join(given))
    # the header and checkpoints 1-2 (the page of 3 and 4 does not read)
    assert len(partial.read_text().splitlines()) == 3
    other = {"AGENTCTL_STORE": f"sqlite://{tmp_path / 'other.db'}"}
    refused = run("import", str(partial), env=other)
    assert refused.code == 2, (refused.stdout, refused.stderr)
    assert "2 of the" in refused.stderr
    assert "cut short" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    # A whole export less its last line is refused the same way; the whole one imports.
    whole = run("export", ids[1], env={"AGENTCTL_STORE": url})
    assert whole.code == 0, whole.stderr
    lines = whole.stdout.splitlines()
    partial.write_text("".join(line + "\n" for line in lines[:-1]))
    assert run("import", str(partial), env=other).code == 2
    # Lines added after the header was written (its count left as it was) are refused too.
    header = json.loads(lines[0])
    fewer = json.dumps(dict(header, checkpoints=header["checkpoints"] - 1))
    partial.write_text("".join(line + "\n" for line in [fewer, *lines[1:]]))
    added = run("import", str(partial), env=other)
    assert added.code == 2, added.stderr
    assert "more than the" in added.stderr
    partial.write_text(whole.stdout)
    assert run("import", str(partial), env=other).code == 0
    assert [s["id"] for s in run("list", "--json", env=other).json()] == [ids[1]]


def test_an_export_whose_checkpoints_go_while_it_streams_fails_rather_than_ends_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from agentctl.errors import StoreError
    from agentctl.store import copying

    monkeypatch.setattr(copying, "PAGE", 2)
    url, ids = a_store_of_every_kind_of_session(tmp_path, f"sqlite://{tmp_path / 's.db'}")
    store = open_store(url)
    lines = export_lines(store, ids[0])
    assert json.loads(next(lines))["checkpoints"] == store.head(ids[0]).id
    next(lines)  # checkpoint 1 read, with its page
    db = sqlite3.connect(tmp_path / "s.db")  # another process deletes the rest meanwhile
    db.execute("DELETE FROM checkpoints WHERE session_id = ? AND id > 2", (ids[0],))
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="checkpoint 3 cannot be read"):
        list(lines)
    store.close()
