"""The `agentctl` command: parse, call one use case, hand its result to a view.

cli.py formats nothing (tests/test_architecture.py holds it): every line a command prints is
made by a view module (tables, history_view, session_view, notices, json_forms, ask, run_view,
event_stream, transcript, tools_list), and errors are one call to render.error.

The one error handler lives here: an AgentctlError becomes one red line (and the next command to
try) and its exit code; Ctrl-C, SIGTERM and SIGHUP become exit 130 with the resume command, which
is safe because every step was checkpointed before the next began. --debug or AGENTCTL_DEBUG=1
shows tracebacks instead.
"""

# No `from __future__ import annotations` here, unlike the rest of the package: typer reads every
# command's annotations when it builds the command line, at each start; kept as strings they were
# evaluated one by one (20 ms of CPU a start, measured), as objects they are read (7 ms).
import contextlib
import functools
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Annotated, NoReturn, TypeVar

import typer

from agentctl.config import Settings
from agentctl.domain.records import RunReport, Stop
from agentctl.errors import AgentctlError, ExitCode
from agentctl.terminal import (
    ask,
    history_view,
    json_forms,
    notices,
    render,
    session_view,
    tables,
)
from agentctl.terminal.event_stream import StreamView
from agentctl.terminal.run_view import RunView
from agentctl.usecases import common, inspect, preferences, runs, transfer
from agentctl.usecases import rollback as rollbacks

T = TypeVar("T")

