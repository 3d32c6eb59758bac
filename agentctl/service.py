"""Use cases: start, resume, rollback, list, show, history.

The one place that turns Settings into concrete things — a store from the URL, a model client
(the real `openai` one or the scripted server), a token counter — and hands them to the runner.
It knows nothing of rich or typer: progress goes out through the `on_event` callback.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from agentctl import faults
from agentctl.config import Settings
from agentctl.errors import (
    AgentctlError,
    AmbiguousSessionError,
    ModelError,
    NotWaitingError,
    UnknownSessionError,
    UsageError,
)
from agentctl.records import ConfigRow, Notice, RunReport, SessionView
from agentctl.store import Store, open_store
from agentctl.store.base import CheckpointSummary, SessionSummary

if TYPE_CHECKING:
    from agentctl.context import Budget, TokenCounter
    from agentctl.llm import ModelClient
    from agentctl.records import RollbackReport, RunEvent, SessionReport
    from agentctl.runner import Ask, Runner
    from agentctl.state import TaskSpec, UserProfile
    from agentctl.tools import ToolRegistry

SCRIPTED = "scripted"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@contextmanager
def held_lease(settings: Settings, store: Store, session_id: str) -> Iterator[None]:
    """Hold the session's lease while the block runs, renewed by a heartbeat thread."""
    from agentctl.store.lease import DEFAULT_TTL_S, Lease

    lease = Lease.mine(secrets.token_hex(8))
    store.acquire_lease(session_id, lease)
    stop = threading.Event()

    def heartbeat() -> None:
        # Its own store handle: SQLite connections belong to the thread that opened them.
        try:
            other = open_store(settings.store_url)
        except AgentctlError:
            return
        try:
            while not stop.wait(DEFAULT_TTL_S / 3):
                other.acquire_lease(session_id, lease.renewed())
        except AgentctlError:
            pass  # lost to a takeover: the head check on every commit stops our writes
        finally:
            other.close()

    beat = threading.Thread(target=heartbeat, name="lease-heartbeat", daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join()
        store.release_lease(session_id, lease.token)


@contextmanager
def opened_store(settings: Settings) -> Iterator[Store]:
    store = open_store(settings.store_url)
    try:
        yield store
    finally:
        store.close()


def refuse_if_damaged(store: Store, session_id: str) -> None:
    """A session is written to only while the path its head stands on is sound: damage is
    never extended (exit 6, nothing written). Reading commands still show what they can."""
    from agentctl.errors import StoreError
    from agentctl.verify import path_problems

    history = store.history(session_id)
    problems = path_problems(history, history[-1].id if history else 0)
    if problems:
        raise StoreError(
            f"session {session_id} is damaged ({problems[0]}); nothing was written",
            hint=f"agentctl verify {session_id}, then agentctl rollback {session_id} --to N "
            "(a sound checkpoint)",
        )


def resolve_session(store: Store, prefix: str) -> str:
    """The one session an id or unique id prefix names."""
    matches = store.match_sessions(prefix) if prefix else []
    if prefix in matches:
        return prefix
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UnknownSessionError(f"no session matches {prefix!r}", hint="agentctl list")
    shown = ", ".join(matches[:5]) + (" …" if len(matches) > 5 else "")
    raise AmbiguousSessionError(f"{prefix!r} matches {len(matches)} sessions: {shown}")


# -- running --------------------------------------------------------------------------------


def read_task(argument: str) -> TaskSpec:
    """A task file, or a goal typed on the command line."""
    from agentctl.tasks import goal_task, load_task_file, looks_like_task_file

    return load_task_file(argument) if looks_like_task_file(argument) else goal_task(argument)


def start_session(
    settings: Settings,
    spec: TaskSpec,
    *,
    max_turns: int | None,
    ask: Ask | None,
    on_event: Callable[[RunEvent], None],
    workspace: Path | None = None,
    yes: bool = False,
    tools: ToolRegistry | None = None,
    context_strategy: str | None = None,
) -> RunReport:
    from agentctl import prompts
    from agentctl.config import parse_value
    from agentctl.state import SessionInfo

    if context_strategy is not None:  # kept in the spec: a resume goes on the same way
        parse_value("context_strategy", context_strategy, "--context-strategy")
        spec = spec.model_copy(update={"context_strategy": context_strategy})

    model_name = _choose_model(settings, spec, session_model=None)
    root = str(_workspace(settings, workspace))
    with opened_store(settings) as store, ExitStack() as stack:
        tools = tools or _work_tools(settings, root, spec, yes)
        runner = _runner(settings, store, spec, model_name, stack, on_event, tools)
        profile = store.load_profile()
        info = SessionInfo(
            id=_new_id(store), spec=spec, model=model_name, created_at=now(), workspace=root
        )
        system = prompts.system_prompt(profile.preferences, spec.instructions, tools.names)
        on_event(Notice(f"session {info.id} started", session_id=info.id))
        runner.start(info, system)
        store.save_profile(profile.with_goal(spec.goal))
        with held_lease(settings, store, info.id):
            turns = max_turns or spec.max_turns
            result = runner.run(info.id, answer=None, ask=ask, max_turns=turns)
        return RunReport(result.stop, result.session)


def resume_session(
    settings: Settings,
    prefix: str | None,
    *,
    answer: str | None,
    max_turns: int | None,
    ask: Ask | None,
    on_event: Callable[[RunEvent], None],
    yes: bool = False,
    tools: ToolRegistry | None = None,
) -> RunReport:
    from agentctl.lifecycle import State

    with opened_store(settings) as store, ExitStack() as stack:
        session_id = (
            resolve_session(store, prefix) if prefix is not None else _latest_unfinished(store)
        )
        refuse_if_damaged(store, session_id)
        head = store.head(session_id)
        if answer is not None and head.to_state is not State.WAITING_FEEDBACK:
            raise NotWaitingError(
                f"session {session_id} is {head.to_state.value}, not waiting for input; "
                "resume it without --input"
            )
        # Validated before the lease, so bad input writes nothing; the runner reloads the head
        # under the lease, and every commit checks it.
        stack.enter_context(held_lease(settings, store, session_id))
        info = store.info(session_id)
        spec = info.spec
        model_name = _choose_model(settings, spec, session_model=info.model)
        on_event(
            Notice(
                f"resuming session {session_id} at checkpoint {head.id}",
                session_id=session_id,
            )
        )
        tools = tools or _work_tools(settings, info.workspace or str(Path.cwd()), spec, yes)
        runner = _runner(settings, store, spec, model_name, stack, on_event, tools)
        result = runner.run(
            session_id, answer=answer, ask=ask, max_turns=max_turns or spec.max_turns
        )
        return RunReport(result.stop, result.session)


def _workspace(settings: Settings, given: Path | None) -> Path:
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


def _work_tools(settings: Settings, root: str, spec: TaskSpec, yes: bool) -> ToolRegistry:
    from agentctl.config import tool_environment
    from agentctl.store import store_paths
    from agentctl.tools import work_tools
    from agentctl.tools.approval import ApprovalPolicy

    # Tools never see agentctl's settings, data or store, wherever the workspace is.
    forbidden = (settings.config_path, settings.home, *store_paths(settings.store_url))
    if settings.config_path.parent.name == "agentctl":
        forbidden += (settings.config_path.parent,)
    env = tool_environment(settings.environ, [settings.api_key], spec.pass_env)
    policy = ApprovalPolicy(yes=yes, allow=spec.allow)
    return work_tools(Path(root), policy, forbidden=forbidden, shell_env=env)


def _latest_unfinished(store: Store) -> str:
    for summary in store.list_sessions():
        if summary.state != "done":
            return summary.id
    raise UnknownSessionError("there is no unfinished session to resume", hint="agentctl list")


def _choose_model(settings: Settings, spec: TaskSpec, session_model: str | None) -> str:
    """--model, else the session's own model, else the task file's, else the configured default;
    a task with a script runs on it when no model is configured."""
    connected = bool(settings.api_key or settings.base_url)
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


def _runner(
    settings: Settings,
    store: Store,
    spec: TaskSpec,
    model_name: str,
    stack: ExitStack,
    on_event: Callable[[RunEvent], None],
    tools: ToolRegistry | None,
) -> Runner:
    from agentctl.runner import Runner
    from agentctl.tools import ToolRegistry

    if model_name == SCRIPTED:
        on_event(Notice("no model configured: running on the task's scripted model"))

    def model() -> ModelClient:
        from agentctl.llm import ModelConfig, OpenAIModelClient

        if model_name == SCRIPTED:
            from agentctl.scripted import ScriptedModel, ScriptedServer

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
            )
        return OpenAIModelClient(config, notify=lambda text: on_event(Notice(text)))

    def counter() -> TokenCounter:
        from agentctl.context import TiktokenCounter

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
    )


