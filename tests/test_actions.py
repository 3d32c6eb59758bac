"""next_action: the loop's decision as a pure function of a loaded session, tested without a
store, a model or HTTP."""

from __future__ import annotations

from agentctl.domain.lifecycle import State
from agentctl.domain.state import (
    Checkpoint,
    Message,
    PendingQuestion,
    Session,
    SessionInfo,
    TaskSpec,
    TaskState,
    ToolCall,
)
from agentctl.loop.decide import (
    AskInText,
    AwaitInput,
    CallModel,
    Finish,
    GiveUpPlanning,
    Nudge,
    RunCall,
    next_action,
    unique_call_ids,
)

INFO = SessionInfo(id="s", spec=TaskSpec(goal="g"), model="m", created_at="t")
HEAD = (Message(role="system", content="sys"), Message(role="user", content="Goal: g"))


def session(state: State, *messages: Message, **task: object) -> Session:
    checkpoint = Checkpoint(
        id=2,
        parent=1,
        kind="model_reply",
        from_state=state,
        to_state=state,
        created_at="t",
        task=TaskState(goal="g", **task),  # type: ignore[arg-type]
    )
    return Session(info=INFO, checkpoint=checkpoint, messages=HEAD + messages)


def reply(*calls: ToolCall, content: str = "", finish: str = "stop") -> Message:
    return Message(role="assistant", content=content, tool_calls=calls, finish_reason=finish)


A = ToolCall(id="a", name="read_file", arguments="{}")
B = ToolCall(id="b", name="finish", arguments="{}")


def test_done_and_waiting_come_first() -> None:
    assert next_action(session(State.DONE, reply(A))) == Finish()
    question = PendingQuestion(question="q?", tool_call_id="a")
    waiting = session(State.WAITING_FEEDBACK, reply(A), pending_question=question)
    assert next_action(waiting) == AwaitInput(question)


def test_calls_run_in_order_until_each_has_a_result() -> None:
    assert next_action(session(State.EXECUTING, reply(A, B))) == RunCall(A)
    answered = Message(role="tool", tool_call_id="a", content="ok")
    assert next_action(session(State.EXECUTING, reply(A, B), answered)) == RunCall(B)
    done = Message(role="tool", tool_call_id="b", content="ok")
    assert next_action(session(State.EXECUTING, reply(A, B), answered, done)) == CallModel()


def test_text_is_nudged_once_then_a_question_or_a_stop() -> None:
    text = reply(content="Which dates?")
    assert next_action(session(State.EXECUTING, text)) == Nudge(text)
    assert next_action(session(State.EXECUTING, text, nudged=True)) == AskInText("Which dates?")
    assert next_action(session(State.PLANNING, text, nudged=True)) == GiveUpPlanning("Which dates?")


def test_an_empty_or_cut_reply_is_always_nudged() -> None:
    for said in (reply(content="  "), reply(content="Let me thi", finish="length")):
        assert next_action(session(State.EXECUTING, said, nudged=True)) == Nudge(said)


def test_a_user_message_last_means_the_model_speaks_next() -> None:
    assert next_action(session(State.PLANNING)) == CallModel()


def test_call_ids_are_made_unique_within_the_session() -> None:
    earlier = (reply(ToolCall(id="call_0", name="x", arguments="{}")),)
    fresh = reply(
        ToolCall(id="call_0", name="x", arguments="{}"), ToolCall(id="", name="y", arguments="{}")
    )
    ids = [c.id for c in unique_call_ids(fresh, earlier, 7).tool_calls]
    assert ids == ["agentctl_7_0", "agentctl_7_1"]