app = typer.Typer(
    name="agentctl",
    help="Run agents whose sessions are checkpointed locally: pause, resume, roll back.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh and fish
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Store URL: sqlite:///FILE, json:///DIR or postgresql://USER@HOST/DB "
        "(env AGENTCTL_STORE).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
StreamOpt = Annotated[
    bool,
    typer.Option("--json", help="Write one JSON line per event as it happens, then a result."),
]
SessionArg = Annotated[
    str,
    typer.Argument(
        help="Session id, a unique prefix of it, or its name.",
        autocompletion=lambda incomplete: _complete_session(incomplete),
    ),
]
MaxTurnsOpt = Annotated[
    int | None, typer.Option("--max-turns", min=1, help="Most model calls in this run.")
]
NoInputOpt = Annotated[
    bool,
    typer.Option("--no-input", help="Never prompt: save and exit 3 when the agent asks something."),
]
YesOpt = Annotated[
    bool,
    typer.Option(
        "--yes",
        "-y",
        help="Allow file writes and shell commands without asking (remembered by the session: "
        "resume --ask undoes it).",
    ),
]
ModelOpt = Annotated[
    str | None, typer.Option("--model", help="Model name ('scripted' for the task's script).")
]
DetachOpt = Annotated[
    bool,
    typer.Option(
        "--detach",
        help="Queue it for a worker (agentctl worker) and exit at once, printing the id "
        "(PostgreSQL store).",
    ),
]
QueueOpt = Annotated[
    str | None, typer.Option("--queue", help="With --detach: the queue (default: default).")
]
PriorityOpt = Annotated[
    int | None,
    typer.Option(
        "--priority",
        min=-(2**31),
        max=2**31 - 1,
        help="With --detach: higher runs first (default 0).",
    ),
]


_kept = [True]  # whether the store of this command outlives it (memory: does not)


def _settings(store: str | None = None, model: str | None = None) -> Settings:
    settings = Settings.load(store=store, model=model)
    _kept[0] = not settings.store_url.startswith("memory:")
    return settings


def _debug() -> bool:
    return os.environ.get("AGENTCTL_DEBUG", "") not in ("", "0", "false") or "--debug" in sys.argv


View = RunView | StreamView


def _view(settings: Settings, as_json: bool) -> View:
    """The terminal's run view, or the JSON event stream (--json)."""
    return StreamView() if as_json else RunView(preview_lines=settings.preview_lines)


def _read_stdin() -> str:
    """The goal of `run -`: standard input, whole (bytes that are not UTF-8 replaced)."""
    return sys.stdin.buffer.read().decode("utf-8", errors="replace")


def _asker(view: View, no_input: bool) -> common.Prompt | None:
    """What asks the person at the terminal: the run view's prompt (with --json, a quiet one's:
    the question on stderr, the stream on stdout); None with --no-input."""
    if no_input:
        return None
    return view.ask if isinstance(view, RunView) else RunView(quiet=True).ask


def _guarded(action: Callable[[], T], view: View | None = None) -> T:
    """Run a use case; turn every failure into one line and an exit code."""
    try:
        return action()
    except AgentctlError as exc:
        if view:
            view.close()
            if isinstance(view, StreamView):
                view.failed(exc.message, int(exc.exit_code))
        if _debug():
            raise
        render.error(exc.message, exc.hint)
        raise typer.Exit(int(exc.exit_code)) from None
    except BrokenPipeError:
        # The reader of stdout went away (`agentctl run … | head`): stop here as Ctrl-C
        # would — every step is checkpointed before the next, so the session is resumable —
        # quietly, as Unix tools do: stdout goes nowhere from now on, one note on stderr.
        _discard_stdout()
        if view:
            view.close()
        with contextlib.suppress(OSError):
            notices.output_closed(view.session_id if view else None, _kept[0])
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except KeyboardInterrupt:
        # A second Ctrl-C while we say goodbye must not turn exit 130 into death by SIGINT.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if view:
            view.flush()
            view.close()
            if isinstance(view, StreamView):
                view.failed("interrupted", int(ExitCode.INTERRUPTED))
        elsewhere = view is not None and getattr(view, "elsewhere", False)
        notices.interrupted(view.session_id if view else None, _kept[0], elsewhere)
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None


def _discard_stdout() -> None:
    """What is still written to stdout (and Python's flush at exit) goes to /dev/null: its
    reader is gone, and a second BrokenPipeError must not become a traceback."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _interrupt_on_hangup() -> None:
    """A closed terminal or a `kill` should stop a run as Ctrl-C does: at a safe point, saved."""

    def handler(signum: int, frame: FrameType | None) -> NoReturn:
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


def _follow_ups(
    report: RunReport,
    view: View,
    settings: Callable[[], Settings],
    interactive: bool,
    max_turns: int | None,
    yes: bool,
) -> tuple[RunReport, bool]:
    """On a terminal, a run that reached done offers a follow-up prompt: each instruction
    continues the same session (resume --input on a done session), until Enter or Ctrl-D.
    Returns the last report and whether its result is already on the screen."""
    shown = False
    interactive = interactive and _kept[0]  # a memory: store's session ends with the command
    while interactive and report.stop is Stop.DONE and not report.followed and sys.stdin.isatty():
        view.finish(report, 0, _kept[0])  # the summary, then the result, then the prompt
        notices.result(report.session.task.result)
        shown = True
        text = ask.ask_follow_up()
        if text is None:
            break
        follow = functools.partial(
            runs.resume_session,
            settings(),
            report.session.info.id,
            answer=text,
            max_turns=max_turns,
            ask=_asker(view, False),
            on_event=view,
            yes=yes,
        )
        report = _guarded(follow, view)
        view.close()
        shown = False
    return report, shown


def _exit_code(report: RunReport) -> int:
    outcome = report.session.task.outcome
    if report.stop is Stop.DONE:
        return 0 if outcome is None or outcome.value == "succeeded" else int(ExitCode.ERROR)
    if report.stop is Stop.NOT_RUNNING:  # followed, and its driver stopped: said by a notice
        return int(ExitCode.NOT_RUNNING)
    return int(ExitCode.PAUSED if report.stop is Stop.PAUSED else ExitCode.ERROR)


def _finish_run(report: RunReport, view: View, shown: bool = False) -> None:
    session = report.session
    sid = session.info.id
    task = session.task
    as_json = isinstance(view, StreamView)
    code = _exit_code(report)
    try:
        if not shown:
            view.finish(report, code, _kept[0])  # the summary, or the stream's `result` event
        if report.stop is Stop.DONE and not as_json and not shown:
            notices.result(task.result)
    except BrokenPipeError:  # the run is over and saved; only its last words are not read
        _discard_stdout()
    if report.stop is Stop.DONE:
        if code:
            raise typer.Exit(code)
        return
    if report.stop is Stop.PAUSED:
        question = task.pending_question.question if task.pending_question else ""
        notices.paused(sid, question, _kept[0])
        raise typer.Exit(int(ExitCode.PAUSED))
    if report.stop is Stop.NOT_RUNNING:
        raise typer.Exit(code)
    notices.stopped(sid, task.last_error, _kept[0])
    raise typer.Exit(int(ExitCode.ERROR))


@app.command()
def run(
    task: Annotated[
        str, typer.Argument(help="A task file (.toml), a goal in quotes, or - to read the goal.")
    ],
    model: ModelOpt = None,
    store: StoreOpt = None,
    workspace: Annotated[
        Path | None,
        typer.Option("--workspace", help="Folder the file and shell tools work in (default: .)."),
    ] = None,
    no_input: NoInputOpt = False,
    yes: YesOpt = False,
    max_turns: MaxTurnsOpt = None,
    context_strategy: Annotated[
        str | None,
        typer.Option(
            "--context-strategy",
            help="When the context window is full: summarize older turns (default) or drop them.",
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Name the session (refused if taken).")
    ] = None,
    tags: Annotated[
        list[str] | None, typer.Option("--tag", help="Tag the session (repeatable).")
    ] = None,
    sandbox: Annotated[
        str | None,
        typer.Option(
            "--sandbox",
            help="Where shell commands run: workspace-write (default where bubblewrap works), "
            "read-only, off, or required (workspace-write, and refuse to run without it).",
        ),
    ] = None,
    network: Annotated[
        bool | None,
        typer.Option(
            "--network/--no-network", help="Let sandboxed shell commands reach the network."
        ),
    ] = None,
    as_json: StreamOpt = False,
    detach: DetachOpt = False,
    queue: QueueOpt = None,
    priority: PriorityOpt = None,
    repo: Annotated[
        str | None,
        typer.Option(
            "--repo",
            help="With --detach: the git repository (URL or path) the worker "
            "checks out as the workspace (default: an empty folder).",
        ),
    ] = None,
    ref: Annotated[
        str | None, typer.Option("--ref", help="With --repo: the branch, tag or commit.")
    ] = None,
) -> None:
    """Start a session on a task and work on it until done or it needs input."""
    settings = _guarded(lambda: _settings(store, model))
    if detach or queue or priority is not None or repo or ref:
        _guarded(lambda: _detach_options(detach, queue, priority, repo, ref, workspace))
        queued = _guarded(
            lambda: runs.start_session(
                settings,
                common.read_task(task, stdin=_read_stdin),
                max_turns=max_turns,
                ask=None,
                on_event=lambda _event: None,
                workspace=workspace,
                yes=yes,
                context_strategy=context_strategy,
                name=name,
                tags=tags or (),
                sandbox=sandbox,
                network=network,
                detach=runs.Detach(queue, priority, repo, ref),
            )
        )
        _queued(queued.session.info.id, as_json)
        return
    view = _view(settings, as_json)
    _interrupt_on_hangup()

    def action() -> RunReport:
        return runs.start_session(
            settings,
            common.read_task(task, stdin=_read_stdin),
            max_turns=max_turns,
            ask=_asker(view, no_input),
            on_event=view,
            workspace=workspace,
            yes=yes,
            context_strategy=context_strategy,
            name=name,
            tags=tags or (),
            sandbox=sandbox,
            network=network,
        )

    report = _guarded(action, view)
    view.close()
    report, shown = _follow_ups(
        report,
        view,
        lambda: _settings(store, model),
        not (no_input or as_json),
        max_turns,
        yes,
    )
    _finish_run(report, view, shown)


@app.command()
def resume(
    session: Annotated[
        str | None, typer.Argument(help="Session id or prefix (default: the latest unfinished).")
    ] = None,
    input_text: Annotated[
        str | None,
        typer.Option(
            "--input",
            help="The answer to the question the session asked; for a done session, a "
            "follow-up: its next instruction.",
        ),
    ] = None,
    model: ModelOpt = None,
    store: StoreOpt = None,
    no_input: NoInputOpt = False,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            "-y",
            help="From now on, allow file writes and shell commands without asking (the "
            "session remembers it).",
        ),
    ] = False,
    ask_again: Annotated[
        bool,
        typer.Option("--ask", help="Ask again before writes and shell commands (undoes --yes)."),
    ] = False,
    max_turns: MaxTurnsOpt = None,
    as_json: StreamOpt = False,
    detach: DetachOpt = False,
    queue: QueueOpt = None,
    priority: PriorityOpt = None,
    accept_settings: Annotated[
        bool,
        typer.Option(
            "--accept-settings",
            help="Continue a session from elsewhere (import, move, another user's store) with "
            "its workspace, allow rules, pass_env and model, as `show` lists them.",
        ),
    ] = False,
) -> None:
    """Continue a session from its head, in this or any other terminal."""
    if detach or queue or priority is not None:
        from agentctl.usecases.worker import queue_resume

        _guarded(lambda: _detach_options(detach, queue, priority, None, None, None))
        if session is None:
            _guarded(lambda: _fail("resume --detach needs the session's id"))
        sid = _guarded(
            lambda: queue_resume(
                _settings(store, model),
                session or "",
                answer=input_text,
                queue=queue,
                priority=priority,
            )
        )
        _queued(sid, as_json)
        return
    if session is None and not no_input and sys.stdin.isatty() and not as_json:
        session = _pick_unfinished(store)
    settings = _guarded(lambda: _settings(store, model))
    view = _view(settings, as_json)
    _interrupt_on_hangup()
    report = _guarded(
        lambda: runs.resume_session(
            settings,
            session,
            answer=input_text,
            max_turns=max_turns,
            ask=_asker(view, no_input),
            on_event=view,
            yes=yes,
            ask_approvals=ask_again,
            accept_settings=accept_settings,
        ),
        view,
    )
    view.close()
    report, shown = _follow_ups(
        report,
        view,
        lambda: _settings(store, model),
        not (no_input or as_json),
        max_turns,
        yes,
    )
    _finish_run(report, view, shown)


def _fail(message: str) -> NoReturn:
    from agentctl.errors import UsageError

    raise UsageError(message)


def _detach_options(
    detach: bool,
    queue: str | None,
    priority: int | None,
    repo: str | None,
    ref: str | None,
    workspace: Path | None,
) -> None:
    if not detach:
        _fail("--queue, --priority, --repo and --ref go with --detach")
    if ref and not repo:
        _fail("--ref names a commit of --repo: give --repo too")
    if any(given and given.startswith("-") for given in (repo, ref)):
        _fail("--repo and --ref name a repository and a commit, not an option: no leading -")
    if workspace is not None:
        _fail(
            "a queued session works in a folder of its worker: --repo names what it checks "
            "out there (--workspace is for a run here)"
        )


def _queued(session_id: str, as_json: bool) -> None:
    """A session queued for a worker: its id on stdout, how to follow it on stderr."""
    if as_json:
        json_forms.queued(session_id)
    else:
        notices.queued(session_id)


@app.command()
def answer(
    session: SessionArg,
    text: Annotated[str, typer.Argument(help="The answer (or, for a done session, a follow-up).")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer a session's question from any machine; a worker takes it from there
    (resume ID --input TEXT --detach). PostgreSQL store."""
    from agentctl.usecases.worker import queue_resume

    sid = _guarded(lambda: queue_resume(_settings(store), session, answer=text))
    _queued(sid, as_json)


@app.command()
def worker(
    store: StoreOpt = None,
    model: ModelOpt = None,
    queue: Annotated[str, typer.Option("--queue", help="The queue to work on.")] = "default",
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="Sessions run at once by this worker.")
    ] = 1,
    queue_limit: Annotated[
        int | None,
        typer.Option(
            "--queue-limit",
            min=1,
            help="Sessions of this queue running at once on all workers together (kept in the "
            "database for every worker).",
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate",
            min=0.001,
            help="Requests per second to this worker's model server, by all workers together "
            "(kept in the database).",
        ),
    ] = None,
    accept_any: Annotated[
        bool,
        typer.Option(
            "--accept-any-settings",
            help="Also run sessions with MCP servers of their own, pass_env, no sandbox or the "
            "network (anyone who can write the store could queue them).",
        ),
    ] = False,
) -> None:
    """Run queued sessions (run --detach, answer) until SIGTERM, which drains: each session
    stops after its current step and goes back to the queue. PostgreSQL store."""
    from agentctl.usecases.worker import WorkerOptions, run_worker

    settings = _guarded(lambda: _settings(store, model))
    options = WorkerOptions(
        queue=queue,
        concurrency=concurrency,
        queue_limit=queue_limit,
        rate=rate,
        accept_any=accept_any,
    )
    _guarded(lambda: run_worker(settings, options, render.note))


