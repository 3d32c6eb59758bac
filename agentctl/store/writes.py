"""The one module that appends checkpoints, for every writer: the runner's journal (`create`,
`commit`), a rollback and a move's mark (`commit`), an import or a move completing a session
that is partly there already (`replay`).

An append is a draft on the head it extends, fenced by that head: the store refuses it
(HeadMovedError) when another writer won, and the checkpoint it returns is the new head. A
session written whole (import, fork, move) is not appended to: the store writes it in one step
(create_whole, copy_session). No other module calls a store's `append` or `create_session`
(tests/test_architecture.py holds that).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from agentctl.store.base import CheckpointDraft

if TYPE_CHECKING:
    from agentctl.domain.checkpoints import Detail
    from agentctl.domain.lifecycle import CheckpointKind, State
    from agentctl.domain.session import Checkpoint, Message, SessionInfo, Task, Usage
    from agentctl.store.base import Store
    from agentctl.store.lease import Lease


def create(
    store: Store, info: SessionInfo, first: CheckpointDraft, lease: Lease | None
) -> Checkpoint:
    """A new session whose first checkpoint is `first`, held by `lease` from the moment
    another process can see it."""
    return store.create_session(info, first, lease)


def draft_on(
    head: Checkpoint,
    kind: CheckpointKind,
    to_state: State,
    task: Task,
    created_at: str,
    *,
    parent: int | None = None,
    from_state: State | None = None,
    usage: Usage | None = None,
    detail: Detail | None = None,
    new_messages: tuple[Message, ...] = (),
    keep_messages: int | None = None,
) -> CheckpointDraft:
    """A checkpoint that follows `head`: its child (or, with `parent`, an older checkpoint's:
    a rollback), leaving the head's state unless `from_state` says the head's is damaged,
    with the head's usage unless the append spent more."""
    from agentctl.domain.checkpoints import NoDetail

    return CheckpointDraft(
        parent=head.id if parent is None else parent,
        kind=kind,
        from_state=head.to_state if from_state is None else from_state,
        to_state=to_state,
        created_at=created_at,
        task=task,
        usage=head.usage if usage is None else usage,
        detail=NoDetail() if detail is None else detail,
        new_messages=new_messages,
        keep_messages=keep_messages,
    )


def commit(store: Store, session_id: str, head: int, draft: CheckpointDraft) -> Checkpoint:
    """Append `draft` to the session whose head is `head`: the new head, or HeadMovedError
    when another writer moved it (nothing written)."""
    return store.append(session_id, head, draft)


def replay(
    store: Store,
    session_id: str,
    drafts: Sequence[CheckpointDraft],
    expected: Sequence[Checkpoint],
    have: int,
) -> None:
    """Append drafts `have`+1… to a session that has the first `have` (an import or move
    completing a copy that is partly there), each checked against the checkpoint it must
    produce: StoreError naming the first that came out different."""
    from agentctl.errors import StoreError

    for want, draft in list(zip(expected, drafts, strict=True))[have:]:
        if commit(store, session_id, want.id - 1, draft) != want:
            raise StoreError(
                f"session {session_id}: checkpoint {want.id} came out different on import "
                "(the export is inconsistent)",
                hint=f"agentctl verify {session_id}",
            )
