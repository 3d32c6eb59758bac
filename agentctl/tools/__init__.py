"""Work tools: the protocol the runner calls them through and the registry that holds them.

Every tool declares its side-effect class. The runner records `tool_started` before running a
tool that is not idempotent, so after a crash it knows a side effect may have happened and never
silently repeats it (design.md §4).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
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
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema of the arguments
    side_effect: SideEffect

    def run(self, arguments: dict[str, Any]) -> ToolOutcome: ...


class ToolRegistry:
    def __init__(self, tools: list[Tool] | None = None) -> None:
        self._tools = {t.name: t for t in tools or []}

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
