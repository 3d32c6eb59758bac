"""next_action: the loop's decision as a pure function of a loaded session and the run's facts,
tested without a store, a model or HTTP; and its invariants as properties (hypothesis)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agentctl.domain.lifecycle import State
from agentctl.domain.session import (
    Approval,
    Checkpoint,
    Message,
    PendingQuestion,
    Session,
    SessionInfo,
    Task,
    TaskSpec,
    ToolCall,
)
from agentctl.loop.decide import (
    Action,
    AskApproval,
    AskInText,
    AwaitInput,
    CallIds,
    CallInterrupted,
    CallModel,
    Compact,
    ControlStep,
    Drain,
    Facts,
    Finish,
    FollowUp,
    GiveUpPlanning,
    NoteInstructions,
    Nudge,
    RefuseCall,
    RunTool,
    TurnLimit,
    WindowTooSmall,
    next_action,
    unique_call_ids,
)
from agentctl.tools import ToolRegistry, work_tools
from agentctl.tools.approval import ApprovalPolicy

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
        task=Task(goal="g", **task),  # type: ignore[arg-type]
    )
    return Session(info=INFO, checkpoint=checkpoint, messages=HEAD + messages)


def reply(*calls: ToolCall, content: str = "", finish: str = "stop") -> Message:
    return Message(role="assistant", content=content, tool_calls=calls, finish_reason=finish)


A = ToolCall(id="a", name="read_file", arguments='{"path": "a.md"}')
B = ToolCall(id="b", name="finish", arguments='{"result": "ok"}')
WORKSPACE = Path("/nonexistent/agentctl-workspace")  # the tools are only asked, never run


def tools(policy: ApprovalPolicy | None = None) -> ToolRegistry:
    return work_tools(WORKSPACE, policy or ApprovalPolicy())


FACTS = Facts(tools())


def test_done_and_waiting_come_first() -> None:
    assert next_action(session(State.DONE, reply(A))) == Finish()
    question = PendingQuestion(question="q?", tool_call_id="a")
    waiting = session(State.WAITING_FEEDBACK, reply(A), pending_question=question)
    assert next_action(waiting) == AwaitInput(question)


def test_a_follow_up_moves_a_done_session() -> None:
    facts = Facts(follow_up="And now in French")
    assert next_action(session(State.DONE, reply(A)), facts) == FollowUp("And now in French")


def test_calls_run_in_order_until_each_has_a_result() -> None:
    first = next_action(session(State.EXECUTING, reply(A, B)), FACTS)
    assert isinstance(first, RunTool)
    assert (first.call, first.arguments, first.approved) == (A, {"path": "a.md"}, False)
    answered = Message(role="tool", tool_call_id="a", content="ok")
    second = next_action(session(State.EXECUTING, reply(A, B), answered), FACTS)
    assert isinstance(second, ControlStep)
    assert second.call == B
    assert second.step.to_state is State.DONE
    done = Message(role="tool", tool_call_id="b", content="ok")
    assert next_action(session(State.EXECUTING, reply(A, B), answered, done)) == CallModel()


def test_a_call_is_refused_interrupted_asked_about_or_run() -> None:
    write = ToolCall(id="w", name="write_file", arguments='{"path": "a.md", "content": "x"}')
    executing = session(State.EXECUTING, reply(write))
    assert next_action(executing, FACTS) == AskApproval(
        write,
        next_action(executing, FACTS).question,  # type: ignore[union-attr]
    )
    assert isinstance(next_action(executing, Facts(tools(ApprovalPolicy(yes=True)))), RunTool)
    in_flight = session(State.EXECUTING, reply(write), in_flight="w")
    assert next_action(in_flight, FACTS) == CallInterrupted(write)
    assert next_action(session(State.PLANNING, reply(write)), FACTS) == RefuseCall(
        write, "write_file may run once a plan is submitted"
    )
    yes = session(State.EXECUTING, reply(write), approval=Approval(call_id="w", asked_at=1))
    ran = next_action(yes, FACTS)
    assert isinstance(ran, RunTool)
    assert ran.approved
    missing = ToolCall(id="m", name="write_file", arguments='{"path": "a.md"}')
    assert next_action(session(State.EXECUTING, reply(missing)), FACTS) == RefuseCall(
        missing, "bad arguments for write_file: argument 'content' is missing; expected a string"
    )
    unknown = ToolCall(id="u", name="teleport", arguments="{}")
    refused = next_action(session(State.EXECUTING, reply(unknown)), FACTS)
    assert isinstance(refused, RefuseCall)
    assert refused.text.startswith("unknown tool 'teleport'; tools: ask_user, complete_step")


def test_before_a_model_call_come_instructions_the_turn_limit_the_window_and_compaction() -> None:
    ready = session(State.EXECUTING)
    assert next_action(ready, Facts(instructions=True, turns=9, max_turns=9)) == NoteInstructions()
    assert next_action(ready, Facts(turns=9, max_turns=9)) == TurnLimit(9)
    small = Facts(turns=1, max_turns=9, too_small=lambda _s: "too small", split=lambda _s: 3)
    assert next_action(ready, small) == WindowTooSmall("too small")
    assert next_action(ready, Facts(split=lambda _s: 3)) == Compact(3)
    assert next_action(ready, Facts(turns=8, max_turns=9)) == CallModel()


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
    ids = [c.id for c in unique_call_ids(fresh, CallIds().of(earlier), 7).tool_calls]
    assert ids == ["agentctl_7_0", "agentctl_7_1"]


def test_call_ids_a_hostile_model_sends_in_agentctls_own_form_never_make_a_duplicate() -> None:
    """A model that sends an id agentctl would make (agentctl_<checkpoint>_<n>) in the same
    reply or an earlier one: the id made for a call without one was the same, and two calls
    shared an id (a result or an approval attached to the other)."""
    within = reply(
        ToolCall(id="agentctl_7_1", name="x", arguments="{}"),
        ToolCall(id="", name="y", arguments="{}"),
    )
    ids = [c.id for c in unique_call_ids(within, CallIds().of(()), 7).tool_calls]
    assert len(set(ids)) == 2
    earlier = (reply(ToolCall(id="agentctl_7_0", name="x", arguments="{}")),)
    [made] = unique_call_ids(
        reply(ToolCall(id="", name="y", arguments="{}")), {"agentctl_7_0"}, 7
    ).tool_calls
    assert made.id not in CallIds().of(earlier)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["", "a", "agentctl_3_0", "agentctl_3_1", "agentctl_3_1_1"]), max_size=5
    ),
    st.sets(
        st.sampled_from(["a", "agentctl_3_0", "agentctl_3_1", "agentctl_3_0_1", "agentctl_3_1_1"])
    ),
)
def test_call_ids_made_unique_are_unique_whatever_the_model_sent(
    sent: list[str], taken: set[str]
) -> None:
    fresh = reply(*(ToolCall(id=i, name="x", arguments="{}") for i in sent))
    ids = [c.id for c in unique_call_ids(fresh, taken, 3).tool_calls]
    assert len(set(ids)) == len(ids)
    assert not set(ids) & taken
    assert "" not in ids
    if sent and sent[0] and sent[0] not in taken:
        assert ids[0] == sent[0]  # a good id stays the model's


def test_call_ids_kept_as_the_conversation_grows_are_collected_again_after_a_compaction() -> None:
    ids = CallIds()
    first = (reply(ToolCall(id="a", name="x", arguments="{}")),)
    assert ids.of(first) == {"a"}
    grown = (*first, reply(ToolCall(id="b", name="x", arguments="{}")))
    assert ids.of(grown) == {"a", "b"}
    # A compaction: the same length, other messages. Nothing of the old conversation stays.
    compacted = (reply(ToolCall(id="c", name="x", arguments="{}")), grown[1])
    assert ids.of(compacted) == {"b", "c"}
    assert ids.of(compacted[:1]) == {"c"}


# -- properties: what the decision never does, whatever the session and the run's facts -------

NAMES = ("read_file", "write_file", "run_shell", "finish", "remember", "submit_plan", "teleport")
ARGUMENTS = {
    "read_file": {"path": "a.md"},
    "write_file": {"path": "a.md", "content": "x"},
    "run_shell": {"command": "pytest -q"},
    "finish": {"result": "ok"},
    "remember": {"key": "airline", "value": "Delta"},
    "submit_plan": {"steps": ["a"]},
    "teleport": {"to": "Lisbon"},
}


@st.composite
def situations(draw: st.DrawFn) -> tuple[Session, Facts, ToolCall | None]:
    state = draw(st.sampled_from(list(State)))
    name = draw(st.sampled_from(NAMES))
    arguments: dict[str, Any] = dict(ARGUMENTS[name])
    if draw(st.booleans()) and arguments:  # one argument missing or of the wrong type
        key = draw(st.sampled_from(sorted(arguments)))
        if draw(st.booleans()):
            del arguments[key]
        else:
            arguments[key] = 3
    call = ToolCall(id="c", name=name, arguments=json.dumps(arguments))
    pending = draw(st.booleans())
    messages: tuple[Message, ...] = (reply(call),) if pending else ()
    if pending and draw(st.booleans()):
        messages += (Message(role="tool", tool_call_id="c", content="ok"),)
        pending = False
    task: dict[str, Any] = {
        "in_flight": "c" if draw(st.booleans()) else None,
        "approval": Approval(call_id="c", asked_at=1) if draw(st.booleans()) else None,
        "auto_approve": draw(st.booleans()),
    }
    if state is State.WAITING_FEEDBACK:
        task["pending_question"] = PendingQuestion(question="q?", tool_call_id="c")
    policy = ApprovalPolicy(
        yes=draw(st.booleans()),
        allow=tuple(
            draw(st.sets(st.sampled_from(["write_file", "run_shell:pytest *", "remember"])))
        ),
    )
    max_turns = draw(st.integers(0, 3))
    split = draw(st.none() | st.integers(2, 5))
    small = draw(st.none() | st.just("the window is too small"))
    stop = draw(st.integers(0, 9)) == 0  # a worker told to stop, now and then
    facts = Facts(
        tools(policy),
        turns=draw(st.integers(0, 4)),
        max_turns=max_turns,
        follow_up=draw(st.none() | st.just("next")),
        instructions=draw(st.booleans()),
        too_small=lambda _s: small,
        split=lambda _s: split,
        stop_when=lambda: stop,
    )
    return session(state, *messages, **task), facts, call if pending else None


@settings(max_examples=400, deadline=None)
@given(situations())
def test_the_decision_keeps_its_promises(situation: tuple[Session, Facts, ToolCall | None]) -> None:
    sess, facts, pending = situation
    stopping = facts.stop_when()
    action: Action = next_action(sess, facts)
    assert next_action(sess, facts) == action  # pure: the same facts, the same decision
    if sess.state is State.DONE:
        assert action in (Finish(), FollowUp("next"))
        return
    if sess.state is State.WAITING_FEEDBACK:
        assert isinstance(action, AwaitInput)
        return
    if stopping:
        assert action == Drain()  # a worker told to stop moves the session no further
        return
    assert facts.tools is not None
    policy = facts.tools.policy
    if isinstance(action, RunTool):
        # Never a call in flight (it may have had its effect), never a change before a plan,
        # never arguments its schema refuses, never without the user's yes where one is needed.
        assert sess.task.in_flight != action.call.id
        assert action.tool.side_effect.idempotent or sess.state is not State.PLANNING
        assert action.arguments == json.loads(action.call.arguments)
        assert action.arguments == ARGUMENTS[action.call.name]
        assert action.approved or not policy.needs_approval(action.tool, action.arguments)
    work = pending is not None and pending.name in ("write_file", "run_shell", "read_file")
    if work and pending is not None and sess.task.in_flight == "c":
        assert action == CallInterrupted(pending)  # outcome unknown: never run again
    if isinstance(action, AskApproval):
        assert sess.state is State.EXECUTING  # only executing may wait for an answer
        assert not sess.task.auto_approve
        assert not policy.yes
    if isinstance(action, ControlStep) and action.step.preference is not None:
        asks = policy.needs_approval_to_remember()
        assert not asks or sess.task.auto_approve or sess.task.approval is not None
    if isinstance(action, CallModel | Compact | WindowTooSmall | TurnLimit | NoteInstructions):
        assert pending is None  # every call of the last reply has its result first
    if isinstance(action, CallModel | Compact | WindowTooSmall):
        assert facts.max_turns is not None
        assert facts.turns < facts.max_turns  # the turn limit holds
        assert not facts.instructions  # the model hears of changed instructions first
    if isinstance(action, CallModel):
        assert facts.too_small(sess) is None
        assert facts.split(sess) is None  # a conversation that must be compacted is, first


def test_a_worker_told_to_stop_stops_before_anything_that_moves_the_session() -> None:
    stop = Facts(tools(), stop_when=lambda: True)
    assert next_action(session(State.EXECUTING, reply(A)), stop) == Drain()
    assert next_action(session(State.PLANNING), stop) == Drain()
    question = PendingQuestion(question="q?", tool_call_id="a")
    waiting = session(State.WAITING_FEEDBACK, reply(A), pending_question=question)
    assert next_action(waiting, stop) == AwaitInput(question)
