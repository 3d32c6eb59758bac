"""The journal: how the loop writes a checkpoint. One commit per action, counted messages, an
error recorded without a state of its own (design.md §2, §4).

A commit appends one checkpoint (with the messages it adds) through store/writes.py, the one
module every writer appends with, fenced by the head it extends (the store raises
HeadMovedError when another writer won), and reports it; the session returned is the state
right after it.

A commit may look ahead (`ahead`): the session it will make is shown to the runner before it
is written, so the next request goes out while the checkpoint is made durable (runner.py
`_look_ahead`). Only for a result that costs nothing to make again (a read-only tool's): a
process that dies before the commit has sent a request and read a file, and its resume reads
the file again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agentctl import faults
from agentctl.domain.checkpoints import Detail, ErrorDetail, ToolDetail
from agentctl.domain.lifecycle import CheckpointKind, Event, State, transition
from agentctl.domain.records import Checkpointed, RunEvent
from agentctl.domain.session import (
    Message,
    Session,
    SessionInfo,
    Task,
    ToolCall,
    Usage,
    valid_message,
    valid_text,
)
from agentctl.loop.context import TokenCounter
from agentctl.store import writes
from agentctl.store.base import CheckpointDraft, Store, plan_append

if TYPE_CHECKING:
    from agentctl.loop.control_tools import Step
    from agentctl.store.lease import Lease


class Journal:
    def __init__(
        self,
        store: Store,
        counter: Callable[[], TokenCounter],
        clock: Callable[[], str],
        emit: Callable[[RunEvent], None],
    ) -> None:
        self._store = store
        self._counter_factory = counter
        self._counter: TokenCounter | None = None  # built on first use: a resume that only
        self._clock = clock  # finds the session waiting must not load a vocabulary
        self._emit = emit
        # Shown the session a commit with `ahead` will make, before it is written.
        self.look_ahead: Callable[[Session], None] | None = None

    def emit(self, event: RunEvent) -> None:
        """Report something that is not a checkpoint (a tool about to run)."""
        self._emit(event)

    def counter(self) -> TokenCounter:
        if self._counter is None:
            self._counter = self._counter_factory()
        return self._counter

    def counted(self, message: Message) -> Message:
        """The message with its tokens counted: once, when it is created. Every new message
        passes here: text UTF-8 cannot encode is replaced first (state.valid_text)."""
        message = valid_message(message)
        count = self.counter().count(message)
        return message.model_copy(update={"tokens": count})

    def tool_message(self, call: ToolCall, content: str) -> Message:
        return self.counted(Message(role="tool", tool_call_id=call.id, content=content))

    def tool_error(self, session: Session, call: ToolCall, text: str) -> Session:
        """The call's result is an error the model reads; nothing ran, nothing is in flight."""
        text = valid_text(text)  # it may quote a path or an argument
        return self.commit(
            session,
            CheckpointKind.TOOL_RESULT,
            session.state,
            session.task.model_copy(update={"in_flight": None, "approval": None}),
            new_messages=(self.tool_message(call, f"Error: {text}"),),
            detail=ToolDetail(tool=call.name, error=True, message=text),
        )

    def record_error(self, session: Session, message: str, **update: Any) -> Session:
        """An error leaves the state as it was; it is recorded so `show` and `history` tell it."""
        message = valid_text(message)  # it may quote a server's words
        task = session.task.model_copy(update={"last_error": message, **update})
        detail = ErrorDetail(message)
        return self.commit(session, CheckpointKind.ERROR, session.state, task, detail=detail)

    def create(
        self,
        info: SessionInfo,
        messages: tuple[Message, ...],
        lease: Lease | None,
        workspace_tree: str | None = None,
        task: Task | None = None,
    ) -> Session:
        """The session's first checkpoint, `new_task` (idle -> planning), held by `lease` from
        the first moment another process can see it."""
        draft = CheckpointDraft(
            parent=None,
            kind=CheckpointKind.NEW_TASK,
            from_state=State.IDLE,
            to_state=transition(State.IDLE, Event.NEW_TASK),
            created_at=self._clock(),
            task=task or Task(goal=info.spec.goal, workspace_tree=workspace_tree),
            usage=Usage(),
            new_messages=messages,
        )
        checkpoint = writes.create(self._store, info, draft, lease)
        self._emit(Checkpointed(checkpoint, messages))
        return Session(info=info, checkpoint=checkpoint, messages=messages)

    def commit_step(self, session: Session, step: Step, *messages: Message) -> Session:
        """Commit what a control handler decided (control_tools.py), with the messages it adds."""
        return self.commit(
            session, step.kind, step.to_state, step.task, new_messages=messages, detail=step.detail
        )

    def commit(
        self,
        session: Session,
        kind: CheckpointKind,
        to_state: State,
        task: Task,
        *,
        new_messages: tuple[Message, ...] = (),
        detail: Detail | None = None,
        usage: Usage | None = None,
        keep_messages: int | None = None,
        ahead: bool = False,
    ) -> Session:
        draft = writes.draft_on(
            session.checkpoint,
            kind,
            to_state,
            task,
            self._clock(),
            usage=usage,
            detail=detail,
            new_messages=new_messages,
            keep_messages=keep_messages,
        )
        stopped: BaseException | None = None
        if ahead and keep_messages is None and self.look_ahead is not None:
            try:
                self.look_ahead(self._after(session, draft))
            except BaseException as exc:  # Ctrl-C, SIGTERM while the request went out (a
                stopped = exc  # server slow to accept it, a pace): the result is kept first
        checkpoint = writes.commit(self._store, session.info.id, session.checkpoint.id, draft)
        faults.hit("commit_done")
        self._emit(Checkpointed(checkpoint, new_messages))
        if stopped is not None:
            raise stopped
        kept = session.messages if keep_messages is None else session.messages[:keep_messages]
        tokens = None
        if keep_messages is None:  # the conversation grew: its sum grows by the new messages'
            tokens = session.context_tokens + sum(m.tokens for m in new_messages)
        return Session(session.info, checkpoint, kept + new_messages, tokens=tokens)

    @staticmethod
    def _after(session: Session, draft: CheckpointDraft) -> Session:
        """The session `draft` will make, before the store numbers its messages: the same
        checkpoint (the fence makes its id the head's next) but for its message tip, which
        only the store knows (messages of abandoned branches hold ids) and no decision reads."""

        def no_parent(_message: int) -> int | None:  # only a compaction asks: never ahead
            raise AssertionError("a compaction does not look ahead")

        plan = plan_append(
            draft,
            checkpoint_id=session.checkpoint.id + 1,
            parent_tip=session.checkpoint.message_tip,
            next_message_id=(session.checkpoint.message_tip or 0) + 1,
            parent_of=no_parent,
        )
        tokens = session.context_tokens + sum(m.tokens for m in draft.new_messages)
        return Session(
            session.info, plan.checkpoint, session.messages + draft.new_messages, tokens=tokens
        )
