"""SQLite's answers to the store-wide reads (base.Overview), from indexes and grouped queries:
`list` reads a page of the recency index at a time and stops when it has what it prints,
`show` finds forks through the index of `sessions.forked_from` (migration m007), and `usage`
and `prune` sum columns in SQL instead of decoding sessions. Each gives what the defaults of
store/overview.py give (the conformance spec compares them).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

from agentctl.errors import StoreError
from agentctl.store.base import SessionSummary, UsageFact, summary_of

SUMMARY = (
    "SELECT id, state, goal, title, head, created_at, updated_at, outcome, name, tags,"
    " workspace, (SELECT event FROM checkpoints AS c WHERE c.session_id = s.id AND c.id = s.head)"
    " FROM sessions AS s"
)
PAGE = 200  # rows of the recency index read at a time
CHUNK = 500  # ids per IN (...) list


class SQLiteOverview:
    path: Path
    _db: sqlite3.Connection

    def select_sessions(
        self, keep: Callable[[SessionSummary], bool] | None, limit: int | None
    ) -> list[SessionSummary]:
        from agentctl.store.sqlite_errors import translated as _translated

        out: list[SessionSummary] = []
        after: tuple[str, str] | None = None
        page = PAGE if keep is not None or limit is None else min(PAGE, max(limit, 1))
        with _translated(self.path):
            while limit is None or len(out) < limit:
                where = "" if after is None else " WHERE (updated_at, id) < (?, ?)"
                rows = self._db.execute(
                    f"{SUMMARY}{where} ORDER BY updated_at DESC, id DESC LIMIT {page}",
                    after or (),
                ).fetchall()
                for row in rows:
                    summary = summary_of(row)
                    if keep is None or keep(summary):
                        out.append(summary)
                if len(rows) < page:
                    break
                after = (rows[-1][6], rows[-1][0])
        return out if limit is None else out[:limit]

    def session_summary(self, session_id: str) -> SessionSummary | None:
        from agentctl.store.sqlite_errors import translated as _translated

        with _translated(self.path, session_id):
            row = self._db.execute(f"{SUMMARY} WHERE id = ?", (session_id,)).fetchone()
        return None if row is None else summary_of(row)

    def session_sizes(self, session_ids: Sequence[str]) -> dict[str, int]:
        """The bytes of each session's rows: its facts, its checkpoints' columns (8 bytes an
        integer) and its messages, summed by the database."""
        from agentctl.store.sqlite_errors import translated as _translated

        out: dict[str, int] = {}
        with _translated(self.path):
            for start in range(0, len(session_ids), CHUNK):
                chunk = list(session_ids[start : start + CHUNK])
                marks = ", ".join("?" * len(chunk))
                rows = self._db.execute(
                    "SELECT s.id, length(CAST(s.info AS BLOB)),"
                    " (SELECT sum(length(CAST(body AS BLOB)) + 24) FROM messages AS m"
                    "  WHERE m.session_id = s.id),"
                    " (SELECT sum(length(CAST(event || from_state || to_state || created_at"
                    "  || detail || task || usage AS BLOB)) + 32) FROM checkpoints AS c"
                    "  WHERE c.session_id = s.id)"
                    f" FROM sessions AS s WHERE s.id IN ({marks})",
                    chunk,
                )
                for session_id, *sizes in rows:
                    out[session_id] = sum(int(n or 0) for n in sizes)
        return out

    def usage_facts(self) -> list[UsageFact]:
        """One read of the sessions' rows: the model and the head's usage the appends keep
        there (migration 9), and for a fork the usage of the checkpoint it started from."""
        from agentctl.store.sqlite_errors import translated as _translated

        with _translated(self.path):
            rows = self._db.execute(
                "SELECT s.id, s.model, s.created_at, s.forked_from, s.usage, f.id, f.usage"
                " FROM sessions AS s LEFT JOIN checkpoints AS f ON s.forked_from IS NOT NULL"
                " AND f.session_id = s.id AND f.id = (CASE"
                "  WHEN instr(s.forked_from, ':') = 0 THEN NULL"
                "  WHEN substr(s.forked_from, instr(s.forked_from, ':') + 1) GLOB '[0-9]*'"
                "  AND NOT substr(s.forked_from, instr(s.forked_from, ':') + 1) GLOB '*[^0-9]*'"
                "  THEN CAST(substr(s.forked_from, instr(s.forked_from, ':') + 1) AS INTEGER) END)"
                " ORDER BY s.id"
            ).fetchall()
            out = []
            for sid, model, created_at, forked_from, usage, fork_point, copied in rows:
                if usage is None or model is None:  # as head() and info() say it
                    raise StoreError(
                        f"session {sid} has no checkpoints or unreadable facts",
                        hint="agentctl verify",
                    )
                head = _counts(usage)
                at = None if fork_point is None else _counts(copied)
                out.append(UsageFact(sid, model, created_at, forked_from, *head, at))
        return out

    def forks_of(self, session_id: str) -> list[tuple[str, str]]:
        from agentctl.store.sqlite_errors import translated as _translated

        with _translated(self.path, session_id):
            rows = self._db.execute(
                "SELECT id, forked_from FROM sessions"
                " WHERE forked_from >= ?1 AND forked_from < ?1 || ';' ORDER BY id",
                (session_id,),
            ).fetchall()
        out = []
        for fork, forked_from in rows:
            origin, _, at = forked_from.partition(":")
            if origin == session_id:
                out.append((fork, at))
        return out


def _counts(usage: str) -> tuple[int, int, int, int]:
    """A stored Usage's counts (fields at their defaults are left out of the stored form)."""
    import json

    u = json.loads(usage)
    if not isinstance(u, dict):
        raise ValueError("a stored usage is not a JSON object")
    return (
        int(u.get("calls", 0)),
        int(u.get("prompt_tokens", 0)),
        int(u.get("completion_tokens", 0)),
        int(u.get("unreported", 0)),
    )
