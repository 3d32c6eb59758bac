"""The default store: one SQLite file, WAL, one IMMEDIATE transaction per checkpoint.

synchronous=FULL: a checkpoint that `append` returned survives power loss, not only a killed
process. The codec (and so pydantic) is imported only by the methods that decode state, so
`list` and `history` start fast.

The file is hostile input. It is created, switched to WAL or migrated only when it is empty or
carries agentctl's `application_id` (or an older agentctl's tables); anyone else's database is
refused with nothing written. A file we may not write is opened read-only, to list, show and
verify. The head is the newest checkpoint itself (`sessions.head` is an index for `list`, never
trusted for a write), a message chain is walked only towards smaller ids so damage cannot loop,
and every read failure is a StoreError naming the session.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentctl import faults
from agentctl.atomic import fsync_dir
from agentctl.errors import (
    HeadMovedError,
    SessionExistsError,
    StoreError,
    UnknownCheckpointError,
    UnknownSessionError,
)
from agentctl.store import sqlite_search, sqlite_verify
from agentctl.store.base import (
    AppendPlan,
    CheckpointDraft,
    no_store,
    plan_all,
    plan_append,
)
from agentctl.store.core import BaseStore
from agentctl.store.lease import Lease, check_takeover, lease_from
from agentctl.store.migrations import CACHE_TABLES, LISTING_TRIGGERS, MIGRATIONS, SCHEMA_VERSION
from agentctl.store.sql import SQLReads
from agentctl.store.sqlite_errors import translated as _translated
from agentctl.store.sqlite_overview import SQLiteOverview

if TYPE_CHECKING:
    from agentctl.domain.records import SearchHit
    from agentctl.domain.session import Checkpoint, SessionInfo, UserProfile
    from agentctl.store.base import SessionReads, Store

BUSY_TIMEOUT_S = 10.0
APPLICATION_ID = 0x41474354  # "AGCT": this file is an agentctl store
INCREMENTAL = 2  # PRAGMA auto_vacuum's value for INCREMENTAL
_WITHOUT_APPROVAL = (
    "CASE WHEN instr(task, '\"approval\":') THEN json_remove(task, '$.approval') ELSE task END"
)
# copy_session's statements; {0}: the schema the source is in ("main", or "source" attached).
_COPY = {
    "found": "SELECT (SELECT 1 FROM {0}.sessions WHERE id = ?1),"
    " (SELECT max(id) FROM {0}.checkpoints WHERE session_id = ?1)",
    "tip": "SELECT max(message_tip) FROM {0}.checkpoints WHERE session_id = ? AND id <= ?",
    # {1}: within one file a copy keeps the seq, sharing its source's search entry
    # (sqlite_search.py); from another file, new seqs in order after this file's last one.
    "messages": "INSERT INTO messages (session_id, id, parent, body, seq) SELECT ?1, id,"
    " parent, body, {1} FROM {0}.messages WHERE session_id = ?2 AND id <= ?3",
    "checkpoints": "INSERT INTO checkpoints (session_id, id, parent, event, from_state,"
    " to_state, created_at, detail, task, usage, message_tip) SELECT ?, id, parent, event,"
    " from_state, to_state, created_at, detail, {1}, usage, message_tip"
    " FROM {0}.checkpoints WHERE session_id = ? AND id <= ?",
    "head": "UPDATE sessions SET (head, state, updated_at, outcome, usage) = (SELECT id,"
    " to_state, created_at, json_extract(task, '$.outcome'), usage FROM checkpoints"
    " WHERE session_id = ?1 AND id = ?2) WHERE id = ?1",
}
_TABLES = "SELECT name FROM sqlite_master WHERE type='table'"
OUR_TABLES = frozenset({"sessions", "messages", "checkpoints", "profile", "leases"})


def ensure_private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def _create_whole(path: Path) -> None:
    """A new store appears whole or not at all: built (schema, WAL mode) under a temporary
    name, private from its first byte (-wal and -shm copy its mode), then linked into place.
    Of processes creating one store at once, one link wins and the others open its file: none
    meets a half-made store (read as another program's database) or fights over the switch to
    WAL (SQLite answers "database is locked" there without waiting)."""
    temporary = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    try:
        SQLiteStore(temporary).close()
        try:
            os.link(temporary, path)
        except FileExistsError:
            if not path.exists():  # SQLite would create the link's target, with the umask's mode
                raise StoreError(f"store {path} is a link to a file that does not exist") from None
            # else another process created it first: its store is the one
        except OSError:  # a file system without hard links: nearly as good
            if not path.exists():
                os.rename(temporary, path)
        fsync_dir(path.parent)
    finally:
        temporary.unlink(missing_ok=True)


class SQLiteStore(SQLiteOverview, SQLReads, BaseStore):
    keeps_listings = True
    LISTING_GUARD = (
        " AND (SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"
        f" AND name IN {tuple(LISTING_TRIGGERS)}) = {len(LISTING_TRIGGERS)}"
    )
    _page_size: int | None = None  # read at the first write

    def __init__(
        self, path: str | os.PathLike[str], read_only: bool = False, create: bool = True
    ) -> None:
        self.path = Path(path)
        self.read_only = read_only
        try:
            if self.path.exists():
                if not self.path.is_file():
                    raise StoreError(f"store {self.path} is not a regular file")
                self.read_only = read_only or not (
                    os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK)
                )
            elif not create:
                raise no_store(f"sqlite://{self.path}")
            elif read_only:
                raise StoreError(f"store {self.path} does not exist (opened read-only)")
            else:
                ensure_private_dir(self.path.parent)
                _create_whole(self.path)
        except OSError as exc:
            raise StoreError(f"store {self.path}: {exc.strerror or exc}") from None
        with _translated(self.path):
            if self.read_only:  # an archive: list, show and verify it, write nothing
                uri = f"file:{self.path}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S)
            else:
                self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            try:
                self._open()
            except BaseException:
                self._db.close()
                raise

    def _open(self) -> None:
        # One read transaction, so the three answers are of one moment: a process creating
        # this store may commit its first migration between them (tables, but no version yet
        # would read as another program's database).
        self._db.execute("BEGIN")
        try:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            owner = self._db.execute("PRAGMA application_id").fetchone()[0]
            tables = {row[0] for row in self._db.execute(_TABLES)}
        finally:
            self._db.execute("COMMIT")
        ours = owner == APPLICATION_ID or (owner == 0 and version > 0 and "sessions" in tables)
        if not ours and (owner != 0 or version != 0 or tables):
            raise StoreError(
                f"{self.path} is not an agentctl store (another program's database); nothing "
                "was changed. Point --store at a new file"
            )
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.path} has schema version {version}, newer than this agentctl "
                f"({SCHEMA_VERSION}); upgrade agentctl to use it"
            )
        self._fts = sqlite_search.TABLE in tables
        if self.read_only:
            if version < SCHEMA_VERSION:
                raise StoreError(
                    f"store {self.path} is read-only and written by an older agentctl: it "
                    "needs an upgrade this agentctl cannot write"
                )
            return
        if version == 0 and not tables:
            # A new store frees the pages of what `rm` and `prune` delete as they go
            # (reclaim): set before anything is written, which is when SQLite takes it.
            self._db.execute("PRAGMA auto_vacuum = INCREMENTAL")
        if self._db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":  # kept in the file
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        if version < SCHEMA_VERSION or owner != APPLICATION_ID:
            with self._transaction():
                # Re-read inside the write lock: another process may have migrated meanwhile.
                version = self._db.execute("PRAGMA user_version").fetchone()[0]
                for _name, sql in MIGRATIONS[version:]:
                    for statement in _statements(sql):
                        self._db.execute(statement)
                if version < 8:  # migration 8 dropped the old index: this one is kept by appends
                    sqlite_search.create(self._db)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                self._db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            self._fts = False  # a migration may have dropped it: asked again when written

    def _indexed(self, db: sqlite3.Connection) -> bool:
        """Whether the search index exists (not where this SQLite has no FTS5: a search
        scans), asked again until it does."""
        if not self._fts:
            found = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                (sqlite_search.TABLE,),
            ).fetchone()
            self._fts = found is not None
        return self._fts

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._refuse_torn()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")

    def _refuse_torn(self) -> None:
        """A store file cut short inside a page is damaged: SQLite writes whole pages, and a
        commit there would have its checkpoint fill the torn page out with zeros (a write to a
        store `verify` calls damaged, before the damage is met). Refused before anything is
        written; reading it goes on."""
        try:
            size = os.stat(self.path).st_size
        except OSError:
            return
        page = self._page_size
        if page is None:
            page = self._page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        if page and size % page:
            raise StoreError(
                f"store {self.path} is damaged: {size} bytes is not a whole number of its "
                f"{page}-byte pages (cut short?); nothing was written",
                hint="agentctl verify",
            )

    @contextmanager
    def _unchecked(self) -> Iterator[None]:
        """Foreign keys unchecked (a pragma SQLite takes only outside a transaction)."""
        (checked,) = self._db.execute("PRAGMA foreign_keys").fetchone()
        self._db.execute("PRAGMA foreign_keys=OFF")
        try:
            yield
        finally:
            self._db.execute(f"PRAGMA foreign_keys={int(checked)}")

    # -- writes ---------------------------------------------------------------------------

    def another_handle(self) -> SQLiteStore:
        # A connection belongs to the thread that opened it: another thread opens its own.
        return SQLiteStore(self.path, read_only=self.read_only)

    def create_session(
        self, info: SessionInfo, first: CheckpointDraft, lease: Lease | None = None
    ) -> Checkpoint:
        with _translated(self.path), self._transaction() as db:
            self._new_session(db, info, first.from_state, lease)
            return self._insert(db, info.id, 1, first)

    def create_whole(
        self, info: SessionInfo, drafts: Sequence[CheckpointDraft], lease: Lease | None = None
    ) -> list[Checkpoint]:
        plans = plan_all(drafts)
        with _translated(self.path), self._transaction() as db:  # one transaction: all or none
            self._new_session(db, info, drafts[0].from_state, lease)
            return [self._put(db, info.id, plan) for plan in plans]

    def _new_session(
        self, db: sqlite3.Connection, info: SessionInfo, state: str, lease: Lease | None
    ) -> None:
        from agentctl.store.codec import encode

        if db.execute("SELECT 1 FROM sessions WHERE id = ?", (info.id,)).fetchone():
            raise SessionExistsError(f"session {info.id} exists")
        db.execute(
            "INSERT INTO sessions (id, info, goal, title, created_at, updated_at, head, state,"
            " workspace, forked_from, model) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
            (
                info.id,
                encode(info),
                info.spec.goal,
                info.spec.title,
                info.created_at,
                info.created_at,
                state,
                info.workspace,
                info.forked_from,
                info.model,
            ),
        )
        if lease is not None:  # held from the first moment anyone can see the session
            self._put_lease(db, info.id, lease)
        self._drop_caches(db, info.id)  # left by an older agentctl's delete of this id

    def copy_session(
        self,
        source: Store,
        session_id: str,
        info: SessionInfo,
        *,
        upto: int | None = None,
        lease: Lease | None = None,
        keep_approvals: bool = True,
    ) -> int:
        """The rows copied by INSERT … SELECT in one transaction, from this file or another
        SQLite store's (attached for the copy); any other source by BaseStore's default.
        Foreign keys go unchecked, as in a delete: the copy's keys are its source's under a
        new session id, so they hold where the source's do (damage is copied as it is); the
        check of every copied row's parent and message was a fifth of the copy's time."""
        if not isinstance(source, SQLiteStore) or source.read_only:
            return super().copy_session(
                source, session_id, info, upto=upto, lease=lease, keep_approvals=keep_approvals
            )
        schema = "source" if source.path.resolve() != self.path.resolve() else "main"
        with _translated(self.path, session_id), self._unchecked():
            if schema == "source":  # outside a transaction, as SQLite wants it
                self._db.execute("ATTACH DATABASE ? AS source", (str(source.path),))
            try:
                with self._transaction() as db:
                    found = db.execute(_COPY["found"].format(schema), (session_id,)).fetchone()
                    if found[0] is None:
                        raise UnknownSessionError(f"no session {session_id!r}")
                    upto = found[1] if upto is None else upto
                    if not found[1] or not 1 <= upto <= found[1]:
                        raise UnknownCheckpointError(session_id, upto or 0)
                    (tip,) = db.execute(_COPY["tip"].format(schema), (session_id, upto)).fetchone()
                    self._new_session(db, info, "", lease)
                    # Within this file the copies share their sources' search entries: nothing
                    # is indexed again. From another file they are new text here.
                    params: tuple[object, ...] = (info.id, session_id, tip or 0)
                    index = schema == "source" and self._indexed(db)
                    if schema == "source":
                        params += (sqlite_search.next_seq(db),)
                    seq = "?4 + id" if schema == "source" else "seq"
                    db.execute(_COPY["messages"].format(schema, seq), params)
                    # A fork asks again: the approval of a call is taken out of the task record.
                    task = "task" if keep_approvals else _WITHOUT_APPROVAL
                    db.execute(
                        _COPY["checkpoints"].format(schema, task), (info.id, session_id, upto)
                    )
                    if index:
                        sqlite_search.add(db, info.id, 1, tip or 0)
                    faults.hit("commit_started")  # everything written, COMMIT not yet run
                    db.execute(_COPY["head"], (info.id, upto))
                    return int(upto)
            finally:
                if schema == "source":
                    self._db.execute("DETACH DATABASE source")

    def append(self, session_id: str, expected_head: int, draft: CheckpointDraft) -> Checkpoint:
        with _translated(self.path, session_id), self._transaction() as db:
            # What the fence and the planner need, in one statement (each was one of its own):
            # the session, its head, the parent's tip, the last message id and the next seq.
            parent = -1 if draft.parent is None else draft.parent
            known, head, parent_found, tip, last_message, seq = db.execute(
                "SELECT (SELECT 1 FROM sessions WHERE id = ?1),"
                " (SELECT max(id) FROM checkpoints WHERE session_id = ?1),"
                " (SELECT 1 FROM checkpoints WHERE session_id = ?1 AND id = ?2),"
                " (SELECT message_tip FROM checkpoints WHERE session_id = ?1 AND id = ?2),"
                " (SELECT max(id) FROM messages WHERE session_id = ?1),"
                " (SELECT coalesce(max(seq), 0) + 1 FROM messages)",
                (session_id, parent),
            ).fetchone()
            self._check_head(session_id, known, head, expected_head)
            if draft.parent is not None and parent_found is None:
                raise UnknownCheckpointError(session_id, draft.parent)
            plan = self._plan_from(db, session_id, expected_head + 1, draft, tip, last_message)
            return self._put(db, session_id, plan, int(seq))

    @staticmethod
    def _check_head(session_id: str, known: object, head: object, expected_head: int) -> None:
        """The fence: the session's newest checkpoint is the one the writer last wrote."""
        if known is None:
            raise UnknownSessionError(f"no session {session_id!r}")
        if head is None:
            raise StoreError(f"session {session_id} has no checkpoints", hint="agentctl verify")
        if head != expected_head:
            raise HeadMovedError(
                f"session {session_id} moved on to checkpoint {head} "
                f"(expected {expected_head}): another process is writing to it"
            )

    def _insert(
        self, db: sqlite3.Connection, session_id: str, checkpoint_id: int, draft: CheckpointDraft
    ) -> Checkpoint:
        return self._put(db, session_id, self._plan(db, session_id, checkpoint_id, draft))

    def _put(
        self, db: sqlite3.Connection, session_id: str, plan: AppendPlan, seq: int | None = None
    ) -> Checkpoint:
        """Write one planned append (inside the caller's transaction) and move the head; `seq`
        is the store's next message seq where the caller read it already."""
        from agentctl.store.codec import encode

        checkpoint = plan.checkpoint
        usage = encode(checkpoint.usage)  # the checkpoint's, and the session's for `usage`
        if plan.messages:
            if seq is None:
                seq = sqlite_search.next_seq(db)
            db.executemany(
                "INSERT INTO messages (session_id, id, parent, body, seq) VALUES (?, ?, ?, ?, ?)",
                [
                    (session_id, m.id, m.parent, encode(m.message), seq + n)
                    for n, m in enumerate(plan.messages)
                ],
            )
            if self._indexed(db):  # the search index, in the same transaction
                sqlite_search.add(db, session_id, plan.messages[0].id, plan.messages[-1].id)
        db.execute(
            "INSERT INTO checkpoints (session_id, id, parent, event, from_state, to_state,"
            " created_at, detail, task, usage, message_tip) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                session_id,
                checkpoint.id,
                checkpoint.parent,
                checkpoint.kind,
                checkpoint.from_state,
                checkpoint.to_state,
                checkpoint.created_at,
                json.dumps(checkpoint.detail),
                encode(checkpoint.task),
                usage,
                checkpoint.message_tip,
            ),
        )
        faults.hit("commit_started")  # everything written, COMMIT not yet run
        db.execute(
            "UPDATE sessions SET head = ?, state = ?, updated_at = ?, outcome = ?, usage = ?"
            " WHERE id = ?",
            (
                checkpoint.id,
                checkpoint.to_state,
                checkpoint.created_at,
                checkpoint.task.outcome.value if checkpoint.task.outcome else None,
                usage,
                session_id,
            ),
        )
        return checkpoint

    @classmethod
    def _plan(
        cls, db: sqlite3.Connection, session_id: str, checkpoint_id: int, draft: CheckpointDraft
    ) -> AppendPlan:
        """Read what the append planner needs: the parent's tip and the next message id."""
        tip: int | None = None
        if draft.parent is not None:
            found = db.execute(
                "SELECT message_tip FROM checkpoints WHERE session_id = ? AND id = ?",
                (session_id, draft.parent),
            ).fetchone()
            if found is None:
                raise UnknownCheckpointError(session_id, draft.parent)
            tip = found[0]
        (last_message,) = db.execute(
            "SELECT max(id) FROM messages WHERE session_id = ?", (session_id,)
        ).fetchone()
        return cls._plan_from(db, session_id, checkpoint_id, draft, tip, last_message)

    @staticmethod
    def _plan_from(
        db: sqlite3.Connection,
        session_id: str,
        checkpoint_id: int,
        draft: CheckpointDraft,
        tip: int | None,
        last_message: int | None,
    ) -> AppendPlan:
        """The append planned from what was read: the parent's tip and the last message id."""

        def parent_of(message: int) -> int | None:  # a compaction only: rare
            row = db.execute(
                "SELECT parent FROM messages WHERE session_id = ? AND id = ?",
                (session_id, message),
            ).fetchone()
            if row is None:
                raise StoreError(f"session {session_id}: message {message} is missing")
            return None if row[0] is None else int(row[0])

        return plan_append(
            draft,
            checkpoint_id=checkpoint_id,
            parent_tip=tip,
            next_message_id=(last_message or 0) + 1,
            parent_of=parent_of,
        )

    # -- reads ----------------------------------------------------------------------------

    def match_sessions(self, prefix: str) -> list[str]:
        with _translated(self.path):
            # A range of the primary key, not substr(): SQLite's length() stops at a NUL, so
            # a damaged id holding one would match no prefix of itself.
            rows = self._db.execute(
                "SELECT id FROM sessions WHERE id >= ?1 AND id < ?2 ORDER BY id",
                (prefix, prefix + "\U0010ffff"),
            ).fetchall()
        return [row[0] for row in rows]

    def acquire_lease(self, session_id: str, lease: Lease) -> None:
        with _translated(self.path), self._transaction() as db:
            if db.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is None:
                raise UnknownSessionError(f"no session {session_id!r}")
            row = db.execute(
                "SELECT host, pid, token, expires_at FROM leases WHERE session_id = ?",
                (session_id,),
            ).fetchone()
            check_takeover(session_id, lease_from(*row) if row else None, lease)
            self._probe_appends(db, session_id)
            self._put_lease(db, session_id, lease)

    def _probe_appends(self, db: sqlite3.Connection, session_id: str) -> None:
        """Read the ends of what the session's appends write through (its messages, the
        order of all messages, the search index), so that damage there refuses the lease
        before it is written, not the append after it: a run that fails writes nothing."""
        db.execute("SELECT max(id) FROM messages WHERE session_id = ?", (session_id,)).fetchone()
        db.execute("SELECT max(seq) FROM messages").fetchone()
        db.execute("SELECT max(id) FROM checkpoints WHERE session_id = ?", (session_id,)).fetchone()
        if self._indexed(db):
            sqlite_search.probe(db)

    @staticmethod
    def _put_lease(db: sqlite3.Connection, session_id: str, lease: Lease) -> None:
        db.execute(
            "INSERT INTO leases (session_id, host, pid, token, expires_at) VALUES (?,?,?,?,?)"
            " ON CONFLICT (session_id) DO UPDATE SET host = excluded.host, pid = excluded.pid,"
            " token = excluded.token, expires_at = excluded.expires_at",
            (session_id, lease.host, lease.pid, lease.token, lease.expires_at),
        )

    def set_labels(self, session_id: str, name: str | None, tags: tuple[str, ...]) -> None:
        with _translated(self.path, session_id), self._transaction() as db:
            found = db.execute(
                "UPDATE sessions SET name = ?, tags = ? WHERE id = ? RETURNING id",
                (name, json.dumps(list(tags)), session_id),
            ).fetchone()
            if found is None:
                raise UnknownSessionError(f"no session {session_id!r}")

    def delete_session(self, session_id: str) -> None:
        """All of a session's rows, in one transaction, without checking foreign keys: every
        key points within the session, so nothing left behind can point at what goes, and
        the check of each message's children (no index on `parent`) made deleting N messages
        cost N² (17 s for 10,000)."""
        with _translated(self.path, session_id), self._unchecked(), self._transaction() as db:
            if db.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is None:
                raise UnknownSessionError(f"no session {session_id!r}")
            if self._indexed(db):
                sqlite_search.remove(db, session_id)
            self._drop_caches(db, session_id)
            for table in ("checkpoints", "messages", "leases", "sessions"):
                key = "id" if table == "sessions" else "session_id"
                db.execute(f"DELETE FROM {table} WHERE {key} = ?", (session_id,))

    def _rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with _translated(self.path):
            return self._db.execute(sql.replace("{T}", ""), params).fetchall()

    def _reading(self, session_id: str | None = None) -> AbstractContextManager[None]:
        return _translated(self.path, session_id)

    def _keep_cache(
        self, session_id: str, table: str, columns: tuple[str, ...], values: Sequence[object]
    ) -> None:
        """Replace a session's row in one of the cache tables (made by its first row)."""
        with _translated(self.path, session_id), self._transaction() as db:
            if db.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is None:
                raise UnknownSessionError(f"no session {session_id!r}")
            db.execute(CACHE_TABLES[table])
            if table == "listing":
                self._guard_listings(db)
            db.execute(
                f"INSERT OR REPLACE INTO {table} (session_id, {', '.join(columns)})"
                f" VALUES (?{', ?' * len(columns)})",
                (session_id, *values),
            )
            faults.hit("commit_started")  # written, not committed

    def _guard_listings(self, db: sqlite3.Connection) -> None:
        """The triggers that drop a session's kept listing when one of its checkpoint rows is
        changed or deleted (migrations.LISTING_TRIGGERS), made where they are missing; the
        listings kept without them are dropped then (edits may have gone unseen)."""
        names = tuple(LISTING_TRIGGERS)
        found = db.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name IN (?, ?)", names
        ).fetchone()[0]
        if found != len(names):
            db.execute("DELETE FROM listing")
            for name, statement in LISTING_TRIGGERS.items():
                db.execute(f"DROP TRIGGER IF EXISTS {name}")
                db.execute(statement)

    def _drop_caches(self, db: sqlite3.Connection, session_id: str) -> None:
        """Remove the session's ready conversation and kept listing, where their tables exist
        (the triggers that name a listing table dropped by hand go with it: they would fail
        the delete)."""
        for table in CACHE_TABLES:
            found = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
            ).fetchone()
            if found is not None:
                db.execute(f"DELETE FROM {table} WHERE session_id = ?", (session_id,))
            elif table == "listing":
                for name in LISTING_TRIGGERS:
                    db.execute(f"DROP TRIGGER IF EXISTS {name}")

    def lease_of(self, session_id: str) -> Lease | None:
        with _translated(self.path, session_id):
            row = self._db.execute(
                "SELECT s.id, l.host, l.pid, l.token, l.expires_at FROM sessions s"
                " LEFT JOIN leases l ON l.session_id = s.id WHERE s.id = ?",
                (session_id,),
            ).fetchone()
        if row is None:
            raise UnknownSessionError(f"no session {session_id!r}")
        return None if row[3] is None else lease_from(*row[1:])

    def release_lease(self, session_id: str, token: str) -> None:
        with _translated(self.path), self._transaction() as db:
            db.execute("DELETE FROM leases WHERE session_id = ? AND token = ?", (session_id, token))

    def search(self, text: str, limit: int) -> list[SearchHit]:
        """From the index every append keeps (store/sqlite_search.py); by scanning every
        session where this SQLite has no FTS5."""
        from agentctl.store.base import scan_search

        with _translated(self.path):
            indexed = self._indexed(self._db)
            if not indexed and len(text) >= 3:
                return scan_search(self, text, limit)
            return sqlite_search.search(self._db, indexed, text, limit)

    def session_reads(self, session_ids: Sequence[str] | None = None) -> Iterator[SessionReads]:
        """Every session in one ordered pass of each table (store/sqlite_verify.py); named
        sessions through the per-session reads."""
        if session_ids is not None:
            return super().session_reads(session_ids)
        return sqlite_verify.session_reads(self, self.path, self._db)

    def reclaim(self) -> None:
        """Give back the pages deleted sessions held, at the cost of what was deleted: a
        store in auto_vacuum=INCREMENTAL mode (every store this agentctl creates) moves its
        last pages into the free ones and cuts the file. A store made before is switched to
        that mode by one last VACUUM of the whole file (what every `rm` and `prune` did)."""
        with _translated(self.path):
            if self._db.execute("PRAGMA auto_vacuum").fetchone()[0] == INCREMENTAL:
                # Run to its end: Python's execute() would step it once, one page.
                self._db.executescript("PRAGMA incremental_vacuum;")
            else:
                self._db.execute("PRAGMA auto_vacuum = INCREMENTAL")
                self._db.execute("VACUUM")

    def check(self) -> list[str]:
        with _translated(self.path):
            verdicts = [row[0] for row in self._db.execute("PRAGMA integrity_check")]
            broken = self._db.execute("PRAGMA foreign_key_check").fetchall()
            tables = {row[0] for row in self._db.execute(_TABLES)}
        problems = [] if verdicts == ["ok"] else [f"integrity_check: {v}" for v in verdicts]
        problems += [f"table {name} is missing" for name in sorted(OUR_TABLES - tables)]
        problems += [f"foreign key broken: {row}" for row in broken]
        return problems

    def load_profile(self) -> UserProfile:
        from agentctl.domain.session import UserProfile
        from agentctl.store.codec import decode

        with _translated(self.path):
            row = self._db.execute("SELECT body FROM profile WHERE id = 1").fetchone()
        return UserProfile() if row is None else decode(UserProfile, row[0], where="profile")

    def update_profile(self, change: Callable[[UserProfile], UserProfile]) -> UserProfile:
        from agentctl.domain.session import UserProfile
        from agentctl.store.codec import decode, encode

        try:
            with _translated(self.path), self._transaction() as db:  # the write lock
                row = db.execute("SELECT body FROM profile WHERE id = 1").fetchone()
                current = (
                    UserProfile() if row is None else decode(UserProfile, row[0], where="profile")
                )
                try:
                    profile = change(current)
                except Exception as exc:  # the caller's refusal, not a damaged store
                    raise _Refused(exc) from exc
                db.execute(
                    "INSERT INTO profile (id, body) VALUES (1, ?)"
                    " ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                    (encode(profile),),
                )
        except _Refused as refused:
            raise refused.cause from None
        return profile

    def close(self) -> None:
        self._db.close()


class _Refused(Exception):  # carries the change's own exception out of _translated
    def __init__(self, cause: Exception) -> None:
        self.cause = cause


def _statements(script: str) -> Iterator[str]:
    """Split a script into statements. Not executescript(): it would COMMIT our transaction."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer
            buffer = ""
    if buffer.strip():
        yield buffer
