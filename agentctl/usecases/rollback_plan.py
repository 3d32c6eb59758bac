"""Time travel: rollback targets, the rollback checkpoint, and what a rollback cannot undo.

A rollback never rewrites history: it appends a `rollback` checkpoint whose parent is the
target, so the session's history is a tree and the abandoned branch stays addressable (rolling
back to one of its checkpoints undoes the rollback). What travels back is the target's task
state with two exceptions that keep side effects safe: an approval is never carried (the user
is asked again; it covered one call, once), and a call that was in flight at the target stays
outcome-unknown. Preferences remembered and calls that may have reached outside the workspace on
the abandoned branch are reported: the profile and the world outside are not rewound. A call
whose tool said its effects were confined (a file write; a command sandboxed without network)
is not reported: the workspace restore undid all of it.

Everything but `plan_rollback`/`commit_rollback` is pure over checkpoint summaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from agentctl.domain.checkpoints import RememberDetail, RollbackDetail, ToolDetail
from agentctl.domain.lifecycle import CheckpointKind, State
from agentctl.domain.records import RollbackReport
from agentctl.errors import RollbackTargetError
from agentctl.store.base import ancestors

if TYPE_CHECKING:
    from agentctl.domain.session import Task, Usage
    from agentctl.store.base import CheckpointDraft, CheckpointSummary, Store


@dataclass(frozen=True)
class RollbackPlan:
    session_id: str
    head: CheckpointSummary
    target: CheckpointSummary
    abandoned: list[CheckpointSummary]  # on the head's path, not on the target's


def effective(history: list[CheckpointSummary], c: CheckpointSummary) -> CheckpointSummary:
    """A rollback checkpoint stands for the checkpoint it returned to."""
    for _ in range(len(history)):  # bounded: a damaged parent chain cannot loop for ever
        if (
            c.kind != CheckpointKind.ROLLBACK
            or c.parent is None
            or not 1 <= c.parent <= len(history)
        ):
            return c
        c = history[c.parent - 1]
    return c


def resolve_target(
    session_id: str, history: list[CheckpointSummary], *, to: int | None, steps: int | None
) -> CheckpointSummary:
    """The checkpoint `--to N` or `--steps N` names, or RollbackTargetError saying why not."""
    if to is not None:
        if not 1 <= to <= len(history):
            raise RollbackTargetError(
                f"session {session_id} has checkpoints 1 to {len(history)}; there is no {to}",
                hint=f"agentctl history {session_id}",
            )
        target = effective(history, history[to - 1])
    else:
        assert steps is not None
        if steps < 1:
            raise RollbackTargetError("--steps must be 1 or more")
        target = effective(history, history[-1])
        for taken in range(steps):
            if target.parent is None:
                raise RollbackTargetError(
                    f"session {session_id} is only {taken} steps from its first checkpoint; "
                    f"cannot go back {steps}",
                    hint=f"agentctl history {session_id}",
                )
            target = effective(history, history[target.parent - 1])
    if target.id == effective(history, history[-1]).id:
        raise RollbackTargetError(f"session {session_id} already stands on checkpoint {target.id}")
    return target


def abandoned(
    history: list[CheckpointSummary], head: CheckpointSummary, target: CheckpointSummary
) -> list[CheckpointSummary]:
    keep = set(ancestors(history, target))
    return [history[i - 1] for i in reversed(ancestors(history, head)) if i not in keep]


@dataclass(frozen=True)
class WorkspaceMove:
    """What a rollback does to the workspace: the tree it leaves the session on."""

    tree: str
    files: int | None = None  # files restored (None: the conversation only)
    before: str | None = None  # the workspace just before, captured
    files_only: bool = False  # the conversation stays at the head


def rollback_draft(
    head: CheckpointSummary,
    target: CheckpointSummary,
    task: Task,
    usage: Usage,
    now: str,
    workspace: WorkspaceMove | None = None,
) -> CheckpointDraft:
    """The `rollback` checkpoint: the target's task record without an approval, and with a
    call in flight at the target still in flight (so never re-run); the usage of the head
    (what was spent stays spent). With --files-only its parent is the head (the conversation
    stays) and only the workspace tree changes."""
    from agentctl.store.base import CheckpointDraft

    in_flight = task.in_flight
    if (
        target.kind == CheckpointKind.TOOL_STARTED
    ):  # also for checkpoints written before `in_flight`
        detail = target.typed_detail()
        if isinstance(detail, ToolDetail) and detail.tool_call_id:
            in_flight = detail.tool_call_id
    update: dict[str, object] = {"approval": None, "in_flight": in_flight}
    rollback = RollbackDetail(target.id, head.id)
    if workspace is not None:
        update["workspace_tree"] = workspace.tree
        rollback = RollbackDetail(
            target.id, head.id, workspace.files, workspace.before, workspace.files_only or None
        )
    parent, to_state = target.id, State(target.to_state)  # the target's path was checked
    if workspace is not None and workspace.files_only:
        parent, to_state, update = (
            head.id,
            _state_or(head.to_state, target.to_state),
            {"workspace_tree": workspace.tree},
        )
    return CheckpointDraft(
        parent=parent,
        kind=CheckpointKind.ROLLBACK,
        from_state=_state_or(head.to_state, target.to_state),
        to_state=to_state,
        created_at=now,
        task=task.model_copy(update=update),
        usage=usage,
        detail=rollback,
    )


def _state_or(text: str, fallback: str) -> State:
    """The state a damaged head claims, when it is one (a rollback is how damage is left)."""
    return State(text) if text in State.__members__.values() else State(fallback)


def plan_rollback(
    store: Store, session_id: str, *, to: int | None, steps: int | None
) -> RollbackPlan:
    from agentctl.errors import StoreError
    from agentctl.usecases.verify import path_problems

    history = store.history(session_id)
    head = history[-1]
    target = resolve_target(session_id, history, to=to, steps=steps)
    # Rolling back is how a user leaves damage behind: only the target's path must be sound.
    problems = path_problems(history, target.id)
    if problems:
        raise StoreError(
            f"session {session_id} is damaged at or before checkpoint {target.id} "
            f"({problems[0]}); nothing was written",
            hint=f"agentctl verify {session_id}",
        )
    return RollbackPlan(session_id, head, target, abandoned(history, head, target))


def commit_rollback(
    store: Store, plan: RollbackPlan, now: str, workspace: WorkspaceMove | None = None
) -> RollbackReport:
    """Append the rollback checkpoint (append's head check refuses it if the head moved)."""
    from agentctl.store import writes

    sid = plan.session_id
    head = store.get_checkpoint(sid, plan.head.id)
    files_only = workspace is not None and workspace.files_only
    task = head.task if files_only else store.get_checkpoint(sid, plan.target.id).task
    draft = rollback_draft(plan.head, plan.target, task, head.usage, now, workspace)
    checkpoint = writes.commit(store, sid, plan.head.id, draft)
    if files_only:  # the conversation did not move: nothing was abandoned
        return RollbackReport(checkpoint, plan.target.id, [], [], [], conversation=False)
    details = [c.typed_detail() for c in plan.abandoned]
    outside = [
        d
        for c, d in zip(plan.abandoned, details, strict=True)
        if c.kind == CheckpointKind.TOOL_STARTED
        and isinstance(d, ToolDetail)
        and may_reach_outside(d)
    ]
    return RollbackReport(
        checkpoint,
        plan.target.id,
        [d.key for d in details if isinstance(d, RememberDetail)],
        [d.command for d in outside if d.command],
        [d.tool for d in outside if not d.command],
    )


def may_reach_outside(started: ToolDetail) -> bool:
    """Whether a started call may have changed things a rollback cannot undo: its tool said
    its effects were not confined to the workspace (a command unsandboxed or with network).
    A record from before tools said so counts a command (exec) as reaching outside."""
    if started.confined is not None:
        return not started.confined
    return started.side_effect == "exec"
