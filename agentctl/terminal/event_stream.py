"""The JSON event stream of `run`, `resume` and `watch --json`: one event per line, flushed at
once, each an object with a `type` and the schema version `v`, ending with a `result` event.

One decision a reader must know: every line is derived from the same run events the terminal
view gets (records.py), so the stream and the screen cannot tell different stories; a
checkpoint's line comes first, then the events it records (the message, the tool's result,
the question). No rich here: a script pays for none of it. A call is named by its subject, as
its tool said it (tools/: a path, `$ command`); the pure helpers that cut an output
(`output_preview`, `split_exit`) live here and serve the terminal view too.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agentctl.domain.checkpoints import QuestionDetail, ToolDetail
from agentctl.terminal.render import UNSAFE

if TYPE_CHECKING:
    from agentctl.domain.records import RunEvent, RunReport, SessionStarted, ToolStarted
    from agentctl.domain.session import Checkpoint, Message

VERSION = 1
OUTPUT_CHARS = 4_000  # of a tool's output in a `tool.finished` event (the store has it all)


def output_preview(text: str, lines: int) -> tuple[list[str], int]:
    """The first and last `lines` lines of an output, and how many were left out between
    (returned in their place as one marker line)."""
    every = text.splitlines()
    if len(every) <= 2 * lines:
        return every, 0
    left = len(every) - 2 * lines
    marker = f"… {left:,} more line{'s' if left != 1 else ''} …"
    return [*every[:lines], marker, *every[-lines:]] if lines else [marker], left


def split_exit(content: str) -> tuple[str | None, str]:
    """A shell result's status line (`exit 1`, `timed out …`) and the output after it."""
    first, _, rest = content.partition("\n")
    if first.startswith(("exit ", "timed out ")):
        return first, rest
    return None, content


