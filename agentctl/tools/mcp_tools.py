"""Tools from MCP servers as agentctl tools: each offered as `mcp__<server>__<tool>`, described
by its server, approved and checkpointed like the built-in ones (loop/tool_calls.py does not
know the difference). The SDK stays behind the hub (tools/mcp_client.py), imported only when
a session uses a server.

The decisions a reader must know: an MCP tool is exec-class (asked first, `tool_started`
recorded, never re-sent after a crash) and reaches outside the workspace (a rollback lists its
calls) unless its server is trusted and the tool says `readOnlyHint`; `destructiveHint` can only
add a confirmation, never remove one. Annotations are hints from a program we did not write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentctl.errors import AgentctlError, ExitCode, UsageError
from agentctl.mcpconfig import PREFIX, McpServer, tool_name
from agentctl.tools.base import OUTSIDE, Effects, SideEffect, ToolOutcome

if TYPE_CHECKING:
    from agentctl.domain.checkpoints import McpToolsDetail
    from agentctl.domain.session import McpOffer
    from agentctl.tools import ToolRegistry
    from agentctl.tools.mcp_client import McpHub, RemoteTool, ServerStatus

MAX_RESULT = 16_000  # characters sent to the model, as the file tools (tools/files.py)


class McpServerDown(AgentctlError):
    """A required MCP server did not come up: the run cannot offer what it promised."""

    exit_code = ExitCode.MODEL


@dataclass(frozen=True)
class McpTool:
    """One server tool, as the model sees it and the approval policy asks it."""

    name: str
    server: McpServer
    remote: RemoteTool
    hub: McpHub = field(repr=False, compare=False)

    @property
    def description(self) -> str:
        return self.remote.description or self.remote.title or self.remote.name

    @property
    def parameters(self) -> dict[str, Any]:
        return self.remote.schema  # passed through as the server gave it

    @property
    def side_effect(self) -> SideEffect:
        if self.server.trust_annotations and self.remote.read_only and not self.destructive:
            return SideEffect.READ
        return SideEffect.EXEC

    @property
    def destructive(self) -> bool:
        return bool(self.remote.destructive)

    @property
    def effects(self) -> Effects:
        return OUTSIDE  # a server's effects land wherever it reaches

    def named_by(self, rule: str) -> bool:
        """An allow rule names it whole (`mcp__server__tool`), or all of its server's tools
        (`mcp__server__*`); a tool that says it destroys only by its whole name."""
        if self.destructive or not rule.startswith(PREFIX):
            return rule == self.name
        return fnmatchcase(self.name, rule)

    def preview(self, arguments: dict[str, Any]) -> str:
        """What the user is asked to allow: the server, the tool and the whole arguments (the
        approval question and the run view show it; control characters are made visible)."""
        import json

        shown = json.dumps(arguments, ensure_ascii=False, sort_keys=True)
        warn = "\n  (the server says this tool may destroy data)" if self.destructive else ""
        where = f"  MCP server {self.server.name}, tool {self.remote.name}"
        return f"{where}\n  arguments: {shown}{warn}"

    def run(self, arguments: dict[str, Any]) -> ToolOutcome:
        # The arguments were checked against `parameters` before this (tools/schema.py): the
        # server never sees a call its schema refuses.
        result = self.hub.call(self.server, self.remote.name, arguments)
        text = capped(result.text, self.hub.files, self.name)
        if result.is_error:
            return ToolOutcome(f"Error: {text}" if text else "Error: the tool failed", True)
        return ToolOutcome(text, structured=result.structured)


def capped(text: str, folder: Path, name: str) -> str:
    """A long result cut for the model; the whole of it kept in a file that is named."""
    if len(text) <= MAX_RESULT:
        return text
    import hashlib

    from agentctl.atomic import write_private

    data = text.encode("utf-8", "surrogatepass")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{name}-{hashlib.sha256(data).hexdigest()[:16]}.txt"
    write_private(path, data)
    head = MAX_RESULT * 3 // 4
    tail = MAX_RESULT - head
    cut = len(text) - head - tail
    note = f"[… {cut:,} characters cut; the whole result is in {path}]"
    return f"{text[:head]}\n{note}\n{text[-tail:]}"


@dataclass
class McpSource:
    """The MCP servers of one run: started once, their tools offered, closed at the end."""

    hub: McpHub
    tools: list[McpTool]
    status: dict[str, ServerStatus]

    def close(self) -> None:
        self.hub.close()

    def bind(self, session_id: str) -> None:
        """Binary parts and whole long results of this session's calls go under its own data:
        `$AGENTCTL_HOME/mcp/sessions/ID/`."""
        self.hub.files = self.hub.files.parent / "sessions" / session_id

    def offers(self) -> tuple[McpOffer, ...]:
        """What the session records: each server (no secrets) and its tools' digests."""
        import hashlib
        import json

        from agentctl.domain.session import McpOffer

        out = []
        for name, st in self.status.items():
            digests = {
                t.name: hashlib.sha256(
                    json.dumps(
                        [t.description, t.parameters, t.remote.read_only, t.destructive],
                        sort_keys=True,
                        default=str,
                    ).encode()
                ).hexdigest()[:12]
                for t in self.tools
                if t.server.name == name
            }
            whole = hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()
            record = st.server.record()
            out.append(
                McpOffer(
                    name=name,
                    transport=record["transport"],
                    target=record["target"],
                    server=st.info,
                    up=st.up,
                    digest=whole[:16],
                    tools=digests,
                )
            )
        return tuple(out)


