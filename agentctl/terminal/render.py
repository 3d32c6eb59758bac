"""All terminal output: rich tables, the live run view, prompts, and the --json forms.

The runner and the use cases report typed events and return plain records; this module alone
decides how they look. Progress goes to stderr so that stdout carries only results (and only
JSON with --json); without a terminal, output is plain text with no colour or spinner.
"""

from __future__ import annotations

import json
import math
import os
import re
import select
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from agentctl.domain.checkpoints import (
    ApprovalModeDetail,
    CompactionDetail,
    ErrorDetail,
    FinishDetail,
    FollowUpDetail,
    InputDetail,
    InstructionsDetail,
    McpToolsDetail,
    NudgeDetail,
    PlanDetail,
    QuestionDetail,
    RememberDetail,
    ReplyDetail,
    RollbackDetail,
    StepDetail,
    ToolDetail,
)
from agentctl.domain.checkpoints import parse as parse_detail

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console

    from agentctl.domain.records import (
        ConfigRow,
        Doomed,
        ImportReport,
        MoveReport,
        RollbackReport,
        SearchHit,
        SessionReport,
        SessionView,
        SharedSnapshots,
        UsageRow,
        WorkspaceDiff,
    )
    from agentctl.domain.state import UserProfile
    from agentctl.store.base import CheckpointSummary, SessionSummary


class _Console:
    """A rich Console made when first used: importing rich (~15 ms) is work `agentctl run`
    does after its first model request is out, not before (nothing is printed until then)."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            # emoji=False: `:smile:` in a model's text is text. highlight=False: no guessing
            # at colours.
            self._console = Console(
                stderr=self._stderr, highlight=False, soft_wrap=True, emoji=False
            )
        return getattr(self._console, name)


out: Console = _Console(stderr=False)  # type: ignore[assignment]
err: Console = _Console(stderr=True)  # type: ignore[assignment]

# Characters a terminal acts on instead of showing: C0 controls but tab and newline, DEL, C1
# controls (0x9b is a CSI on its own), the bidirectional overrides that reorder text, the line
# and paragraph separators (a line break to some terminals and editors), and the invisible
# ones that hide text inside a command shown for approval (zero-width space, word joiner,
# byte-order mark; not the joiners that emoji and scripts need).
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b\u200e\u200f\u2028\u2029\u202a-\u202e"
    "\u2060\u2066-\u2069\ufeff]"
)


UNSAFE = _UNSAFE  # for the JSON stream, which escapes the same characters


def _show(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """Text from outside (a model, a tool, a file, a store, a user) as plain characters: every
    control character shown as an escape (`\\x1b`), so it cannot move the cursor, recolour,
    retitle or rewrite what the user reads. A store may hold a number where text belongs:
    shown too, never a TypeError."""
    return _UNSAFE.sub(_show, str(text))


def flat(text: str) -> str:
    """Outside text on one line: `visible`, with line breaks and tabs shown as escapes too (a
    file name may hold a newline that would forge the next line of a listing)."""
    return visible(text).replace("\n", "\\n").replace("\t", "\\t")


def escape(text: str) -> str:
    """Outside text made safe to embed in our markup: visible, with markup escaped."""
    from rich.markup import escape as escape_markup

    return escape_markup(visible(text))


def plain(console: Console, text: str) -> None:
    """Print outside text as it is: no markup, no emoji, control characters visible."""
    console.print(visible(text), markup=False, emoji=False, highlight=False)


STATE_STYLE = {
    "idle": "dim",
    "planning": "cyan",
    "executing": "blue",
    "waiting_feedback": "yellow",
    "done": "green",
    "moved": "magenta",  # the record a move left: the session runs in another store
}


def print_json(value: Any) -> None:
    """Strict JSON (RFC 8259): a number that is not finite (a price of `inf` in an older
    settings file, a NaN a model put in its arguments) is null, never `Infinity` or `NaN`.
    json.dumps escapes C0 controls; C1 controls and bidi overrides are escaped here."""
    try:
        text = json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False)
    except ValueError:
        text = json.dumps(finite(value), indent=2, ensure_ascii=False, allow_nan=False)
    sys.stdout.write(_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")


ERROR_CHARS = 600  # an error is one line: what it quotes (a goal, a path, a server's text) is cut


def bounded(text: str, limit: int = ERROR_CHARS) -> str:
    """`text` at most about `limit` characters: its start and its end (where an error says
    what to do), with what was left out counted between them."""
    if len(text) <= limit:
        return text
    head, tail = limit * 2 // 3, limit // 4
    return f"{text[:head]} … [{len(text) - head - tail:,} characters left out] … {text[-tail:]}"


def finite(value: Any) -> Any:
    """`value` with every float that is not finite replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def error(message: str, hint: str | None = None) -> None:
    err.print(f"[bold red]error:[/] {escape(bounded(message))}")
    try_next(hint and bounded(hint))


def try_next(command: str | None) -> None:
    """The next command to try, under an error."""
    if command:
        err.print(f"[dim]try:[/] {escape(command)}")


def note(message: str) -> None:
    err.print(f"[dim]{escape(message)}[/]")


