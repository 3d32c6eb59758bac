"""`agentctl tools`: the tools a task gets, with their arguments, side-effect class and when a
call asks first; as a list for a person or one JSON document. Plain text: no rich needed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentctl.render import escape, note, out

if TYPE_CHECKING:
    from agentctl.records import ToolInfo


def tools_json(tools: list[ToolInfo]) -> list[dict[str, Any]]:
    return [
        {
            "name": t.name,
            "description": t.description,
            "side_effect": t.side_effect,
            "approval": t.approval,
            "arguments": [
                {
                    "name": a.name,
                    "type": a.type,
                    "required": a.required,
                    "description": a.description,
                    "default": a.default,
                }
                for a in t.arguments
            ],
        }
        for t in tools
    ]


def tools_list(tools: list[ToolInfo]) -> None:
    width = max(len(t.name) for t in tools)
    lines = []
    for t in tools:
        name, kind = f"{escape(t.name):{width}}", f"{t.side_effect:7}"
        lines.append(f"[bold]{name}[/]  [cyan]{kind}[/]  {escape(t.description)}")
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
