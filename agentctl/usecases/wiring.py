"""Wiring: the one place that turns Settings into concrete things — the model name, a model
client (the real `openai` one or the scripted server), a token counter, the work tools with
their confinement and environment, the context budget — and hands them to the runner.

Everything heavy is built lazily, inside the factories the runner calls on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from agentctl.config import DEFAULT_SANDBOX, Settings
from agentctl.domain.records import Notice
from agentctl.errors import ModelError, UsageError
from agentctl.llm import catalogue

if TYPE_CHECKING:
    from agentctl.domain.records import RunEvent
    from agentctl.domain.session import TaskSpec
    from agentctl.llm.client import ModelClient, Pace
    from agentctl.loop.context import Budget, TokenCounter
    from agentctl.loop.runner import Runner
    from agentctl.mcpconfig import McpServer
    from agentctl.store import Store
    from agentctl.tools import Tool, ToolRegistry, ToolSource
    from agentctl.tools.sandbox import Sandbox
    from agentctl.workspace.snapshots import Snapshots

SCRIPTED = "scripted"


def price(settings: Settings, model: str) -> tuple[float, float] | None:
    """Dollars per million tokens (input, output): the settings' [prices], else the model
    catalogue's."""
    return catalogue.price(model, settings.prices)


def server(settings: Settings, model: str) -> str:
    """Where a run's requests go, without credentials."""
    from agentctl.config import redact_url

    if model == SCRIPTED:
        return "the task's script (a loopback server)"
    return redact_url(settings.base_url) if settings.base_url else "https://api.openai.com/v1"


def now() -> str:
    """The clock of checkpoints: UTC, milliseconds, ISO 8601 (so text order is time order)."""
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="milliseconds")


def workspace(settings: Settings, given: Path | None) -> Path:
    """The folder the tools work in. The current folder is taken only when it is not the home
    folder or `/`: there every private file would be one read away. --workspace says it is
    meant."""
    root = (given or Path.cwd()).resolve()
    home = settings.environ.get("HOME")
    if given is None and (root == Path("/") or (home and root == Path(home).resolve())):
        raise UsageError(
            f"the workspace would be {root}, where the file tools could read every private "
            "file; run agentctl from a project folder or pass --workspace DIR",
            hint=f"agentctl run … --workspace {root}  (if you really mean it)",
        )
    return root


def forbidden_paths(settings: Settings) -> tuple[Path, ...]:
    """What no tool (and no `@path`) may reach, wherever the workspace is: agentctl's
    settings, data and store."""
    from agentctl.store import store_paths

    forbidden = (settings.config_path, settings.home, *store_paths(settings.store_url))
    if settings.config_path.parent.name == "agentctl":
        forbidden += (settings.config_path.parent,)
    return forbidden


def user_instructions(settings: Settings) -> Path:
    """The user-level AGENTS.md: beside the settings file."""
    from agentctl.loop.instructions import FILE_NAME

    return settings.config_path.parent / FILE_NAME


def session_workspace(
    settings: Settings, recorded: str | None, own: bool, hint: str | None = None
) -> str:
    """Where a resumed session's tools work: the folder recorded for it (the current one for a
    session that has none). The home folder and `/` are refused as on `run` unless this user
    started the session there (`run --workspace`): a session from elsewhere never chose it."""
    if recorded and not own and not Path(recorded).is_absolute():
        # A relative folder would be wherever `resume` runs: not what was accepted.
        raise UsageError(
            f"the workspace recorded for this session is not a full path: {recorded!r}",
            hint=hint or "agentctl import FILE --workspace DIR (a project folder)",
        )
    root = Path(recorded).resolve() if recorded else None
    home = settings.environ.get("HOME")
    if root is None or not own:
        chosen = root or Path.cwd().resolve()
        # `/`, the home folder, or a folder that holds it: every private file within reach.
        if chosen == Path("/") or (home and Path(home).resolve().is_relative_to(chosen)):
            raise UsageError(
                f"the workspace would be {chosen}, where the file tools could read every private "
                "file; a session from elsewhere works in a project folder",
                hint=hint
                or (
                    "agentctl import FILE --workspace DIR (a project folder)"
                    if root is not None
                    else "run agentctl resume from a project folder"
                ),
            )
        return str(chosen)
    return str(root)


