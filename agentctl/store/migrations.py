"""Named, ordered SQLite migrations. The store's `PRAGMA user_version` is how many have run.

Append only: never edit a migration that has shipped, add the next one. A store whose version is
higher than len(MIGRATIONS) was written by a newer agentctl and is refused before anything is
written to it.

The caches beside the sessions (the `ready` and `listing` tables, store/ready.py and
store/listing.py) trust that messages and checkpoints are never changed: a migration that
rewrites either must empty them.
"""

from __future__ import annotations

# The ready conversations (store/ready.py): made by the first `keep_ready`, like the search index,
# so that no schema version is spent on a cache and an older agentctl still opens the store.
# No foreign key: that agentctl deletes sessions without knowing this table (the owner column
# tells a later session of the same id that a leftover copy is not its own).
READY_TABLE = """
CREATE TABLE IF NOT EXISTS ready (
    session_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    tip INTEGER NOT NULL,
    count INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    turn TEXT NOT NULL,
    wire TEXT NOT NULL,
    check_sum INTEGER NOT NULL
)
"""
# The kept history listings (store/listing.py): made, and kept out of older agentctls' way,
# as the ready table is.
LISTING_TABLE = """
CREATE TABLE IF NOT EXISTS listing (
    session_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    upto INTEGER NOT NULL,
    body TEXT NOT NULL,
    check_sum INTEGER NOT NULL
)
"""
CACHE_TABLES = {"ready": READY_TABLE, "listing": LISTING_TABLE}
# A kept listing stands for rows it does not read again (a resume's damage check walks only the
# rows after it): any change to a checkpoint row that is not an append (a hand edit, another
# tool) drops the session's listing, so the rows are read. Made with the first listing kept
# (all listings kept before then are dropped: no trigger saw the edits made meanwhile), and a
# listing is read only while both triggers are there (SQLiteStore.LISTING_GUARD).
LISTING_TRIGGERS = {
    "listing_dropped_by_update": """
CREATE TRIGGER IF NOT EXISTS listing_dropped_by_update AFTER UPDATE ON checkpoints
BEGIN DELETE FROM listing WHERE session_id IN (old.session_id, new.session_id); END
""",
    "listing_dropped_by_delete": """
CREATE TRIGGER IF NOT EXISTS listing_dropped_by_delete AFTER DELETE ON checkpoints
BEGIN DELETE FROM listing WHERE session_id = old.session_id; END
""",
}


MIGRATIONS: list[tuple[str, str]] = [
    (
        "m001_initial",
        """
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            info TEXT NOT NULL,          -- SessionInfo JSON, written once
            goal TEXT NOT NULL,
            title TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,    -- of the head checkpoint
            head INTEGER NOT NULL,       -- the newest checkpoint: rollback appends, so max(id)
            state TEXT NOT NULL,         -- lifecycle state at the head
            outcome TEXT
        );
        CREATE INDEX sessions_updated ON sessions (updated_at);

        -- Each message once; parent is the message before it, so branches share their prefix.
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            session_id TEXT NOT NULL,
            parent INTEGER REFERENCES messages (id),
            body TEXT NOT NULL
        );

        CREATE TABLE checkpoints (
            session_id TEXT NOT NULL REFERENCES sessions (id),
            id INTEGER NOT NULL,
            parent INTEGER,
            event TEXT NOT NULL,
            from_state TEXT NOT NULL,
            to_state TEXT NOT NULL,
            created_at TEXT NOT NULL,
            detail TEXT NOT NULL,        -- small JSON: tool name, summary, error, rollback target
            task TEXT NOT NULL,          -- Task JSON snapshot (small, bounded by the task)
            usage TEXT NOT NULL,
            message_tip INTEGER REFERENCES messages (id),
            PRIMARY KEY (session_id, id)
        ) WITHOUT ROWID;

        CREATE TABLE profile (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            body TEXT NOT NULL
        );
        """,
    ),
    (
        "m002_leases",
        """
        -- One writer per session: who holds it and until when (see store/lease.py).
        CREATE TABLE leases (
            session_id TEXT PRIMARY KEY REFERENCES sessions (id),
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            token TEXT NOT NULL,
            expires_at REAL NOT NULL
        );
        """,
    ),
]

MIGRATIONS.append(
    (
        "m003_messages_by_session",
        """
        -- verify (and later rm/prune) read a session's messages: without this, a whole-table scan
        CREATE INDEX messages_session ON messages (session_id);
        """,
    )
)