def bind_session(registry: ToolRegistry, session_id: str) -> None:
    for source in registry.sources:
        if isinstance(source, McpSource):
            source.bind(session_id)


def offers_of(registry: ToolRegistry) -> tuple[McpOffer, ...]:
    """The MCP servers and tools a registry offers, as a session records them."""
    return tuple(o for s in registry.sources if isinstance(s, McpSource) for o in s.offers())


def not_offered(offers: tuple[McpOffer, ...], name: str) -> str | None:
    """Why an MCP tool the model called is not offered (any more), naming the change; None for
    a name that is no MCP tool's (or one the session was offered: said as an unknown tool)."""
    if not name.startswith(PREFIX):
        return None
    for offer in offers:
        if name in offer.tools:
            return None
    server = name.removeprefix(PREFIX).split("__", 1)[0]
    known = {o.name: o for o in offers}
    using = known.get(server)
    if using is None:
        return f"{name} is not offered: no MCP server {server!r} is in use in this session"
    if not using.up:
        return f"{name} is not offered now: its MCP server {server!r} is down"
    return (
        f"{name} is not offered now: the MCP server {server!r} no longer lists that tool "
        f"(its tools are: {', '.join(sorted(using.tools)) or 'none'})"
    )


def mcp_change(old: tuple[McpOffer, ...], new: tuple[McpOffer, ...]) -> McpToolsDetail:
    """Which offered tools were added, removed or changed, and which servers are down."""
    from agentctl.domain.checkpoints import McpToolsDetail

    before = {n: d for o in old for n, d in o.tools.items()}
    after = {n: d for o in new for n, d in o.tools.items()}
    return McpToolsDetail(
        added=tuple(sorted(set(after) - set(before))),
        removed=tuple(sorted(set(before) - set(after))),
        changed=tuple(sorted(n for n in set(before) & set(after) if before[n] != after[n])),
        down=tuple(sorted(o.name for o in new if not o.up)),
    )


def said(change: McpToolsDetail) -> str:
    """A change in words, for the run view and `show`."""
    parts = []
    for label, names in (
        ("added", change.added),
        ("removed", change.removed),
        ("changed", change.changed),
        ("servers down", change.down),
    ):
        if names:
            shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
            parts.append(f"{label}: {shown}")
    return "; ".join(parts) or "the servers changed (same tools)"


def offered_tools(status: Mapping[str, ServerStatus], hub: McpHub) -> list[McpTool]:
    """Every tool of every server that is up, under its offered name; two that would share
    a name stop the run, naming both."""
    by_name: dict[str, McpTool] = {}
    for server_status in status.values():
        if not server_status.up:
            continue
        server = server_status.server
        for remote in server_status.tools:
            if not server.offers(remote.name):
                continue
            name = tool_name(server.name, remote.name)
            other = by_name.get(name)
            if other is not None:
                raise UsageError(
                    f"two MCP tools would both be offered as {name}: "
                    f"{other.server.name}'s {other.remote.name!r} and "
                    f"{server.name}'s {remote.name!r}",
                    hint="rename a server (agentctl mcp remove/add) or disable one tool "
                    "(disabled_tools)",
                )
            by_name[name] = McpTool(name, server, remote, hub)
    return list(by_name.values())


def spawn_servers(
    servers: list[McpServer], *, environ: Mapping[str, str], cwd: Path, data: Path
) -> McpHub:
    """The servers' hub, their stdio processes started already (where the SDK is installed to
    talk to them), without importing the SDK: they boot while it loads (`start_servers`)."""
    from agentctl.tools.mcp_client import McpHub, sdk_installed

    hub = McpHub(servers, environ=environ, cwd=cwd, logs=data / "logs", files=data / "files")
    if sdk_installed():
        hub.spawn()
    return hub


def start_servers(hub: McpHub, *, say: Callable[[str], None]) -> McpSource:
    """Connect to the servers (in parallel, each within its timeout); a required one that
    does not come up stops the run (exit 5) after the others are closed; an optional one is
    said and left out."""
    servers = hub.servers
    try:
        status = hub.start()
        for s in servers:
            st = status[s.name]
            if st.up:
                offered = sum(1 for t in st.tools if s.offers(t.name))
                given = f"{st.info}, " if st.info else ""
                say(f"MCP server {s.name}: {given}{offered} tools, up in {st.seconds:.1f} s")
                continue
            if s.required:
                raise McpServerDown(
                    f"the required MCP server {s.name!r} is not available: {st.error}",
                    hint=f"agentctl mcp check {s.name}",
                )
            say(f"MCP server {s.name!r} is not available ({st.error}); its tools are left out")
        tools = offered_tools(status, hub)
    except BaseException:
        hub.close()
        raise
    return McpSource(hub, tools, status)
