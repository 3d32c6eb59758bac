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
from pathlib import Path
from typing import TYPE_CHECKING

from agentctl.tools.base import CONFINED as CONFINED
from agentctl.tools.base import NO_SUBJECT as NO_SUBJECT
from agentctl.tools.base import OUTSIDE as OUTSIDE
from agentctl.tools.base import Described as Described
from agentctl.tools.base import Effects as Effects
from agentctl.tools.base import SideEffect as SideEffect
from agentctl.tools.base import Subject as Subject
from agentctl.tools.base import SubjectType as SubjectType
from agentctl.tools.base import Tool as Tool
from agentctl.tools.base import ToolOutcome as ToolOutcome
from agentctl.tools.base import ToolSource as ToolSource
from agentctl.tools.base import ToolSpec as ToolSpec
from agentctl.tools.base import approval_subject as approval_subject
from agentctl.tools.base import call_subject as call_subject
from agentctl.tools.base import effects_of as effects_of
from agentctl.tools.base import named_by as named_by
from agentctl.tools.base import spec_of as spec_of

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from concurrent.futures import Future

    from agentctl.tools.approval import ApprovalPolicy
    from agentctl.tools.sandbox import Sandbox


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

    def prepare(self) -> None:
        """Start what the tools here need ahead of their first call (a sandboxed shell's
        first process), for each tool that says it can (`prepare`)."""
        for tool in list(self._tools.values()):
            prepare = getattr(tool, "prepare", None)
            if callable(prepare):
                prepare()

    def get(self, name: str) -> Tool | None:
        self.settle()
        return self._tools.get(name)

    @property
    def names(self) -> list[str]:
        self.settle()
        return sorted(self._tools)

    def specs(self) -> list[ToolSpec]:
        """The tools as the model is offered them (provider-neutral; an adapter words them)."""
        self.settle()
        return [spec_of(t) for t in self._tools.values()]


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
