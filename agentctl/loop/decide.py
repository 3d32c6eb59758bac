"""What the loop does next: one value, decided by a pure function of the loaded session and
the facts of the run, and the small pure helpers it needs (which calls are pending, which reply
a call belongs to, unique call ids).

The one decision a reader must know: the next action is derived from durable state (and what
this run was given: its tools, its limit, a follow-up), never from a flag held in memory, so a
process killed anywhere resumes by doing exactly what it would have done (design.md §4). Every
choice of the turn is made here: the end, a question, a worker's stop, a nudge, the turn limit,
the changed project instructions, a window too small, compaction, a model call; for a tool
call, a refusal (arguments that are not JSON or break the schema, an unknown tool, a write
before a plan), a call in flight (never run twice), an approval to ask for, a control step or
a tool to run. The runner only carries the action out. No writes, no model, no clock, no store
here: unit- and property-tested without HTTP (the tools are asked about themselves; an approval
rule may look at the workspace to see where a path leads).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from agentctl.domain.checkpoints import ToolDetail
from agentctl.domain.lifecycle import CheckpointKind, Event, State, transition
from agentctl.domain.session import (
    FinishReason,
    Message,
    PendingQuestion,
    Session,
    ToolCall,
    sendable_name,
    valid_value,
)
from agentctl.errors import InvalidTransition
from agentctl.loop import control_tools, prompts
from agentctl.tools import (
    NO_SUBJECT,
    Subject,
    Tool,
    ToolRegistry,
    approval,
    approval_subject,
)
from agentctl.tools.schema import check_arguments


def pending_calls(messages: tuple[Message, ...]) -> list[ToolCall]:
    """Tool calls of the newest assistant message that have no result yet, in order."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == "assistant":
            answered = {m.tool_call_id for m in messages[index + 1 :] if m.role == "tool"}
            return [c for c in messages[index].tool_calls if c.id not in answered]
    return []


def in_flight(session: Session, call: ToolCall) -> bool:
    if session.task.in_flight == call.id:
        return True
    # Checkpoints written before task records carried `in_flight` (schema 2) say it by kind.
    head = session.checkpoint
    detail = head.typed_detail()
    return (
        isinstance(detail, ToolDetail)
        and head.kind == CheckpointKind.TOOL_STARTED
        and (detail.tool_call_id == call.id)
    )


def reply_of(messages: tuple[Message, ...], call: ToolCall) -> Message:
    """The assistant message a pending call belongs to (the newest one)."""
    return next(m for m in reversed(messages) if m.role == "assistant" and call in m.tool_calls)


def unique_call_ids(reply: Message, taken: AbstractSet[str], checkpoint: int) -> Message:
    """The reply with every tool call id unique within the session (`taken`: the ids its
    conversation holds, CallIds): servers that send none (or repeat one) get ids agentctl
    makes from the checkpoint number, so an approval or a result can never attach to another
    call."""
    seen: set[str] = set()
    calls = []
    for n, c in enumerate(reply.tool_calls):
        if not c.id or c.id in taken or c.id in seen:
            # A model may have sent an id of this form itself (in this reply or an earlier
            # one): the made one is checked too, and a suffix added until it is free.
            made, again = f"agentctl_{checkpoint}_{n}", 0
            while made in taken or made in seen:
                again += 1
                made = f"agentctl_{checkpoint}_{n}_{again}"
            c = c.model_copy(update={"id": made})
        seen.add(c.id)
        calls.append(c)
    return reply.model_copy(update={"tool_calls": tuple(calls)})


class CallIds:
    """The tool call ids a conversation holds, kept as it grows: a run asks at every reply,
    and collecting them from the whole conversation each time made a turn cost more the
    longer the session (0.14 ms at 400 messages). A conversation that is not the last one
    grown (a compaction) is collected again."""

    def __init__(self) -> None:
        self._messages: tuple[Message, ...] = ()
        self._ids: set[str] = set()

    def of(self, messages: tuple[Message, ...]) -> AbstractSet[str]:
        known = len(self._messages)
        # The same objects compare by identity first: a pointer per message.
        if messages[:known] != self._messages:
            known, self._ids = 0, set()
        for message in messages[known:]:
            self._ids.update(c.id for c in message.tool_calls)
        self._messages = messages
        return self._ids


