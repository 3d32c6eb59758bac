"""What the loop does next: a pure function of the loaded session, and the small pure helpers
it needs (which calls are pending, which reply a call belongs to, unique call ids).

The one decision a reader must know: the next action is derived from durable state alone,
never from a flag held in memory, so a process killed anywhere resumes by doing exactly what it
would have done (design.md §4). No I/O, no clock, no store here: unit-tested without HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentctl.domain.checkpoints import ToolDetail
from agentctl.domain.lifecycle import CheckpointKind, State
from agentctl.domain.state import FinishReason, Message, PendingQuestion, Session, ToolCall


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
    # Checkpoints written before task states carried `in_flight` (schema 2) say it by kind.
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


def unique_call_ids(reply: Message, history: tuple[Message, ...], checkpoint: int) -> Message:
    """The reply with every tool call id unique within the session: servers that send none
    (or repeat one) get ids agentctl makes from the checkpoint number, so an approval or a
    result can never attach to another call."""
    seen = {c.id for m in history for c in m.tool_calls}
    calls = []
    for n, c in enumerate(reply.tool_calls):
        if not c.id or c.id in seen:
            c = c.model_copy(update={"id": f"agentctl_{checkpoint}_{n}"})
        seen.add(c.id)
        calls.append(c)
    return reply.model_copy(update={"tool_calls": tuple(calls)})


# -- what to do next: a pure function of the loaded session ------------------------------------


@dataclass(frozen=True)
class Finish:
    """The session is done."""


@dataclass(frozen=True)
class AwaitInput:
    """The session waits for the user's answer (a question or an approval)."""

    question: PendingQuestion | None


@dataclass(frozen=True)
class RunCall:
    """Run (or refuse) the first tool call of the newest reply that has no result yet."""

    call: ToolCall


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


def stall_kind(reply: Message) -> str:
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
class CallModel:
    """Ask the model for its next reply (after fitting the context, within max_turns)."""


Action = Finish | AwaitInput | RunCall | Nudge | AskInText | GiveUpPlanning | NoProgress | CallModel
SAYS_NOTHING = (FinishReason.LENGTH, FinishReason.CONTENT_FILTER)  # replies cut short


def next_action(session: Session) -> Action:
    """The one thing to do next, decided from durable state alone: so a process killed anywhere
    resumes by doing exactly what it would have done."""
    if session.state is State.DONE:
        return Finish()
    if session.state is State.WAITING_FEEDBACK:
        return AwaitInput(session.task.pending_question)
    turn = session.newest_turn  # all of the conversation this looks at
    calls = pending_calls(turn)
    if calls:
        return RunCall(calls[0])
    last = turn[-1]
    if last.role != "assistant" or last.tool_calls:
        return CallModel()
    if len(session.task.stalled) >= STALL_LIMIT:
        return NoProgress(session.task.stalled)
    text = last.content or ""
    if not session.task.nudged or not text.strip() or last.finish in SAYS_NOTHING:
        return Nudge(last)
    if session.state is State.EXECUTING:
        return AskInText(text)
    return GiveUpPlanning(text)
