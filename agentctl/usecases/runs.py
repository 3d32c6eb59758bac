"""Use cases that run a session: start (or queue) a task, resume one, answer its question.

The one place that turns Settings into concrete things — a store from the URL, a model client
(the real `openai` one or the scripted server), a token counter — and hands them to the runner.
It knows nothing of rich or typer: progress goes out through the `on_event` callback.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from agentctl.config import Settings
from agentctl.domain.records import FileChange, Notice, RunReport, SessionStarted, Stop
from agentctl.errors import (
    AgentctlError,
    NotWaitingError,
    UnknownSessionError,
    UsageError,
)
from agentctl.store import Store
from agentctl.usecases import wiring
from agentctl.usecases.common import (
    Claimed,
    Prompt,
    _answered_elsewhere,
    held_lease,
    opened_store,
    refuse_if_damaged,
    refuse_if_moved,
    refuse_taken_name,
    resolve_session,
    unleased,
    valid_name,
    valid_tags,
)

if TYPE_CHECKING:
    from agentctl.domain.records import RunEvent
    from agentctl.domain.session import McpOffer, SessionInfo, TaskSpec
    from agentctl.tools import Effects, ToolRegistry
    from agentctl.usecases.trust import Trust
    from agentctl.workspace.snapshots import Snapshots


def start_session(
    settings: Settings,
    spec: TaskSpec,
    *,
    max_turns: int | None,
    ask: Prompt | None,
    on_event: Callable[[RunEvent], None],
    workspace: Path | None = None,
    yes: bool = False,
    tools: ToolRegistry | None = None,
    context_strategy: str | None = None,
    name: str | None = None,
    tags: Iterable[str] = (),
    sandbox: str | None = None,
    network: bool | None = None,
    detach: Detach | None = None,
) -> RunReport:
    """Start a session and run it here; with `detach`, record it and queue it for a worker
    (PostgreSQL only): nothing runs here and no model is called."""
    from agentctl.config import parse_value
    from agentctl.domain.session import SessionInfo, Task
    from agentctl.loop import prompts

    if detach is not None:
        needs_postgres(settings, "run --detach")
    if context_strategy is not None:  # kept in the spec: a resume goes on the same way
        parse_value("context_strategy", context_strategy, "--context-strategy")
        spec = spec.model_copy(update={"context_strategy": context_strategy})
    if sandbox is not None:  # kept in the spec too: a resume stays in the same sandbox
        parse_value("sandbox", sandbox, "--sandbox")
        spec = spec.model_copy(update={"sandbox": sandbox})
    if network is not None:
        spec = spec.model_copy(update={"network": network})

    from agentctl.loop import instructions

    name = valid_name(name) if name is not None else None
    labels = valid_tags(tags)
    model_name = wiring.choose_model(settings, spec, session_model=None)
    root = str(wiring.workspace(settings, workspace))
    if tools is None:
        wiring.probe_sandbox_soon(settings, spec)
    forbidden = wiring.forbidden_paths(settings)
    attached = instructions.attachments(spec.goal, root, forbidden)  # refused before a write
    project = instructions.read_instructions(root, forbidden, wiring.user_instructions(settings))
    with opened_store(settings, create=True) as store, ExitStack() as stack:
        if name is not None:
            refuse_taken_name(store, name)  # before anything is written
        header: list[RunEvent] = []  # said under the header, after the first request went out
        snapshots = None if detach else wiring.snapshots(settings, root, header.append)
        tools = tools or wiring.work_tools(
            settings, root, spec, yes, header.append, undoable=snapshots is not None
        )
        stack.callback(tools.close)  # MCP servers stop with the run
        wiring.preload(tools)  # the model client loads while MCP servers start
        tools.settle()  # before the header: what the servers said is said under it
        profile = store.load_profile()
        shell = _shell_effects(tools)
        info = SessionInfo(
            id=_new_id(store),
            spec=spec,
            model=model_name,
            created_at=wiring.now(),
            workspace=None if detach else root,  # a worker's own folder (worker.py)
            sandbox=shell.sandbox if shell else None,
            network=shell.network if shell else None,
        )
        # Views hold the header and what is said under it until the first checkpoint: nothing
        # is printed before the first request is out (the terminal UI loads with it).
        on_event(_started(settings, info.id, model_name, root, shell))
        for event in header:
            on_event(event)
        for found in project:
            on_event(
                Notice(f"project instructions: {found.path} ({found.record.chars} characters)")
            )
        runner = wiring.runner(settings, store, spec, model_name, stack, on_event, tools, snapshots)
        system = prompts.system_prompt(
            profile.preferences, spec.instructions, tools.names, instructions.prompt_text(project)
        )
        from agentctl.store.lease import Lease

        lease = Lease.mine(secrets.token_hex(8))
        turns = max_turns or spec.max_turns
        stack.callback(runner.close)
        # Theirs before it exists: a run killed at any point leaves no session of this user's
        # that resume would take for one from elsewhere.
        _grant_own(settings, info, on_event)
        # The first request goes out first; the rest happens while the model thinks.
        first = Task(  # --yes is remembered by the session, as are the instructions read
            goal=spec.goal,
            auto_approve=yes,
            instructions=tuple(f.record for f in project),
            mcp=_offers(tools, info.id),
        )
        # held from the start
        held = None if detach else lease
        runner.start(
            info, system, held, early=turns > 0 and not detach, task=first, attached=attached
        )
        if name is not None or labels:
            store.set_labels(info.id, name, labels)
        store.update_profile(lambda p: p.with_goal(spec.goal))
        if detach is not None:
            detach.enqueue(store, info.id)
            return RunReport(Stop.QUEUED, store.load(info.id), started_at=1)
        from agentctl.domain.records import AnsweredElsewhere

        with held_lease(store, info.id, lease) as holder:
            asking = unleased(store, info.id, holder, ask) if ask is not None else None
            try:
                result = runner.run(info.id, answer=None, ask=asking, max_turns=turns)
            except AnsweredElsewhere as exc:
                holder.release()
                return _answered_elsewhere(store, info.id, exc, on_event)
        changes = _changes(store, snapshots, info.id, 1, result.session.task.workspace_tree)
        return replace(result, changes=changes, started_at=1)


@dataclass(frozen=True)
class Detach:
    """run --detach: the queue, the priority and the workspace's source of a queued session."""

    queue: str | None = None
    priority: int | None = None
    repo: str | None = None
    ref: str | None = None

    def enqueue(self, store: Store, session_id: str, answer: tuple[str, int] | None = None) -> None:
        from agentctl.store import pg_queue

        source = pg_queue.Source(self.repo, self.ref) if self.repo else None
        text, head = answer if answer is not None else (None, None)
        pg_queue.on(store).with_connection(
            lambda conn: pg_queue.enqueue(
                conn,
                session_id,
                queue=self.queue,
                priority=self.priority,
                answer=text,
                answers=head,
                source=source,
            ),
            session_id,
        )


