"""What the two SQL backends (SQLite, PostgreSQL) share: the same tables, read with the same SQL.

The reads of the core (a session's facts, a checkpoint, the head, the conversation at a
checkpoint, the history) and of the session list, the integrity reads and the two caches are
written once here, with `?` placeholders and `{T}` before each table name. A backend says how
to run a read (`_rows`: its placeholders, its schema, a dropped connection opened again) and
what its failures are (`_reading`: one StoreError naming the place); it keeps its writes,
leases and everything else that is its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from agentctl.errors import StoreError, UnknownCheckpointError, UnknownSessionError
from agentctl.store.base import (
    CheckpointSummary,
    MessageGraph,
    MessageLinks,
    SessionSummary,
    cache_owner,
    chain_array,
    gc_paused,
    summary_of,
)

if TYPE_CHECKING:
    from agentctl.domain.session import Checkpoint, Message, Session, SessionInfo
    from agentctl.store.listing import KeptListing
    from agentctl.store.ready import ReadyConversation

CHECKPOINT = "id, parent, event, from_state, to_state, created_at, detail, task, usage, message_tip"
SUMMARY = "id, parent, event, from_state, to_state, created_at, detail"
READY_COLUMNS = ("owner", "tip", "count", "tokens", "turn", "wire", "check_sum")
LISTING_COLUMNS = ("owner", "upto", "body", "check_sum")
GRAPH_PAGE = 2000  # rows `message_graph` reads at a time


class SQLReads:
    """The shared reads, over a backend's `_rows` and `_reading`."""

    # A condition a kept listing's row is read under: that what keeps it from going stale
    # (a checkpoint row changed after it was kept drops it) is in place.
    LISTING_GUARD = ""

    def _rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """The rows of one read (`?` placeholders, `{T}` before table names); StoreError when
        the database fails."""
        raise NotImplementedError

    def _reading(self, session_id: str | None = None) -> AbstractContextManager[None]:
        """Whatever a read or a damaged row raises, as one StoreError naming the place."""
        raise NotImplementedError

    def _keep_cache(
        self, session_id: str, table: str, columns: tuple[str, ...], values: Sequence[object]
    ) -> None:
        """Replace the session's row of a cache table; UnknownSessionError when there is no
        such session."""
        raise NotImplementedError

    def _one(self, sql: str, params: Sequence[Any]) -> Any:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def info(self, session_id: str) -> SessionInfo:
        from agentctl.domain.session import SessionInfo
        from agentctl.store.codec import decode

        with self._reading(session_id):
            row = self._one("SELECT info FROM {T}sessions WHERE id = ?", (session_id,))
            if row is None:
                raise UnknownSessionError(f"no session {session_id!r}")
            return decode(SessionInfo, row[0], where=f"session {session_id}")

    def get_checkpoint(self, session_id: str, checkpoint_id: int) -> Checkpoint:
        with self._reading(session_id):
            row = self._one(
                f"SELECT {CHECKPOINT} FROM {{T}}checkpoints WHERE session_id = ? AND id = ?",
                (session_id, checkpoint_id),
            )
            if row is None:
                self.info(session_id)  # UnknownSessionError first
                raise UnknownCheckpointError(session_id, checkpoint_id)
            return checkpoint_of(session_id, row)

    def head(self, session_id: str) -> Checkpoint:
        """The newest checkpoint itself (the session row's head is an index for `list`, never
        trusted for a write): one read of the primary key."""
        with self._reading(session_id):
            row = self._one(
                f"SELECT {CHECKPOINT} FROM {{T}}checkpoints WHERE session_id = ? AND id ="
                " (SELECT max(id) FROM {T}checkpoints WHERE session_id = ?)",
                (session_id, session_id),
            )
            if row is None:
                self.info(session_id)
                raise StoreError(f"session {session_id} has no checkpoints", hint="agentctl verify")
            return checkpoint_of(session_id, row)

    def load(self, session_id: str, checkpoint_id: int | None = None) -> Session:
        """The conversation as one range of the session's messages, walked by chain_array and
        validated in one call (~5x faster than a validation per message at 1,000)."""
        from agentctl.domain.session import Session
        from agentctl.store.codec import decode_messages

        with self._reading(session_id):
            info = self.info(session_id)
            checkpoint = (
                self.head(session_id)
                if checkpoint_id is None
                else self.get_checkpoint(session_id, checkpoint_id)
            )
            rows = self._rows(
                "SELECT id, parent, body FROM {T}messages WHERE session_id = ? AND id <= ?",
                (session_id, checkpoint.message_tip or 0),
            )
            array = chain_array(rows, checkpoint.message_tip)
            if array is None:
                raise StoreError(
                    f"session {session_id}: the conversation of checkpoint {checkpoint.id} is "
                    "broken (a message points to one that is missing or not before it)",
                    hint=f"agentctl verify {session_id}",
                )
            messages = decode_messages(array, where=f"session {session_id}")
        return Session(info=info, checkpoint=checkpoint, messages=messages)

    def list_sessions(self) -> list[SessionSummary]:
        with self._reading():
            rows = self._rows(
                "SELECT id, state, goal, title, head, created_at, updated_at, outcome, name, tags,"
                " workspace, (SELECT event FROM {T}checkpoints AS c"
                "  WHERE c.session_id = s.id AND c.id = s.head)"
                " FROM {T}sessions AS s ORDER BY updated_at DESC, id DESC",
                (),
            )
            return [summary_of(row) for row in rows]

    def history(self, session_id: str, *, kept: bool = True) -> list[CheckpointSummary]:
        with self._reading(session_id), gc_paused():
            listed = self._listed(session_id) if kept else []
            rows = self._rows(
                f"SELECT {SUMMARY} FROM {{T}}checkpoints WHERE session_id = ? AND id > ?"
                " ORDER BY id",
                (session_id, listed[-1].id if listed else 0),
            )
            if not rows and not listed:
                self.head(session_id)  # UnknownSessionError, or StoreError: none at all
            listed.extend(summaries_of(rows))
            return listed

    def history_page(
        self, session_id: str, after: int = 0, limit: int | None = None
    ) -> list[CheckpointSummary]:
        """A range of the primary key: as cheap at checkpoint 100,000 as at 1."""
        with self._reading(session_id), gc_paused():
            return summaries_of(self._page(SUMMARY, session_id, after, limit))

    def _page(self, columns: str, session_id: str, after: int, limit: int | None) -> list[Any]:
        """`columns` of the session's checkpoints after `after`, at most `limit`, in order."""
        bound = "" if limit is None else f" LIMIT {max(int(limit), 0)}"
        rows = self._rows(
            f"SELECT {columns} FROM {{T}}checkpoints WHERE session_id = ? AND id > ?"
            f" ORDER BY id{bound}",
            (session_id, after),
        )
        if not rows:
            self.head(session_id)  # UnknownSessionError, or StoreError: none at all
        return rows

    def _listed(self, session_id: str) -> list[CheckpointSummary]:
        """The kept listing's checkpoints, when it is usable (store/listing.py)."""
        from agentctl.store.listing import from_row, summaries

        try:
            row = self._one(
                "SELECT l.owner, l.upto, l.body, l.check_sum, s.created_at, s.head"
                " FROM {T}listing l JOIN {T}sessions s ON s.id = l.session_id"
                " WHERE l.session_id = ?" + self.LISTING_GUARD,
                (session_id,),
            )
        except StoreError:  # none was ever kept (no table), or unreadable: read the rows
            return []
        if row is None:
            return []
        return summaries(from_row(row[:4]), cache_owner(session_id, row[4]), row[5])

    def message_links(self, session_id: str) -> MessageLinks:
        """Every checkpoint and every message of the session read once, each decoded once:
        O(checkpoints + messages). What does not decode is reported, not raised."""
        from agentctl.errors import AgentctlError

        with self._reading(session_id):
            checkpoints = self._rows(
                f"SELECT {CHECKPOINT} FROM {{T}}checkpoints WHERE session_id = ? ORDER BY id",
                (session_id,),
            )
            if not checkpoints:
                self.head(session_id)  # UnknownSessionError, or StoreError: none at all
            rows = self._rows(
                "SELECT id, parent, body FROM {T}messages WHERE session_id = ?", (session_id,)
            )
        tips: dict[int, int | None] = {}
        unreadable: dict[int, str] = {}
        for row in checkpoints:
            try:
                tips[row[0]] = checkpoint_of(session_id, row).message_tip
            except (AgentctlError, ValueError, KeyError, TypeError) as exc:
                unreadable[row[0]] = getattr(exc, "message", str(exc))[:200]
        return MessageLinks(decoded_messages(rows), tips, unreadable)

    def message_graph(self, session_id: str) -> MessageGraph:
        """As message_links, a page of rows at a time (GRAPH_PAGE), keeping of each message its
        parent and why it does not decode, if it does not: what is held is the graph, not the
        messages (`verify` of one session of 100,000 checkpoints held 395 MB). A row numbered
        by something that is not a number (a hand edit) has the session read whole, as
        message_links reads it."""
        from agentctl.errors import AgentctlError

        tips: dict[int, int | None] = {}
        unreadable: dict[int, str] = {}
        parents: dict[int, int | None] = {}
        undecodable: dict[int, str] = {}
        with self._reading(session_id):
            for rows in self._pages(session_id, "checkpoints", CHECKPOINT):
                if rows is None:
                    return MessageGraph.of(self.message_links(session_id))
                for row in rows:
                    try:
                        tips[row[0]] = checkpoint_of(session_id, row).message_tip
                    except (AgentctlError, ValueError, KeyError, TypeError) as exc:
                        unreadable[row[0]] = getattr(exc, "message", str(exc))[:200]
            if not tips and not unreadable:
                self.head(session_id)  # UnknownSessionError, or StoreError: none at all
            for rows in self._pages(session_id, "messages", "id, parent, body"):
                if rows is None:
                    return MessageGraph.of(self.message_links(session_id))
                for message_id, (parent, message) in decoded_messages(rows).items():
                    parents[message_id] = parent
                    if isinstance(message, str):
                        undecodable[message_id] = message

        def read_one(message_id: int) -> Message | str:
            found = self.messages_between(session_id, message_id, message_id).get(message_id)
            return "it is no longer there" if found is None else found[1]

        return MessageGraph(parents, undecodable, tips, unreadable, read_one)

    def _pages(self, session_id: str, table: str, columns: str) -> Iterator[list[Any] | None]:
        """The session's rows of `table` in order of id, GRAPH_PAGE at a time; None (and no
        more) where a page ends on an id that is not a number."""
        sql = f"SELECT {columns} FROM {{T}}{table} WHERE session_id = ?"
        rows = self._rows(f"{sql} ORDER BY id LIMIT {GRAPH_PAGE}", (session_id,))
        while rows:
            yield rows
            if len(rows) < GRAPH_PAGE:
                return
            last = rows[-1][0]
            if type(last) is not int:
                yield None
                return
            rows = self._rows(
                f"{sql} AND id > ? ORDER BY id LIMIT {GRAPH_PAGE}", (session_id, last)
            )

    def checkpoints_page(
        self, session_id: str, after: int = 0, limit: int | None = None
    ) -> list[Checkpoint]:
        """A range of the primary key, each row decoded as `get_checkpoint` decodes it."""
        with self._reading(session_id):
            rows = self._page(CHECKPOINT, session_id, after, limit)
        return [readable_checkpoint(session_id, row) for row in rows]

    def messages_between(
        self, session_id: str, first: int, last: int
    ) -> dict[int, tuple[int | None, Message | str]]:
        with self._reading(session_id):
            rows = self._rows(
                "SELECT id, parent, body FROM {T}messages"
                " WHERE session_id = ? AND id BETWEEN ? AND ? ORDER BY id",
                (session_id, first, last),
            )
            if not rows:
                self.info(session_id)  # UnknownSessionError
        return decoded_messages(rows)

    # -- the caches (store/ready.py, store/listing.py) -------------------------------------------

    def keep_ready(self, session_id: str, ready: ReadyConversation) -> None:
        self._keep_cache(session_id, "ready", READY_COLUMNS, ready.row())

    def ready_conversation(self, session_id: str) -> ReadyConversation | None:
        from agentctl.store.ready import from_row

        row = self._cached(session_id, "ready", READY_COLUMNS)
        return None if row is None else from_row(row)

    def keep_listing(self, session_id: str, listing: KeptListing) -> None:
        self._keep_cache(session_id, "listing", LISTING_COLUMNS, listing)

    def kept_listing(self, session_id: str) -> KeptListing | None:
        from agentctl.store.listing import from_row

        row = self._cached(session_id, "listing", LISTING_COLUMNS, self.LISTING_GUARD)
        return None if row is None else from_row(row)

    def _cached(
        self, session_id: str, table: str, columns: tuple[str, ...], guard: str = ""
    ) -> Any:
        try:
            return self._one(
                f"SELECT {', '.join(columns)} FROM {{T}}{table} WHERE session_id = ?{guard}",
                (session_id,),
            )
        except StoreError:  # none was ever kept (no table), or unreadable: a cache
            return None