def _new_id(store: Store) -> str:
    while True:
        candidate = secrets.token_hex(4)
        if not store.match_sessions(candidate):
            return candidate


# -- time travel ----------------------------------------------------------------------------


def rollback_session(
    settings: Settings, prefix: str, *, to: int | None, steps: int | None
) -> RollbackReport:
    """Roll a session back (a fork: see timetravel.py) under its lease; a session running
    elsewhere is busy. The target is validated before the lease, so a bad one writes nothing."""
    from agentctl import timetravel

    if (to is None) == (steps is None):
        raise UsageError("give exactly one of --to CHECKPOINT or --steps N")
    with opened_store(settings) as store:
        session_id = resolve_session(store, prefix)
        plan = timetravel.plan_rollback(store, session_id, to=to, steps=steps)
        with held_lease(settings, store, session_id):
            faults.hit("rollback_started")
            return timetravel.commit_rollback(store, plan, now())


# -- reading --------------------------------------------------------------------------------


def list_sessions(settings: Settings, state: str | None = None) -> list[SessionSummary]:
    from agentctl.lifecycle import State

    states = [s.value for s in State if s is not State.IDLE]
    if state is not None and state not in states:
        raise UsageError(f"--status must be one of {', '.join(states)}, not {state!r}")
    with opened_store(settings) as store:
        sessions = store.list_sessions()
    return [s for s in sessions if state is None or s.state == state]


