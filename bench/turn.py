"""What one turn of the loop costs agentctl itself (issue 30 item 5).

A scripted session runs in this process against the scripted model served by another process
(so the server's work takes nothing from the loop's interpreter), through the real `openai`
client, with a SQLite store and the terminal run view drawing to a pseudo-terminal. Each turn
is a model reply calling one tool, the tool's result, then the next request. agentctl's own
time in a turn is what it spends outside the model and the tool:

- from the reply's last byte (the stream read to its end) to the tool's start, plus
- from the tool's end to the next request going out (the HTTP client's request hook),

which holds reading the reply, both checkpoints (fsynced), deciding, rendering and building the
next request. Two sessions: read-only turns (`read_file`) and `write_file` turns (each with its
workspace snapshot). The floor, measured in the same run on the same disk: two fsynced SQLite
commits of a checkpoint-sized row (what a turn must write). Targets: read-only turn ≤ 3 ms
median and ≤ 6x the floor; write_file turn ≤ 8 ms.

Run: python -m bench.turn [--quick]   (--quick: 40 turns)
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def script(turns: int, tool: str) -> list[dict[str, Any]]:
    """A plan, `turns` calls of `tool`, then finish: the scripted model's turns."""
    out: list[dict[str, Any]] = [
        {"tool_calls": [{"name": "submit_plan", "arguments": {"steps": ["work"]}}]}
    ]
    for n in range(turns):
        if tool == "read_file":
            arguments: dict[str, Any] = {"path": "notes.txt"}
        else:
            arguments = {"path": f"out{n % 8}.txt", "content": f"turn {n}\nsecond line\n"}
        out.append({"tool_calls": [{"name": tool, "arguments": arguments}]})
    out.append({"tool_calls": [{"name": "finish", "arguments": {"result": "done"}}]})
    return out


def serve() -> None:
    """The scripted model, in a process of its own: its turns from stdin (one JSON line), its
    URL on stdout, until stdin closes."""
    from agentctl.domain.session import ScriptTurn
    from agentctl.llm.scripted import ScriptedModel, ScriptedServer

    turns = tuple(ScriptTurn.model_validate(t) for t in json.loads(sys.stdin.readline()))
    with ScriptedServer(ScriptedModel(turns)) as server:
        print(server.base_url, flush=True)
        sys.stdin.read()


class Clock:
    """The moments of each turn, taken by wrapping agentctl's own seams (nothing is mocked):
    the end of a reply's stream, a tool's start and end, a request going out."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, float, float]] = []

    def mark(self, what: str) -> None:
        self.marks.append((what, time.perf_counter(), time.process_time()))

    def commits(self) -> list[float]:
        """Each checkpoint's append (wall time)."""
        out, began = [], 0.0
        for what, wall, _cpu in self.marks:
            if what == "commit_start":
                began = wall
            elif what == "commit_end":
                out.append(wall - began)
        return out

    def own_times(self, cpu: bool = False) -> list[float]:
        """Per turn: (last byte -> tool start) + (tool end -> next request); wall time, or the
        process's CPU time."""
        out: list[float] = []
        last_byte: float | None = None
        tool_end: float | None = None
        before = 0.0
        for what, wall, thread in self.marks:
            at = thread if cpu else wall
            if what == "reply_read":
                last_byte = at
            elif what == "tool_start" and last_byte is not None:
                before, last_byte = at - last_byte, None
            elif what == "tool_end":
                tool_end = at
            elif what == "request" and tool_end is not None:
                out.append(before + at - tool_end)
                tool_end = None
        return out