def needs_postgres(settings: Settings, what: str) -> None:
    """Queues and workers live in a PostgreSQL store: any other is refused before anything."""
    from agentctl.store.pg_queue import refuse_unless_postgres

    refuse_unless_postgres(settings.store_url, what)


def _grant_own(settings: Settings, info: SessionInfo, on_event: Callable[[RunEvent], None]) -> None:
    """A session this user starts is theirs: its settings are the ones they gave (trust.py)."""
    from agentctl.usecases import trust

    try:
        trust.grant(settings, info, trust.Trust(own=True, since=0))
    except OSError as exc:
        on_event(
            Notice(
                f"cannot record in {settings.home} that session {info.id} is yours "
                f"({exc.strerror or exc}): resume will ask you to accept its settings"
            )
        )


def resume_session(
    settings: Settings,
    prefix: str | None,
    *,
    answer: str | None,
    max_turns: int | None,
    ask: Prompt | None,
    on_event: Callable[[RunEvent], None],
    yes: bool = False,
    ask_approvals: bool = False,
    tools: ToolRegistry | None = None,
    accept_settings: bool = False,
    claimed: Claimed | None = None,
) -> RunReport:
    """Continue a session. `yes` / `ask_approvals` (resume --yes / --ask) change the session's
    approval mode, recorded on a checkpoint; without either it keeps the one it has. A session
    this user did not start here is taken only once its settings are accepted (trust.py), and
    its approval mode is then theirs: asking, unless they say --yes."""
    from agentctl.domain.lifecycle import State
    from agentctl.usecases import trust

    if yes and ask_approvals:
        raise UsageError("--yes and --ask contradict each other: give one")
    with opened_store(settings) as store, ExitStack() as stack:
        session_id = (
            resolve_session(store, prefix) if prefix is not None else _latest_unfinished(store)
        )
        refuse_if_moved(store, session_id)
        # Before the lease: a damaged session gets no write at all, not even a lease row (so
        # the walk of its history stays on the way to the first request: 30 ms at 10,000).
        refuse_if_damaged(store, session_id)
        head = store.head(session_id)
        if answer is not None and head.to_state not in (State.WAITING_FEEDBACK, State.DONE):
            raise NotWaitingError(
                f"session {session_id} is {head.to_state.value}, not waiting for input; "
                "resume it without --input"
            )
        if answer is not None and head.to_state is State.DONE and not answer.strip():
            raise UsageError('a follow-up needs some text: --input "what to do next"')
        pending = head.task.pending_question
        if answer is not None and not answer.strip() and pending and pending.kind == "question":
            raise UsageError(
                "an empty answer is no answer: --input the answer",
                hint=f"agentctl show {session_id}",
            )
        from agentctl.loop import instructions

        forbidden = wiring.forbidden_paths(settings)
        workspace = claimed.workspace if claimed else store.info(session_id).workspace
        attached = ""
        if answer is not None and head.to_state is State.DONE:  # a follow-up may attach files
            attached = instructions.attachments(answer, workspace, forbidden)
        # What the session may do here is this user's word (trust.py): a session from
        # elsewhere runs in no home folder, picks no script itself and grants nothing until
        # its settings are accepted. All decided before the lease: a refusal writes nothing.
        info = store.info(session_id)
        granted = trust.lookup(settings, info)
        own = granted is not None and granted.own
        if granted is None and not accept_settings and ask is None:
            raise _not_accepted(info)  # said first: what it carries, and how to take it
        root = (
            claimed.workspace
            if claimed
            else wiring.session_workspace(settings, info.workspace, own)
        )
        model_name = wiring.choose_model(settings, info.spec, session_model=info.model, own=own)
        taken_now = granted is None
        if granted is None:
            since = trust.counting_from(head.task, head.id)
            granted = _accept_settings(settings, info, since, accept_settings, ask, on_event)
        # Validated before the lease, so bad input writes nothing; the runner reloads the head
        # under the lease, and every commit checks it.
        if claimed is not None:  # the claim's lease, taken again here: this handle writes
            store.acquire_lease(session_id, claimed.lease.renewed())
        holder = stack.enter_context(
            held_lease(store, session_id, claimed.lease if claimed else None, claimed is None)
        )
        if answer is not None and store.head(session_id).id != head.id:
            # Answered (or continued) elsewhere between the read above and the lease: this
            # input was meant for a question that is gone. Said, never applied elsewhere.
            raise NotWaitingError(
                f"session {session_id} moved on meanwhile (answered in another terminal?); "
                "your --input was not used",
                hint=f"agentctl show {session_id}",
            )
        info = store.info(session_id)
        spec = info.spec
        if tools is None:
            wiring.probe_sandbox_soon(settings, spec)
        header: list[RunEvent] = []  # said under the header, after the first request went out
        snapshots = wiring.snapshots(settings, root if claimed else info.workspace, header.append)
        if claimed is not None and claimed.share is not None and snapshots is not None:
            claimed.share(snapshots)
        # The approval mode is the session's (its task record), not this process's flag.
        tools = tools or wiring.work_tools(
            settings,
            root,
            spec,
            False,
            header.append,
            undoable=snapshots is not None,
            since=granted.since,
        )
        stack.callback(tools.close)
        project = instructions.read_instructions(
            workspace, forbidden, wiring.user_instructions(settings)
        )
        changed = None
        if instructions.changed(head.task.instructions, project):
            records = tuple(f.record for f in project)
            changed = (records, instructions.change_note(head.task.instructions, project))
            header.append(
                Notice(
                    "the project's instructions changed since this session read them "
                    f"({', '.join(f.path for f in project) or 'removed'}): the new text is "
                    "used from the next model call on"
                )
            )
        wiring.preload(tools)  # the model client loads while MCP servers start
        tools.settle()
        offered = _offers(tools, session_id)
        if offered != head.task.mcp and (head.task.mcp or offered):
            from agentctl.tools.mcp_tools import mcp_change, said

            change = said(mcp_change(head.task.mcp, offered))
            header.append(Notice(f"MCP tools changed since this session last ran: {change}"))
        if head.task.auto_approve and not (ask_approvals or taken_now or yes):
            header.append(
                Notice(
                    "writes and shell commands run without asking (this session's --yes); "
                    f"agentctl resume {session_id} --ask to be asked again"
                )
            )
        from agentctl.workspace.restore import finish_interrupted

        # Views hold the header and what is said under it until the first checkpoint.
        shell = _shell_effects(tools)
        on_event(_started(settings, session_id, model_name, info.workspace, shell, head.id))
        for event in header:
            on_event(event)
        if finish_interrupted(snapshots, store, session_id):
            on_event(Notice("finished restoring the workspace files of an interrupted rollback"))
        runner = wiring.runner(
            settings,
            store,
            spec,
            model_name,
            stack,
            on_event,
            tools,
            snapshots,
            pace=claimed.pace if claimed else None,
        )
        stack.callback(runner.close)
        follow_up = None
        if head.to_state is State.DONE:
            follow_up, answer = answer, None
        from agentctl.domain.records import AnsweredElsewhere

        try:
            result = runner.run(
                session_id,
                answer=answer,
                follow_up=follow_up,
                # A session taken from elsewhere asks, whatever mode it came with.
                approval_mode=True if yes else (False if ask_approvals or taken_now else None),
                mcp=offered,
                ask=unleased(store, session_id, holder, ask) if ask is not None else None,
                max_turns=max_turns or spec.max_turns,
                attach=lambda _text: attached,
                instructions=changed,
                stop_when=claimed.stop_when if claimed else None,
            )
        except AnsweredElsewhere as exc:
            holder.release()
            return _answered_elsewhere(store, session_id, exc, on_event)
        tree = result.session.task.workspace_tree
        changes = _changes(store, snapshots, session_id, head.id, tree)
        return replace(result, changes=changes, started_at=head.id)


