"""SQLite's store-wide pass for `verify` (base.IntegrityPass): the sessions, the checkpoints, the
messages and the kept listings each read once, in order of session id (the primary keys'
order), in one read transaction, and handed to `verify` a session at a time.

The one decision: each session's records are turned into what `verify` checks by the same code
the per-session reads use (store/sql.py), raising the same errors, so the pass finds every
damage they find. A session's checkpoints are validated in one call where every row's JSON
columns are sound JSON on their own (SQL's json_valid: a column's text cannot reach into the
next), and one by one, as `message_links` does, as soon as that call fails; its messages as
`message_links` validates them. Per session this was five point queries and a model built per
checkpoint: 36 s at 50,000 sessions against a decode floor of 5.3 s.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentctl.store.base import (
    CheckpointSummary,
    MessageGraph,
    MessageLinks,
    cache_owner,
    gc_paused,
)
from agentctl.store.sql import CHECKPOINT, checkpoint_of, json_object
from agentctl.store.sqlite_errors import translated

if TYPE_CHECKING:
    from agentctl.domain.session import Checkpoint, SessionInfo
    from agentctl.store.base import SessionReads, Store
    from agentctl.store.listing import KeptListing

# Whether every column of a checkpoint row is of its kind (text where text belongs, JSON that
# is sound JSON on its own, so its text cannot reach into the next row's when they are joined):
# the sessions whose rows all are have their checkpoints validated in one call.
_SOUND = (
    "typeof(id) = 'integer' AND typeof(parent) IN ('integer', 'null')"
    " AND typeof(message_tip) IN ('integer', 'null') AND typeof(event) = 'text'"
    " AND typeof(from_state) = 'text' AND typeof(to_state) = 'text'"
    " AND typeof(created_at) = 'text' AND typeof(detail) = 'text' AND typeof(task) = 'text'"
    " AND typeof(usage) = 'text' AND json_valid(detail) AND json_valid(task)"
    " AND json_valid(usage)"
)
# Columns: the session, CHECKPOINT's (1-10), `id > 0` (the rows `history` reads, as SQL
# compares: text and blobs are above every number), and _SOUND.
_CHECKPOINTS = (
    f"SELECT session_id, {CHECKPOINT}, id > 0, {_SOUND} FROM checkpoints ORDER BY session_id, id"
)
_MESSAGES = (
    "SELECT session_id, id, parent, body, typeof(body) = 'text' AND json_valid(body)"
    " FROM messages ORDER BY session_id, id"
)
_LISTINGS = "SELECT session_id, owner, upto, body, check_sum FROM listing ORDER BY session_id"
# The sessions match_sessions("") gives: a range of the primary key (text ids only).
_SESSIONS = (
    "SELECT id, info, created_at, head, typeof(info) = 'text' AND json_valid(info)"
    " FROM sessions WHERE id >= ? AND id < ? ORDER BY id"
)
BATCH = 200  # sessions validated together where all their rows are sound


def session_reads(store: Store, path: Path, db: sqlite3.Connection) -> Iterator[SessionReads]:
    """Every session's records, by id, from one ordered read of each table (a merge by session
    id: rows of a session the sessions table does not have are passed over, as the
    per-session reads never see them). Should a row fail to read mid-pass (text that is not
    UTF-8), the sessions not yet handed out are read one by one instead, so the damage is
    named on its session, as the per-session reads name it."""
    from agentctl.store.core import PerSessionReads

    last: str | None = None
    # The collector rests through the pass (and the checks run on each session meanwhile):
    # every session is thousands of new objects, none in a cycle, freed as they are done with;
    # its collections were a fifth of the time.
    with gc_paused():
        try:
            db.execute("BEGIN")  # one moment of the store for every table
            try:
                for reads in _pass(store, path, db):
                    last = reads.session_id
                    yield reads
                return
            finally:
                db.execute("COMMIT")
        except sqlite3.Error:
            pass
    for session_id in store.match_sessions(""):
        if last is None or session_id > last:
            yield PerSessionReads(store, session_id)


def _pass(store: Store, path: Path, db: sqlite3.Connection) -> Iterator[PassReads]:
    listed = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'listing'"
    ).fetchone()
    streams = {
        "checkpoints": _grouped(db.execute(_CHECKPOINTS)),
        "messages": _grouped(db.execute(_MESSAGES)),
        "listing": _grouped(db.execute(_LISTINGS)) if listed else iter(()),
    }
    pending: dict[str, Any] = {}
    sessions = db.execute(_SESSIONS, ("", "\U0010ffff"))
    while True:
        batch: list[PassReads] = []
        sound: list[bool] = []
        for sid, info, created_at, head, info_sound in itertools.islice(sessions, BATCH):
            found = {name: _take(rows, sid, pending, name) for name, rows in streams.items()}
            batch.append(
                PassReads(
                    store,
                    path,
                    sid,
                    info,
                    created_at,
                    head,
                    found["checkpoints"] or [],
                    found["messages"] or [],
                    (found["listing"] or [None])[0],
                )
            )
            sound.append(bool(info_sound))
        if not batch:
            return
        _prepare(batch, sound)
        yield from batch


def _prepare(batch: list[PassReads], info_sound: list[bool]) -> None:
    """Set on each of the batch what validates in one call for all of it: the facts,
    checkpoints and messages of the sessions whose rows are all sound. Where a call fails,
    each session is read on its own (PassReads), as the per-session reads do."""
    infos = _infos([r for r, ok in zip(batch, info_sound, strict=True) if ok])
    whole = [r for r in batch if r.checkpoint_rows and all(c[12] for c in r.checkpoint_rows)]
    tips = _tips_of(whole)
    spoken = [r for r in batch if all(m[4] for m in r.message_rows)]
    messages = _messages_of(spoken)
    for r in batch:
        r.ready_info = infos.get(r.session_id)
        r.ready_tips = tips.get(r.session_id)
        r.ready_messages = messages.get(r.session_id)


def _infos(batch: list[PassReads]) -> dict[str, SessionInfo]:
    """The facts of every session of `batch`, decoded as codec.decode decodes each (upgraded
    from older versions, validated in Python mode), in one call; none where any fails."""
    from agentctl.errors import AgentctlError
    from agentctl.store.codec import upgrade

    if not batch:
        return {}
    try:
        infos = _adapter("SessionInfo").validate_json(
            "[" + ",".join(r.info_text for r in batch) + "]"
        )
    except ValueError:  # another version than this one's (or not valid): as codec.decode
        try:
            payloads = json.loads("[" + ",".join(r.info_text for r in batch) + "]")
            if len(payloads) != len(batch) or not all(isinstance(p, dict) for p in payloads):
                return {}
            infos = _adapter("SessionInfo").validate_python(
                [upgrade(_model("SessionInfo"), p) for p in payloads]
            )
        except (AgentctlError, ValueError, RecursionError):
            return {}
    if len(infos) != len(batch):
        return {}
    return {r.session_id: info for r, info in zip(batch, infos, strict=True)}


def _tips_of(batch: list[PassReads]) -> dict[str, tuple[dict[int, int | None], dict[int, str]]]:
    """Each session's checkpoint tips, its checkpoints validated with the whole batch's (in
    JSON mode, else in Python mode with upgrades); none where that fails."""
    from agentctl.errors import AgentctlError

    rows = [c for r in batch for c in r.checkpoint_rows]
    if not rows:
        return {}
    try:
        sound = _sound(rows) or _validated(rows) is not None
    except (AgentctlError, ValueError, RecursionError):
        sound = False
    if not sound:
        return {}
    return {r.session_id: ({c[1]: c[10] for c in r.checkpoint_rows}, {}) for r in batch}


def _messages_of(batch: list[PassReads]) -> dict[str, dict[int, tuple[int | None, Any]]]:
    """Each session's messages by id, decoded with the whole batch's in one call (as
    SQLReads.message_links decodes a session's); none where that fails."""
    from agentctl.errors import AgentctlError
    from agentctl.store.codec import decode_messages

    rows = [m for r in batch for m in r.message_rows]
    if not rows:
        return {r.session_id: {} for r in batch}
    try:
        every = decode_messages("[" + ",".join(m[3] for m in rows) + "]")
    except (AgentctlError, TypeError):
        return {}
    if len(every) != len(rows):
        return {}
    out: dict[str, dict[int, tuple[int | None, Any]]] = {}
    at = 0
    for r in batch:
        out[r.session_id] = {
            m[1]: (m[2], message)
            for m, message in zip(r.message_rows, every[at : at + len(r.message_rows)], strict=True)
        }
        at += len(r.message_rows)
    return out


def _grouped(cursor: sqlite3.Cursor) -> Iterator[tuple[Any, list[Any]]]:
    """The rows by their first column (the session), each row whole."""
    for key, rows in itertools.groupby(cursor, key=itemgetter(0)):
        yield key, list(rows)


def _take(
    stream: Iterator[tuple[Any, list[Any]]], sid: str, pending: dict[str, Any], name: str
) -> list[Any] | None:
    """The rows of `stream` for session `sid`, passing over the groups of ids before it (rows
    of no session). Both are in SQLite's order of text, which Python's order of str is."""
    while True:
        group = pending.pop(name, None) or next(stream, None)
        if group is None:
            return None
        key = group[0]
        if not isinstance(key, str) or key < sid:
            continue  # a row of no session (or a key that is not text): never read by verify
        if key == sid:
            return list(group[1])
        pending[name] = group  # a later session's
        return None


@dataclass(slots=True)
class PassReads:
    """One session's rows from the pass, read as store/sql.py's methods read them."""

    store: Store
    path: Path
    session_id: str
    info_text: Any
    created_at: Any
    head: Any
    checkpoint_rows: list[Any]  # the session, CHECKPOINT's columns, `id > 0`, _SOUND
    message_rows: list[Any]  # the session, id, parent, body
    listing_row: Sequence[Any] | None  # the session, owner, upto, body, check_sum
    # What validated with its batch (_prepare): None, the session's own rows are read.
    ready_info: SessionInfo | None = None
    ready_tips: tuple[dict[int, int | None], dict[int, str]] | None = None
    ready_messages: dict[int, tuple[int | None, Any]] | None = None

    def history(self) -> list[CheckpointSummary]:
        return self._summaries(0)

    def _summaries(self, after: int) -> list[CheckpointSummary]:
        """SQLReads.history's rows after checkpoint `after` (`id > after` as SQL compares)."""
        with translated(self.path, self.session_id):
            rows = [r for r in self.checkpoint_rows if r[11] and (not after or _above(r[1], after))]
            if not rows and not after:
                self.store.head(self.session_id)  # UnknownSessionError, or none at all
            return [
                CheckpointSummary(r[1], r[2], r[3], r[4], r[5], r[6], json_object(r[7]))
                for r in rows
            ]

    def info(self) -> SessionInfo:
        from agentctl.domain.session import SessionInfo
        from agentctl.store.codec import decode

        if self.ready_info is not None:
            return self.ready_info
        with translated(self.path, self.session_id):
            return decode(SessionInfo, self.info_text, where=f"session {self.session_id}")

    def message_graph(self) -> MessageGraph:
        """As message_links (the pass holds the session's rows already)."""
        return MessageGraph.of(self.message_links())

    def message_links(self) -> MessageLinks:
        """As SQLReads.message_links, from the pass's rows."""
        from agentctl.domain.session import Message
        from agentctl.errors import AgentctlError
        from agentctl.store.codec import decode, decode_messages

        sid = self.session_id
        if not self.checkpoint_rows:
            with translated(self.path, sid):
                self.store.head(sid)
        tips, unreadable = self._tips() if self.ready_tips is None else self.ready_tips
        if self.ready_messages is not None:
            return MessageLinks(self.ready_messages, tips, unreadable)
        rows = self.message_rows
        with translated(self.path, sid):
            try:  # all in one validation, as load does; one by one where that fails
                every = decode_messages("[" + ",".join(row[3] for row in rows) + "]")
                if len(every) == len(rows):
                    return MessageLinks(
                        {row[1]: (row[2], m) for row, m in zip(rows, every, strict=True)},
                        tips,
                        unreadable,
                    )
            except (AgentctlError, TypeError):
                pass
            messages: dict[int, tuple[int | None, Message | str]] = {}
            for _sid, message_id, parent, body, _sound in rows:
                try:
                    messages[message_id] = (
                        parent,
                        decode(Message, body, where=f"message {message_id}"),
                    )
                except AgentctlError as exc:
                    messages[message_id] = (parent, exc.message)
        return MessageLinks(messages, tips, unreadable)

    def _tips(self) -> tuple[dict[int, int | None], dict[int, str]]:
        """Each checkpoint's last message, and why a checkpoint does not load: every row
        validated in one call where each is sound (_SOUND), else one by one as
        SQLReads.message_links does."""
        from agentctl.errors import AgentctlError

        rows = self.checkpoint_rows
        if rows and all(r[12] for r in rows):
            try:
                checkpoints = _validated(rows)
            except (AgentctlError, ValueError, RecursionError):  # ValidationError: a ValueError
                checkpoints = None
            if checkpoints is not None:
                return {c.id: c.message_tip for c in checkpoints}, {}
        tips: dict[int, int | None] = {}
        unreadable: dict[int, str] = {}
        for row in rows:
            try:
                tips[row[1]] = checkpoint_of(self.session_id, row[1:11]).message_tip
            except (AgentctlError, ValueError, KeyError, TypeError) as exc:
                unreadable[row[1]] = getattr(exc, "message", str(exc))[:200]
        return tips, unreadable

    def kept_listing(self) -> KeptListing | None:
        """As SQLReads.kept_listing, from the pass's row."""
        from agentctl.store.listing import from_row

        return None if self.listing_row is None else from_row(self.listing_row[1:])

    def kept_history(self) -> list[CheckpointSummary] | None:
        """As SQLReads.history (kept): the kept listing's checkpoints and the rows after it,
        where a listing of the session's is kept (store/listing.py)."""
        from agentctl.store.listing import from_row, summaries

        row = None if self.listing_row is None else self.listing_row[1:]
        if row is None or from_row(row) is None:
            return None
        with translated(self.path, self.session_id):
            listed = summaries(
                from_row(row), cache_owner(self.session_id, self.created_at), self.head
            )
        if not listed:
            return self.history()
        return listed + self._summaries(listed[-1].id)


def _above(value: Any, after: int) -> bool:
    """`value > after` as SQLite compares a column with an integer: text and blobs are above
    every number."""
    if isinstance(value, (int, float)):
        return value > after
    return value is not None


def _sound(rows: list[Any]) -> bool:
    """Whether every one of these sound rows (_SOUND: ids and tips integers, text where text
    belongs) loads as a Checkpoint, at the cost of two calls: its kind and states are of
    their enums, its detail a JSON object, and its task and usage validate, each list in one
    call in JSON mode (which refuses a stored version that is not the current one: those
    rows go the way codec.decode goes, _validated)."""
    from pydantic import ValidationError

    kinds, states = _values("CheckpointKind"), _values("State")
    for r in rows:
        if r[3] not in kinds or r[4] not in states or r[5] not in states:
            return False
        if r[7] != "{}" and type(json.loads(r[7])) is not dict:
            return False
    try:
        tasks = _adapter("Task").validate_json("[" + ",".join(r[8] for r in rows) + "]")
        usages = _adapter("Usage").validate_json("[" + ",".join(r[9] for r in rows) + "]")
    except ValidationError:
        return False
    return len(tasks) == len(rows) and len(usages) == len(rows)


def _values(enum: str) -> frozenset[str]:
    from agentctl.domain import lifecycle

    return frozenset(e.value for e in getattr(lifecycle, enum))


def _validated(rows: list[Any]) -> list[Checkpoint] | None:
    """The checkpoints of a session's sound rows, validated as `checkpoint_of` validates each
    (the objects json gives, checked by the same models in Python mode), in one call; None
    when a row is not what `checkpoint_of` reads (a detail that is not an object, a task or
    usage JSON that is not one value each)."""
    from agentctl.store.codec import upgrade

    tasks = json.loads("[" + ",".join(r[8] for r in rows) + "]")
    usages = json.loads("[" + ",".join(r[9] for r in rows) + "]")
    if len(tasks) != len(rows) or len(usages) != len(rows):
        return None
    if not all(isinstance(t, dict) for t in tasks) or not all(isinstance(u, dict) for u in usages):
        return None  # codec.decode's "not a JSON object"
    task_model, usage_model = _model("Task"), _model("Usage")
    tasks = [upgrade(task_model, t) for t in tasks]  # as codec.decode: raises when newer
    usages = [upgrade(usage_model, u) for u in usages]
    payload = []
    for r, task, usage in zip(rows, tasks, usages, strict=True):
        detail = json_object(r[7])
        payload.append(
            {
                "id": r[1],
                "parent": r[2],
                "kind": r[3],
                "from_state": r[4],
                "to_state": r[5],
                "created_at": r[6],
                "detail": detail,
                "task": task,
                "usage": usage,
                "message_tip": r[10],
            }
        )
    result: list[Checkpoint] = _adapter("Checkpoint").validate_python(payload)
    return result


_ADAPTERS: dict[str, Any] = {}


def _model(name: str) -> Any:
    from agentctl.domain import session

    return getattr(session, name)


def _adapter(name: str) -> Any:
    """A list of the named model of domain/session.py, validated in one call."""
    adapter = _ADAPTERS.get(name)
    if adapter is None:
        from pydantic import TypeAdapter

        adapter = _ADAPTERS[name] = TypeAdapter(list[_model(name)])  # type: ignore[arg-type,misc]
    return adapter
