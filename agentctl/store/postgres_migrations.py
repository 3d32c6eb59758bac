"""The PostgreSQL store's schema, as ordered, named migrations (run under an advisory lock by
migrate(); a store newer than the code is refused). Every table lives in the
schema `agentctl`, so a database shared with other software is safe.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any

from agentctl.store.pg_queue import MIGRATION as QUEUE_MIGRATION
from agentctl.store.pg_queue import TREES_MIGRATION

if TYPE_CHECKING:
    import psycopg

S = "agentctl"  # the schema every table lives in
ADVISORY_LOCK = 0x41474354  # "AGCT": migrations run one machine at a time
# A migration holds every table before it changes one; it waits this long for each (under the
# server's deadlock_timeout, 1 s by default) and, refused, lets go and tries again.
LOCK_WAIT = "200ms"
LOCK_ATTEMPTS = 100

MIGRATIONS: list[tuple[str, str]] = [
    (
        "p001_initial",
        f"""
        CREATE TABLE {S}.sessions (
            id text PRIMARY KEY,
            info text NOT NULL,              -- SessionInfo JSON, written once
            goal text NOT NULL,
            title text,
            created_at text NOT NULL,
            updated_at text NOT NULL,        -- of the head checkpoint
            head integer NOT NULL,           -- the newest checkpoint; the fence compares it
            state text NOT NULL,
            outcome text,
            lease_token text,                -- one writer: who, and until when by our clock
            lease_user text,
            lease_host text,
            lease_pid integer,
            lease_expires timestamptz
        ) WITH (fillfactor = 50);
        -- No index on the columns an append changes, and room in each page: the head moves by
        -- a HOT update (no index entries, no bloat), the one update per checkpoint.
        CREATE TABLE {S}.messages (
            session_id text NOT NULL REFERENCES {S}.sessions (id) ON DELETE CASCADE,
            id integer NOT NULL,             -- 1, 2, 3... within the session, as everywhere
            parent integer,
            body text NOT NULL,
            PRIMARY KEY (session_id, id)
        );
        CREATE TABLE {S}.checkpoints (
            session_id text NOT NULL REFERENCES {S}.sessions (id) ON DELETE CASCADE,
            id integer NOT NULL,
            parent integer,
            event text NOT NULL,
            from_state text NOT NULL,
            to_state text NOT NULL,
            created_at text NOT NULL,
            detail text NOT NULL,
            task text NOT NULL,
            usage text NOT NULL,
            message_tip integer,
            PRIMARY KEY (session_id, id)
        );
        CREATE TABLE {S}.profiles (
            user_name text PRIMARY KEY,      -- user state is per user in a shared store
            version bigint NOT NULL,         -- optimistic: an update names the one it read
            body text NOT NULL
        );
        """,
    ),
]
MIGRATIONS.append(
    (
        "p002_labels",
        f"""
        ALTER TABLE {S}.sessions ADD COLUMN name text;
        ALTER TABLE {S}.sessions ADD COLUMN tags text NOT NULL DEFAULT '[]';
        ALTER TABLE {S}.sessions ADD COLUMN workspace text;
        """,
    )
)
MIGRATIONS.append(
    (
        "p003_ready",
        f"""
        -- A session's conversation kept ready for its next request (store/ready.py): a cache.
        CREATE TABLE {S}.ready (
            session_id text PRIMARY KEY REFERENCES {S}.sessions (id) ON DELETE CASCADE,
            owner text NOT NULL,
            tip integer NOT NULL,
            count integer NOT NULL,
            tokens bigint NOT NULL,
            turn text NOT NULL,
            wire text NOT NULL,
            check_sum bigint NOT NULL
        );
        """,
    )
)
MIGRATIONS.append(
    (
        "p004_listing",
        f"""
        -- A session's history listing kept as one record (store/listing.py): a cache.
        CREATE TABLE {S}.listing (
            session_id text PRIMARY KEY REFERENCES {S}.sessions (id) ON DELETE CASCADE,
            owner text NOT NULL,
            upto integer NOT NULL,
            body text NOT NULL,
            check_sum bigint NOT NULL
        );
        """,
    )
)
MIGRATIONS.append(("p005_queue", QUEUE_MIGRATION))  # workers (store/pg_queue.py)
MIGRATIONS.append(("p006_trees", TREES_MIGRATION))  # their workspace snapshots
MIGRATIONS.append(
    (
        "p007_listing_dropped_with_its_rows",
        f"""
        -- A kept listing stands for rows a resume's damage check does not read again: a change
        -- to a checkpoint row that is not an append (an edit, a delete) drops its session's
        -- listing in the same statement, so the rows are read (store/listing.py). Once a
        -- statement; the listings kept before, when no trigger saw the edits, are dropped.
        CREATE FUNCTION {S}.listing_dropped() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM {S}.listing WHERE session_id IN (SELECT session_id FROM changed);
            RETURN NULL;
        END $$;
        CREATE TRIGGER listing_dropped_by_update AFTER UPDATE ON {S}.checkpoints
            REFERENCING OLD TABLE AS changed
            FOR EACH STATEMENT EXECUTE FUNCTION {S}.listing_dropped();
        CREATE TRIGGER listing_dropped_by_delete AFTER DELETE ON {S}.checkpoints
            REFERENCING OLD TABLE AS changed
            FOR EACH STATEMENT EXECUTE FUNCTION {S}.listing_dropped();
        DELETE FROM {S}.listing;
        """,
    )
)
MIGRATIONS.append(
    (
        "p008_rows_go_with_their_session",
        f"""
        -- A session's messages and checkpoints go with it by one trigger on the session row,
        -- not by foreign keys: a key is checked at every insert (a locking read of the session
        -- row per row: 6-8 us of the 19-20 us the server spent on an append), and every insert
        -- already names a session row it holds: an append's rows are selected FROM the row
        -- its fenced UPDATE locked, a create's or a copy's follow the session row inserted in
        -- the same transaction. `verify` reports any row whose session is gone (check()).
        ALTER TABLE {S}.messages DROP CONSTRAINT IF EXISTS messages_session_id_fkey;
        ALTER TABLE {S}.checkpoints DROP CONSTRAINT IF EXISTS checkpoints_session_id_fkey;
        CREATE FUNCTION {S}.session_rows_dropped() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM {S}.checkpoints WHERE session_id IN (SELECT id FROM gone);
            DELETE FROM {S}.messages WHERE session_id IN (SELECT id FROM gone);
            RETURN NULL;
        END $$;
        CREATE TRIGGER session_rows_dropped AFTER DELETE ON {S}.sessions
            REFERENCING OLD TABLE AS gone
            FOR EACH STATEMENT EXECUTE FUNCTION {S}.session_rows_dropped();
        """,
    )
)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: psycopg.Connection[Any], shown: str, may_create: bool) -> None:
    """Bring the store's schema up to date, one machine at a time (an advisory lock): a store
    newer than this agentctl is refused before anything is written, and with `may_create`
    False a database without agentctl's schema is NoStoreError, nothing made."""
    from agentctl.errors import StoreError
    from agentctl.store.base import no_store

    found = version(conn)
    if found > SCHEMA_VERSION:
        raise StoreError(
            f"store {shown} has schema version {found}, newer than this agentctl "
            f"({SCHEMA_VERSION}); upgrade agentctl to use it"
        )
    if found == SCHEMA_VERSION:
        return
    if found == 0 and not may_create:
        raise no_store(shown)
    import psycopg

    for _attempt in range(LOCK_ATTEMPTS):
        try:
            _migrate(conn)
            return
        except psycopg.errors.LockNotAvailable:  # rolled back: writers go on, then again
            time.sleep(random.uniform(0.05, 0.25))
    raise StoreError(
        f"store {shown} is being written too busily to upgrade its schema "
        f"(version {found} to {SCHEMA_VERSION}): the tables could not be held",
        hint="try again, or stop the processes that write to it first",
    )