@app.command()
def rollback(
    session: SessionArg,
    to: Annotated[int | None, typer.Option("--to", help="Checkpoint number to return to.")] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="How many checkpoints back.")] = None,
    conversation_only: Annotated[
        bool, typer.Option("--conversation-only", help="Leave the workspace files as they are.")
    ] = False,
    files_only: Annotated[
        bool, typer.Option("--files-only", help="Restore the files; keep the conversation.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Restore even over edits made outside agentctl.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would change; change nothing.")
    ] = False,
    store: StoreOpt = None,
) -> None:
    """Move a session back to an earlier checkpoint, its workspace files with it. Nothing is
    deleted: the files and conversation left behind stay reachable (roll back to them)."""
    report = _guarded(
        lambda: rollbacks.rollback_session(
            _settings(store),
            session,
            to=to,
            steps=steps,
            files=not conversation_only,
            conversation=not files_only,
            force=force,
            dry_run=dry_run,
        )
    )
    notices.rolled_back(report)


@app.command("export")
def export(
    session: SessionArg,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Write to this file (default: stdout).")
    ] = None,
    store: StoreOpt = None,
) -> None:
    """Write a session as portable JSON lines (no API key, no store password)."""
    to = None if output in (None, "-") else Path(output)
    session_id, checkpoints = _guarded(
        lambda: transfer.export_session(_settings(store), session, to, notices.export_text)
    )
    notices.exported(session_id, checkpoints, to)


