"""Time to first model request: from process start to the request arriving at the server.

A local OpenAI-compatible server (the scripted one, in this process) notes when the first
request of each run has arrived whole (its body read, not yet parsed); the process is then
killed (what comes after the first request is not measured here). Subjects, each the median of
7 runs: `agentctl run GOAL`, `agentctl resume` of a fresh session, and of sessions of 1,000 and
10,000 checkpoints (no compaction: the whole conversation is sent), each left as the run that
wrote it leaves a session when it stops: its conversation kept ready (store/ready.py). The
floor, measured in the same run: `python -c "from openai import OpenAI"`, the import any client
of the openai package pays. agentctl's bytecode is written first, as an installed agentctl has
it (see `compiled`).

Run: python -m bench.ttfr [--quick]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentctl.domain.session import ScriptTurn
from agentctl.llm.scripted import ScriptedModel, ScriptedServer
from bench.startup import compiled, median_wall


@dataclass
class Clocked(ScriptedModel):
    """Notes when the first request of a run arrived."""

    first: float | None = None

    def received(self) -> None:
        # Before the server parses the body: its parsing (10 ms for 10,000 messages) is not
        # agentctl's.
        if self.first is None:
            self.first = time.time()


def build_session(url: str, session_id: str, checkpoints: int, home: Path) -> None:
    """A session whose next action is a model call: new_task, then pairs of a model reply
    calling a tool and the tool's result."""
    from agentctl.domain.lifecycle import CheckpointKind, State
    from agentctl.domain.session import Message, SessionInfo, Task, TaskSpec, Usage
    from agentctl.llm.openai_chat import prepare
    from agentctl.store import open_store
    from agentctl.store.base import CheckpointDraft
    from agentctl.store.listing import keep_listing
    from agentctl.store.ready import keep_ready, owner_of

    store = open_store(url)
    info = SessionInfo(id=session_id, spec=TaskSpec(goal="bench"), model="bench", created_at="t")
    first = CheckpointDraft(
        None,
        CheckpointKind.NEW_TASK,
        State.IDLE,
        State.PLANNING,
        "2026-01-01T00:00:00",
        Task(goal="bench"),
        Usage(),
        new_messages=(
            Message(role="system", content="You are a bench.", tokens=5),
            Message(role="user", content="Goal: bench", tokens=3),
        ),
    )
    head = store.create_session(info, first).id
    # The user's own session, as `run` leaves it: its settings are granted (agentctl/trust.py),
    # so the resume measured is the everyday one, not the first resume of a foreign session.
    from agentctl.config import Settings
    from agentctl.usecases import trust

    settings = Settings.load({"AGENTCTL_HOME": str(home), "AGENTCTL_STORE": url})
    trust.grant(settings, info, trust.Trust(own=True, since=0))
    for n in range(2, checkpoints + 1):
        message, kind = step(n)
        draft = CheckpointDraft(
            head,
            kind,
            State.PLANNING,
            State.PLANNING,
            f"2026-01-01T00:00:{n:05d}",
            Task(goal="bench"),
            Usage(),
            new_messages=(message,),
        )
        head = store.append(session_id, head, draft).id
    if checkpoints % 2 == 0:  # end on a tool result: the next action is a model call
        draft = CheckpointDraft(
            head,
            CheckpointKind.TOOL_RESULT,
            State.PLANNING,
            State.PLANNING,
            "2026-01-02",
            Task(goal="bench"),
            Usage(),
            new_messages=(Message(role="tool", tool_call_id=f"c{head}", content="x", tokens=1),),
        )
        store.append(session_id, head, draft)
    # As the run that wrote it would have left it when it stopped (runner.run).
    session = store.load(session_id)
    keep_ready(store, session, prepare)
    keep_listing(store, session_id, owner_of(info), session.checkpoint.id)
    store.close()


def step(n: int) -> tuple[Any, Any]:
    """Checkpoint `n` (2, 3, ...) of a benchmark session: an even one a model reply calling
    read_file, an odd one that call's result. Its message and checkpoint kind."""
    from agentctl.domain.lifecycle import CheckpointKind
    from agentctl.domain.session import Message, ToolCall

    if n % 2 == 0:
        call = ToolCall(id=f"c{n}", name="read_file", arguments='{"path": "a.txt"}')
        reply = Message(role="assistant", content=None, tool_calls=(call,), tokens=10)
        return reply, CheckpointKind.MODEL_REPLY
    result = Message(role="tool", tool_call_id=f"c{n - 1}", content="x" * 40, tokens=10)
    return result, CheckpointKind.TOOL_RESULT


def request_and_cpu(model: Clocked, command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Seconds from start to the first request at the server, and the child's own CPU seconds
    (user + system) to when it was stopped there: the figure a queued machine stretches
    least. The process is killed at the request."""
    model.first = None
    started = time.time()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while model.first is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.kill()
    _pid, _status, usage = os.wait4(proc.pid, 0)
    proc.returncode = -9  # reaped here: Popen must not wait for it again
    if model.first is None:
        raise RuntimeError(f"{command} sent no request")
    return model.first - started, usage.ru_utime + usage.ru_stime


def first_request(model: Clocked, command: list[str], env: dict[str, str]) -> float:
    return request_and_cpu(model, command, env)[0]


def run(quick: bool) -> dict[str, Any]:
    runs = 3 if quick else 7
    compiled()
    model = Clocked((ScriptTurn(content="hi"),))
    out: dict[str, Any] = {"runs": runs}
    with (
        tempfile.TemporaryDirectory(prefix="agentctl-bench-ttfr-") as tmp,
        ScriptedServer(model) as server,
    ):
        root = Path(tmp)
        url = f"sqlite://{root / 'agentctl.db'}"
        sizes = {"fresh": 1, "1,000 checkpoints": 1000}
        if not quick:
            sizes["10,000 checkpoints"] = 10_000
        for n in sizes.values():
            build_session(url, f"s{n:07d}", n, root / "home")
        env = {
            **os.environ,
            "AGENTCTL_STORE": url,
            "AGENTCTL_HOME": str(root / "home"),
            "OPENAI_BASE_URL": server.base_url,
            "OPENAI_API_KEY": "sk-bench",
            "AGENTCTL_CONTEXT_WINDOW": "10000000",
        }
        script = Path(sys.executable).parent / "agentctl"
        agentctl = [str(script)] if script.exists() else [sys.executable, "-m", "agentctl"]
        out["floor: python -c 'from openai import OpenAI'"] = median_wall(
            [sys.executable, "-c", "from openai import OpenAI"], env, runs
        )
        work = root / "work"
        work.mkdir()
        times = [
            first_request(
                model,
                [*agentctl, "run", "Say hi", "--model", "m", "--workspace", str(work)],
                env,
            )
            for _ in range(runs)
        ]
        out["run GOAL"] = round(statistics.median(times), 4)
        for label, n in sizes.items():
            command = [*agentctl, "resume", f"s{n:07d}", "--model", "m", "--no-input"]
            times = [first_request(model, command, env) for _ in range(runs)]
            out[f"resume, {label}"] = round(statistics.median(times), 4)
    floor = out["floor: python -c 'from openai import OpenAI'"]
    out["run / floor"] = round(out["run GOAL"] / floor, 2)
    for label in sizes:
        if label != "fresh":
            out[f"resume {label} - fresh (ms)"] = round(
                (out[f"resume, {label}"] - out["resume, fresh"]) * 1000, 1
            )
    print("time to first model request (s):", json.dumps(out))
    return out


if __name__ == "__main__":
    run("--quick" in sys.argv)
