"""The work queue of a PostgreSQL store: sessions made runnable, claimed by workers.

One decision shapes it: a claim *is* the session's fenced lease. The claim statement picks a
runnable session (`FOR UPDATE SKIP LOCKED`, so workers never wait on one another) whose lease
is free or expired, and writes the worker's lease into the session row in the same
transaction. From there on the store's own fence (every append checks head and lease by the
server's clock) is the only lock: a worker killed with `kill -9` stops renewing, its lease
expires, and the next claim takes the session over where its last checkpoint left it. No job
row carries a lock of its own that could disagree with the lease.

A queue row says what a session is waiting for: `runnable` (for any worker), `running` (its
lease says by whom), `waiting` (for a person: it holds no lease and no worker), `done` or
`failed`. An answer given through `answer` waits in the row with the head it answers, so a
worker killed after committing it does not give it twice. Wake-ups: `NOTIFY agentctl_queue`
in the statement that makes a session runnable; workers LISTEN, and poll as a fallback.

psycopg is imported only by the store that hands us its connection.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentctl.errors import NotWaitingError, SessionBusyError, UsageError

if TYPE_CHECKING:
    import psycopg

    from agentctl.store.base import Store
    from agentctl.store.lease import Lease
    from agentctl.store.postgres import PostgresStore

S = "agentctl"
CHANNEL = "agentctl_queue"
DEFAULT_QUEUE = "default"

MIGRATION = f"""
CREATE TABLE {S}.queue (
    session_id text PRIMARY KEY REFERENCES {S}.sessions (id) ON DELETE CASCADE,
    queue text NOT NULL,
    priority integer NOT NULL DEFAULT 0,
    status text NOT NULL,            -- runnable | running | waiting | done | failed
    input text,                      -- an answer (or follow-up) not yet taken
    input_for integer,               -- the head it answers: taken once, never twice
    source text,                     -- where the workspace comes from (JSON), or NULL
    enqueued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    worker text,                     -- who runs it (host, pid, slot) while running
    claim text,                      -- the lease token of the claim: finishing needs it
    claimed_at timestamptz,
    claims integer NOT NULL DEFAULT 0,
    error text
);
CREATE INDEX queue_runnable ON {S}.queue (queue, priority DESC, enqueued_at)
    WHERE status IN ('runnable', 'running');
-- A global cap per queue: at most max_running sessions of it hold a live lease at once.
CREATE TABLE {S}.queue_limits (
    queue text PRIMARY KEY,
    max_running integer NOT NULL
);
-- Per model server (its base URL, or "openai"), the pace every worker keeps: the next free
-- request slot, and a slow-down after a 429 (shared, so one 429 slows every worker).
CREATE TABLE {S}.model_servers (
    server text PRIMARY KEY,
    interval_s double precision NOT NULL DEFAULT 0,
    next_at timestamptz NOT NULL DEFAULT '-infinity',
    slow_until timestamptz NOT NULL DEFAULT '-infinity'
);
"""

# Workspace snapshots every machine can read (issue 28 item 3): per session, each tree its
# workers captured, as a git pack of the objects the session's earlier trees lack, with the
# tree's recorded file permissions. Unpacked in the order they were added (each pack needs
# only the trees before it).
TREES_MIGRATION = f"""
CREATE TABLE {S}.trees (
    session_id text NOT NULL REFERENCES {S}.sessions (id) ON DELETE CASCADE,
    tree text NOT NULL,
    seq bigserial,
    pack bytea NOT NULL,
    modes text NOT NULL,
    PRIMARY KEY (session_id, tree)
);
"""

STATUSES = ("runnable", "running", "waiting", "done", "failed")


def refuse_unless_postgres(url: str, what: str) -> None:
    """Queues and workers need PostgreSQL: any other store is one line, exit 2."""
    if url.split(":", 1)[0].lower() not in ("postgresql", "postgres"):
        raise UsageError(
            f"{what} needs the PostgreSQL store (--store postgresql://USER@HOST/DB or "
            "AGENTCTL_STORE): queues and workers live there",
        )


def on(store: Store) -> PostgresStore:
    """The store as the PostgreSQL store it must be (UsageError for any other)."""
    if not hasattr(store, "with_connection"):
        raise UsageError("queues and workers need the PostgreSQL store (postgresql://…)")
    return store  # type: ignore[return-value]


@dataclass(frozen=True)
class Source:
    """Where a queued session's workspace comes from: a git repository (URL or path) and a
    ref, checked out by the worker into a scratch folder; `repo` None: an empty folder."""

    repo: str | None = None
    ref: str | None = None

    def dump(self) -> str | None:
        return None if self.repo is None else json.dumps({"repo": self.repo, "ref": self.ref})

    @classmethod
    def load(cls, text: str | None) -> Source:
        if not text:
            return cls()
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("repo"), str):
            raise ValueError("a queued session's source is not {repo, ref}")
        ref = data.get("ref")
        return cls(data["repo"], ref if isinstance(ref, str) else None)


@dataclass(frozen=True)
class Claim:
    """A session a worker took: its lease is the worker's now."""

    session_id: str
    queue: str
    input: str | None
    input_for: int | None
    source: Source
    claims: int


