"""`agentctl show ID --transcript`: the conversation as a person reads it — the user's and the
assistant's words, each tool call with its arguments, each tool result (cut at a bound, whole
with --full), compaction notes and follow-ups — at any checkpoint, through a pager on a terminal
as `git log` does.

The decision a reader must know: lines are made one message at a time and written as they are
made, so the first screen of a 10,000-checkpoint session shows before the rest is formatted;
and every text is data (control characters shown, no markup), coloured here with plain ANSI
codes on a terminal only. No rich: a transcript is text, and rich would cost its first screen.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING, TextIO

from agentctl.loop.prompts import compacted_replies
from agentctl.terminal.render import visible

if TYPE_CHECKING:
    from agentctl.domain.session import Message, Session

RESULT_LINES = 12  # of a tool result or the system prompt: the first 8 and the last 4
RESULT_CHARS = 2_000
HEAD_LINES = 8


class Style:
    """ANSI styles, or nothing (piped output is plain)."""

    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def __call__(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour else text


def _bounded(text: str, full: bool) -> list[str]:
    lines = text.splitlines() or [""]
    if full:
        return lines
    tail = RESULT_LINES - HEAD_LINES
    if len(lines) > RESULT_LINES:
        left = len(lines) - RESULT_LINES
        lines = [
            *lines[:HEAD_LINES],
            f"… {left:,} more line{'s' if left != 1 else ''} (--full shows them) …",
            *lines[-tail:],
        ]
    out, used = [], 0
    for line in lines:
        if used + len(line) > RESULT_CHARS:
            out.append(f"… {len(text) - used:,} more characters (--full shows them) …")
            break
        out.append(line)
        used += len(line)
    return out


def _arguments(raw: str) -> str:
    """A call's arguments as `key=value, …` (JSON values), or the text as sent."""
    try:
        parsed = json.loads(raw or "{}")
    except (ValueError, RecursionError):
        return raw
    if not isinstance(parsed, dict):
        return raw
    return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in parsed.items())


def _user_heading(content: str) -> str:
    if compacted_replies(content) or content.startswith("[context compacted"):
        return "context compacted"
    if content.startswith("Follow-up: "):
        return "follow-up"
    if content.startswith("Goal: "):
        return "user (the goal)"
    return "user"


def transcript_lines(session: Session, full: bool, colour: bool) -> Iterator[str]:
    """The transcript, line by line."""
    s = Style(colour)
    c = session.checkpoint
    yield s(
        "1",
        f"session {visible(session.info.id)} at checkpoint {c.id} "
        f"({c.to_state.value}): {len(session.messages):,} messages",
    )
    names: dict[str, str] = {}
    for m in session.messages:
        yield ""
        yield from _message(m, names, full, s)


def _message(m: Message, names: dict[str, str], full: bool, s: Style) -> Iterator[str]:
    content = visible(m.content or "")
    if m.role == "system":
        yield s("2;1", "system")
        for line in _bounded(content, full):
            yield s("2", f"  {line}")
        return
    if m.role == "user":
        heading = _user_heading(m.content or "")
        style = "35;1" if heading in ("context compacted", "follow-up") else "1"
        yield s(style, heading)
        for line in content.splitlines() or [""]:
            yield f"  {line}"
        return
    if m.role == "assistant":
        yield s("34;1", "assistant")
        for line in content.splitlines():
            yield f"  {line}"
        for call in m.tool_calls:
            names[call.id] = call.name
            args = visible(_arguments(call.arguments))
            yield s("36", f"  → {visible(call.name)}({args})") + s("2", f"  [{visible(call.id)}]")
        return
    # a tool result
    name = names.get(m.tool_call_id or "", "tool")
    error = content.startswith("Error:") or content.startswith(f"{name} failed")
    yield s("31;1" if error else "32", f"{visible(name)} result") + s(
        "2", f"  [{visible(m.tool_call_id or '')}]"
    )
    for line in _bounded(content, full):
        yield f"  {line}"


def page(lines: Iterable[str], stream: TextIO | None = None) -> None:
    """Write lines as they come: through $PAGER (else `less`, with LESS=FRX as git sets it) on
    a terminal, straight to stdout otherwise. Quitting the pager early is not an error."""
    out = stream or sys.stdout
    pager: subprocess.Popen[str] | None = None
    if stream is None and out.isatty():
        command = os.environ.get("AGENTCTL_PAGER") or os.environ.get("PAGER") or "less"
        env = {**os.environ, "LESS": os.environ.get("LESS", "FRX")}
        with contextlib.suppress(OSError, ValueError):
            pager = subprocess.Popen(
                shlex.split(command), stdin=subprocess.PIPE, text=True, env=env, errors="replace"
            )
    target: IO[str] = pager.stdin if pager is not None and pager.stdin is not None else out
    try:
        chunk: list[str] = []
        for line in lines:
            chunk.append(line)
            if len(chunk) >= 64:  # the first screen goes out at once, the rest in chunks
                target.write("\n".join(chunk) + "\n")
                target.flush()
                chunk = []
        if chunk:
            target.write("\n".join(chunk) + "\n")
            target.flush()
    except BrokenPipeError:  # the pager (or `head`) was closed: the reader has seen enough
        if target is sys.stdout:  # nothing more may go there, not even at exit's flush
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
    finally:
        if pager is not None:
            with contextlib.suppress(BrokenPipeError, OSError):
                target.close()
            pager.wait()


def show(session: Session, full: bool) -> None:
    """The transcript on stdout: paged and coloured on a terminal, plain when piped."""
    page(transcript_lines(session, full, colour=sys.stdout.isatty()))
