"""What every view of the terminal shares: the two consoles (stdout for results, stderr for
progress), outside text made visible (control characters shown, never markup), the one-line
error and note printers, counts and sizes in words, and fitting lines to the terminal.

The views are split by what they show (tables.py, history_view.py, session_view.py,
notices.py, json_forms.py, ask.py, run_view.py, event_stream.py, transcript.py,
tools_list.py); the decision a reader must know is that every one of them prints outside text
through `visible`/`escape` from here, and that rich is imported only when first used.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


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
    shown = visible(text)
    if "[" not in shown and not shown.endswith("\\"):  # what rich would leave as it is
        return shown
    from rich.markup import escape as escape_markup

    return escape_markup(shown)


def line(markup: str, console: Console = err) -> None:
    """One line of our markup, as `console.print(markup)` writes it (the same bytes: the same
    markup parse, styles and newline, through the console's own buffer, so capture and record
    see it), at less than half the cost: the run view prints three lines a turn, and `print`'s
    general path (options, size, measuring, wrapping) was 55 of its 60 us a line. Markup that
    holds a line break goes through `print` (which styles each line on its own)."""
    real = console._console if isinstance(console, _Console) else console
    if real is None or "\n" in markup or not hasattr(real, "_buffer"):
        console.print(markup)
        return
    from rich.segment import Segment

    text = real.render_str(markup)
    with real:
        real._buffer.extend(text.render(real))
        real._buffer.append(Segment.line())


def styled(pieces: Iterable[tuple[str, str | None]], console: Console = err) -> None:
    """One line of text pieces, each with its style (None: unstyled): the bytes rich prints for
    them, without the markup parse and the Text between, which were most of a line's cost
    inside a run (0.15 ms a line, with caches cold from the turn's other work): the run view's
    two lines on the way from a reply to its tool. Text is made `visible` here, and needs no
    markup escape (which rich gets wrong for a backslash before `[`); a piece holding a line
    break is printed as a Text (rich styles each line on its own)."""
    parts = [(visible(text), style) for text, style in pieces]
    real = console._console if isinstance(console, _Console) else console
    if real is None or not hasattr(real, "_buffer") or any("\n" in t for t, _ in parts):
        from rich.text import Text

        console.print(Text.assemble(*((t, s or "") for t, s in parts)))
        return
    from rich.segment import Segment

    with real:
        real._buffer.extend(
            Segment(text, real.get_style(style) if style else None) for text, style in parts if text
        )
        real._buffer.append(Segment.line())


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


ERROR_CHARS = 600  # an error is one line: what it quotes (a goal, a path, a server's text) is cut


def bounded(text: str, limit: int = ERROR_CHARS) -> str:
    """`text` at most about `limit` characters: its start and its end (where an error says
    what to do), with what was left out counted between them."""
    if len(text) <= limit:
        return text
    head, tail = limit * 2 // 3, limit // 4
    return f"{text[:head]} … [{len(text) - head - tail:,} characters left out] … {text[-tail:]}"


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


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


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


def state_markup(state: str) -> str:
    return f"[{STATE_STYLE.get(state, 'white')}]{escape(state)}[/]"


def print_lines(lines: list[str]) -> None:
    """Lines of markup: piped, as the plain text rich would show, without rich (`list --all`
    of 50,000 sessions spent seconds in it); on a terminal fitted to its width."""
    stream_lines(lambda markup: lines if markup else map(plain_text, lines))


def print_whole(lines: list[str]) -> None:
    """Lines of markup each read whole (a problem `verify` found): on a terminal by rich,
    wrapped to its width; piped, as the plain text rich would show, without rich and unwrapped
    (a verify of 50,000 sessions spent seconds in rich)."""
    maybe = sys.stdout.isatty() or any(k in os.environ for k in ("FORCE_COLOR", "TTY_INTERACTIVE"))
    if maybe and out.is_terminal:
        out.print("\n".join(lines))
        return
    stream_lines(lambda _markup: map(plain_text, lines))


# Markup tags as rich reads them (rich.markup.RE_TAGS): a sequence of backslashes, then `[`, a tag
# name's first character, anything but `[`, then `]`.
_TAG = re.compile(r"(\\*)\[([a-z#/@][^[]*?)]")


SCREEN_LINES = 64  # a terminal gets its first screen at once, then the rest in chunks this long


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
    # Asked of rich only when stdout may be a terminal: making the console imports rich (up
    # to 0.1 s of a piped history), and rich says "not a terminal" for a pipe anyway unless
    # told otherwise by the environment.
    maybe = sys.stdout.isatty() or any(k in os.environ for k in ("FORCE_COLOR", "TTY_INTERACTIVE"))
    if maybe and out.is_terminal:
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