def work_tools(
    settings: Settings,
    root: str,
    spec: TaskSpec,
    yes: bool,
    on_event: Callable[[RunEvent], None] | None = None,
    undoable: bool = False,
    since: int = 0,
) -> ToolRegistry:
    """The work tools, with their confinement, environment and shell sandbox. `undoable`: the
    workspace is snapshotted, so a rollback restores what confined tools did (the approval
    setting `auto-sandboxed` lets those run without asking only then). `since`: approvals asked
    before this checkpoint never count (trust.py)."""
    from agentctl.config import tool_environment
    from agentctl.tools import work_tools
    from agentctl.tools.approval import ApprovalPolicy

    forbidden = forbidden_paths(settings)
    env = tool_environment(settings.environ, [settings.api_key], spec.pass_env)
    auto = settings.approval == "auto-sandboxed" and undoable
    policy = ApprovalPolicy(yes=yes, allow=spec.allow, auto_confined=auto, since=since)
    sandbox, recorded = shell_sandbox(settings, root, spec, forbidden, on_event)
    registry = work_tools(
        Path(root),
        policy,
        forbidden=forbidden,
        shell_env=env,
        sandbox=sandbox,
        sandbox_off=recorded,
    )
    if sandbox is not None and sandbox.cgroups is not None:
        registry.prepare()  # root: the first command's shell joins the pids cgroup meanwhile
    servers = mcp_servers(settings, spec)
    if servers:  # the SDK is imported only here, for a task that uses a server
        from agentctl.tools.mcp_tools import spawn_servers, start_servers

        say = on_event or (lambda _event: None)
        # The stdio servers' processes start now; they boot while the SDK is imported.
        hub = spawn_servers(
            servers, environ=settings.environ, cwd=Path(root), data=settings.home / "mcp"
        )
        loaded = threading.Event()  # the SDK is imported: the model client may load now

        def start() -> tuple[list[Tool], ToolSource]:
            from agentctl.tools.mcp_client import require_sdk

            try:
                require_sdk()
            except BaseException:
                hub.close()
                raise
            finally:
                loaded.set()
            source = start_servers(hub, say=lambda text: say(Notice(text)))
            return list(source.tools), source

        # The servers start (and the SDK loads) while the run loads the model client.
        registry.add_later(start)
        _LOADING[id(registry)] = loaded
    return registry


_LOADING: dict[int, threading.Event] = {}  # registries whose MCP SDK is being imported


def preload(tools: ToolRegistry) -> None:
    """While MCP servers start in their thread: load the model client's package, which the
    first request needs next, so the two overlap."""
    if tools.pending:
        from agentctl.llm.openai_chat import preload_client

        # The SDK's import first (imports share one lock: two at once take as long as both),
        # then the model client's while the server processes start.
        loaded = _LOADING.pop(id(tools), None)
        if loaded is not None:
            loaded.wait(timeout=10)
        preload_client()


def mcp_servers(settings: Settings, spec: TaskSpec) -> list[McpServer]:
    """The MCP servers a task uses: those of the settings file it names (all enabled ones
    when it names none) and its own tables."""
    from agentctl.mcpconfig import chosen, parse_servers

    where = spec.source or "the task"
    own = parse_servers(spec.mcp_servers, where, task=True) if spec.mcp_servers else {}
    return chosen(settings.mcp_servers, spec.mcp, own)


def sandbox_choice(settings: Settings, spec: TaskSpec) -> tuple[str, bool]:
    """The sandbox mode asked for (run --sandbox and the task file, kept in the spec, beat the
    setting; workspace-write by default) and whether commands may reach the network."""
    mode = spec.sandbox or settings.sandbox or DEFAULT_SANDBOX
    network = spec.network if spec.network is not None else bool(settings.network)
    return mode, network


def probe_sandbox_soon(settings: Settings, spec: TaskSpec) -> None:
    """Start finding out whether bubblewrap works, while the store and workspace open."""
    if sandbox_choice(settings, spec)[0] != "off":
        from agentctl.tools.sandbox import probe_soon

        probe_soon(settings.environ)


