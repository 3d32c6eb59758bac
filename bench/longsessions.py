"""Long sessions (issue 30 items 3 and 6): what a terminal waits for, a resume of a very long
session, and snapshot disk in a flat folder — each beside its floor, measured in the same run.

- history on a terminal: time from start to the first rows on a pseudo-terminal (the child
  writes to a pty; a thread reads it, as a terminal does), `history` of 1,000 and 100,000
  checkpoints, beside `python -c pass` through the same pty.
- resume: time to the first model request of `resume` of a session of 100,000 checkpoints
  left as a run leaves it (conversation kept ready, listing kept), beside a fresh session
  (bench/ttfr.py's measure). Fixtures through the store API (`create_whole`), not the agent.
- snapshots in a flat folder: 20,000 files in one folder, 100 steps each rewriting one small
  file; the snapshot store's growth against the bytes those steps changed, compressed, and
  the capture's time beside `git add -A && git write-tree` of the same folder.

Run: python -m bench.longsessions [--quick]
"""

from __future__ import annotations

import json
import os
import pty
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def long_session(url: str, session_id: str, checkpoints: int, home: Path) -> None:
    """A session whose next action is a model call (new_task, then pairs of a model reply
    calling a tool and its result), written whole, then left as a run that stops leaves it:
    its conversation kept ready, its listing kept, its settings granted."""
    from agentctl.config import Settings
    from agentctl.domain.lifecycle import CheckpointKind, State
    from agentctl.domain.session import Message, SessionInfo, Task, TaskSpec, Usage
    from agentctl.llm.openai_chat import prepare
    from agentctl.store import open_store
    from agentctl.store.base import CheckpointDraft
    from agentctl.store.listing import keep_listing
    from agentctl.store.ready import keep_ready, owner_of
    from agentctl.usecases import trust
    from bench.ttfr import step

    store = open_store(url)
    info = SessionInfo(id=session_id, spec=TaskSpec(goal="bench"), model="bench", created_at="t")
    system = Message(role="system", content="You are a bench.", tokens=5)
    drafts = [
        CheckpointDraft(
            None, CheckpointKind.NEW_TASK, State.IDLE, State.PLANNING, "2026-01-01T00:00:00",
            Task(goal="bench"), Usage(),
            new_messages=(system, Message(role="user", content="Goal: bench", tokens=3)),
        )
    ]  # fmt: skip
    total = checkpoints + (checkpoints % 2 == 0)  # end on a tool result: a model call is next
    for n in range(2, total + 1):
        message, kind = step(n)
        drafts.append(
            CheckpointDraft(
                n - 1, kind, State.PLANNING, State.PLANNING, f"2026-01-01T00:00:{n:06d}",
                Task(goal="bench"), Usage(), new_messages=(message,),
            )
        )  # fmt: skip
    store.create_whole(info, drafts)
    settings = Settings.load({"AGENTCTL_HOME": str(home), "AGENTCTL_STORE": url})
    trust.grant(settings, info, trust.Trust(own=True, since=0))
    session = store.load(session_id)
    keep_ready(store, session, prepare)
    keep_listing(store, session_id, owner_of(info), session.checkpoint.id)
    store.close()


def first_rows(command: list[str], env: dict[str, str], rows: int = 3) -> tuple[float, float]:
    """Seconds from start to the first `rows` lines on a pty, and to the end of the output."""
    controller, terminal = pty.openpty()
    started = time.perf_counter()
    proc = subprocess.Popen(
        command, stdin=terminal, stdout=terminal, stderr=terminal, env=env, close_fds=True
    )
    os.close(terminal)
    first, seen = None, 0
    try:
        while True:
            ready, _, _ = select.select([controller], [], [], 0.05)
            if ready:
                try:
                    data = os.read(controller, 1 << 16)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                seen += data.count(b"\n")
                if first is None and seen >= rows:
                    first = time.perf_counter() - started
            elif proc.poll() is not None:
                break
        proc.wait(timeout=600)
    finally:
        proc.kill()
        os.close(controller)
    end = time.perf_counter() - started
    return (first if first is not None else end), end


def history_on_a_terminal(root: Path, sizes: tuple[int, ...], runs: int) -> dict[str, Any]:
    from bench.startup import compiled

    compiled()
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm-256color"}
    env["AGENTCTL_HOME"] = str(root / "home")
    script = Path(sys.executable).parent / "agentctl"
    agentctl = [str(script)] if script.exists() else [sys.executable, "-m", "agentctl"]
    out: dict[str, Any] = {}
    floor = [first_rows([sys.executable, "-c", "print('a\\nb\\nc')"], env)[0] for _ in range(5)]
    out["floor: python prints 3 lines_s"] = round(statistics.median(floor), 3)
    for size in sizes:
        url = f"sqlite://{root / f'h{size}.db'}"
        long_session(url, f"h{size}", size, root / "home")
        times = [first_rows([*agentctl, "history", f"h{size}", "--store", url], env)
                 for _ in range(runs)]  # fmt: skip
        out[f"history {size:,}: first rows_s"] = round(statistics.median(t[0] for t in times), 3)
        out[f"history {size:,}: all rows_s"] = round(statistics.median(t[1] for t in times), 2)
    return out


