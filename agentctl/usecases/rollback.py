"""Use cases that take a session back: rollback (its workspace files with it) and diff.

The decisions live below: which checkpoint (rollback_plan.py), which tree and whether it is safe
to restore (workspace/restore.py), how files are captured and put back (workspace/snapshots.py).
Here they are put in order under the session's lease.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import TYPE_CHECKING

from agentctl import faults
from agentctl.errors import AgentctlError, UsageError
from agentctl.usecases import wiring
from agentctl.usecases.common import held_lease, opened_store, refuse_if_moved, resolve_session

if TYPE_CHECKING:
    from agentctl.config import Settings
    from agentctl.domain.records import RollbackReport, WorkspaceDiff
    from agentctl.store.base import Store
    from agentctl.usecases.rollback_plan import RollbackPlan
    from agentctl.workspace.restore import FilePlan
    from agentctl.workspace.snapshots import Snapshots


def rollback_session(
    settings: Settings,
    prefix: str,
    *,
    to: int | None,
    steps: int | None,
    files: bool = True,
    conversation: bool = True,
    force: bool = False,
    dry_run: bool = False,
) -> RollbackReport:
    """Roll a session back (a fork: see rollback_plan.py), its workspace files with it (see
    workspace/restore.py), under its lease; a session running elsewhere is busy. Target and
    files are checked before anything is written."""
    from agentctl.usecases import rollback_plan

    if (to is None) == (steps is None):
        raise UsageError("give exactly one of --to CHECKPOINT or --steps N")
    if not (files or conversation):
        raise UsageError("--conversation-only and --files-only exclude each other")
    with opened_store(settings) as store:
        session_id = resolve_session(store, prefix)
        refuse_if_moved(store, session_id)
        plan = rollback_plan.plan_rollback(store, session_id, to=to, steps=steps)
        snapshots = wiring.snapshots(
            settings, store.info(session_id).workspace, lambda _e: None, create=False
        )
        # Under the snapshot store's lock: a session sharing the workspace captures before or
        # after this rollback, never between its capture and its restore.
        lock = snapshots.locked() if snapshots is not None else contextlib.nullcontext()
        if dry_run and files and store.info(session_id).workspace is None:
            mirror = wiring.kept_snapshots(settings, store, session_id)  # a worker's session
            if mirror is not None:
                return _worker_preview(store, mirror, plan)
        if dry_run:
            with lock:
                return _rollback_preview(store, snapshots, plan, files, force)
        with held_lease(store, session_id), lock:
            faults.hit("rollback_started")
            return _rollback(store, snapshots, plan, files, conversation, force)


def _worker_preview(store: Store, mirror: Snapshots, plan: RollbackPlan) -> RollbackReport:
    """rollback --dry-run of a worker's session (its files are on whichever worker runs it
    next, which restores the head's tree then): the files that differ between the head's
    tree and the target's, from the trees kept in the database."""
    from agentctl.domain.records import RollbackReport
    from agentctl.workspace.restore import tree_at

    sid = plan.session_id
    head = store.get_checkpoint(sid, plan.head.id)
    old = tree_at(store, sid, head)
    new = tree_at(store, sid, store.get_checkpoint(sid, plan.target.id))
    known = old is not None and new is not None and mirror.has(old) and mirror.has(new)
    changes = mirror.changes(old, new) if known and old and new else None
    return RollbackReport(
        head,
        plan.target.id,
        [],
        [],
        [],
        files=[(c.status, c.path) for c in changes] if changes is not None else None,
        not_restored=(),
        files_note=None
        if changes is not None
        else "the workspace files: no snapshot names them at that point",
        dry_run=True,
        forward=_forward(store, sid, plan.target.id, plan.head.id),
    )


def _rollback_preview(
    store: Store, snapshots: Snapshots | None, plan: RollbackPlan, files: bool, force: bool
) -> RollbackReport:
    from agentctl.domain.records import RollbackReport
    from agentctl.workspace.restore import plan_files

    sid, head = plan.session_id, store.get_checkpoint(plan.session_id, plan.head.id)
    moved = None
    if files and snapshots is not None:
        target = store.get_checkpoint(sid, plan.target.id)
        moved = plan_files(store, snapshots, sid, head, target, force=force)
    return RollbackReport(
        head,
        plan.target.id,
        [],
        [],
        [],
        files=[(c.status, c.path) for c in moved.changes] if moved else None,
        not_restored=moved.not_captured if moved else (),
        files_note=_files_note(snapshots, files, moved),
        dry_run=True,
        forward=_forward(store, sid, plan.target.id, plan.head.id),
    )


