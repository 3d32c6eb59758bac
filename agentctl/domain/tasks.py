"""Task files (TOML) and goals typed on the command line, turned into a validated TaskSpec.

Every error names the file and the field (`plan_trip.toml: script[2].tool_calls[0]: name: Field
required`), because a task file is written by hand.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agentctl.domain.session import TaskSpec, valid_text
from agentctl.errors import TaskFileError


def looks_like_task_file(argument: str) -> bool:
    """A path, not a goal: a file, a folder, a .toml name, or one word that looks like a file
    name or a path (`plan_trip.tml`, `tasks/x`). A goal has spaces or is a plain word, and
    is a goal whatever its length: text no file system takes as a name (longer than a name may
    be, with a line break or a NUL in it) is never looked up as one."""
    if "\n" in argument or "\0" in argument or len(argument.encode(errors="replace")) > MAX_PATH:
        return False
    if argument.endswith(".toml") or _exists(argument):
        return True
    word = argument.strip()
    return (
        bool(word)
        and " " not in word
        and ("/" in word or re.search(r"\.[A-Za-z]\w{0,4}$", word) is not None)
    )


MAX_PATH = 4096  # PATH_MAX on Linux; a longer argument cannot name a file


def _exists(argument: str) -> bool:
    try:
        return Path(argument).exists()
    except (OSError, ValueError):  # a part longer than NAME_MAX (255 bytes), or unreadable
        return False


def load_task_file(path: str | Path) -> TaskSpec:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TaskFileError(
            f"task file {path} does not exist (a goal in quotes with spaces is taken as a goal)"
        ) from None
    except IsADirectoryError:
        raise TaskFileError(f"{path} is a folder, not a task file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskFileError(f"task file {path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TaskFileError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:  # arrays or tables nested deeper than the parser goes
        raise TaskFileError(f"{path}: not valid TOML: nested too deep") from None
    data.setdefault("source", str(path))
    try:
        spec = TaskSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise TaskFileError(f"{path}: {_problem(first)}{more}") from None
    if spec.mcp_servers:
        from agentctl.errors import UsageError
        from agentctl.mcpconfig import parse_servers

        try:
            parse_servers(spec.mcp_servers, str(path), task=True)
        except UsageError as exc:
            raise TaskFileError(exc.message, hint=exc.hint) from None
    return spec


def goal_task(goal: str) -> TaskSpec:
    goal = valid_text(goal.strip())  # command-line bytes that are not UTF-8
    if not goal:
        raise TaskFileError("the goal is empty: give a task file or a goal in quotes")
    try:
        return TaskSpec(goal=goal)
    except ValidationError as exc:
        raise TaskFileError(f"the goal cannot be used: {exc.errors()[0]['msg']}") from None


# What each task-file key must be, as a person writes it (README: Task files).
SHAPES: dict[str, str] = {
    "goal": 'a string: goal = "what to do"',
    "title": "a string",
    "instructions": 'a string (""" … """ for several lines)',
    "model": "a string: a model name",
    "max_turns": "a whole number, 1 or more",
    "allow": 'an array of strings: allow = ["write_file", "run_shell:pytest *"]',
    "pass_env": 'an array of variable names: pass_env = ["GITHUB_TOKEN"]',
    "context_window": "a whole number of tokens, at least 512",
    "context_strategy": '"summarize" or "drop"',
    "sandbox": '"workspace-write", "read-only", "off" or "required"',
    "network": "true or false",
    "mcp": 'an array of MCP server names from the settings file: mcp = ["time"]',
    "mcp_servers": 'tables: [mcp_servers.NAME] with command = "…" or url = "…"',
    "script": "an array of tables: one [[script]] per reply (not [script])",
    "script.content": "a string: the reply's text",
    "script.delay": "a number of seconds, 0 or more",
    "script.stream_delay": "a number of seconds, 0 or more",
    "script.refusal": "a string",
    "script.finish_reason": 'a string such as "length"',
    "script.tool_calls": "an array of tables: one [[script.tool_calls]] per call",
    "script.tool_calls.name": 'a string: the tool\'s name, e.g. name = "read_file"',
    "script.tool_calls.arguments": 'a table: arguments = { path = "notes.md" }',
}


def _toml_type(value: object) -> str:
    """What a TOML value is, in TOML's words."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__


def _problem(error: Any) -> str:
    """One task-file error: the key, what it must be, and what it was."""
    loc = tuple(error["loc"])
    where = _location(loc)
    key = ".".join(str(p) for p in loc if isinstance(p, str))
    if error["type"] == "extra_forbidden":
        parent = key.rpartition(".")[0]
        keys = sorted(k.rpartition(".")[2] for k in SHAPES if k.rpartition(".")[0] == parent)
        return f"unknown key {where!r}; the keys here are {', '.join(keys)}"
    shape = SHAPES.get(key)
    if shape is None:
        return f"{where}: {error['msg']}"
    if error["type"] == "missing":
        return f"{where} is missing: it must be {shape}"
    error_type = str(error["type"])
    if error_type.endswith(("_type", "_parsing")):  # the wrong type of value: say which it was
        return f"{where} must be {shape}, not {_toml_type(error.get('input'))}"
    return f"{where} must be {shape} ({error['msg']})"


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(file)"
