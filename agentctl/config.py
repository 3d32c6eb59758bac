"""Settings: built once from flags, environment, the settings file and platform directories.

Nothing below the use cases reads os.environ or the settings file; it receives these values. The API
key is held here only to hand to the model client: it is never written to a store, an export or
a log (the settings file is the user's own, mode 0600).

Precedence, most specific first: a flag, then AGENTCTL_* variables, then the settings file, then
the generic OPENAI_* variables (shared with every other OpenAI tool on the machine, so agentctl's
own file beats them), then defaults. `agentctl config show` says which one each value came from.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from agentctl.errors import UsageError
from agentctl.mcpconfig import McpServer, parse_servers

# Masking lives in redact.py (the stores use it too); these names stay importable from here.
from agentctl.redact import mask as mask
from agentctl.redact import pasteable_url as pasteable_url
from agentctl.redact import redact_text as redact_text
from agentctl.redact import redact_url as redact_url

APP = "agentctl"
STRATEGIES = ("summarize", "drop")
MAX_PRICE = 1_000_000_000  # dollars per million tokens: `inf` and `nan` are no price
SANDBOX_MODES = ("workspace-write", "read-only", "off", "required")  # tools/sandbox.py
# ask: every command and file write is asked (unless --yes or the task's allow-list);
# auto-sandboxed: what a rollback can undo whole (file writes, commands sandboxed without
# network, with workspace snapshots on) runs without asking
APPROVALS = ("ask", "auto-sandboxed")
MIN_WINDOW = 512  # tokens: less cannot hold a system prompt, the tools and one turn
# The value in effect when a key is set nowhere (`config show` prints them with the source
# "default"); the modules that use them take them from here, so the two cannot differ.
DEFAULT_TIMEOUT = 120.0  # seconds for one model reply
DEFAULT_RETRIES = 3
DEFAULT_STRATEGY = "summarize"
DEFAULT_PREVIEW_LINES = 4  # of a command's output: the first and last this many lines
DEFAULT_SNAPSHOT_MAX_FILE = 5 << 20
DEFAULT_SNAPSHOT_MAX_CAPTURE = 100 << 20
DEFAULT_SANDBOX = "workspace-write"  # where bubblewrap works (tools/sandbox.py)
DEFAULT_APPROVAL = "ask"


@dataclass(frozen=True)
class Key:
    """One setting the file may hold, and the variables that may set it instead."""

    name: str
    env_over: str | None = None  # beats the file
    env_under: str | None = None  # loses to the file
    secret: bool = False
    value_type: type = str


KEYS: dict[str, Key] = {
    k.name: k
    for k in (
        Key("model", env_over="AGENTCTL_MODEL"),  # for sessions whose task names no model
        Key("base_url", env_under="OPENAI_BASE_URL"),  # an OpenAI-compatible server
        Key("api_key", env_under="OPENAI_API_KEY", secret=True),
        Key("store", env_over="AGENTCTL_STORE"),  # sqlite:///FILE, json:///DIR, postgresql://…
        Key("timeout", value_type=float),  # seconds to wait for one model reply
        Key("retries", env_over="AGENTCTL_RETRIES", value_type=int),  # after a 429/5xx/refusal
        Key("context_window", env_over="AGENTCTL_CONTEXT_WINDOW", value_type=int),  # tokens
        Key("context_strategy", env_over="AGENTCTL_CONTEXT_STRATEGY"),  # summarize or drop
        # workspace snapshots: a file larger is not captured; a capture stores at most this
        # many bytes of new files (bytes)
        Key("snapshot_max_file", env_over="AGENTCTL_SNAPSHOT_MAX_FILE", value_type=int),
        Key("snapshot_max_capture", env_over="AGENTCTL_SNAPSHOT_MAX_CAPTURE", value_type=int),
        # the run view: the first and last this many lines of a command's output (0: none)
        Key("preview_lines", env_over="AGENTCTL_PREVIEW_LINES", value_type=int),
        # shell commands: the sandbox they run in, and whether it lets them reach the network
        Key("sandbox", env_over="AGENTCTL_SANDBOX"),
        Key("network", env_over="AGENTCTL_NETWORK", value_type=bool),
        Key("approval", env_over="AGENTCTL_APPROVAL"),  # ask or auto-sandboxed
    )
}


@dataclass(frozen=True)
class Settings:
    home: Path  # data directory: the default store lives here
    config_path: Path  # the settings file (it need not exist)
    store_url: str
    model: str | None  # --model: beats the task file
    default_model: str | None  # AGENTCTL_MODEL or the file: loses to the task file
    base_url: str | None
    api_key: str | None
    timeout: float | None
    context_window: int | None
    context_strategy: str | None
    scripted_delay: float
    scripted_log: Path | None
    retries: int | None = None
    snapshot_max_file: int | None = None
    snapshot_max_capture: int | None = None
    preview_lines: int | None = None
    sandbox: str | None = None  # None: workspace-write where bubblewrap works
    network: bool | None = None  # None: no network in a sandbox
    approval: str | None = None  # None: ask
    prices: dict[str, tuple[float, float]] = field(default_factory=dict)  # [prices] table
    # [mcp_servers.NAME] tables (mcpconfig.py); secrets included, never stored elsewhere
    mcp_servers: dict[str, McpServer] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # key -> where its value came from
    environ: Mapping[str, str] = field(default_factory=dict)  # what tools' environments start from

    @classmethod
    def load(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        store: str | None = None,
        model: str | None = None,
    ) -> Settings:
        env = os.environ if env is None else env
        if env.get("AGENTCTL_HOME"):
            home = Path(env["AGENTCTL_HOME"]).expanduser()
        else:
            import platformdirs

            home = Path(platformdirs.user_data_dir(APP))
        path = config_path(env)
        file_values = read_file(path)
        values, sources = resolve(file_values, env)
        if store:
            values["store"], sources["store"] = store, "--store"
        if model:
            sources["model"] = "--model"
        default_store = f"sqlite://{(home / 'agentctl.db').absolute()}"
        return cls(
            home=home,
            config_path=path,
            store_url=str(values.get("store") or default_store),
            model=model or None,
            default_model=_str(values.get("model")),
            base_url=_str(values.get("base_url")),
            api_key=_str(values.get("api_key")),
            timeout=_opt_float(values.get("timeout")),
            context_window=_opt_int(values.get("context_window")),
            context_strategy=_str(values.get("context_strategy")),
            scripted_delay=_seconds(env.get("AGENTCTL_SCRIPTED_DELAY"), "AGENTCTL_SCRIPTED_DELAY"),
            scripted_log=Path(env["AGENTCTL_SCRIPTED_LOG"])
            if env.get("AGENTCTL_SCRIPTED_LOG")
            else None,
            retries=_opt_int(values.get("retries")),
            snapshot_max_file=_opt_int(values.get("snapshot_max_file")),
            snapshot_max_capture=_opt_int(values.get("snapshot_max_capture")),
            preview_lines=_opt_int(values.get("preview_lines")),
            sandbox=_str(values.get("sandbox")),
            network=_opt_bool(values.get("network")),
            approval=_str(values.get("approval")),
            prices=parse_prices(file_values["prices"], path) if "prices" in file_values else {},
            mcp_servers=parse_servers(file_values["mcp_servers"], f"settings file {path}")
            if "mcp_servers" in file_values
            else {},
            sources=sources,
            environ=dict(env),
        )


def config_path(env: Mapping[str, str]) -> Path:
    """AGENTCTL_CONFIG, else config.toml beside the data of AGENTCTL_HOME, else the platform's
    config directory (~/.config/agentctl on Linux)."""
    if env.get("AGENTCTL_CONFIG"):
        return Path(env["AGENTCTL_CONFIG"]).expanduser()
    if env.get("AGENTCTL_HOME"):
        return Path(env["AGENTCTL_HOME"]).expanduser() / "config.toml"
    import platformdirs

    return Path(platformdirs.user_config_dir(APP)) / "config.toml"


def resolve(
    file_values: Mapping[str, object], env: Mapping[str, str]
) -> tuple[dict[str, object], dict[str, str]]:
    """Each key's value and its source, by the precedence in the module docstring."""
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    for key in KEYS.values():
        candidates = (
            (env.get(key.env_over) if key.env_over else None, f"env {key.env_over}"),
            (file_values.get(key.name), "config file"),
            (env.get(key.env_under) if key.env_under else None, f"env {key.env_under}"),
        )
        for value, source in candidates:
            if value not in (None, ""):
                values[key.name] = parse_value(key.name, value, source)
                sources[key.name] = source
                break
    return values, sources


