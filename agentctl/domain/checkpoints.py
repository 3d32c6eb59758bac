"""What each kind of checkpoint records beside the state: one typed record per kind.

A checkpoint's detail is stored as a small JSON object (the same on every backend, readable
with `jq`, and what `history` shows without decoding anything else). The code writes and
decides on the typed form: `parse(kind, raw)` reads a stored object as the record of its kind
(a store is hostile input: a field of the wrong type reads as absent, unknown fields are
ignored) and `payload(detail)` is the stored form (fields that are None are left out, as older
versions wrote them). Plain dataclasses, not pydantic: `history` reads thousands.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any

from agentctl.domain.lifecycle import CheckpointKind


@dataclass(frozen=True)
class NoDetail:
    """new_task: the task spec is in the session's info."""


@dataclass(frozen=True)
class PlanDetail:
    """plan_ready, plan_revised: the steps the model submitted."""

    steps: tuple[str, ...] = ()
    tool: str | None = None


@dataclass(frozen=True)
class StepDetail:
    """step_complete."""

    step: str = ""
    summary: str = ""
    tool: str | None = None


@dataclass(frozen=True)
class QuestionDetail:
    """needs_input: a question for the user; `approval` names the tool whose call waits for a
    yes (None: a question the model asked)."""

    question: str = ""
    approval: str | None = None
    tool: str | None = None


@dataclass(frozen=True)
class InputDetail:
    """input_received: the user's answer (`approved`: the answer to an approval question;
    `granted`: it was `a`, so the tool, or this exact command, runs unasked from here on)."""

    input: str = ""
    approved: bool | None = None
    granted: str | None = None  # what an `a` allows: "run_shell: pytest -q", "write_file"


@dataclass(frozen=True)
class FollowUpDetail:
    """follow_up: the user's new instruction to a finished session (done → planning)."""

    input: str = ""


@dataclass(frozen=True)
class ApprovalModeDetail:
    """approval_mode: whether write and shell calls are asked from here on (resume --yes/--ask)."""

    auto_approve: bool = False