def instrument(clock: Clock) -> Callable[[], None]:
    """Wrap the seams; returns the undo."""
    from agentctl.llm import openai_chat
    from agentctl.store.sqlite import SQLiteStore
    from agentctl.tools import files

    undo: list[Callable[[], None]] = []

    def wrap(owner: Any, name: str, before: str | None, after: str | None) -> None:
        original = getattr(owner, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if before:
                clock.mark(before)
            try:
                return original(*args, **kwargs)
            finally:
                if after:
                    clock.mark(after)

        setattr(owner, name, wrapped)
        undo.append(lambda: setattr(owner, name, original))

    wrap(openai_chat, "collect", None, "reply_read")
    wrap(openai_chat.OpenAIModelClient, "_on_request", "request", None)
    wrap(files.ReadFile, "run", "tool_start", "tool_end")
    wrap(SQLiteStore, "append", "commit_start", "commit_end")
    wrap(files.WriteFile, "run", "tool_start", "tool_end")
    return lambda: [u() for u in reversed(undo)] and None


def one_session(turns: int, tool: str, root: Path) -> dict[str, Any]:
    from agentctl.config import Settings
    from agentctl.domain.session import TaskSpec
    from agentctl.terminal import render
    from agentctl.terminal.run_view import RunView
    from agentctl.usecases import runs
    from bench.render import _pty_console

    server = subprocess.Popen(
        [sys.executable, "-m", "bench.turn", "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None
    assert server.stdout is not None
    server.stdin.write(json.dumps(script(turns, tool)) + "\n")
    server.stdin.flush()
    base_url = server.stdout.readline().strip()
    work = root / f"work-{tool}"
    work.mkdir()
    (work / "notes.txt").write_text("".join(f"line {n}\n" for n in range(40)))
    env = {
        "AGENTCTL_HOME": str(root / f"home-{tool}"),
        "HOME": str(root),
        "PATH": os.environ.get("PATH", ""),
        "OPENAI_BASE_URL": base_url,
        "OPENAI_API_KEY": "sk-bench",
        "AGENTCTL_CONTEXT_WINDOW": "10000000",  # no compaction: every turn the same
    }
    settings = Settings.load(env)
    spec = TaskSpec(goal="bench the turn", max_turns=turns + 5, model="bench", sandbox="off")
    console, close = _pty_console()
    render.err._console = console  # type: ignore[attr-defined]
    view = RunView()
    clock = Clock()
    undo = instrument(clock)
    try:
        report = runs.start_session(
            settings, spec, max_turns=turns + 5, ask=None, on_event=view, workspace=work, yes=True
        )
        view.finish(report, 0)
    finally:
        undo()
        close()
        render.err._console = None  # type: ignore[attr-defined]
        server.stdin.close()
        server.wait(10)
    assert report.stop.value == "done", report.stop
    own = sorted(clock.own_times())
    cpu = sorted(clock.own_times(cpu=True))
    commits = clock.commits()
    return {
        "turns": len(own),
        "own ms (median)": round(statistics.median(own) * 1000, 3),
        "own ms (p90)": round(own[int(len(own) * 0.9)] * 1000, 3),
        "own CPU ms (median)": round(statistics.median(cpu) * 1000, 3),
        "its commits ms (median of one)": round(statistics.median(commits) * 1000, 3),
    }


def commit_floor(root: Path, pairs: int) -> float:
    """Two fsynced SQLite commits of a checkpoint-sized row, as agentctl's store opens its
    database (WAL, synchronous=FULL): the median pair, in seconds."""
    root.mkdir()
    db = sqlite3.connect(root / "floor.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT)")
    payload = "x" * 900
    times = []
    for _ in range(pairs):
        started = time.perf_counter()
        for _ in range(2):
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO t (payload) VALUES (?)", (payload,))
            db.execute("COMMIT")
        times.append(time.perf_counter() - started)
    db.close()
    return statistics.median(times)


def run(quick: bool) -> dict[str, Any]:
    turns = 40 if quick else 200
    out: dict[str, Any] = {"turns": turns}
    with tempfile.TemporaryDirectory(prefix="agentctl-bench-turn-") as tmp:
        root = Path(tmp)
        # The disk's pace moves with the machine's load: the floor is taken before and after
        # the sessions, and the two medians averaged.
        first = commit_floor(root / "a", turns)
        out["read_file turn"] = one_session(turns, "read_file", root)
        out["write_file turn"] = one_session(turns // 4, "write_file", root)
        floor = (first + commit_floor(root / "b", turns)) / 2
        out["floor: two fsynced commits ms"] = round(floor * 1000, 3)
    read = out["read_file turn"]["own ms (median)"]
    out["read_file turn / floor"] = round(read / max(1e-9, floor * 1000), 2)
    print("agentctl's own time per turn:", json.dumps(out))
    return out


if __name__ == "__main__":
    if "--serve" in sys.argv:
        serve()
    else:
        run("--quick" in sys.argv)