def parse_value(name: str, value: object, source: str | None = None) -> object:
    """A value of the right type, or a UsageError that names the key and where it came from."""
    key = KEYS[name]
    source = f" ({source})" if source else ""
    if key.value_type is bool:
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word in ("true", "1", "yes", "on"):
            return True
        if word in ("false", "0", "no", "off"):
            return False
        raise UsageError(f"{name}{source} must be true or false, not {value!r}")
    try:
        if key.value_type is int:
            number = int(str(value))
            least = {"context_window": MIN_WINDOW, "retries": 0, "preview_lines": 0}.get(name, 1)
            if number < least:
                raise ValueError
            return number
        if key.value_type is float:
            seconds = float(str(value))
            if not 0 < seconds < math.inf:
                raise ValueError
            return seconds
    except ValueError:
        noun = (
            f"a whole number of at least {MIN_WINDOW}"
            if name == "context_window"
            else "a whole number, 0 or more"
            if name in ("retries", "preview_lines")
            else "a whole number above 0"
            if key.value_type is int
            else "a number of seconds above 0"
        )
        raise UsageError(f"{name}{source} must be {noun}, not {value!r}") from None
    text = str(value)
    choices = {"context_strategy": STRATEGIES, "sandbox": SANDBOX_MODES, "approval": APPROVALS}
    if name in choices and text not in choices[name]:
        known = ", ".join(choices[name])
        raise UsageError(f"{name}{source} must be one of {known}, not {text!r}")
    if name == "base_url":
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(
                f"base_url{source} must be an http(s) URL such as http://localhost:11434/v1, "
                f"not {redact_url(text)!r}"
            )
    from agentctl.store import schemes

    if name == "store" and text.partition(":")[0] not in schemes():
        raise UsageError(
            f"store{source} must be a URL such as sqlite:///FILE or json:///DIR, "
            f"not {redact_url(text)!r}"
        )
    return text