def _migrate(conn: psycopg.Connection[Any]) -> None:
    """The migrations not yet run, in one transaction. Every table is held first, all at once
    and waiting at most LOCK_WAIT for each: a migration that took them one statement at a time
    while other processes wrote (an append holds sessions, messages and checkpoints in its
    one statement) met them in the other order, and the server broke the deadlock by failing
    the migration or an append of a running session."""
    with conn.transaction():
        # Machines starting at once: one migrates, the others wait and find it done.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK,))
        found = version(conn)
        if found == SCHEMA_VERSION:
            return
        tables = conn.execute(
            "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = %s ORDER BY 1", (S,)
        ).fetchall()
        conn.execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'")
        if tables:
            held = ", ".join(f'{S}."{t}"' for (t,) in tables)
            conn.execute(f"LOCK TABLE {held} IN ACCESS EXCLUSIVE MODE")
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {S}")
        conn.execute(f"CREATE TABLE IF NOT EXISTS {S}.schema_version (version integer NOT NULL)")
        for _name, sql in MIGRATIONS[found:]:
            conn.execute(sql)  # our own constant SQL
        conn.execute(f"DELETE FROM {S}.schema_version")
        conn.execute(f"INSERT INTO {S}.schema_version VALUES (%s)", (SCHEMA_VERSION,))


def version(conn: psycopg.Connection[Any]) -> int:
    """The schema version of the store (0: none). A catalog query, not to_regclass(): that may
    answer from a cache that predates the migration another machine committed while we
    waited for the lock."""
    row = conn.execute(
        "SELECT count(*) FROM pg_catalog.pg_tables"
        " WHERE schemaname = %s AND tablename = 'schema_version'",
        (S,),
    ).fetchone()
    if row is None or not row[0]:
        return 0
    found = conn.execute(f"SELECT max(version) FROM {S}.schema_version").fetchone()
    return int(found[0] or 0) if found else 0