def _rollback(
    store: Store,
    snapshots: Snapshots | None,
    plan: RollbackPlan,
    files: bool,
    conversation: bool,
    force: bool,
) -> RollbackReport:
    from agentctl.usecases import rollback_plan
    from agentctl.workspace.restore import finish_interrupted, plan_files

    sid = plan.session_id
    finish_interrupted(snapshots, store, sid)
    head = store.get_checkpoint(sid, plan.head.id)
    moved, workspace = None, None
    if snapshots is not None:
        if files:
            target = store.get_checkpoint(sid, plan.target.id)
            moved = plan_files(store, snapshots, sid, head, target, force=force)
        if moved is not None:
            workspace = rollback_plan.WorkspaceMove(
                moved.target, len(moved.changes), moved.current, files_only=not conversation
            )
        elif conversation:  # the files stay as they are: the session says so
            try:
                workspace = rollback_plan.WorkspaceMove(snapshots.capture().tree)
            except AgentctlError:  # a damaged snapshot store never holds the conversation back
                workspace = None  # the next restore then sees the files as outside edits
    if not conversation and moved is None:
        raise UsageError(f"session {sid} has no workspace snapshot to restore at that checkpoint")
    if moved is not None and snapshots is not None:
        snapshots.begin_restore(sid, head.id + 1, moved.target)
    report = rollback_plan.commit_rollback(store, plan, wiring.now(), workspace)
    if moved is not None and snapshots is not None:
        faults.hit("restore_started")
        snapshots.restore(moved.current, moved.target)
        snapshots.end_restore(sid)
        report = replace(
            report,
            files=[(c.status, c.path) for c in moved.changes],
            not_restored=moved.not_captured,
        )
    forward = _forward(store, sid, plan.target.id, plan.head.id)
    return replace(report, files_note=_files_note(snapshots, files, moved), forward=forward)


def _forward(store: Store, session_id: str, target: int, head: int) -> bool:
    """Whether the target is off the path the head stands on (a later checkpoint of another
    branch): the files then move forward, and nothing is "reverted". Bounded walk."""
    history = store.history(session_id)
    current: int | None = head
    for _ in range(len(history)):
        if current == target:
            return False
        if current is None or not 1 <= current <= len(history):
            break
        parent = history[current - 1].parent
        current = parent if parent is not None and 1 <= parent < current else None
    return True


def _files_note(snapshots: Snapshots | None, files: bool, moved: FilePlan | None) -> str | None:
    if not files:
        return "the workspace files were left as they are (--conversation-only)"
    if snapshots is None:
        return "the workspace files were not restored: this session has no snapshots"
    if moved is None:
        return "the workspace files were not restored: no snapshot names them at that point"
    return None


def diff_session(
    settings: Settings, prefix: str, *, old: int | None, new: int | None, stat: bool
) -> WorkspaceDiff:
    """The workspace changes between two checkpoints (default: the baseline to the head)."""
    from agentctl.domain.records import WorkspaceDiff
    from agentctl.workspace.restore import tree_at

    with opened_store(settings) as store:
        session_id = resolve_session(store, prefix)
        recorded = store.info(session_id).workspace
        snapshots = (
            wiring.snapshots(settings, recorded, lambda _e: None, create=False)
            if recorded is not None
            else wiring.kept_snapshots(settings, store, session_id)  # a worker's
        )
        if snapshots is None:
            raise UsageError(f"session {session_id} has no workspace snapshots")
        old_id = old or 1
        new_id = new or store.head(session_id).id
        trees = []
        for number in (old_id, new_id):
            tree = tree_at(store, session_id, store.get_checkpoint(session_id, number))
            if tree is None or not snapshots.has(tree):
                raise UsageError(
                    f"session {session_id} has no workspace snapshot at checkpoint {number} "
                    "(it changed no files)"
                )
            trees.append(tree)
        changes = snapshots.changes(trees[0], trees[1])
        text = snapshots.diff(trees[0], trees[1], stat=stat) if changes else ""
    return WorkspaceDiff(session_id, old_id, new_id, [(c.status, c.path) for c in changes], text)
