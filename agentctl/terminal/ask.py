"""What asks the person at the terminal, on stderr: a line (which another terminal may answer
first), yes or no, a follow-up instruction, which unfinished session to resume; and a
question's markup (an approval's diff coloured)."""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from agentctl.terminal.render import err, error, escape, fit, state_markup, visible

if TYPE_CHECKING:
    from agentctl.store.base import SessionSummary


_DIFF_STYLES = {"+": "green", "-": "red", "@": "cyan"}


APPROVAL_ANSWERS = (
    "y: allow once · a: allow for the rest of this session (run_shell: this exact command) · "
    "n: refuse · or type what to do instead"
)


def question_markup(question: str) -> str:
    """A question (an approval's with its diff) as markup: the first line in yellow, diff lines
    coloured as `agentctl diff` colours them. The text is outside text: escaped, visible."""
    first, *rest = question.split("\n")
    lines = [f"[yellow]? {escape(first)}[/]"]
    for line in rest:
        text = escape(line)
        header = line.startswith(("+++ ", "--- "))
        style = "bold" if header else _DIFF_STYLES.get(line[:1])
        lines.append(f"[{style}]{text}[/]" if style else text)
    return "\n".join(lines)


def read_line(prompt: str, answered_elsewhere: Callable[[], bool] | None = None) -> str | None:
    """A line typed at the terminal; None at Ctrl-D. With `answered_elsewhere`, it is asked
    every half second while nothing is typed: when it says yes, AnsweredElsewhere is raised
    (the question was answered in another terminal)."""
    from agentctl.domain.records import AnsweredElsewhere

    err.print(prompt, end="")
    if answered_elsewhere is None:
        try:
            return input()
        except EOFError:
            err.print()
            return None
    fd = sys.stdin.fileno()
    typed = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            if answered_elsewhere():
                err.print()
                raise AnsweredElsewhere(typed.decode(errors="replace") or None)
            continue
        chunk = os.read(fd, 4096)
        if not chunk:  # Ctrl-D
            err.print()
            return None if not typed else typed.decode(errors="replace")
        typed += chunk
        if b"\n" in typed or b"\r" in typed:
            return typed.splitlines()[0].decode(errors="replace")


def ask_follow_up() -> str | None:
    """After a run reached done, on a terminal: the next instruction, or None (Enter, Ctrl-D)."""
    if not sys.stdin.isatty():
        return None
    err.print("[dim]follow-up? the next instruction for this session, or Enter to end[/]")
    text = read_line("[bold]> [/]")
    return text if text is not None and text.strip() else None


def ask_yes(question: str) -> bool:
    err.print(f"{escape(question)} [y/N] ", end="")
    try:
        return input().strip().lower() in ("y", "yes")
    except EOFError:
        return False


def confirm(question: str) -> bool:
    """Asked on a terminal only: without one, a delete needs --yes."""
    if not sys.stdin.isatty():
        error("not deleting without a terminal to ask on", hint="add --yes")
        return False
    return ask_yes(question)


def confirm_remove(session_ids: list[str]) -> bool:
    """`rm`'s question."""
    return confirm(f"delete {', '.join(session_ids)} for good?")


def confirm_prune(count: int) -> bool:
    """`prune`'s question, after the list of what it deletes."""
    return confirm(f"delete these {count} sessions for good?")


def confirm_give_back() -> bool:
    """`prune --snapshots`' question, after the list of the snapshots."""
    return confirm("give back the snapshots no session of this store names?")


def pick_session(recent: list[SessionSummary]) -> str | None:
    """A small prompt: the recent unfinished sessions, numbered; Enter takes the first."""
    err.print("[bold]unfinished sessions:[/]")
    id_w = max(len(visible(s.id)) for s in recent)
    name_w = max(len(visible(s.name or "")) for s in recent)
    state_w = max(len(s.state) for s in recent)
    width = err.width if err.is_terminal else None
    goal_w = None if width is None else max(10, width - (6 + id_w + name_w + state_w + 16 + 8))
    for n, s in enumerate(recent, 1):
        name = visible(s.name or "")
        err.print(
            f"  {n}. {escape(s.id)}{' ' * (id_w - len(visible(s.id)))}  "
            + (f"{escape(name)}{' ' * (name_w - len(name))}  " if name_w else "")
            + f"{state_markup(s.state)}{' ' * (state_w - len(s.state))}  "
            f"{escape(s.updated_at[:16].replace('T', ' ')):16}  "
            f"{escape(fit(s.title or s.goal, goal_w))}"
        )
    err.print(f"resume which? [1-{len(recent)}, Enter: 1] ", end="")
    try:
        answer = input().strip()
    except EOFError:
        return None
    if not answer:
        return recent[0].id
    if answer.isdigit() and 1 <= int(answer) <= len(recent):
        return recent[int(answer) - 1].id
    return answer  # an id, prefix or name typed instead
