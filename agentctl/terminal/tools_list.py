"""`agentctl tools`: the tools a task gets, with their arguments, side-effect class and when a
call asks first; as a list for a person or one JSON document. Plain text: no rich needed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentctl.terminal.render import escape, note, out

if TYPE_CHECKING:
    from agentctl.domain.records import McpServerRow, McpToolRow, ToolInfo


def tools_list(tools: list[ToolInfo]) -> None:
    width = max(len(t.name) for t in tools)
    lines = []
    for t in tools:
        name, side_effect = f"{escape(t.name):{width}}", f"{t.side_effect:7}"
        lines.append(f"[bold]{name}[/]  [cyan]{side_effect}[/]  {escape(t.description)}")
        for a in t.arguments:
            need = "required" if a.required else "optional"
            default = f", default {a.default!r}" if a.default is not None else ""
            about = f" — {escape(a.description)}" if a.description else ""
            what = f"{escape(a.name)}: {escape(a.type)}, {need}{escape(default)}{about}"
            lines.append(f"{'':{width}}    {what}")
        lines.append(f"{'':{width}}    [dim]approval: {escape(t.approval)}[/]")
    out.print("\n".join(lines))
    note(
        "control tools move the session (plan, steps, questions, the result); read tools never "
        "ask; write and exec tools ask first unless --yes or the task's allow list names them"
    )


def mcp_servers_list(rows: list[McpServerRow]) -> None:
    if not rows:
        note("no MCP servers configured: agentctl mcp add NAME -- COMMAND ARGS…")
        return
    lines = []
    for r in rows:
        flags = [r.transport]
        if not r.enabled:
            flags.append("disabled")
        if r.required:
            flags.append("required")
        if r.trust_annotations:
            flags.append("trusts annotations")
        lines.append(f"[bold]{escape(r.name)}[/]  [cyan]{escape(', '.join(flags))}[/]")
        lines.append(f"    {escape(r.target)}")
        for label, values in (("env", r.env), ("headers", r.headers)):
            if values:
                shown = ", ".join(f"{k}={v}" for k, v in values.items())
                lines.append(f"    {label}: {escape(shown)}")
    out.print("\n".join(lines))


def mcp_check(server: McpServerRow, tools: list[McpToolRow], info: str) -> None:
    lines = [f"[bold]{escape(server.name)}[/]: {escape(info)} · {escape(server.target)}"]
    width = max((len(t.name) for t in tools), default=0)
    for t in tools:
        hints = [h for h, on in (("readOnly", t.read_only), ("destructive", t.destructive)) if on]
        about = f" ({', '.join(hints)})" if hints else ""
        lines.append(
            f"  {escape(t.name):{width}}  [cyan]{t.side_effect:5}[/]  {t.tokens:>5} tokens"
            f"{escape(about)}  {escape(t.description.splitlines()[0] if t.description else '')}"
        )
    total = sum(t.tokens for t in tools)
    lines.append(f"  {len(tools)} tools, {total:,} tokens of schemas on every model call")
    out.print("\n".join(lines))
