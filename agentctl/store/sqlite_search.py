"""SQLite's search index (issue 30 item 4): kept by every append, so no search builds it.

An FTS5 table of trigrams, contentless (the text is the messages' own, not a second copy),
`detail=none` (which rows hold a trigram, not where) and `columnsize=0`: 0.6-0.7x the text it
covers, where the earlier index with its copy of the text and every trigram's positions was
about 5x. Its rowid is the message's `seq` (migration 8), a number given in the order messages
are written and kept by VACUUM, so neighbouring rows have neighbouring rowids and the lists of
rows compress. A search asks for the rows holding every trigram of the text (a superset),
newest first, and keeps those whose content holds the text itself, case-insensitively, until it
has `limit`: the first 20 hits of a common word read about 20 rows. Text of one or two
characters, which no trigram holds, is looked for in the messages, newest first.

A seq names a text, not a row (migration 10): a copy of a message in the same store (a fork's,
sqlite.copy_session) keeps its source's seq, so a fork indexes nothing again (that was half the
cost of a fork's copy), and a search hit on a seq is every message holding it. The entry stays
while any message holds its seq: deleting a session takes out only the entries no other
session's message shares, so a fork stays searchable when its source is deleted.

A row leaves the index by FTS5's 'delete' command, which must be given the text the row was
indexed with: both come from one SQL expression (TEXT) over the same stored, never changed,
message body (a copy's body is its source's, byte for byte).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentctl.domain.records import SearchHit

TABLE = "message_text"
# The text a message is indexed under: its content, where its body is JSON holding text there.
TEXT = (
    "CASE WHEN json_valid(body) THEN CASE WHEN json_type(body, '$.content') = 'text'"
    " THEN json_extract(body, '$.content') END END"
)
_ROWS = f"SELECT seq, t FROM (SELECT seq, {TEXT} AS t FROM messages{{}}) WHERE t IS NOT NULL"
_UNSHARED = (
    " AS m WHERE session_id = ?1 AND NOT EXISTS (SELECT 1 FROM messages AS other"
    " WHERE other.seq = m.seq AND other.session_id <> ?1)"
)
MAX_TERMS = 12  # trigrams asked for at most (spread over the text): the rest is checked after


def create(db: sqlite3.Connection) -> bool:
    """Make the index of every message (inside the caller's transaction); False where this
    SQLite has no FTS5 or no trigram tokenizer (3.34): `search` scans then."""
    try:
        db.execute(
            f"CREATE VIRTUAL TABLE {TABLE} USING fts5(content,"
            " tokenize = 'trigram case_sensitive 0', content = '', detail = none,"
            " columnsize = 0)"
        )
    except sqlite3.OperationalError:
        return False
    db.execute(f"INSERT INTO {TABLE} (rowid, content) {_ROWS.format('')}")
    return True


def probe(db: sqlite3.Connection) -> None:
    """Open the index and read its structure, as an append's insert will (store damage there
    raises here)."""
    db.execute(f"SELECT rowid FROM {TABLE} WHERE {TABLE} MATCH '\"zzz\"' LIMIT 1").fetchall()


def next_seq(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT coalesce(max(seq), 0) + 1 FROM messages").fetchone()[0])


def add(db: sqlite3.Connection, session_id: str, first: int, last: int) -> None:
    """Index a session's messages `first` to `last` (just written, in this transaction)."""
    db.execute(
        f"INSERT INTO {TABLE} (rowid, content)"
        f" {_ROWS.format(' WHERE session_id = ? AND id BETWEEN ? AND ?')}",
        (session_id, first, last),
    )


def remove(db: sqlite3.Connection, session_id: str) -> None:
    """Take a session's messages out of the index (before they are deleted), except those whose
    entry a message of another session shares (a fork's copy, or the source a fork copied)."""
    db.execute(
        f"INSERT INTO {TABLE} ({TABLE}, rowid, content) SELECT 'delete', seq, t FROM"
        f" ({_ROWS.format(_UNSHARED)})",
        (session_id,),
    )


def terms(text: str) -> str:
    """An FTS5 query for the rows holding every trigram of `text` (at most MAX_TERMS of them,
    spread over it), each quoted as a string: the text is never query syntax."""
    grams = list(dict.fromkeys(text[i : i + 3] for i in range(len(text) - 2)))
    if len(grams) > MAX_TERMS:
        step = (len(grams) - 1) / (MAX_TERMS - 1)
        grams = [grams[round(i * step)] for i in range(MAX_TERMS)]
    return " AND ".join('"' + gram.replace('"', '""') + '"' for gram in grams)


def search(db: sqlite3.Connection, indexed: bool, text: str, limit: int) -> list[SearchHit]:
    """Messages whose content holds `text`, case-insensitively, newest first, at most
    `limit`; the snippet made as every backend makes it (base.snippet_around)."""
    from agentctl.domain.records import SearchHit
    from agentctl.store.base import find_folded, snippet_around

    needle = text.casefold()
    rows: Iterable[tuple[str, int, str]]
    if indexed and len(text) >= 3:
        found = db.execute(
            f"SELECT rowid FROM {TABLE} WHERE {TABLE} MATCH ? ORDER BY rowid DESC", (terms(text),)
        )
        rows = (
            row
            for seq in found
            for row in db.execute(  # the message and its copies, the newest copy first
                "SELECT session_id, id, body FROM messages WHERE seq = ? ORDER BY rowid DESC", seq
            ).fetchall()
        )
    else:
        rows = db.execute("SELECT session_id, id, body FROM messages ORDER BY seq DESC, rowid DESC")
    hits: list[SearchHit] = []
    for row in rows:
        try:
            body = json.loads(row[2])
            content, role = body["content"], body["role"]
        except (ValueError, TypeError, KeyError, RecursionError):
            continue  # damaged: verify says so; search passes it over
        if not isinstance(content, str) or (at := find_folded(content, needle)) < 0:
            continue
        (checkpoint,) = db.execute(
            "SELECT min(id) FROM checkpoints WHERE session_id = ? AND message_tip >= ?",
            (row[0], row[1]),
        ).fetchone()
        snippet = snippet_around(content, at, len(text))
        hits.append(SearchHit(row[0], int(checkpoint or 0), str(role), snippet))
        if len(hits) >= limit:
            break
    return hits
