"""Tool calls: the model's calls to control tools and work tools, and the user's answers to
the questions they raise (approvals among them).

The decisions that matter here: a control tool is a pure handler (control_tools.py) whose step is
committed; a side-effecting work tool records `tool_started` (the call in flight on the task
state) before it runs and its result after, so it is never run twice; an approval covers one
call, once (tools/approval.py).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from agentctl.domain.checkpoints import ErrorDetail, InputDetail, QuestionDetail, ToolDetail
from agentctl.domain.lifecycle import CheckpointKind, Event, State, transition
from agentctl.domain.records import ToolStarted
from agentctl.domain.state import (
    Approval,
    FinishReason,
    Grant,
    Message,
    PendingQuestion,
    Session,
    ToolCall,
    sendable_name,
    valid_text,
    valid_value,
)
from agentctl.errors import InvalidTransition
from agentctl.loop import control_tools, prompts
from agentctl.loop.decide import in_flight, pending_calls, reply_of
from agentctl.loop.journal import Journal
from agentctl.store.base import Store
from agentctl.tools import (
    NO_SUBJECT,
    Subject,
    Tool,
    ToolOutcome,
    ToolRegistry,
    approval,
    approval_subject,
    call_subject,
    effects_of,
)
from agentctl.tools.schema import check_arguments

if TYPE_CHECKING:
    from agentctl.workspace.snapshots import Snapshots


# The control tools' argument schemas, checked as every work tool's are (tools/schema.py).
_CONTROL_PARAMETERS: dict[str, dict[str, Any]] = {
    t["function"]["name"]: t["function"]["parameters"] for t in prompts.CONTROL_TOOLS
}
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
        the rest of the session, a grant on the task state. Anything else refuses; words other
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

    def _ask_approval(self, session: Session, call: ToolCall, question: str) -> Session:
        try:
            to_state = transition(session.state, Event.NEEDS_INPUT)
        except InvalidTransition:
            return self._refuse(
                session, call, f"{call.name} needs the user's approval; submit a plan first"
            )
        pending = PendingQuestion(question=question, tool_call_id=call.id, kind="approval")
        task = session.task.model_copy(update={"pending_question": pending})
        detail = QuestionDetail(question, approval=call.name)
        return self._commit(session, CheckpointKind.NEEDS_INPUT, to_state, task, detail=detail)

    def _approved(self, session: Session, call: ToolCall, subject: Subject = NO_SUBJECT) -> bool:
        """The user allowed this call: once (y), by a grant of this session (a), or by the
        session's approval mode (--yes). A yes or a grant recorded before this user took the
        session (trust.py: an import, another user's store) does not count."""
        task = session.task
        head = session.checkpoint.id
        counts = self._tools.policy.counts
        granted = task.approval  # recorded by the answer, the checkpoint after the question
        if (
            granted is not None
            and granted.call_id == call.id
            and counts(granted.asked_at + 1, head)
        ):
            return True
        if task.auto_approve:  # reset to asking when a session from elsewhere is taken
            return True
        grants = [g for g in task.grants if counts(g.at, head)]
        return approval.granted(grants, session.info.id, call.name, subject) is not None

    def handle_call(self, session: Session, call: ToolCall) -> Session:
        try:
            arguments = valid_value(json.loads(call.arguments or "{}"))  # `\ud800` escapes
            if not isinstance(arguments, dict):
                raise ValueError("arguments must be a JSON object")
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep to parse
            if reply_of(session.newest_turn, call).finish is FinishReason.LENGTH:
                return self._refuse(
                    session,
                    call,
                    "your reply was cut off at the output limit, so these arguments are "
                    "incomplete; call the tool again with shorter arguments",
                )
            return self._refuse(session, call, f"arguments are not valid JSON: {exc}")
        handler = control_tools.HANDLERS.get(call.name)
        if handler is None:
            return self._work_tool(session, call, arguments)
        if (problem := check_arguments(_CONTROL_PARAMETERS[call.name], arguments)) is not None:
            return self._refuse(session, call, f"bad arguments for {call.name}: {problem}")
        try:
            step = handler(session.state, session.task, call, arguments)
        except InvalidTransition as exc:
            return self._refuse(session, call, f"{call.name} is not allowed while {exc.state}")
        except (KeyError, TypeError, ValueError) as exc:
            return self._refuse(session, call, f"bad arguments for {call.name}: {exc}")
        if step.preference is not None:
            key, value = step.preference
            if self._tools.policy.needs_approval_to_remember() and not self._approved(
                session, call
            ):
                return self._ask_approval(session, call, approval.remember_question(key, value))
            # Idempotent (set key = value), so a crash before the checkpoint only repeats it.
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

    def _work_tool(self, session: Session, call: ToolCall, args: dict[str, Any]) -> Session:
        tool = self._tools.get(call.name)
        if tool is None and not in_flight(session, call):
            from agentctl.tools.mcp_tools import not_offered

            gone = not_offered(session.task.mcp, call.name)
            if gone is not None:
                return self._refuse(session, call, gone)
            known = ", ".join(sorted(prompts.CONTROL_TOOL_NAMES | set(self._tools.names)))
            sent = sendable_name(call.name)
            if sent != call.name:  # the API takes no such name: the model sees `sent`
                said = "had no name" if not call.name else f"had the malformed name {call.name!r}"
                return self._refuse(
                    session, call, f"your tool call {said} (shown as {sent}); tools: {known}"
                )
            return self._refuse(session, call, f"unknown tool {call.name!r}; tools: {known}")
        if in_flight(session, call) or tool is None:
            # It started and we have no result: after a crash, or a rollback to this point,
            # the effect may or may not have happened. Never run it again. Whatever it did to
            # the workspace is captured now, as agentctl's own doing.
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
        assert tool is not None
        if not tool.side_effect.idempotent and session.state is State.PLANNING:
            # One rule whatever the approval mode: nothing changes before there is a plan.
            return self._refuse(session, call, f"{call.name} may run once a plan is submitted")
        if (problem := check_arguments(tool.parameters, args)) is not None:
            # Before anyone is asked and before it runs: the model hears which argument.
            return self._refuse(session, call, f"bad arguments for {call.name}: {problem}")
        subject = approval_subject(tool, args)
        if not self._approved(session, call, subject) and self._tools.policy.needs_approval(
            tool, args
        ):
            if isinstance(tool, approval.Checked) and (failure := tool.known_failure(args)):
                # Nothing to ask about: the call would fail. The model hears why at once.
                return self._refuse(session, call, failure)
            return self._ask_approval(session, call, approval.question(tool, args))
        return self._run_tool(session, call, tool, args)

    def _run_tool(
        self, session: Session, call: ToolCall, tool: Tool, args: dict[str, Any]
    ) -> Session:
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
        approved = self._approved(session, call, subject)
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

    def _record_error(self, session: Session, message: str, **update: Any) -> Session:
        """An error leaves the state as it was; it is recorded so `show` and `history` tell it."""
        task = session.task.model_copy(update={"last_error": message, **update})
        return self._commit(
            session, CheckpointKind.ERROR, session.state, task, detail=ErrorDetail(message)
        )


def _arguments(call: ToolCall) -> dict[str, Any]:
    """A call's arguments as a dict ({} when they do not parse: nothing to grant by)."""
    try:
        value = valid_value(json.loads(call.arguments or "{}"))
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}
