"""File tools confined to the workspace: read_file, list_files, search_files, write/edit_file.

Every path is resolved (symlinks followed) and must stay inside the workspace: absolute paths,
`..` escapes and links that point outside are refused before anything is read or written.
Outputs are bounded and say when they were cut.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentctl.tools import SideEffect, ToolOutcome

MAX_OUTPUT = 16_000  # characters returned to the model at most
MAX_ENTRIES = 500


class OutsideWorkspaceError(ValueError):
    pass


@dataclass(frozen=True)
class Workspace:
    root: Path

    def resolve(self, relative: str) -> Path:
        if not isinstance(relative, str) or not relative:
            raise OutsideWorkspaceError("a path inside the workspace is required")
        if os.path.isabs(relative):
            raise OutsideWorkspaceError(f"{relative}: absolute paths are not allowed")
        root = self.root.resolve()
        target = (root / relative).resolve()  # follows symlinks, so links out are caught too
        if not target.is_relative_to(root):
            raise OutsideWorkspaceError(f"{relative}: outside the workspace")
        return target


def visible(base: Path, root: Path) -> Iterator[Path]:
    """Everything under `base`, sorted, skipping hidden trees (.git, .venv, …) below `root`."""
    for path in sorted(base.rglob("*")):
        if not any(part.startswith(".") for part in path.relative_to(root).parts):
            yield path


def bounded(text: str, limit: int = MAX_OUTPUT) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[… {len(text) - limit} more characters cut]"


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


PATH = {"type": "string", "description": "a path relative to the workspace"}


@dataclass(frozen=True)
class ReadFile:
    workspace: Workspace
    name: str = "read_file"
    description: str = "Read a text file of the workspace."
    side_effect: SideEffect = SideEffect.READ

    @property
    def parameters(self) -> dict[str, Any]:
        return _schema({"path": PATH}, ["path"])

    def run(self, arguments: dict[str, Any]) -> ToolOutcome:
        path = self.workspace.resolve(arguments["path"])
        return ToolOutcome(bounded(path.read_text(encoding="utf-8", errors="replace")))


@dataclass(frozen=True)
class ListFiles:
    workspace: Workspace
    name: str = "list_files"
    description: str = "List the files and folders under a folder of the workspace (recursively)."
    side_effect: SideEffect = SideEffect.READ

    @property
    def parameters(self) -> dict[str, Any]:
        return _schema({"path": {**PATH, "default": "."}}, [])

    def run(self, arguments: dict[str, Any]) -> ToolOutcome:
        base = self.workspace.resolve(arguments.get("path") or ".")
        root = self.workspace.root.resolve()
        entries = []
        for path in visible(base, root):
            entries.append(str(path.relative_to(root)) + ("/" if path.is_dir() else ""))
            if len(entries) >= MAX_ENTRIES:
                entries.append(f"[… stopped at {MAX_ENTRIES} entries]")
                break
        return ToolOutcome("\n".join(entries) or "(empty)")


@dataclass(frozen=True)
class SearchFiles:
    workspace: Workspace
    name: str = "search_files"
    description: str = "Search the workspace's text files for a regular expression."
    side_effect: SideEffect = SideEffect.READ

    @property
    def parameters(self) -> dict[str, Any]:
        return _schema(
            {"pattern": {"type": "string"}, "path": {**PATH, "default": "."}}, ["pattern"]
        )

    def run(self, arguments: dict[str, Any]) -> ToolOutcome:
        pattern = re.compile(arguments["pattern"])
        base = self.workspace.resolve(arguments.get("path") or ".")
        root = self.workspace.root.resolve()
        hits = []
        for path in (p for p in visible(base, root) if p.is_file()):
            relative = path.relative_to(root)
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except (UnicodeDecodeError, OSError):
                continue
            hits += [
                f"{relative}:{n}: {line}" for n, line in enumerate(lines, 1) if pattern.search(line)
            ]
        return ToolOutcome(bounded("\n".join(hits) or "no matches"))


@dataclass(frozen=True)
class WriteFile:
    workspace: Workspace
    name: str = "write_file"
    description: str = "Create or replace a text file of the workspace."
    side_effect: SideEffect = SideEffect.WRITE

    @property
    def parameters(self) -> dict[str, Any]:
        return _schema({"path": PATH, "content": {"type": "string"}}, ["path", "content"])

    def run(self, arguments: dict[str, Any]) -> ToolOutcome:
        path = self.workspace.resolve(arguments["path"])
        path.parent.mkdir(parents=True, exist_ok=True)
        content = str(arguments["content"])
        path.write_text(content, encoding="utf-8")
        return ToolOutcome(f"wrote {len(content)} characters to {arguments['path']}")


@dataclass(frozen=True)
class EditFile:
    workspace: Workspace
    name: str = "edit_file"
    description: str = "Replace one exact, unique piece of text in a file of the workspace."
    side_effect: SideEffect = SideEffect.WRITE

    @property
    def parameters(self) -> dict[str, Any]:
        return _schema(
            {"path": PATH, "old": {"type": "string"}, "new": {"type": "string"}},
            ["path", "old", "new"],
        )

    def run(self, arguments: dict[str, Any]) -> ToolOutcome:
        path = self.workspace.resolve(arguments["path"])
        text = path.read_text(encoding="utf-8")
        count = text.count(arguments["old"])
        if count != 1:
            return ToolOutcome(
                f"`old` occurs {count} times in {arguments['path']}; it must occur once",
                is_error=True,
            )
        path.write_text(text.replace(arguments["old"], arguments["new"]), encoding="utf-8")
        return ToolOutcome(f"edited {arguments['path']}")
