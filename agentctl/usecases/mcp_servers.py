"""`agentctl mcp`: the MCP servers of the settings file, added, listed, removed, imported from
Claude Code's `.mcp.json`, and checked (started, their tools listed with annotations and what
their schemas cost in tokens). Secrets are masked wherever a server is shown.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from agentctl.config import Settings, read_file, write_file
from agentctl.domain.records import McpServerRow, McpToolRow
from agentctl.errors import UsageError
from agentctl.mcpconfig import McpServer, masked_env, parse_server, valid_server_name


def _servers_table(values: dict[str, object]) -> dict[str, Any]:
    table = values.get("mcp_servers")
    return dict(table) if isinstance(table, dict) else {}


def _save(settings: Settings, values: dict[str, object], table: dict[str, Any]) -> Path:
    path = settings.config_path
    values = {**values, "mcp_servers": table}
    # checked as a whole before it is written: a bad table never lands in the file
    from agentctl.mcpconfig import parse_servers

    parse_servers(table, f"settings file {path}")
    try:
        write_file(path, values)
    except OSError as exc:
        raise UsageError(f"cannot write settings file {path}: {exc.strerror or exc}") from None
    return path


def add_server(
    settings: Settings,
    name: str,
    command: list[str],
    *,
    url: str | None = None,
    env: tuple[str, ...] = (),
    headers: tuple[str, ...] = (),
    required: bool = False,
    trust_annotations: bool = False,
    overwrite: bool = False,
) -> tuple[Path, McpServerRow]:
    """Add (or with `replace`, change) one server in the settings file."""
    valid_server_name(name)
    if bool(command) == bool(url):
        raise UsageError(
            "give the server's command after -- (agentctl mcp add NAME -- COMMAND ARGS…) or "
            "--url URL, one of them"
        )
    values = read_file(settings.config_path)
    table = _servers_table(values)
    if name in table and not overwrite:
        raise UsageError(
            f"an MCP server named {name!r} is already configured",
            hint=f"agentctl mcp remove {name}, or add it with --replace",
        )
    entry: dict[str, Any] = {"url": url} if url else {"command": command[0], "args": command[1:]}
    if env:
        entry["env"] = _pairs(env, "--env", "NAME=VALUE")
    if headers:
        entry["http_headers"] = _pairs(headers, "--header", "NAME: VALUE", sep=":")
    if required:
        entry["required"] = True
    if trust_annotations:
        entry["trust_annotations"] = True
    server = parse_server(name, entry, "agentctl mcp add")
    table[name] = server.as_table()
    return _save(settings, values, table), row(server)


def _pairs(items: tuple[str, ...], flag: str, shape: str, sep: str = "=") -> dict[str, str]:
    out = {}
    for item in items:
        key, found, value = item.partition(sep)
        if not found or not key.strip():
            raise UsageError(f"{flag} takes {shape}, not {item!r}")
        out[key.strip()] = value.strip() if sep == ":" else value
    return out


def remove_server(settings: Settings, name: str) -> Path:
    values = read_file(settings.config_path)
    table = _servers_table(values)
    if name not in table:
        raise UsageError(f"no MCP server named {name!r} is configured", hint="agentctl mcp list")
    del table[name]
    return _save(settings, values, table)


def list_servers(settings: Settings) -> list[McpServerRow]:
    return [row(s) for s in settings.mcp_servers.values()]


def row(server: McpServer) -> McpServerRow:
    return McpServerRow(
        name=server.name,
        transport=server.transport,
        target=server.target(),
        env=masked_env(server.env),
        headers=masked_env(server.http_headers),
        enabled=server.enabled,
        required=server.required,
        trust_annotations=server.trust_annotations,
    )


def import_claude(settings: Settings, file: Path, overwrite: bool = False) -> list[str]:
    """Claude Code's `.mcp.json` (`{"mcpServers": {NAME: {command, args, env} | {type, url,
    headers}}}`) into the settings file; returns the names added."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{file} does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise UsageError(f"{file}: not a JSON file: {exc}") from None
    servers = data.get("mcpServers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise UsageError(f'{file}: no "mcpServers" object (Claude Code\'s .mcp.json format)')
    values = read_file(settings.config_path)
    table = _servers_table(values)
    added = []
    for name, spec in servers.items():
        where = f"{file}: mcpServers.{name}"
        valid_server_name(str(name), f"{file}: ")
        if not isinstance(spec, dict):
            raise UsageError(f"{where} must be an object")
        if name in table and not overwrite:
            raise UsageError(
                f"{where}: an MCP server named {name!r} is already configured; nothing was "
                "imported",
                hint=f"agentctl mcp import {file} --replace",
            )
        entry: dict[str, Any] = {}
        transport = spec.get("type", "stdio")
        if transport in ("http", "streamable-http", "sse") or "url" in spec:
            entry["url"] = spec.get("url")
            if isinstance(spec.get("headers"), dict):
                entry["http_headers"] = spec["headers"]
        else:
            entry["command"] = spec.get("command")
            entry["args"] = spec.get("args", [])
            if isinstance(spec.get("env"), dict):
                entry["env"] = spec["env"]
        server = parse_server(str(name), entry, where)
        table[str(name)] = server.as_table()
        added.append(str(name))
    _save(settings, values, table)
    return added


def check_server(settings: Settings, name: str) -> tuple[McpServerRow, list[McpToolRow], str]:
    """Start one server as a run would, list its tools; returns the server, its tools and the
    tail of its log. A server that does not come up is one line (exit 5) with the log's tail."""
    from agentctl.tools.mcp_tools import McpServerDown, spawn_servers, start_servers

    server = settings.mcp_servers.get(name)
    if server is None:
        raise UsageError(f"no MCP server named {name!r} is configured", hint="agentctl mcp list")
    data = settings.home / "mcp"
    log = data / "logs" / f"{name}.log"
    server = replace(server, required=True)  # down is an error here
    try:
        hub = spawn_servers([server], environ=settings.environ, cwd=Path.cwd(), data=data)
        source = start_servers(hub, say=lambda _t: None)
    except McpServerDown as exc:
        tail = _tail(log)
        raise McpServerDown(exc.message + (f"; its log ends: {tail}" if tail else "")) from None
    try:
        status = source.status[name]
        from agentctl.llm.chat_form import tool_text
        from agentctl.loop.context import TiktokenCounter
        from agentctl.tools import spec_of

        counter = TiktokenCounter("gpt-4o")
        tools = []
        for tool in source.tools:
            tokens = counter.count_text(tool_text(spec_of(tool)))
            tools.append(
                McpToolRow(
                    tool.name,
                    tool.description,
                    tool.side_effect.value,
                    tool.remote.read_only,
                    tool.remote.destructive,
                    tokens,
                )
            )
        shown = row(server)
        info = f"{status.info or 'unnamed server'}, up in {status.seconds:.1f} s"
        return shown, tools, info
    finally:
        source.close()


def _tail(log: Path, lines: int = 3) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])[:400]
