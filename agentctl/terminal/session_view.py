"""`show`: a session's detail (goal, plan, progress, settings and whose word they are, usage,
context budget); and `diff`: the workspace changes between two checkpoints, coloured by each
line's first character. Their --json forms are in json_forms.py; `show --transcript` is
transcript.py."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from agentctl.terminal.render import (
    escape,
    human_bytes,
    note,
    out,
    plural,
    state_markup,
    visible,
)

if TYPE_CHECKING:
    from agentctl.domain.records import SessionView, WorkspaceDiff


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


def show_session(view: SessionView) -> None:
    s, budget = view.session, view.budget
    task = s.task
    c = s.checkpoint
    out.print(
        f"[bold]session {escape(s.info.id)}[/]  {state_markup(s.state.value)}  at checkpoint {c.id}"
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


def workspace_diff(diff: WorkspaceDiff) -> None:
    """The patch is file content: every line is shown as text (control characters visible),
    coloured here by its first character, never by escape codes from the files or from git."""
    if not diff.files:
        note(f"no workspace changes from checkpoint {diff.old} to {diff.new}")
        return
    styles = {"+": "green", "-": "red", "@": "cyan"}
    for line in diff.text.splitlines():
        text = escape(visible(line))
        header = line.startswith(("+++", "---", "diff ", "index "))
        style = "bold" if header else styles.get(line[:1])
        out.print(f"[{style}]{text}[/]" if style else text)