# -- what to do next: a pure function of the loaded session and the run's facts ---------------


def _never(_session: Session) -> Any:
    return None


@dataclass(frozen=True)
class Facts:
    """What the loop knows beside the session: the tools (and their approval policy), the
    model calls this run made and may make, what waits to be said (a follow-up for a session
    that is done, changed project instructions), two questions about the context window,
    asked only when the model would be called next (`too_small`: why the window cannot hold
    the part compaction keeps; `split`: where to compact), and whether a worker was told to
    stop."""

    tools: ToolRegistry | None = None
    turns: int = 0
    max_turns: int | None = None
    follow_up: str | None = None
    instructions: bool = False
    too_small: Callable[[Session], str | None] = field(default=_never, compare=False)
    split: Callable[[Session], int | None] = field(default=_never, compare=False)
    # A worker told to stop (SIGTERM): asked before each action that moves the session.
    stop_when: Callable[[], bool] = field(default=lambda: False, compare=False)


@dataclass(frozen=True)
class Finish:
    """The session is done."""


@dataclass(frozen=True)
class FollowUp:
    """The session is done and the user gave its next instruction: done → planning."""

    text: str


@dataclass(frozen=True)
class Drain:
    """A worker was told to stop: stop here, between two checkpoints; the session stays
    runnable."""


@dataclass(frozen=True)
class AwaitInput:
    """The session waits for the user's answer (a question or an approval)."""

    question: PendingQuestion | None


@dataclass(frozen=True)
class RefuseCall:
    """The call does not run; the model reads why (a tool error)."""

    call: ToolCall
    text: str


@dataclass(frozen=True)
class CallInterrupted:
    """The call started and has no result (a crash, or a rollback to it): its outcome is
    unknown and it never runs again."""

    call: ToolCall


@dataclass(frozen=True)
class AskApproval:
    """The call needs the user's yes: the session waits, the question put exactly."""

    call: ToolCall
    question: str


@dataclass(frozen=True)
class ControlStep:
    """A control tool's step (control_tools.py), to commit; `remember` saves its preference."""

    call: ToolCall
    step: control_tools.Step


@dataclass(frozen=True)
class RunTool:
    """Run a work tool: its arguments fit its schema and it may run (approved, or it needs no
    approval)."""

    call: ToolCall
    tool: Tool = field(compare=False)
    arguments: dict[str, Any]
    approved: bool  # a person said yes to this call (or a grant of theirs covers it)


@dataclass(frozen=True)
class Nudge:
    """The model replied without a tool call: remind it (once; every time for an empty or
    cut reply, which says nothing)."""

    reply: Message


@dataclass(frozen=True)
class AskInText:
    """A second text reply in a row while executing: the model is asking the user."""

    question: str


@dataclass(frozen=True)
class GiveUpPlanning:
    """A second text reply in a row while planning: stop and say so; resume tries again."""

    text: str

    @property
    def message(self) -> str:
        return (
            "the model answered in text instead of submitting a plan, twice: "
            f"{self.text[:200]!r}; resume to try again, or rephrase the goal"
        )


STALL_LIMIT = 3  # replies in a row without a tool call (cut, empty or text) before a stop
_STALLS = {
    "cut": "cut at the output limit",
    "filtered": "stopped by the content filter",
    "empty": "empty",
    "text": "text without a tool call",
}


def stall_reason(reply: Message) -> str:
    """What a reply without a tool call was: a key of _STALLS."""
    if reply.finish is FinishReason.LENGTH:
        return "cut"
    if reply.finish is FinishReason.CONTENT_FILTER:
        return "filtered"
    return "text" if (reply.content or "").strip() else "empty"


@dataclass(frozen=True)
class NoProgress:
    """STALL_LIMIT replies in a row without a tool call: stop and say what the model did (a
    small model that hits its output limit every time, or a server that sends nothing, would
    otherwise be nudged until max_turns). A resume gives it STALL_LIMIT more."""

    stalled: tuple[str, ...]

    @property
    def message(self) -> str:
        kinds = [k for k in _STALLS if k in self.stalled]
        said = ", ".join(f"{self.stalled.count(k)} {_STALLS[k]}" for k in kinds)
        return (
            f"the model made no progress in {len(self.stalled)} replies in a row ({said}); "
            "try a larger model or context window (a reply may take a quarter of it), or "
            f"resume to give it {STALL_LIMIT} more tries"
        )


