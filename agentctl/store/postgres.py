"""The PostgreSQL store: one session history for a team, or for agents on several machines.

Tables live in their own schema, `agentctl`, so a database shared with other software is safe.
Checkpoints and messages are insert-only (each message once, pointing to its predecessor, so
branches share their prefix); the session row is small (head, state, lease) and is the only
row an append updates.

An append is one statement, one round trip: a data-modifying CTE moves the session's head only
if it is still the expected head *and* this writer's lease is still valid by the server's
clock, and inserts the messages and the checkpoint only from that moved row (pg_append.py).
Zero rows written means the write did not happen, whoever won. So a writer paused past its
lease (a closed lid, SIGSTOP) writes nothing after a takeover: the fence is checked in the same
statement as the write, which is what a lock with a TTL (Redis) cannot give. To keep that one
round trip, the store remembers for each session it writes the head, the head's last message
and the next message id; the fence makes a stale memory harmless (the write is refused, then
re-read).

The connection is pg_connection.py's, the schema postgres_migrations.py's, the reads shared
with SQLite sql.py's. A write whose answer was lost with the connection is checked, not
repeated.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentctl import faults
from agentctl.errors import (
    HeadMovedError,
    SessionBusyError,
    SessionExistsError,
    StoreError,
    UnknownCheckpointError,
    UnknownSessionError,
)
from agentctl.store.base import AppendPlan, CheckpointDraft, plan_all, plan_append
from agentctl.store.core import BaseStore
from agentctl.store.lease import (
    ARRIVING,
    Lease,
    arriving_error,
    holder_is_gone,
    lease_from,
    user_name,
)
from agentctl.store.pg_append import append_params, append_sql
from agentctl.store.pg_connection import PgConnection
from agentctl.store.postgres_migrations import S, migrate
from agentctl.store.sql import SQLReads

if TYPE_CHECKING:
    import psycopg

    from agentctl.domain.session import Checkpoint, SessionInfo, UserProfile
    from agentctl.store.base import Store

PROFILE_RETRIES = 30


# A copy within the database (copy_session): the source's head, then its rows to `upto`. The
# source's row is held (FOR KEY SHARE: appends to it go on) until the copy commits: a `rm` of
# it between two of the copy's statements, each reading anew, made a fork with the messages
# and no checkpoints (head 0), said to have worked.
_COPY_FOUND = f"""SELECT 1, (SELECT max(id) FROM {S}.checkpoints WHERE session_id = %(old)s)
    FROM {S}.sessions WHERE id = %(old)s FOR KEY SHARE"""
_COPY = (
    f"""INSERT INTO {S}.messages (session_id, id, parent, body)
    SELECT %(new)s, id, parent, body FROM {S}.messages WHERE session_id = %(old)s AND id <= (
        SELECT coalesce(max(message_tip), 0) FROM {S}.checkpoints
        WHERE session_id = %(old)s AND id <= %(upto)s)""",
    # A fork asks again: the approval of a call is taken out of the task record's JSON.
    f"""INSERT INTO {S}.checkpoints (session_id, id, parent, event, from_state, to_state,
        created_at, detail, task, usage, message_tip)
    SELECT %(new)s, id, parent, event, from_state, to_state, created_at, detail,
        CASE WHEN %(clear)s AND strpos(task, '"approval":') > 0
            THEN (task::jsonb - 'approval')::text ELSE task END,
        usage, message_tip
    FROM {S}.checkpoints WHERE session_id = %(old)s AND id <= %(upto)s""",
    f"""UPDATE {S}.sessions AS s SET head = c.id, state = c.to_state,
        updated_at = c.created_at, outcome = c.task::jsonb ->> 'outcome'
    FROM {S}.checkpoints AS c WHERE s.id = %(new)s AND c.session_id = %(new)s
        AND c.id = %(upto)s""",
)


def _seconds(left: Any) -> int:
    """A lease's seconds left, for a message: a damaged row's infinity is no number to round."""
    seconds = float(left)
    return 0 if seconds != seconds else round(min(max(seconds, 0.0), 1e9))


@dataclass
class _Tail:
    """What this process knows of a session it writes: enough to plan the next append."""

    head: int
    tip: int | None
    next_message_id: int


class PostgresStore(PgConnection, SQLReads, BaseStore):
    keeps_listings = True

    def __init__(self, url: str, create: bool = True) -> None:
        self._tails: dict[str, _Tail] = {}
        self._tokens: dict[str, str] = {}  # session id -> the lease this process holds
        self._cursor: psycopg.RawCursor[Any] | None = None  # the appends', kept with its connection
        self._open(url)
        try:
            with self._errors():
                migrate(self._conn, self.shown, create)
        except BaseException:
            self._conn.close()
            raise

    def another_handle(self) -> PostgresStore:
        other = PostgresStore.__new__(PostgresStore)
        other.url, other.shown = self.url, self.shown
        other._dsn, other._options = self._dsn, self._options
        other._tails, other._tokens = {}, dict(self._tokens)
        other._cursor = None
        other._conn = other._connect()  # a connection of its own, for another thread
        return other

    # -- writes -------------------------------------------------------------------------------

    def create_session(
        self, info: SessionInfo, first: CheckpointDraft, lease: Lease | None = None
    ) -> Checkpoint:
        plan = plan_append(
            first, checkpoint_id=1, parent_tip=None, next_message_id=1, parent_of=_no_parent
        )
        return self._create(info, [plan], lease)[0]

    def create_whole(
        self, info: SessionInfo, drafts: Sequence[CheckpointDraft], lease: Lease | None = None
    ) -> list[Checkpoint]:
        return self._create(info, plan_all(drafts), lease)

    def _create(
        self, info: SessionInfo, plans: list[AppendPlan], lease: Lease | None
    ) -> list[Checkpoint]:
        """A new session and its planned checkpoints, in one transaction: all or none."""

        with self._errors(info.id):
            conn = self._db()
            with conn.transaction():
                self._insert_session(conn, info, plans[0].checkpoint.from_state.value, lease)
                token = lease.token if lease else None
                for plan in plans:
                    if not self._write(conn, info.id, plan.checkpoint.id - 1, plan, token):
                        raise StoreError(
                            f"session {info.id}: its checkpoint {plan.checkpoint.id} was refused"
                        )
        if lease is not None:
            self._tokens[info.id] = lease.token
        last = plans[-1].checkpoint
        added = sum(len(plan.messages) for plan in plans)
        self._tails[info.id] = _Tail(last.id, last.message_tip, 1 + added)
        return [plan.checkpoint for plan in plans]

    def _insert_session(
        self, conn: psycopg.Connection[Any], info: SessionInfo, state: str, lease: Lease | None
    ) -> None:
        """The session's row, at head 0, held by `lease`; SessionExistsError when the id is
        taken. Inside the caller's transaction."""
        from agentctl.store.codec import encode

        created = conn.execute(
            f"INSERT INTO {S}.sessions (id, info, goal, title, created_at, updated_at,"
            " head, state, outcome, lease_token, lease_user, lease_host, lease_pid,"
            " lease_expires, workspace) VALUES (%s, %s, %s, %s, %s, %s, 0, %s, NULL, %s,"
            " %s, %s, %s, clock_timestamp() + make_interval(secs => %s), %s)"
            " ON CONFLICT (id) DO NOTHING RETURNING id",
            (
                info.id,
                encode(info),
                info.spec.goal,
                info.spec.title,
                info.created_at,
                info.created_at,
                state,
                *_lease_columns(lease),
                info.workspace,
            ),
        ).fetchone()
        if created is None:
            raise SessionExistsError(f"session {info.id} exists")

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
        """Within one database, the rows copied by INSERT … SELECT in one transaction; from
        anywhere else, BaseStore's default."""
        if not isinstance(source, PostgresStore) or source._dsn != self._dsn:
            return super().copy_session(
                source, session_id, info, upto=upto, lease=lease, keep_approvals=keep_approvals
            )
        with self._errors(session_id):
            conn = self._db()
            with conn.transaction():
                found = conn.execute(_COPY_FOUND, {"old": session_id}).fetchone()
                if found is None or found[0] is None:
                    raise UnknownSessionError(f"no session {session_id!r}")
                last = int(found[1] or 0) if upto is None else upto
                if not found[1] or not 1 <= last <= found[1]:
                    raise UnknownCheckpointError(session_id, last)
                self._insert_session(conn, info, "", lease)
                p = {"old": session_id, "new": info.id, "upto": last, "clear": not keep_approvals}
                for statement in _COPY:
                    conn.execute(statement, p)
        if lease is not None:
            self._tokens[info.id] = lease.token
        self._tails.pop(info.id, None)
        return last

    def append(self, session_id: str, expected_head: int, draft: CheckpointDraft) -> Checkpoint:
        import psycopg

        with self._errors(session_id):
            plan = self._plan(session_id, expected_head, draft)
            token = self._tokens.get(session_id)
            written: bool | None
            try:
                written = self._write(self._db(), session_id, expected_head, plan, token)
            except psycopg.OperationalError:
                if not self._conn.broken:
                    raise
                # The connection died with the statement: find out whether it was written.
                written = self._landed(session_id, expected_head, plan)
                if written is None:
                    written = self._write(self._db(), session_id, expected_head, plan, token)
            if not written:
                self._tails.pop(session_id, None)
                self._refused(session_id, expected_head, token)
        self._tails[session_id] = _Tail(
            plan.checkpoint.id,
            plan.checkpoint.message_tip,
            (plan.messages[-1].id + 1)
            if plan.messages
            else self._tails[session_id].next_message_id,
        )
        return plan.checkpoint

    def _plan(self, session_id: str, expected_head: int, draft: CheckpointDraft) -> AppendPlan:
        """The append's plan from what this process knows, reading only what it does not."""
        tail = self._tails.get(session_id)
        if tail is None or tail.head != expected_head:
            tail = self._tails[session_id] = self._read_tail(session_id)
        if draft.parent == tail.head:
            parent_tip = tail.tip
        elif draft.parent is not None:  # a rollback: the older checkpoint's last message
            row = self._retrying(
                lambda db: db.execute(
                    f"SELECT message_tip FROM {S}.checkpoints WHERE session_id = %s AND id = %s",
                    (session_id, draft.parent),
                ).fetchone()
            )
            if row is None:
                raise UnknownCheckpointError(session_id, draft.parent)
            parent_tip = row[0]
        else:
            parent_tip = None
        parents: dict[int, int | None] = {}
        if draft.keep_messages is not None and parent_tip is not None:  # a compaction: rare
            rows = self._retrying(
                lambda db: db.execute(
                    f"""WITH RECURSIVE chain (id, parent) AS (
                        SELECT id, parent FROM {S}.messages WHERE session_id = %(s)s AND id = %(t)s
                        UNION ALL
                        SELECT m.id, m.parent FROM chain CROSS JOIN LATERAL (
                            SELECT id, parent FROM {S}.messages WHERE session_id = %(s)s
                            AND id = chain.parent AND id < chain.id OFFSET 0
                        ) AS m
                    ) SELECT id, parent FROM chain""",
                    {"s": session_id, "t": parent_tip},
                ).fetchall()
            )
            parents = {int(r[0]): r[1] for r in rows}

        def parent_of(message: int) -> int | None:
            if message not in parents:
                raise StoreError(f"session {session_id}: message {message} is missing")
            return parents[message]

        return plan_append(
            draft,
            checkpoint_id=expected_head + 1,
            parent_tip=parent_tip,
            next_message_id=tail.next_message_id,
            parent_of=parent_of,
        )

    def _read_tail(self, session_id: str) -> _Tail:
        row = self._one(
            "SELECT s.head, (SELECT message_tip FROM {T}checkpoints"
            " WHERE session_id = s.id AND id = s.head),"
            " (SELECT max(id) FROM {T}messages WHERE session_id = s.id)"
            " FROM {T}sessions AS s WHERE s.id = ?",
            (session_id,),
        )
        if row is None:
            raise UnknownSessionError(f"no session {session_id!r}")
        return _Tail(int(row[0]), row[1], int(row[2] or 0) + 1)

    def _write(
        self,
        conn: psycopg.Connection[Any],
        session_id: str,
        expected_head: int,
        plan: AppendPlan,
        token: str | None,
    ) -> bool:
        """The plan's one fenced statement: True if it wrote, False if the fence refused it."""
        faults.hit("commit_started")  # the statement not yet sent
        params = append_params(session_id, expected_head, plan, token)
        cursor = self._cursor
        if cursor is None or cursor.connection is not conn:
            cursor = self._cursor = _raw_cursor(conn)
        cursor.execute(append_sql(len(plan.messages)), params)
        return cursor.rowcount == 1

    def _landed(self, session_id: str, expected_head: int, plan: AppendPlan) -> bool | None:
        """After a lost answer: True if our checkpoint is there, None if nothing was written
        (try again), False if someone else's is."""
        row = self._one(
            "SELECT event, created_at FROM {T}checkpoints WHERE session_id = ? AND id = ?",
            (session_id, expected_head + 1),
        )
        if row is None:
            return None
        return (row[0], row[1]) == (plan.checkpoint.kind.value, plan.checkpoint.created_at)

    def _holder(self, session_id: str) -> tuple[Any, ...]:
        """The session's head and lease: token, user, host, pid, seconds left by the server's
        clock. Raises UnknownSessionError."""
        row = self._one(
            "SELECT head, lease_token, lease_user, lease_host, lease_pid,"
            # each time apart: 'infinity' (a damaged row) cannot be subtracted, its epoch can
            " extract(epoch FROM lease_expires) - extract(epoch FROM clock_timestamp())"
            " FROM {T}sessions WHERE id = ?",
            (session_id,),
        )
        if row is None:
            raise UnknownSessionError(f"no session {session_id!r}")
        return tuple(row)

    def _refused(self, session_id: str, expected_head: int, token: str | None) -> None:
        """Why the fenced append wrote nothing, as the error that says so."""
        head, holder_token, user, host, pid, left = self._holder(session_id)
        if head != expected_head:
            raise HeadMovedError(
                f"session {session_id} moved on to checkpoint {head} (expected {expected_head}):"
                " another process is writing to it"
            )
        if holder_token is not None and holder_token != token and (left or 0) > 0:
            holder = Lease(host or "?", pid or 0, holder_token, 0.0, user or "")
            raise SessionBusyError(
                f"session {session_id} is running in {holder.holder()} (lease expires in "
                f"{_seconds(left)}s unless renewed); this process's lease was taken over",
                hint="wait for it to finish, or stop that process",
            )
        raise SessionBusyError(
            f"session {session_id}: this process's lease expired before the write (the "
            "store's clock decides); nothing was written",
            hint=f"agentctl resume {session_id}",
        )

    def acquire_lease(self, session_id: str, lease: Lease) -> None:
        """Read the holder, decide, then take the lease only if the holder is still the one
        read (compare-and-set). Another process winning in between is read again, so the
        error names whoever holds the session."""
        ttl = lease.expires_at - time.time()  # as the caller set it (an expired one: expired)
        with self._errors(session_id):
            for _attempt in range(5):
                seen = self._may_take(session_id, lease)
                taken = (
                    self._db()
                    .execute(
                        f"UPDATE {S}.sessions SET lease_token = %s, lease_user = %s,"
                        " lease_host = %s, lease_pid = %s,"
                        " lease_expires = clock_timestamp() + make_interval(secs => %s)"
                        " WHERE id = %s AND lease_token IS NOT DISTINCT FROM %s RETURNING id",
                        (lease.token, lease.user, lease.host, lease.pid, ttl, session_id, seen),
                    )
                    .fetchone()
                )
                if taken is not None:
                    break
            else:
                raise SessionBusyError(
                    f"session {session_id} keeps changing hands; try again",
                    hint="wait for it to finish, or stop that process",
                )
        self._tokens[session_id] = lease.token

    def set_labels(self, session_id: str, name: str | None, tags: tuple[str, ...]) -> None:
        with self._errors(session_id):
            found = self._retrying(
                lambda db: db.execute(
                    f"UPDATE {S}.sessions SET name = %s, tags = %s WHERE id = %s RETURNING id",
                    (name, json.dumps(list(tags)), session_id),
                ).fetchone()
            )
        if found is None:
            raise UnknownSessionError(f"no session {session_id!r}")

    def delete_session(self, session_id: str) -> None:
        with self._errors(session_id):
            deleted = self._retrying(  # checkpoints and messages go with it (ON DELETE CASCADE)
                lambda db: db.execute(
                    f"DELETE FROM {S}.sessions WHERE id = %s RETURNING id", (session_id,)
                ).fetchone()
            )
        if deleted is None:
            raise UnknownSessionError(f"no session {session_id!r}")
        self._tails.pop(session_id, None)
        self._tokens.pop(session_id, None)

    def _keep_cache(
        self, session_id: str, table: str, columns: tuple[str, ...], values: Sequence[object]
    ) -> None:
        """Replace a session's row in one of the cache tables (one statement: no session, no
        row)."""
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns)
        sql = (
            f"INSERT INTO {S}.{table} (session_id, {', '.join(columns)})"
            f" SELECT id{', %s' * len(columns)} FROM {S}.sessions WHERE id = %s"
            f" ON CONFLICT (session_id) DO UPDATE SET {updates} RETURNING session_id"
        )
        with self._errors(session_id):
            kept = self._retrying(lambda db: db.execute(sql, (*values, session_id)).fetchone())
        if kept is None:
            raise UnknownSessionError(f"no session {session_id!r}")

    def _may_take(self, session_id: str, lease: Lease) -> str | None:
        """The token that holds the session now (None: nobody), when `lease` may replace it;
        SessionBusyError naming the holder when it may not."""
        _head, seen, user, host, pid, left = self._holder(session_id)
        if seen is not None and seen != lease.token and str(seen).startswith(ARRIVING):
            raise arriving_error(session_id)
        if seen is not None and seen != lease.token and (left or 0) > 0:
            # a lease that does not read as one (lease_from) holds nothing, as on every backend
            held = lease_from(host, pid, seen, time.time() + float(left), user or "")
            if held is not None and not holder_is_gone(held):
                raise SessionBusyError(
                    f"session {session_id} is running in {held.holder()} "
                    f"(lease expires in {_seconds(left)}s unless renewed)",
                    hint="wait for it to finish, or stop that process",
                )
        return str(seen) if seen is not None else None

    def lease_of(self, session_id: str) -> Lease | None:
        """By the server's clock: what is left of it, added to this machine's time."""
        with self._errors(session_id):
            _head, token, user, host, pid, left = self._holder(session_id)
        try:
            remaining = float(left)  # NULL (no expiry written) holds nothing
        except (TypeError, ValueError):
            return None
        if token is None:
            return None
        return lease_from(host, pid, token, time.time() + remaining, user or "")

    def release_lease(self, session_id: str, token: str) -> None:
        with self._errors(session_id):
            self._retrying(
                lambda db: db.execute(
                    f"UPDATE {S}.sessions SET lease_token = NULL, lease_user = NULL,"
                    " lease_host = NULL, lease_pid = NULL, lease_expires = NULL"
                    " WHERE id = %s AND lease_token = %s",
                    (session_id, token),
                )
            )
        self._tokens.pop(session_id, None)

    # -- reads --------------------------------------------------------------------------------

    def match_sessions(self, prefix: str) -> list[str]:
        rows = self._rows(
            "SELECT id FROM {T}sessions WHERE left(id, length(?)) = ? ORDER BY id", (prefix, prefix)
        )
        return [row[0] for row in rows]

    def check(self) -> list[str]:
        found = self._rows(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", (S,)
        )
        missing = {"sessions", "messages", "checkpoints", "profiles"} - {r[0] for r in found}
        if missing:
            return [f"table {S}.{name} is missing" for name in sorted(missing)]
        # No foreign key guards these two (postgres_migrations.py p008): rows whose session is
        # gone are found here.
        orphans = self._rows(
            "SELECT t.name, count(*) FROM (SELECT 'messages' AS name, session_id"
            " FROM {T}messages UNION ALL SELECT 'checkpoints', session_id FROM {T}checkpoints)"
            " AS t WHERE NOT EXISTS (SELECT 1 FROM {T}sessions AS s WHERE s.id = t.session_id)"
            " GROUP BY t.name ORDER BY t.name",
            (),
        )
        return [f"table {S}.{name}: {n} rows of sessions that are not there" for name, n in orphans]

    # -- user state ---------------------------------------------------------------------------

    def load_profile(self) -> UserProfile:
        return self._read_profile()[1]

    def _read_profile(self) -> tuple[int | None, UserProfile]:
        from agentctl.domain.session import UserProfile
        from agentctl.store.codec import decode

        with self._errors():
            row = self._one(
                "SELECT version, body FROM {T}profiles WHERE user_name = ?", (user_name(),)
            )
            if row is None:
                return None, UserProfile()
            return int(row[0]), decode(UserProfile, row[1], where=f"profile of {user_name()}")

    def update_profile(self, change: Callable[[UserProfile], UserProfile]) -> UserProfile:
        """Optimistic: read (with its version), change, write only if the version is still
        the one read; another machine's update in between makes us read and change again,
        after a random pause that grows with each try (so racing machines fall out of step)."""
        import random

        from agentctl.store.codec import encode

        for attempt in range(PROFILE_RETRIES):
            if attempt:
                time.sleep(random.uniform(0, min(0.1, 0.002 * 2**attempt)))
            version, current = self._read_profile()
            profile = change(current)
            with self._errors():
                if version is None:
                    sql = (
                        f"INSERT INTO {S}.profiles (user_name, version, body) VALUES (%s, 1, %s)"
                        " ON CONFLICT (user_name) DO NOTHING RETURNING version"
                    )
                    params: tuple[Any, ...] = (user_name(), encode(profile))
                else:
                    sql = (
                        f"UPDATE {S}.profiles SET body = %s, version = version + 1"
                        " WHERE user_name = %s AND version = %s RETURNING version"
                    )
                    params = (encode(profile), user_name(), version)
                if self._db().execute(sql, params).fetchone() is not None:
                    return profile
        raise StoreError(
            f"store {self.shown}: the profile of {user_name()} kept changing under this update "
            f"({PROFILE_RETRIES} tries); nothing was lost, try again"
        )


def _lease_columns(lease: Lease | None) -> tuple[Any, ...]:
    if lease is None:
        return (None, None, None, None, 0)
    return (
        lease.token,
        lease.user,
        lease.host,
        lease.pid,
        max(1.0, lease.expires_at - time.time()),
    )


def _raw_cursor(conn: psycopg.Connection[Any]) -> psycopg.RawCursor[Any]:
    import psycopg

    return psycopg.RawCursor(conn)


def _no_parent(message: int) -> int | None:
    raise StoreError(f"message {message}: a first checkpoint has no earlier messages")