@app.command("import")
def import_(
    file: Annotated[str, typer.Argument(help="An export (agentctl export), or - for stdin.")],
    new_id: Annotated[
        bool, typer.Option("--new-id", help="Import beside a different session of that id.")
    ] = False,
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            help="The folder its tools work in (default: this one); never the file's own.",
        ),
    ] = None,
    store: StoreOpt = None,
) -> None:
    """Import an exported session (again: nothing changes), then verify it. It grants itself
    nothing: `resume` asks you to accept its settings first."""
    notices.imported(
        _guarded(
            lambda: transfer.import_file(_settings(store), file, new_id=new_id, workspace=workspace)
        )
    )


@app.command()
def move(
    session: SessionArg,
    to: Annotated[str, typer.Option("--to", help="The store URL to move the session to.")],
    store: StoreOpt = None,
) -> None:
    """Copy a session to another store, verify it there, and mark this copy as moved."""
    notices.moved(_guarded(lambda: transfer.move_session(_settings(store), session, to)))


@app.command()
def diff(
    session: SessionArg,
    old: Annotated[
        int | None, typer.Option("--from", min=1, help="From this checkpoint (default: 1).")
    ] = None,
    new: Annotated[
        int | None, typer.Option("--to", min=1, help="To this checkpoint (default: the head).")
    ] = None,
    stat: Annotated[bool, typer.Option("--stat", help="A summary per file.")] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The workspace files a session changed between two checkpoints, as a unified diff."""
    result = _guarded(
        lambda: rollbacks.diff_session(_settings(store), session, old=old, new=new, stat=stat)
    )
    if as_json:
        json_forms.diff(result)
    else:
        session_view.workspace_diff(result)


@app.command("list")
def list_(
    state: Annotated[
        str | None, typer.Option("--state", "--status", help="Only sessions in this state.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Active since: 2d, 12h, or 2026-11-01.")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Active until (as --since).")] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Only sessions with this tag.")
    ] = None,
    workspace: Annotated[
        Path | None, typer.Option("--workspace", help="Only sessions working in this folder.")
    ] = None,
    here: Annotated[bool, typer.Option("--here", help="Only sessions of this folder.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 50,
    all_: Annotated[bool, typer.Option("--all", help="Every session (no --limit).")] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List sessions, most recently active first."""
    from agentctl.usecases.sessions import Filters, list_sessions

    filters = Filters(
        state=state,
        since=since,
        until=until,
        tags=tuple(tag or ()),
        workspace=Path.cwd() if here else workspace,
        limit=None if all_ else limit,
    )
    from agentctl.usecases.worker import queue_listing

    settings = _guarded(lambda: _settings(store))
    sessions = _guarded(lambda: list_sessions(settings, filters))
    queued = _guarded(lambda: queue_listing(settings)) if sessions else {}
    if as_json:
        json_forms.sessions(sessions, queued)
    else:
        tables.sessions_table(sessions, queued)


@app.command()
def search(
    text: Annotated[str, typer.Argument(help="Text to find in every session's messages.")],
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 50,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Find text in the messages of every session."""
    from agentctl.usecases import sessions

    hits = _guarded(lambda: sessions.search(_settings(store), text, limit))
    if as_json:
        json_forms.search(hits)
    else:
        tables.search_hits(hits)


@app.command()
def rename(
    session: SessionArg,
    name: Annotated[str, typer.Argument(help="The new name (works wherever an id does).")],
    store: StoreOpt = None,
) -> None:
    """Give a session a name."""
    from agentctl.usecases import sessions

    session_id, name = _guarded(lambda: sessions.rename(_settings(store), session, name))
    notices.renamed(session_id, name)


@app.command()
def tag(
    session: SessionArg,
    tags: Annotated[list[str], typer.Argument(help="Tags to add (or remove).")],
    remove: Annotated[bool, typer.Option("--remove", help="Remove these tags.")] = False,
    store: StoreOpt = None,
) -> None:
    """Tag a session (list --tag finds it)."""
    from agentctl.usecases import sessions

    now = _guarded(lambda: sessions.tag(_settings(store), session, tags, remove))
    notices.tagged(now)


@app.command()
def fork(
    session: SessionArg,
    at: Annotated[
        int | None, typer.Option("--at", min=1, help="From this checkpoint (default: the head).")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Name the new session.")] = None,
    workspace: Annotated[
        Path | None,
        typer.Option("--workspace", help="Write that checkpoint's files into this new folder."),
    ] = None,
    store: StoreOpt = None,
) -> None:
    """Start a new session from any checkpoint of another."""
    from agentctl.usecases import sessions

    new_id, at_ = _guarded(lambda: sessions.fork(_settings(store), session, at, name, workspace))
    notices.forked(new_id, at_)


@app.command()
def rm(
    session_ids: Annotated[list[str], typer.Argument(help="Sessions (ids, prefixes or names).")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    store: StoreOpt = None,
) -> None:
    """Delete sessions: their checkpoints and messages are gone for good."""
    from agentctl.usecases import sessions

    if not yes and not ask.confirm_remove(session_ids):
        raise typer.Exit(int(ExitCode.USAGE))
    removed = _guarded(lambda: sessions.remove(_settings(store), session_ids))
    notices.deleted(removed)


@app.command()
def prune(
    older_than: Annotated[
        str | None,
        typer.Option("--older-than", help="Sessions not active for this long: 30d, 12h."),
    ] = None,
    state: Annotated[str | None, typer.Option("--state", help="Only in this state.")] = None,
    keep_last: Annotated[
        int, typer.Option("--keep-last", min=0, help="Keep the N most recent whatever.")
    ] = 0,
    snapshots: Annotated[
        bool,
        typer.Option(
            "--snapshots",
            help="Also give back workspace snapshots that only sessions of other stores "
            "(or copies moved away) still name; their rollbacks lose those files.",
        ),
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List, delete nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    store: StoreOpt = None,
) -> None:
    """Delete old sessions, listing them (with sizes) first. Nothing is deleted otherwise."""
    from agentctl.usecases import sessions

    settings = _settings(store)
    if older_than is None and not snapshots:
        render.error("prune needs --older-than AGE (sessions) or --snapshots (shared snapshots)")
        raise typer.Exit(int(ExitCode.USAGE))
    if snapshots:
        shared = _guarded(lambda: sessions.shared_snapshots(settings))
        tables.shared_snapshots(shared, dry_run)
        if shared and not dry_run:
            if not yes and not ask.confirm_give_back():
                raise typer.Exit(int(ExitCode.USAGE))
            freed = _guarded(lambda: sessions.prune_shared_snapshots(settings, shared))
            notices.snapshots_given_back(freed)
        if older_than is None:
            return
    assert older_than is not None
    cutoff = older_than
    doomed = _guarded(lambda: sessions.prune_candidates(settings, cutoff, state, keep_last))
    tables.prune_list(doomed, dry_run)
    if dry_run or not doomed:
        return
    if not yes and not ask.confirm_prune(len(doomed)):
        raise typer.Exit(int(ExitCode.USAGE))
    _guarded(lambda: sessions.prune(settings, doomed))
    notices.pruned(len(doomed))


def _pick_unfinished(store: str | None) -> str | None:
    """On a terminal, `resume` with no id offers the recent unfinished sessions (the same as
    naming one; without a terminal it takes the most recent, as before)."""
    from agentctl.usecases import sessions

    recent = _guarded(
        lambda: [
            s
            for s in sessions.list_sessions(_settings(store), sessions.Filters(limit=None))
            if s.state not in ("done", "moved", "damaged")
        ][:9]
    )
    if len(recent) < 2:
        return None
    return ask.pick_session(recent)


def _complete_session(incomplete: str) -> list[str]:
    """Shell completion: session ids and names from the store."""
    from agentctl.usecases import sessions

    return sessions.complete(Settings.load(), incomplete)


@app.command()
def usage(
    session: Annotated[str | None, typer.Argument(help="One session (default: all).")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Started since: 7d, 2026-11-01.")
    ] = None,
    by: Annotated[str, typer.Option("--by", help="Group by model, day or session.")] = "model",
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Model calls and tokens, and their cost where the model's price is known."""
    from agentctl.usecases import sessions

    rows = _guarded(lambda: sessions.usage(_settings(store), session, since, by))
    if as_json:
        json_forms.usage(rows, by)
    else:
        tables.usage_table(rows, by, sessions.PRICES_TAKEN)


@app.command()
def show(
    session: SessionArg,
    at: Annotated[
        int | None, typer.Option("--at", min=1, help="Show the state at this checkpoint.")
    ] = None,
    transcript: Annotated[
        bool,
        typer.Option("--transcript", help="The conversation as a person reads it (paged)."),
    ] = False,
    full: Annotated[
        bool, typer.Option("--full", help="With --transcript: tool results whole, not cut.")
    ] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a session's task, plan, progress and conversation size; or its transcript."""
    if transcript:
        from agentctl.terminal import transcript as transcript_view

        loaded = _guarded(lambda: inspect.conversation(_settings(store), session, at))
        transcript_view.show(loaded, full)
        return
    view = _guarded(lambda: inspect.show_session(_settings(store), session, at))
    if as_json:
        json_forms.session(view)
    else:
        session_view.show_session(view)


@app.command()
def tools(
    task: Annotated[
        str | None, typer.Argument(help="A task file: its allow list and settings apply.")
    ] = None,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """The tools a task gets: each one's arguments, side-effect class and when it asks."""
    from agentctl.terminal import tools_list

    listed = _guarded(lambda: inspect.list_tools(_settings(), task, yes))
    if as_json:
        json_forms.tools(listed)
    else:
        tools_list.tools_list(listed)


@app.command()
def history(
    session: SessionArg,
    graph: Annotated[
        bool,
        typer.Option("--graph", help="Draw the tree of branches (long linear stretches folded)."),
    ] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", min=1, help="Only the newest N checkpoints.")
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every checkpoint of a session: event, state transition, time, and branches."""
    import gc

    # Up to millions of acyclic objects read and printed: a collection would only walk them
    # (0.1 s at 100,000 checkpoints). Back on after (a test runs commands in its process).
    collecting = gc.isenabled()
    gc.disable()
    try:
        if not (as_json or graph):  # the table: its rows read as they are shown
            _guarded(
                lambda: inspect.show_history(
                    _settings(store), session, limit, history_view.history_rows
                )
            )
            return
        session_id, checkpoints = _guarded(
            lambda: inspect.session_history(_settings(store), session)
        )
        if as_json:
            json_forms.history(checkpoints, limit)
        else:
            history_view.history_graph(session_id, checkpoints, limit)
    finally:
        if collecting:
            gc.enable()


@app.command()
def watch(session: SessionArg, store: StoreOpt = None, as_json: StreamOpt = False) -> None:
    """Follow a session running elsewhere: its checkpoints as they are committed, until it is
    done or waiting for input (exit codes as run's), or nothing runs it any more (exit 7:
    `agentctl resume` continues it). Read-only: it takes no lease."""
    from agentctl.usecases import sessions

    settings = _guarded(lambda: _settings(store))
    view = _view(settings, as_json)
    report = _guarded(lambda: sessions.watch(settings, session, view), view)
    view.close()
    _finish_run(report, view)


@app.command()
def verify(
    session: Annotated[
        str | None, typer.Argument(help="Session id or prefix (default: all).")
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check sessions against their events, the checkpoint tree and the store's integrity."""
    store_problems, reports = _guarded(lambda: inspect.verify(_settings(store), session))
    if as_json:
        json_forms.verify(store_problems, reports)
    else:
        tables.verify_report(store_problems, reports)
    if store_problems or any(r.problems for r in reports):
        raise typer.Exit(int(ExitCode.STORE))


profile_app = typer.Typer(
    help="Your preferences: every new session's system prompt carries them.",
    no_args_is_help=True,
)
app.add_typer(profile_app, name="profile")


@profile_app.command("show")
def profile_show(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Show preferences and recent goals."""
    profile = _guarded(lambda: preferences.show_profile(_settings(store)))
    if as_json:
        json_forms.profile(profile)
    else:
        tables.show_profile(profile)


@profile_app.command("set")
def profile_set(
    key: Annotated[str, typer.Argument(help="Preference name, e.g. airline.")],
    value: Annotated[str, typer.Argument(help="Its value, e.g. Delta.")],
    store: StoreOpt = None,
) -> None:
    """Set a preference."""
    _guarded(lambda: preferences.set_preference(_settings(store), key, value))
    notices.setting_written(key, value, None)


@profile_app.command("unset")
def profile_unset(
    key: Annotated[str, typer.Argument(help="Preference name.")], store: StoreOpt = None
) -> None:
    """Remove a preference."""
    _guarded(lambda: preferences.set_preference(_settings(store), key, None))
    notices.setting_written(key, None, None)


mcp_app = typer.Typer(
    help="MCP servers whose tools tasks get: add, list, remove, check, import.",
    no_args_is_help=True,
)
app.add_typer(mcp_app, name="mcp")


@mcp_app.command("add", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def mcp_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The server's name: tools are mcp__NAME__TOOL.")],
    url: Annotated[
        str | None, typer.Option("--url", help="A streamable HTTP server's URL.")
    ] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", help="NAME=VALUE for the server (repeat).")
    ] = None,
    header: Annotated[
        list[str] | None, typer.Option("--header", help="'NAME: VALUE' HTTP header (repeat).")
    ] = None,
    required: Annotated[
        bool, typer.Option("--required", help="A run stops (exit 5) when it is down.")
    ] = False,
    trust_annotations: Annotated[
        bool, typer.Option("--trust-annotations", help="readOnlyHint tools never ask.")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--replace", help="Replace one of that name.")] = False,
) -> None:
    """Add a server: agentctl mcp add NAME -- COMMAND ARGS…, or --url URL."""
    from agentctl.usecases import mcp_servers

    command = list(ctx.args)
    path, row = _guarded(
        lambda: mcp_servers.add_server(
            _settings(),
            name,
            command,
            url=url,
            env=tuple(env or ()),
            headers=tuple(header or ()),
            required=required,
            trust_annotations=trust_annotations,
            overwrite=overwrite,
        )
    )
    notices.mcp_added(row, path)


@mcp_app.command("list")
def mcp_list(as_json: JsonOpt = False) -> None:
    """The configured servers (env values and headers masked)."""
    from agentctl.terminal import tools_list
    from agentctl.usecases import mcp_servers

    rows = _guarded(lambda: mcp_servers.list_servers(_settings()))
    if as_json:
        json_forms.mcp_servers(rows)
    else:
        tools_list.mcp_servers_list(rows)


@mcp_app.command("remove")
def mcp_remove(name: Annotated[str, typer.Argument(help="The server to remove.")]) -> None:
    """Remove a server from the settings file."""
    from agentctl.usecases import mcp_servers

    path = _guarded(lambda: mcp_servers.remove_server(_settings(), name))
    notices.mcp_removed(name, path)


@mcp_app.command("check")
def mcp_check(
    name: Annotated[str, typer.Argument(help="The server to start and ask.")],
    as_json: JsonOpt = False,
) -> None:
    """Start a server and list its tools, their annotations and the tokens their schemas
    cost; a server that does not start is one line with the end of its log."""
    from agentctl.terminal import tools_list
    from agentctl.usecases import mcp_servers

    server, tools, info = _guarded(lambda: mcp_servers.check_server(_settings(), name))
    if as_json:
        json_forms.mcp_check(server, tools, info)
    else:
        tools_list.mcp_check(server, tools, info)


@mcp_app.command("import")
def mcp_import(
    file: Annotated[Path, typer.Argument(help="Claude Code's .mcp.json.")],
    overwrite: Annotated[
        bool, typer.Option("--replace", help="Replace servers of the same name.")
    ] = False,
) -> None:
    """Import the servers of a Claude Code .mcp.json into the settings file."""
    from agentctl.usecases import mcp_servers

    added = _guarded(lambda: mcp_servers.import_claude(_settings(), file, overwrite))
    notices.mcp_imported(added)


config_app = typer.Typer(
    help="Settings: model, server, key, store, context window. Flags and AGENTCTL_* win.",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(as_json: JsonOpt = False) -> None:
    """Show every setting, the value in effect and where it comes from (secrets masked)."""
    path, rows = _guarded(lambda: preferences.show_config(_settings()))
    if as_json:
        json_forms.config(path, rows)
    else:
        tables.show_config(path, rows)


@config_app.command("set")
def config_set(
    key: Annotated[str, typer.Argument(help="model, base_url, api_key, store, timeout, …")],
    value: Annotated[str, typer.Argument(help="Its value.")],
) -> None:
    """Write one setting to the settings file (created private, mode 0600)."""
    path, shown = _guarded(lambda: preferences.set_config(_settings(), key, value))
    notices.setting_written(key, shown, path)


@config_app.command("unset")
def config_unset(key: Annotated[str, typer.Argument(help="The setting to remove.")]) -> None:
    """Remove one setting from the settings file."""
    path, _ = _guarded(lambda: preferences.set_config(_settings(), key, None))
    notices.setting_written(key, None, path)


def _version(value: bool) -> None:
    if value:
        import agentctl

        notices.version(agentctl.__version__)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", help="Show tracebacks instead of one-line errors (or AGENTCTL_DEBUG=1)."
        ),
    ] = False,
) -> None:
    if debug:
        os.environ["AGENTCTL_DEBUG"] = "1"


def main() -> None:
    """The one error handler around the whole app: whatever escapes a command is one line and
    an exit code, never a traceback (unless --debug)."""
    if "--debug" in sys.argv[1:]:  # also after the command: agentctl run TASK --debug
        sys.argv.remove("--debug")
        os.environ["AGENTCTL_DEBUG"] = "1"
    try:
        if os.environ.get("_AGENTCTL_COMPLETE"):  # a shell asks for completions
            from agentctl.terminal import completion

            command = typer.main.get_command(app)  # registers typer's formats first…
            completion.install()  # …which ours replace: every value quoted for its shell
            command(prog_name="agentctl")
            return
        app(prog_name="agentctl")  # also as `python -m agentctl` (completion keys on it)
    except AgentctlError as exc:
        if _debug():
            raise
        render.error(exc.message, exc.hint)
        sys.exit(int(exc.exit_code))
    except KeyboardInterrupt:
        render.error("interrupted")
        sys.exit(int(ExitCode.INTERRUPTED))
    except BrokenPipeError:  # `agentctl list | head`: the reader has what it wanted
        _discard_stdout()
        sys.exit(int(ExitCode.INTERRUPTED))
    except Exception as exc:
        if _debug():
            raise
        notices.internal_error(exc)
        sys.exit(int(ExitCode.ERROR))


if __name__ == "__main__":
    main()
