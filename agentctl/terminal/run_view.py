"""The live view of a run on stderr: a header naming session, model and server; each tool
call with its subject; a command's output (its first and last lines); every write's diff
however it was approved; what a read read; a spinner with the elapsed time while the model
thinks or a command runs; tokens and time per model turn; and a summary at the end.

The decision a reader must know: it draws only from run events (records.py), the same ones
the JSON stream writes, and prints each thing once, as it happens. Text from the model, a
tool or a file is data: control characters shown, never markup. On a terminal lines are cut
to its width (and coloured); piped, nothing is cut or coloured, and no spinner runs.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agentctl.config import DEFAULT_PREVIEW_LINES
from agentctl.domain.checkpoints import QuestionDetail, ToolDetail
from agentctl.terminal.ask import APPROVAL_ANSWERS, question_markup, read_line
from agentctl.terminal.describe import describe_checkpoint, sandboxed
from agentctl.terminal.event_stream import output_preview, split_exit
from agentctl.terminal.render import (
    err,
    escape,
    fit,
    human_bytes,
    note,
    plural,
    styled,
    visible,
)
from agentctl.terminal.render import line as print_line

if TYPE_CHECKING:
    from agentctl.domain.records import RunEvent, RunReport, SessionStarted, ToolStarted, TurnUsage
    from agentctl.domain.session import Checkpoint, Message, PendingQuestion

DIFF_STYLES = {"+": "green", "-": "red", "@": "cyan"}


class _Spinner:
    """A line that spins and counts the seconds since it began, drawn by a thread of its own
    that lives as long as the view. Starting and stopping it is a flag, and stopping it one
    write that clears the line, under a lock the drawing takes too, so nothing is drawn after
    `stop` returns: it sits between a model's last byte and the next request, where rich's
    Status (a thread started and joined per spin, a redraw) cost about 2 ms a turn."""

    FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"  # rich's "dots"
    TICK_S = 0.08

    def __init__(self, write: Callable[[str], None], color: bool) -> None:
        self._write = write
        self._dim = ("\x1b[2m", "\x1b[0m") if color else ("", "")
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._label: str | None = None
        self._began = 0.0
        self._shown = False
        self._thread: threading.Thread | None = None

    def start(self, label: str) -> None:
        with self._lock:
            self._label, self._began = label, time.monotonic()
        if self._thread is None:
            self._thread = threading.Thread(target=self._draw, name="spinner", daemon=True)
            self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        with self._lock:
            self._label = None
            if self._shown:
                self._write("\r\x1b[2K")
                self._shown = False

    def _draw(self) -> None:
        frame = 0
        while True:
            self._wake.wait()
            with self._lock:
                if self._label is None:
                    self._wake.clear()
                    continue
                seconds = time.monotonic() - self._began
                on, off = self._dim
                shown = f"{self.FRAMES[frame % len(self.FRAMES)]} {on}{self._label} {seconds:.1f} s"
                self._write(f"\r\x1b[2K{shown}{off}")
                self._shown = True
            frame += 1
            time.sleep(self.TICK_S)


def diff_lines(text: str) -> list[str]:
    """A unified diff as markup: each line shown as text, coloured by its first character."""
    lines = []
    for line in text.splitlines():
        shown = escape(line)
        header = line.startswith(("+++", "---"))
        style = "bold" if header else DIFF_STYLES.get(line[:1])
        lines.append(f"[{style}]{shown}[/]" if style else shown)
    return lines


class RunView:
    """Turns run events into terminal output; remembers the session id for the last word."""

    def __init__(self, quiet: bool = False, preview_lines: int | None = None) -> None:
        self.quiet = quiet
        self.preview_lines = DEFAULT_PREVIEW_LINES if preview_lines is None else preview_lines
        self.session_id: str | None = None
        # An error checkpoint's line waits for the next event: when the run stops on that
        # error, the one error line comes from the caller, so it is never printed twice.
        self._held_error: str | None = None
        self._header: SessionStarted | None = None
        self._kept = True  # the store outlives the command: offer what continues the session
        self._notices: list[str] = []  # said while the header is held: after it
        self._spinner: _Spinner | None = None
        self._spinning = False
        self._streaming = False
        self._asked: set[str] = set()  # calls whose approval question showed their diff here
        self._running: dict[str, tuple[ToolStarted, float]] = {}
        self._began = time.monotonic()
        self._turns = 0
        self._usage = [0, 0, 0]  # input, cached input, output tokens of this run
        self._price: tuple[float, float] | None = None
        self._shown_question: str | None = None  # the question the last line printed
        self.elsewhere = False  # following a session another process runs (Notice.elsewhere)

    # -- the prompt --------------------------------------------------------------------------

    def ask(
        self, question: PendingQuestion, answered_elsewhere: Callable[[], bool] | None = None
    ) -> str | None:
        """Ask at the terminal (None without one, or at Ctrl-D). The question is printed once:
        not again when the run's own line just showed it. An approval lists its answers; an
        empty answer to a question asks again. `answered_elsewhere` is polled while waiting
        (read_line): the question may be answered from another terminal."""
        if not sys.stdin.isatty():
            return None
        self.flush()
        self.close()
        if self._shown_question != question.question:
            err.print(question_markup(question.question))
        self._shown_question = None
        if question.kind == "approval":
            err.print(f"[dim]{APPROVAL_ANSWERS}[/]")
        while True:
            text = read_line("[bold]> [/]", answered_elsewhere)
            if text is None or text.strip() or question.kind == "approval":
                return text
            err.print("[dim]an empty answer is no answer: type one (Ctrl-D stops here)[/]")

    # -- the events --------------------------------------------------------------------------

    def flush(self) -> None:
        """Print what was held: the header, an error line the run went on after."""
        header, self._header = self._header, None
        notices, self._notices = self._notices, []
        if header is not None and not self.quiet:
            self._print_header(header)
        for text in notices if not self.quiet else ():
            note(text)
        if self._held_error is not None:
            err.print(self._held_error)
            self._held_error = None

    def __call__(self, event: RunEvent) -> None:
        from agentctl.domain.records import (
            Checkpointed,
            ModelCallStarted,
            Notice,
            SessionStarted,
            TextDelta,
            ToolStarted,
            TurnUsage,
        )

        if isinstance(event, SessionStarted):
            self.session_id, self._price = event.session_id, event.price
            self._kept = not event.store.startswith("memory:")  # gone with this process
            self._header = event  # printed with the first checkpoint: after the request
            return
        if isinstance(event, Notice):
            self.session_id = event.session_id or self.session_id
            self.elsewhere = self.elsewhere or event.elsewhere
            if self._header is not None:
                self._notices.append(event.text)  # the header comes first
            elif not self.quiet:
                self._stop_spinner()
                note(event.text)
            return
        self.flush()
        if isinstance(event, TurnUsage):
            self._turns += 1
            counts = (event.input_tokens, event.cached_input_tokens, event.output_tokens)
            self._usage = [a + b for a, b in zip(self._usage, counts, strict=True)]
        if self.quiet:
            return
        if isinstance(event, ModelCallStarted):
            self._spin("thinking…")
        elif isinstance(event, TextDelta):
            self._stop_spinner()
            if not self._streaming:
                err.print("[bold]assistant:[/] ", end="")
                self._streaming = True
            err.print(escape(event.text), end="")
        elif isinstance(event, TurnUsage):
            self._end_text()
            self._turn(event)
        elif isinstance(event, ToolStarted):
            self._end_text()
            self._tool_started(event)
        elif isinstance(event, Checkpointed):
            self._end_text()
            self._checkpoint(event.checkpoint, event.messages)

    def close(self) -> None:
        self._end_text()

    # -- lines -------------------------------------------------------------------------------

    def _print_header(self, h: SessionStarted) -> None:
        if h.resumed_at is None:
            first = f"[bold]session {escape(h.session_id)}[/] started"
        else:
            first = f"resuming session {escape(h.session_id)} at checkpoint {h.resumed_at}"
        err.print(f"{first} · model [bold]{escape(h.model)}[/] · server {escape(h.server)}")
        where = f"  [dim]store {escape(h.store)}"
        if h.workspace:
            where += f" · workspace {escape(h.workspace)}"
        if h.sandbox:
            where += f" · sandbox {escape(h.sandbox)}"
        err.print(where + "[/]")

    def _turn(self, t: TurnUsage) -> None:
        if not t.reported:
            tokens = "tokens not reported"
        else:
            cached = f" ({t.cached_input_tokens:,} cached)" if t.cached_input_tokens else ""
            tokens = f"{t.input_tokens:,} in{cached} / {t.output_tokens:,} out tokens"
        styled((("  ", None), (f"turn {self._turns}: {tokens} · {t.seconds:.1f} s", "dim")))

    def _tool_started(self, event: ToolStarted) -> None:
        width = self._width()
        what = fit(visible(event.subject), None if width is None else width - 4)
        shown = [f"[bold]●[/] {escape(event.tool)} {escape(what)}"]
        if event.preview and event.call_id not in self._asked:
            for line in event.preview.splitlines()[:1]:
                if line.startswith("("):  # (new file, N bytes) / (replaces …)
                    shown.append(f"  [dim]{escape(line)}[/]")
            body = "\n".join(
                line for line in event.preview.splitlines() if not line.startswith("(")
            )
            shown += [f"  {line}" for line in diff_lines(body)]
        # One print for the lines: rich's per-call work was most of a write_file turn's drawing.
        if len(shown) == 1:  # a read's, a command's: the line without its markup parsed
            styled((("●", "bold"), (f" {event.tool} {what}", None)))
        else:
            print_line("\n".join(shown))
        self._running[event.call_id] = (event, time.monotonic())
        if event.side_effect == "exec":
            self._spin("running…")

    def _checkpoint(self, c: Checkpoint, messages: tuple[Message, ...]) -> None:
        kind = c.kind.value
        if kind in ("model_reply", "tool_started"):
            return  # said by the turn's line and the tool's own line (its detail not parsed)
        detail = c.typed_detail()
        if kind == "tool_result" and isinstance(detail, ToolDetail):
            self._stop_spinner()
            self._tool_finished(c, detail, messages)
            return
        if kind == "needs_input" and isinstance(detail, QuestionDetail) and detail.approval:
            pending = c.task.pending_question
            if pending is not None and pending.tool_call_id:
                self._asked.add(pending.tool_call_id)
        line = describe_checkpoint(kind, c.detail)
        self._shown_question = None
        if kind == "needs_input" and isinstance(detail, QuestionDetail):
            # The whole question, an approval's diff coloured; the prompt does not repeat it.
            line = question_markup(detail.question)
            self._shown_question = detail.question
        if kind == "error":
            self._held_error = f"[dim]#{c.id}[/] {line}"
        elif line:
            print_line(f"[dim]#{c.id}[/] {line}")

    def _tool_finished(
        self, c: Checkpoint, detail: ToolDetail, messages: tuple[Message, ...]
    ) -> None:
        content = next((m.content or "" for m in messages if m.role == "tool"), "")
        call_id = next((m.tool_call_id for m in messages if m.role == "tool"), None)
        started = self._running.pop(call_id or "", None)
        took = f" · {time.monotonic() - started[1]:.1f} s" if started else ""
        files = ""
        if detail.files:
            files = f" · [yellow]{plural(detail.files, 'file')} changed[/]"
        if started is None:  # refused before it ran: the tool's name was not said yet
            print_line(f"[bold]●[/] {escape(detail.tool)}")
        side_effect = started[0].side_effect if started else detail.side_effect
        status, output = split_exit(content)
        if side_effect == "exec" and status is not None:
            mark = "[red]✗[/]" if detail.error else "[green]✓[/]"
            print_line(f"  {mark} {escape(status)}{took}{files}{sandboxed(detail)}")
            self._output(output)
        elif detail.error:
            print_line(f"  [red]✗[/] {escape(detail.message or content.partition(chr(10))[0])}")
        elif side_effect == "read" or side_effect is None:
            lines = content.count("\n") + 1 if content else 0
            size = human_bytes(len(content.encode("utf-8", "replace")))
            print_line(f"  [dim]read {plural(lines, 'line')} ({size}){took}[/]")
        else:
            print_line(f"  [green]✓[/] {escape(content.partition(chr(10))[0])}{files}")

    def _output(self, text: str) -> None:
        if not text.strip() or self.preview_lines <= 0:
            return
        width = self._width()
        shown, _ = output_preview(text.strip("\n"), self.preview_lines)
        for line in shown:
            cut = fit(visible(line), None if width is None else width - 4)
            print_line(f"  [dim]│ {escape(cut)}[/]")

    # -- the end -----------------------------------------------------------------------------

    def finish(self, report: RunReport, exit_code: int, kept: bool = True) -> None:
        """The summary: turns, tokens, cost, wall time, files changed, and (where the store
        outlives the command: `kept`) the commands to resume, diff or roll back."""
        self.close()
        if self.quiet:
            return
        sid = report.session.info.id
        inp, cached, out = self._usage
        cost = ""
        if self._price is not None:
            dollars = (inp * self._price[0] + out * self._price[1]) / 1e6
            cost = f" · ${dollars:,.4f}"
        cached_text = f" ({cached:,} cached)" if cached else ""
        took = time.monotonic() - self._began
        err.print(
            f"[bold]─[/] {plural(self._turns, 'turn')} · {inp:,} in{cached_text} / {out:,} out "
            f"tokens{cost} · {took:.1f} s"
        )
        if report.changes:
            parts = []
            for ch in report.changes:
                counts = (
                    "binary"
                    if ch.added is None
                    else f"[green]+{ch.added:,}[/] [red]-{ch.removed or 0:,}[/]"
                )
                parts.append(f"{escape(visible(ch.path))} {counts}")
            err.print(f"  files: {', '.join(parts)}")
        commands: list[str] = []
        if report.session.state.value != "done":
            commands.append(f"resume: agentctl resume {sid}")
        if report.changes:
            commands.append(f"diff: agentctl diff {sid}")
            if report.started_at is not None:
                commands.append(f"roll back: agentctl rollback {sid} --to {report.started_at}")
        if commands and kept and self._kept:  # a memory: store keeps nothing to go back to
            err.print(f"  [dim]{escape(' · '.join(commands))}[/]")

    # -- the spinner -------------------------------------------------------------------------

    def _width(self) -> int | None:
        return err.width if err.is_terminal else None

    def _spin(self, label: str) -> None:
        self._stop_spinner()
        if err.is_terminal:
            if self._spinner is None:
                self._spinner = _Spinner(_writer(err.file), err.color_system is not None)
            self._spinner.start(label)
            self._spinning = True

    def _stop_spinner(self) -> None:
        if self._spinning and self._spinner is not None:
            self._spinner.stop()
            self._spinning = False

    def _end_text(self) -> None:
        self._stop_spinner()
        if self._streaming:
            err.print()
            self._streaming = False


def _writer(file: Any) -> Callable[[str], None]:
    def write(text: str) -> None:
        file.write(text)
        file.flush()

    return write