def resume_long(root: Path, size: int, runs: int) -> dict[str, Any]:
    """`resume` to its first model request: a fresh session and one of `size` checkpoints,
    run by turns (fresh, long, fresh, long...) so the machine's load falls on both alike. The
    wall time is the server's clock; the CPU time is the child's, to when it was stopped
    (steadier than the wall on a loaded machine)."""
    from agentctl.domain.session import ScriptTurn
    from agentctl.llm.scripted import ScriptedServer
    from bench.startup import compiled
    from bench.ttfr import Clocked, request_and_cpu

    compiled()
    url = f"sqlite://{root / 'resume.db'}"
    home = root / "home-resume"
    for n in (1, size):
        long_session(url, f"r{n:07d}", n, home)
    model = Clocked((ScriptTurn(content="hi"),))
    out: dict[str, Any] = {"runs": runs}
    times: dict[str, list[tuple[float, float]]] = {}
    with ScriptedServer(model) as server:
        env = {
            **os.environ,
            "AGENTCTL_STORE": url,
            "AGENTCTL_HOME": str(home),
            "OPENAI_BASE_URL": server.base_url,
            "OPENAI_API_KEY": "sk-bench",
            "AGENTCTL_CONTEXT_WINDOW": "100000000",
        }
        script = Path(sys.executable).parent / "agentctl"
        agentctl = [str(script)] if script.exists() else [sys.executable, "-m", "agentctl"]
        for _ in range(runs):
            for n in (1, size):
                command = [*agentctl, "resume", f"r{n:07d}", "--model", "m", "--no-input"]
                key = "fresh" if n == 1 else f"{size:,} checkpoints"
                times.setdefault(key, []).append(request_and_cpu(model, command, env))
    for key, pairs in times.items():
        out[f"resume, {key}_s"] = round(statistics.median(w for w, _ in pairs), 3)
        out[f"resume, {key}: CPU_s"] = round(statistics.median(c for _, c in pairs), 3)
    long = f"{size:,} checkpoints"
    out["long - fresh_ms"] = round((out[f"resume, {long}_s"] - out["resume, fresh_s"]) * 1000, 1)
    out["long - fresh: CPU_ms"] = round(
        (out[f"resume, {long}: CPU_s"] - out["resume, fresh: CPU_s"]) * 1000, 1
    )
    return out


def flat_snapshots(root: Path, files: int, steps: int) -> dict[str, Any]:
    """`files` small files in one folder; each of `steps` steps rewrites one of them. The
    snapshot store's growth against the bytes changed (compressed, as git stores them), and
    the capture beside `git add -A && git write-tree` of an identical folder."""
    import zlib

    from agentctl.workspace.snapshots import Snapshots
    from bench.snapshots import floor_capture, plain_git

    def make(folder: Path) -> list[Path]:
        folder.mkdir(parents=True)
        paths = [folder / f"f{n:05d}.txt" for n in range(files)]
        for path in paths:
            path.write_bytes(os.urandom(256).hex().encode())
        return paths

    ours_dir, floor_dir = root / "flat-ours", root / "flat-floor"
    ours_paths, floor_paths = make(ours_dir), make(floor_dir)
    snaps = Snapshots(ours_dir, root / "flat-data")
    env = plain_git(floor_dir)
    tree = snaps.capture().tree
    floor_capture(env, floor_dir)
    before = snaps.size()
    ours, floor, changed = [], [], 0
    for step in range(steps):
        body = os.urandom(256).hex().encode()
        ours_paths[step * 7919 % files].write_bytes(body)
        floor_paths[step * 7919 % files].write_bytes(body)
        changed += len(zlib.compress(body))
        started = time.perf_counter()
        tree = snaps.capture(tree).tree
        ours.append(time.perf_counter() - started)
        floor.append(floor_capture(env, floor_dir))
    added = snaps.size() - before
    out: dict[str, Any] = {
        "files in one folder": files,
        "steps": steps,
        "bytes added": added,
        "bytes changed, compressed": changed,
        "added / changed": round(added / changed, 2),
        "capture_ms": round(statistics.median(ours) * 1000, 1),
        "capture p90_ms": round(sorted(ours)[int(len(ours) * 0.9)] * 1000, 1),
        "floor_ms": round(statistics.median(floor) * 1000, 1),
    }
    out["capture / floor"] = round(out["capture_ms"] / out["floor_ms"], 2)
    return out


def run(quick: bool) -> dict[str, Any]:
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="agentctl-bench-long-") as tmp:
        root = Path(tmp)
        sizes = (1000, 10_000) if quick else (1000, 100_000)
        report["history on a terminal"] = history_on_a_terminal(root, sizes, 1 if quick else 3)
        print("long sessions, history on a terminal:", json.dumps(report["history on a terminal"]))
        report["snapshots, flat folder"] = flat_snapshots(
            root, 2_000 if quick else 20_000, 30 if quick else 100
        )
        print("long sessions, snapshots:", json.dumps(report["snapshots, flat folder"]))
        report["resume"] = resume_long(root, 10_000 if quick else 100_000, 3 if quick else 7)
        print("long sessions, resume to the first request:", json.dumps(report["resume"]))
    return report


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv)))