def _started(
    settings: Settings,
    session_id: str,
    model: str,
    workspace: str | None,
    shell: Effects | None,
    resumed_at: int | None = None,
) -> SessionStarted:
    from agentctl.config import redact_url

    store = settings.store_url
    return SessionStarted(
        session_id,
        model,
        wiring.server(settings, model),
        redact_url(store) if "@" in store or "?" in store else store,
        workspace,
        resumed_at=resumed_at,
        price=wiring.price(settings, model),
        sandbox=_sandbox_said(shell),
    )


def _changes(
    store: Store,
    snapshots: Snapshots | None,
    session_id: str,
    since: int,
    tree: str | None,
) -> tuple[FileChange, ...]:
    """The workspace files changed since checkpoint `since`, with +/- line counts (for the end
    of a run; a failure to read them loses nothing, so it is no error)."""
    from agentctl.workspace.restore import tree_at

    if snapshots is None or tree is None:
        return ()
    try:
        before = tree_at(store, session_id, store.get_checkpoint(session_id, since))
        if before is None or before == tree:
            return ()
        return tuple(FileChange(p, a, r) for a, r, p in snapshots.numstat(before, tree))
    except AgentctlError:
        return ()


def _sandbox_said(shell: Effects | None) -> str | None:
    """The run header's word on the shell's sandbox: `workspace-write, no network`, `off`."""
    if shell is None or shell.sandbox is None:
        return None
    if shell.sandbox in ("off", "unavailable"):
        return shell.sandbox
    return f"{shell.sandbox}, {'network' if shell.network else 'no network'}"


