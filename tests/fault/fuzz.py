"""Crash fuzzing: SIGKILL real agentctl processes at every named fault point, resume, check.

Each kill point is (point, n): a forked child arms `agentctl.faults` and drives a scenario —
start, answer questions, finish, roll back, answer again, finish — and dies the n-th time it
reaches the point. Fresh children then drive the same scenario from wherever the store says it
stands, until it is complete. Children are forked from an interpreter that has already imported
everything, so a kill point costs a fraction of a second instead of a Python start-up.

After every scenario: checkpoints numbered without gaps or repeats, parents forming a tree,
the same events, task state and conversation as a clean run, no stored model reply asked for
twice, a side effect never run twice, `PRAGMA integrity_check` ok, every JSON-lines line parsed.

    python -m tests.fault.fuzz --rounds 3          # the longer run: adds random double faults
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import signal
import sqlite3
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentctl import faults
from agentctl.config import Settings
from agentctl.domain.lifecycle import State
from agentctl.domain.session import ScriptToolCall, ScriptTurn, TaskSpec
from agentctl.domain.tasks import load_task_file
from agentctl.errors import NoStoreError
from agentctl.store import open_store
from agentctl.tools import SideEffect, Tool, ToolOutcome, ToolRegistry
from agentctl.tools.approval import ApprovalPolicy
from agentctl.tools.files import Workspace
from agentctl.tools.sandbox import Sandbox, probe
from agentctl.tools.shell import RunShell
from agentctl.usecases import common, inspect, rollback, runs, sessions
from agentctl.usecases.verify import verify_store

ROOT = Path(__file__).resolve().parents[2]
TOOL_POINTS = ("tool_before_effect", "tool_after_effect")


@dataclass
class ChargeCard:
    """A side effect counted in a ledger outside the store."""

    ledger: Path
    name: str = "charge_card"
    description: str = "Charge the customer's card."
    side_effect: SideEffect = SideEffect.WRITE
    parameters: dict[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {"amount": {"type": "number"}}}
    )

    def run(self, arguments: dict[str, Any]) -> ToolOutcome:
        faults.hit("tool_before_effect")
        with self.ledger.open("a") as f:
            f.write(f"charged {arguments.get('amount')}\n")
            f.flush()
            os.fsync(f.fileno())
        faults.hit("tool_after_effect")
        return ToolOutcome(f"charged {arguments.get('amount')}")


@dataclass
class WriteNote:
    """A file written in the workspace: snapshotted after, put back by a rollback."""

    workspace: Path
    name: str = "write_note"
    description: str = "Write the note."
    side_effect: SideEffect = SideEffect.WRITE
    parameters: dict[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {"text": {"type": "string"}}}
    )

    def run(self, arguments: dict[str, Any]) -> ToolOutcome:
        (self.workspace / "note.txt").write_text(str(arguments.get("text")))
        return ToolOutcome("written")


@dataclass(frozen=True)
class LookUp:
    """A read with a long answer: enough of them overflow a small context window."""

    name: str = "look_up"
    description: str = "Look up a customer record."
    side_effect: SideEffect = SideEffect.READ
    parameters: dict[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {"id": {"type": "integer"}}}
    )

    def run(self, arguments: dict[str, Any]) -> ToolOutcome:
        n = int(arguments.get("id", 0))
        fields = " ".join(f"field{k}=value{n * k % 97}" for k in range(60))
        return ToolOutcome(f"record {n}: {fields}")


def _call(name: str, **arguments: Any) -> ScriptToolCall:
    return ScriptToolCall(name=name, arguments=arguments)


PAY = TaskSpec(
    goal="Pay invoice 1042",
    script=(
        ScriptTurn(tool_calls=(_call("submit_plan", steps=["charge", "confirm"]),)),
        ScriptTurn(tool_calls=(_call("charge_card", amount=120),)),
        ScriptTurn(tool_calls=(_call("complete_step", summary="charged"),)),
        ScriptTurn(tool_calls=(_call("finish", result="paid: {{last_input}}"),)),
    ),
)


# Three long reads in a 1,536-token window: the context is compacted (summarized by the model)
# twice on the way, so kills land inside summary calls and compaction commits too.
COMPACT = TaskSpec(
    goal="Collect records 1 to 3",
    context_window=1536,
    script=(
        ScriptTurn(tool_calls=(_call("submit_plan", steps=["collect"]),)),
        *(ScriptTurn(tool_calls=(_call("look_up", id=n),)) for n in range(1, 4)),
        ScriptTurn(tool_calls=(_call("complete_step", summary="collected"),)),
        ScriptTurn(tool_calls=(_call("finish", result="three records"),)),
    ),
)


# A file written, then a rollback past it: kills land inside the workspace restore too.
EDIT = TaskSpec(
    goal="Write the note",
    script=(
        ScriptTurn(tool_calls=(_call("submit_plan", steps=["write"]),)),
        ScriptTurn(tool_calls=(_call("write_note", text="v1"),)),
        ScriptTurn(tool_calls=(_call("complete_step", summary="written"),)),
        ScriptTurn(tool_calls=(_call("finish", result="note written"),)),
    ),
)


# Shell commands in the sandbox (issue 27): each appends to a workspace file, then a rollback
# past both, and the same commands again on the new branch.
SHELL = TaskSpec(
    goal="Log two lines",
    script=(
        ScriptTurn(tool_calls=(_call("submit_plan", steps=["log"]),)),
        ScriptTurn(tool_calls=(_call("run_shell", command="echo one >> log.txt"),)),
        ScriptTurn(
            tool_calls=(_call("run_shell", command="echo two >> log.txt && wc -l log.txt"),)
        ),
        ScriptTurn(tool_calls=(_call("complete_step", summary="logged"),)),
        ScriptTurn(tool_calls=(_call("finish", result="two lines"),)),
    ),
)


@dataclass(frozen=True)
class Scenario:
    name: str
    spec: TaskSpec
    rollback_steps: int | None = None  # after the first done: roll back, answer again, finish
    answers: tuple[str, str] = ("June", "July")
    sandboxed_shell: bool = False  # run_shell among the tools, in the sandbox (bubblewrap)
    # agentctl's file tools on a copy of sample_tasks/notes: read-only calls (list_files,
    # read_file) whose next request goes out before their result is stored, mixed in one reply
    # with a write.
    notes: bool = False


SCENARIOS = [
    Scenario(
        "plan_trip", load_task_file(ROOT / "sample_tasks" / "plan_trip.toml"), rollback_steps=3
    ),
    Scenario("release_notes", load_task_file(ROOT / "sample_tasks" / "release_notes.toml")),
    Scenario("standup", load_task_file(ROOT / "sample_tasks" / "standup.toml")),
    Scenario("pay", PAY),
    Scenario("compact", COMPACT),
    Scenario("edit", EDIT, rollback_steps=6),
    Scenario("shell", SHELL, rollback_steps=10, sandboxed_shell=True),
    Scenario(
        "summarize_notes",
        load_task_file(ROOT / "sample_tasks" / "summarize_notes.toml"),
        rollback_steps=4,
        notes=True,
    ),
]


def sandboxed_shell(work: Path) -> RunShell:
    """run_shell in the sandbox; a scenario that needs one fails where bubblewrap cannot run."""
    bwrap, why = probe(os.environ)
    if bwrap is None:
        raise RuntimeError(f"the shell scenario runs in the sandbox, and {why}")
    return RunShell(Workspace(work), sandbox=Sandbox(bwrap, work))


@dataclass
class World:
    """One scenario's files: the store, the model's request log, the side-effect ledger."""

    root: Path
    backend: str
    url: str = ""  # a PostgreSQL world's database; file backends keep their store in root

    @property
    def settings(self) -> Settings:
        url = self.url or (
            f"sqlite://{self.root / 'agentctl.db'}"
            if self.backend == "sqlite"
            else f"json://{self.root / 'jsonl'}"
        )
        return Settings.load(
            {
                "AGENTCTL_HOME": str(self.root),
                "AGENTCTL_STORE": url,
                "AGENTCTL_SCRIPTED_LOG": str(self.root / "requests.log"),
            }
        )

    @property
    def ledger(self) -> Path:
        return self.root / "ledger"


def drive(world: World, scenario: Scenario) -> None:
    """Take the scenario from wherever the store says it stands to its end (idempotent)."""
    settings = world.settings
    work = world.root / "work"  # the workspace: snapshotted, restored by rollbacks
    work.mkdir(exist_ok=True)
    kit: list[Tool] = [ChargeCard(world.ledger), LookUp(), WriteNote(work)]
    if scenario.sandboxed_shell:
        kit.append(sandboxed_shell(work))
    if scenario.notes:
        from agentctl.tools import work_tools

        for note in sorted((ROOT / "sample_tasks" / "notes").glob("*.md")):
            if not (work / note.name).exists():  # a kill may come before the session does
                (work / note.name).write_text(note.read_text())
        files = work_tools(work, ApprovalPolicy(yes=True))
        kit += [t for name in ("list_files", "read_file", "write_file") if (t := files.get(name))]
    tools = ToolRegistry(kit, ApprovalPolicy(yes=True))
    quiet: Callable[[Any], None] = lambda _event: None  # noqa: E731
    try:
        started = sessions.list_sessions(settings, sessions.Filters(limit=None))
    except NoStoreError:  # killed before its store was made: list makes none
        started = []
    if not started:
        runs.start_session(
            settings,
            scenario.spec,
            max_turns=None,
            ask=None,
            on_event=quiet,
            tools=tools,
            workspace=work,
        )
    while True:
        [summary] = sessions.list_sessions(settings, sessions.Filters(limit=None))
        _, history = inspect.session_history(settings, summary.id)
        rolled = any(c.kind == "rollback" for c in history)
        if summary.state == State.DONE.value:
            if scenario.rollback_steps and not rolled:
                rollback.rollback_session(
                    settings, summary.id, to=None, steps=scenario.rollback_steps
                )
                continue
            return
        answer = None
        if summary.state == State.WAITING_FEEDBACK.value:
            answer = scenario.answers[1 if rolled else 0]
        runs.resume_session(
            settings,
            summary.id,
            answer=answer,
            max_turns=None,
            ask=None,
            on_event=quiet,
            tools=tools,
        )


def in_child(action: Callable[[], None], armed: tuple[str, int] | None) -> bool:
    """Run `action` in a forked process; True if it was killed by its armed fault."""
    pid = os.fork()
    if pid == 0:  # the child: never return into the parent's code
        code = 0
        try:
            if armed:
                faults.arm(*armed)
            action()
        except BaseException:
            traceback.print_exc()
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
        return True
    if os.WEXITSTATUS(status) != 0:
        raise AssertionError(
            f"a child failed with exit {os.WEXITSTATUS(status)} (see its traceback)"
        )
    return False


def observe(world: World) -> dict[str, Any]:
    """What must be equal to a clean run: events, task state, conversation, side effects."""
    store = open_store(world.settings.store_url)
    try:
        [summary] = store.list_sessions()
        history = store.history(summary.id)
        session = store.load(summary.id)
    finally:
        store.close()
    return {
        "events": [(c.kind, c.parent, c.from_state, c.to_state) for c in history],
        "task": session.task.model_dump(),
        "messages": [m.model_dump(exclude={"tokens"}) for m in session.messages],
        "ids": [c.id for c in history],
        "files": {
            p.name: p.read_text() for p in sorted((world.root / "work").glob("*")) if p.is_file()
        },
    }


def check_invariants(world: World, clean: dict[str, Any], kills: int) -> list[str]:
    """Every promise the store makes after a crash; returns what was broken."""
    problems = []
    seen = observe(world)
    n = len(seen["ids"])
    if seen["ids"] != list(range(1, n + 1)):
        problems.append(f"checkpoint ids are not 1..{n}: {seen['ids']}")
    for checkpoint_id, (event, parent, _, _) in enumerate(seen["events"], 1):
        if checkpoint_id == 1:
            ok = parent is None
        elif event == "rollback":
            ok = parent is not None and parent < checkpoint_id
        else:
            ok = parent == checkpoint_id - 1
        if not ok:
            problems.append(f"checkpoint {checkpoint_id} ({event}) has parent {parent}")
    ledger = world.ledger.read_text().splitlines() if world.ledger.exists() else []
    in_flight = any("outcome is unknown" in (m.get("content") or "") for m in seen["messages"])
    if len(ledger) > 1:
        problems.append(f"a side effect ran {len(ledger)} times")
    if not in_flight:
        for key in ("events", "task", "messages", "files"):
            if seen[key] != clean[key]:
                problems.append(f"{key} differ from a clean run")
        if len(ledger) != len(clean["ledger"]):
            problems.append(f"side effects: {len(ledger)}, clean run: {len(clean['ledger'])}")
    # A reply lost with a killed process is asked for again (at most once per kill); a stored
    # one never is. A rollback asks again legitimately, and the clean run does so too.
    turns = (world.root / "requests.log").read_text().split()
    if len(turns) > len(clean["requests"]) + kills:
        problems.append(f"model asked again for stored replies: {sorted(turns)}")
    store = open_store(world.settings.store_url)
    try:
        store_problems, reports = verify_store(store)
    finally:
        store.close()
    problems += [f"verify: {p}" for p in store_problems]
    problems += [f"verify: {p}" for r in reports for p in r.problems]
    if world.backend == "sqlite":
        db = sqlite3.connect(world.root / "agentctl.db")
        verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
        broken_keys = db.execute("PRAGMA foreign_key_check").fetchall()
        db.close()
        if verdict != "ok" or broken_keys:
            problems.append(f"integrity_check: {verdict}; foreign keys: {broken_keys}")
    elif world.backend == "json":
        for log in (world.root / "jsonl").rglob("events.jsonl"):
            for number, line in enumerate(log.read_bytes().split(b"\n")[:-1], 1):
                try:
                    json.loads(line)
                except ValueError:
                    problems.append(f"{log} line {number} does not parse")
    return problems


def prewarm() -> None:
    """Import openai and load the vocabulary once, here: forked children inherit both."""
    import openai  # noqa: F401

    from agentctl.loop.context import TiktokenCounter

    TiktokenCounter("scripted")


def clean_run(
    root: Path, backend: str, scenario: Scenario, database: Callable[[str], str] | None = None
) -> dict[str, Any]:
    # In this process, not a child: it also warms every lazy import the children will inherit.
    prewarm()
    world = World(root, backend, database(f"{scenario.name}_clean") if database else "")
    root.mkdir(parents=True)
    drive(world, scenario)
    observed = observe(world)
    observed["ledger"] = world.ledger.read_text().splitlines() if world.ledger.exists() else []
    observed["requests"] = (root / "requests.log").read_text().split()
    return observed


@dataclass
class Report:
    kill_points: int = 0
    scenarios: int = 0
    problems: list[str] = field(default_factory=list)


def fuzz_scenario(
    root: Path,
    backend: str,
    scenario: Scenario,
    report: Report,
    *,
    start: int = 1,
    stride: int = 1,
    double_faults: random.Random | None = None,
    database: Callable[[str], str] | None = None,
) -> None:
    """Kill at every (point, n) for n = start, start + stride, …; resume each and check.
    `database(name)` makes a new database for each world of a PostgreSQL fuzz."""
    clean = clean_run(root / "clean", backend, scenario, database)
    points = faults.POINTS + (TOOL_POINTS if scenario.name == "pay" else ())
    for point in points:
        occurrence = start
        while True:
            name = f"{scenario.name}_{point}_{occurrence}".replace("-", "_")
            world = World(
                root / f"{point}-{occurrence}", backend, database(name) if database else ""
            )
            world.root.mkdir(parents=True)
            if not in_child(lambda world=world: drive(world, scenario), (point, occurrence)):
                break  # the scenario reaches this point fewer than `occurrence` times
            report.kill_points += 1
            kills = 1
            if double_faults is not None:  # kill the recovery too, somewhere random
                second = (double_faults.choice(faults.POINTS), double_faults.randint(1, 4))
                kills += in_child(lambda world=world: drive(world, scenario), second)
                report.kill_points += kills - 1
            assert not in_child(lambda world=world: drive(world, scenario), None)
            report.scenarios += 1
            for problem in check_invariants(world, clean, kills):
                report.problems.append(
                    f"{scenario.name}/{backend} killed at {point}#{occurrence}: {problem}"
                )
            occurrence += stride


# -- moves and imports cut short (issue 29 item 18) ----------------------------------------------


def _store_url(root: Path, backend: str, database: Callable[[str], str] | None, name: str) -> str:
    if backend == "sqlite":
        return f"sqlite://{root / name / 'agentctl.db'}"
    if backend == "json":
        return f"json://{root / name}"
    assert database is not None, "a PostgreSQL fuzz needs a database maker"
    return database(f"{root.name}_{name}".replace("-", "_"))


def _paused_session(settings: Settings) -> str:
    """plan_trip started and left at its question: the session a move carries."""
    spec = load_task_file(ROOT / "sample_tasks" / "plan_trip.toml")
    report = runs.start_session(
        settings, spec, max_turns=None, ask=None, on_event=lambda _event: None
    )
    return report.session.info.id


def runs_here(url: str, session_id: str) -> bool:
    """Whether `resume` could take the session in this store now: it is there, not marked as
    moved away, and its lease can be taken (a killed mover's is; an arrival lease is not)."""
    from agentctl.errors import SessionBusyError, UsageError
    from agentctl.store.lease import Lease

    store = open_store(url)
    try:
        if session_id not in store.match_sessions(""):
            return False
        try:
            common.refuse_if_moved(store, session_id)
            store.acquire_lease(session_id, Lease.mine("probe"))
        except (SessionBusyError, UsageError):
            return False
        store.release_lease(session_id, "probe")
        return True
    finally:
        store.close()


def _verified(url: str) -> list[str]:
    store = open_store(url)
    try:
        store_problems, reports = verify_store(store)
    finally:
        store.close()
    return store_problems + [p for r in reports for p in r.problems]


def fuzz_move(
    root: Path,
    source: str,
    target: str,
    report: Report,
    database: Callable[[str], str] | None = None,
) -> None:
    """Kill `move` at every commit it makes (the copy in the target, the mark in the source)
    and at each of its steps; after each kill at most one copy may run, and running the move
    again must finish it: the target's copy whole and running, the source marked."""
    from agentctl.usecases import transfer

    prewarm()
    commits_done = False
    points = [("commit_started", n) for n in range(1, 200)]
    points += [(point, 1) for point in faults.MOVE_POINTS]
    for point, occurrence in points:
        if point == "commit_started" and commits_done:
            continue
        world = root / f"move-{point}-{occurrence}"
        world.mkdir(parents=True)
        here = Settings.load(
            {
                "AGENTCTL_HOME": str(world),
                "AGENTCTL_STORE": _store_url(world, source, database, "source"),
            }
        )
        there = _store_url(world, target, database, "target")
        sid = _paused_session(here)
        move = functools.partial(transfer.move_session, here, sid, there)
        if not in_child(move, (point, occurrence)):
            if point == "commit_started":  # the move commits fewer times than this
                commits_done = True
                continue
            report.problems.append(f"move {source}->{target}: never reached {point}")
            continue
        report.kill_points += 1
        where = f"move {source}->{target} killed at {point}#{occurrence}"
        running = [url for url in (here.store_url, there) if runs_here(url, sid)]
        if len(running) > 1:
            report.problems.append(f"{where}: the session runs in both stores")
        for url in (here.store_url, there):
            report.problems += [f"{where}: verify {p}" for p in _verified(url)]
        assert not in_child(move, None)
        report.scenarios += 1
        if runs_here(here.store_url, sid) or not runs_here(there, sid):
            report.problems.append(f"{where}: the move run again did not finish it")
        src, dst = open_store(here.store_url), open_store(there)
        try:
            left = [(c.id, c.kind) for c in src.history(sid)]
            arrived = [(c.id, c.kind) for c in dst.history(sid)]
            if left[:-1] != arrived or left[-1][1] != "moved":
                report.problems.append(f"{where}: the copies differ: {left} / {arrived}")
        finally:
            src.close()
            dst.close()
        for url in (here.store_url, there):
            report.problems += [f"{where}, run again: verify {p}" for p in _verified(url)]


def fuzz_import(
    root: Path, backend: str, report: Report, database: Callable[[str], str] | None = None
) -> None:
    """Kill `import` at every commit: the session is there whole or not at all, and the
    import run again completes it."""
    from agentctl.usecases import transfer

    prewarm()
    origin = Settings.load(
        {"AGENTCTL_HOME": str(root), "AGENTCTL_STORE": f"sqlite://{root / 'origin.db'}"}
    )
    root.mkdir(parents=True, exist_ok=True)
    sid = _paused_session(origin)
    export = root / "session.jsonl"
    transfer.export_session(origin, sid, export)
    total = len(export.read_text().splitlines()) - 1
    for occurrence in range(1, 200):
        world = root / f"import-{occurrence}"
        world.mkdir()
        settings = Settings.load(
            {
                "AGENTCTL_HOME": str(world),
                "AGENTCTL_STORE": _store_url(world, backend, database, "target"),
            }
        )
        again = functools.partial(transfer.import_file, settings, str(export), new_id=False)
        if not in_child(again, ("commit_started", occurrence)):
            break
        report.kill_points += 1
        where = f"import into {backend} killed at commit #{occurrence}"
        store = open_store(settings.store_url)
        try:
            ids = store.match_sessions("")
            if ids and len(store.history(sid)) != total:
                report.problems.append(f"{where}: a part of the session is visible")
        finally:
            store.close()
        report.problems += [f"{where}: verify {p}" for p in _verified(settings.store_url)]
        assert not in_child(again, None)
        report.scenarios += 1
        store = open_store(settings.store_url)
        try:
            if len(store.history(sid)) != total:
                report.problems.append(f"{where}: the import run again left it incomplete")
        finally:
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds with random double faults")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    import tempfile

    base = args.dir or Path(tempfile.mkdtemp(prefix="agentctl-fuzz-"))
    report = Report()
    started = time.monotonic()
    for round_number in range(args.rounds):
        rng = random.Random(args.seed + round_number) if round_number else None
        for backend in ("sqlite", "json"):
            for scenario in SCENARIOS:
                root = base / f"r{round_number}" / backend / scenario.name
                fuzz_scenario(root, backend, scenario, report, double_faults=rng)
        found = len(report.problems)
        print(f"round {round_number + 1}: {report.kill_points} kill points, {found} problems")
    elapsed = time.monotonic() - started
    print(
        json.dumps(
            {
                "kill_points": report.kill_points,
                "scenarios": report.scenarios,
                "problems": len(report.problems),
                "seconds": round(elapsed, 1),
            }
        )
    )
    for problem in report.problems:
        print(problem, file=sys.stderr)
    sys.exit(1 if report.problems else 0)


if __name__ == "__main__":
    main()