def read_file(path: Path) -> dict[str, object]:
    if not path.exists():
        return {}
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"settings file {path}: {exc}") from None
    except RecursionError:  # arrays or tables nested deeper than the parser goes
        raise UsageError(f"settings file {path}: not valid TOML: nested too deep") from None
    unknown = sorted(set(data) - set(KEYS) - {"prices", "mcp_servers"})
    if unknown:
        raise UsageError(
            f"settings file {path}: unknown key {unknown[0]!r} (known: {', '.join(KEYS)})"
        )
    if "prices" in data:
        parse_prices(data["prices"], path)
    if "mcp_servers" in data:
        parse_servers(data["mcp_servers"], f"settings file {path}")
    return data


def parse_prices(table: object, path: Path) -> dict[str, tuple[float, float]]:
    """The settings file's `[prices]` table: model = [input, output] dollars per million
    tokens (agentctl usage). Added to and overriding the prices agentctl ships."""
    if not isinstance(table, dict):
        raise UsageError(f"settings file {path}: [prices] must be a table of model = [in, out]")
    out = {}
    for model, pair in table.items():
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(
                isinstance(p, int | float) and not isinstance(p, bool) and 0 <= p <= MAX_PRICE
                for p in pair
            )
        ):
            raise UsageError(
                f"settings file {path}: prices.{model} must be [input, output] dollars per "
                f"million tokens, such as [2.5, 10.0] (finite, at most {MAX_PRICE:,})"
            )
        out[str(model)] = (float(pair[0]), float(pair[1]))
    return out


