"""Encoding of persisted models: round trips, version checks, upgrades, clear failures."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentctl.domain.session import Message, SessionInfo, Task, TaskSpec, ToolCall, UserProfile
from agentctl.errors import InvalidStateError
from agentctl.store import codec

text = st.text(max_size=50)


@given(
    goal=st.text(min_size=1, max_size=50),
    plan=st.lists(text, max_size=5),
    data=st.dictionaries(text, st.integers() | text, max_size=4),
)
def test_task_state_round_trips(goal: str, plan: list[str], data: dict[str, Any]) -> None:
    task = Task(goal=goal, plan=tuple(plan), data=data)
    assert codec.decode(Task, codec.encode(task)) == task


def test_messages_with_tool_calls_round_trip() -> None:
    message = Message(
        role="assistant",
        content=None,
        tool_calls=(ToolCall(id="c1", name="finish", arguments='{"result": "x"'),),
        tokens=7,
    )
    assert codec.decode(Message, codec.encode(message)) == message


def test_a_newer_payload_is_refused_whole() -> None:
    payload = json.loads(codec.encode(Task(goal="g")))
    payload["schema_version"] = 99
    with pytest.raises(InvalidStateError, match="schema version 99, newer than this agentctl"):
        codec.decode(Task, payload, where="checkpoint 3")


def test_an_invalid_payload_names_the_field() -> None:
    with pytest.raises(InvalidStateError, match=r"Task in x is invalid: plan: "):
        codec.decode(Task, {"goal": "g", "plan": 5}, where="x")
    with pytest.raises(InvalidStateError, match="not valid JSON"):
        codec.decode(Task, "{nope")
    with pytest.raises(InvalidStateError, match="surprise: Extra inputs"):
        codec.decode(Task, {"goal": "g", "surprise": 1})


def test_old_payloads_are_upgraded_one_version_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pretend UserProfile is at version 3 and check that a version-1 payload walks up to it.
    field = UserProfile.model_fields["schema_version"]
    monkeypatch.setattr(field, "default", 3)
    monkeypatch.setattr(codec, "_SHAPES", {})  # the codec reads each class's shape once
    calls = []

    def one_to_two(p: dict[str, Any]) -> dict[str, Any]:
        calls.append(1)
        return {**p, "preferences": {k.lower(): v for k, v in p["preferences"].items()}}

    def two_to_three(p: dict[str, Any]) -> dict[str, Any]:
        calls.append(2)
        return p

    monkeypatch.setitem(codec.UPGRADES, "UserProfile", {1: one_to_two, 2: two_to_three})
    upgraded = codec.upgrade(
        UserProfile, {"schema_version": 1, "preferences": {"Airline": "Delta"}}
    )
    assert calls == [1, 2]
    assert upgraded == {"schema_version": 3, "preferences": {"airline": "Delta"}}


def test_a_conversation_decodes_in_one_call_and_names_a_bad_message() -> None:
    good = [codec.encode(Message(role="user", content=str(n))) for n in range(3)]
    assert [m.content for m in codec.decode_messages("[" + ",".join(good) + "]")] == ["0", "1", "2"]
    assert codec.decode_messages("[]") == ()
    bad = "[" + ",".join([*good, '{"role": "robot"}']) + "]"
    with pytest.raises(InvalidStateError, match=r"Message in s1 is invalid: role: "):
        codec.decode_messages(bad, where="s1")


def test_version_1_payloads_are_upgraded_nested_models_included() -> None:
    # As agentctl 0.1.0 wrote them (tests/fixtures holds whole stores of this age).
    task_v1 = {
        "schema_version": 1,
        "goal": "g",
        "pending_question": {"question": "q?", "tool_call_id": "c1"},
    }
    task = codec.decode(Task, task_v1)
    assert task.schema_version == Task(goal="x").schema_version  # the newest
    assert task.pending_question is not None
    assert task.pending_question.kind == "question"
    info_v1 = {
        "schema_version": 1,
        "id": "s1",
        "spec": {"schema_version": 1, "goal": "g"},
        "model": "scripted",
        "created_at": "t",
    }
    info = codec.decode(SessionInfo, info_v1)
    assert (info.schema_version, info.spec.schema_version, info.workspace) == (5, 6, None)


def test_every_versioned_model_has_a_complete_upgrade_chain() -> None:
    """A payload of any older version loads: an upgrade step exists for each version below the
    current one (a missing step would be a KeyError at load, found by a user first)."""
    import agentctl.domain.session as session_models

    versioned = [
        model
        for model in vars(session_models).values()
        if isinstance(model, type)
        and issubclass(model, session_models._Model)
        and "schema_version" in model.model_fields
    ]
    assert {m.__name__ for m in versioned} >= {"Task", "TaskSpec", "SessionInfo", "Message"}
    for model in versioned:
        current = int(model.model_fields["schema_version"].default)
        steps = codec.UPGRADES.get(model.__name__, {})
        assert sorted(steps) == list(range(1, current)), model.__name__


def test_the_stored_form_leaves_defaults_out_but_keeps_every_schema_version() -> None:
    """The full store benchmark of issue 15 found a default task state (nulls and empty lists
    of every field added since) taking 310 bytes of every checkpoint: 2.07x the raw bytes at
    1,000 steps against the 2x target. A payload without a version would read as version 1,
    so every versioned model keeps its own, nested ones included."""
    info = SessionInfo(id="abc", spec=TaskSpec(goal="g"), model="m", created_at="t")
    stored = json.loads(codec.encode(info))
    assert stored == {
        "schema_version": info.schema_version,
        "id": "abc",
        "spec": {"schema_version": info.spec.schema_version, "goal": "g"},
        "model": "m",
        "created_at": "t",
    }
    assert codec.decode(SessionInfo, codec.encode(info)) == info
    task = Task(goal="g")
    assert len(codec.encode(task)) < 40
    assert codec.decode(Task, codec.encode(task)) == task
    message = Message(role="user", content="hi", tokens=3)
    assert codec.decode_messages(f"[{codec.encode(message)}]") == (message,)
    # The --json views are not the stored form: no version is added to them.
    assert "schema_version" not in message.model_dump(mode="json", exclude_defaults=True)
