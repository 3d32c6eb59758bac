"""What a tool is: the protocol the runner calls it through and what it says of itself (its
side-effect class, where its effects land, its subjects). See the package's docstring."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from agentctl.domain.toolspec import ToolSpec as ToolSpec


class SideEffect(StrEnum):
    READ = "read"  # idempotent: safe to run again after a crash
    WRITE = "write"
    EXEC = "exec"

    @property
    def idempotent(self) -> bool:
        return self is SideEffect.READ


@dataclass(frozen=True)
class Effects:
    """What a tool says about where its effects land: the seam rollback and approval ask,
    instead of testing a tool's name. A tool that says nothing reaches outside (effects_of)."""

    # Every effect the tool can have is inside the workspace (or it has none), so a rollback,
    # which restores the workspace, undoes all of it.
    confined: bool
    sandbox: str | None = None  # commands: the sandbox they run in (tools/sandbox.py modes)
    network: bool | None = None  # commands: whether they may reach the network


OUTSIDE = Effects(confined=False)
CONFINED = Effects(confined=True)


def effects_of(tool: Tool) -> Effects:
    """The tool's own `effects`, or OUTSIDE when it does not describe them (the safe side)."""
    effects = getattr(tool, "effects", None)
    return effects if isinstance(effects, Effects) else OUTSIDE


class SubjectType(StrEnum):
    COMMAND = "command"  # a shell command: a rule matches its argument vector, `a` grants it alone
    PATH = "path"  # a path in the workspace: a rule matches it normalised, as a glob
    NONE = "none"  # nothing to match: a rule or an `a` covers every call of the tool


@dataclass(frozen=True)
class Subject:
    """What an approval of one call shows and an allow rule matches."""

    type: SubjectType
    text: str = ""

    @property
    def command(self) -> str | None:
        """The command, for a command: what a grant names and a rollback may not undo."""
        return self.text if self.type is SubjectType.COMMAND else None


NO_SUBJECT = Subject(SubjectType.NONE)


@runtime_checkable
class Described(Protocol):
    """A tool that says what each call works on (the built-in ones do)."""

    def approval_subject(self, arguments: dict[str, Any]) -> Subject: ...

    def subject(self, arguments: dict[str, Any]) -> str: ...


def approval_subject(tool: Tool | None, arguments: dict[str, Any]) -> Subject:
    """What an approval of this call shows and a rule matches (NO_SUBJECT: the whole tool, also
    for a tool that is gone)."""
    if isinstance(tool, Described):
        with contextlib.suppress(Exception):  # checked arguments; a tool's bug asks about it whole
            return tool.approval_subject(arguments)
    return NO_SUBJECT


def call_subject(tool: Tool, arguments: dict[str, Any]) -> str:
    """How a run view names this call: the tool's words, else its arguments, short."""
    if isinstance(tool, Described):
        with contextlib.suppress(Exception):
            return tool.subject(arguments)
    import json

    text = json.dumps(arguments, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:79] + "…"


def named_by(tool: Tool, rule: str) -> bool:
    """Whether the tool part of an allow rule names this tool: its name, or what the tool
    itself accepts (`named_by`: an MCP server's `mcp__server__*`)."""
    own = getattr(tool, "named_by", None)
    if callable(own):
        return bool(own(rule))
    return rule == tool.name


@dataclass(frozen=True)
class ToolOutcome:
    content: str
    is_error: bool = False
    structured: Any = None  # a JSON value beside the text (MCP's structuredContent), stored


class ToolSource(Protocol):
    """Where tools beyond the built-in ones come from (an MCP hub): held open for a run."""

    def close(self) -> None: ...


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


def spec_of(tool: Tool) -> ToolSpec:
    """The tool as the model is offered it (a ToolSpec: no provider's wire form)."""
    return ToolSpec(tool.name, tool.description, tool.parameters)
