"""Putting the workspace back with a rollback: which tree, what changes, refusals, recovery.

The order of a restore makes every step undoable and every crash recoverable:
1. capture the workspace as it is now (so the state being left is itself a snapshot);
2. refuse, unless forced, when it differs from the tree the head recorded: someone edited files
   outside agentctl, and a restore would throw their work away;
3. write a mark naming the session, the rollback checkpoint to come and the target tree;
4. append the rollback checkpoint (its task state names the target tree);
5. restore the files, then remove the mark.
A crash before 4 leaves the files untouched (the mark is dropped); a crash after 4 leaves the
mark, and the next `resume` or `rollback` of the session finishes the restore.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agentctl.errors import UsageError

if TYPE_CHECKING:
    from agentctl.state import Checkpoint
    from agentctl.store.base import Store
    from agentctl.workspace.snapshots import Change, Snapshots


class OutsideEditsError(UsageError):
    """The workspace changed since agentctl last recorded it: a restore would lose that."""


@dataclass
class FilePlan:
    current: str  # the workspace now, captured
    target: str  # the tree to restore
    changes: list[Change]  # from now to the target
    not_captured: tuple[str, ...] = field(default=())  # over the size cap: left as they are


def tree_at(store: Store, session_id: str, checkpoint: Checkpoint) -> str | None:
    """The workspace tree a checkpoint stands for. Before the session's first side effect no
    tree was taken (the baseline is captured lazily, just before it): the workspace then was
    that first baseline."""
    if checkpoint.task.workspace_tree is not None:
        return checkpoint.task.workspace_tree
    for summary in store.history(session_id):
        tree = store.get_checkpoint(session_id, summary.id).task.workspace_tree
        if tree is not None:
            return tree
    return None


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
    captured = snapshots.capture()
    recorded = tree_at(store, session_id, head)
    outside = snapshots.changes(recorded, captured.tree) if recorded else []
    if outside and not force:
        listed = ", ".join(f"{c.path} ({_word(c.status)})" for c in outside[:8])
        more = f" and {len(outside) - 8} more" if len(outside) > 8 else ""
        raise OutsideEditsError(
            f"the workspace changed outside agentctl since checkpoint {head.id}: "
            f"{listed}{more}; a restore would lose that, so nothing was changed",
            hint=f"agentctl rollback {session_id} --to {target.id} --force (to lose them), or "
            "--conversation-only",
        )
    return FilePlan(
        captured.tree, target_tree, snapshots.changes(captured.tree, target_tree), captured.skipped
    )


def _word(status: str) -> str:
    return {"A": "new", "D": "deleted", "M": "modified", "T": "type changed"}.get(status, status)


def finish_interrupted(snapshots: Snapshots | None, store: Store, session_id: str) -> bool:
    """Complete a restore a crash cut short (see the module's order); True if one was."""
    if snapshots is None:
        return False
    pending = snapshots.pending_restore()
    if pending is None or pending[0] != session_id:
        return False
    _sid, checkpoint_id, target = pending
    head = store.head(session_id)
    done = False
    if head.id == checkpoint_id and head.task.workspace_tree == target:
        snapshots.restore(snapshots.capture().tree, target)
        done = True
    snapshots.end_restore()  # the rollback was never written: the files were never touched
    return done
