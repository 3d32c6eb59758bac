"""The OpenAI adapter's wire form: the request's messages built incrementally are, byte for
byte, the whole conversation encoded at once (issue 30 item 5), whatever the conversation did
between two requests: grew, merged texts, was compacted, or cut to fit."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from agentctl.domain.session import Message, ToolCall
from agentctl.llm.openai_chat import _Encoder, wire_conversation

TEXT = st.text(alphabet='ab \n"é🙂', max_size=6)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    role = draw(st.sampled_from(["system", "user", "assistant", "tool"]))
    if role == "assistant":
        calls = tuple(
            ToolCall(
                id=f"c{n}",
                name=draw(st.sampled_from(["read_file", "", "bad name"])),
                arguments=draw(st.sampled_from(['{"path": "a"}', "{", "[]"])),
                provider_data=draw(st.none() | st.just({"a": 1, "b": True})),
            )
            for n in range(draw(st.integers(0, 2)))
        )
        return Message(role=role, content=draw(st.none() | TEXT), tool_calls=calls)
    if role == "tool":
        return Message(role=role, content=draw(TEXT), tool_call_id="c0")
    return Message(role=role, content=draw(TEXT))


def whole(conversation: list[Message]) -> str:
    return json.dumps(wire_conversation(conversation), ensure_ascii=False, separators=(",", ":"))


def equal_elsewise(message: Message) -> Message:
    """An equal message (==) that encodes otherwise: its calls' provider data with the keys
    in the other order and 1 as 1.0 (as a store that keeps JSON its own way may give back)."""
    calls = tuple(
        c.model_copy(
            update={"provider_data": {k: float(v) for k, v in reversed(c.provider_data.items())}}
        )
        if c.provider_data
        else c
        for c in message.tool_calls
    )
    return message.model_copy(update={"tool_calls": calls})


# Each step: append messages, or keep a prefix and go on from it (a compaction or a rollback
# keeps the head), or replace one message by an equal copy (a cut to fit: a new object), or by
# one equal to it that encodes otherwise.
STEPS = st.lists(
    st.tuples(
        st.sampled_from(["grow", "cut", "copy", "equal"]),
        st.lists(messages(), max_size=4),
        st.integers(0, 12),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(STEPS)
def test_the_incremental_request_is_the_whole_conversation_encoded(steps: list) -> None:
    encoder = _Encoder()
    conversation: list[Message] = []
    for kind, new, at in steps:
        if kind == "cut":
            conversation = conversation[: at % (len(conversation) + 1)]
        elif kind == "copy" and conversation:
            index = at % len(conversation)
            conversation[index] = conversation[index].model_copy()
        elif kind == "equal" and conversation:
            index = at % len(conversation)
            conversation[index] = equal_elsewise(conversation[index])
        conversation = [*conversation, *new]
        assert encoder.array(conversation) == whole(conversation)


def test_a_message_equal_to_the_one_sent_but_encoded_otherwise_is_encoded_again() -> None:
    """The incremental encoder compared the conversation with == (pydantic's: field values,
    so {"a": 1, "b": True} equals {"b": 1.0, "a": 1.0}) and sent the old bytes."""
    call = ToolCall(id="c0", name="x", arguments="{}", provider_data={"a": 1, "b": True})
    first = [Message(role="user", content="u"), Message(role="assistant", tool_calls=(call,))]
    encoder = _Encoder()
    assert encoder.array(first) == whole(first)
    second = [first[0], equal_elsewise(first[1])]
    assert second == first
    assert encoder.array(second) == whole(second) != whole(first)


def test_adjacent_texts_merge_across_requests() -> None:
    """The newest user text joins the one before it when the next request is built."""
    encoder = _Encoder()
    goal = [Message(role="system", content="s"), Message(role="user", content="goal")]
    assert encoder.array(goal) == whole(goal)
    more = [*goal, Message(role="user", content="note")]
    sent = json.loads(encoder.array(more))
    assert [m["content"] for m in sent] == ["s", "goal\n\nnote"]


def test_a_finish_reason_is_the_loops_word_whatever_the_server_said() -> None:
    """The adapter maps a server's reasons to FinishReason (the loop compares no provider
    strings); a reason it does not know is OTHER, and an older store's word reads so too."""
    from agentctl.domain.session import FinishReason
    from agentctl.llm.replies import collect

    def reply(reason: str) -> Message:
        chunks = [{"choices": [{"delta": {"content": "hi"}, "finish_reason": reason}]}]
        return collect(chunks, lambda _t: None, lambda: None).message

    assert reply("length").finish is FinishReason.LENGTH
    assert reply("function_call").finish is FinishReason.TOOL_CALLS
    assert reply("eos_token").finish_reason == "other"  # TGI's word, stored as the loop's
    stored = Message(role="assistant", content="x", finish_reason="eos_token")  # an older store
    assert stored.finish is FinishReason.OTHER
    assert Message(role="user", content="x").finish is None


@st.composite
def any_messages(draw: st.DrawFn) -> Message:
    """messages(), and text that is not there, or a call's id where none belongs."""
    message = draw(messages())
    if draw(st.booleans()):
        return message
    return message.model_copy(
        update={
            "content": draw(st.none() | TEXT),
            "tool_call_id": draw(st.none() | st.sampled_from(["c1", 'c"é'])),
        }
    )


@settings(max_examples=500, deadline=None)
@given(st.lists(any_messages(), max_size=12))
def test_the_conversation_kept_ready_is_the_whole_conversation_encoded(
    conversation: list[Message],
) -> None:
    """`prepare` writes each message of text as its text, not as a dict encoded: the same
    bytes (issue 30 item 3)."""
    from agentctl.llm.openai_chat import FORMAT, _array, prepare

    assert _array(conversation) == whole(conversation)
    assert prepare(conversation).text == whole(conversation)
    assert prepare(conversation).format == FORMAT
