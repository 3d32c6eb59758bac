"""All terminal output: rich tables, the live run view, prompts, and the --json forms.

The runner and the use cases report typed events and return plain records; this module alone
decides how they look. Progress goes to stderr so that stdout carries only results (and only
JSON with --json); without a terminal, output is plain text with no colour or spinner.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from pathlib import Path

    from rich.status import Status

    from agentctl.runner import RunEvent
    from agentctl.service import ConfigRow, Notice, SessionView
    from agentctl.state import UserProfile
    from agentctl.store.base import CheckpointSummary, SessionSummary
    from agentctl.verify import SessionReport

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

STATE_STYLE = {
    "idle": "dim",
    "planning": "cyan",
    "executing": "blue",
    "waiting_feedback": "yellow",
    "done": "green",
}


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def error(message: str, hint: str | None = None) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}")
    if hint:
        err.print(f"[dim]try:[/] {escape(hint)}")


def note(message: str) -> None:
    err.print(f"[dim]{escape(message)}[/]")


def _state(state: str) -> str:
    return f"[{STATE_STYLE.get(state, 'white')}]{state}[/]"


# -- the live view of a run ------------------------------------------------------------------


class RunView:
    """Turns runner events into terminal output; remembers the session id for the last word."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.session_id: str | None = None
        self._status: Status | None = None
        self._streaming = False

    def __call__(self, event: RunEvent | Notice) -> None:
        from agentctl.runner import Checkpointed, ModelCallStarted, TextDelta
        from agentctl.service import Notice

        if isinstance(event, Notice):
            self.session_id = event.session_id or self.session_id
            if not self.quiet:
                note(event.text)
            return
        if self.quiet:
            return
        if isinstance(event, ModelCallStarted):
            if err.is_terminal:
                self._status = err.status("thinking…", spinner="dots")
                self._status.start()
        elif isinstance(event, TextDelta):
            self._stop_spinner()
            if not self._streaming:
                err.print("[bold]assistant:[/] ", end="")
                self._streaming = True
            err.print(escape(event.text), end="")
        elif isinstance(event, Checkpointed):
            self._stop_spinner()
            if self._streaming:
                err.print()
                self._streaming = False
            line = describe_checkpoint(event.checkpoint.event, event.checkpoint.detail)
            if line:
                err.print(f"[dim]#{event.checkpoint.id}[/] {line}")

    def _stop_spinner(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def close(self) -> None:
        self._stop_spinner()
        if self._streaming:
            err.print()
            self._streaming = False


def describe_checkpoint(event: str, detail: dict[str, Any]) -> str:
    """One line of markup for a checkpoint, as the live view and `history` show it."""
    e = escape
    if event == "new_task":
        return "[cyan]planning[/]"
    if event == "model_reply":
        tools = detail.get("tools") or []
        return (
            f"[dim]model replied[/] → {e(', '.join(tools))}" if tools else "[dim]model replied[/]"
        )
    if event == "plan_ready":
        steps = detail.get("steps", [])
        return "[cyan]plan:[/] " + "; ".join(f"{n}. {e(s)}" for n, s in enumerate(steps, 1))
    if event == "plan_revised":
        return "[cyan]plan revised:[/] " + "; ".join(e(s) for s in detail.get("steps", []))
    if event == "step_complete":
        return f"[green]✓[/] {e(detail.get('step', ''))}: {e(detail.get('summary', ''))}"
    if event == "needs_input":
        return f"[yellow]? {e(detail.get('question', ''))}[/]"
    if event == "input_received":
        return f"[yellow]←[/] {e(detail.get('input', ''))}"
    if event == "task_complete":
        return f"[green]done[/] ({e(detail.get('outcome', ''))})"
    if event == "remember":
        return f"remembered {e(detail.get('key', ''))} = {e(detail.get('value', ''))}"
    if event == "tool_started":
        return f"[dim]running {e(detail.get('tool', ''))}…[/]"
    if event == "tool_result":
        if detail.get("error"):
            return f"[red]✗ {e(detail.get('tool', ''))}:[/] {e(detail.get('message', 'failed'))}"
        return f"[dim]{e(detail.get('tool', ''))} ok[/]"
    if event == "nudge":
        return "[dim]reminded the model to call a tool[/]"
    if event == "error":
        return f"[red]error:[/] {e(detail.get('error', ''))}"
    if event == "context_compacted":
        how = "summarized" if detail.get("strategy") == "summarize" else "dropped"
        return (
            f"[magenta]context compacted:[/] {detail.get('dropped')} older messages {how} "
            f"({detail.get('tokens_before')} → {detail.get('tokens_after')} tokens)"
        )
    if event == "rollback":
        return f"[magenta]rolled back[/] from #{detail.get('from')} to #{detail.get('to')}"
    return e(event)


def ask(question: str) -> str | None:
    """Ask at the terminal; None when there is no terminal to ask at."""
    if not sys.stdin.isatty():
        return None
    err.print(f"[bold yellow]?[/] {escape(question)}")
    try:
        return err.input("[bold]> [/]")
    except EOFError:
        return None


# -- results ---------------------------------------------------------------------------------


def summary_json(s: SessionSummary) -> dict[str, Any]:
    return {
        "id": s.id,
        "state": s.state,
        "goal": s.goal,
        "title": s.title,
        "head": s.head,
        "outcome": s.outcome,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
    }


def sessions_table(sessions: list[SessionSummary]) -> None:
    """One line per session, padded by hand (a rich Table of 100 rows costs 0.1 s of start-up)."""
    if not sessions:
        note("no sessions yet: start one with agentctl run TASK")
        return
    states = [
        s.state if s.state != "done" or not s.outcome else f"done ({s.outcome})" for s in sessions
    ]
    id_w = max(2, *(len(s.id) for s in sessions))
    state_w = max(5, *map(len, states))
    head_w = max(4, *(len(str(s.head)) for s in sessions))
    fixed = id_w + state_w + head_w + 19 + 8
    goal_w = max(20, out.width - fixed)
    lines = [
        f"[bold]{'id':{id_w}}  {'state':{state_w}}  {'head':>{head_w}}  {'updated':19}  goal[/]"
    ]
    for s, state in zip(sessions, states, strict=True):
        goal = s.title or s.goal
        if len(goal) > goal_w:
            goal = goal[: goal_w - 1] + "…"
        lines.append(
            f"{s.id:{id_w}}  {_state(s.state)}{state[len(s.state) :]}"
            f"{' ' * (state_w - len(state))}  {s.head:>{head_w}}  "
            f"{s.updated_at[:19].replace('T', ' '):19}  {escape(goal)}"
        )
    out.print("\n".join(lines))


def checkpoint_json(c: CheckpointSummary) -> dict[str, Any]:
    return {
        "id": c.id,
        "parent": c.parent,
        "event": c.event,
        "from_state": c.from_state,
        "to_state": c.to_state,
        "created_at": c.created_at,
        "detail": c.detail,
    }


def history_table(session_id: str, history: list[CheckpointSummary]) -> None:
    """One line per checkpoint. Not a rich Table: measuring 1,000 rows of cells took 0.6 s, and
    a long history is exactly when a user wants it fast. Columns are padded by hand instead."""
    head = history[-1].id if history else None
    id_width = max(len("#"), len(str(head or 0)))
    transitions = [
        c.from_state if c.from_state == c.to_state else f"{c.from_state} → {c.to_state}"
        for c in history
    ]
    t_width = max([len("transition"), *map(len, transitions)])
    lines = [
        f"[bold]session {session_id}[/]",
        f"[bold]{'#':>{id_width}}  {'parent':>{id_width + 1}}  {'time':8}  "
        f"{'transition':{t_width}}  event[/]",
    ]
    for c, text in zip(history, transitions, strict=True):
        parent = "" if c.parent is None else str(c.parent)
        fork = c.parent is not None and c.parent != c.id - 1  # branches off an older checkpoint
        parent_cell = f"{parent:>{id_width + 1}}"
        if fork:
            parent_cell = f"[magenta]{parent_cell}[/]"
        styled = text
        for state in {c.from_state, c.to_state}:
            styled = styled.replace(state, _state(state))
        marker = " [bold]← head[/]" if c.id == head else ""
        lines.append(
            f"{c.id:>{id_width}}  {parent_cell}  {c.created_at[11:19]:8}  "
            f"{styled}{' ' * (t_width - len(text))}  "
            f"{describe_checkpoint(c.event, c.detail)}{marker}"
        )
    out.print("\n".join(lines))


def verify_report(store_problems: list[str], reports: list[SessionReport]) -> None:
    for problem in store_problems:
        out.print(f"[red]store:[/] {escape(problem)}")
    for r in reports:
        if r.problems:
            out.print(
                f"[red]✗[/] {r.session_id}: {len(r.problems)} problems "
                f"in {r.checkpoints} checkpoints"
            )
            for problem in r.problems:
                out.print(f"    {escape(problem)}")
        else:
            out.print(f"[green]✓[/] {r.session_id}: {r.checkpoints} checkpoints")
    bad = sum(1 for r in reports if r.problems) + (1 if store_problems else 0)
    out.print(
        f"{len(reports)} sessions checked, "
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
            "event": c.event,
            "created_at": c.created_at,
        },
        "model": s.info.model,
        "created_at": s.info.created_at,
        "task": c.task.model_dump(mode="json") | {"current_step": c.task.current_step},
        "usage": c.usage.model_dump(mode="json"),
        "context_tokens": s.context_tokens,
        "context": {
            "tokens": s.context_tokens,
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
    out.print(f"[bold]session {s.info.id}[/]  {_state(s.state.value)}  at checkpoint {c.id}")
    out.print(f"goal:     {escape(task.goal)}")
    out.print(
        f"model:    {escape(s.info.model)}   created {s.info.created_at[:19].replace('T', ' ')}"
    )
    if task.plan:
        out.print("plan:")
        for n, step in enumerate(task.plan):
            mark = (
                "[green]✓[/]"
                if n < task.current_step
                else ("[blue]▶[/]" if n == task.current_step else " ")
            )
            extra = f" — {escape(task.completed[n].summary)}" if n < task.current_step else ""
            out.print(f"  {mark} {n + 1}. {escape(step)}{extra}")
    if task.data:
        out.print("data:     " + escape(json.dumps(task.data, ensure_ascii=False)))
    if task.pending_question:
        out.print(f"[yellow]question: {escape(task.pending_question.question)}[/]")
    if task.last_error:
        out.print(f"[red]error:    {escape(task.last_error)}[/]")
    if task.outcome:
        out.print(f"outcome:  {task.outcome.value}")
    if task.result:
        out.print(f"result:   {escape(task.result)}")
    u = c.usage
    out.print(
        f"usage:    {u.calls} model calls, {u.prompt_tokens} prompt + {u.completion_tokens} "
        "completion tokens"
    )
    if s.info.approximate_tokens is None:
        counted = "counted by an older agentctl"
    else:
        exact = "approximate" if s.info.approximate_tokens else "exact"
        counted = f"{exact}, {s.info.tokenizer}"
    out.print(
        f"context:  {s.context_tokens:,} of {budget.prompt_limit:,} tokens in {len(s.messages)} "
        f"messages ({counted}); window {budget.window:,} ({escape(budget.source)}) less "
        f"{budget.reply_reserve:,} for the reply; when full: {view.strategy}"
    )