def _offers(tools: ToolRegistry, session_id: str) -> tuple[McpOffer, ...]:
    """The MCP servers and tools a run offers, as its task record holds them; their files
    go under the session's data from here on."""
    if not tools.sources:
        return ()
    from agentctl.tools.mcp_tools import bind_session, offers_of

    bind_session(tools, session_id)
    return offers_of(tools)


def _shell_effects(tools: ToolRegistry) -> Effects | None:
    """What the session records of its shell's sandbox: the effects of the tool that runs
    commands (the one that says which sandbox it runs in), if there is one."""
    from agentctl.tools import effects_of

    for name in tools.names:
        tool = tools.get(name)
        effects = effects_of(tool) if tool is not None else None
        if effects is not None and effects.sandbox is not None:
            return effects
    return None


def _accept_settings(
    settings: Settings,
    info: SessionInfo,
    head: int,
    accept: bool,
    ask: Prompt | None,
    on_event: Callable[[RunEvent], None],
) -> Trust:
    """This user takes a session they did not start here: with --accept-settings, or a yes at
    the terminal to its settings shown whole; else exit 2 and nothing done. Approvals recorded
    before this point never count (trust.py)."""
    from agentctl.tools.approval import is_yes
    from agentctl.usecases import trust

    shown = trust.describe(info)
    if not accept:
        question = (
            f"session {info.id} came from elsewhere (an import, a move, or a store another "
            f"user writes). Continue it here with its settings: {shown}? [y/N]"
        )
        from agentctl.domain.session import PendingQuestion

        asked = PendingQuestion(question=question, tool_call_id=None)
        answer = ask(asked, lambda: False) if ask is not None else None
        if answer is None or not is_yes(answer):
            raise _not_accepted(info)
    granted = trust.Trust(own=False, since=head)
    trust.grant(settings, info, granted)
    on_event(Notice(f"accepted the settings of session {info.id}: {shown}", session_id=info.id))
    return granted


def _not_accepted(info: SessionInfo) -> UsageError:
    from agentctl.usecases import trust
    from agentctl.usecases.wiring import SCRIPTED

    script = (
        " (and --model NAME, or --model scripted to replay its script)"
        if (info.model == SCRIPTED)
        else ""
    )
    return UsageError(
        f"session {info.id} came from elsewhere (an import, a move, or a store another user "
        f"writes) and its settings are not accepted: {trust.describe(info)}; nothing ran",
        hint=f"agentctl show {info.id}, then agentctl resume {info.id} --accept-settings{script}",
    )


def _latest_unfinished(store: Store) -> str:
    for summary in store.list_sessions():
        if summary.state not in ("done", "moved", "damaged"):
            return summary.id
    raise UnknownSessionError("there is no unfinished session to resume", hint="agentctl list")


def _new_id(store: Store) -> str:
    while True:
        candidate = secrets.token_hex(4)
        if not store.match_sessions(candidate):
            return candidate