def json_line(value: dict[str, Any]) -> str:
    """One line of strict JSON (a number that is not finite is null: json_forms.print_json): C0
    controls escaped by json, C1 controls and bidi overrides here."""
    from agentctl.terminal.json_forms import finite

    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        text = json.dumps(finite(value), ensure_ascii=False, separators=(",", ":"))
    return UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _write_stdout(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class StreamView:
    """Writes run events as JSON lines. `finish` writes the final `result` event; `failed` the
    result of a run that stopped on an error."""

    def __init__(self, write: Callable[[str], None] = _write_stdout) -> None:
        self._write = write
        self.session_id: str | None = None
        self._held: SessionStarted | None = None
        self._notices: list[str] = []  # said while the header is held: after it
        self._began = time.monotonic()
        self._turns = 0
        self._usage = [0, 0, 0]  # input, cached input, output tokens of this run
        self._price: tuple[float, float] | None = None

    def _emit(self, event_type: str, /, **fields: Any) -> None:
        self._write(json_line({"type": event_type, "v": VERSION, **fields}))

    def flush(self) -> None:
        """Write the header, held until the run's first checkpoint."""
        held, self._held = self._held, None
        notices, self._notices = self._notices, []
        if held is not None:
            self._emit(
                "session.started",
                session_id=held.session_id,
                model=held.model,
                server=held.server,
                store=held.store,
                workspace=held.workspace,
                resumed_at=held.resumed_at,
                sandbox=held.sandbox,
            )
        for text in notices:
            self._emit("notice", text=text)

    def close(self) -> None:
        self.flush()

    def __call__(self, event: RunEvent) -> None:
        from agentctl.domain.records import (
            Checkpointed,
            Notice,
            SessionStarted,
            ToolStarted,
            TurnUsage,
        )

        if isinstance(event, SessionStarted):
            self.session_id, self._price = event.session_id, event.price
            self._held = event
            return
        if isinstance(event, Notice):
            self.session_id = event.session_id or self.session_id
            if self._held is not None:
                self._notices.append(event.text)
            else:
                self._emit("notice", text=event.text)
            return
        self.flush()
        if isinstance(event, TurnUsage):
            self._turns += 1
            counts = (event.input_tokens, event.cached_input_tokens, event.output_tokens)
            self._usage = [a + b for a, b in zip(self._usage, counts, strict=True)]
            self._emit(
                "usage",
                input_tokens=event.input_tokens,
                cached_input_tokens=event.cached_input_tokens,
                output_tokens=event.output_tokens,
                duration_ms=round(event.seconds * 1000),
                reported=event.reported,
            )
        elif isinstance(event, ToolStarted):
            self._tool_started(event)
        elif isinstance(event, Checkpointed):
            self._checkpoint(event.checkpoint, event.messages)

    def _tool_started(self, event: ToolStarted) -> None:
        self._emit(
            "tool.started",
            call_id=event.call_id,
            tool=event.tool,
            subject=event.subject,
            arguments=event.arguments,
            side_effect=event.side_effect,
            diff=event.preview,
        )

    def _checkpoint(self, c: Checkpoint, messages: tuple[Message, ...]) -> None:
        self._emit(
            "checkpoint",
            number=c.id,
            parent=c.parent,
            kind=c.kind.value,
            from_state=c.from_state.value,
            to_state=c.to_state.value,
            created_at=c.created_at,
        )
        detail = c.typed_detail()
        kind = c.kind.value
        if kind == "model_reply":
            for m in messages:
                if m.role == "assistant" and m.content:
                    self._emit("message", role="assistant", text=m.content, checkpoint=c.id)
        elif kind == "tool_result" and isinstance(detail, ToolDetail):
            content = next((m.content or "" for m in messages if m.role == "tool"), "")
            call_id = next((m.tool_call_id for m in messages if m.role == "tool"), None)
            self._emit(
                "tool.finished",
                call_id=call_id or detail.tool_call_id,
                tool=detail.tool,
                status="error" if detail.error else "ok",
                output=content if len(content) <= OUTPUT_CHARS else _cut(content),
                output_chars=len(content),
                files_changed=detail.files,
                checkpoint=c.id,
            )
        elif kind == "needs_input" and isinstance(detail, QuestionDetail):
            pending = c.task.pending_question
            call_id = pending.tool_call_id if pending else None
            if detail.approval:
                self._emit(
                    "approval",
                    tool=detail.approval,
                    call_id=call_id,
                    question=detail.question,
                    checkpoint=c.id,
                )
            else:
                self._emit("question", question=detail.question, call_id=call_id, checkpoint=c.id)

    def _result_fields(self) -> dict[str, Any]:
        cost = None
        if self._price is not None:
            inp, _, out = self._usage
            cost = round((inp * self._price[0] + out * self._price[1]) / 1e6, 6)
        return {
            "duration_ms": round((time.monotonic() - self._began) * 1000),
            "num_turns": self._turns,
            "usage": {
                "input_tokens": self._usage[0],
                "cached_input_tokens": self._usage[1],
                "output_tokens": self._usage[2],
            },
            "total_cost_usd": cost,
        }

    def finish(self, report: RunReport, exit_code: int, kept: bool = True) -> None:
        """The final `result` event (the object `--json` printed alone before the stream)."""
        self.flush()
        session = report.session
        task = session.task
        self._emit(
            "result",
            session_id=session.info.id,
            id=session.info.id,
            state=session.state.value,
            stop=report.stop.value,
            outcome=task.outcome.value if task.outcome else None,
            is_error=exit_code not in (0, 3),
            exit_code=exit_code,
            head=session.checkpoint.id,
            question=task.pending_question.question if task.pending_question else None,
            result=task.result if task.result is not None else task.last_error,
            files_changed=[
                {"path": c.path, "added": c.added, "removed": c.removed} for c in report.changes
            ],
            **self._result_fields(),
        )

    def failed(self, message: str, exit_code: int) -> None:
        """The `result` of a run that stopped on an error (a model or store error, Ctrl-C)."""
        self.flush()
        self._emit(
            "result",
            session_id=self.session_id,
            id=self.session_id,
            state=None,
            stop="error",
            outcome=None,
            is_error=True,
            exit_code=exit_code,
            head=None,
            question=None,
            result=message,
            files_changed=[],
            **self._result_fields(),
        )


def _cut(text: str) -> str:
    half = OUTPUT_CHARS // 2
    return f"{text[:half]}\n[… {len(text) - 2 * half:,} characters cut …]\n{text[-half:]}"