def shell_sandbox(
    settings: Settings,
    root: str,
    spec: TaskSpec,
    hidden: tuple[Path, ...],
    on_event: Callable[[RunEvent], None] | None,
) -> tuple[Sandbox | None, str]:
    """The sandbox shell commands run in, and what is recorded without one ("off", or
    "unavailable": wanted, and bubblewrap cannot run here; said once, or refused (exit 2)
    under `sandbox = "required"`)."""
    from agentctl.tools.sandbox import (
        HOW_TO_GET,
        OFF,
        REQUIRED,
        UNAVAILABLE,
        Sandbox,
        effective_mode,
        pids_cgroups,
        probe,
        secrets_of,
    )

    mode, network = sandbox_choice(settings, spec)
    say = on_event or (lambda _event: None)
    if mode == OFF:
        say(Notice("shell commands run without a sandbox (sandbox = off)"))
        return None, OFF
    bwrap, why = probe(settings.environ)
    if bwrap is None:
        if mode == REQUIRED:
            raise UsageError(
                f"the sandbox is required and cannot run: {why}",
                hint=f"{HOW_TO_GET}, or run with --sandbox off",
            )
        # Said once per run or resume (this is built once for each), not once per command.
        say(
            Notice(
                f"shell commands run without a sandbox: {why}; each is asked as before and "
                "recorded as sandbox: unavailable"
            )
        )
        return None, UNAVAILABLE
    box = Sandbox(
        bwrap,
        Path(root),
        effective_mode(mode),
        network,
        secrets_of(settings.environ.get("HOME"), hidden),
        cgroups=pids_cgroups(),
    )
    return box, box.mode  # the run header says it


def choose_model(
    settings: Settings, spec: TaskSpec, session_model: str | None, own: bool = True
) -> str:
    """--model, else the session's own model, else the task file's, else the configured default;
    a task with a script runs on it when no model is configured. A session this user did not
    start here (`own` False: imported, moved in, another user's) never picks its script
    itself: a script is a model whoever wrote the file wrote, so it runs only with --model
    scripted."""
    connected = bool(settings.api_key or settings.base_url)
    if not own and not settings.model:
        if session_model and session_model != SCRIPTED:
            return session_model  # a model name, on this user's server with this user's key
        if settings.default_model and settings.default_model != SCRIPTED:
            return settings.default_model
        raise UsageError(
            "this session came from elsewhere and its model is its own script, which runs only "
            "when you ask for it: name a model with --model (or --model scripted to replay the "
            "script)"
            if session_model == SCRIPTED
            else "this session came from elsewhere and no model is configured: name one with "
            "--model"
        )
    if settings.model:
        chosen = settings.model
    elif session_model:
        chosen = session_model
    elif spec.model and connected:
        chosen = spec.model  # without a server to send it to, a task's model falls to its script
    elif settings.default_model:
        chosen = settings.default_model
    elif spec.script is not None:
        chosen = SCRIPTED
    else:
        raise ModelError(
            "no model is configured and the task has no script: set OPENAI_API_KEY (or "
            "OPENAI_BASE_URL) and a model (--model, AGENTCTL_MODEL or `agentctl config set "
            "model NAME`)"
        )
    if chosen == SCRIPTED and spec.script is None:
        raise UsageError("--model scripted needs a task file with a [[script]]")
    return chosen


def server_key(settings: Settings, model_name: str) -> str:
    """The name of the model server a run talks to, as workers share its pace: the task's
    script, the configured base URL (its password masked), or the OpenAI API."""
    from agentctl.config import redact_url

    if model_name == SCRIPTED:
        return SCRIPTED
    return redact_url(settings.base_url) if settings.base_url else "openai"


