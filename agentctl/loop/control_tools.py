"""The control tools (submit_plan, complete_step, ask_user, finish, remember): a table of small,
pure handlers.

Each handler turns a call's arguments and the current state into the `Step` the runner
commits: the checkpoint kind, the lifecycle state after it, the new task state and the text the
model gets back. They do no I/O; `remember` names the preference and the runner saves it. A bad
argument raises KeyError, TypeError or ValueError, and an event the lifecycle table does not
allow raises InvalidTransition; the runner returns both to the model as a tool error.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentctl.domain.checkpoints import (
    Detail,
    FinishDetail,
    FollowUpDetail,
    NudgeDetail,
    PlanDetail,
    QuestionDetail,
    RememberDetail,
    StepDetail,
)
from agentctl.domain.lifecycle import CheckpointKind, Event, Outcome, State, transition
from agentctl.domain.session import (
    EarlierGoal,
    FinishReason,
    Message,
    PendingQuestion,
    StepRecord,
    Task,
    ToolCall,
)
from agentctl.errors import InvalidTransition
from agentctl.loop import prompts

# A preference goes into every later system prompt: keep it one short, plain line.
MAX_KEY = 40
MAX_VALUE = 200
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]*")


@dataclass(frozen=True)
class Step:
    """What handling one control call produced: the checkpoint to write."""

    kind: CheckpointKind
    to_state: State
    task: Task
    result: str  # the tool result the model gets ("" when the user answers instead)
    detail: Detail
    preference: tuple[str, str] | None = field(default=None)  # remember: saved by the runner


def preference(args: dict[str, Any]) -> tuple[str, str]:
    """A valid `remember` key and value, or ValueError saying what is wrong."""
    key, value = str(args["key"]).strip(), str(args["value"]).strip()
    if not _KEY.fullmatch(key) or len(key) > MAX_KEY:
        raise ValueError(f"key must be up to {MAX_KEY} letters, digits, spaces, '_', '.' or '-'")
    if len(value) > MAX_VALUE or not value.isprintable():
        raise ValueError(f"value must be one line of up to {MAX_VALUE} printable characters")
    return key, value


def _submit_plan(state: State, task: Task, call: ToolCall, args: dict[str, Any]) -> Step:
    steps = [str(s) for s in args["steps"]]
    if not steps:
        raise ValueError("steps must not be empty")
    detail = PlanDetail(tuple(steps), tool=call.name)
    if state is State.PLANNING:
        task = task.model_copy(update={"plan": tuple(steps)})
        note = prompts.progress_note(task.plan, task.current_step)
        to_state = transition(state, Event.PLAN_READY)
        text = f"Plan accepted ({len(steps)} steps). {note}"
        return Step(CheckpointKind.PLAN_READY, to_state, task, text, detail)
    if state is not State.EXECUTING:
        raise InvalidTransition(state.value, CheckpointKind.PLAN_REVISED.value)
    plan = task.plan[: task.current_step] + tuple(steps)
    task = task.model_copy(update={"plan": plan})
    note = prompts.progress_note(plan, task.current_step)
    return Step(CheckpointKind.PLAN_REVISED, state, task, f"Plan revised. {note}", detail)


def _complete_step(state: State, task: Task, call: ToolCall, args: dict[str, Any]) -> Step:
    to_state = transition(state, Event.STEP_COMPLETE)
    summary = str(args["summary"])
    data = args.get("data") or {}
    if not isinstance(data, dict):
        raise TypeError("data must be an object")
    name = task.plan[task.current_step] if task.current_step < len(task.plan) else "(extra step)"
    task = task.model_copy(
        update={
            "completed": (*task.completed, StepRecord(step=name, summary=summary)),
            "data": {**task.data, **data},
        }
    )
    note = prompts.progress_note(task.plan, task.current_step)
    detail = StepDetail(name, summary, tool=call.name)
    return Step(CheckpointKind.STEP_COMPLETE, to_state, task, f"Step complete. {note}", detail)


def _ask_user(state: State, task: Task, call: ToolCall, args: dict[str, Any]) -> Step:
    question = str(args["question"])
    to_state = transition(state, Event.NEEDS_INPUT)
    pending = PendingQuestion(question=question, tool_call_id=call.id)
    task = task.model_copy(update={"pending_question": pending})
    detail = QuestionDetail(question, tool=call.name)
    return Step(CheckpointKind.NEEDS_INPUT, to_state, task, "", detail)


def _finish(state: State, task: Task, call: ToolCall, args: dict[str, Any]) -> Step:
    result = str(args["result"])
    outcome = Outcome(args.get("outcome") or Outcome.SUCCEEDED.value)
    to_state = transition(state, Event.TASK_COMPLETE)
    task = task.model_copy(update={"outcome": outcome, "result": result})
    detail = FinishDetail(outcome.value, tool=call.name)
    return Step(CheckpointKind.TASK_COMPLETE, to_state, task, "Task complete.", detail)


def _remember(state: State, task: Task, call: ToolCall, args: dict[str, Any]) -> Step:
    key, value = preference(args)
    detail = RememberDetail(key, value, tool=call.name)
    text = f"Remembered {key} = {value}."
    return Step(CheckpointKind.REMEMBER, state, task, text, detail, preference=(key, value))


Handler = Callable[[State, Task, ToolCall, dict[str, Any]], Step]

HANDLERS: dict[str, Handler] = {
    prompts.SUBMIT_PLAN: _submit_plan,
    prompts.COMPLETE_STEP: _complete_step,
    prompts.ASK_USER: _ask_user,
    prompts.FINISH: _finish,
    prompts.REMEMBER: _remember,
}


# -- a follow-up: the user's next instruction to a finished session -------------------------


def follow_up(state: State, task: Task, text: str) -> Step:
    """done → planning: the new instruction becomes the goal; the finished one, with its
    outcome and result, joins `earlier`; plan and progress start afresh. Gathered data, the
    workspace tree and the user's grants stay. `result` is the user message the model reads."""
    to_state = transition(state, Event.FOLLOW_UP)
    finished = EarlierGoal(goal=task.goal, outcome=task.outcome, result=task.result)
    task = task.model_copy(
        update={
            "goal": text,
            "earlier": (*task.earlier, finished),
            "plan": (),
            "completed": (),
            "outcome": None,
            "result": None,
            "pending_question": None,
            "last_error": None,
            "nudged": False,
            "approval": None,
        }
    )
    detail = FollowUpDetail(text)
    return Step(CheckpointKind.FOLLOW_UP, to_state, task, prompts.follow_up_message(text), detail)


