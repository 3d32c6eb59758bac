"""The agent loop: lifecycle + model + tools + store, each reached through its protocol.

One decision shapes this module: every turn of the loop takes exactly one action, chosen only
from the session state loaded from the store, and commits exactly one checkpoint for it before the
next turn. So a process killed anywhere resumes from the head and does the next thing — never a
model call whose reply is stored, never a tool whose result is stored (design.md §4).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentctl import control, faults, prompts
from agentctl.actions import (
    AskInText,
    AwaitInput,
    Finish,
    GiveUpPlanning,
    Nudge,
    RunCall,
    next_action,
    pending_calls,
    unique_call_ids,
)
from agentctl.calls import ToolCalls
from agentctl.compaction import KEEP_HEAD, ContextKeeper
from agentctl.context import SUMMARY_TOKENS, Budget, TokenCounter, fit_request
from agentctl.details import ReplyDetail
from agentctl.errors import ModelError
from agentctl.journal import Journal
from agentctl.lifecycle import CheckpointKind
from agentctl.llm import ContextTooLongError, ModelClient, ModelReply
from agentctl.records import ModelCallStarted, RunEvent, Stop, TextDelta
from agentctl.state import Message, Session, SessionInfo
from agentctl.store.base import Store
from agentctl.tools import ToolRegistry

if TYPE_CHECKING:
    from agentctl.store.lease import Lease
    from agentctl.workspace.snapshots import Snapshots


@dataclass(frozen=True)
class RunResult:
    stop: Stop
    session: Session


Ask = Callable[[str], str | None]  # shows a question, returns the answer or None (no terminal)


class Runner:
    def __init__(
        self,
        store: Store,
        model: Callable[[], ModelClient],
        counter: Callable[[], TokenCounter],
        tools: ToolRegistry,
        clock: Callable[[], str],
        on_event: Callable[[RunEvent], None] = lambda _event: None,
        budget: Budget | None = None,
        strategy: str = "summarize",
        snapshots: Snapshots | None = None,
    ) -> None:
        # The model is built on first use: resuming only to find the session waiting for
        # input must not start a model client.
        self._store = store
        self._model_factory = model
        self._model: ModelClient | None = None
        self._tools = tools
        self._clock = clock
        self._emit = on_event
        self._budget = budget  # None: no limit (tests of other things)
        self._journal = Journal(store, counter, clock, on_event)
        self._snapshots = snapshots
        self._calls = ToolCalls(self._journal, store, tools, snapshots)
        self._keeper = ContextKeeper(budget, strategy, self._schema_count)
        self._schema_tokens: int | None = None

    # -- public -----------------------------------------------------------------------------

    def start(self, info: SessionInfo, system_prompt: str, lease: Lease | None = None) -> Session:
        """Create the session (held by `lease` from its first moment): its first checkpoint is
        `new_task` (idle → planning)."""
        counter = self._journal.counter()
        info = info.model_copy(
            update={"tokenizer": counter.encoding_name, "approximate_tokens": counter.approximate}
        )
        messages = (
            self._journal.counted(Message(role="system", content=system_prompt)),
            self._journal.counted(
                Message(role="user", content=prompts.goal_message(info.spec.goal))
            ),
        )
        return self._journal.create(info, messages, lease)

    def run(
        self, session_id: str, *, answer: str | None, ask: Ask | None, max_turns: int
    ) -> RunResult:
        """Work from the head until done, paused for input, or `max_turns` model calls."""
        session = self._store.load(session_id)
        turns = 0
        while True:
            action = next_action(session)
            if isinstance(action, Finish):
                return RunResult(Stop.DONE, session)
            if isinstance(action, AwaitInput):
                text, answer = answer, None  # given input answers one question only
                if text is None and ask is not None and action.question is not None:
                    text = ask(action.question.question)
                if text is None:
                    return RunResult(Stop.PAUSED, session)
                session = self._calls.receive_input(session, text)
            elif isinstance(action, RunCall):
                session = self._calls.handle_call(session, action.call)
            elif isinstance(action, Nudge):
                step = control.nudge(session.state, session.task, action.reply)
                reminder = self._journal.counted(Message(role="user", content=step.result))
                session = self._journal.commit_step(session, step, reminder)
            elif isinstance(action, AskInText):
                step = control.ask_in_text(session.state, session.task, action.question)
                session = self._journal.commit_step(session, step)
            elif isinstance(action, GiveUpPlanning):
                # nudged=False: a resume reminds the model once more instead of stopping again.
                session = self._journal.record_error(session, action.message, nudged=False)
                return RunResult(Stop.NO_PLAN, session)
            elif turns >= max_turns:
                message = f"stopped after {turns} model calls (max_turns); resume to continue"
                session = self._journal.record_error(session, message)
                return RunResult(Stop.TURN_LIMIT, session)
            elif (split := self._keeper.split(session)) is not None:
                session = self._compact(session, split)
            else:
                session = self._call_model(session)
                turns += 1

    # -- one action each ------------------------------------------------------------------

    def _ask_model(
        self,
        session: Session,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        on_text: Callable[[str], None],
        max_tokens: int | None,
    ) -> ModelReply:
        """One model call; a failure is recorded on a checkpoint and `resume` retries it."""
        if self._model is None:
            self._model = self._model_factory()
        self._emit(ModelCallStarted(session.info.id))
        try:
            reply = self._model.complete(messages, tools, on_text, max_tokens)
        except ContextTooLongError:
            raise  # handled by the caller: compact, not record-and-stop
        except ModelError as exc:
            self._journal.record_error(session, exc.message)
            exc.hint = exc.hint or f"agentctl resume {session.info.id}"
            raise
        faults.hit("model_reply_received")
        return reply

    def _call_model(self, session: Session) -> Session:
        tools = self._schema_count()
        messages = fit_request(
            [m.to_openai() for m in session.messages],
            [m.tokens for m in session.messages],
            self._keeper.prompt_limit(session) - tools,
        )
        try:
            reply = self._ask_model(
                session,
                messages,
                self._tool_schemas(),
                lambda text: self._emit(TextDelta(text)),
                self._budget.reply_reserve if self._budget else None,
            )
        except ContextTooLongError as exc:
            return self._shrink_window(session, exc)
        task = session.task
        # A new reply ends whatever approval was given for the previous one.
        update: dict[str, Any] = {"last_error": None, "approval": None, "tools_tokens": tools}
        if session.info.approximate_tokens and not reply.usage.unreported:
            # How the server counts what we sent, against how we counted it (design: calibrate).
            ours = session.context_tokens + tools
            update["token_ratio"] = round(max(1.0, reply.usage.prompt_tokens / max(1, ours)), 3)
        if reply.message.tool_calls:
            update["nudged"] = False
        message = unique_call_ids(reply.message, session.messages, session.checkpoint.id + 1)
        return self._journal.commit(
            session,
            CheckpointKind.MODEL_REPLY,
            session.state,
            task.model_copy(update=update),
            new_messages=(self._journal.counted(message),),
            detail=ReplyDetail(tuple(c.name for c in message.tool_calls)),
            usage=session.checkpoint.usage + reply.usage,
        )

    def _schema_count(self) -> int:
        if self._schema_tokens is None:
            schemas = json.dumps(self._tool_schemas())
            self._schema_tokens = self._journal.counter().count({"content": schemas})
        return self._schema_tokens

    def _compact(self, session: Session, split: int) -> Session:
        """Replace the turns before `split` by a note (with the model's summary of them, or
        nothing when dropping). One checkpoint; the originals stay in the store, in the
        parent's conversation, so `show --at` and rollback still reach them."""
        usage, summary = session.checkpoint.usage, None
        if self._keeper.strategy == "summarize":
            request = prompts.summary_request(self._keeper.transcript(session, split))
            reply = self._ask_model(session, request, [], lambda _: None, SUMMARY_TOKENS)
            summary = reply.message.content or "(the model gave no summary)"
            usage = usage + reply.usage
        new, detail = self._keeper.compacted(session, split, summary, self._journal.counted)
        return self._journal.commit(
            session,
            CheckpointKind.CONTEXT_COMPACTED,
            session.state,
            session.task,
            new_messages=new,
            keep_messages=KEEP_HEAD,
            detail=detail,
            usage=usage,
        )

    def _tool_schemas(self) -> list[dict[str, Any]]:
        return prompts.CONTROL_TOOLS + self._tools.schemas()

    def _shrink_window(self, session: Session, exc: ContextTooLongError) -> Session:
        """The server refused the conversation as too long for its window: lower the session's
        window and compact on the next turn; with nothing left to compact, a model error."""
        window = self._keeper.shrunk_window(session, exc.window)
        if window is None:
            self._journal.record_error(session, exc.message)
            exc.hint = exc.hint or f"agentctl resume {session.info.id}"
            raise ModelError(f"{exc.message} — and there is nothing left to compact", hint=exc.hint)
        message = f"{exc.message}; lowering the context window to {window} tokens and compacting"
        return self._journal.record_error(session, message, context_limit=window)


__all__ = ["Ask", "RunEvent", "RunResult", "Runner", "Stop", "pending_calls"]
