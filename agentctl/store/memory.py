"""An in-process store: the reference behaviour of the contract, and the fastest for unit tests.

Also what a command that makes no store reads where the default store was not made yet
(common.opened_store): so an empty one costs no pydantic import (agentctl.domain.session is
loaded by the methods that build a state).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from agentctl.errors import (
    HeadMovedError,
    SessionExistsError,
    UnknownCheckpointError,
    UnknownSessionError,
)
from agentctl.store.base import CheckpointDraft, CheckpointSummary, plan_append
from agentctl.store.core import BaseStore
from agentctl.store.lease import Lease, check_takeover

if TYPE_CHECKING:
    from agentctl.domain.session import Checkpoint, Message, Session, SessionInfo, UserProfile


class MemoryStore(BaseStore):
    """The core only (store/core.py): every other capability is BaseStore's default."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._info: dict[str, SessionInfo] = {}
        self._checkpoints: dict[str, list[Checkpoint]] = {}
        # session id -> message id -> (parent, message)
        self._messages: dict[str, dict[int, tuple[int | None, Message]]] = {}
        self._profile: UserProfile | None = None  # none saved: an empty one
        self._leases: dict[str, Lease] = {}

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
            from agentctl.domain.session import Session

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

    def delete_session(self, session_id: str) -> None:
        with self._lock:
            self._rows(session_id)
            for table in (self._info, self._checkpoints, self._messages, self._leases):
                table.pop(session_id, None)

    def lease_of(self, session_id: str) -> Lease | None:
        with self._lock:
            self._rows(session_id)
            return self._leases.get(session_id)

    def release_lease(self, session_id: str, token: str) -> None:
        with self._lock:
            held = self._leases.get(session_id)
            if held is not None and held.token == token:
                del self._leases[session_id]

    def load_profile(self) -> UserProfile:
        from agentctl.domain.session import UserProfile

        return self._profile or UserProfile()

    def update_profile(self, change: Callable[[UserProfile], UserProfile]) -> UserProfile:
        with self._lock:
            self._profile = change(self.load_profile())
            return self._profile