@dataclass(frozen=True)
class Queued:
    """What `list` shows of a session's place in the queue."""

    queue: str
    status: str
    worker: str | None
    priority: int
    error: str | None


def enqueue(
    conn: psycopg.Connection[Any],
    session_id: str,
    *,
    queue: str | None = None,
    priority: int | None = None,
    answer: str | None = None,
    answers: int | None = None,
    source: Source | None = None,
) -> None:
    """Make a session runnable (a new one, or a paused, failed or stopped one again), with an
    answer for checkpoint `answers` when given; wakes the workers of its queue. Refused while
    a worker runs it, or while an earlier answer waits to be taken (one answer per question)."""
    with conn.transaction():
        row = conn.execute(
            f"SELECT q.status, q.input IS NOT NULL, q.worker, q.queue,"
            f" s.lease_token IS NOT NULL AND s.lease_expires > clock_timestamp()"
            f" FROM {S}.sessions s LEFT JOIN {S}.queue q ON q.session_id = s.id"
            f" WHERE s.id = %s FOR UPDATE OF s",
            (session_id,),
        ).fetchone()
        if row is None:
            raise UsageError(f"no session {session_id!r}")
        status, has_input, worker, was_queue, leased = row
        if status == "running" and leased:
            raise SessionBusyError(
                f"session {session_id} is running on worker {worker}",
                hint=f"agentctl watch {session_id}",
            )
        if status == "runnable" and has_input and answer is not None:
            raise NotWaitingError(
                f"session {session_id} was answered already; a worker has not taken the answer yet",
                hint=f"agentctl watch {session_id}",
            )
        name = queue or was_queue or DEFAULT_QUEUE
        conn.execute(
            f"INSERT INTO {S}.queue (session_id, queue, priority, status, input, input_for,"
            " source) VALUES (%(s)s, %(q)s, %(p)s, 'runnable', %(i)s, %(f)s, %(src)s)"
            " ON CONFLICT (session_id) DO UPDATE SET queue = excluded.queue,"
            f" priority = coalesce(%(pp)s, {S}.queue.priority), status = 'runnable',"
            f" input = coalesce(excluded.input, {S}.queue.input),"
            f" input_for = coalesce(excluded.input_for, {S}.queue.input_for),"
            f" source = coalesce(excluded.source, {S}.queue.source),"
            " enqueued_at = clock_timestamp(), worker = NULL, claim = NULL, error = NULL",
            {
                "s": session_id,
                "q": name,
                "p": priority or 0,
                "pp": priority,
                "i": answer,
                "f": answers if answer is not None else None,
                "src": source.dump() if source else None,
            },
        )
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, name))


_CLAIM = f"""
WITH picked AS (
    SELECT q.session_id FROM {S}.queue q JOIN {S}.sessions s ON s.id = q.session_id
    WHERE q.queue = %(q)s AND q.status IN ('runnable', 'running')
    AND (s.lease_token IS NULL OR s.lease_expires <= clock_timestamp())
    AND (s.lease_token IS NULL OR s.lease_token NOT LIKE 'arriving-%%')
    ORDER BY q.priority DESC, q.enqueued_at, q.session_id
    LIMIT 1 FOR UPDATE OF q, s SKIP LOCKED
), leased AS (
    UPDATE {S}.sessions s SET lease_token = %(token)s, lease_user = %(user)s,
        lease_host = %(host)s, lease_pid = %(pid)s,
        lease_expires = clock_timestamp() + make_interval(secs => %(ttl)s)
    FROM picked WHERE s.id = picked.session_id RETURNING s.id
), claimed AS (
    UPDATE {S}.queue q SET status = 'running', worker = %(worker)s, claim = %(token)s,
        claimed_at = clock_timestamp(), claims = q.claims + 1
    FROM picked WHERE q.session_id = picked.session_id
    RETURNING q.session_id, q.queue, q.input, q.input_for, q.source, q.claims
)
SELECT c.session_id, c.queue, c.input, c.input_for, c.source, c.claims,
    (SELECT extract(epoch FROM min(s.lease_expires)) - extract(epoch FROM clock_timestamp())
     FROM {S}.queue r JOIN {S}.sessions s ON s.id = r.session_id
     WHERE r.queue = %(q)s AND r.status = 'running' AND s.lease_expires IS NOT NULL)
FROM (SELECT 1) AS one LEFT JOIN claimed c ON true
"""