def decoded_messages(rows: Sequence[Any]) -> dict[int, tuple[int | None, Message | str]]:
    """Message rows (id, parent, body) decoded: id -> (parent, the message, or why it does not
    decode). All in one validation, as `load` does; one by one where that fails."""
    from agentctl.domain.session import Message
    from agentctl.errors import AgentctlError
    from agentctl.store.codec import decode, decode_messages

    try:
        every = decode_messages("[" + ",".join(row[2] for row in rows) + "]")
        if len(every) == len(rows):
            return {row[0]: (row[1], m) for row, m in zip(rows, every, strict=True)}
    except (AgentctlError, TypeError):
        pass
    messages: dict[int, tuple[int | None, Message | str]] = {}
    for message_id, parent, body in rows:
        try:
            messages[message_id] = (parent, decode(Message, body, where=f"message {message_id}"))
        except AgentctlError as exc:
            messages[message_id] = (parent, exc.message)
    return messages


def readable_checkpoint(session_id: str, row: Sequence[Any]) -> Checkpoint:
    """`checkpoint_of`, or the StoreError an export of the session gives for a checkpoint that
    does not read (store/copying.read_session's words)."""
    from agentctl.errors import AgentctlError

    try:
        return checkpoint_of(session_id, row)
    except (AgentctlError, ValueError, KeyError, TypeError, RecursionError) as exc:
        why = getattr(exc, "message", str(exc))[:200]
        raise StoreError(
            f"session {session_id}: checkpoint {row[0]} cannot be read ({why})",
            hint=f"agentctl verify {session_id}",
        ) from None