def show_session(settings: Settings, prefix: str, at: int | None = None) -> SessionView:
    from agentctl.errors import UnknownCheckpointError

    with opened_store(settings) as store:
        session_id = resolve_session(store, prefix)
        try:
            session = store.load(session_id, at)
        except UnknownCheckpointError as exc:
            raise UsageError(str(exc), hint=f"agentctl history {session_id}") from None
    spec = session.info.spec
    return SessionView(
        session,
        context_budget(settings, spec, session.info.model),
        compaction_strategy(settings, spec),
    )


def context_budget(settings: Settings, spec: TaskSpec, model_name: str) -> Budget:
    """The task file's window, else the configured one, else the model's known one."""
    from agentctl.context import budget_for

    if spec.context_window:
        return budget_for(model_name, spec.context_window, "task file")
    if settings.context_window:
        source = settings.sources.get("context_window", "config file")
        return budget_for(model_name, settings.context_window, source)
    return budget_for(model_name)


def compaction_strategy(settings: Settings, spec: TaskSpec) -> str:
    return spec.context_strategy or settings.context_strategy or "summarize"


def show_profile(settings: Settings) -> UserProfile:
    with opened_store(settings) as store:
        return store.load_profile()


def set_preference(settings: Settings, key: str, value: str | None) -> UserProfile:
    """Set (or with value None, remove) one preference."""
    from agentctl.control import preference

    key = key.strip()
    if not key:
        raise UsageError("a preference needs a name")
    if value is not None:
        try:  # the same bounds as the agent's `remember`: one short line of data
            key, value = preference({"key": key, "value": value})
        except ValueError as exc:
            raise UsageError(f"preference {key!r}: {exc}") from None
    with opened_store(settings) as store:
        profile = store.load_profile()
        if value is None:
            if key not in profile.preferences:
                known = ", ".join(sorted(profile.preferences)) or "none"
                raise UsageError(f"no preference {key!r} to unset (known: {known})")
            profile = profile.forget(key)
        else:
            profile = profile.remember(key, value)
        store.save_profile(profile)
        return profile


def verify(settings: Settings, prefix: str | None) -> tuple[list[str], list[SessionReport]]:
    from agentctl.verify import verify_store

    with opened_store(settings) as store:
        ids = [resolve_session(store, prefix)] if prefix else None
        return verify_store(store, ids)


def session_history(settings: Settings, prefix: str) -> tuple[str, list[CheckpointSummary]]:
    with opened_store(settings) as store:
        session_id = resolve_session(store, prefix)
        return session_id, store.history(session_id)


# -- settings file --------------------------------------------------------------------------


def show_config(settings: Settings) -> tuple[Path, list[ConfigRow]]:
    """Every setting with the value in effect and where it came from; secrets masked."""
    from agentctl.config import KEYS, shown_value

    effective = {
        "model": settings.default_model,
        "base_url": settings.base_url,
        "api_key": settings.api_key,
        "store": settings.store_url,
        "timeout": settings.timeout,
        "context_window": settings.context_window,
        "context_strategy": settings.context_strategy,
    }
    rows = []
    for key in KEYS.values():
        value = effective[key.name]
        source = settings.sources.get(key.name, "default" if value is not None else "not set")
        text = None if value is None else shown_value(key.name, str(value))
        rows.append(ConfigRow(key.name, text, source))
    return settings.config_path, rows


def set_config(settings: Settings, key: str, value: str | None) -> tuple[Path, str | None]:
    """Set (or with value None, remove) one key of the settings file. Returns the file and the
    value as it may be shown (secrets masked)."""
    from agentctl.config import KEYS, parse_value, read_file, shown_value, write_file

    if key not in KEYS:
        raise UsageError(f"unknown setting {key!r} (known: {', '.join(KEYS)})")
    path = settings.config_path
    values = read_file(path)
    if value is None:
        if key not in values:
            raise UsageError(f"{key} is not set in {path}")
        del values[key]
    else:
        values[key] = parse_value(key, value)
    try:
        write_file(path, values)
    except OSError as exc:
        raise UsageError(f"cannot write settings file {path}: {exc.strerror or exc}") from None
    return path, None if value is None else shown_value(key, str(values[key]))
