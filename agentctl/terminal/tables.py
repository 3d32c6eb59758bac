"""The listings: `list`, `prune`, `usage`, `search`, `verify`, `profile show`, `config show`.
One row per line, padded by hand (a rich Table of many rows costs start-up time), cut to a
terminal's width and whole when piped. Their --json forms are in json_forms.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentctl.terminal.render import (
    escape,
    fit,
    flat,
    human_bytes,
    note,
    out,
    plural,
    print_fitted,
    print_lines,
    print_whole,
    state_markup,
    table_width,
    visible,
)

if TYPE_CHECKING:
    from pathlib import Path

    from agentctl.domain.records import (
        ConfigRow,
        Doomed,
        SearchHit,
        SessionReport,
        SharedSnapshots,
        UsageRow,
    )
    from agentctl.domain.session import UserProfile
    from agentctl.store.base import SessionSummary


def queue_said(place: Any) -> str:
    """A session's place in a worker queue (store/pg_queue.Queued), as `list` shows it."""
    if place.status == "runnable":
        return f"queued: {place.queue}"
    if place.status == "running":
        return f"running on {place.worker}" if place.worker else "running"
    if place.status == "failed":
        return "failed (resume --detach retries)"
    return ""


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
            f"{escape(s.id):{id_w}}  {state_markup(s.state)}{escape(state[len(s.state) :])}"
            f"{' ' * (state_w - len(state))}  {s.head:>{head_w}}  "
            f"{s.updated_at[:19].replace('T', ' '):19}  {escape(goal)}"
        )
    print_lines(lines)


def verify_report(store_problems: list[str], reports: list[SessionReport]) -> None:
    """A line a session, and one per problem (render.print_whole)."""
    lines = [f"[red]store:[/] {escape(problem)}" for problem in store_problems]
    for r in reports:
        if r.problems:
            lines.append(
                f"[red]✗[/] {escape(r.session_id)}: {plural(len(r.problems), 'problem')} "
                f"in {plural(r.checkpoints, 'checkpoint')}"
            )
            lines.extend(f"    {escape(problem)}" for problem in r.problems)
        else:
            lines.append(
                f"[green]✓[/] {escape(r.session_id)}: {plural(r.checkpoints, 'checkpoint')}"
            )
    bad = sum(1 for r in reports if r.problems) + (1 if store_problems else 0)
    lines.append(
        f"{plural(len(reports), 'session')} checked, "
        + (f"[red]{bad} with problems[/]" if bad else "all sound")
    )
    print_whole(lines)


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
            f"  {escape(label)}{' ' * (label_w - len(visible(label)))}  {state_markup(s.state)}"
            f"{' ' * (state_w - len(s.state))}  {escape(s.updated_at[:10]):10}  "
            f"{size:>{size_w}}  {escape(fit(s.title or s.goal, goal_w))}"
        )
    print_lines(lines)


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


def usage_table(rows: list[UsageRow], by: str, prices_taken: str) -> None:
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


def search_hits(hits: list[SearchHit]) -> None:
    from agentctl.domain.records import HIT_END, HIT_START

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