@dataclass(frozen=True)
class NoteInstructions:
    """The project's instructions changed: tell the model before its next call (every call of
    the last reply has its result, so a note may go into the conversation here)."""


@dataclass(frozen=True)
class TurnLimit:
    """This run made `max_turns` model calls: stop; a resume continues."""

    turns: int

    @property
    def message(self) -> str:
        return f"stopped after {self.turns} model calls (max_turns); resume to continue"


@dataclass(frozen=True)
class WindowTooSmall:
    """The conversation does not fit and the part compaction keeps leaves no room: stop."""

    problem: str


@dataclass(frozen=True)
class Compact:
    """Replace the turns before `split` by a note before the next model call."""

    split: int


@dataclass(frozen=True)
class CallModel:
    """Ask the model for its next reply."""


Action = (
    Finish
    | FollowUp
    | Drain
    | AwaitInput
    | RefuseCall
    | CallInterrupted
    | AskApproval
    | ControlStep
    | RunTool
    | Nudge
    | AskInText
    | GiveUpPlanning
    | NoProgress
    | NoteInstructions
    | TurnLimit
    | WindowTooSmall
    | Compact
    | CallModel
)
SAYS_NOTHING = (FinishReason.LENGTH, FinishReason.CONTENT_FILTER)  # replies cut short
NO_FACTS = Facts()


def next_action(session: Session, facts: Facts = NO_FACTS) -> Action:
    """The one thing to do next, decided from durable state and the run's facts alone: so a
    process killed anywhere resumes by doing exactly what it would have done."""
    if session.state is State.DONE:
        return Finish() if facts.follow_up is None else FollowUp(facts.follow_up)
    if session.state is State.WAITING_FEEDBACK:
        return AwaitInput(session.task.pending_question)
    if facts.stop_when():
        return Drain()
    turn = session.newest_turn  # all of the conversation this looks at
    calls = pending_calls(turn)
    if calls:
        return call_action(session, calls[0], facts.tools)
    last = turn[-1]
    if last.role != "assistant" or last.tool_calls:
        return _before_model_call(session, facts)
    if len(session.task.stalled) >= STALL_LIMIT:
        return NoProgress(session.task.stalled)
    text = last.content or ""
    if not session.task.nudged or not text.strip() or last.finish in SAYS_NOTHING:
        return Nudge(last)
    if session.state is State.EXECUTING:
        return AskInText(text)
    return GiveUpPlanning(text)


def _before_model_call(session: Session, facts: Facts) -> Action:
    if facts.instructions:
        return NoteInstructions()
    if facts.max_turns is not None and facts.turns >= facts.max_turns:
        return TurnLimit(facts.turns)
    if (problem := facts.too_small(session)) is not None:
        return WindowTooSmall(problem)
    if (split := facts.split(session)) is not None:
        return Compact(split)
    return CallModel()


# The control tools' argument schemas, checked as every work tool's are (tools/schema.py).
_CONTROL_PARAMETERS: dict[str, dict[str, Any]] = {
    t.name: t.parameters for t in prompts.CONTROL_TOOLS
}