MIGRATIONS.append(
    (
        "m004_message_ids_per_session",
        """
        -- Message ids count 1, 2, 3... within their session, as on every other backend, so a
        -- checkpoint's message_tip means the same wherever the session is copied. Renumbered
        -- in the order they were written, which keeps every parent before its child.
        CREATE TEMP TABLE renumbered AS
            SELECT id AS old, row_number() OVER (PARTITION BY session_id ORDER BY id) AS new
            FROM messages;
        CREATE UNIQUE INDEX temp.renumbered_old ON renumbered (old);

        CREATE TABLE messages_v4 (
            session_id TEXT NOT NULL,
            id INTEGER NOT NULL,
            parent INTEGER,
            body TEXT NOT NULL,
            PRIMARY KEY (session_id, id),
            FOREIGN KEY (session_id, parent) REFERENCES messages_v4 (session_id, id)
        );
        INSERT INTO messages_v4 (session_id, id, parent, body)
            SELECT m.session_id, r.new, p.new, m.body
            FROM messages AS m
            JOIN renumbered AS r ON r.old = m.id
            LEFT JOIN renumbered AS p ON p.old = m.parent;

        CREATE TABLE checkpoints_v4 (
            session_id TEXT NOT NULL REFERENCES sessions (id),
            id INTEGER NOT NULL,
            parent INTEGER,
            event TEXT NOT NULL,
            from_state TEXT NOT NULL,
            to_state TEXT NOT NULL,
            created_at TEXT NOT NULL,
            detail TEXT NOT NULL,
            task TEXT NOT NULL,
            usage TEXT NOT NULL,
            message_tip INTEGER,
            PRIMARY KEY (session_id, id),
            FOREIGN KEY (session_id, message_tip) REFERENCES messages_v4 (session_id, id)
        ) WITHOUT ROWID;
        INSERT INTO checkpoints_v4
            SELECT c.session_id, c.id, c.parent, c.event, c.from_state, c.to_state,
                   c.created_at, c.detail, c.task, c.usage, t.new
            FROM checkpoints AS c LEFT JOIN renumbered AS t ON t.old = c.message_tip;

        DROP TABLE checkpoints;
        DROP TABLE messages;
        ALTER TABLE messages_v4 RENAME TO messages;
        ALTER TABLE checkpoints_v4 RENAME TO checkpoints;
        DROP TABLE temp.renumbered;
        """,
    )
)

MIGRATIONS.append(
    (
        "m005_labels",
        """
        -- The user's name and tags for a session (agentctl rename, tag): changed in place.
        ALTER TABLE sessions ADD COLUMN name TEXT;
        ALTER TABLE sessions ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
        -- `list --workspace` filters on it; written at creation, backfilled from the facts.
        ALTER TABLE sessions ADD COLUMN workspace TEXT;
        UPDATE sessions SET workspace = json_extract(info, '$.workspace');
        """,
    )
)

MIGRATIONS.append(
    (
        "m006_search_substrings",
        """
        -- The search index matched whole words (FTS5's default tokenizer: `delt` found nothing)
        -- where the other backends match substrings. It is dropped here and rebuilt by the next
        -- search with the `trigram` tokenizer (SQLiteStore._create_fts), which matches them.
        DROP TABLE IF EXISTS messages_fts;
        """,
    )
)

MIGRATIONS.append(
    (
        "m007_overview",
        """
        -- `list` reads a page of the newest sessions at a time, in the index's order.
        DROP INDEX IF EXISTS sessions_updated;
        CREATE INDEX sessions_recent ON sessions (updated_at, id);
        -- The forks of a session (`show`) from an index, not from every session's facts.
        ALTER TABLE sessions ADD COLUMN forked_from TEXT;
        UPDATE sessions SET forked_from = json_extract(info, '$.forked_from')
            WHERE json_valid(info);
        CREATE INDEX sessions_forks ON sessions (forked_from) WHERE forked_from IS NOT NULL;
        """,
    )
)

MIGRATIONS.append(
    (
        "m008_search_while_appending",
        """
        -- Each message's place in the order messages were written: the search index's rowid
        -- (store/sqlite_search.py), kept by VACUUM where the table's own rowid is not.
        ALTER TABLE messages ADD COLUMN seq INTEGER;
        UPDATE messages SET seq = rowid;
        CREATE UNIQUE INDEX messages_seq ON messages (seq);
        -- The index the first search built, 5x the text it covered, goes; SQLiteStore._open
        -- makes the one every append keeps (where this SQLite has FTS5).
        DROP TABLE IF EXISTS messages_fts;
        """,
    )
)

MIGRATIONS.append(
    (
        "m009_usage_kept_by_the_append",
        """
        -- `usage` adds up every session from its row: the model, and the head's usage (as the
        -- head checkpoint stores it), kept by every append.
        ALTER TABLE sessions ADD COLUMN model TEXT;
        ALTER TABLE sessions ADD COLUMN usage TEXT;
        UPDATE sessions SET model = json_extract(info, '$.model') WHERE json_valid(info);
        UPDATE sessions SET usage = (SELECT usage FROM checkpoints AS c
            WHERE c.session_id = sessions.id
            AND c.id = (SELECT max(id) FROM checkpoints WHERE session_id = sessions.id));
        """,
    )
)

MIGRATIONS.append(
    (
        "m010_copies_share_their_search_entry",
        """
        -- A copy of a message in the same store (a fork's) keeps its source's seq, and so
        -- shares the source's entry in the search index instead of indexing the text again
        -- (store/sqlite_search.py): a seq names one text, held by one or more messages.
        DROP INDEX messages_seq;
        CREATE INDEX messages_seq ON messages (seq);
        """,
    )
)

SCHEMA_VERSION = len(MIGRATIONS)
