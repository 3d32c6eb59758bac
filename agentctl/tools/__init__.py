"""Work tools: the protocol the runner calls them through and the registry that holds them.

Every tool declares its side-effect class. The runner records `tool_started` before running a
tool that is not idempotent, so after a crash it knows a side effect may have happened and never
silently repeats it (design.md §4).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Protocol


class SideEffect(StrEnum):
    READ = "read"  # idempotent: safe to run again after a crash
    WRITE = "write"
    EXEC = "exec"

    @property
    def idempotent(self) -> bool:
        return self is SideEffect.READ


@dataclass(frozen=True)
class ToolOutcome:
    content: str
    is_error: bool = False


class Tool(Protocol):
    # Read-only members, so frozen dataclasses satisfy the protocol.
    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def parameters(self) -> dict[str, Any]:  # JSON schema of the arguments
        ...

    @property
    def side_effect(self) -> SideEffect: ...

    def run(self, arguments: dict[str, Any]) -> ToolOutcome: ...


@dataclass(frozen=True)
class ApprovalPolicy:
    """Which calls run without asking: reads always; the rest with --yes or when the task's
    allow-list names them (`write_file`, or `run_shell:pytest*` for matching commands)."""

    yes: bool = False
    allow: tuple[str, ...] = ()

    def needs_approval(self, tool: Tool, arguments: dict[str, Any]) -> bool:
        if tool.side_effect is SideEffect.READ or self.yes:
            return False
        for rule in self.allow:
            name, _, pattern = rule.partition(":")
            if name == tool.name and (
                not pattern or fnmatchcase(str(arguments.get("command", "")), pattern)
            ):
                return False
        return True


def describe_call(name: str, arguments: dict[str, Any]) -> str:
    """How an action is put to the user for approval."""
    if "command" in arguments:
        return f"{name}: {arguments['command']}"
    if "path" in arguments:
        return f"{name} {arguments['path']}"
    return name


class ToolRegistry:
    def __init__(
        self, tools: list[Tool] | None = None, policy: ApprovalPolicy | None = None
    ) -> None:
        self._tools = {t.name: t for t in tools or []}
        self.policy = policy or ApprovalPolicy()

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    @property
    def names(self) -> list[str]:
        return sorted(self._tools)

    def schemas(self) -> list[dict[str, Any]]:
        return [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                },
            }
            for t in self._tools.values()
        ]


def work_tools(workspace: Path, policy: ApprovalPolicy) -> ToolRegistry:
    """The standard tools, confined to `workspace`."""
    from agentctl.tools.files import (
        EditFile,
        ListFiles,
        ReadFile,
        SearchFiles,
        Workspace,
        WriteFile,
    )
    from agentctl.tools.shell import RunShell

    ws = Workspace(workspace)
    tools: list[Tool] = [
        ReadFile(ws),
        ListFiles(ws),
        SearchFiles(ws),
        WriteFile(ws),
        EditFile(ws),
        RunShell(ws),
    ]
    return ToolRegistry(tools, policy)
