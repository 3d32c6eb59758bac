"""File tools confined to the workspace: read_file, list_files, search_files, write/edit_file.

Every path goes through `Workspace`: it is resolved (symlinks followed) and must stay inside the
workspace and outside agentctl's own files (settings, data, store). The file is then opened by
walking the resolved path from a descriptor of the workspace root with O_NOFOLLOW on every
component, so a path swapped for a link between the check and the open fails instead of
escaping. Writes go to a temporary file in the same folder that is fsynced and renamed over the
target: a crash or a full disk leaves the old content or the new, never a mix, and a hard link
to a file outside is replaced, never written through. Reads and walks are bounded.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentctl.atomic import write_all
from agentctl.tools.base import CONFINED, Effects, SideEffect, Subject, SubjectType, ToolOutcome

MAX_OUTPUT = 16_000  # characters returned to the model at most
MAX_ENTRIES = 500
MAX_READ = 1 << 20  # bytes read from one file at most
MAX_SEARCH_FILE = 1 << 20  # larger files are skipped by search_files
MAX_WRITE = 8 << 20  # bytes a write or edit may produce
# Trees no tool walks into: version control, environments, caches, build output.
IGNORED_DIRS = frozenset(
    {".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache",
     ".pytest_cache", ".ruff_cache", ".tox", "dist", "build"}
)  # fmt: skip


class OutsideWorkspaceError(ValueError):
    pass


@dataclass(frozen=True)
class Workspace:
    """The folder the tools work in, and the paths inside it they must never touch."""

    root: Path
    forbidden: tuple[Path, ...] = field(default_factory=tuple)  # agentctl's own files

    def _root(self) -> Path:
        return self.root.resolve()

    def resolve(self, relative: str) -> Path:
        if not isinstance(relative, str) or not relative or "\0" in relative:
            raise OutsideWorkspaceError("a path inside the workspace is required")
        if os.path.isabs(relative):
            raise OutsideWorkspaceError(f"{relative}: absolute paths are not allowed")
        root = self._root()
        target = (root / relative).resolve()  # follows symlinks, so links out are caught too
        if not target.is_relative_to(root):
            raise OutsideWorkspaceError(f"{relative}: outside the workspace")
        if self.is_forbidden(target):
            raise OutsideWorkspaceError(
                f"{relative}: agentctl's own settings and data are not open to tools"
            )
        return target

    def is_forbidden(self, path: Path) -> bool:
        return any(path == f or path.is_relative_to(f) for f in self.forbidden)

    @contextlib.contextmanager
    def open_dir(self, relative_dir: Path) -> Iterator[int]:
        """A descriptor of a folder (relative to the resolved root), opened one component at a
        time without following links: a component swapped for a link fails here."""
        fd = os.open(self._root(), os.O_RDONLY | os.O_DIRECTORY)
        try:
            for part in relative_dir.parts:
                try:
                    child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except OSError as exc:
                    raise OutsideWorkspaceError(
                        f"{relative_dir}: not a folder inside the workspace ({exc.strerror})"
                    ) from None
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def split(self, relative: str) -> tuple[Path, str]:
        """The resolved folder (relative to the root) and file name of a path."""
        target = self.resolve(relative)
        inside = target.relative_to(self._root())
        if not inside.parts:
            raise OutsideWorkspaceError(f"{relative}: the workspace itself is not a file")
        return inside.parent, inside.name

    def read_bytes(self, relative: str, limit: int = MAX_READ) -> tuple[bytes, int]:
        """Up to `limit` bytes of a regular file, and its size. FIFOs, devices and folders are
        refused (a FIFO would block for ever)."""
        folder, name = self.split(relative)
        with self.open_dir(folder) as dfd:
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
            except OSError as exc:
                raise OSError(exc.errno, f"{relative}: {exc.strerror}") from None
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):
                    raise OutsideWorkspaceError(f"{relative}: not a regular file")
                chunks, left = [], limit
                while left > 0:
                    chunk = os.read(fd, min(left, 1 << 16))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    left -= len(chunk)
                return b"".join(chunks), info.st_size
            finally:
                os.close(fd)

    def write_bytes(self, relative: str, data: bytes) -> None:
        """Replace a file's content atomically (temporary file, fsync, rename), keeping its
        mode; missing folders are created inside the workspace."""
        folder, name = self.split(relative)
        self._make_dirs(folder)
        with self.open_dir(folder) as dfd:
            mode = 0o644
            try:
                current = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                current = None
            if current is not None:
                if not stat.S_ISREG(current.st_mode):
                    raise OutsideWorkspaceError(f"{relative}: not a regular file")
                mode = stat.S_IMODE(current.st_mode)
            temporary = f".{name}.agentctl-{secrets.token_hex(4)}.tmp"
            fd = os.open(
                temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dfd
            )
            try:
                try:
                    write_all(fd, data)
                    os.fchmod(fd, mode)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                # rename replaces the directory entry: a hard link elsewhere keeps its content.
                os.rename(temporary, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary, dir_fd=dfd)
                raise
            os.fsync(dfd)

    def _make_dirs(self, relative_dir: Path) -> None:
        for depth in range(1, len(relative_dir.parts) + 1):
            partial = Path(*relative_dir.parts[:depth])
            with self.open_dir(partial.parent) as dfd, contextlib.suppress(FileExistsError):
                os.mkdir(partial.name, 0o777, dir_fd=dfd)

    def walk(self, base: Path, notes: list[str]) -> Iterator[Path]:
        """Files and folders under `base` (callers sort them), without entering hidden or
        ignored trees or agentctl's own files, and without links that lead outside (those are
        noted: the model is told why a file it may expect is missing)."""
        root = self._root()
        stack = [base]
        while stack:
            folder = stack.pop()
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name, reverse=True)
            except OSError:
                continue
            for entry in entries:
                path = Path(entry.path)
                if entry.name.startswith("."):
                    continue
                if entry.name in IGNORED_DIRS and entry.is_dir(follow_symlinks=False):
                    continue
                if entry.is_symlink():
                    real = path.resolve()
                    if not real.is_relative_to(root) or self.is_forbidden(real):
                        notes.append(
                            f"skipped {path.relative_to(root)}: a link out of the workspace"
                        )
                        continue
                    yield path  # a link inside: listed, but never walked into twice
                    continue
                if self.is_forbidden(path):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append(path)
                yield path


def bounded(text: str, limit: int = MAX_OUTPUT) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[… {len(text) - limit} more characters cut]"


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


PATH = {"type": "string", "description": "a path relative to the workspace"}


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


class _OnAPath:
    """A call of a file tool works on its `path`: what an approval shows, a rule matches and
    a run view names."""

    def approval_subject(self, arguments: dict[str, Any]) -> Subject:
        return Subject(SubjectType.PATH, str(arguments.get("path") or ""))

    def subject(self, arguments: dict[str, Any]) -> str:
        return str(arguments.get("path") or ".")


@dataclass(frozen=True)
class ReadFile(_OnAPath):
    workspace: Workspace
    name: str = "read_file"
    description: str = "Read a text file of the workspace."
    side_effect: SideEffect = SideEffect.READ
    effects: Effects = CONFINED  # inside the workspace only (Workspace)

    @property
    def parameters(self) -> dict[str, Any]:
        return _schema({"path": PATH}, ["path"])

    def run(self, arguments: dict[str, Any]) -> ToolOutcome:
        data, size = self.workspace.read_bytes(arguments["path"])
        text = bounded(_decode(data))
        if size > len(data):
            text += f"\n[… the file has {size} bytes; only the first {len(data)} were read]"
        return ToolOutcome(text)


@dataclass(frozen=True)
class ListFiles(_OnAPath):
    workspace: Workspace
    name: str = "list_files"
    description: str = "List the files and folders under a folder of the workspace (recursively)."
    side_effect: SideEffect = SideEffect.READ
    effects: Effects = CONFINED  # inside the workspace only (Workspace)

    @property
    def parameters(self) -> dict[str, Any]:
        return _schema({"path": {**PATH, "default": "."}}, [])

    def run(self, arguments: dict[str, Any]) -> ToolOutcome:
        base = self.workspace.resolve(arguments.get("path") or ".")
        root = self.workspace.root.resolve()
        notes: list[str] = []
        entries = []
        for path in self.workspace.walk(base, notes):
            entries.append(str(path.relative_to(root)) + ("/" if path.is_dir() else ""))
            if len(entries) >= MAX_ENTRIES:
                entries.append(f"[… stopped at {MAX_ENTRIES} entries]")
                break
        return ToolOutcome("\n".join(sorted(entries) + notes) or "(empty)")


@dataclass(frozen=True)
class SearchFiles(_OnAPath):
    workspace: Workspace
    name: str = "search_files"
    description: str = "Search the workspace's text files for a regular expression."
    side_effect: SideEffect = SideEffect.READ
    effects: Effects = CONFINED  # inside the workspace only (Workspace)

    @property
    def parameters(self) -> dict[str, Any]:
        return _schema(
            {"pattern": {"type": "string"}, "path": {**PATH, "default": "."}}, ["pattern"]
        )

    def subject(self, arguments: dict[str, Any]) -> str:
        return f"{arguments.get('pattern')!s} in {arguments.get('path') or '.'}"

    def run(self, arguments: dict[str, Any]) -> ToolOutcome:
        pattern = re.compile(arguments["pattern"])
        base = self.workspace.resolve(arguments.get("path") or ".")
        root = self.workspace.root.resolve()
        notes: list[str] = []
        hits: list[str] = []
        skipped = 0
        for path in sorted(self.workspace.walk(base, notes)):
            relative = str(path.relative_to(root))
            try:
                data, size = self.workspace.read_bytes(relative, MAX_SEARCH_FILE + 1)
            except (OSError, OutsideWorkspaceError):
                continue  # folders, special files, links that moved
            if size > MAX_SEARCH_FILE or b"\0" in data[:8192]:
                skipped += 1  # large or binary
                continue
            lines = _decode(data).splitlines()
            hits += [
                f"{relative}:{n}: {line}" for n, line in enumerate(lines, 1) if pattern.search(line)
            ]
            if sum(map(len, hits)) > MAX_OUTPUT:
                break
        if skipped:
            notes.append(f"skipped {skipped} large or binary files")
        return ToolOutcome(bounded("\n".join(hits + notes) or "no matches"))


def _diff(relative: str, before: str, after: str, max_lines: int = 20) -> str:
    lines = list(
        difflib.unified_diff(
            before.splitlines(), after.splitlines(), f"a/{relative}", f"b/{relative}", lineterm=""
        )
    )
    if len(lines) > max_lines:
        lines = [*lines[:max_lines], f"[… {len(lines) - max_lines} more diff lines]"]
    return "\n".join(lines)


def _current(workspace: Workspace, relative: str) -> bytes | None:
    try:
        return workspace.read_bytes(relative, MAX_WRITE)[0]
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class WriteFile(_OnAPath):
    workspace: Workspace
    name: str = "write_file"
    description: str = "Create or replace a text file of the workspace."
    side_effect: SideEffect = SideEffect.WRITE
    effects: Effects = CONFINED  # inside the workspace only (Workspace)

    @property
    def parameters(self) -> dict[str, Any]:
        return _schema({"path": PATH, "content": {"type": "string"}}, ["path", "content"])

    def preview(self, arguments: dict[str, Any]) -> str:
        relative, content = str(arguments["path"]), str(arguments["content"])
        new = content.encode("utf-8")
        old = _current(self.workspace, relative)
        if old is None:
            return f"(new file, {len(new)} bytes)\n" + _diff(relative, "", content)
        return f"(replaces {len(old)} bytes with {len(new)} bytes)\n" + _diff(
            relative, _decode(old), content
        )

    def run(self, arguments: dict[str, Any]) -> ToolOutcome:
        content = str(arguments["content"])
        data = content.encode("utf-8")
        if len(data) > MAX_WRITE:
            return ToolOutcome(f"refused: {len(data)} bytes is over {MAX_WRITE}", is_error=True)
        self.workspace.write_bytes(arguments["path"], data)
        return ToolOutcome(f"wrote {len(content)} characters to {arguments['path']}")


@dataclass(frozen=True)
class EditFile(_OnAPath):
    workspace: Workspace
    name: str = "edit_file"
    description: str = "Replace one exact, unique piece of text in a file of the workspace."
    side_effect: SideEffect = SideEffect.WRITE
    effects: Effects = CONFINED  # inside the workspace only (Workspace)

    @property
    def parameters(self) -> dict[str, Any]:
        return _schema(
            {"path": PATH, "old": {"type": "string"}, "new": {"type": "string"}},
            ["path", "old", "new"],
        )

    def _edited(self, arguments: dict[str, Any]) -> tuple[bytes, bytes] | str:
        """The file's bytes before and after, or why the edit cannot be made. Only the edited
        span changes: line endings and the rest of the file are kept byte for byte."""
        relative = str(arguments["path"])
        data, size = self.workspace.read_bytes(relative, MAX_WRITE + 1)
        if size > MAX_WRITE:
            return f"{relative} is over {MAX_WRITE} bytes; edit it with run_shell"
        old = str(arguments["old"]).encode("utf-8")
        new = str(arguments["new"]).encode("utf-8")
        count = data.count(old) if old else 0
        if count != 1:
            return f"`old` occurs {count} times in {relative}; it must occur once"
        return data, data.replace(old, new, 1)

    def known_failure(self, arguments: dict[str, Any]) -> str | None:
        """Why the edit cannot be made, known before anyone is asked (None: it may work; an
        error reading the file is left to the call itself, which reports it)."""
        try:
            edited = self._edited(arguments)
        except Exception:
            return None
        return edited if isinstance(edited, str) else None

    def preview(self, arguments: dict[str, Any]) -> str:
        edited = self._edited(arguments)
        if isinstance(edited, str):
            return f"(the edit will fail: {edited})"
        before, after = edited
        return _diff(str(arguments["path"]), _decode(before), _decode(after))

    def run(self, arguments: dict[str, Any]) -> ToolOutcome:
        edited = self._edited(arguments)
        if isinstance(edited, str):
            return ToolOutcome(edited, is_error=True)
        self.workspace.write_bytes(arguments["path"], edited[1])
        return ToolOutcome(f"edited {arguments['path']}")