def write_file(path: Path, values: Mapping[str, object]) -> None:
    """Write the settings file privately (it may hold the API key), replacing it atomically."""
    import json

    lines = ["# agentctl settings: edit with `agentctl config set KEY VALUE`\n"]
    for name in KEYS:  # a stable order
        if name in values:
            value = values[name]
            # A JSON string is a valid TOML basic string; numbers are written bare.
            text = json.dumps(value) if isinstance(value, str | bool) else str(value)
            lines.append(f"{name} = {text}\n")
    prices = values.get("prices")
    if isinstance(prices, dict) and prices:  # kept as the user wrote it
        lines.append("\n[prices]  # dollars per million tokens: [input, output]\n")
        for model, pair in prices.items():
            lines.append(f"{json.dumps(str(model))} = {json.dumps(list(pair))}\n")
    servers = values.get("mcp_servers")
    if isinstance(servers, dict):  # agentctl mcp add/remove; kept as the user wrote it
        for name, table in servers.items():
            lines.append(f"\n[mcp_servers.{json.dumps(str(name))}]\n")
            for key, value in table.items():
                lines.append(f"{key} = {_toml(value)}\n")
    from agentctl.atomic import write_private

    write_private(path, "".join(lines).encode("utf-8"))


def _toml(value: object) -> str:
    """A settings value as TOML: strings as JSON strings (valid TOML basic strings), booleans,
    numbers, arrays, and inline tables of strings."""
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        inner = ", ".join(f"{json.dumps(str(k))} = {_toml(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))


# -- secrets ---------------------------------------------------------------------------------

# Environment variables that tools do not get unless the task passes them by name (the same
# default as Codex's shell environment policy), besides agentctl's own.
_SECRET_VAR = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL", re.IGNORECASE)
_OWN_VARS = ("AGENTCTL_", "OPENAI_", "PGPASSWORD")


def tool_environment(
    env: Mapping[str, str], secrets: Iterable[str | None], passed: Iterable[str] = ()
) -> dict[str, str]:
    """The environment shell commands run with: agentctl's own, less its variables
    (AGENTCTL_*, OPENAI_*), secret-looking ones (*KEY*, *TOKEN*, *SECRET*, *PASSWORD*) and any
    that holds one of `secrets`. Variables named in `passed` go through all the same, except
    one holding agentctl's own secret: a task file (which may come from anywhere) cannot hand
    the API key to its commands."""
    hidden = {s for s in secrets if s and len(s) >= 8}
    keep = set(passed)
    return {
        name: value
        for name, value in env.items()
        if not any(secret in value for secret in hidden)
        and (name in keep or not (name.startswith(_OWN_VARS) or _SECRET_VAR.search(name)))
    }


def shown_value(name: str, value: str) -> str:
    """A setting's value as it may be printed: secrets masked, URLs without credentials."""
    if KEYS[name].secret:
        return mask(value)
    if name in ("base_url", "store"):
        return redact_url(value, keep_user=name == "store")
    return value


def _str(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def _opt_int(value: object) -> int | None:
    return int(str(value)) if value is not None else None


def _opt_bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _opt_float(value: object) -> float | None:
    return float(str(value)) if value is not None else None


def _seconds(value: str | None, name: str) -> float:
    if not value:
        return 0.0
    try:
        seconds = float(value)
        if not 0 <= seconds < math.inf:
            raise ValueError
        return seconds
    except ValueError:
        raise UsageError(f"{name} must be a number of seconds (0 or more), not {value!r}") from None