def checkpoint_of(session_id: str, row: Sequence[Any]) -> Checkpoint:
    """A checkpoint from its row (CHECKPOINT's columns). A row that does not validate raises
    pydantic's ValidationError, a ValueError: the caller's `_reading` makes it a StoreError."""
    from agentctl.domain.session import Checkpoint, Task, Usage
    from agentctl.store.codec import decode

    where = f"session {session_id} checkpoint {row[0]}"
    detail = json.loads(row[6])
    if not isinstance(detail, dict):
        raise StoreError(f"{where}: its detail is not a JSON object")
    return Checkpoint(
        id=row[0],
        parent=row[1],
        kind=row[2],
        from_state=row[3],
        to_state=row[4],
        created_at=row[5],
        detail=detail,
        task=decode(Task, row[7], where=where),
        usage=decode(Usage, row[8], where=where),
        message_tip=row[9],
    )


def summaries_of(rows: Sequence[Any]) -> list[CheckpointSummary]:
    """SUMMARY rows as summaries, equal events and states one object and empty details one
    dict, as a kept listing's (store/listing.summaries): a history of 100,000 checkpoints
    holds a handful of distinct ones, and a copy of each per row was half of its memory
    (`verify` of one such session holds its history twice). Summaries are read, never
    changed."""
    shared: dict[object, Any] = {}
    share, empty, new = shared.setdefault, dict[str, Any](), tuple.__new__
    return [
        new(
            CheckpointSummary,
            (
                r[0],
                r[1],
                share(r[2], r[2]),
                share(r[3], r[3]),
                share(r[4], r[4]),
                r[5],
                empty if r[6] == "{}" else json_object(r[6]),
            ),
        )
        for r in rows
    ]


def json_object(text: str) -> dict[str, Any]:
    if text == "{}":  # most checkpoints: skip the parser
        return {}
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("a checkpoint's detail is not a JSON object")
    return value
