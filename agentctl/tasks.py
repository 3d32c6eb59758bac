"""Task files (TOML) and goals typed on the command line, turned into a validated TaskSpec.

Every error names the file and the field (`plan_trip.toml: script[2].tool_calls[0]: name: Field
required`), because a task file is written by hand.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from pydantic import ValidationError

from agentctl.errors import TaskFileError
from agentctl.state import TaskSpec, valid_text


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
        return TaskSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _location(first["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise TaskFileError(f"{path}: {where}: {first['msg']}{more}") from None


def goal_task(goal: str) -> TaskSpec:
    goal = valid_text(goal.strip())  # command-line bytes that are not UTF-8
    if not goal:
        raise TaskFileError("the goal is empty: give a task file or a goal in quotes")
    try:
        return TaskSpec(goal=goal)
    except ValidationError as exc:
        raise TaskFileError(f"the goal cannot be used: {exc.errors()[0]['msg']}") from None


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(file)"
