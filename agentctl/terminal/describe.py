"""One line per checkpoint, as `history`, its graph and the live run view say it: each
checkpoint kind's detail read as its record (domain/checkpoints.py), shown as markup with its
outside text escaped."""

from __future__ import annotations

from typing import Any

from agentctl.domain.checkpoints import (
    ApprovalModeDetail,
    CompactionDetail,
    ErrorDetail,
    FinishDetail,
    FollowUpDetail,
    InputDetail,
    InstructionsDetail,
    McpToolsDetail,
    NudgeDetail,
    PlanDetail,
    QuestionDetail,
    RememberDetail,
    ReplyDetail,
    RollbackDetail,
    StepDetail,
    ToolDetail,
)
from agentctl.domain.checkpoints import parse as parse_detail
from agentctl.terminal.render import escape, flat, one_line, plural


def sandboxed(d: ToolDetail) -> str:
    """Where a command ran, when it says: ` [sandbox: workspace-write]`, ` [no sandbox]`."""
    if d.sandbox is None:
        return ""
    if d.sandbox in ("off", "unavailable"):
        return f" [yellow]\\[no sandbox: {escape(d.sandbox)}][/]"
    network = ", network" if d.network else ""
    return f" [dim]\\[sandbox: {escape(d.sandbox)}{network}][/]"


def _files(count: int | None, verb: str) -> str:
    """How many workspace files a checkpoint changed, for `history` and the live view."""
    if not count:
        return ""
    return f" [yellow]({count} file{'s' if count != 1 else ''} {verb})[/]"


def _not_captured(names: tuple[str, ...] | None) -> str:
    """What a capture left out, or why it failed: said, never silent."""
    if not names:
        return ""
    failed = [n for n in names if n.startswith("(no snapshot")]
    if failed:
        return f" [red]{escape(flat(failed[0]))}[/]"
    shown = ", ".join(flat(n) for n in names[:5]) + (" …" if len(names) > 5 else "")
    return f" [yellow](not snapshotted: {escape(shown)})[/]"


def describe_checkpoint(kind: str, detail: dict[str, Any]) -> str:
    """One line of markup for a checkpoint, as the live view and `history` show it. The
    detail is read as its kind's record (a damaged store's odd values read as absent)."""

    def e(text: str) -> str:
        return escape(one_line(text))

    d = parse_detail(kind, detail)
    if kind == "new_task":
        return "[cyan]planning[/]"
    if isinstance(d, ReplyDetail):
        tools = ", ".join(d.tools)
        return f"[dim]model replied[/] → {e(tools)}" if tools else "[dim]model replied[/]"
    if isinstance(d, PlanDetail) and kind == "plan_ready":
        return "[cyan]plan:[/] " + "; ".join(f"{n}. {e(s)}" for n, s in enumerate(d.steps, 1))
    if isinstance(d, PlanDetail):
        return "[cyan]plan revised:[/] " + "; ".join(e(s) for s in d.steps)
    if isinstance(d, StepDetail):
        return f"[green]✓[/] {e(d.step)}: {e(d.summary)}"
    if isinstance(d, QuestionDetail):
        return f"[yellow]? {e(d.question)}[/]"
    if isinstance(d, InputDetail):
        if d.granted:
            return f"[yellow]←[/] {e(d.input)} [dim](allowed for this session: {e(d.granted)})[/]"
        if d.approved is False:
            return f"[yellow]←[/] {e(d.input)} [dim](refused)[/]"
        return f"[yellow]←[/] {e(d.input)}"
    if isinstance(d, FinishDetail):
        return f"[green]done[/] ({e(d.outcome)})"
    if isinstance(d, FollowUpDetail):
        return f"[cyan]follow-up:[/] {e(d.input)}"
    if isinstance(d, ApprovalModeDetail):
        if d.auto_approve:
            return "[yellow]approvals: writes and commands run without asking (--yes)[/]"
        return "[yellow]approvals: writes and commands are asked again (--ask)[/]"
    if isinstance(d, McpToolsDetail):
        parts = [
            f"{label}: {', '.join(names)}"
            for label, names in (
                ("added", d.added),
                ("removed", d.removed),
                ("changed", d.changed),
                ("servers down", d.down),
            )
            if names
        ]
        return f"[magenta]MCP tools changed:[/] {e('; '.join(parts) or 'servers changed')}"
    if isinstance(d, InstructionsDetail):
        if d.removed:
            return f"[magenta]instructions removed:[/] {e(d.path)}"
        return f"[magenta]instructions changed:[/] {e(d.path)} ({d.chars} characters)"
    if isinstance(d, RememberDetail):
        return f"remembered {e(d.key)} = {e(d.value)}"
    if isinstance(d, ToolDetail) and kind == "tool_started":
        what = f"{e(d.tool)}: {e(d.command)}" if d.command else e(d.tool)
        return f"[dim]running {what}…[/]{sandboxed(d)}{_not_captured(d.not_captured)}"
    if isinstance(d, ToolDetail):
        files = _files(d.files, "changed") + _not_captured(d.not_captured)
        if d.error:
            return f"[red]✗ {e(d.tool)}:[/] {e(d.message or 'failed')}{files}"
        return f"[dim]{e(d.tool)} ok[/]{files}"
    if isinstance(d, NudgeDetail):
        return "[dim]reminded the model to call a tool[/]"
    if isinstance(d, ErrorDetail):
        return f"[red]error:[/] {e(d.error)}"
    if isinstance(d, CompactionDetail):
        how = "summarized" if d.strategy == "summarize" else "dropped"
        return (
            f"[magenta]context compacted:[/] {plural(d.dropped, 'older message')} "
            f"{how} ({d.tokens_before:,} → {d.tokens_after:,} tokens)"
        )
    if isinstance(d, RollbackDetail):
        what = "files put back" if d.files_only else "rolled back"
        return f"[magenta]{what}[/] from #{d.from_} to #{d.to}{_files(d.files, 'restored')}"
    return e(kind)