def runner(
    settings: Settings,
    store: Store,
    spec: TaskSpec,
    model_name: str,
    stack: ExitStack,
    on_event: Callable[[RunEvent], None],
    tools: ToolRegistry | None,
    snapshots: Snapshots | None = None,
    pace: Callable[[str], Pace] | None = None,
) -> Runner:
    """The loop for a run. `pace` (a worker's): the shared pace of a model server, by its
    name (the base URL, `openai`, or `scripted`)."""
    from agentctl.loop.runner import Runner
    from agentctl.tools import ToolRegistry

    if model_name == SCRIPTED:
        on_event(Notice("no model configured: running on the task's scripted model"))

    def model() -> ModelClient:
        from agentctl.llm.openai_chat import ModelConfig, OpenAIModelClient

        if model_name == SCRIPTED:
            from agentctl.llm.scripted import ScriptedModel, ScriptedServer

            assert spec.script is not None
            scripted = ScriptedModel(
                spec.script, delay=settings.scripted_delay, request_log=settings.scripted_log
            )
            server = stack.enter_context(ScriptedServer(scripted))
            config = ModelConfig(
                model=SCRIPTED,
                base_url=server.base_url,
                api_key=None,
                timeout=settings.timeout or ModelConfig.timeout,
                max_retries=0,
            )
        else:
            config = ModelConfig(
                model=model_name,
                base_url=settings.base_url,
                api_key=settings.api_key,
                timeout=settings.timeout or ModelConfig.timeout,
                max_retries=ModelConfig.max_retries
                if settings.retries is None
                else settings.retries,
            )
        paced = None
        if pace is not None:
            paced = pace(server_key(settings, model_name))
        client = OpenAIModelClient(config, notify=lambda text: on_event(Notice(text)), pace=paced)
        if model_name == SCRIPTED:
            from agentctl.llm.scripted import ScriptedClient

            assert spec.script is not None
            return ScriptedClient(client, spec.source, len(spec.script))
        return client

    def counter() -> TokenCounter:
        from agentctl.loop.context import TiktokenCounter

        return TiktokenCounter(model_name)

    return Runner(
        store,
        model,
        counter,
        tools or ToolRegistry(),
        now,
        on_event,
        budget=context_budget(settings, spec, model_name),
        strategy=compaction_strategy(settings, spec),
        snapshots=snapshots,
    )


_SAID: set[str] = set()  # what this process already told the user about snapshots


def snapshots(
    settings: Settings,
    root: str | None,
    on_event: Callable[[RunEvent], None],
    create: bool = True,
) -> Snapshots | None:
    """The workspace's snapshot store, or None (said once) where files cannot be snapshotted:
    no git, or a workspace that is the home folder or `/`. A rollback then restores the
    conversation only."""
    from agentctl.workspace.snapshots import (
        MAX_CAPTURE,
        MAX_FILE,
        Snapshots,
        SnapshotsUnavailable,
        refuse_reason,
    )

    if root is None:
        return None
    reason = refuse_reason(Path(root), settings.environ.get("HOME"))
    try:
        if reason is not None:
            raise SnapshotsUnavailable(reason)
        from agentctl.store import store_paths

        # agentctl's own files are never captured nor restored, wherever the workspace is.
        own = (settings.config_path, *store_paths(settings.store_url))
        return Snapshots(
            Path(root),
            settings.home,
            max_file=settings.snapshot_max_file or MAX_FILE,
            max_capture=settings.snapshot_max_capture or MAX_CAPTURE,
            create=create,
            private=own,
        )
    except SnapshotsUnavailable as exc:
        if create and str(exc) not in _SAID:
            _SAID.add(str(exc))
            on_event(
                Notice(
                    f"{exc}: workspace files are not snapshotted; a rollback restores the "
                    "conversation only"
                )
            )
        return None


def context_budget(settings: Settings, spec: TaskSpec, model_name: str) -> Budget:
    """The task file's window, else the configured one, else the model's known one."""
    from agentctl.loop.context import budget_for

    if spec.context_window:
        return budget_for(model_name, spec.context_window, "task file")
    if settings.context_window:
        source = settings.sources.get("context_window", "config file")
        return budget_for(model_name, settings.context_window, source)
    return budget_for(model_name)


def compaction_strategy(settings: Settings, spec: TaskSpec) -> str:
    from agentctl.config import DEFAULT_STRATEGY

    return spec.context_strategy or settings.context_strategy or DEFAULT_STRATEGY


def kept_snapshots(settings: Settings, store: Store, session_id: str) -> Snapshots | None:
    """The snapshots of a session whose workspace is a worker's (queued: it records none),
    from the trees its workers kept in a PostgreSQL store, taken into a private mirror under
    agentctl's data folder: so `diff` and `fork --workspace` work on any machine. None where
    the store keeps no trees for it."""
    if not hasattr(store, "with_connection"):
        return None
    from agentctl.store import pg_queue

    pg = pg_queue.on(store)
    known: list[str] = pg.with_connection(lambda c: pg_queue.known_trees(c, session_id))
    if not known:
        return None
    folder = settings.home / "mirrors" / session_id
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    mirror = snapshots(settings, str(folder), lambda _event: None)
    if mirror is None:
        return None
    missing = [t for t in known if not mirror.has(t)]
    if missing:
        packs = pg.with_connection(lambda c: pg_queue.tree_packs(c, session_id, missing))
        for tree, pack, modes in packs:
            mirror.unpack(tree, pack, modes)
    return mirror