def queue_limit(conn: psycopg.Connection[Any], queue: str) -> int | None:
    """The global cap of a queue, if it has one."""
    row = conn.execute(
        f"SELECT max_running FROM {S}.queue_limits WHERE queue = %s", (queue,)
    ).fetchone()
    return None if row is None else int(row[0])


def claim(
    conn: psycopg.Connection[Any], queue: str, lease: Lease, worker: str, capped: bool = False
) -> tuple[Claim | None, float | None]:
    """Take the most urgent runnable session of `queue` (or one whose worker's lease
    expired) under `lease`: one statement that picks it (`FOR UPDATE SKIP LOCKED`: claims
    never wait for one another) and writes the lease and the queue row. None when there is
    none, or when a `capped` queue's global cap is reached: its claims run one at a time in a
    transaction that locks its limit row first, so the cap holds exactly. Also: seconds until
    the first lease of a running session of the queue expires (a dead worker's session is
    claimable then), or None."""
    params = {
        "q": queue,
        "token": lease.token,
        "user": lease.user,
        "host": lease.host,
        "pid": lease.pid,
        "ttl": max(1.0, lease.expires_at - time.time()),
        "worker": worker,
    }
    if not capped:
        row = conn.execute(_CLAIM, params).fetchone()
    else:
        with conn.transaction():
            limit = conn.execute(
                f"SELECT max_running FROM {S}.queue_limits WHERE queue = %s FOR UPDATE", (queue,)
            ).fetchone()
            running = conn.execute(
                f"SELECT count(*) FROM {S}.queue q JOIN {S}.sessions s ON s.id = q.session_id"
                " WHERE q.queue = %s AND q.status = 'running'"
                " AND s.lease_token IS NOT NULL AND s.lease_expires > clock_timestamp()",
                (queue,),
            ).fetchone()
            if limit is not None and running is not None and running[0] >= limit[0]:
                return None, None
            row = conn.execute(_CLAIM, params).fetchone()
    assert row is not None
    expiry = None if row[6] is None else max(0.0, float(row[6]))
    if row[0] is None:
        return None, expiry
    return Claim(row[0], row[1], row[2], row[3], Source.load(row[4]), row[5]), expiry


def finish(
    conn: psycopg.Connection[Any],
    session_id: str,
    token: str,
    status: str,
    error: str | None = None,
    keep_input: bool = False,
) -> bool:
    """A worker is done with a session for now: its queue status and the release of its lease,
    in one transaction (no moment where it is released but still `running`). False when the
    claim was lost meanwhile (another worker took the session over): nothing is changed."""
    assert status in STATUSES
    with conn.transaction():
        row = conn.execute(
            f"UPDATE {S}.queue SET status = %s, worker = NULL, claim = NULL, error = %s"
            + ("" if keep_input else ", input = NULL, input_for = NULL")
            + " WHERE session_id = %s AND claim = %s RETURNING queue",
            (status, error, session_id, token),
        ).fetchone()
        conn.execute(
            f"UPDATE {S}.sessions SET lease_token = NULL, lease_user = NULL, lease_host = NULL,"
            " lease_pid = NULL, lease_expires = NULL WHERE id = %s AND lease_token = %s",
            (session_id, token),
        )
        if row is not None and status == "runnable":
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, row[0]))
    return row is not None


def take_input(conn: psycopg.Connection[Any], session_id: str, token: str) -> None:
    """The answer a claim carried was committed (or found already taken): never given again."""
    conn.execute(
        f"UPDATE {S}.queue SET input = NULL, input_for = NULL WHERE session_id = %s AND claim = %s",
        (session_id, token),
    )


