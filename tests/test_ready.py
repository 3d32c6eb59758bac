"""The conversation kept ready for the next request (store/ready.py, issue 15): a resume at the
head a run left sends the kept text, byte for byte what the messages would have made, through
the real `openai` client over real HTTP; anything else — a rollback, a damaged or foreign copy,
a store an older agentctl wrote — falls back to the messages and loses nothing."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from agentctl.domain.checkpoints import RollbackDetail
from agentctl.domain.lifecycle import CheckpointKind, State
from agentctl.domain.session import (
    Message,
    Prepared,
    ScriptTurn,
    SessionInfo,
    Task,
    TaskSpec,
    ToolCall,
    Usage,
)
from agentctl.llm.openai_chat import FORMAT, ModelConfig, OpenAIModelClient, prepare
from agentctl.llm.scripted import ScriptedModel, ScriptedServer
from agentctl.loop.runner import Runner, Stop
from agentctl.store import Store, open_store
from agentctl.store.base import CheckpointDraft
from agentctl.store.ready import READY_MIN_MESSAGES, ReadyConversation, keep_ready, load_head
from agentctl.testing import CharCounter
from agentctl.tools import ToolRegistry
from agentctl.tools.approval import ApprovalPolicy

PAIRS = READY_MIN_MESSAGES // 2 + 5  # tool calls and results: a conversation worth keeping


def draft(parent: int | None, n: int, *messages: Message) -> CheckpointDraft:
    kind = CheckpointKind.NEW_TASK if parent is None else CheckpointKind.TOOL_RESULT
    return CheckpointDraft(
        parent,
        kind,
        State.IDLE if parent is None else State.PLANNING,
        State.PLANNING,
        f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}",
        Task(goal="g"),
        Usage(),
        new_messages=messages,
    )


def build(store: Store, session_id: str = "s1") -> int:
    """A session whose next action is a model call: system and goal, then pairs of a call
    and its result (text with quotes, newlines and non-ASCII, as tools return)."""
    info = SessionInfo(id=session_id, spec=TaskSpec(goal="g"), model="m", created_at="t")
    head = store.create_session(
        info,
        draft(
            None,
            1,
            Message(role="system", content="sys", tokens=3),
            Message(role="user", content="goal", tokens=4),
        ),
    ).id
    for n in range(PAIRS):
        call = ToolCall(id=f"c{n}", name="read_file", arguments=f'{{"path": "f{n}"}}')
        asked = Message(role="assistant", tool_calls=(call,), tokens=7)
        head = store.append(session_id, head, draft(head, head + 1, asked)).id
        text = f'line "{n}"\nnaïve ✓ {"x" * n}'
        result = Message(role="tool", tool_call_id=f"c{n}", content=text, tokens=5 + n)
        head = store.append(session_id, head, draft(head, head + 1, result)).id
    return head


def runner(store: Store, base_url: str) -> Runner:
    from datetime import datetime

    config = ModelConfig(model="m", base_url=base_url, api_key="sk-test", max_retries=0)
    return Runner(
        store,
        lambda: OpenAIModelClient(config),
        CharCounter,
        ToolRegistry(policy=ApprovalPolicy()),
        # After the built session's dates, and in order across the processes of one test.
        lambda: datetime.now(UTC).isoformat(timespec="microseconds"),
    )


def first_request(store: Store) -> tuple[dict[str, Any], dict[str, str]]:
    """The first request a resume sends (it then stops: one model call)."""
    kept: list[Any] = []
    headers: list[dict[str, str]] = []
    script = (ScriptTurn(content="thinking"),) * (PAIRS + 2)
    model = ScriptedModel(script, kept=kept, kept_headers=headers)
    with ScriptedServer(model) as server:
        result = runner(store, server.base_url).run("s1", answer=None, ask=None, max_turns=1)
    assert result.stop is Stop.TURN_LIMIT
    assert len(kept) == 1
    return kept[0], {k.lower(): v for k, v in headers[0].items()}


@pytest.fixture(params=["sqlite", "jsonl", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    url = {
        "sqlite": f"sqlite://{tmp_path}/s.db",
        "jsonl": f"json://{tmp_path}/j",
        "memory": "memory:",
    }[request.param]
    s = open_store(url)
    yield s
    s.close()


def test_a_resume_from_the_ready_conversation_sends_what_the_messages_would(
    tmp_path: Path,
) -> None:
    plain = open_store(f"sqlite://{tmp_path}/plain.db")
    build(plain)
    plain.close()
    shutil.copy(tmp_path / "plain.db", tmp_path / "ready.db")
    ready = open_store(f"sqlite://{tmp_path}/ready.db")
    keep_ready(ready, ready.load("s1"), prepare)
    assert load_head(ready, "s1").ready is not None  # the fast path is taken...

    plain = open_store(f"sqlite://{tmp_path}/plain.db")
    expected, _ = first_request(plain)
    sent, headers = first_request(ready)
    assert sent == expected  # ...and sends the same conversation, the same fields
    assert len(sent["messages"]) == 2 + 2 * PAIRS
    assert sent["messages"][-1]["content"].startswith('line "')
    # The SDK's own request: its auth header and content type, not a hand-made one.
    assert headers["authorization"] == "Bearer sk-test"
    assert headers["content-type"] == "application/json"
    # The run's reply was committed on top, from the messages decoded after the request.
    assert ready.load("s1").messages[:-1] == plain.load("s1").messages[:-1]


def test_a_conversation_kept_by_another_adapter_is_not_sent(tmp_path: Path) -> None:
    """The copy is the text its adapter sends (Prepared, named by its format): a client of
    another format builds its request from the messages instead of sending that text."""
    plain = open_store(f"sqlite://{tmp_path}/plain.db")
    build(plain)
    expected, _ = first_request(plain)
    plain.close()
    store = open_store(f"sqlite://{tmp_path}/other.db")
    build(store)
    session = store.load("s1")
    foreign = Prepared("another-adapter/1", "not this adapter's text")
    keep_ready(store, session, lambda _messages: foreign)
    kept = load_head(store, "s1").ready
    assert kept is not None
    assert kept.prepared == foreign  # sound, at the head: only its format tells
    sent, _ = first_request(store)
    assert sent["messages"] == expected["messages"]


def test_a_run_that_stops_leaves_its_conversation_ready_for_the_next(store: Store) -> None:
    build(store)
    assert store.ready_conversation("s1") is None
    first_request(store)
    head = store.load("s1")
    kept = store.ready_conversation("s1")
    assert kept is not None
    assert kept.sound()
    assert kept.tip == head.checkpoint.message_tip
    assert kept.count == len(head.messages)
    assert kept.tokens == head.context_tokens
    assert kept.prepared == f"{FORMAT}\n{prepare(head.messages).text}"
    lazy = load_head(store, "s1")
    assert lazy.ready is not None
    assert lazy.newest_turn == head.newest_turn == head.messages[-2:]  # reply, nudge
    assert lazy.context_tokens == head.context_tokens
    assert lazy == head  # decoded on demand, equal to the messages' session
    assert lazy.ready is None  # once decoded, it is the messages that count


def test_a_short_conversation_is_not_worth_keeping(store: Store) -> None:
    info = SessionInfo(id="s1", spec=TaskSpec(goal="g"), model="m", created_at="t")
    store.create_session(info, draft(None, 1, Message(role="user", content="hi", tokens=1)))
    keep_ready(store, store.load("s1"), prepare)
    assert store.ready_conversation("s1") is None


def test_after_a_rollback_the_messages_count_not_the_ready_copy(store: Store) -> None:
    head = build(store)
    keep_ready(store, store.load("s1"), prepare)
    target = store.get_checkpoint("s1", head - 2)
    rollback = CheckpointDraft(
        head - 2,
        CheckpointKind.ROLLBACK,
        State.PLANNING,
        target.to_state,
        "2026-01-03",
        target.task,
        target.usage,
        detail=RollbackDetail(head - 2, head),
    )
    store.append("s1", head, rollback)
    session = load_head(store, "s1")
    assert session.ready is None
    assert session == store.load("s1")


def tampered(ready: ReadyConversation, **change: Any) -> ReadyConversation:
    from dataclasses import replace

    return replace(ready, **change)


@pytest.mark.parametrize(
    "change",
    [
        # One character of the text sent: the check tells.
        lambda r, _: tampered(r, prepared=r.prepared.replace("naïve", "naive", 1)),
        # Figures that do not match the text.
        lambda r, _: tampered(r, tokens=r.tokens + 1),
        # A sound copy of another session of the same id (an older agentctl deleted it).
        lambda r, messages: ReadyConversation.of(
            SessionInfo(id="s1", spec=TaskSpec(goal="g"), model="m", created_at="earlier"),
            messages,
            r.tip,
            prepare(messages),
        ),
    ],
    ids=["text", "figures", "owner"],
)
def test_a_damaged_or_foreign_ready_copy_is_ignored(store: Store, change: Any) -> None:
    build(store)
    session = store.load("s1")
    tip = session.checkpoint.message_tip
    assert tip is not None
    copy = ReadyConversation.of(session.info, session.messages, tip, prepare(session.messages))
    store.keep_ready("s1", change(copy, session.messages))
    loaded = load_head(store, "s1")
    assert loaded.ready is None
    assert loaded == session


def test_a_damaged_row_in_sqlite_is_ignored_and_an_older_store_has_none(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path}/s.db")
    build(store)
    # A store an older agentctl wrote has no ready table: none, no error; deleting works.
    assert store.ready_conversation("s1") is None
    keep_ready(store, store.load("s1"), prepare)
    db = sqlite3.connect(tmp_path / "s.db")
    with db:
        db.execute("UPDATE ready SET tip = 'x', wire = substr(wire, 2)")
    db.close()
    assert store.ready_conversation("s1") is None  # not of its types: not used
    assert load_head(store, "s1").ready is None
    store.delete_session("s1")
    store.close()


def test_a_torn_or_foreign_ready_file_in_json_lines_is_ignored(tmp_path: Path) -> None:
    store = open_store(f"json://{tmp_path}/j")
    build(store)
    keep_ready(store, store.load("s1"), prepare)
    path = tmp_path / "j" / "sessions" / "s1" / "ready.cache"
    data = path.read_bytes()
    for broken in (data[: len(data) // 2], b"\xff" + data, b"not json\n" + data, b""):
        path.write_bytes(broken)
        assert load_head(store, "s1").ready is None
    assert store.check() == []


def test_a_copy_an_older_agentctl_left_behind_is_not_taken_by_a_new_session(
    tmp_path: Path,
) -> None:
    store = open_store(f"sqlite://{tmp_path}/s.db")
    build(store)
    keep_ready(store, store.load("s1"), prepare)
    # An older agentctl deletes the session knowing nothing of the ready table.
    db = sqlite3.connect(tmp_path / "s.db")
    with db:
        for table in ("checkpoints", "messages", "sessions"):
            db.execute(
                f"DELETE FROM {table} WHERE {'id' if table == 'sessions' else 'session_id'} = 's1'"
            )
    db.close()
    build(store)  # the same id and facts, made again
    assert store.ready_conversation("s1") is None
    store.close()


def test_a_sound_copy_that_the_messages_contradict_is_a_store_error_when_read(
    store: Store,
) -> None:
    from agentctl.errors import StoreError

    build(store)
    session = store.load("s1")
    tip = session.checkpoint.message_tip
    assert tip is not None
    other = (*session.messages[:-1], session.messages[-1].model_copy(update={"tokens": 99}))
    store.keep_ready("s1", ReadyConversation.of(session.info, other, tip, prepare(other)))
    lazy = load_head(store, "s1")
    assert lazy.ready is not None  # sound, the head's: taken
    with pytest.raises(StoreError, match="do not match the conversation kept ready"):
        _ = lazy.messages


def test_a_request_that_cannot_be_encoded_is_one_model_error_and_nothing_is_sent() -> None:
    from agentctl.errors import ModelError

    model = ScriptedModel((ScriptTurn(content="hi"),))
    with ScriptedServer(model) as server:
        config = ModelConfig(model="m", base_url=server.base_url, api_key=None, max_retries=0)
        client = OpenAIModelClient(config)
        with pytest.raises(ModelError, match="not valid Unicode"):
            client.send([Message(role="user", content="bad \ud800")], [])
    assert sum(model.requests.values()) == 0


# -- killed anywhere around the ready conversation ------------------------------------------


def finish_script() -> tuple[ScriptTurn, ...]:
    """Replies by turn index: fillers for the built turns, then a plan and the finish."""
    from agentctl.domain.session import ScriptToolCall

    filler = (ScriptTurn(content="unused"),) * PAIRS
    plan = ScriptTurn(tool_calls=(ScriptToolCall(name="submit_plan", arguments={"steps": ["x"]}),))
    done = ScriptTurn(tool_calls=(ScriptToolCall(name="finish", arguments={"result": "ok"}),))
    return (*filler, plan, done)


def resume_in_child(url: str, base_url: str, armed: tuple[str, int] | None) -> bool:
    """One resume in a forked process; True when its armed fault killed it."""
    import os
    import signal
    import traceback

    from agentctl import faults

    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            if armed is not None:
                faults.arm(*armed)
            store = open_store(url)
            runner(store, base_url).run("s1", answer=None, ask=None, max_turns=10)
            store.close()
        except BaseException:
            traceback.print_exc()
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return True
    assert os.WEXITSTATUS(status) == 0, "the resume failed (see its traceback)"
    return False


@pytest.mark.process
@pytest.mark.parametrize("backend", ["sqlite", "json"])
def test_a_resume_killed_anywhere_from_a_ready_conversation_ends_as_a_clean_one(
    tmp_path: Path, backend: str
) -> None:
    from agentctl.usecases.verify import verify_store

    def place(name: str) -> str:
        return (
            f"sqlite://{tmp_path}/{name}.db" if backend == "sqlite" else f"json://{tmp_path}/{name}"
        )

    def copy(name: str) -> str:
        if backend == "sqlite":
            shutil.copy(tmp_path / "built.db", tmp_path / f"{name}.db")
        else:
            shutil.copytree(tmp_path / "built", tmp_path / name)
        return place(name)

    built = open_store(place("built"))
    build(built)
    keep_ready(built, built.load("s1"), prepare)
    built.close()

    def outcome(url: str) -> tuple[Any, ...]:
        store = open_store(url)
        try:
            session = store.load("s1")
            problems, reports = verify_store(store)
            assert problems == []
            assert all(not r.problems for r in reports), [r.problems for r in reports]
            kept = store.ready_conversation("s1")
            if kept is not None and kept.tip == session.checkpoint.message_tip:
                assert kept.prepared == f"{FORMAT}\n{prepare(session.messages).text}"
            kinds = [c.kind for c in store.history("s1")]
            return session.state, session.task.result, session.messages, kinds
        finally:
            store.close()

    model = ScriptedModel(finish_script())
    with ScriptedServer(model) as server:
        assert not resume_in_child(copy("clean"), server.base_url, None)
        clean = outcome(place("clean"))
        assert clean[0] is State.DONE
        killed = 0
        for point in ("model_reply_received", "commit_started", "commit_done"):
            # commit_started: each checkpoint's write, then the ready copy's, then (SQLite)
            # the kept history listing's (store/listing.py): six in the clean run.
            for occurrence in range(1, 8):
                url = copy(f"{point}-{occurrence}")
                if not resume_in_child(url, server.base_url, (point, occurrence)):
                    break  # the run ended before the point's n-th time
                killed += 1
                assert not resume_in_child(url, server.base_url, None)
                assert outcome(url) == clean, (point, occurrence)
    assert killed >= 8


def test_a_ready_file_whose_header_nests_deeper_than_the_parser_can_go_is_ignored() -> None:
    from agentctl.store.ready import from_document

    assert from_document(b"[" * 100_000 + b"]" * 100_000 + b"\n") is None


def test_the_end_of_run_caches_are_built_with_the_collector_paused(tmp_path: Path) -> None:
    """Issue 30 item 3: both caches build an object per message or checkpoint while the whole
    session is alive, and every full collection on the way walked all of it (17-24x the time
    for 10x the checkpoints). With a threshold that collects every few allocations, none of
    the building may start a collection: a few at its edges (pausing and resuming), not one
    per few allocations."""
    import gc

    from agentctl.store.listing import keep_listing
    from agentctl.store.ready import owner_of

    store = open_store(f"sqlite://{tmp_path / 'agentctl.db'}")
    build(store)
    session = store.load("s1")
    collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    threshold = gc.get_threshold()
    gc.set_threshold(10, 1, 1)
    gc.callbacks.append(count)
    try:
        keep_ready(store, session, prepare)
        keep_listing(store, "s1", owner_of(session.info), session.checkpoint.id)
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*threshold)
    assert store.ready_conversation("s1") is not None
    assert store.kept_listing("s1") is not None
    assert len(collections) <= 4, collections
    store.close()


@pytest.mark.parametrize("piece", [1, 2, 3, 7, 1 << 18])
def test_the_check_of_a_copy_read_a_piece_at_a_time_is_the_check_of_its_bytes(
    piece: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CRC is taken a piece of the text at a time (no copy of the whole conversation),
    and is the CRC of the whole text's UTF-8, lone surrogates and all (issue 30 item 3)."""
    import zlib

    import agentctl.store.ready as ready

    turn, prepared = 'é🙂"a\ud800', "openai-chat/1\n" + "ab🙂\udfffé" * 5
    head = f"{ready.READY_VERSION}:o:3:4:5:{len(turn)}:".encode()
    whole = (turn + prepared).encode("utf-8", "surrogatepass")
    monkeypatch.setattr(ready, "CHECK_PIECE", piece)
    assert ready._check("o", 3, 4, 5, turn, prepared) == zlib.crc32(head + whole)


def test_the_end_of_a_run_encodes_only_the_messages_after_its_last_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The client keeps the conversation ready from what its requests encoded: the same text
    as `prepare`, and only the messages after the last request are encoded again."""
    import agentctl.llm.openai_chat as chat

    sent = [Message(role="system", content="sys"), Message(role="user", content="goal")]
    for n in range(50):
        call = ToolCall(id=f"c{n}", name="read_file", arguments="{}")
        sent += [
            Message(role="assistant", tool_calls=(call,)),
            Message(role="tool", tool_call_id=f"c{n}", content=f'"{n}" naïve'),
        ]
    with ScriptedServer(ScriptedModel((ScriptTurn(content="done"),) * 60)) as server:
        config = ModelConfig(model="m", base_url=server.base_url, api_key="k", max_retries=0)
        client = OpenAIModelClient(config)
        reply = client.complete(sent, [], lambda _text: None).message
    encoded: list[Message] = []
    wire_message = chat.wire_message
    monkeypatch.setattr(chat, "wire_message", lambda m: encoded.append(m) or wire_message(m))
    conversation = [*sent, reply]
    kept = client.prepare(conversation)
    assert encoded == [reply]
    assert kept == prepare(conversation)
