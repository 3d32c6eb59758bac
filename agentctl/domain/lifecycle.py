"""The session lifecycle: states, events and the one transition table (pure, no I/O).

The runner asks `transition(state, event)` before it acts; anything the table does not declare
raises `InvalidTransition`. Errors do not have a state of their own: a failed call leaves the
session where it was (design.md §2).
"""

from __future__ import annotations

from enum import StrEnum

from agentctl.errors import InvalidTransition


class State(StrEnum):
    IDLE = "idle"
    PLANNING = "planning"
    EXECUTING = "executing"
    WAITING_FEEDBACK = "waiting_feedback"
    DONE = "done"


class Event(StrEnum):
    NEW_TASK = "new_task"
    PLAN_READY = "plan_ready"
    STEP_COMPLETE = "step_complete"
    NEEDS_INPUT = "needs_input"
    INPUT_RECEIVED = "input_received"
    TASK_COMPLETE = "task_complete"
    FOLLOW_UP = "follow_up"  # a new instruction on a finished session


class CheckpointKind(StrEnum):
    """What a checkpoint records: every kind a store holds. The lifecycle events are kinds
    too, with the same values; the others leave the lifecycle state as it is."""

    # lifecycle events (Event)
    NEW_TASK = "new_task"
    PLAN_READY = "plan_ready"
    STEP_COMPLETE = "step_complete"
    NEEDS_INPUT = "needs_input"
    INPUT_RECEIVED = "input_received"
    TASK_COMPLETE = "task_complete"
    FOLLOW_UP = "follow_up"
    # the loop's own
    MODEL_REPLY = "model_reply"
    NUDGE = "nudge"
    PLAN_REVISED = "plan_revised"
    REMEMBER = "remember"
    TOOL_STARTED = "tool_started"
    TOOL_RESULT = "tool_result"
    ERROR = "error"
    CONTEXT_COMPACTED = "context_compacted"
    ROLLBACK = "rollback"
    MOVED = "moved"  # the session was moved to another store: this copy is read-only
    APPROVAL_MODE = "approval_mode"  # resume --yes / --ask changed whether calls are asked
    INSTRUCTIONS = "instructions"  # the project's instructions file changed: the new text
    MCP_TOOLS = "mcp_tools"  # the MCP servers' tools changed since the session last ran

    @property
    def event(self) -> Event | None:
        """The lifecycle event this kind is, if it is one."""
        return Event(self.value) if self.value in _EVENT_VALUES else None


_EVENT_VALUES = frozenset(e.value for e in Event)


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.IDLE, Event.NEW_TASK): State.PLANNING,
    (State.PLANNING, Event.PLAN_READY): State.EXECUTING,
    (State.EXECUTING, Event.STEP_COMPLETE): State.EXECUTING,
    (State.EXECUTING, Event.NEEDS_INPUT): State.WAITING_FEEDBACK,
    (State.WAITING_FEEDBACK, Event.INPUT_RECEIVED): State.EXECUTING,
    (State.EXECUTING, Event.TASK_COMPLETE): State.DONE,
    # A follow-up: the same session takes a new instruction, its conversation kept; a
    # rollback to before it is back at done.
    (State.DONE, Event.FOLLOW_UP): State.PLANNING,
}


def transition(state: State, event: Event) -> State:
    """The state after `event` in `state`, or InvalidTransition naming both."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransition(state.value, event.value) from None


def allowed_events(state: State) -> list[Event]:
    return [event for (source, event) in TRANSITIONS if source is state]


def is_final(state: State) -> bool:
    """A state the loop stops in for good: done, which only a follow-up leaves."""
    return allowed_events(state) in ([], [Event.FOLLOW_UP])
