"""Tool calls carried out: what `next_action` decided about a call (decide.py) committed, and
the user's answers to the questions calls raise (approvals among them).

The decisions that matter here: a control tool's step (control_tools.py) is committed; a
side-effecting work tool records `tool_started` (the call in flight on the task record)
before it runs and its result after, so it is never run twice; an approval covers one call, once
(tools/approval.py). Whether a call runs, is refused or is asked about is decided in decide.py.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from agentctl.domain.checkpoints import InputDetail, QuestionDetail, ToolDetail
from agentctl.domain.lifecycle import CheckpointKind, Event, State, transition
from agentctl.domain.records import ToolStarted
from agentctl.domain.session import (
    Approval,
    Grant,
    Message,
    PendingQuestion,
    Session,
    ToolCall,
    valid_text,
    valid_value,
)
from agentctl.loop import control_tools
from agentctl.loop.decide import pending_calls
from agentctl.loop.journal import Journal
from agentctl.store.base import Store
from agentctl.tools import (
    Tool,
    ToolOutcome,
    ToolRegistry,
    approval,
    approval_subject,
    call_subject,
    effects_of,
)

if TYPE_CHECKING:
    from agentctl.workspace.snapshots import Snapshots


PREVIEW_ARGUMENTS = 256_000  # characters of arguments past which a write's diff is not taken


def _preview(tool: Tool, args: dict[str, Any]) -> str | None:
    """What a write will change, for the run view: taken before it runs, whether it was
    approved at a prompt, by --yes or by a rule. Never stops the call."""
    if tool.side_effect.idempotent or not isinstance(tool, approval.Previewable):
        return None
    if sum(len(str(v)) for v in args.values()) > PREVIEW_ARGUMENTS:
        return "(too large to show a diff)"
    try:
        return tool.preview(args)
    except Exception as exc:
        return f"(no preview: {exc})"


MAX_STRUCTURED = 64_000  # characters of a structured result kept on its checkpoint


def _structured(outcome: ToolOutcome) -> str | None:
    """A structured result (MCP's structuredContent) as JSON, kept in the store beside the
    text the model got."""
    if outcome.structured is None:
        return None
    try:
        text = json.dumps(outcome.structured, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return None
    return text if len(text) <= MAX_STRUCTURED else None


class ToolCalls:
    def __init__(
        self,
        journal: Journal,
        store: Store,
        tools: ToolRegistry,
        snapshots: Snapshots | None = None,
    ) -> None:
        self._snapshots = snapshots  # the workspace, captured around every side effect
        self._commit = journal.commit
        self._emit = journal.emit
        self._counted = journal.counted
        self._tool_message = journal.tool_message
        self._refuse = journal.tool_error  # the call's result is an error; nothing ran
        self._store = store  # the user profile, for `remember`
        self._tools = tools

    def receive_input(self, session: Session, text: str) -> Session:
        text = valid_text(text)  # a terminal's bytes that are not UTF-8
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
            # The user's answer is progress: the model's replies in a row count anew.
            session.task.model_copy(update={"pending_question": None, "stalled": ()}),
            new_messages=(self._counted(message),),
            detail=InputDetail(text),
        )

    def _receive_approval(self, session: Session, call_id: str, text: str) -> Session:
        """y: this one call may run, once (the approval names it and the question's
        checkpoint). a: that too, and the tool (run_shell: this exact command) runs unasked for
        the rest of the session, a grant on the task record. Anything else refuses; words other
        than n reach the model as the user's."""
        answer = approval.read_answer(text)
        task = session.task.model_copy(update={"pending_question": None})
        messages: tuple[Message, ...] = ()
        shown = None
        if answer.allowed:
            allowed = Approval(call_id=call_id, asked_at=session.checkpoint.id)
            task = task.model_copy(update={"approval": allowed})
        else:
            refusal = answer.words or approval.REFUSED
            messages = (self._counted(Message(role="tool", tool_call_id=call_id, content=refusal)),)
        call = next((c for c in pending_calls(session.newest_turn) if c.id == call_id), None)
        if answer.always and call is not None:
            subject = approval_subject(self._tools.get(call.name), _arguments(call))
            tool, command = approval.grant_for(call.name, subject)
            grant = Grant(
                tool=tool, command=command, session=session.info.id, at=session.checkpoint.id + 1
            )
            task = task.model_copy(update={"grants": (*task.grants, grant)})
            shown = approval.describe_grant(tool, command)
        return self._commit(
            session,
            CheckpointKind.INPUT_RECEIVED,
            transition(session.state, Event.INPUT_RECEIVED),
            task,
            new_messages=messages,
            detail=InputDetail(text, approved=answer.allowed, granted=shown),
        )

    def ask_approval(self, session: Session, call: ToolCall, question: str) -> Session:
        """The session waits for the user's yes to this call (decide.AskApproval)."""
        to_state = transition(session.state, Event.NEEDS_INPUT)
        pending = PendingQuestion(question=question, tool_call_id=call.id, kind="approval")
        task = session.task.model_copy(update={"pending_question": pending})
        detail = QuestionDetail(question, approval=call.name)
        return self._commit(session, CheckpointKind.NEEDS_INPUT, to_state, task, detail=detail)

    def refuse(self, session: Session, call: ToolCall, text: str) -> Session:
        """The call's result is an error the model reads; nothing ran (decide.RefuseCall)."""
        return self._refuse(session, call, text)

    def control_step(self, session: Session, call: ToolCall, step: control_tools.Step) -> Session:
        """A control tool's step, committed; `remember` saves its preference first
        (idempotent, set key = value, so a crash before the checkpoint only repeats it)."""
        if step.preference is not None:
            key, value = step.preference
            self._store.update_profile(lambda p: p.remember(key, value))
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

    def interrupted(self, session: Session, call: ToolCall) -> Session:
        """A call that started and has no result (decide.CallInterrupted): the model is told
        its outcome is unknown. Whatever it did to the workspace is captured now, as
        agentctl's own doing."""
        text = (
            f"{call.name} was interrupted (agentctl stopped while it ran); its outcome is "
            "unknown. Check the current state before trying again."
        )
        update: dict[str, Any] = {"in_flight": None, "approval": None}
        detail = ToolDetail(tool=call.name, tool_call_id=call.id, error=True, message=text)
        update, detail = self._captured(session, update, detail)
        return self._commit(
            session,
            CheckpointKind.TOOL_RESULT,
            session.state,
            session.task.model_copy(update=update),
            new_messages=(self._tool_message(call, f"Error: {text}"),),
            detail=detail,
        )

    def run_tool(
        self, session: Session, call: ToolCall, tool: Tool, args: dict[str, Any], approved: bool
    ) -> Session:
        """Run a work tool (decide.RunTool): a side effect records `tool_started` (the call in
        flight) first and the workspace around it; the result is committed after."""
        effects = effects_of(tool) if not tool.side_effect.idempotent else None
        subject = approval_subject(tool, args)
        command = subject.command
        detail = ToolDetail(
            tool=call.name,
            tool_call_id=call.id,
            side_effect=tool.side_effect.value,
            # what a rollback may not undo
            command=command[:500] if command is not None else None,
            confined=effects.confined if effects else None,
            sandbox=effects.sandbox if effects else None,
            network=effects.network if effects else None,
        )
        task = session.task.model_copy(update={"approval": None})  # consumed by this call
        if not tool.side_effect.idempotent:
            before, failed = self._before(session)
            started = task.model_copy(update={"in_flight": call.id, **before})
            session = self._commit(
                session,
                CheckpointKind.TOOL_STARTED,
                session.state,
                started,
                detail=replace(detail, not_captured=failed),
            )
        self._emit(
            ToolStarted(
                call.id,
                call.name,
                args,
                tool.side_effect.value,
                subject=call_subject(tool, args),
                preview=_preview(tool, args),
                approved=approved,
            )
        )
        try:
            outcome = tool.run(args)
        except Exception as exc:
            outcome = ToolOutcome(f"{call.name} failed: {exc}", is_error=True)
        detail = replace(
            detail,
            error=outcome.is_error,
            message=outcome.content.split("\n", 1)[0][:120] if outcome.is_error else None,
            structured=_structured(outcome),
        )
        update: dict[str, Any] = {"in_flight": None}
        if not tool.side_effect.idempotent:  # whatever the call did, shell included
            update, detail = self._captured(session, update, detail)
        return self._commit(
            session,
            CheckpointKind.TOOL_RESULT,
            session.state,
            task.model_copy(update=update),
            new_messages=(self._tool_message(call, outcome.content),),
            detail=detail,
            # A read-only result may be written while the next request goes out (journal.py).
            ahead=tool.side_effect.idempotent,
        )

    def _before(self, session: Session) -> tuple[dict[str, Any], tuple[str, ...] | None]:
        """The workspace just before a side effect, on its `tool_started` checkpoint. Where it
        differs from the tree the session last recorded, something else changed the files
        while the session waited (the user, another session): a rollback sees that as an
        outside edit (workspace/restore.edited_outside), never as the session's own doing.
        The first one is the session's baseline (not taken at start: a session that never
        writes a file never pays for a snapshot); every checkpoint before it stands for it
        (workspace/restore.tree_at). A capture that fails is said on the checkpoint."""
        from agentctl.errors import AgentctlError

        if self._snapshots is None:
            return {}, None
        try:
            if session.task.workspace_tree is None:
                self._snapshots.add_owner(session.info.id)  # retention: who uses this store
            return {"workspace_tree": self._snapshots.capture().tree}, None
        except AgentctlError as exc:
            return {}, (f"(no snapshot: {exc.message})",)

    def _captured(
        self, session: Session, update: dict[str, Any], detail: ToolDetail
    ) -> tuple[dict[str, Any], ToolDetail]:
        """The workspace after a side effect, on the result's checkpoint. A snapshot that
        fails is said on the checkpoint; it never loses the call's result."""
        from agentctl.errors import AgentctlError

        if self._snapshots is None:
            return update, detail
        try:
            captured = self._snapshots.capture(session.task.workspace_tree)
        except AgentctlError as exc:
            return update, replace(detail, not_captured=(f"(no snapshot: {exc.message})",))
        update = {**update, "workspace_tree": captured.tree}
        files = len(captured.changed)
        return update, replace(detail, files=files, not_captured=captured.skipped or None)


def _arguments(call: ToolCall) -> dict[str, Any]:
    """A call's arguments as a dict ({} when they do not parse: nothing to grant by)."""
    try:
        value = valid_value(json.loads(call.arguments or "{}"))
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}
