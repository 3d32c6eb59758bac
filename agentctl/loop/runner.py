"""The agent loop: lifecycle + model + tools + store, each reached through its protocol.

One decision shapes this module: every turn of the loop takes exactly one action, chosen only
from the session state loaded from the store, and commits exactly one checkpoint for it before the
next turn. So a process killed anywhere resumes from the head and does the next thing — never a
model call whose reply is stored, never a tool whose result is stored (design.md §4).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, assert_never

from agentctl import faults
from agentctl.domain.checkpoints import ApprovalModeDetail, InstructionsDetail, ReplyDetail
from agentctl.domain.lifecycle import CheckpointKind, State
from agentctl.domain.records import (
    ModelCallStarted,
    RunEvent,
    RunReport,
    Stop,
    TextDelta,
    TurnUsage,
)
from agentctl.domain.session import (
    InstructionsFile,
    Message,
    PendingQuestion,
    Prepared,
    Session,
    SessionInfo,
    Task,
    valid_text,
)
from agentctl.domain.toolspec import ToolSpec
from agentctl.errors import ModelError, WindowTooSmallError
from agentctl.llm.chat_form import tools_text
from agentctl.llm.client import ContextTooLongError, ModelClient, PendingReply
from agentctl.llm.replies import ModelReply
from agentctl.loop import control_tools, prompts
from agentctl.loop.compaction import KEEP_HEAD, ContextKeeper
from agentctl.loop.context import Budget, TokenCounter, fit_request, observed
from agentctl.loop.decide import (
    STALL_LIMIT,
    AskApproval,
    AskInText,
    AwaitInput,
    CallIds,
    CallInterrupted,
    CallModel,
    Compact,
    ControlStep,
    Drain,
    Facts,
    Finish,
    FollowUp,
    GiveUpPlanning,
    NoProgress,
    NoteInstructions,
    Nudge,
    RefuseCall,
    RunTool,
    TurnLimit,
    WindowTooSmall,
    next_action,
    pending_calls,
    stall_reason,
    unique_call_ids,
)
from agentctl.loop.journal import Journal
from agentctl.loop.tool_calls import ToolCalls
from agentctl.store.base import Store
from agentctl.store.listing import keep_listing
from agentctl.store.ready import keep_ready, load_head, owner_of
from agentctl.tools import ToolRegistry

if TYPE_CHECKING:
    from agentctl.domain.session import McpOffer
    from agentctl.store.lease import Lease
    from agentctl.workspace.snapshots import Snapshots


# Shows a question, returns the answer or None (no terminal); may raise AnsweredElsewhere.
Ask = Callable[[PendingQuestion], str | None]


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
        self._keeper = ContextKeeper(budget, strategy, self._schema_count, self._schema_bound)
        self._schema_tokens: int | None = None
        # The first request of a new session, sent before its first checkpoint was written,
        # and the (session, checkpoint) it was built from.
        self._early: tuple[tuple[str, int], PendingReply] | None = None
        self._attach: Callable[[str], str] | None = None
        self._next: str | None = None  # a follow-up for a done session, given once
        self._instructions: tuple[tuple[InstructionsFile, ...], str] | None = None
        self._stop_when: Callable[[], bool] | None = None
        self._turns, self._max_turns = 0, 0  # model calls in this run, and its limit
        self._journal.look_ahead = self._look_ahead
        self._call_ids = CallIds()

    # -- public -----------------------------------------------------------------------------

    def start(
        self,
        info: SessionInfo,
        system_prompt: str,
        lease: Lease | None = None,
        early: bool = False,
        task: Task | None = None,
        attached: str = "",
    ) -> Session:
        """Create the session (held by `lease` from its first moment): its first checkpoint is
        `new_task` (idle → planning).

        With `early`, the first model request goes out before that checkpoint is written, when
        the conversation surely fits the budget (bytes bound tokens): the tokenizer loads, the
        messages are counted and the checkpoint is committed while the model thinks, and
        `run` reads the reply. A process that dies before the commit leaves no session and
        has done nothing but ask: a model call has no side effect to repeat or lose."""
        messages = (
            Message(role="system", content=system_prompt),
            Message(role="user", content=prompts.goal_message(info.spec.goal) + attached),
        )
        pending = self._send_first(info, messages) if early else None
        counter = self._journal.counter()
        info = info.model_copy(
            update={"tokenizer": counter.encoding_name, "approximate_tokens": counter.approximate}
        )
        try:
            counted = tuple(map(self._journal.counted, messages))
            head = sum(m.tokens for m in counted)
            task = task or Task(goal=info.spec.goal)
            if (problem := self._keeper.too_small(task, counter.approximate, head)) is not None:
                raise WindowTooSmallError(problem)  # no session: the command line holds it all
            session = self._journal.create(info, counted, lease, task=task)
        except BaseException:
            if pending is not None:
                pending.cancel()
            raise
        if pending is not None:
            self._early = ((info.id, session.checkpoint.id), pending)
        return session

    def close(self) -> None:
        """Let go of a first request whose reply was never read (the run stopped before)."""
        if self._early is not None:
            self._early[1].cancel()
            self._early = None

    def run(
        self,
        session_id: str,
        *,
        answer: str | None,
        ask: Ask | None,
        max_turns: int,
        follow_up: str | None = None,
        attach: Callable[[str], str] | None = None,
        approval_mode: bool | None = None,
        instructions: tuple[tuple[InstructionsFile, ...], str] | None = None,
        mcp: tuple[McpOffer, ...] | None = None,
        stop_when: Callable[[], bool] | None = None,
    ) -> RunReport:
        """Work from the head until done, paused for input, or `max_turns` model calls.

        `answer` answers the question the session waits for; `follow_up` is the next
        instruction for a session that is done (`attach` gives the files it names, to send
        with it). `approval_mode` (resume --yes / --ask) is recorded first when it changes
        whether writes and commands are asked. `instructions`: the project's instructions
        changed (their records, and the note with the new text), told to the model before its
        next call. `stop_when` (a worker told to stop) is asked before each action: True stops
        the run there, between two checkpoints (Stop.DRAINED)."""
        self._stop_when = stop_when
        self._instructions = instructions
        self._attach = attach
        self._next = follow_up
        session = load_head(self._store, session_id)
        changes = approval_mode is not None and approval_mode != session.task.auto_approve
        if changes and (session.state is not State.DONE or follow_up is not None):
            task = session.task.model_copy(update={"auto_approve": approval_mode})
            detail = ApprovalModeDetail(bool(approval_mode))
            kind = CheckpointKind.APPROVAL_MODE
            session = self._journal.commit(session, kind, session.state, task, detail=detail)
        moves = session.state is not State.DONE or follow_up is not None
        if mcp is not None and mcp != session.task.mcp and moves:
            # The servers' tools changed since the session last ran: recorded, so `show` and
            # a rollback know what was offered from here on (the model gets the new list).
            from agentctl.tools.mcp_tools import mcp_change

            change = mcp_change(session.task.mcp, mcp)
            task = session.task.model_copy(update={"mcp": mcp})
            kind = CheckpointKind.MCP_TOOLS
            session = self._journal.commit(session, kind, session.state, task, detail=change)
        result = self._run(session, answer, ask, max_turns)
        session = result.session
        # For the next resume's first request, in the form the model client sends.
        keep_ready(self._store, session, self._model.prepare if self._model else None)
        keep_listing(self._store, session.info.id, owner_of(session.info), session.checkpoint.id)
        return result

    def _run(
        self, session: Session, answer: str | None, ask: Ask | None, max_turns: int
    ) -> RunReport:
        """Carry out what `next_action` decides, one action (one checkpoint) at a time."""
        self._turns, self._max_turns = 0, max_turns
        while True:
            action = next_action(session, self._facts())
            match action:
                case Finish():
                    return RunReport(Stop.DONE, session)
                case FollowUp(instruction):
                    session = self._follow_up(session, instruction)
                    self._next = None  # given once
                case Drain():
                    return RunReport(Stop.DRAINED, session)
                case AwaitInput(question):
                    given, answer = answer, None  # given input answers one question only
                    if given is None and ask is not None and question is not None:
                        given = ask(question)
                    if given is None:
                        return RunReport(Stop.PAUSED, session)
                    session = self._calls.receive_input(session, given)
                case RefuseCall(call, why):
                    session = self._calls.refuse(session, call, why)
                case CallInterrupted(call):
                    session = self._calls.interrupted(session, call)
                case AskApproval(call, question):
                    session = self._calls.ask_approval(session, call, question)
                case ControlStep(call, step):
                    session = self._calls.control_step(session, call, step)
                case RunTool(call, tool, arguments, approved):
                    session = self._calls.run_tool(session, call, tool, arguments, approved)
                case Nudge(reply):
                    step = control_tools.nudge(session.state, session.task, reply)
                    reminder = self._journal.counted(Message(role="user", content=step.result))
                    session = self._journal.commit_step(session, step, reminder)
                case AskInText(question_text):
                    step = control_tools.ask_in_text(session.state, session.task, question_text)
                    session = self._journal.commit_step(session, step)
                case GiveUpPlanning() as stop:
                    # nudged=False: a resume reminds the model once more instead of stopping.
                    session = self._journal.record_error(session, stop.message, nudged=False)
                    return RunReport(Stop.NO_PLAN, session)
                case NoProgress() as stop:
                    # Cleared: a resume nudges the model and gives it STALL_LIMIT more replies.
                    session = self._journal.record_error(
                        session, stop.message, nudged=False, stalled=()
                    )
                    return RunReport(Stop.NO_PROGRESS, session)
                case NoteInstructions():
                    assert self._instructions is not None
                    session = self._new_instructions(session, *self._instructions)
                    self._instructions = None
                case TurnLimit() as stop:
                    session = self._journal.record_error(session, stop.message)
                    return RunReport(Stop.TURN_LIMIT, session)
                case WindowTooSmall(problem):
                    session = self._journal.record_error(session, problem)
                    raise WindowTooSmallError(problem, hint=f"agentctl resume {session.info.id}")
                case Compact(split):
                    session = self._compact(session, split)
                case CallModel():
                    session = self._call_model(session)
                    self._turns += 1
                case _:
                    assert_never(action)

    def _facts(self) -> Facts:
        return Facts(
            self._tools,
            self._turns,
            self._max_turns,
            self._next,
            self._instructions is not None,
            self._too_small,
            self._keeper.split,
            self._stop_when or (lambda: False),
        )

    def _look_ahead(self, session: Session) -> None:
        """The journal is about to write `session`'s checkpoint (a read-only tool's result):
        when the model is called next, its request goes out now and the commit is made while
        the model reads it (the request that `start` sends early, for every turn after). The
        decision is asked again after the commit; where it differs (a worker told to stop in
        between), the request is let go."""
        if self._early is not None or not isinstance(
            next_action(session, self._facts()), CallModel
        ):
            return
        try:
            pending = self._send(session)
        except Exception:  # whatever it is: said where the request is made again, after the
            return  # commit, as if none went out ahead (the result is stored first)
        self._early = ((session.info.id, session.checkpoint.id), pending)

    # -- one action each ------------------------------------------------------------------

    def _new_instructions(
        self, session: Session, files: tuple[InstructionsFile, ...], note: str
    ) -> Session:
        now = {r.path for r in files}
        gone = [r for r in session.task.instructions if r.path not in now]
        first = files[0] if files else (gone[0] if gone else None)
        detail = InstructionsDetail(
            path=", ".join(r.path for r in files) or (first.path if first else ""),
            chars=sum(r.chars for r in files),
            removed=True if not files else None,
        )
        message = self._journal.counted(Message(role="user", content=note))
        task = session.task.model_copy(update={"instructions": files})
        kind = CheckpointKind.INSTRUCTIONS
        return self._journal.commit(
            session, kind, session.state, task, new_messages=(message,), detail=detail
        )

    def _follow_up(self, session: Session, text: str) -> Session:
        text = valid_text(text)
        step = control_tools.follow_up(session.state, session.task, text)
        content = step.result + (self._attach(text) if self._attach is not None else "")
        message = self._journal.counted(Message(role="user", content=content))
        return self._journal.commit_step(session, step, message)

    def _model_client(self) -> ModelClient:
        if self._model is None:
            self._model = self._model_factory()
        return self._model

    def _send_first(self, info: SessionInfo, messages: tuple[Message, ...]) -> PendingReply | None:
        """The first request, from uncounted messages, when their bound fits the limit with
        counts taken as approximate (the tokenizer is not known before it loads)."""
        counter = self._journal.counter()
        bound = sum(map(counter.bound, messages)) + self._schema_bound()
        if bound > self._keeper.limit(Task(goal=info.spec.goal), approximate=True):
            return None  # counted first, then sent as every other request
        return self._model_client().send(messages, self._tool_specs(), self._reply_reserve())

    def _send(self, session: Session) -> PendingReply:
        """The next request from the head. The schemas are counted first only when the
        conversation does not surely fit without knowing their count."""
        limit = self._keeper.prompt_limit(session)
        tools = self._schema_bound()  # the exact count once known
        if session.context_tokens + tools > limit:
            tools = self._schema_count()
        client = self._model_client()
        kept = session.ready.prepared if session.ready is not None else None
        fits = session.context_tokens <= limit - tools
        if kept is not None and kept.format == client.format and fits:
            messages: Sequence[Message] | Prepared = kept  # as it is: nothing decoded
        elif fits:
            messages = session.messages  # nothing to cut (and the tokens not summed again)
        else:
            messages = fit_request(session.messages, limit - tools)
        return client.send(
            messages, self._tool_specs(), self._reply_reserve(), session.task.refused_params
        )

    def _reply_reserve(self) -> int | None:
        return self._budget.reply_reserve if self._budget else None

    def _collect(
        self, session: Session, pending: PendingReply, on_text: Callable[[str], None]
    ) -> ModelReply:
        """Read one reply; a failure is recorded on a checkpoint and `resume` retries it."""
        self._emit(ModelCallStarted(session.info.id))
        try:
            reply = pending.collect(on_text)
        except ContextTooLongError:
            raise  # handled by the caller: compact, not record-and-stop
        except ModelError as exc:
            self._journal.record_error(session, exc.message)
            exc.hint = exc.hint or f"agentctl resume {session.info.id}"
            raise
        faults.hit("model_reply_received")
        return reply

    def _call_model(self, session: Session) -> Session:
        began = time.monotonic()
        early, self._early = self._early, None
        if early is not None and early[0] == (session.info.id, session.checkpoint.id):
            pending = early[1]
        else:
            if early is not None:
                early[1].cancel()
            pending = self._send(session)
        try:
            # Counted while the model thinks, when the request could go out without it.
            tools = self._schema_count()
        except BaseException:
            pending.cancel()
            raise
        try:
            reply = self._collect(session, pending, lambda text: self._emit(TextDelta(text)))
        except ContextTooLongError as exc:
            return self._shrink_window(session, exc)
        u = reply.usage
        self._emit(
            TurnUsage(
                u.prompt_tokens,
                reply.cached_tokens,
                u.completion_tokens,
                time.monotonic() - began,
                reported=not u.unreported,
            )
        )
        task = session.task
        # A new reply ends whatever approval was given for the previous one.
        update: dict[str, Any] = {"last_error": None, "approval": None, "tools_tokens": tools}
        if session.info.approximate_tokens and not reply.usage.unreported:
            # How the server counts what we sent, against how we counted it (design: calibrate).
            ours = session.context_tokens + tools
            update["token_ratio"] = round(max(1.0, reply.usage.prompt_tokens / max(1, ours)), 3)
            fit = observed(task.token_fit, session.context_tokens, reply.usage.prompt_tokens)
            update["token_fit"] = tuple(round(x, 3) for x in fit)
        if reply.message.tool_calls:
            update["nudged"] = False
        stalled = () if reply.message.tool_calls else (*task.stalled, stall_reason(reply.message))
        if stalled != task.stalled:
            update["stalled"] = stalled[-STALL_LIMIT:]
        if reply.refused != task.refused_params:
            update["refused_params"] = reply.refused
        taken = self._call_ids.of(session.messages)
        message = unique_call_ids(reply.message, taken, session.checkpoint.id + 1)
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
            text = tools_text(self._tool_specs())
            self._schema_tokens = self._journal.counter().count_text(text)
        return self._schema_tokens

    def _schema_bound(self) -> int:
        if self._schema_tokens is not None:
            return self._schema_tokens
        return self._journal.counter().bound_text(tools_text(self._tool_specs()))

    def _too_small(self, session: Session) -> str | None:
        """The window's problem when the conversation does not fit and the part compaction
        keeps (system prompt, goal) leaves no room with the tools; checked only then."""
        if self._budget is None and session.task.context_limit is None:
            return None
        if session.context_tokens + self._schema_bound() <= self._keeper.prompt_limit(session):
            return None
        head = sum(m.tokens for m in session.messages[:KEEP_HEAD])
        return self._keeper.too_small(session.task, session.info.approximate_tokens, head)

    def _compact(self, session: Session, split: int) -> Session:
        """Replace the turns before `split` by a note (with the model's summary of them, or
        nothing when dropping). One checkpoint; the originals stay in the store, in the
        parent's conversation, so `show --at` and rollback still reach them."""
        usage, summary = session.checkpoint.usage, None
        allowed = self._keeper.summary_tokens(session, split)
        if self._keeper.strategy == "summarize" and allowed:
            request = prompts.summary_request(self._keeper.transcript(session, split))
            pending = self._model_client().send(request, [], allowed, session.task.refused_params)
            reply = self._collect(session, pending, lambda _: None)
            summary = reply.message.content or "(the model gave no summary)"
            usage = usage + reply.usage
        new, detail = self._keeper.compacted(
            session, split, summary, self._journal.counted, allowed
        )
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

    def _tool_specs(self) -> list[ToolSpec]:
        specs = prompts.CONTROL_TOOLS + self._tools.specs()
        if self._budget is not None and self._budget.window <= prompts.LEAN_WINDOW:
            return prompts.lean_schemas(specs)
        return specs

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


__all__ = ["Ask", "RunEvent", "RunReport", "Runner", "Stop", "pending_calls"]
