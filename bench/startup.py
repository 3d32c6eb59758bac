"""CLI start-up: wall time of commands a user types often, beside `python -c pass` as the floor.

The store holds 100 sessions and one of 1,000 checkpoints, as a long-time user's would. Each
command is run `runs` times in a fresh process; the median counts.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def build_store(root: Path) -> tuple[str, str]:
    from agentctl.domain.session import Message, SessionInfo, Task, TaskSpec, Usage
    from agentctl.store import open_store
    from agentctl.store.base import CheckpointDraft

    url = f"sqlite://{root / 'agentctl.db'}"
    store = open_store(url)
    for n in range(100):
        info = SessionInfo(
            id=f"s{n:07d}", spec=TaskSpec(goal=f"goal {n}"), model="m", created_at="t"
        )
        store.create_session(
            info,
            CheckpointDraft(None, "new_task", "idle", "planning", "t", Task(goal="g"), Usage()),
        )
    long_id = "long0001"
    info = SessionInfo(id=long_id, spec=TaskSpec(goal="a long one"), model="m", created_at="t")
    head = store.create_session(
        info,
        CheckpointDraft(None, "new_task", "idle", "executing", "t", Task(goal="g"), Usage()),
    ).id
    for step in range(2, 1001):
        message = Message(role="user", content="x" * 400, tokens=100)
        draft = CheckpointDraft(
            head,
            "tool_result",
            "executing",
            "executing",
            f"t{step:05d}",
            Task(goal="g", data={"n": step}),
            Usage(),
            new_messages=(message,),
        )
        head = store.append(long_id, head, draft).id
    store.close()
    return url, long_id


def compiled() -> None:
    """Write agentctl's bytecode before anything is timed. An installed agentctl has it (pip
    compiles on install, and Python writes it on first import); an editable install under
    PYTHONDONTWRITEBYTECODE=1, as on this machine, would compile every module on every start
    (about 60 ms), which no user pays and the floor (site-packages, compiled) does not."""
    import compileall

    import agentctl

    compileall.compile_dir(Path(agentctl.__file__).parent, quiet=2)


def median_wall(command: list[str], env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
        )
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 4)


def measure_startup(root: Path, runs: int = 11) -> dict[str, Any]:
    compiled()
    root.mkdir(parents=True, exist_ok=True)
    url, long_id = build_store(root)
    env = {**os.environ, "AGENTCTL_STORE": url}
    script = Path(sys.executable).parent / "agentctl"
    agentctl = [str(script)] if script.exists() else [sys.executable, "-m", "agentctl"]
    floor = median_wall([sys.executable, "-c", "pass"], env, runs)
    out: dict[str, Any] = {"python -c pass": floor}
    for name, args in (
        ("--help", ["--help"]),
        ("list", ["list"]),
        ("history ID", ["history", long_id]),
    ):
        wall = median_wall([*agentctl, *args], env, runs)
        out[f"agentctl {name}"] = wall
        out[f"agentctl {name} / floor"] = round(wall / floor, 1)
    return out