def call_action(session: Session, call: ToolCall, tools: ToolRegistry | None) -> Action:
    """What becomes of the first pending call: refused (and why), outcome-unknown, asked
    about, a control step, or run."""
    try:
        arguments = valid_value(json.loads(call.arguments or "{}"))  # `\ud800` escapes
        if not isinstance(arguments, dict):
            raise ValueError("arguments must be a JSON object")
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep to parse
        if reply_of(session.newest_turn, call).finish is FinishReason.LENGTH:
            return RefuseCall(
                call,
                "your reply was cut off at the output limit, so these arguments are "
                "incomplete; call the tool again with shorter arguments",
            )
        return RefuseCall(call, f"arguments are not valid JSON: {exc}")
    if call.name in control_tools.HANDLERS:
        return _control_action(session, call, arguments, tools)
    tool = tools.get(call.name) if tools is not None else None
    if in_flight(session, call):
        # It started and we have no result: after a crash, or a rollback to this point, the
        # effect may or may not have happened. Never run it again.
        return CallInterrupted(call)
    if tool is None:
        return RefuseCall(call, _unknown(session, call, tools))
    if not tool.side_effect.idempotent and session.state is State.PLANNING:
        # One rule whatever the approval mode: nothing changes before there is a plan.
        return RefuseCall(call, f"{call.name} may run once a plan is submitted")
    if (problem := check_arguments(tool.parameters, arguments)) is not None:
        # Before anyone is asked and before it runs: the model hears which argument.
        return RefuseCall(call, f"bad arguments for {call.name}: {problem}")
    assert tools is not None
    approved = approved_by_user(session, call, tools.policy, approval_subject(tool, arguments))
    if not approved and tools.policy.needs_approval(tool, arguments):
        if isinstance(tool, approval.Checked) and (failure := tool.known_failure(arguments)):
            # Nothing to ask about: the call would fail. The model hears why at once.
            return RefuseCall(call, failure)
        return _ask(session, call, approval.question(tool, arguments))
    return RunTool(call, tool, arguments, approved)


def _control_action(
    session: Session, call: ToolCall, arguments: dict[str, Any], tools: ToolRegistry | None
) -> Action:
    if (problem := check_arguments(_CONTROL_PARAMETERS[call.name], arguments)) is not None:
        return RefuseCall(call, f"bad arguments for {call.name}: {problem}")
    try:
        step = control_tools.HANDLERS[call.name](session.state, session.task, call, arguments)
    except InvalidTransition as exc:
        return RefuseCall(call, f"{call.name} is not allowed while {exc.state}")
    except (KeyError, TypeError, ValueError) as exc:
        return RefuseCall(call, f"bad arguments for {call.name}: {exc}")
    policy = tools.policy if tools is not None else approval.ApprovalPolicy()
    wanted = step.preference  # a preference outlives the session: the user sees it first
    asks = policy.needs_approval_to_remember() and not approved_by_user(session, call, policy)
    if wanted is not None and asks:
        return _ask(session, call, approval.remember_question(*wanted))
    return ControlStep(call, step)


def _ask(session: Session, call: ToolCall, question: str) -> Action:
    try:
        transition(session.state, Event.NEEDS_INPUT)
    except InvalidTransition:
        return RefuseCall(call, f"{call.name} needs the user's approval; submit a plan first")
    return AskApproval(call, question)


def _unknown(session: Session, call: ToolCall, tools: ToolRegistry | None) -> str:
    from agentctl.tools.mcp_tools import not_offered

    gone = not_offered(session.task.mcp, call.name)
    if gone is not None:
        return gone
    names = set(tools.names) if tools is not None else set()
    known = ", ".join(sorted(prompts.CONTROL_TOOL_NAMES | names))
    sent = sendable_name(call.name)
    if sent != call.name:  # the API takes no such name: the model sees `sent`
        said = "had no name" if not call.name else f"had the malformed name {call.name!r}"
        return f"your tool call {said} (shown as {sent}); tools: {known}"
    return f"unknown tool {call.name!r}; tools: {known}"


def approved_by_user(
    session: Session, call: ToolCall, policy: approval.ApprovalPolicy, subject: Subject = NO_SUBJECT
) -> bool:
    """The user allowed this call: once (y), by a grant of this session (a), or by the
    session's approval mode (--yes). A yes or a grant recorded before this user took the
    session (trust.py: an import, another user's store) does not count."""
    task = session.task
    head = session.checkpoint.id
    granted = task.approval  # recorded by the answer, the checkpoint after the question
    if (
        granted is not None
        and granted.call_id == call.id
        and policy.counts(granted.asked_at + 1, head)
    ):
        return True
    if task.auto_approve:  # reset to asking when a session from elsewhere is taken
        return True
    grants = [g for g in task.grants if policy.counts(g.at, head)]
    return approval.granted(grants, session.info.id, call.name, subject) is not None
