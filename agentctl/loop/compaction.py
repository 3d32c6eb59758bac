"""Keeping the conversation inside the context window: how much it may take, where to cut it,
what replaces the older turns, and how far to shrink when a server refuses it as too long.

Arithmetic on stored counts, beside the budget in context.py: the runner does the I/O (the
summary call, the commit) and asks this module everything else. The system prompt and the
goal (the first KEEP_HEAD messages) always stay; the newest turns stay whole; a summary is
bounded and dropped when it does not make the conversation smaller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agentctl.domain.checkpoints import CompactionDetail
from agentctl.domain.lifecycle import CheckpointKind
from agentctl.domain.session import Message, Session, Task
from agentctl.loop import prompts
from agentctl.loop.context import (
    MIN_ROOM,
    MIN_SUMMARY,
    SUMMARY_TOKENS,
    Budget,
    calibrated,
    compaction_split,
    cut_text,
)

KEEP_HEAD = 2  # the messages every context keeps: the system prompt and the goal (design §6)
SHRINK = 0.85  # a refused conversation is cut to this share of what was sent


@dataclass
class ContextKeeper:
    budget: Budget | None  # None: no limit (tests of other things)
    strategy: str  # "summarize" or "drop" the older turns when over budget
    tools_tokens: Callable[[], int]  # what the tool schemas take of every call
    tools_bound: Callable[[], int]  # at least that, known without the vocabulary

    def prompt_limit(self, session: Session, learned: int | None = None) -> int:
        """Tokens the conversation and tools may take, in our counts: the budget's (or less,
        when the server taught us a smaller window), calibrated by how the server counts."""
        return self.limit(session.task, session.info.approximate_tokens, learned)

    def limit(self, task: Task, approximate: bool | None, learned: int | None = None) -> int:
        learned = learned or task.context_limit
        reserve = self.budget.reply_reserve if self.budget else 0
        limits = [self.budget.prompt_limit] if self.budget else []
        if learned is not None:
            limits.append(learned - reserve)
        if not limits:
            return 1 << 30
        return calibrated(
            min(limits), task.token_ratio, approximate, task.token_fit, task.tools_tokens
        )

    def split(self, session: Session, learned: int | None = None) -> int | None:
        """Where the kept newest turns begin; None when the conversation fits, when nothing
        can be cut, or right after a compaction (what is left goes as it is, fitted)."""
        if session.checkpoint.kind == CheckpointKind.CONTEXT_COMPACTED and learned is None:
            return None
        if self.budget is None and (learned or session.task.context_limit) is None:
            return None
        limit = self.prompt_limit(session, learned)
        if session.context_tokens + self.tools_bound() <= limit:
            return None  # fits, whatever the schemas count: no vocabulary needed to know it
        return compaction_split(session.messages, limit - self.tools_tokens(), KEEP_HEAD)

    def too_small(
        self, task: Task, approximate: bool | None, head: int, learned: int | None = None
    ) -> str | None:
        """Why no request can be made, when the tool schemas and the first messages (`head`
        tokens: system prompt and goal, which are never compacted) leave less than MIN_ROOM of
        the limit: compacting would run on every turn and help none. Else None."""
        limit = self.limit(task, approximate, learned)
        fixed = head + self.tools_tokens()
        if fixed + MIN_ROOM <= limit:
            return None
        windows = [self.budget.window] if self.budget else []
        if learned or task.context_limit:
            windows.append(learned or task.context_limit or 0)
        window = min(windows) if windows else limit
        return (
            f"the tools and goal take {fixed:,} of the {window:,}-token window, which leaves "
            f"{limit:,} for the prompt beside the reply's share: no room to work in, and "
            "compacting cannot make any; set a larger context_window, or give a shorter goal"
        )

    def summary_tokens(self, session: Session, split: int) -> int:
        """What a summary of the turns before `split` may take: never more than half of what
        it replaces nor an eighth of the limit (at a small window 300 tokens is a good part
        of it), so a summary saves more than it costs. 0: not worth asking; drop them."""
        dropped = sum(m.tokens for m in session.messages[KEEP_HEAD:split])
        allowed = min(SUMMARY_TOKENS, dropped // 2, self.prompt_limit(session) // 8)
        return allowed if allowed >= MIN_SUMMARY else 0

    def shrunk_window(self, session: Session, server_window: int | None) -> int | None:
        """The window to work in after a server refused the conversation as too long (its own
        figure when it gave one), or None when cutting to it leaves nothing to compact."""
        reserve = self.budget.reply_reserve if self.budget else 0
        sent = session.context_tokens + self.tools_tokens()
        window = min(server_window or sent, int(sent * SHRINK) + reserve)
        if session.task.context_limit:
            window = min(window, int(session.task.context_limit * SHRINK))
        return window if self.split(session, window) is not None else None

    def transcript(self, session: Session, split: int) -> str:
        """The older turns as text for the summarizer, bounded by the budget."""
        dropped = session.messages[KEEP_HEAD:split]
        limit = self.prompt_limit(session)
        return prompts.transcript(dropped, max_chars=limit * 3)

    def compacted(
        self,
        session: Session,
        split: int,
        summary: str | None,
        counted: Callable[[Message], Message],
        summary_tokens: int = SUMMARY_TOKENS,
    ) -> tuple[tuple[Message, ...], CompactionDetail]:
        """The new messages after the kept head (a note, then the kept turns) and the
        checkpoint's detail. A summary is cut to `summary_tokens`; one that does not make the
        conversation smaller is dropped."""
        messages, task = session.messages, session.task
        dropped, kept = messages[KEEP_HEAD:split], messages[split:]
        replies = sum(
            1 if m.role == "assistant" else prompts.compacted_replies(m.content) for m in dropped
        )

        def rebuilt(summary: str | None) -> tuple[tuple[Message, ...], int]:
            note = prompts.compaction_note(replies, summary, task.plan, task.current_step)
            new = (counted(Message(role="user", content=note)), *kept)
            return new, sum(m.tokens for m in (*messages[:KEEP_HEAD], *new))

        strategy = self.strategy if summary is not None else "drop"
        if summary is not None:
            tokens = counted(Message(role="user", content=summary)).tokens
            summary = cut_text(summary, tokens, summary_tokens)
        new, after = rebuilt(summary)
        if summary is not None and after >= session.context_tokens:
            strategy, (new, after) = "drop", rebuilt(None)  # the summary did not help
        detail = CompactionDetail(
            strategy=strategy,
            dropped=len(dropped),
            kept=len(kept),
            tokens_before=session.context_tokens,
            tokens_after=after,
        )
        return new, detail
