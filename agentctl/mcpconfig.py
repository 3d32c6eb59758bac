"""MCP servers as configured: the `[mcp_servers.NAME]` tables of the settings file and of a task
file (Codex's shape), the names their tools are offered under, and what a session may record of
a server. Pure: no SDK here (tools/mcp_client.py owns it), so reading the settings costs nothing.

The one decision a reader must know: a server's secrets (`env` values, `http_headers`) live in
the user's settings file only. What a store keeps is `record()`: the name, the transport, the
command or URL with credentials masked; a task file (which is copied into the store) may not
hold a secret-looking value at all: it names the variable in `env_vars` instead.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentctl.errors import UsageError

PREFIX = "mcp__"
MAX_NAME = 64  # what the chat APIs take for a function name
SERVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_-]")
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE", re.IGNORECASE)
DEFAULT_STARTUP = 10.0
DEFAULT_TOOL_TIMEOUT = 60.0
INSTALL = 'pip install "agentctl[mcp]"'

KEYS = (
    "command",
    "args",
    "env",
    "env_vars",
    "cwd",
    "url",
    "http_headers",
    "enabled",
    "enabled_tools",
    "disabled_tools",
    "startup_timeout_sec",
    "tool_timeout_sec",
    "required",
    "trust_annotations",
)


@dataclass(frozen=True)
class McpServer:
    """One server as configured. `env` and `http_headers` may hold secrets: never stored."""

    name: str
    command: str | None = None  # stdio: the program, started with `args` in `cwd`
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    env_vars: tuple[str, ...] = ()  # variables passed through from agentctl's environment
    cwd: str | None = None
    url: str | None = None  # streamable HTTP
    http_headers: Mapping[str, str] = field(default_factory=dict)
    enabled: bool = True
    enabled_tools: tuple[str, ...] | None = None  # None: all
    disabled_tools: tuple[str, ...] = ()
    startup_timeout_sec: float = DEFAULT_STARTUP
    tool_timeout_sec: float = DEFAULT_TOOL_TIMEOUT
    required: bool = False  # down at start or resume: the run stops (exit 5)
    trust_annotations: bool = False  # readOnlyHint makes a tool a read (never asks)
    source: str = "settings file"

    @property
    def transport(self) -> str:
        return "http" if self.url else "stdio"

    def offers(self, tool: str) -> bool:
        if self.enabled_tools is not None and tool not in self.enabled_tools:
            return False
        return tool not in self.disabled_tools

    def target(self) -> str:
        """The command line or the URL, credentials masked: what is shown and stored."""
        from agentctl.redact import redact_url

        if self.url:
            return redact_url(self.url)
        import shlex

        return shlex.join([self.command or "", *self.args])

    def record(self) -> dict[str, Any]:
        """What a session keeps of the server: never an env value or a header."""
        return {"name": self.name, "transport": self.transport, "target": self.target()}

    def as_table(self) -> dict[str, Any]:
        """The settings-file table (secrets included: the user's own 0600 file)."""
        out: dict[str, Any] = {}
        if self.command is not None:
            out["command"] = self.command
        if self.args:
            out["args"] = list(self.args)
        if self.url is not None:
            out["url"] = self.url
        if self.env:
            out["env"] = dict(self.env)
        if self.env_vars:
            out["env_vars"] = list(self.env_vars)
        if self.cwd is not None:
            out["cwd"] = self.cwd
        if self.http_headers:
            out["http_headers"] = dict(self.http_headers)
        if not self.enabled:
            out["enabled"] = False
        if self.enabled_tools is not None:
            out["enabled_tools"] = list(self.enabled_tools)
        if self.disabled_tools:
            out["disabled_tools"] = list(self.disabled_tools)
        if self.startup_timeout_sec != DEFAULT_STARTUP:
            out["startup_timeout_sec"] = self.startup_timeout_sec
        if self.tool_timeout_sec != DEFAULT_TOOL_TIMEOUT:
            out["tool_timeout_sec"] = self.tool_timeout_sec
        if self.required:
            out["required"] = True
        if self.trust_annotations:
            out["trust_annotations"] = True
        return out


def valid_server_name(name: str, where: str = "") -> str:
    if not SERVER_NAME.match(name) or "__" in name:
        raise UsageError(
            f"{where}MCP server name {name!r} must be letters, digits, - and _ (up to 40, "
            "no '__'): it is part of every tool name"
        )
    return name


def parse_servers(table: object, where: str, *, task: bool = False) -> dict[str, McpServer]:
    """`[mcp_servers.NAME]` tables, checked; `where` names the file for the error line. A task
    file's tables may not hold secret-looking env values or headers (the store keeps them)."""
    if not isinstance(table, dict):
        raise UsageError(f"{where}: mcp_servers must be tables: [mcp_servers.NAME]")
    return {
        valid_server_name(str(name), f"{where}: "): parse_server(str(name), value, where, task)
        for name, value in table.items()
    }


def parse_server(name: str, value: object, where: str, task: bool = False) -> McpServer:
    at = f"{where}: mcp_servers.{name}"
    if not isinstance(value, dict):
        raise UsageError(f"{at} must be a table")
    unknown = sorted(set(value) - set(KEYS))
    if unknown:
        raise UsageError(f"{at}: unknown key {unknown[0]!r} (known: {', '.join(KEYS)})")

    def text(key: str) -> str | None:
        v = value.get(key)
        if v is not None and (not isinstance(v, str) or not v or "\0" in v):
            raise UsageError(f"{at}.{key} must be a non-empty string")
        return v

    def words(key: str) -> tuple[str, ...] | None:
        v = value.get(key)
        if v is None:
            return None
        if not isinstance(v, list) or not all(isinstance(w, str) and "\0" not in w for w in v):
            raise UsageError(f"{at}.{key} must be an array of strings")
        return tuple(v)

    def pairs(key: str) -> dict[str, str]:
        v = value.get(key, {})
        if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
            raise UsageError(f'{at}.{key} must be a table of strings: {key} = {{ NAME = "…" }}')
        if task:
            secret = next((k for k in v if _SECRET_NAME.search(str(k))), None)
            if secret is not None:
                raise UsageError(
                    f"{at}.{key}.{secret} looks like a secret, and a task file is kept in the "
                    f"store: set it in the environment and name it in env_vars = [{secret!r}], "
                    "or configure the server in the settings file (agentctl mcp add)"
                )
        return {str(k): x for k, x in v.items()}

    def seconds(key: str, default: float) -> float:
        v = value.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 86_400:
            raise UsageError(f"{at}.{key} must be a number of seconds above 0")
        return float(v)

    def flag(key: str, default: bool) -> bool:
        v = value.get(key, default)
        if not isinstance(v, bool):
            raise UsageError(f"{at}.{key} must be true or false")
        return v

    command, url = text("command"), text("url")
    if (command is None) == (url is None):
        raise UsageError(f'{at} needs command = "…" (stdio) or url = "http://…", one of them')
    if url is not None and not re.match(r"^https?://[^/\s]+", url):
        raise UsageError(f"{at}.url must be an http(s) URL")
    if value.get("enabled_tools") is not None and value.get("disabled_tools") is not None:
        raise UsageError(f"{at}: enabled_tools or disabled_tools, not both")
    return McpServer(
        name=name,
        command=command,
        args=words("args") or (),
        env=pairs("env"),
        env_vars=words("env_vars") or (),
        cwd=text("cwd"),
        url=url,
        http_headers=pairs("http_headers"),
        enabled=flag("enabled", True),
        enabled_tools=words("enabled_tools"),
        disabled_tools=words("disabled_tools") or (),
        startup_timeout_sec=seconds("startup_timeout_sec", DEFAULT_STARTUP),
        tool_timeout_sec=seconds("tool_timeout_sec", DEFAULT_TOOL_TIMEOUT),
        required=flag("required", False),
        trust_annotations=flag("trust_annotations", False),
        source=where,
    )


def tool_name(server: str, tool: str) -> str:
    """`mcp__<server>__<tool>`: only [A-Za-z0-9_-], at most 64 characters; a longer one is cut
    and ends in a hash of the whole, so two long names stay apart."""
    full = f"{PREFIX}{server}__{tool}"
    name = _NOT_ALLOWED.sub("_", full)
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(full.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9]}_{digest}"


def masked_env(values: Mapping[str, str]) -> dict[str, str]:
    """Env values or headers as shown: every value masked (any may be a secret)."""
    from agentctl.redact import mask

    return {k: mask(v) for k, v in values.items()}


def chosen(
    configured: Mapping[str, McpServer], names: tuple[str, ...] | None, own: Mapping[str, McpServer]
) -> list[McpServer]:
    """The servers a task uses: those it names (`mcp = [...]`; None: every enabled one of the
    settings file), and its own tables (which win over a settings server of the same name)."""
    if names is None:
        picked = [s for s in configured.values() if s.enabled and s.name not in own]
    else:
        missing = [n for n in names if n not in configured and n not in own]
        if missing:
            known = ", ".join(sorted(configured)) or "none configured"
            raise UsageError(
                f"the task names the MCP server {missing[0]!r}, which is not configured "
                f"(known: {known})",
                hint=f"agentctl mcp add {missing[0]} -- COMMAND ARGS…",
            )
        picked = [configured[n] for n in names if n not in own]
    return [*picked, *own.values()]