def set_limit(conn: psycopg.Connection[Any], queue: str, max_running: int | None) -> None:
    """The global cap of a queue (None: no cap)."""
    if max_running is None:
        conn.execute(f"DELETE FROM {S}.queue_limits WHERE queue = %s", (queue,))
        return
    conn.execute(
        f"INSERT INTO {S}.queue_limits (queue, max_running) VALUES (%s, %s)"
        " ON CONFLICT (queue) DO UPDATE SET max_running = excluded.max_running",
        (queue, max_running),
    )


def status_of(conn: psycopg.Connection[Any], session_id: str) -> str | None:
    """A session's queue status (None: never queued), for `watch`: one primary-key read."""
    row = conn.execute(
        f"SELECT status FROM {S}.queue WHERE session_id = %s", (session_id,)
    ).fetchone()
    return str(row[0]) if row is not None and isinstance(row[0], str) else None


def queued(conn: psycopg.Connection[Any]) -> dict[str, Queued]:
    """Every session's place in the queue, for `list`."""
    rows = conn.execute(
        f"SELECT session_id, queue, status, worker, priority, error FROM {S}.queue"
    ).fetchall()
    return {r[0]: Queued(r[1], r[2], r[3], r[4], r[5]) for r in rows}


# -- the pace of model servers ------------------------------------------------------------------


def set_rate(conn: psycopg.Connection[Any], server: str, per_second: float | None) -> None:
    """Requests per second every worker together keeps to `server` (None or 0: no limit)."""
    interval = 0.0 if not per_second else 1.0 / per_second
    conn.execute(
        f"INSERT INTO {S}.model_servers (server, interval_s) VALUES (%s, %s)"
        " ON CONFLICT (server) DO UPDATE SET interval_s = excluded.interval_s",
        (server, interval),
    )


def next_slot(conn: psycopg.Connection[Any], server: str) -> float:
    """Reserve the next request slot of `server`: seconds to wait before sending (0: now).
    One statement: the slot is the later of now, the server's slow-down and the slot after
    the last one reserved by any worker."""
    row = conn.execute(
        f"""UPDATE {S}.model_servers AS m SET next_at =
            greatest(m.next_at, clock_timestamp(), m.slow_until)
            + make_interval(secs => m.interval_s)
        WHERE server = %s
        RETURNING extract(epoch FROM m.next_at - make_interval(secs => m.interval_s)
            - clock_timestamp())""",
        (server,),
    ).fetchone()
    return 0.0 if row is None else max(0.0, float(row[0]))


def slow_down(conn: psycopg.Connection[Any], server: str, seconds: float) -> None:
    """A 429 from `server`: no worker sends it anything for `seconds`."""
    conn.execute(
        f"INSERT INTO {S}.model_servers (server, slow_until) VALUES"
        " (%s, clock_timestamp() + make_interval(secs => %s))"
        " ON CONFLICT (server) DO UPDATE SET slow_until = greatest("
        f"{S}.model_servers.slow_until, excluded.slow_until)",
        (server, seconds),
    )


# -- workspace trees ---------------------------------------------------------------------------


def known_trees(conn: psycopg.Connection[Any], session_id: str) -> list[str]:
    """The trees of a session kept in the database, oldest first."""
    rows = conn.execute(
        f"SELECT tree FROM {S}.trees WHERE session_id = %s ORDER BY seq", (session_id,)
    ).fetchall()
    return [r[0] for r in rows]


def keep_tree(
    conn: psycopg.Connection[Any], session_id: str, tree: str, pack: bytes, modes: str
) -> None:
    conn.execute(
        f"INSERT INTO {S}.trees (session_id, tree, pack, modes) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT DO NOTHING",
        (session_id, tree, pack, modes),
    )


def tree_packs(
    conn: psycopg.Connection[Any], session_id: str, trees: list[str]
) -> list[tuple[str, bytes, str]]:
    """The packs of `trees` (tree, pack, modes), in the order they were added."""
    rows = conn.execute(
        f"SELECT tree, pack, modes FROM {S}.trees WHERE session_id = %s AND tree = ANY(%s)"
        " ORDER BY seq",
        (session_id, trees),
    ).fetchall()
    return [(r[0], bytes(r[1]), r[2]) for r in rows]
