"""Named, ordered SQLite migrations. The store's `PRAGMA user_version` is how many have run.

Append only: never edit a migration that has shipped, add the next one. A store whose version is
higher than len(MIGRATIONS) was written by a newer agentctl and is refused before anything is
written to it.
"""

from __future__ import annotations

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
            task TEXT NOT NULL,          -- TaskState JSON snapshot (small, bounded by the task)
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

SCHEMA_VERSION = len(MIGRATIONS)
