"""`agentctl verify`: rebuild each session from its events and compare with what is stored.

Replays the lifecycle through the transition table (every stored from/to state must be what the
table gives), checks that checkpoints form a tree numbered without gaps, that every checkpoint's
conversation extends its parent's, that every stored state decodes, that the session index agrees
with the head, and asks the backend for its own integrity check. Read-only: it takes no lease.
"""

from __future__ import annotations

from collections.abc import Mapping

from agentctl.domain.checkpoints import CompactionDetail
from agentctl.domain.lifecycle import CheckpointKind
from agentctl.domain.records import SessionReport
from agentctl.errors import AgentctlError
from agentctl.store.base import (
    DAMAGED,
    CheckpointSummary,
    MessageGraph,
    SessionReads,
    SessionSummary,
    Store,
    listed_state,
)
from agentctl.store.listing import agrees
from agentctl.store.soundness import path_problems, tree_problems

__all__ = ["path_problems", "tree_problems", "verify_session", "verify_store"]


def verify_store(
    store: Store, session_ids: list[str] | None = None
) -> tuple[list[str], list[SessionReport]]:
    """Store-wide problems and a report per session: damage is reported, never raised. The
    sessions' records come from the store's pass over them (`session_reads`: one ordered read
    of each table where the backend has one), each checked as the per-session reads are."""
    store_problems = store.check() if session_ids is None else []
    reports: list[SessionReport] = []
    heads: dict[str, CheckpointSummary] = {}
    for reads in store.session_reads(session_ids):
        sid = reads.session_id
        try:
            history = reads.history()
            report = SessionReport(sid, len(history))
            report.problems.extend(tree_problems(history))
            if not report.problems:
                report.problems.extend(conversation_problems(history, reads.message_graph()))
            report.problems.extend(_facts_problems(reads))
            # Without a kept listing `history` reads the rows themselves: nothing to compare.
            # One that is, byte for byte, the rows' listing agrees without being parsed.
            listing = reads.kept_listing()
            if listing is not None and not agrees(listing, history):
                listed = reads.kept_history()
                if listed is not None:
                    report.problems.extend(listing_problems(history, listed))
            if history and not report.problems:
                heads[sid] = history[-1]
        except AgentctlError as exc:
            report = SessionReport(sid, 0, [f"cannot be read: {exc.message}"])
        reports.append(report)
    # The index (what `list` shows) is read after the histories: a session that moved on
    # meanwhile (verify takes no lease) shows a newer head there, never an older one.
    try:
        index = {s.id: s for s in store.list_sessions()}
    except AgentctlError as exc:
        return [*store_problems, f"the session index cannot be read: {exc.message}"], reports
    for report in reports:
        head = heads.get(report.session_id)
        if head is not None:
            report.problems.extend(_index_problems(store, head, index.get(report.session_id)))
    return store_problems, reports


def verify_session(
    store: Store, session_id: str, history: list[CheckpointSummary]
) -> SessionReport:
    report = SessionReport(session_id, len(history))
    report.problems.extend(tree_problems(history))
    if not report.problems:
        report.problems.extend(conversation_problems(history, store.message_graph(session_id)))
    return report


def _facts_problems(reads: SessionReads) -> list[str]:
    """The facts written when the session was created (its task, model, workspace): what
    resume, show and export read first."""
    try:
        reads.info()
    except AgentctlError as exc:
        return [f"its facts (task, model, workspace) cannot be read: {exc.message}"]
    return []


def _index_problems(
    store: Store, head: CheckpointSummary, summary: SessionSummary | None
) -> list[str]:
    if summary is None:
        return ["the session index does not list it"]
    if summary.state == DAMAGED:
        return [f"the session index cannot list it: {summary.goal}"]
    if type(summary.head) is not int:
        return [f"the session index says head {summary.head!r}, not a checkpoint number"]
    if (summary.head, summary.state) == (head.id, listed_state(head.to_state, head.kind)):
        return []
    if summary.head > head.id:  # it moved on after its history was read: look again
        newer = store.history(summary.id)[-1]
        state = listed_state(newer.to_state, newer.kind)
        if (summary.head, summary.state) == (newer.id, state) or summary.head < newer.id:
            return []
    return [
        f"the session index says head {summary.head} ({summary.state}), the checkpoints "
        f"say {head.id} ({head.to_state})"
    ]


