"""Use cases that read a session and change nothing: show, the conversation at a checkpoint,
history, verify, and the tools a task would get."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from agentctl.config import Settings
from agentctl.domain.records import SessionView
from agentctl.errors import (
    UsageError,
)
from agentctl.store.base import CheckpointSummary, HistoryTable, Store
from agentctl.usecases import wiring

if TYPE_CHECKING:
    from agentctl.domain.records import SessionReport, ToolArgument, ToolInfo
    from agentctl.domain.session import Session, TaskSpec
    from agentctl.domain.toolspec import ToolSpec
    from agentctl.tools import ToolRegistry


from agentctl.usecases.common import opened_store, read_task, resolve_session

# -- time travel ----------------------------------------------------------------------------


# -- reading --------------------------------------------------------------------------------


def show_session(settings: Settings, prefix: str, at: int | None = None) -> SessionView:
    from agentctl.errors import UnknownCheckpointError

    with opened_store(settings) as store:
        session_id = resolve_session(store, prefix)
        try:
            session = store.load(session_id, at)
        except UnknownCheckpointError as exc:
            raise UsageError(str(exc), hint=f"agentctl history {session_id}") from None
    spec = session.info.spec
    snapshots = wiring.snapshots(settings, session.info.workspace, lambda _e: None, create=False)
    with opened_store(settings) as store:
        from agentctl.usecases.sessions import forks_of

        forks = tuple(forks_of(store, session.info.id))
    from agentctl.usecases import trust

    granted = trust.lookup(settings, session.info)
    return SessionView(
        session,
        wiring.context_budget(settings, spec, session.info.model),
        wiring.compaction_strategy(settings, spec),
        snapshots.size() if snapshots is not None else None,
        forks,
        trust=None if granted is None else ("own" if granted.own else "accepted"),
        trust_since=granted.since if granted is not None else 0,
    )


def conversation(settings: Settings, prefix: str, at: int | None = None) -> Session:
    """A session at its head or at checkpoint `at`, with its conversation (the transcript)."""
    from agentctl.errors import UnknownCheckpointError

    with opened_store(settings) as store:
        session_id = resolve_session(store, prefix)
        try:
            return store.load(session_id, at)
        except UnknownCheckpointError as exc:
            raise UsageError(str(exc), hint=f"agentctl history {session_id}") from None


def verify(settings: Settings, prefix: str | None) -> tuple[list[str], list[SessionReport]]:
    from agentctl.usecases.verify import verify_store

    with opened_store(settings) as store:
        ids = [resolve_session(store, prefix)] if prefix else None
        return verify_store(store, ids)


def session_history(settings: Settings, prefix: str) -> tuple[str, list[CheckpointSummary]]:
    with opened_store(settings) as store:
        session_id = resolve_session(store, prefix)
        return session_id, store.history(session_id)


FIRST_PAGE = 200  # rows read before the first screen is shown: a screen or two
PAGE = 5000  # rows read at a time after it


def show_history(
    settings: Settings,
    prefix: str,
    limit: int | None,
    show: Callable[[str, HistoryTable], None],
) -> None:
    """`history`'s table, handed to `show` with its rows read as they are shown: a session
    with a kept listing (store/listing.py) gives its outline (the head, the transitions) from
    the listing's header and the rows after it, and its rows are read a page at a time from
    the table, so the first screen does not wait for 100,000 checkpoints. Without one, the
    history is read whole first, as it always was."""
    from agentctl.store.listing import outline

    with opened_store(settings) as store:
        session_id = resolve_session(store, prefix)
        shape = outline(store, session_id)
        if shape is None:
            show(session_id, HistoryTable.of(store.history(session_id), limit))
            return
        count = shape.head  # numbered 1..head: the listing's part was sound, the rest read
        if limit and limit < count:
            newest = store.history_page(session_id, count - limit)
            pairs = frozenset((c.from_state, c.to_state) for c in newest)
            show(session_id, HistoryTable(shape.head, count, pairs, newest, len(newest)))
            return
        rows = _pages(store, session_id, shape.head)
        show(session_id, HistoryTable(shape.head, count, shape.transitions, rows, count))


def _pages(store: Store, session_id: str, head: int) -> Iterator[CheckpointSummary]:
    after, size = 0, FIRST_PAGE
    while after < head:
        page = store.history_page(session_id, after, min(size, head - after))
        if not page:
            return
        yield from page
        after, size = page[-1].id, PAGE


def list_tools(settings: Settings, task: str | None, yes: bool = False) -> list[ToolInfo]:
    """The tools a task would get (the control tools, then the work tools), with their
    arguments, side-effect class and when a call asks first."""
    from agentctl.domain.session import TaskSpec

    spec = read_task(task) if task else TaskSpec(goal="(none)")
    root = str(Path.cwd())
    registry = wiring.work_tools(settings, root, spec, yes)
    try:
        return _listed(registry, spec, yes, auto=settings.approval == "auto-sandboxed")
    finally:
        registry.close()


def _listed(
    registry: ToolRegistry, spec: TaskSpec, yes: bool, auto: bool = False
) -> list[ToolInfo]:
    from agentctl.domain.records import ToolInfo
    from agentctl.loop import prompts
    from agentctl.tools import SideEffect, effects_of, named_by, spec_of

    listed = []
    for control in prompts.CONTROL_TOOLS:
        remember = control.name == prompts.REMEMBER
        ask = "asks unless --yes or allow names it" if remember else "never"
        args = _arguments(control)
        listed.append(ToolInfo(control.name, control.description, "control", args, ask))
    for name in registry.names:
        tool = registry.get(name)
        assert tool is not None
        if tool.side_effect is SideEffect.READ:
            ask = "never"
        elif yes:
            ask = "never (--yes)"
        else:
            rules = [r for r in spec.allow if named_by(tool, r.partition(":")[0].strip())]
            ask = "asks" + (f", unless allowed: {', '.join(rules)}" if rules else "")
            if auto and effects_of(tool).confined:
                ask = "never where the workspace is snapshotted (approval = auto-sandboxed)"
        effects = effects_of(tool)
        if effects.sandbox is not None:
            reach = ", with network" if effects.network else ""
            ask += f"; sandbox: {effects.sandbox}{reach}"
        arguments = _arguments(spec_of(tool))
        listed.append(ToolInfo(name, tool.description, tool.side_effect.value, arguments, ask))
    return listed


def _arguments(spec: ToolSpec) -> tuple[ToolArgument, ...]:
    from agentctl.domain.records import ToolArgument

    schema = spec.parameters or {}
    required = set(schema.get("required") or ())
    out = []
    for name, prop in (schema.get("properties") or {}).items():
        type_name = str(prop.get("type", "any"))
        if type_name == "array":
            type_name = f"array of {prop.get('items', {}).get('type', 'any')}s"
        out.append(
            ToolArgument(
                name, type_name, name in required, prop.get("description"), prop.get("default")
            )
        )
    return tuple(out)
