"""SQLite's answers to the store-wide reads (base.Overview), from indexes and grouped queries:
`list` reads a page of the recency index at a time and stops when it has what it prints,
`show` finds forks through the index of `sessions.forked_from` (migration m007), and `usage`
and `prune` sum columns in SQL instead of decoding sessions. Each gives what the defaults of
store/overview.py give (the conformance spec compares them).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from agentctl.errors import StoreError
from agentctl.store.base import SessionSummary, UsageFact, UsageTotal, summary_of

SUMMARY = (
    "SELECT id, state, goal, title, head, created_at, updated_at, outcome, name, tags,"
    " workspace, (SELECT event FROM checkpoints AS c WHERE c.session_id = s.id AND c.id = s.head)"
    " FROM sessions AS s"
)
_FLAGGED = SUMMARY.replace(" FROM sessions", ", {0} FROM sessions")  # and whether undecided
PAGE = 200  # rows of the recency index read at a time

# A time as agentctl writes it, whose order as text is its order in time: a valid UTC
# "YYYY-MM-DDTHH:MM:SS", then "+00:00" with up to six digits of a second before it. SQL
# decides a cutoff for these (by their second, unless it is the cutoff's own second); every
# other time (another zone, another form, not a time) is read in Python as the defaults of
# store/overview.py read it, so the answer is theirs exactly.
_PLAIN = (  # cheapest tests first: most rows are decided by the first
    "((substr({0}, 20) = '+00:00' OR (length({0}) BETWEEN 27 AND 32"
    "  AND substr({0}, 20) GLOB '.[0-9]*+00:00'"
    "  AND NOT substr({0}, 21, length({0}) - 26) GLOB '*[^0-9]*'))"
    " AND substr({0}, 1, 19) GLOB"
    "  '[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]'"
    " AND substr({0}, 1, 4) > '0000' AND substr({0}, 12, 2) < '24'"
    " AND substr({0}, 6, 2) BETWEEN '01' AND '12' AND substr({0}, 9, 2) BETWEEN '01' AND '31'"
    " AND (substr({0}, 9, 2) <= '28' OR date(substr({0}, 1, 10), '+0 days') IS substr({0}, 1, 10)))"
)
# 1: after the cutoff's second, 0: before it, NULL: for Python to decide (?1: that second).
_SIDE = (
    f"CASE WHEN ?1 IS NULL OR NOT {_PLAIN} THEN NULL"
    " WHEN substr({0}, 1, 19) > ?1 THEN 1 WHEN substr({0}, 1, 19) < ?1 THEN 0 END"
)
_COUNT = "CAST(ifnull(json_extract({0}, '$.{1}'), 0) AS INTEGER)"
_OWN = (  # the head's count, less the fork point's (overview.own_usage)
    f"CASE WHEN f.id IS NULL THEN {_COUNT.format('s.usage', '{0}')}"
    f" ELSE max(0, {_COUNT.format('s.usage', '{0}')} - {_COUNT.format('f.usage', '{0}')}) END"
)
_FORK_POINT = (
    " FROM sessions AS s LEFT JOIN checkpoints AS f ON s.forked_from IS NOT NULL"
    " AND f.session_id = s.id AND f.id = (CASE"
    "  WHEN instr(s.forked_from, ':') = 0 THEN NULL"
    "  WHEN substr(s.forked_from, instr(s.forked_from, ':') + 1) GLOB '[0-9]*'"
    "  AND NOT substr(s.forked_from, instr(s.forked_from, ':') + 1) GLOB '*[^0-9]*'"
    "  THEN CAST(substr(s.forked_from, instr(s.forked_from, ':') + 1) AS INTEGER) END)"
)
_KEYS = {"model": "s.model", "day": "substr(s.created_at, 1, 10)", "session": "s.id"}


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
        integer) and its messages, summed by the database in one query (the ids passed as one
        JSON array)."""
        import json

        from agentctl.store.sqlite_errors import translated as _translated

        columns = ("event", "from_state", "to_state", "created_at", "detail", "task", "usage")
        checkpoint = " + ".join(f"length(CAST({c} AS BLOB))" for c in columns)
        out: dict[str, int] = {}
        if not session_ids:
            return out
        with _translated(self.path):
            rows = self._db.execute(
                "SELECT s.id, length(CAST(s.info AS BLOB)),"
                " (SELECT sum(length(CAST(body AS BLOB)) + 24) FROM messages AS m"
                "  WHERE m.session_id = s.id),"
                f" (SELECT sum({checkpoint} + 32) FROM checkpoints AS c WHERE c.session_id = s.id)"
                " FROM json_each(?) AS ids JOIN sessions AS s ON s.id = ids.value",
                (json.dumps(list(session_ids)),),
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
                f"{_FORK_POINT} ORDER BY s.id"
            ).fetchall()
            out = []
            for sid, model, created_at, forked_from, usage, fork_point, copied in rows:
                if usage is None or type(model) is not str:  # as head() and info() say it
                    raise StoreError(
                        f"session {sid} has no checkpoints or unreadable facts",
                        hint="agentctl verify",
                    )
                head = _counts(usage)
                at = None if fork_point is None else _counts(copied)
                out.append(UsageFact(sid, model, created_at, forked_from, *head, at))
        return out

    def usage_totals(self, by: str, since: datetime | None) -> list[UsageTotal]:
        """One grouped query: each session's own usage (its row's head usage less its fork
        point's) summed by key and model. Sessions started in the cutoff's own second, or at
        a time not written as agentctl writes it, come back one group each with their time,
        and are decided here."""
        from agentctl.store.overview import parse_stamp
        from agentctl.store.sqlite_errors import translated as _translated

        side = _SIDE.format("s.created_at")
        sums = ", ".join(f"sum({_OWN.format(n)})" for n in _COUNTED)
        with _translated(self.path):
            broken = self._db.execute(
                # Text where text belongs, and usage that is JSON: an edited row is named,
                # not a bare 'malformed JSON' or a comparison of bytes with text.
                "SELECT id FROM sessions WHERE usage IS NULL OR NOT json_valid(usage)"
                " OR typeof(model) != 'text' OR typeof(created_at) != 'text'"
                " ORDER BY id LIMIT 1"
            ).fetchone()
            if broken is not None:  # as head() and info() say it
                raise StoreError(
                    f"session {broken[0]} has no checkpoints or unreadable facts",
                    hint="agentctl verify",
                )
            params: tuple[str | None, ...] = ()
            if since is None:
                columns, where, group = "1, NULL", "", ""
            else:
                columns = f"{side} AS side, CASE WHEN {side} IS NULL THEN s.created_at END AS t"
                where, group, params = f" WHERE {side} IS NOT 0", ", side, t", (_second(since),)
            rows = self._db.execute(
                f"SELECT {_KEYS[by]} AS k, s.model, {columns}, count(*), {sums}"
                f"{_FORK_POINT}{where} GROUP BY k, s.model{group}",
                params,
            ).fetchall()
        totals: dict[tuple[str, str], list[int]] = {}
        for key, model, decided, stamp, *counts in rows:
            if since is not None and decided is None:
                when = parse_stamp(stamp)
                if when is None or when < since:
                    continue
            row = totals.setdefault((key, model), [0, 0, 0, 0])
            for n, value in enumerate(counts):
                row[n] += value
        return [UsageTotal(k, m, *row) for (k, m), row in sorted(totals.items())]

    def sessions_before(self, cutoff: datetime) -> list[SessionSummary]:
        """Through the recency index: the sessions whose time is plainly before the cutoff's
        second, and those Python decides (the cutoff's own second, a time in another form)."""
        from agentctl.store.overview import parse_stamp
        from agentctl.store.sqlite_errors import translated as _translated

        second = _second(cutoff)
        side = _SIDE.format("updated_at")
        with _translated(self.path):
            rows = self._db.execute(
                f"SELECT * FROM ({_FLAGGED.format(0)} WHERE updated_at < ?1 AND {side} IS 0"
                f" UNION ALL {_FLAGGED.format(1)} WHERE {side} IS NULL)"
                " ORDER BY 7 DESC, 1 DESC",
                (second,),
            ).fetchall()
        out = []
        for row in rows:
            if row[-1]:  # for Python to decide, as the default does
                when = parse_stamp(row[6])
                if when is None or when >= cutoff:
                    continue
            out.append(summary_of(row))
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


_COUNTED = ("calls", "prompt_tokens", "completion_tokens")


def _second(when: datetime | None) -> str | None:
    """The UTC second of `when` as agentctl writes it ("YYYY-MM-DDTHH:MM:SS"); None where
    there is none (no cutoff, or one out of range): then Python decides every row."""
    if when is None:
        return None
    try:
        return when.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
    except (OverflowError, ValueError):
        return None


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