def listing_problems(rows: list[CheckpointSummary], listed: list[CheckpointSummary]) -> list[str]:
    """Where the history `agentctl history` reads (the kept listing, store/listing.py, and the
    rows after it) disagrees with the rows: only an edited store has such a listing. A newer
    checkpoint in `listed` is a run that went on meanwhile (verify takes no lease)."""
    for ours, theirs in zip(rows, listed, strict=False):
        if ours != theirs:
            return [
                f"its kept history listing disagrees with checkpoint {ours.id}: the store was "
                "edited (history and rollback read that listing)"
            ]
    return []


def conversation_problems(history: list[CheckpointSummary], links: MessageGraph) -> list[str]:
    """Every message decodes, every checkpoint's last message is there, and every
    checkpoint's conversation extends its parent's (a compaction keeps its head and newest
    turns). One read of the session's messages; each check walks only the messages its
    checkpoint added, so the whole is O(checkpoints + messages)."""
    parents, tips = links.parents, links.tips
    odd = [
        f"message {i!r} has an id or a parent ({parent!r}) that is not a message number"
        for i, parent in parents.items()
        if type(i) is not int or not (parent is None or type(parent) is int)
    ]
    if odd:  # a hand edit's text where a number belongs: nothing below can order them
        return odd
    problems = [
        f"message {i} does not decode: {why}" for i, why in sorted(links.undecodable.items())
    ]
    problems += [f"checkpoint {i} does not load: {why}" for i, why in links.unreadable.items()]
    problems += [
        f"message {i} has parent {parent}: a chain can only point back (a cycle, or missing)"
        for i, parent in sorted(parents.items())
        if parent is not None and (parent >= i or parent not in parents)
    ]
    for c in history:
        tip = tips.get(c.id)
        if tip is not None and tip not in parents:
            problems.append(f"checkpoint {c.id} ends at message {tip}, which is not there")
            continue
        if c.parent is None or c.parent not in tips:
            continue
        if c.kind == CheckpointKind.CONTEXT_COMPACTED:
            chain, parent = _chain(parents, tip), _chain(parents, tips[c.parent])
            problems.extend(_check_compaction(c, links, chain, parent))
        elif not _reaches(parents, tip, tips[c.parent]):
            problems.append(
                f"checkpoint {c.id}: its conversation does not extend checkpoint {c.parent}'s"
            )
    return problems


Parents = Mapping[int, int | None]


def _reaches(parents: Parents, tip: int | None, goal: int | None) -> bool:
    """Walking back from `tip` meets `goal` (the parent's last message); ids only go down, so
    the walk is as long as what the checkpoint added."""
    while tip is not None and tip != goal:
        if tip not in parents:
            return False
        parent = parents[tip]
        if parent is not None and parent >= tip:
            return False  # damage: a parent that is not before its child
        if goal is not None and parent is not None and parent < goal:
            return False  # went past the parent's last message without meeting it
        tip = parent
    return tip == goal


def _chain(parents: Parents, tip: int | None) -> list[int]:
    chain: list[int] = []
    while tip is not None and tip in parents and len(chain) <= len(parents):
        chain.append(tip)
        tip = parents[tip]
    return chain[::-1]


def _check_compaction(
    c: CheckpointSummary, links: MessageGraph, chain: list[int], parent: list[int]
) -> list[str]:
    """A compaction keeps the parent's head (system prompt, goal: the same messages) and its
    newest turns (copies: the same content)."""
    detail = c.typed_detail()
    kept = detail.kept if isinstance(detail, CompactionDetail) else 0
    head = len(chain) - 1 - kept  # the rest of the new conversation: one note, then the turns
    if head < 0 or chain[:head] != parent[:head]:
        return [f"checkpoint {c.id}: the compacted conversation lost checkpoint {c.parent}'s head"]
    read = links.message
    if kept and [read(i) for i in chain[-kept:]] != [read(i) for i in parent[-kept:]]:
        return [f"checkpoint {c.id}: the compacted conversation lost the newest turns"]
    return []
