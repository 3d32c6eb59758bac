"""What the store-wide commands read (base.Overview), built on the session tree: the defaults a
backend without an index keeps (memory, PostgreSQL for now; JSON lines, whose sessions are
folders of logs, sums its files' sizes), each O(sessions) reads. SQLite overrides them with
grouped queries and an index of forks (store/sqlite_overview.py), so `show`, `list`, `usage`
and `prune --dry-run` cost what they show however many sessions the store holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from agentctl.store.base import SessionSummary, UsageFact, UsageTotal, fork_point

if TYPE_CHECKING:
    from agentctl.store.base import Store


class OverviewDefaults:
    """BaseStore's (store/core.py) defaults of the Overview capability: each method uses only
    the session tree, so its answer is the reference an override must give."""

    def select_sessions(
        self: Store, keep: Callable[[SessionSummary], bool] | None, limit: int | None
    ) -> list[SessionSummary]:
        out: list[SessionSummary] = []
        if limit is not None and limit <= 0:
            return out
        for summary in self.list_sessions():
            if keep is None or keep(summary):
                out.append(summary)
                if limit is not None and len(out) >= limit:
                    break
        return out

    def session_summary(self: Store, session_id: str) -> SessionSummary | None:
        return next((s for s in self.list_sessions() if s.id == session_id), None)

    def session_sizes(self: Store, session_ids: Sequence[str]) -> dict[str, int]:
        """The bytes of each session's stored form: its facts, checkpoints and messages as the
        codec writes them."""
        from agentctl.errors import UnknownSessionError
        from agentctl.store.codec import encode

        out: dict[str, int] = {}
        for session_id in session_ids:
            try:
                size = len(encode(self.info(session_id)).encode())
                links = self.message_links(session_id)
                for summary in self.history(session_id, kept=False):
                    size += len(encode(self.get_checkpoint(session_id, summary.id)).encode())
            except UnknownSessionError:
                continue
            for _parent, message in links.messages.values():
                text = message if isinstance(message, str) else encode(message)
                size += len(text.encode())
            out[session_id] = size
        return out

    def usage_facts(self: Store) -> list[UsageFact]:
        return [usage_fact(self, session_id) for session_id in self.match_sessions("")]

    def usage_totals(self: Store, by: str, since: datetime | None) -> list[UsageTotal]:
        return usage_totals_of(self.usage_facts(), by, since)

    def sessions_before(self: Store, cutoff: datetime) -> list[SessionSummary]:
        out = []
        for summary in self.list_sessions():
            updated = parse_stamp(summary.updated_at)
            if updated is not None and updated < cutoff:
                out.append(summary)
        return out

    def forks_of(self: Store, session_id: str) -> list[tuple[str, str]]:
        out = []
        for other in self.match_sessions(""):
            origin, _, at = (self.info(other).forked_from or "").partition(":")
            if origin == session_id:
                out.append((other, at))
        return out


def usage_fact(store: Store, session_id: str) -> UsageFact:
    """One session's UsageFact, from its facts, its head and (a fork) where it started."""
    from agentctl.errors import UnknownCheckpointError

    info, usage = store.info(session_id), store.head(session_id).usage
    copied = None
    at = fork_point(info.forked_from)
    if at is not None:
        try:
            u = store.get_checkpoint(session_id, at).usage
            copied = (u.calls, u.prompt_tokens, u.completion_tokens, u.unreported)
        except UnknownCheckpointError:
            pass
    return UsageFact(
        session_id,
        info.model,
        info.created_at,
        info.forked_from,
        usage.calls,
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.unreported,
        copied,
    )


def parse_stamp(stamp: str) -> datetime | None:
    """A stored time (ISO 8601; without a zone: UTC), or None when it does not read as one
    (an edited row's text, or its bytes or number: not text at all)."""
    try:
        when = datetime.fromisoformat(stamp)
    except (ValueError, TypeError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def own_usage(fact: UsageFact) -> tuple[int, int, int]:
    """The calls, prompt and completion tokens a session made itself. Usage is carried
    forward, so the head counts every call of its history, and a fork's history starts with
    the checkpoints it copied, whose calls its origin made and counts (two forks tripled a
    session's cost): taken off."""
    calls, prompt, completion = fact.calls, fact.prompt_tokens, fact.completion_tokens
    if fact.copied is not None:
        calls = max(0, calls - fact.copied[0])
        prompt = max(0, prompt - fact.copied[1])
        completion = max(0, completion - fact.copied[2])
    return calls, prompt, completion


def usage_key(fact: UsageFact, by: str) -> str:
    return {"model": fact.model, "day": fact.created_at[:10], "session": fact.session_id}[by]


def usage_totals_of(
    facts: Iterable[UsageFact], by: str, since: datetime | None
) -> list[UsageTotal]:
    """`facts` summed as Overview.usage_totals says: the reference every override gives."""
    sums: dict[tuple[str, str], list[int]] = {}
    for fact in facts:
        if since is not None:
            when = parse_stamp(fact.created_at)
            if when is None or when < since:
                continue
        row = sums.setdefault((usage_key(fact, by), fact.model), [0, 0, 0, 0])
        row[0] += 1
        for n, value in enumerate(own_usage(fact), 1):
            row[n] += value
    return [UsageTotal(key, model, *row) for (key, model), row in sorted(sums.items())]
