"""Putting the workspace back with a rollback: which tree, what changes, refusals, recovery.

The order of a restore makes every step undoable and every crash recoverable:
1. capture the workspace as it is now (so the state being left is itself a snapshot);
2. refuse, unless forced, when it differs from the tree the head recorded, or when the restore
   would undo a change made outside agentctl earlier on the branch being left (a side-effecting
   call captures the workspace before it runs as well as after, so what changed while the
   session waited — the user, another session in the same workspace — is on record as not the
   session's own): a restore would throw that work away;
3. write a mark naming the session, the rollback checkpoint to come and the target tree;
4. append the rollback checkpoint (its task record names the target tree);
5. restore the files, then remove the mark.
A crash before 4 leaves the files untouched (the mark is dropped); a crash after 4 leaves the
mark, and the next `resume` or `rollback` of the session finishes the restore. The whole order
runs under the snapshot store's lock (see snapshots.py), so a session sharing the workspace
captures before or after it, never in the middle. A restore never writes or deletes a path
the capture of step 1 left out (ignored, over a cap, agentctl's own): it is left, and said.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agentctl.errors import StoreError, UsageError

if TYPE_CHECKING:
    from agentctl.domain.session import Checkpoint
    from agentctl.store.base import Store
    from agentctl.workspace.snapshots import Change, Snapshots


class OutsideEditsError(UsageError):
    """The workspace changed since agentctl last recorded it: a restore would lose that."""


@dataclass
class FilePlan:
    current: str  # the workspace now, captured
    target: str  # the tree to restore
    changes: list[Change]  # from now to the target
    not_captured: tuple[str, ...] = field(default=())  # not captured now: left as they are


def tree_at(store: Store, session_id: str, checkpoint: Checkpoint) -> str | None:
    """The workspace tree a checkpoint stands for. Before the session's first side effect no
    tree was taken (the baseline is captured lazily, just before it): the workspace then was
    that first baseline. A value that is not a tree id is store damage (exit 6), never
    passed on to git."""
    if checkpoint.task.workspace_tree is not None:
        return _checked(session_id, checkpoint.id, checkpoint.task.workspace_tree)
    for summary in store.history(session_id):
        tree = store.get_checkpoint(session_id, summary.id).task.workspace_tree
        if tree is not None:
            return _checked(session_id, summary.id, tree)
    return None


def _checked(session_id: str, checkpoint_id: int, tree: str) -> str:
    from agentctl.workspace.snapshots import valid_tree

    try:
        return valid_tree(tree)
    except StoreError:
        raise StoreError(
            f"session {session_id} checkpoint {checkpoint_id} names a workspace snapshot "
            f"that is not a snapshot id ({tree[:40]!r}); nothing was changed",
            hint=f"agentctl rollback {session_id} … --conversation-only, or agentctl verify",
        ) from None


def edited_outside(
    store: Store, snapshots: Snapshots, session_id: str, head: Checkpoint, target: Checkpoint
) -> dict[str, int]:
    """Paths changed outside agentctl on the branch a rollback leaves: a `tool_started`
    checkpoint's tree is captured before its call ran, so where it differs from its parent's,
    someone else changed the files (while the session waited). Path → that checkpoint."""
    from agentctl.domain.lifecycle import CheckpointKind
    from agentctl.store.base import ancestors

    history = store.history(session_id)
    if not 1 <= head.id <= len(history) or not 1 <= target.id <= len(history):
        return {}
    keep = set(ancestors(history, history[target.id - 1]))
    found: dict[str, int] = {}
    for number in ancestors(history, history[head.id - 1]):
        summary = history[number - 1]
        if number in keep or summary.kind != CheckpointKind.TOOL_STARTED or not summary.parent:
            continue
        started = store.get_checkpoint(session_id, number).task.workspace_tree
        before = tree_at(store, session_id, store.get_checkpoint(session_id, summary.parent))
        if started is None or before is None:
            continue
        started = _checked(session_id, number, started)
        if started != before and snapshots.has(started) and snapshots.has(before):
            for change in snapshots.changes(before, started):
                found.setdefault(change.path, number)
    return found


def plan_files(
    store: Store,
    snapshots: Snapshots,
    session_id: str,
    head: Checkpoint,
    target: Checkpoint,
    *,
    force: bool,
) -> FilePlan | None:
    """What restoring `target`'s files means now; None when no snapshot names them."""
    target_tree = tree_at(store, session_id, target)
    if target_tree is None or not snapshots.has(target_tree):
        return None
    recorded = tree_at(store, session_id, head)
    captured = snapshots.capture()
    skipped = {name.split(" ", 1)[0].rstrip("/") for name in captured.skipped}
    outside = [
        f"{_one_line(c.path)} "
        f"({'modified, not captured' if c.path in skipped else _word(c.status)})"
        for c in (snapshots.changes(recorded, captured.tree) if recorded else [])
    ]
    left = snapshots.left_alone(captured.tree, target_tree)
    changes = [c for c in snapshots.changes(captured.tree, target_tree) if c.path not in left]
    earlier = edited_outside(store, snapshots, session_id, head, target)
    touched = {c.path for c in changes}
    outside += [
        f"{_one_line(path)} (changed outside agentctl before checkpoint {number})"
        for path, number in sorted(earlier.items())
        if path in touched
    ]
    if outside and not force:
        listed = ", ".join(outside[:8])
        more = f" and {len(outside) - 8} more" if len(outside) > 8 else ""
        raise OutsideEditsError(
            f"the workspace changed outside agentctl: {listed}{more}; a restore to checkpoint "
            f"{target.id} would lose that, so nothing was changed",
            hint=f"agentctl rollback {session_id} --to {target.id} --force (to lose them), or "
            "--conversation-only",
        )
    kept = sorted({*left, *captured.skipped})
    return FilePlan(captured.tree, target_tree, changes, tuple(kept))


def _one_line(path: str) -> str:
    """A file name inside a one-line error: its line breaks shown, not obeyed."""
    return path.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def _word(status: str) -> str:
    return {"A": "new", "D": "deleted", "M": "modified", "T": "type changed"}.get(status, status)


def finish_interrupted(snapshots: Snapshots | None, store: Store, session_id: str) -> bool:
    """Complete a restore a crash cut short (see the module's order); True if one was."""
    if snapshots is None:
        return False
    with snapshots.locked():  # a stale git lock of the killed process is cleared here
        pending = snapshots.pending_restore(session_id)
        if pending is None:
            return False
        _sid, checkpoint_id, target = pending
        head = store.head(session_id)
        done = False
        if head.id == checkpoint_id and head.task.workspace_tree == target:
            snapshots.restore(snapshots.capture().tree, target)
            done = True
        snapshots.end_restore(session_id)  # not written: the files were never touched
    return done