@dataclass(frozen=True)
class McpToolsDetail:
    """mcp_tools: what changed in the MCP tools offered, since the session last ran."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    down: tuple[str, ...] = ()  # optional servers that did not come up (their tools left out)


@dataclass(frozen=True)
class InstructionsDetail:
    """instructions: a project-instructions file changed since the session last read it."""

    path: str = ""
    chars: int = 0
    removed: bool | None = None


@dataclass(frozen=True)
class FinishDetail:
    """task_complete."""

    outcome: str = ""
    tool: str | None = None


@dataclass(frozen=True)
class RememberDetail:
    """remember: a preference that outlives the session (a rollback cannot take it back)."""

    key: str = ""
    value: str = ""
    tool: str | None = None


@dataclass(frozen=True)
class ReplyDetail:
    """model_reply: the tools the reply calls."""

    tools: tuple[str, ...] = ()


@dataclass(frozen=True)
class NudgeDetail:
    """nudge: why the model was reminded to call a tool ("text", "length"...)."""

    reason: str | None = None


@dataclass(frozen=True)
class ToolDetail:
    """tool_started, tool_result: the call; `command` is what a rollback cannot undo."""

    tool: str = ""
    tool_call_id: str | None = None
    side_effect: str | None = None
    command: str | None = None
    error: bool | None = None  # results only
    message: str | None = None  # the first line of an error
    files: int | None = None  # workspace files the call changed (a side effect's result)
    not_captured: tuple[str, ...] | None = None  # files over the snapshot size cap
    # Side effects: whether the tool said all of them land in the workspace (tools.Effects),
    # so a rollback undoes them; commands: the sandbox they ran in and whether it had network.
    # None: recorded before agentctl knew (then a command is taken to reach outside).
    confined: bool | None = None
    sandbox: str | None = None
    network: bool | None = None
    structured: str | None = None  # results: an MCP tool's structuredContent, as JSON


@dataclass(frozen=True)
class ErrorDetail:
    """error: a model, tool or context error; the state stays where it was."""

    error: str = ""


@dataclass(frozen=True)
class CompactionDetail:
    """context_compacted: how the conversation was made to fit."""

    strategy: str = "drop"
    dropped: int = 0
    kept: int = 0
    tokens_before: int = 0
    tokens_after: int = 0


@dataclass(frozen=True)
class RollbackDetail:
    """rollback: the checkpoint returned to, and the head it left."""

    to: int | None = None
    from_: int | None = None  # stored as "from"
    files: int | None = None  # workspace files restored (None: the conversation only)
    before: str | None = None  # the workspace's tree just before, captured so it can be undone
    files_only: bool | None = None  # the workspace went back, the conversation stayed


@dataclass(frozen=True)
class MovedDetail:
    """moved: where the session went (the store URL, its password masked)."""

    to: str = ""


@dataclass(frozen=True)
class CopiedDetail:
    """A detail copied from another store (import, move): kept exactly as it was stored."""

    stored: dict[str, Any]


Detail = (
    NoDetail
    | PlanDetail
    | StepDetail
    | QuestionDetail
    | InputDetail
    | FinishDetail
    | FollowUpDetail
    | ApprovalModeDetail
    | InstructionsDetail
    | McpToolsDetail
    | RememberDetail
    | ReplyDetail
    | NudgeDetail
    | ToolDetail
    | ErrorDetail
    | CompactionDetail
    | RollbackDetail
    | MovedDetail
    | CopiedDetail
)

K = CheckpointKind
KINDS: dict[CheckpointKind, type[Detail]] = {
    K.NEW_TASK: NoDetail,
    K.PLAN_READY: PlanDetail,
    K.PLAN_REVISED: PlanDetail,
    K.STEP_COMPLETE: StepDetail,
    K.NEEDS_INPUT: QuestionDetail,
    K.INPUT_RECEIVED: InputDetail,
    K.TASK_COMPLETE: FinishDetail,
    K.FOLLOW_UP: FollowUpDetail,
    K.APPROVAL_MODE: ApprovalModeDetail,
    K.INSTRUCTIONS: InstructionsDetail,
    K.MCP_TOOLS: McpToolsDetail,
    K.REMEMBER: RememberDetail,
    K.MODEL_REPLY: ReplyDetail,
    K.NUDGE: NudgeDetail,
    K.TOOL_STARTED: ToolDetail,
    K.TOOL_RESULT: ToolDetail,
    K.ERROR: ErrorDetail,
    K.CONTEXT_COMPACTED: CompactionDetail,
    K.ROLLBACK: RollbackDetail,
    K.MOVED: MovedDetail,
}


def _stored_name(name: str) -> str:
    return name.rstrip("_")  # from_ -> "from": a Python keyword


def payload(detail: Detail) -> dict[str, Any]:
    """The stored form: a JSON object without the fields that are None."""
    if isinstance(detail, CopiedDetail):
        return dict(detail.stored)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(detail):
        value = getattr(detail, f.name)
        if value is not None:
            out[_stored_name(f.name)] = list(value) if isinstance(value, tuple) else value
    return out


def parse(kind: str, raw: dict[str, Any]) -> Detail:
    """The typed record of a stored detail (a kind this agentctl does not know: NoDetail)."""
    cls = KINDS.get(CheckpointKind(kind)) if kind in _KIND_VALUES else None
    if cls is None:
        return NoDetail()
    values: dict[str, Any] = {}
    for name, accepts in _fields(cls):
        value = raw.get(_stored_name(name))
        if accepts(value):
            values[name] = tuple(value) if isinstance(value, list) else value
    return cls(**values)


_KIND_VALUES = frozenset(k.value for k in CheckpointKind)


_FIELDS: dict[type[Detail], tuple[tuple[str, typing.Callable[[Any], bool]], ...]] = {}


def _fields(cls: type[Detail]) -> tuple[tuple[str, typing.Callable[[Any], bool]], ...]:
    """Each field's name and a check of its type, worked out once per class."""
    if cls not in _FIELDS:
        hints = typing.get_type_hints(cls)
        _FIELDS[cls] = tuple((f.name, _accepts(hints[f.name])) for f in dataclasses.fields(cls))
    return _FIELDS[cls]


def _accepts(hint: Any) -> typing.Callable[[Any], bool]:
    """A check that a JSON value fits a field's type (bool is not an int here)."""
    if isinstance(hint, types.UnionType):
        checks = [_accepts(arg) for arg in typing.get_args(hint) if arg is not type(None)]
        return lambda v: v is not None and any(check(v) for check in checks)
    if typing.get_origin(hint) is tuple:
        return lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v)
    if hint is int:
        return lambda v: isinstance(v, int) and not isinstance(v, bool)
    return lambda v: isinstance(v, hint)