def plural(count: int, noun: str) -> str:
    """`1 session`, `2 sessions`: every count in words goes through here."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def number(value: int) -> str:
    """The one way numbers are printed: thousands separated by commas."""
    return f"{value:,}"


def one_line(text: str) -> str:
    """The first line of a text, with `…` where more lines were cut (history is one line per
    checkpoint: an approval's diff is not)."""
    first, newline, _ = str(text).partition("\n")
    return first + " …" if newline else first


def table_width() -> int | None:
    """How wide a row may be: the terminal's width, or None when output is piped (never cut
    to 80 columns for a file or another program)."""
    return out.width if out.is_terminal else None


def fit(text: str, width: int | None) -> str:
    """`text` cut to `width` characters at a word boundary, with `…` (None: uncut)."""
    if width is None or len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    cut = text[: width - 1]
    space = cut.rfind(" ")
    if space > width // 2:  # cut at a word when one ends in the second half
        cut = cut[:space]
    return cut.rstrip() + "…"


def print_fitted(lines: list[str]) -> None:
    """Lines of markup printed one per row: on a terminal each is cut at a word boundary to
    its width (a row never wraps into the next); piped, each is printed whole."""
    width = table_width()
    if width is None:
        out.print("\n".join(lines))
        return
    from rich.text import Text

    fitted = []
    for line in lines:
        text = Text.from_markup(line)
        if text.cell_len > width:
            keep = len(fit(text.plain, width)) - 1
            text.truncate(keep)
            text.rstrip()
            text.append("…")
        fitted.append(text)
    out.print(*fitted, sep="\n")


def _state(state: str) -> str:
    return f"[{STATE_STYLE.get(state, 'white')}]{escape(state)}[/]"


def _sandboxed(d: ToolDetail) -> str:
    """Where a command ran, when it says: ` [sandbox: workspace-write]`, ` [no sandbox]`."""
    if d.sandbox is None:
        return ""
    if d.sandbox in ("off", "unavailable"):
        return f" [yellow]\\[no sandbox: {escape(d.sandbox)}][/]"
    network = ", network" if d.network else ""
    return f" [dim]\\[sandbox: {escape(d.sandbox)}{network}][/]"


def sandbox_line(sandbox: str | None, network: bool | None) -> str:
    """The session's sandbox, as `show` says it."""
    if sandbox is None:
        return "not recorded (a session from before the sandbox)"
    if sandbox == "off":
        return "off: shell commands run with all of your rights"
    if sandbox == "unavailable":
        return "unavailable (bubblewrap could not run): shell commands ran with all of your rights"
    reach = "with network" if network else "no network"
    return f"{sandbox}, {reach}"


def _files(count: int | None, verb: str) -> str:
    """How many workspace files a checkpoint changed, for `history` and the live view."""
    if not count:
        return ""
    return f" [yellow]({count} file{'s' if count != 1 else ''} {verb})[/]"


def _not_captured(names: tuple[str, ...] | None) -> str:
    """What a capture left out, or why it failed: said, never silent."""
    if not names:
        return ""
    failed = [n for n in names if n.startswith("(no snapshot")]
    if failed:
        return f" [red]{escape(flat(failed[0]))}[/]"
    shown = ", ".join(flat(n) for n in names[:5]) + (" …" if len(names) > 5 else "")
    return f" [yellow](not snapshotted: {escape(shown)})[/]"


def describe_checkpoint(kind: str, detail: dict[str, Any]) -> str:
    """One line of markup for a checkpoint, as the live view and `history` show it. The
    detail is read as its kind's record (a damaged store's odd values read as absent)."""

    def e(text: str) -> str:
        return escape(one_line(text))

    d = parse_detail(kind, detail)
    if kind == "new_task":
        return "[cyan]planning[/]"
    if isinstance(d, ReplyDetail):
        tools = ", ".join(d.tools)
        return f"[dim]model replied[/] → {e(tools)}" if tools else "[dim]model replied[/]"
    if isinstance(d, PlanDetail) and kind == "plan_ready":
        return "[cyan]plan:[/] " + "; ".join(f"{n}. {e(s)}" for n, s in enumerate(d.steps, 1))
    if isinstance(d, PlanDetail):
        return "[cyan]plan revised:[/] " + "; ".join(e(s) for s in d.steps)
    if isinstance(d, StepDetail):
        return f"[green]✓[/] {e(d.step)}: {e(d.summary)}"
    if isinstance(d, QuestionDetail):
        return f"[yellow]? {e(d.question)}[/]"
    if isinstance(d, InputDetail):
        if d.granted:
            return f"[yellow]←[/] {e(d.input)} [dim](allowed for this session: {e(d.granted)})[/]"
        if d.approved is False:
            return f"[yellow]←[/] {e(d.input)} [dim](refused)[/]"
        return f"[yellow]←[/] {e(d.input)}"
    if isinstance(d, FinishDetail):
        return f"[green]done[/] ({e(d.outcome)})"
    if isinstance(d, FollowUpDetail):
        return f"[cyan]follow-up:[/] {e(d.input)}"
    if isinstance(d, ApprovalModeDetail):
        if d.auto_approve:
            return "[yellow]approvals: writes and commands run without asking (--yes)[/]"
        return "[yellow]approvals: writes and commands are asked again (--ask)[/]"
    if isinstance(d, McpToolsDetail):
        parts = [
            f"{label}: {', '.join(names)}"
            for label, names in (
                ("added", d.added),
                ("removed", d.removed),
                ("changed", d.changed),
                ("servers down", d.down),
            )
            if names
        ]
        return f"[magenta]MCP tools changed:[/] {e('; '.join(parts) or 'servers changed')}"
    if isinstance(d, InstructionsDetail):
        if d.removed:
            return f"[magenta]instructions removed:[/] {e(d.path)}"
        return f"[magenta]instructions changed:[/] {e(d.path)} ({d.chars} characters)"
    if isinstance(d, RememberDetail):
        return f"remembered {e(d.key)} = {e(d.value)}"
    if isinstance(d, ToolDetail) and kind == "tool_started":
        what = f"{e(d.tool)}: {e(d.command)}" if d.command else e(d.tool)
        return f"[dim]running {what}…[/]{_sandboxed(d)}{_not_captured(d.not_captured)}"
    if isinstance(d, ToolDetail):
        files = _files(d.files, "changed") + _not_captured(d.not_captured)
        if d.error:
            return f"[red]✗ {e(d.tool)}:[/] {e(d.message or 'failed')}{files}"
        return f"[dim]{e(d.tool)} ok[/]{files}"
    if isinstance(d, NudgeDetail):
        return "[dim]reminded the model to call a tool[/]"
    if isinstance(d, ErrorDetail):
        return f"[red]error:[/] {e(d.error)}"
    if isinstance(d, CompactionDetail):
        how = "summarized" if d.strategy == "summarize" else "dropped"
        return (
            f"[magenta]context compacted:[/] {plural(d.dropped, 'older message')} "
            f"{how} ({d.tokens_before:,} → {d.tokens_after:,} tokens)"
        )
    if isinstance(d, RollbackDetail):
        what = "files put back" if d.files_only else "rolled back"
        return f"[magenta]{what}[/] from #{d.from_} to #{d.to}{_files(d.files, 'restored')}"
    return e(kind)


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


# -- results ---------------------------------------------------------------------------------


def queue_said(place: Any) -> str:
    """A session's place in a worker queue (store/pg_queue.Queued), as `list` shows it."""
    if place.status == "runnable":
        return f"queued: {place.queue}"
    if place.status == "running":
        return f"running on {place.worker}" if place.worker else "running"
    if place.status == "failed":
        return "failed (resume --detach retries)"
    return ""


def summary_json(s: SessionSummary, place: Any = None) -> dict[str, Any]:
    queue = None
    if place is not None:
        queue = {
            "queue": place.queue,
            "status": place.status,
            "worker": place.worker,
            "priority": place.priority,
            "error": place.error,
        }
    return {
        "queue": queue,
        "id": s.id,
        "name": s.name,
        "tags": list(s.tags),
        "workspace": s.workspace,
        "state": s.state,
        "goal": s.goal,
        "title": s.title,
        "head": s.head,
        "outcome": s.outcome,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
    }


def sessions_table(sessions: list[SessionSummary], queued: dict[str, Any] | None = None) -> None:
    """One line per session, padded by hand (a rich Table of 100 rows costs 0.1 s of start-up).
    `queued`: sessions' places in a worker queue (PostgreSQL), said after their state."""
    if not sessions:
        note("no sessions yet: start one with agentctl run TASK")
        return
    states = [
        s.state if s.state != "done" or not s.outcome else f"done ({s.outcome})" for s in sessions
    ]
    for n, s in enumerate(sessions):
        said = queue_said(queued[s.id]) if queued and s.id in queued else ""
        if said:
            states[n] += f", {said}"
    id_w = max(2, *(len(s.id) for s in sessions))
    state_w = max(5, *map(len, states))
    head_w = max(4, *(len(str(s.head)) for s in sessions))
    fixed = id_w + state_w + head_w + 19 + 8
    width = table_width()
    goal_w = None if width is None else max(8, width - fixed)
    lines = [
        f"[bold]{'id':{id_w}}  {'state':{state_w}}  {'head':>{head_w}}  {'updated':19}  goal[/]"
    ]
    names = [s.name for s in sessions if s.name]
    for s, state in zip(sessions, states, strict=True):
        goal = s.title or s.goal
        if s.name:  # a name two sessions share is shown with its id
            shown = f"{s.name} ({s.id[:6]})" if names.count(s.name) > 1 else s.name
            goal = f"[{shown}] {goal}"
        if s.tags:
            goal += "  #" + " #".join(s.tags)
        goal = fit(goal, goal_w)
        lines.append(
            f"{escape(s.id):{id_w}}  {_state(s.state)}{escape(state[len(s.state) :])}"
            f"{' ' * (state_w - len(state))}  {s.head:>{head_w}}  "
            f"{s.updated_at[:19].replace('T', ' '):19}  {escape(goal)}"
        )
    _print_lines(lines)


def _print_lines(lines: list[str]) -> None:
    """Lines of markup: piped, as the plain text rich would show, without rich (`list --all`
    of 50,000 sessions spent seconds in it); on a terminal fitted to its width."""
    stream_lines(lambda markup: lines if markup else map(plain_text, lines))


def checkpoint_json(c: CheckpointSummary) -> dict[str, Any]:
    return {
        "id": c.id,
        "parent": c.parent,
        "event": c.kind,
        "from_state": c.from_state,
        "to_state": c.to_state,
        "created_at": c.created_at,
        "detail": c.detail,
    }


# -- history and its graph (one view: moves as a unit) ---------------------------------------

# Markup tags as rich reads them (rich.markup.RE_TAGS): a run of backslashes, then `[`, a tag
# name's first character, anything but `[`, then `]`.
_TAG = re.compile(r"(\\*)\[([a-z#/@][^[]*?)]")
SCREEN_LINES = 64  # a terminal gets its first screen at once, then the rest in chunks this long
_FOLD_CONTEXT = 1  # rows kept on each side of a branch point, a branch's end or the head
_FOLD_MIN = 3  # a linear run this long or longer between them is folded into one line
# What a graph folds: the turns of the loop. Every other event (the plan, a step done, a
# question, a follow-up, an error, a rollback…) is a landmark and always drawn.
_ROUTINE = frozenset(("model_reply", "tool_started", "tool_result", "nudge"))


def plain_text(markup: str) -> str:
    """The text rich shows for `markup` without its styles, without rich: tags dropped, and
    escaped brackets and backslashes read as rich.markup.render reads them (the tests check
    the two agree on hostile text). Piped output of long views goes through here: rich costs
    0.1 ms a line, 10 s for a 100,000-checkpoint history."""
    if "[" not in markup:
        return markup
    out, position = [], 0
    for match in _TAG.finditer(markup):
        start, end = match.span()
        if start > position:
            out.append(markup[position:start].replace("\\[", "["))
        position = end
        escapes = match.group(1)
        if escapes:
            backslashes, escaped = divmod(len(escapes), 2)
            out.append("\\" * backslashes)
            if escaped:  # an escaped tag is text
                out.append(match.group()[len(escapes) :].replace("\\[", "["))
    if position < len(markup):
        out.append(markup[position:].replace("\\[", "["))
    return "".join(out)


def stream_lines(lines: Callable[[bool], Iterable[str]]) -> None:
    """A long view written as its lines are made: `lines(True)` gives them as markup, which a
    terminal gets fitted to its width, the first screen at once and then a screenful at a
    time; `lines(False)` as plain text, which a pipe gets in chunks. Nothing waits for the
    whole view (a history of 100,000 checkpoints is 100,000 lines); a reader that closes the
    pipe early (`| head`) has what it wanted."""
    if out.is_terminal:
        chunk: list[str] = []
        for line in lines(True):
            chunk.append(line)
            if len(chunk) >= SCREEN_LINES:
                print_fitted(chunk)
                chunk = []
        if chunk:
            print_fitted(chunk)
        return
    write = sys.stdout.write
    try:
        chunk = []
        for line in lines(False):
            chunk.append(line)
            if len(chunk) >= 4096:
                write("\n".join(chunk) + "\n")
                chunk = []
        if chunk:
            write("\n".join(chunk) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # `history ID | head`: nothing more may go there, not even at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


class _Descriptions:
    """describe_checkpoint, as markup or as plain text, made once per distinct detail: a long
    session repeats a few hundred of them (`read_file ok`) across thousands of checkpoints."""

    def __init__(self, markup: bool) -> None:
        self.markup = markup
        self.made: dict[object, str] = {}

    def __call__(self, kind: str, detail: dict[str, Any]) -> str:
        try:
            key: object = (kind, *((k, _frozen(v)) for k, v in detail.items()))
            made = self.made.get(key)
        except TypeError:  # a value that is not hashable even frozen: made every time
            key, made = None, None
        if made is None:
            made = describe_checkpoint(kind, detail)
            if not self.markup:
                made = plain_text(made)
            if key is not None and len(self.made) < 10_000:
                self.made[key] = made
        return made


def _frozen(value: object) -> object:
    return tuple(value) if type(value) is list else value


def history_table(
    session_id: str, history: list[CheckpointSummary], limit: int | None = None
) -> None:
    """One line per checkpoint (the newest `limit` with --limit), streamed. Not a rich Table:
    measuring 1,000 rows of cells took 0.6 s, and a long history is exactly when a user wants
    it fast. Columns are padded by hand instead."""
    stream_lines(lambda markup: history_lines(session_id, history, limit, markup))


def history_lines(
    session_id: str,
    history: list[CheckpointSummary],
    limit: int | None = None,
    markup: bool = True,
) -> Iterator[str]:
    """The lines of `history_table`, as markup or as the plain text rich would show for it."""
    tag = _Tagger(markup)
    shown_text, describe = tag.text, tag.describe
    head = history[-1].id if history else None
    id_width = max(len("#"), len(str(head or 0)))
    shown = history[-limit:] if limit and limit < len(history) else history
    transitions = {(c.from_state, c.to_state) for c in shown}
    t_width = max(
        [len("transition"), *(len(a) if a == b else len(a) + 3 + len(b) for a, b in transitions)]
    )
    yield tag("bold", f"session {shown_text(session_id)}")
    yield tag(
        "bold",
        f"{'#':>{id_width}}  {'parent':>{id_width + 1}}  {'time':8}  "
        f"{'transition':{t_width}}  event",
    )
    if len(shown) < len(history):
        yield tag("dim", f"… {plural(len(history) - len(shown), 'earlier checkpoint')} (--limit)")
    cells: dict[tuple[str, str], str] = {}
    state = _state if markup else visible
    marker = " " + tag("bold", "← head")
    for c in shown:
        parent_cell = f"{'' if c.parent is None else c.parent:>{id_width + 1}}"
        if c.parent is not None and c.parent != c.id - 1:  # branches off an older checkpoint
            parent_cell = tag("magenta", parent_cell)
        pair = (c.from_state, c.to_state)
        styled = cells.get(pair)
        if styled is None:
            a, b = pair
            width = len(a) if a == b else len(a) + 3 + len(b)
            styled = (state(a) if a == b else f"{state(a)} → {state(b)}") + " " * (t_width - width)
            cells[pair] = styled
        yield (
            f"{c.id:>{id_width}}  {parent_cell}  {shown_text(c.created_at[11:19]):8}  "
            f"{styled}  {describe(c.kind, c.detail)}{marker if c.id == head else ''}"
        )


def graph_lanes(history: list[CheckpointSummary]) -> list[int]:
    """Each checkpoint's column in the tree (see _branches)."""
    return _branches(history)[0]


def _branches(history: list[CheckpointSummary]) -> tuple[list[int], list[tuple[int, int, int]]]:
    """Each checkpoint's column, and each abandoned branch as (column, index of its first
    checkpoint, index of its last). Column 0 is the path the head stands on; a branch takes
    the lowest column free where it begins (free again after its branch's last checkpoint),
    so the graph is as wide as the most branches alive at once, not as every branch ever
    made. Parents only point backwards (verify checks it), so one pass in id order finds
    every branch, and the walk from the head is bounded: damage cannot loop."""
    if not history:
        return [], []
    trunk, c = set(), history[-1]
    for _ in range(len(history)):
        trunk.add(c.id)
        if c.parent is None or not 1 <= c.parent < c.id or c.parent > len(history):
            break
        c = history[c.parent - 1]
    branch_of: list[int] = []  # per checkpoint: its branch (0: the trunk)
    spans: list[list[int]] = [[0, 0]]  # per branch: the index of its first and last
    tips: dict[int, int] = {}  # the newest checkpoint of each branch -> the branch
    for index, c in enumerate(history):
        if c.id in trunk:
            branch_of.append(0)
            continue
        branch = tips.pop(c.parent, None) if c.parent is not None else None
        if branch is None:  # a branch begins here
            branch = len(spans)
            spans.append([index, index])
        spans[branch][1] = index
        tips[c.id] = branch
        branch_of.append(branch)
    columns = [0] * len(spans)
    ends: list[int] = []  # per column but the trunk's: the last index its branch reaches
    for branch in range(1, len(spans)):
        first, last = spans[branch]
        column = next((n for n, end in enumerate(ends) if end < first), len(ends))
        if column == len(ends):
            ends.append(last)
        ends[column] = last
        columns[branch] = column + 1
    placed = [(columns[b], spans[b][0], spans[b][1]) for b in range(1, len(spans))]
    return [columns[b] for b in branch_of], placed


def _graph_rows(history: list[CheckpointSummary], lanes: list[int]) -> list[bool]:
    """Which rows the graph draws: every landmark event, a branch's first and last
    checkpoints, the checkpoints branches leave from, the first and the head, each with a row
    of context; the rest of a linear run of turns is one line saying how many it folds."""
    count = len(history)
    keep = [False] * count
    seen: set[int] = set()
    for index, (c, lane) in enumerate(zip(history, lanes, strict=True)):
        starts = c.parent is None or c.parent != c.id - 1 or lane != lanes[index - 1]
        ends = index + 1 < count and lanes[index + 1] != lane
        if starts or ends or index in (0, count - 1) or c.kind not in _ROUTINE:
            seen.add(index)
            if c.parent is not None and 1 <= c.parent <= count:
                seen.add(c.parent - 1)  # the checkpoint it leaves from
    for index in seen:
        for near in range(max(0, index - _FOLD_CONTEXT), min(count, index + _FOLD_CONTEXT + 1)):
            keep[near] = True
    return keep


def history_graph(
    session_id: str,
    history: list[CheckpointSummary],
    limit: int | None = None,
    fold: bool = True,
) -> None:
    """The checkpoint tree, like `git log --graph` (oldest first): the head's path on the
    left, each abandoned branch in a column beside it, where it left named. Bounded: a column
    is reused once its branch has ended, long linear runs fold into one line (`fold`), and
    `limit` draws only the newest checkpoints."""
    stream_lines(lambda markup: graph_lines(session_id, history, limit, fold, markup))


def graph_lines(
    session_id: str,
    history: list[CheckpointSummary],
    limit: int | None = None,
    fold: bool = True,
    markup: bool = True,
) -> Iterator[str]:
    """The lines of `history_graph`, as markup or as the plain text rich would show for it."""
    tag = _Tagger(markup)
    lanes, branches = _branches(history)
    width = max(lanes, default=0) + 1
    alive: list[list[int]] = [[] for _ in range(width)]  # column -> its branches' first, last
    for lane, a, b in branches:
        alive[lane].extend((a, b))
    keep = _graph_rows(history, lanes) if fold else [True] * len(history)
    start = max(0, len(history) - limit) if limit else 0
    head = history[-1].id if history else None
    last_trunk = max((i for i, lane in enumerate(lanes) if lane == 0), default=-1)
    yield tag("bold", f"session {tag.text(session_id)}")
    if start:
        yield tag("dim", f"… {plural(start, 'earlier checkpoint')} (--limit)")
    cursor = [0] * width  # per column, the index into alive of the stretch at or after a row
    folded = 0

    def through(index: int) -> list[bool]:
        """Per column: does a branch pass this row (begun before it, not ended)?"""
        passing = []
        for n in range(width):
            pairs = alive[n]
            while cursor[n] < len(pairs) and pairs[cursor[n] + 1] < index:
                cursor[n] += 2
            k = cursor[n]
            passing.append(
                (n == 0 and index < last_trunk)
                or (k < len(pairs) and pairs[k] < index < pairs[k + 1])
            )
        return passing

    for index in range(start, len(history)):
        if not keep[index]:
            folded += 1
            continue
        if folded:
            if folded < _FOLD_MIN:  # too short to fold: a summary line would save nothing
                for back in range(index - folded, index):
                    yield _graph_row(history[back], lanes[back], through(back), tag, head)
            else:
                marks = through(index - 1)
                marks[lanes[index - 1]] = True
                cells = [tag(_COLOURS[n % 6], ":") if marks[n] else " " for n in range(width)]
                yield f"{' '.join(cells)}  " + tag("dim", f"… {plural(folded, 'checkpoint')}")
            folded = 0
        yield _graph_row(history[index], lanes[index], through(index), tag, head)


_COLOURS = ("green", "magenta", "cyan", "yellow", "blue", "red")  # of the graph's columns


class _Tagger:
    """Markup for a terminal, or the plain text it stands for (piped)."""

    def __init__(self, markup: bool) -> None:
        self.markup = markup
        self.text = escape if markup else visible  # outside text, made safe
        self.describe = _Descriptions(markup)

    def __call__(self, style: str, text: str) -> str:
        return f"[{style}]{text}[/]" if self.markup else text


def _graph_row(
    c: CheckpointSummary, lane: int, passing: list[bool], tag: _Tagger, head: int | None
) -> str:
    cells = []
    for n, through in enumerate(passing):
        if n == lane:
            cells.append(tag(_COLOURS[n % 6], "*"))
        elif through:
            cells.append(tag(_COLOURS[n % 6], "|"))
        else:
            cells.append(" ")
    where = ""
    if c.parent is not None and c.parent != c.id - 1:
        where = " " + tag("dim", f"(from #{c.parent})")
    marker = " " + tag("bold", "← head") if c.id == head else ""
    return f"{' '.join(cells)}  {c.id:>4}  {tag.describe(c.kind, c.detail)}{where}{marker}"


def verify_report(store_problems: list[str], reports: list[SessionReport]) -> None:
    for problem in store_problems:
        out.print(f"[red]store:[/] {escape(problem)}")
    for r in reports:
        if r.problems:
            out.print(
                f"[red]✗[/] {escape(r.session_id)}: {plural(len(r.problems), 'problem')} "
                f"in {plural(r.checkpoints, 'checkpoint')}"
            )
            for problem in r.problems:
                out.print(f"    {escape(problem)}")
        else:
            out.print(f"[green]✓[/] {escape(r.session_id)}: {plural(r.checkpoints, 'checkpoint')}")
    bad = sum(1 for r in reports if r.problems) + (1 if store_problems else 0)
    out.print(
        f"{plural(len(reports), 'session')} checked, "
        + (f"[red]{bad} with problems[/]" if bad else "all sound")
    )


def show_profile(profile: UserProfile) -> None:
    if not profile.preferences:
        note("no preferences yet: agentctl profile set KEY VALUE (or the agent remembers them)")
    for key, value in sorted(profile.preferences.items()):
        out.print(f"{escape(key)} = {escape(value)}")
    if profile.recent_goals:
        out.print("[dim]recent goals:[/]")
        for goal in profile.recent_goals:
            out.print(f"  [dim]- {escape(goal)}[/]")


def show_config(path: Path, rows: list[ConfigRow]) -> None:
    out.print(f"[dim]settings file: {escape(str(path))}[/]")
    width = max(len(r.key) for r in rows)
    for r in rows:
        value = escape(r.value) if r.value is not None else "[dim]-[/]"
        out.print(f"{r.key:<{width}} = {value}  [dim]({escape(r.source)})[/]")


def config_json(path: Path, rows: list[ConfigRow]) -> dict[str, Any]:
    return {
        "path": str(path),
        "settings": {r.key: {"value": r.value, "source": r.source} for r in rows},
    }


def _show_settings(view: SessionView) -> None:
    """What the session may do on this machine, and whose word that is (trust.py)."""
    info = view.session.info
    spec = info.spec
    out.print(f"workspace: {escape(info.workspace or '(none recorded: the current folder)')}")
    out.print(f"allow:    {escape(', '.join(spec.allow)) if spec.allow else 'none'}")
    out.print(f"pass_env: {escape(', '.join(spec.pass_env)) if spec.pass_env else 'none'}")
    if spec.script is not None:
        out.print(f"script:   {plural(len(spec.script), 'scripted reply')} came with the task")
    out.print(f"sandbox:  {escape(sandbox_line(info.sandbox, info.network))}")
    if spec.mcp is not None or spec.mcp_servers:
        servers = [*(spec.mcp or ()), *(f"{n} (its own)" for n in sorted(spec.mcp_servers))]
        out.print(f"mcp:      {escape(', '.join(servers)) or 'none'}")
    if view.trust == "own":
        out.print("settings: yours (started here)")
    elif view.trust == "accepted":
        out.print(
            f"settings: from elsewhere, accepted by you at checkpoint {view.trust_since} "
            "(approvals recorded before it do not count)"
        )
    else:
        out.print(
            "[yellow]settings: from elsewhere (an import, a move, or a store another user "
            "writes), not accepted: nothing above counts until you do[/]"
        )
        out.print(f"[dim]  agentctl resume {escape(info.id)} --accept-settings[/]")


def _show_files_and_forks(view: SessionView) -> None:
    s, task = view.session, view.session.task
    if s.info.forked_from:
        origin, _, at = s.info.forked_from.partition(":")
        out.print(f"forked:   from session {escape(origin)} at checkpoint {escape(at)}")
    if view.forks:
        out.print(f"forks:    {escape(', '.join(view.forks))}")
    if view.snapshot_bytes is not None:
        tree = task.workspace_tree[:10] if task.workspace_tree else "none yet"
        out.print(
            f"files:    snapshot {tree}; the workspace's snapshots take "
            f"{human_bytes(view.snapshot_bytes)}"
        )


def session_json(view: SessionView) -> dict[str, Any]:
    s, budget = view.session, view.budget
    c = s.checkpoint
    return {
        "id": s.info.id,
        "state": s.state.value,
        "head": c.id,
        "checkpoint": {
            "id": c.id,
            "parent": c.parent,
            "event": c.kind,
            "created_at": c.created_at,
        },
        "model": s.info.model,
        "created_at": s.info.created_at,
        "task": c.task.model_dump(mode="json") | {"current_step": c.task.current_step},
        "usage": c.usage.model_dump(mode="json"),
        "snapshot_bytes": view.snapshot_bytes,
        "forked_from": s.info.forked_from,
        "forks": list(view.forks),
        "sandbox": s.info.sandbox,
        "network": s.info.network,
        "workspace": s.info.workspace,
        "allow": list(s.info.spec.allow),
        "pass_env": list(s.info.spec.pass_env),
        "script": s.info.spec.script is not None,
        "settings": view.trust,  # own, accepted, or null: resume asks before they count
        "context_tokens": s.context_tokens,
        "context": {
            "tokens": s.context_tokens,
            "tools_tokens": c.task.tools_tokens,
            "token_ratio": c.task.token_ratio,
            "budget": budget.prompt_limit,
            "window": budget.window,
            "reply_reserve": budget.reply_reserve,
            "window_source": budget.source,
            "strategy": view.strategy,
            "tokenizer": s.info.tokenizer,
            "approximate": s.info.approximate_tokens,
        },
        "messages": [m.model_dump(mode="json", exclude_defaults=True) for m in s.messages],
    }


def show_session(view: SessionView) -> None:
    s, budget = view.session, view.budget
    task = s.task
    c = s.checkpoint
    out.print(
        f"[bold]session {escape(s.info.id)}[/]  {_state(s.state.value)}  at checkpoint {c.id}"
    )
    for n, earlier in enumerate(task.earlier, 1):
        outcome = f" ({earlier.outcome.value})" if earlier.outcome else ""
        out.print(f"[dim]goal {n}:   {escape(earlier.goal)}{outcome}[/]")
        if earlier.result:
            out.print(f"[dim]  result: {escape(earlier.result)}[/]")
    label = f"goal {len(task.earlier) + 1}:" if task.earlier else "goal:"
    out.print(f"{label:<9} {escape(task.goal)}")
    out.print(
        f"model:    {escape(s.info.model)}   "
        f"created {escape(s.info.created_at[:19].replace('T', ' '))}"
    )
    if task.plan:
        out.print("plan:")
        for n, step in enumerate(task.plan):
            working = s.state.value != "done"  # a done session has no step in progress
            mark = (
                "[green]✓[/]"
                if n < task.current_step
                else ("[blue]▶[/]" if n == task.current_step and working else " ")
            )
            extra = f" — {escape(task.completed[n].summary)}" if n < task.current_step else ""
            out.print(f"  {mark} {n + 1}. {escape(step)}{extra}")
    if task.data:
        out.print("data:     " + escape(json.dumps(task.data, ensure_ascii=False)))
    if task.pending_question:
        out.print(f"[yellow]question: {escape(task.pending_question.question)}[/]")
    for found in task.instructions:
        out.print(
            f"instructions: {escape(found.path)} ({found.chars} characters, "
            f"sha256 {found.sha256[:12]})"
        )
    out.print(
        "approvals: writes and commands run without asking (--yes; resume --ask to undo)"
        if task.auto_approve
        else "approvals: asked before writes and commands"
    )
    for grant in task.grants:
        if grant.session == s.info.id:  # a fork does not inherit its origin's
            what = f"{grant.tool}: {grant.command}" if grant.command is not None else grant.tool
            out.print(f"  allowed for this session: {escape(what)} (answer a at #{grant.at})")
    if task.last_error:
        out.print(f"[red]error:    {escape(task.last_error)}[/]")
    if task.outcome:
        out.print(f"outcome:  {task.outcome.value}")
    if task.result:
        out.print(f"result:   {escape(task.result)}")
    _show_files_and_forks(view)
    _show_settings(view)
    u = c.usage
    if u.calls and u.unreported == u.calls:
        out.print(f"usage:    {u.calls} model calls; usage not reported by the server")
    else:
        unreported = f" ({u.unreported} calls' usage not reported)" if u.unreported else ""
        out.print(
            f"usage:    {plural(u.calls, 'model call')}, {u.prompt_tokens:,} prompt + "
            f"{u.completion_tokens:,} completion tokens{unreported}"
        )
    if s.info.approximate_tokens is None:
        counted = "counted by an older agentctl"
    else:
        exact = "approximate" if s.info.approximate_tokens else "exact"
        counted = f"{exact}, {s.info.tokenizer}"
        if task.token_ratio is not None:
            counted += f"; the server counts {task.token_ratio:g}x"
    tools = task.tools_tokens
    sent = s.context_tokens + (tools or 0)
    with_tools = f" (+{tools:,} for the tool schemas)" if tools else ""
    out.print(
        f"context:  {sent:,} of {budget.prompt_limit:,} tokens: {s.context_tokens:,} in "
        f"{len(s.messages)} messages{with_tools} ({counted}); window {budget.window:,} "
        f"({escape(budget.source)}) less {budget.reply_reserve:,} for the reply; "
        f"when full: {view.strategy}"
    )


def result(text: str) -> None:
    """A session's result on stdout: the model's words, printed as they are."""
    plain(out, text)


def setting_written(key: str, value: str | None, path: Path | None) -> None:
    """`config set`/`profile set` echo: the value as data, never markup."""
    shown = "removed" if value is None else f"= {escape(value)}"
    where = f"  [dim]({escape(str(path))})[/]" if path else ""
    out.print(f"{escape(key)} {shown}{where}")


def rolled_back(report: RollbackReport) -> None:
    head = report.head
    if report.dry_run:
        out.print(f"a rollback to checkpoint {report.target} would change:")
    elif report.conversation:
        out.print(
            f"session rolled back to checkpoint {report.target} ({head.to_state.value}); "
            f"new head is checkpoint {head.id}"
        )
    else:
        out.print(
            f"workspace files put back as at checkpoint {report.target}; the conversation "
            f"stays (new head is checkpoint {head.id})"
        )
    if report.files is not None:
        if report.forward:  # to a later checkpoint (another branch): nothing is "reverted"
            verbs = {"A": "added", "D": "removed", "M": "updated", "T": "updated"}
        else:
            verbs = {"A": "restored", "D": "removed", "M": "reverted", "T": "reverted"}
        for status, path in report.files[:50]:
            out.print(f"  {verbs.get(status, status)}  {escape(flat(path))}")
        if len(report.files) > 50:
            out.print(f"  … and {len(report.files) - 50} more")
        if not report.files:
            out.print("  no files differ")
    if report.not_restored:
        names = ", ".join(flat(n) for n in report.not_restored[:10])
        more = f" and {len(report.not_restored) - 10} more" if len(report.not_restored) > 10 else ""
        note(
            "left as they are (not captured now: ignored, over a snapshot cap, agentctl's own, "
            f"or a name git refuses): {names}{more}"
        )
    if report.files_note:
        note(report.files_note)
    if report.kept_preferences:
        names = ", ".join(report.kept_preferences)
        note(
            f"preferences remembered after checkpoint {report.target} stay in your profile: "
            f"{names} (agentctl profile unset KEY removes one)"
        )
    commands, calls = report.commands, report.outside_calls
    if commands:
        count = len(commands)
        listed = "; ".join(commands[:5]) + (" …" if count > 5 else "")
        note(
            f"{count} command{'s' if count > 1 else ''} after checkpoint {report.target} ran "
            f"unsandboxed or with network and may have changed things outside the workspace, "
            f"which a rollback cannot undo: {listed}"
        )
    if calls:
        count = len(calls)
        listed = ", ".join(calls[:5]) + (" …" if count > 5 else "")
        note(
            f"{count} tool call{'s' if count > 1 else ''} after checkpoint {report.target} may "
            "have changed things outside the workspace (the workspace files are restored), "
            f"which a rollback cannot undo: {listed}"
        )


def imported(report: ImportReport) -> None:
    sid = escape(report.session_id)
    source = escape(report.source_id)
    renamed = f" (exported as {source})" if report.source_id != report.session_id else ""
    if report.added == 0:
        out.print(
            f"session {sid}{renamed} is already here, all {report.checkpoints} "
            "checkpoints; nothing to import"
        )
        return
    out.print(
        f"imported session {sid}{renamed}: {report.added} of "
        f"{report.checkpoints} checkpoints, verified"
    )
    if report.settings:
        out.print(f"its settings: {escape(report.settings)}")
        out.print(
            "it grants itself nothing: resume shows these and asks you to accept them "
            f"(agentctl resume {sid} --accept-settings)"
        )


def moved(report: MoveReport) -> None:
    out.print(
        f"moved session {escape(report.session_id)} ({report.checkpoints} checkpoints, "
        "verified) to "
        f"{escape(report.to)}; this store keeps a read-only record of it"
    )
    try_next(report.resume)


def workspace_diff(diff: WorkspaceDiff, as_json: bool) -> None:
    """The patch is file content: every line is shown as text (control characters visible),
    coloured here by its first character, never by escape codes from the files or from git."""
    if as_json:
        print_json(
            {
                "session": diff.session_id,
                "from": diff.old,
                "to": diff.new,
                "files": [{"status": s, "path": p} for s, p in diff.files],
                "diff": diff.text,
            }
        )
        return
    if not diff.files:
        note(f"no workspace changes from checkpoint {diff.old} to {diff.new}")
        return
    styles = {"+": "green", "-": "red", "@": "cyan"}
    for line in diff.text.splitlines():
        text = escape(visible(line))
        header = line.startswith(("+++", "---", "diff ", "index "))
        style = "bold" if header else styles.get(line[:1])
        out.print(f"[{style}]{text}[/]" if style else text)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def forked(new_id: str, at: int) -> None:
    out.print(f"forked: session {new_id}, from checkpoint {at}")
    try_next(f"agentctl resume {new_id}")


def ask_yes(question: str) -> bool:
    err.print(f"{escape(question)} [y/N] ", end="")
    try:
        return input().strip().lower() in ("y", "yes")
    except EOFError:
        return False


def prune_list(doomed: list[Doomed], dry_run: bool) -> None:
    if not doomed:
        note("no session matches: nothing to delete")
        return
    verb = "would delete" if dry_run else "to delete"
    total = sum(d.bytes for d in doomed)
    lines = [f"{verb} {plural(len(doomed), 'session')}, {human_bytes(total)}:"]
    labels = [
        f"{d.summary.name} ({d.summary.id})" if d.summary.name else d.summary.id for d in doomed
    ]
    sizes = [human_bytes(d.bytes) for d in doomed]
    label_w = max(map(len, map(visible, labels)))
    state_w = max(len(d.summary.state) for d in doomed)
    size_w = max(map(len, sizes))
    width = table_width()
    goal_w = None if width is None else max(10, width - (2 + label_w + state_w + 10 + size_w + 8))
    for d, label, size in zip(doomed, labels, sizes, strict=True):
        s = d.summary
        lines.append(
            f"  {escape(label)}{' ' * (label_w - len(visible(label)))}  {_state(s.state)}"
            f"{' ' * (state_w - len(s.state))}  {escape(s.updated_at[:10]):10}  "
            f"{size:>{size_w}}  {escape(fit(s.title or s.goal, goal_w))}"
        )
    _print_lines(lines)


def shared_snapshots(shared: list[SharedSnapshots], dry_run: bool) -> None:
    """Snapshot stores sessions of other stores (or moved copies) also name."""
    if not shared:
        note("no workspace of this store shares its snapshots with another store")
        return
    verb = "would give back" if dry_run else "to give back"
    out.print(f"{verb}: the snapshots only these sessions of other stores name")
    for s in shared:
        others = ", ".join(s.others[:5]) + (" …" if len(s.others) > 5 else "")
        out.print(
            f"  {escape(flat(s.workspace))}  {human_bytes(s.bytes)}  "
            f"(also used by {escape(flat(others))})"
        )


def usage_table(rows: list[UsageRow], by: str, prices_taken: str, as_json: bool) -> None:
    if as_json:
        print_json(
            [
                {
                    by: r.key,
                    "sessions": r.sessions,
                    "calls": r.calls,
                    "prompt_tokens": r.prompt_tokens,
                    "completion_tokens": r.completion_tokens,
                    "cost_usd": None if r.cost is None else round(r.cost, 6),
                }
                for r in rows
            ]
        )
        return
    if not rows:
        note("no usage recorded")
        return
    width = max(len(by), *(len(r.key) for r in rows))
    lines = [f"[bold]{by:{width}}  sessions  calls  prompt tokens  completion tokens  cost[/]"]
    for r in rows:
        cost = "unpriced" if r.cost is None else f"${r.cost:.4f}"
        lines.append(
            f"{escape(r.key):{width}}  {r.sessions:8,}  {r.calls:5,}  {r.prompt_tokens:13,}  "
            f"{r.completion_tokens:17,}  {cost}"
        )
    out.print("\n".join(lines))
    note(f"prices per million tokens as published on {prices_taken}; unpriced: not guessed")


def search_hits(hits: list[SearchHit], as_json: bool) -> None:
    from agentctl.domain.records import HIT_END, HIT_START

    if as_json:
        print_json(
            [
                {
                    "session": h.session_id,
                    "checkpoint": h.checkpoint,
                    "role": h.role,
                    "snippet": h.snippet.replace(HIT_START, "").replace(HIT_END, ""),
                }
                for h in hits
            ]
        )
        return
    if not hits:
        note("no message matches")
        return
    lines = []
    for h in hits:
        shown = escape(visible(h.snippet))
        shown = shown.replace(HIT_START, "[bold yellow]").replace(HIT_END, "[/]")
        role = escape(visible(h.role))
        lines.append(
            f"{escape(h.session_id)}  #{h.checkpoint:<4} {role}{' ' * (9 - len(h.role))}  {shown}"
        )
    print_fitted(lines)  # one row per hit, cut at a word on a terminal


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
            + f"{_state(s.state)}{' ' * (state_w - len(s.state))}  "
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
