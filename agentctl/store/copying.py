"""A session as checkpoints to copy, and the appends that write them again: what `export`, `import`
and the default `copy_session` (store/core.py) share.

A copy keeps its ids: message ids count per session in order of appending (base.plan_append),
so replaying each checkpoint's append (its new messages, and for a compaction how many of its
parent's messages it keeps) in another store numbers everything as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from agentctl.errors import StoreError, UnknownCheckpointError, UsageError

if TYPE_CHECKING:
    from agentctl.domain.session import Checkpoint, Message
    from agentctl.store.base import CheckpointDraft, Store

# One checkpoint and the messages it added, as (id, parent id, message).
CopiedCheckpoint = tuple["Checkpoint", list[tuple[int, "int | None", "Message"]]]


def read_session(
    store: Store, session_id: str, upto: int | None = None, *, keep_approvals: bool = True
) -> list[CopiedCheckpoint]:
    """Checkpoints 1..`upto` (default: all) of a session, each with the messages it added,
    read from the rows (not a kept listing). Without `keep_approvals`, no checkpoint carries
    the approval of a call (a fork asks again, as a rollback does).

    Raises UnknownCheckpointError for an `upto` past the head; StoreError naming the first
    checkpoint or message that cannot be read (nothing is half-read)."""
    links = store.message_links(session_id)
    if links.unreadable:
        first = next(iter(links.unreadable.items()))
        raise StoreError(
            f"session {session_id}: checkpoint {first[0]} cannot be read ({first[1]})",
            hint=f"agentctl verify {session_id}",
        )
    history = store.history(session_id, kept=False)
    if upto is not None:
        if not 1 <= upto <= len(history):
            raise UnknownCheckpointError(session_id, upto)
        history = history[:upto]
    copied: list[CopiedCheckpoint] = []
    highest = 0  # message ids grow with the checkpoints that add them
    for summary in history:
        checkpoint = store.get_checkpoint(session_id, summary.id)
        if not keep_approvals and checkpoint.task.approval is not None:
            task = checkpoint.task.model_copy(update={"approval": None})
            checkpoint = checkpoint.model_copy(update={"task": task})
        tip = checkpoint.message_tip or 0
        copied.append((checkpoint, _added(session_id, links.messages, highest, tip)))
        highest = max(highest, tip)
    return copied


def _added(
    session_id: str,
    messages: dict[int, tuple[int | None, Message | str]],
    highest: int,
    tip: int,
) -> list[tuple[int, int | None, Message]]:
    """The messages a checkpoint added (ids after `highest` up to its `tip`), as (id, parent,
    message); a StoreError names the first that is missing or does not read."""
    added = []
    for message_id in range(highest + 1, tip + 1):
        parent, message = messages.get(message_id, (None, "missing"))
        if isinstance(message, str):
            raise StoreError(
                f"session {session_id}: message {message_id} cannot be read ({message})",
                hint=f"agentctl verify {session_id}",
            )
        added.append((message_id, parent, message))
    return added


PAGE = 1000  # checkpoints a streamed read holds at a time, with the messages they added


def stream_session(
    store: Store, session_id: str, last: int | None = None
) -> Iterator[CopiedCheckpoint]:
    """Every checkpoint of a session with the messages it added, as `read_session` gives
    them, read a page of checkpoints (and the messages they added) at a time: an export of
    100,000 checkpoints starts at once and holds one page. For a store that reads id ranges
    (the ranged_reads capability); on another, each page would read the session whole. The
    checkpoints are those up to the head when it starts (a run that goes on meanwhile adds
    none; `last`, when given, is that head). A checkpoint or message that does not read, or
    checkpoints gone before `last` is reached, is a StoreError when it is reached."""
    if last is None:
        last = store.head(session_id).id
    highest, after = 0, 0  # the highest message id so far; the last checkpoint read
    while after < last:
        page = store.checkpoints_page(session_id, after, min(PAGE, last - after))
        if not page:  # deleted meanwhile, or by hand: never an export that looks whole
            raise StoreError(
                f"session {session_id}: checkpoint {after + 1} cannot be read (it is gone)",
                hint=f"agentctl verify {session_id}",
            )
        top = max((c.message_tip or 0 for c in page), default=0)
        messages = store.messages_between(session_id, highest + 1, top) if top > highest else {}
        for checkpoint in page:
            tip = checkpoint.message_tip or 0
            yield checkpoint, _added(session_id, messages, highest, tip)
            highest = max(highest, tip)
        after = page[-1].id


def drafts_of(copied: list[CopiedCheckpoint]) -> list[CheckpointDraft]:
    """The append that produces each recorded checkpoint: its new messages, and for a
    compaction how many of the parent's messages it keeps. UsageError for checkpoints that do
    not chain (an export is checked by them)."""
    from agentctl.domain.checkpoints import CopiedDetail
    from agentctl.store.base import CheckpointDraft

    depth: dict[int | None, int] = {None: 0}
    tips: dict[int, int | None] = {}
    drafts = []
    for checkpoint, messages in copied:
        for message_id, parent, _message in messages:
            if parent is not None and parent not in depth:
                raise UsageError(f"export: message {message_id} follows a missing {parent}")
            depth[message_id] = depth[parent] + 1
        parent_tip = tips.get(checkpoint.parent) if checkpoint.parent is not None else None
        attach = messages[0][1] if messages else checkpoint.message_tip
        if attach not in depth:
            raise UsageError(f"export: checkpoint {checkpoint.id} ends at a missing message")
        keep = None if attach == parent_tip else depth[attach]
        tips[checkpoint.id] = checkpoint.message_tip
        drafts.append(
            CheckpointDraft(
                parent=checkpoint.parent,
                kind=checkpoint.kind,
                from_state=checkpoint.from_state,
                to_state=checkpoint.to_state,
                created_at=checkpoint.created_at,
                task=checkpoint.task,
                usage=checkpoint.usage,
                detail=CopiedDetail(checkpoint.detail),
                new_messages=tuple(m for _i, _p, m in messages),
                keep_messages=keep,
            )
        )
    return drafts
