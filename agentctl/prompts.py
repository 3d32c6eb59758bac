"""The agent protocol's words: system prompt, nudges and the control tools' schemas (pure).

Control tools drive the lifecycle (submit_plan → plan_ready, complete_step → step_complete,
ask_user → needs_input, finish → task_complete) and user state (remember). Their behaviour is in
the runner; only their shape is here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

SUBMIT_PLAN = "submit_plan"
COMPLETE_STEP = "complete_step"
ASK_USER = "ask_user"
FINISH = "finish"
REMEMBER = "remember"


def _function(
    name: str, description: str, properties: dict[str, Any], required: list[str]
) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            },
        },
    }


CONTROL_TOOLS: list[dict[str, Any]] = [
    _function(
        SUBMIT_PLAN,
        "Submit the plan: the ordered steps that will achieve the goal. While executing, call it "
        "again to replace the steps not yet completed.",
        {"steps": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
        ["steps"],
    ),
    _function(
        COMPLETE_STEP,
        "Mark the current step of the plan as done, with a short summary of what was achieved. "
        "`data` holds facts worth keeping for later steps.",
        {"summary": {"type": "string"}, "data": {"type": "object"}},
        ["summary"],
    ),
    _function(
        ASK_USER,
        "Ask the user a question and wait for the answer. Use it when you cannot go on without "
        "information only the user has.",
        {"question": {"type": "string"}},
        ["question"],
    ),
    _function(
        FINISH,
        "Finish the task with its result. outcome is 'succeeded' unless the task cannot be done.",
        {
            "result": {"type": "string"},
            "outcome": {"type": "string", "enum": ["succeeded", "failed"]},
        },
        ["result"],
    ),
    _function(
        REMEMBER,
        "Remember a user preference or fact across sessions (for example airline = Delta).",
        {"key": {"type": "string"}, "value": {"type": "string"}},
        ["key", "value"],
    ),
]

CONTROL_TOOL_NAMES = frozenset(t["function"]["name"] for t in CONTROL_TOOLS)

NUDGE = (
    "Please continue by calling one of the tools: complete_step when the current step is done, "
    "ask_user if you need information from the user, finish when the task is complete."
)
NUDGE_PLANNING = "Please call submit_plan with the ordered steps of your plan."


def system_prompt(
    preferences: Mapping[str, str], instructions: str | None, work_tools: Sequence[str]
) -> str:
    lines = [
        "You are agentctl, an agent that works on a task in a user's terminal.",
        "First call submit_plan with a short ordered plan. Then work through it one step at a "
        "time: use the work tools, call complete_step when a step is done, ask_user when only the "
        "user can answer, and finish with the result when the goal is reached.",
        "Use remember to save a preference the user states for future sessions.",
    ]
    if work_tools:
        lines.append("Work tools: " + ", ".join(sorted(work_tools)) + ".")
    if preferences:
        known = "; ".join(f"{k} = {v}" for k, v in sorted(preferences.items()))
        lines.append(f"What you know about the user: {known}.")
    if instructions:
        lines.append(instructions.strip())
    return "\n\n".join(lines)


def goal_message(goal: str) -> str:
    return f"Goal: {goal}"


def progress_note(plan: Sequence[str], done: int) -> str:
    """The tool result that tells the model where it stands in the plan."""
    if done >= len(plan):
        return "All planned steps are complete. Call finish with the result."
    return f"Now step {done + 1} of {len(plan)}: {plan[done]}"