# -- replies in text, without a tool call ------------------------------------------------------


def nudge(state: State, task: Task, reply: Message) -> Step:
    """A reply without a tool call: remind the model once (the reminder says why: cut at the
    output limit, filtered, empty, or just text). `result` is the reminder the model reads."""
    if reply.finish is FinishReason.LENGTH:
        text = prompts.NUDGE_CUT
    elif reply.finish is FinishReason.CONTENT_FILTER:
        text = prompts.NUDGE_FILTERED
    elif not (reply.content or "").strip():
        text = prompts.NUDGE_EMPTY
    else:
        text = prompts.NUDGE_PLANNING if state is State.PLANNING else prompts.NUDGE
    detail = NudgeDetail(reply.finish_reason or "text")
    return Step(CheckpointKind.NUDGE, state, task.model_copy(update={"nudged": True}), text, detail)


def ask_in_text(state: State, task: Task, question: str) -> Step:
    """A second text reply after a nudge is a question for the user."""
    pending = PendingQuestion(question=question, tool_call_id=None)
    task = task.model_copy(update={"nudged": False, "pending_question": pending})
    to_state = transition(state, Event.NEEDS_INPUT)
    return Step(CheckpointKind.NEEDS_INPUT, to_state, task, "", QuestionDetail(question))
