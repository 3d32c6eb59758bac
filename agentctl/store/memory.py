"""An in-process store: the reference behaviour of the contract, and the fastest for unit tests.

Also what a command that makes no store reads where the default store was not made yet
(service.opened_store): so an empty one costs no pydantic import (agentctl.state is loaded by
the methods that build a state).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from agentctl.errors import (
    HeadMovedError,
    SessionExistsError,
    UnknownCheckpointError,
    UnknownSessionError,
)
from agentctl.store.base import (
    CheckpointDraft,
    CheckpointSummary,
    MessageLinks,
    SessionSummary,
    listed_state,
    plan_all,
    plan_append,
)
from agentctl.store.lease import Lease, check_takeover

if TYPE_CHECKING:
    from agentctl.records import SearchHit
    from agentctl.state import Checkpoint, Message, Session, SessionInfo, UserProfile
    from agentctl.store.listing import KeptListing
    from agentctl.store.ready import ReadyConversation


class MemoryStore:
    keeps_listings = False  # its summaries are in memory

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._info: dict[str, SessionInfo] = {}
        self._checkpoints: dict[str, list[Checkpoint]] = {}
        # session id -> message id -> (parent, message)
        self._messages: dict[str, dict[int, tuple[int | None, Message]]] = {}
        self._profile: UserProfile | None = None  # none saved: an empty one
        self._leases: dict[str, Lease] = {}
        self._labels: dict[str, tuple[str | None, tuple[str, ...]]] = {}
        self._ready: dict[str, ReadyConversation] = {}

    def create_session(
        self, info: SessionInfo, first: CheckpointDraft, lease: Lease | None = None
    ) -> Checkpoint:
        with self._lock:
            if info.id in self._info:
                raise SessionExistsError(f"session {info.id} exists")
            self._info[info.id] = info
            self._checkpoints[info.id] = []
            self._messages[info.id] = {}
            if lease is not None:
                self._leases[info.id] = lease
            return self._add(info.id, first)

    def create_whole(
        self, info: SessionInfo, drafts: Sequence[CheckpointDraft], lease: Lease | None = None
    ) -> list[Checkpoint]:
        plans = plan_all(drafts)  # before the lock: a bad draft changes nothing
        with self._lock:
            if info.id in self._info:
                raise SessionExistsError(f"session {info.id} exists")
            self._info[info.id] = info
            self._checkpoints[info.id] = [plan.checkpoint for plan in plans]
            self._messages[info.id] = {
                m.id: (m.parent, m.message) for plan in plans for m in plan.messages
            }
            if lease is not None:
                self._leases[info.id] = lease
        return [plan.checkpoint for plan in plans]

    def message_links(self, session_id: str) -> MessageLinks:
        with self._lock:
            tips = {c.id: c.message_tip for c in self._rows(session_id)}
            messages: dict[int, tuple[int | None, Message | str]] = dict(self._messages[session_id])
            return MessageLinks(messages, tips, {})  # validated when written

    def another_handle(self) -> MemoryStore:
        return self  # one object, guarded by its lock

    def append(self, session_id: str, expected_head: int, draft: CheckpointDraft) -> Checkpoint:
        with self._lock:
            head = len(self._rows(session_id))
            if head != expected_head:
                raise HeadMovedError(
                    f"session {session_id} moved on to checkpoint {head} (expected {expected_head})"
                )
            return self._add(session_id, draft)

    def _add(self, session_id: str, draft: CheckpointDraft) -> Checkpoint:
        rows, messages = self._checkpoints[session_id], self._messages[session_id]
        plan = plan_append(
            draft,
            checkpoint_id=len(rows) + 1,
            parent_tip=self._get(session_id, draft.parent).message_tip if draft.parent else None,
            next_message_id=len(messages) + 1,
            parent_of=lambda m: messages[m][0],
        )
        for stored in plan.messages:
            messages[stored.id] = (stored.parent, stored.message)
        rows.append(plan.checkpoint)
        return plan.checkpoint

    def _rows(self, session_id: str) -> list[Checkpoint]:
        try:
            return self._checkpoints[session_id]
        except KeyError:
            raise UnknownSessionError(f"no session {session_id!r}") from None

    def load(self, session_id: str, checkpoint_id: int | None = None) -> Session:
        with self._lock:
            rows = self._rows(session_id)
            checkpoint = rows[-1] if checkpoint_id is None else self._get(session_id, checkpoint_id)
            chain: list[Message] = []
            tip = checkpoint.message_tip
            while tip is not None:
                tip, message = self._messages[session_id][tip]
                chain.append(message)
            from agentctl.state import Session

            return Session(
                info=self._info[session_id], checkpoint=checkpoint, messages=tuple(reversed(chain))
            )

    def get_checkpoint(self, session_id: str, checkpoint_id: int) -> Checkpoint:
        with self._lock:
            return self._get(session_id, checkpoint_id)

    def info(self, session_id: str) -> SessionInfo:
        with self._lock:
            self._rows(session_id)
            return self._info[session_id]

    def head(self, session_id: str) -> Checkpoint:
        with self._lock:
            return self._rows(session_id)[-1]

    def _get(self, session_id: str, checkpoint_id: int) -> Checkpoint:
        rows = self._rows(session_id)
        if not 1 <= checkpoint_id <= len(rows):
            raise UnknownCheckpointError(session_id, checkpoint_id)
        return rows[checkpoint_id - 1]

    def list_sessions(self) -> list[SessionSummary]:
        with self._lock:
            out = []
            for sid, info in self._info.items():
                head = self._checkpoints[sid][-1]
                out.append(
                    SessionSummary(
                        id=sid,
                        state=listed_state(head.to_state.value, head.kind.value),
                        goal=info.spec.goal,
                        title=info.spec.title,
                        head=head.id,
                        created_at=info.created_at,
                        updated_at=head.created_at,
                        outcome=head.task.outcome.value if head.task.outcome else None,
                        name=self._labels.get(sid, (None, ()))[0],
                        tags=self._labels.get(sid, (None, ()))[1],
                        workspace=info.workspace,
                    )
                )
            return sorted(out, key=lambda s: (s.updated_at, s.id), reverse=True)

    def history(self, session_id: str, *, kept: bool = True) -> list[CheckpointSummary]:
        with self._lock:  # the summaries are in memory: no listing is kept
            return [
                CheckpointSummary(
                    id=c.id,
                    parent=c.parent,
                    kind=c.kind,
                    from_state=c.from_state.value,
                    to_state=c.to_state.value,
                    created_at=c.created_at,
                    detail=dict(c.detail),
                )
                for c in self._rows(session_id)
            ]

    def match_sessions(self, prefix: str) -> list[str]:
        with self._lock:
            return sorted(sid for sid in self._info if sid.startswith(prefix))

    def acquire_lease(self, session_id: str, lease: Lease) -> None:
        with self._lock:
            self._rows(session_id)
            check_takeover(session_id, self._leases.get(session_id), lease)
            self._leases[session_id] = lease

    def set_labels(self, session_id: str, name: str | None, tags: tuple[str, ...]) -> None:
        with self._lock:
            self._rows(session_id)
            self._labels[session_id] = (name, tags)

    def delete_session(self, session_id: str) -> None:
        with self._lock:
            self._rows(session_id)
            for table in (
                self._info,
                self._checkpoints,
                self._messages,
                self._leases,
                self._labels,
                self._ready,
            ):
                table.pop(session_id, None)

    def keep_ready(self, session_id: str, ready: ReadyConversation) -> None:
        with self._lock:
            self._rows(session_id)
            self._ready[session_id] = ready

    def ready_conversation(self, session_id: str) -> ReadyConversation | None:
        with self._lock:
            return self._ready.get(session_id)

    def keep_listing(self, session_id: str, listing: KeptListing) -> None:
        with self._lock:
            self._rows(session_id)  # and keep none: history is read from memory anyway

    def kept_listing(self, session_id: str) -> KeptListing | None:
        return None

    def release_lease(self, session_id: str, token: str) -> None:
        with self._lock:
            held = self._leases.get(session_id)
            if held is not None and held.token == token:
                del self._leases[session_id]

    def search(self, text: str, limit: int) -> list[SearchHit]:
        from agentctl.store.base import scan_search

        return scan_search(self, text, limit)

    def reclaim(self) -> None:
        pass

    def check(self) -> list[str]:
        return []

    def load_profile(self) -> UserProfile:
        from agentctl.state import UserProfile

        return self._profile or UserProfile()

    def update_profile(self, change: Callable[[UserProfile], UserProfile]) -> UserProfile:
        with self._lock:
            self._profile = change(self.load_profile())
            return self._profile

    def close(self) -> None:
        pass
