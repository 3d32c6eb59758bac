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
    in_flight,
    next_action,
    pending_calls,
    reply_of,
    unique_call_ids,
)
from agentctl.compaction import KEEP_HEAD, ContextKeeper
from agentctl.context import (
    SUMMARY_TOKENS,
    Budget,
    TokenCounter,
    fit_request,
)
from agentctl.errors import InvalidTransition, ModelError
from agentctl.lifecycle import CheckpointKind, Event, State, transition
from agentctl.llm import ContextTooLongError, ModelClient, ModelReply
from agentctl.records import Checkpointed, ModelCallStarted, RunEvent, Stop, TextDelta
from agentctl.state import (
    Approval,
    Message,
    PendingQuestion,
    SessionInfo,
    SessionState,
    TaskState,
    ToolCall,
    Usage,
)
from agentctl.store.base import CheckpointDraft, Store

if TYPE_CHECKING:
    from agentctl.store.lease import Lease
from agentctl.tools import Tool, ToolOutcome, ToolRegistry, approval


@dataclass(frozen=True)
class RunResult:
    stop: Stop
    session: SessionState


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
    ) -> None:
        # The model and counter are built on first use: resuming only to find the session
        # waiting for input must not start a model client.
        self._store = store
        self._model_factory = model
        self._counter_factory = counter
        self._model: ModelClient | None = None
        self._counter: TokenCounter | None = None
        self._tools = tools
        self._clock = clock
        self._emit = on_event
        self._budget = budget  # None: no limit (tests of other things)
        self._keeper = ContextKeeper(budget, strategy, self._schema_count)
        self._schema_tokens: int | None = None

    # -- public -----------------------------------------------------------------------------

    def start(
        self, info: SessionInfo, system_prompt: str, lease: Lease | None = None
    ) -> SessionState:
        """Create the session (held by `lease` from its first moment): its first checkpoint is
        `new_task` (idle → planning)."""
        task = TaskState(goal=info.spec.goal)
        counter = self._ensure_counter()
        info = info.model_copy(
            update={"tokenizer": counter.encoding_name, "approximate_tokens": counter.approximate}
        )
        messages = (
            self._counted(Message(role="system", content=system_prompt)),
            self._counted(Message(role="user", content=prompts.goal_message(info.spec.goal))),
        )
        draft = CheckpointDraft(
            parent=None,
            event=CheckpointKind.NEW_TASK,
            from_state=State.IDLE,
            to_state=transition(State.IDLE, Event.NEW_TASK),
            created_at=self._clock(),
            task=task,
            usage=Usage(),
            new_messages=messages,
        )
        checkpoint = self._store.create_session(info, draft, lease)
        self._emit(Checkpointed(checkpoint))
        return SessionState(info=info, checkpoint=checkpoint, messages=messages)

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
                session = self._receive_input(session, text)
            elif isinstance(action, RunCall):
                session = self._handle_call(session, action.call)
            elif isinstance(action, Nudge):
                session = self._nudge(session, action.reply)
            elif isinstance(action, AskInText):
                session = self._ask_in_text(session, action.question)
            elif isinstance(action, GiveUpPlanning):
                message = (
                    "the model answered in text instead of submitting a plan, twice: "
                    f"{action.text[:200]!r}; resume to try again, or rephrase the goal"
                )
                # nudged=False: a resume reminds the model once more instead of stopping again.
                return RunResult(Stop.NO_PLAN, self._record_error(session, message, nudged=False))
            elif turns >= max_turns:
                message = f"stopped after {turns} model calls (max_turns); resume to continue"
                session = self._record_error(session, message)
                return RunResult(Stop.TURN_LIMIT, session)
            elif (split := self._keeper.split(session)) is not None:
                session = self._compact(session, split)
            else:
                session = self._call_model(session)
                turns += 1

    # -- one action each ------------------------------------------------------------------

    def _ask_model(
        self,
        session: SessionState,
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
            self._record_error(session, exc.message)
            exc.hint = exc.hint or f"agentctl resume {session.info.id}"
            raise
        faults.hit("model_reply_received")
        return reply

    def _call_model(self, session: SessionState) -> SessionState:
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
        return self._commit(
            session,
            CheckpointKind.MODEL_REPLY,
            session.state,
            task.model_copy(update=update),
            new_messages=(self._counted(message),),
            detail={"tools": [c.name for c in message.tool_calls]},
            usage=session.checkpoint.usage + reply.usage,
        )

    def _schema_count(self) -> int:
        if self._schema_tokens is None:
            schemas = json.dumps(self._tool_schemas())
            self._schema_tokens = self._ensure_counter().count({"content": schemas})
        return self._schema_tokens

    def _compact(self, session: SessionState, split: int) -> SessionState:
        """Replace the turns before `split` by a note (with the model's summary of them, or
        nothing when dropping). One checkpoint; the originals stay in the store, in the
        parent's conversation, so `show --at` and rollback still reach them."""
        usage, summary = session.checkpoint.usage, None
        if self._keeper.strategy == "summarize":
            request = prompts.summary_request(self._keeper.transcript(session, split))
            reply = self._ask_model(session, request, [], lambda _: None, SUMMARY_TOKENS)
            summary = reply.message.content or "(the model gave no summary)"
            usage = usage + reply.usage
        new, detail = self._keeper.compacted(session, split, summary, self._counted)
        return self._commit(
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

    def _nudge(self, session: SessionState, reply: Message) -> SessionState:
        if reply.finish_reason == "length":
            nudge = prompts.NUDGE_CUT
        elif reply.finish_reason == "content_filter":
            nudge = prompts.NUDGE_FILTERED
        elif not (reply.content or "").strip():
            nudge = prompts.NUDGE_EMPTY
        else:
            nudge = prompts.NUDGE_PLANNING if session.state is State.PLANNING else prompts.NUDGE
        return self._commit(
            session,
            CheckpointKind.NUDGE,
            session.state,
            session.task.model_copy(update={"nudged": True}),
            new_messages=(self._counted(Message(role="user", content=nudge)),),
            detail={"reason": reply.finish_reason or "text"},
        )

    def _ask_in_text(self, session: SessionState, text: str) -> SessionState:
        to_state = transition(session.state, Event.NEEDS_INPUT)
        pending = PendingQuestion(question=text, tool_call_id=None)
        task = session.task.model_copy(update={"nudged": False, "pending_question": pending})
        return self._commit(
            session, CheckpointKind.NEEDS_INPUT, to_state, task, detail={"question": text}
        )

    def _shrink_window(self, session: SessionState, exc: ContextTooLongError) -> SessionState:
        """The server refused the conversation as too long for its window: lower the session's
        window and compact on the next turn; with nothing left to compact, a model error."""
        window = self._keeper.shrunk_window(session, exc.window)
        if window is None:
            self._record_error(session, exc.message)
            exc.hint = exc.hint or f"agentctl resume {session.info.id}"
            raise ModelError(f"{exc.message} — and there is nothing left to compact", hint=exc.hint)
        message = f"{exc.message}; lowering the context window to {window} tokens and compacting"
        return self._record_error(session, message, context_limit=window)

    def _receive_input(self, session: SessionState, text: str) -> SessionState:
        question = session.task.pending_question
        if question is not None and question.kind == "approval" and question.tool_call_id:
            return self._receive_approval(session, question.tool_call_id, text)
        if question is not None and question.tool_call_id is not None:
            message = Message(role="tool", tool_call_id=question.tool_call_id, content=text)
        else:
            message = Message(role="user", content=text)
        return self._commit(
            session,
            CheckpointKind.INPUT_RECEIVED,
            transition(session.state, Event.INPUT_RECEIVED),
            session.task.model_copy(update={"pending_question": None}),
            new_messages=(self._counted(message),),
            detail={"input": text},
        )

    def _receive_approval(self, session: SessionState, call_id: str, text: str) -> SessionState:
        """Yes: this one call may run, once (the approval names it and the question's
        checkpoint). No: the model is told."""
        allowed = approval.is_yes(text)
        task = session.task.model_copy(update={"pending_question": None})
        messages: tuple[Message, ...] = ()
        if allowed:
            granted = Approval(call_id=call_id, asked_at=session.checkpoint.id)
            task = task.model_copy(update={"approval": granted})
        else:
            refusal = "Error: the user did not allow this action. Do something else or ask them."
            messages = (self._counted(Message(role="tool", tool_call_id=call_id, content=refusal)),)
        return self._commit(
            session,
            CheckpointKind.INPUT_RECEIVED,
            transition(session.state, Event.INPUT_RECEIVED),
            task,
            new_messages=messages,
            detail={"input": text, "approved": allowed},
        )

    def _ask_approval(self, session: SessionState, call: ToolCall, question: str) -> SessionState:
        try:
            to_state = transition(session.state, Event.NEEDS_INPUT)
        except InvalidTransition:
            return self._tool_error(
                session, call, f"{call.name} needs the user's approval; submit a plan first"
            )
        pending = PendingQuestion(question=question, tool_call_id=call.id, kind="approval")
        task = session.task.model_copy(update={"pending_question": pending})
        detail = {"question": question, "approval": call.name}
        return self._commit(session, CheckpointKind.NEEDS_INPUT, to_state, task, detail=detail)

    @staticmethod
    def _approved(session: SessionState, call: ToolCall) -> bool:
        granted = session.task.approval
        return granted is not None and granted.call_id == call.id

    def _handle_call(self, session: SessionState, call: ToolCall) -> SessionState:
        try:
            arguments = json.loads(call.arguments or "{}")
            if not isinstance(arguments, dict):
                raise ValueError("arguments must be a JSON object")
        except ValueError as exc:
            if reply_of(session.messages, call).finish_reason == "length":
                return self._tool_error(
                    session,
                    call,
                    "your reply was cut off at the output limit, so these arguments are "
                    "incomplete; call the tool again with shorter arguments",
                )
            return self._tool_error(session, call, f"arguments are not valid JSON: {exc}")
        handler = control.HANDLERS.get(call.name)
        if handler is None:
            return self._work_tool(session, call, arguments)
        try:
            step = handler(session.state, session.task, call, arguments)
        except InvalidTransition as exc:
            return self._tool_error(session, call, f"{call.name} is not allowed while {exc.state}")
        except (KeyError, TypeError, ValueError) as exc:
            return self._tool_error(session, call, f"bad arguments for {call.name}: {exc}")
        if step.preference is not None:
            key, value = step.preference
            if self._tools.policy.needs_approval_to_remember() and not self._approved(
                session, call
            ):
                return self._ask_approval(session, call, approval.remember_question(key, value))
            # Idempotent (set key = value), so a crash before the checkpoint only repeats it.
            self._store.save_profile(self._store.load_profile().remember(key, value))
        task = step.task.model_copy(update={"approval": None})
        if step.to_state is State.WAITING_FEEDBACK:  # answered later, by the user
            return self._commit(session, step.kind, step.to_state, task, detail=step.detail)
        return self._commit(
            session,
            step.kind,
            step.to_state,
            task,
            new_messages=(self._tool_message(call, step.result),),
            detail=step.detail,
        )

    def _work_tool(
        self, session: SessionState, call: ToolCall, args: dict[str, Any]
    ) -> SessionState:
        tool = self._tools.get(call.name)
        if tool is None:
            known = ", ".join(sorted(prompts.CONTROL_TOOL_NAMES | set(self._tools.names)))
            return self._tool_error(session, call, f"unknown tool {call.name!r}; tools: {known}")
        if in_flight(session, call):
            # It started and we have no result: after a crash, or a rollback to this point,
            # the effect may or may not have happened. Never run it again.
            return self._tool_error(
                session,
                call,
                f"{call.name} was interrupted (agentctl stopped while it ran); its outcome is "
                "unknown. Check the current state before trying again.",
            )
        if not tool.side_effect.idempotent and session.state is State.PLANNING:
            # One rule whatever the approval mode: nothing changes before there is a plan.
            return self._tool_error(session, call, f"{call.name} may run once a plan is submitted")
        if not self._approved(session, call) and self._tools.policy.needs_approval(tool, args):
            return self._ask_approval(session, call, approval.question(tool, args))
        return self._run_tool(session, call, tool, args)

    def _run_tool(
        self, session: SessionState, call: ToolCall, tool: Tool, args: dict[str, Any]
    ) -> SessionState:
        detail = {"tool": call.name, "tool_call_id": call.id, "side_effect": tool.side_effect.value}
        if "command" in args:
            detail["command"] = str(args["command"])[:500]  # what a rollback may not undo
        task = session.task.model_copy(update={"approval": None})  # consumed by this call
        if not tool.side_effect.idempotent:
            started = task.model_copy(update={"in_flight": call.id})
            session = self._commit(
                session, CheckpointKind.TOOL_STARTED, session.state, started, detail=detail
            )
        try:
            outcome = tool.run(args)
        except Exception as exc:
            outcome = ToolOutcome(f"{call.name} failed: {exc}", is_error=True)
        return self._commit(
            session,
            CheckpointKind.TOOL_RESULT,
            session.state,
            task.model_copy(update={"in_flight": None}),
            new_messages=(self._tool_message(call, outcome.content),),
            detail={**detail, "error": outcome.is_error}
            | ({"message": outcome.content.split("\n", 1)[0][:120]} if outcome.is_error else {}),
        )

    def _tool_error(self, session: SessionState, call: ToolCall, text: str) -> SessionState:
        return self._commit(
            session,
            CheckpointKind.TOOL_RESULT,
            session.state,
            session.task.model_copy(update={"in_flight": None, "approval": None}),
            new_messages=(self._tool_message(call, f"Error: {text}"),),
            detail={"tool": call.name, "error": True, "message": text},
        )

    def _record_error(self, session: SessionState, message: str, **update: Any) -> SessionState:
        """An error leaves the state as it was; it is recorded so `show` and `history` tell it."""
        task = session.task.model_copy(update={"last_error": message, **update})
        return self._commit(
            session, CheckpointKind.ERROR, session.state, task, detail={"error": message}
        )

    # -- plumbing ---------------------------------------------------------------------------

    def _tool_message(self, call: ToolCall, content: str) -> Message:
        return self._counted(Message(role="tool", tool_call_id=call.id, content=content))

    def _ensure_counter(self) -> TokenCounter:
        if self._counter is None:
            self._counter = self._counter_factory()
        return self._counter

    def _counted(self, message: Message) -> Message:
        count = self._ensure_counter().count(message.to_openai())
        return message.model_copy(update={"tokens": count})

    def _commit(
        self,
        session: SessionState,
        event: CheckpointKind,
        to_state: State,
        task: TaskState,
        *,
        new_messages: tuple[Message, ...] = (),
        detail: dict[str, Any] | None = None,
        usage: Usage | None = None,
        keep_messages: int | None = None,
    ) -> SessionState:
        draft = CheckpointDraft(
            parent=session.checkpoint.id,
            event=event,
            from_state=session.state,
            to_state=to_state,
            created_at=self._clock(),
            task=task,
            usage=usage or session.checkpoint.usage,
            detail=detail or {},
            new_messages=new_messages,
            keep_messages=keep_messages,
        )
        checkpoint = self._store.append(session.info.id, session.checkpoint.id, draft)
        faults.hit("commit_done")
        self._emit(Checkpointed(checkpoint))
        kept = session.messages if keep_messages is None else session.messages[:keep_messages]
        return SessionState(info=session.info, checkpoint=checkpoint, messages=kept + new_messages)


__all__ = ["Ask", "RunEvent", "RunResult", "Runner", "Stop", "pending_calls"]
