"""Session management at scale: search, list --since, and what a fork costs.

A SQLite store of S sessions of 100 messages each (S = 1,000; 200 with --quick), built through
the real store. Measured: `search` of a phrase a few sessions hold (the FTS5 index) in process
and as a whole command, `list --since 2d` as a whole command beside `python -c pass`, and the
bytes a fork of a 1,000-step session adds to the store.

Run: python -m bench.sessions [--quick]
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.startup import median_wall

WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()  # noqa: SIM905


def build(url: str, sessions: int, messages: int = 100) -> None:
    from agentctl.domain.lifecycle import CheckpointKind, State
    from agentctl.domain.session import Message, SessionInfo, Task, TaskSpec, Usage
    from agentctl.store import open_store
    from agentctl.store.base import CheckpointDraft

    store = open_store(url)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    for n in range(sessions):
        sid = f"s{n:07d}"
        info = SessionInfo(id=sid, spec=TaskSpec(goal=f"goal {n}"), model="m", created_at=stamp)

        def batch(k: int, n: int = n) -> tuple[Message, ...]:
            return tuple(
                Message(
                    role="user",
                    content=" ".join(WORDS[(n + k + j + i) % 12] for i in range(40))
                    + (" needle in a haystack" if n % 100 == 7 and k == 3 and j == 0 else ""),
                    tokens=50,
                )
                for j in range(10)
            )

        draft = CheckpointDraft(
            None,
            CheckpointKind.NEW_TASK,
            State.IDLE,
            State.PLANNING,
            stamp,
            Task(goal="g"),
            Usage(),
            new_messages=batch(0),
        )
        head = store.create_session(info, draft).id
        for k in range(1, messages // 10):
            draft = CheckpointDraft(
                head,
                CheckpointKind.MODEL_REPLY,
                State.PLANNING,
                State.PLANNING,
                stamp,
                Task(goal="g"),
                Usage(),
                new_messages=batch(k),
            )
            head = store.append(sid, head, draft).id
    store.close()


def fork_bytes(root: Path) -> dict[str, Any]:
    """Bytes a fork of a 1,000-step session adds to a SQLite store."""
    from bench.subjects import SESSION, AgentctlSubject

    subject = AgentctlSubject("sqlite", root / "fork")
    for step in range(1, 1001):
        subject.commit(step)
    subject.close()
    db = root / "fork" / "agentctl.db"
    settle(db)
    before = db.stat().st_size
    env = {**os.environ, "AGENTCTL_STORE": f"sqlite://{db}", "AGENTCTL_HOME": str(root / "h")}
    subprocess.run(
        [sys.executable, "-m", "agentctl", "fork", SESSION],
        env=env,
        check=True,
        capture_output=True,
    )
    settle(db)
    return {"steps": 1000, "bytes_before": before, "fork_adds": db.stat().st_size - before}


def settle(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def run(quick: bool) -> dict[str, Any]:
    from agentctl.store import open_store

    sessions = 200 if quick else 1000
    out: dict[str, Any] = {"sessions": sessions, "messages_each": 100}
    with tempfile.TemporaryDirectory(prefix="agentctl-bench-sessions-") as tmp:
        root = Path(tmp)
        url = f"sqlite://{root / 'agentctl.db'}"
        started = time.perf_counter()
        build(url, sessions)
        out["build_s"] = round(time.perf_counter() - started, 1)
        store = open_store(url)
        best = min(_timed(lambda: store.search("needle in a haystack", 50)) for _ in range(5))
        hits = store.search("needle in a haystack", 50)
        store.close()
        out["search_in_process_ms"] = round(best * 1000, 2)
        out["search_hits"] = len(hits)
        env = {**os.environ, "AGENTCTL_STORE": url, "AGENTCTL_HOME": str(root / "h")}
        agentctl = [sys.executable, "-m", "agentctl"]
        runs = 3 if quick else 7
        out["python -c pass_s"] = median_wall([sys.executable, "-c", "pass"], env, runs)
        out["agentctl search_s"] = median_wall([*agentctl, "search", "needle"], env, runs)
        out["agentctl list --since 2d_s"] = median_wall(
            [*agentctl, "list", "--since", "2d", "--all"], env, runs
        )
        out["fork"] = fork_bytes(root)
    print("session management:", json.dumps(out))
    return out


def _timed(action: Any) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


if __name__ == "__main__":
    run("--quick" in sys.argv)
