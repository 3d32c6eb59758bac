"""Work tools: the protocol the runner calls them through and the registry that holds them.

A tool describes itself, and nothing outside this package tests a tool's name or its argument
keys (tests/test_architecture.py holds that): its name, its arguments' JSON schema (checked
before it runs, tools/schema.py), its side-effect class, where its effects land (`effects`: in
the workspace, so in workspace checkpoints and undone by a rollback, or beyond), what an
approval shows and an allow rule matches (`approval_subject`: a command, a path, or the tool
as a whole) and how a run view names a call (`subject`). Every tool declares its side-effect
class; the rest is optional, read through the functions below, whose defaults are the safe
side: effects outside, no subject to match. The runner records `tool_started` before running a
tool that is not idempotent, so after a crash it knows a side effect may have happened and never
silently repeats it (design.md §4). Built-in tools and tools from elsewhere (MCP servers) join
one registry.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from concurrent.futures import Future

    from agentctl.tools.approval import ApprovalPolicy
    from agentctl.tools.sandbox import Sandbox


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


class SubjectKind(StrEnum):
    COMMAND = "command"  # a shell command: a rule matches its argument vector, `a` grants it alone
    PATH = "path"  # a path in the workspace: a rule matches it normalised, as a glob
    NONE = "none"  # nothing to match: a rule or an `a` covers every call of the tool


@dataclass(frozen=True)
class Subject:
    """What an approval of one call shows and an allow rule matches."""

    kind: SubjectKind
    text: str = ""

    @property
    def command(self) -> str | None:
        """The command, for a command: what a grant names and a rollback may not undo."""
        return self.text if self.kind is SubjectKind.COMMAND else None


NO_SUBJECT = Subject(SubjectKind.NONE)


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


class ToolRegistry:
    def __init__(
        self, tools: list[Tool] | None = None, policy: ApprovalPolicy | None = None
    ) -> None:
        from agentctl.tools.approval import ApprovalPolicy

        self._tools = {t.name: t for t in tools or []}
        self.policy = policy or ApprovalPolicy()
        self.sources: list[ToolSource] = []
        self._pending: list[Future[tuple[list[Tool], ToolSource]]] = []

    def add_later(self, start: Callable[[], tuple[list[Tool], ToolSource]]) -> None:
        """Tools that take a while to come (MCP servers starting): `start` runs in a thread
        while the run goes on loading; the first question about the tools waits for it, and
        an error it raised is raised there."""
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tools")
        self._pending.append(pool.submit(start))
        pool.shutdown(wait=False)

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def settle(self) -> None:
        """Wait for tools added with `add_later`; the first error is raised (after every
        source that did come is kept, so `close` stops it)."""
        pending, self._pending = self._pending, []
        first: BaseException | None = None
        for future in pending:
            try:
                tools, source = future.result()
            except BaseException as exc:
                first = first or exc
                continue
            self.add(tools, source)
        if first is not None:
            raise first

    def add(self, tools: list[Tool], source: ToolSource | None = None) -> None:
        """More tools (an MCP server's); `source` is closed with the registry."""
        for tool in tools:
            self._tools[tool.name] = tool
        if source is not None:
            self.sources.append(source)

    def close(self) -> None:
        with contextlib.suppress(BaseException):  # said where it was settled, if it was
            self.settle()
        sources, self.sources = self.sources, []
        for source in sources:
            source.close()

    def get(self, name: str) -> Tool | None:
        self.settle()
        return self._tools.get(name)

    @property
    def names(self) -> list[str]:
        self.settle()
        return sorted(self._tools)

    def schemas(self) -> list[dict[str, Any]]:
        self.settle()
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


def work_tools(
    workspace: Path,
    policy: ApprovalPolicy,
    *,
    forbidden: tuple[Path, ...] = (),
    shell_env: Mapping[str, str] | None = None,
    sandbox: Sandbox | None = None,
    sandbox_off: str = "off",
) -> ToolRegistry:
    """The standard tools, confined to `workspace` and kept out of `forbidden` (agentctl's own
    settings and data); shell commands get `shell_env` and run in `sandbox` (None: unsandboxed,
    recorded as `sandbox_off`: "off", or "unavailable" where one was wanted)."""
    from agentctl.tools.files import (
        EditFile,
        ListFiles,
        ReadFile,
        SearchFiles,
        Workspace,
        WriteFile,
    )
    from agentctl.tools.shell import RunShell

    ws = Workspace(workspace, tuple(p.resolve() for p in forbidden))
    tools: list[Tool] = [
        ReadFile(ws),
        ListFiles(ws),
        SearchFiles(ws),
        WriteFile(ws),
        EditFile(ws),
        RunShell(ws, env=shell_env, sandbox=sandbox, unsandboxed=sandbox_off),
    ]
    return ToolRegistry(tools, policy)
