"""Project instructions (AGENTS.md) and files attached to a goal with `@path`.

The decisions a reader must know: an AGENTS.md at the workspace root (read through the file
tools' confinement, so a link out of the workspace is refused) and a user-level one beside the
settings file go into the system prompt, each bounded and marked as coming from its file; the
exact text goes into the conversation and its digest onto the task state, so a resume sees a
changed file and says so. A `@path` in a goal or a follow-up attaches that workspace file,
confined and bounded as `read_file` is; a `@word` that names no file stays text.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from agentctl.domain.session import InstructionsFile, valid_text
from agentctl.errors import UsageError

FILE_NAME = "AGENTS.md"
MAX_CHARS = 16_000  # of one instructions file in the prompt
_MENTION = re.compile(r"(?<![\w@])@([^\s@`'\"]+)")


@dataclass(frozen=True)
class Instructions:
    """One instructions file as read now: where, its text (bounded), and its record."""

    path: str
    text: str
    where: str  # "the workspace" or "your settings folder"

    @property
    def record(self) -> InstructionsFile:
        digest = hashlib.sha256(self.text.encode("utf-8", "surrogatepass")).hexdigest()
        return InstructionsFile(path=self.path, sha256=digest, chars=len(self.text))


def _decode(data: bytes, size: int) -> str:
    text = valid_text(data.decode("utf-8", errors="replace"))
    if len(text) > MAX_CHARS or size > len(data):
        text = (
            text[:MAX_CHARS] + f"\n[… cut: the file is {size} bytes; {MAX_CHARS} characters kept]"
        )
    return text


def read_instructions(
    workspace: str | None, forbidden: tuple[Path, ...], user_file: Path
) -> list[Instructions]:
    """The instructions files that exist now: the user's own, then the workspace's (the more
    specific comes last, as it should win). A file that cannot be read is left out."""
    from agentctl.tools.files import OutsideWorkspaceError, Workspace

    found = []
    try:
        with user_file.open("rb") as f:
            data = f.read(MAX_CHARS * 4 + 1)
        size = user_file.stat().st_size
        found.append(Instructions(str(user_file), _decode(data, size), "your settings folder"))
    except OSError:
        pass
    if workspace is not None:
        root = Workspace(Path(workspace), forbidden)
        try:
            data, size = root.read_bytes(FILE_NAME, MAX_CHARS * 4 + 1)
            path = str(Path(workspace) / FILE_NAME)
            found.append(Instructions(path, _decode(data, size), "the workspace"))
        except (OSError, OutsideWorkspaceError):
            pass
    return found


def prompt_text(found: list[Instructions]) -> str | None:
    """The system prompt's part for the instructions files, each marked with where it is."""
    if not found:
        return None
    parts = []
    for f in found:
        parts.append(
            f"Project instructions from {f.path} ({FILE_NAME} in {f.where}), between the "
            f"markers:\n<<<{FILE_NAME}\n{f.text.strip()}\n>>>{FILE_NAME}"
        )
    return "\n\n".join(parts)


def changed(recorded: tuple[InstructionsFile, ...], found: list[Instructions]) -> bool:
    return tuple(f.record for f in found) != recorded


def change_note(recorded: tuple[InstructionsFile, ...], found: list[Instructions]) -> str:
    """The message that tells the model the instructions changed, with the new text whole."""
    now = {f.path for f in found}
    removed = [r.path for r in recorded if r.path not in now]
    parts = ["[The project's instructions changed since you last read them.]"]
    parts += [f"{path} was removed: its instructions no longer apply." for path in removed]
    if found:
        parts.append("They are now:\n\n" + (prompt_text(found) or ""))
    return "\n\n".join(parts)


def attachments(text: str, workspace: str | None, forbidden: tuple[Path, ...]) -> str:
    """The files `@path` mentions in `text` name, as text to send after it ("" for none). A
    mention that leads out of the workspace is refused (UsageError); one that names no file is
    left as the text it is."""
    from agentctl.tools.files import MAX_READ, OutsideWorkspaceError, Workspace, bounded

    if workspace is None:
        return ""
    root = Workspace(Path(workspace), forbidden)
    out = []
    seen = set()
    for mention in _MENTION.findall(text):
        path = mention.rstrip(".,;:!?)")
        if not path or path in seen:
            continue
        seen.add(path)
        try:
            target = root.resolve(path)
        except OutsideWorkspaceError as exc:
            raise UsageError(f"@{path}: {exc}; attach files of the workspace only") from None
        if not target.is_file():
            continue
        try:
            data, size = root.read_bytes(path, MAX_READ)
        except (OSError, OutsideWorkspaceError) as exc:
            raise UsageError(f"@{path} cannot be attached: {exc}") from None
        body = bounded(valid_text(data.decode("utf-8", errors="replace")))
        if size > len(data):
            body += f"\n[… the file has {size} bytes; only the first {len(data)} were read]"
        out.append(f"\n\nAttached file {path} (@{path}):\n```\n{body}\n```")
    return "".join(out)
