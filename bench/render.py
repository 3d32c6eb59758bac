"""What watching a run costs (issue 25): the run view and the JSON stream against no output.

1. A 200-turn scripted session with shell output, edits and reads runs in this process three
   times: with the terminal run view drawing to a pseudo-terminal (a real pty, drained by a
   thread, as a terminal would), with `--json`'s stream writing to /dev/null, and with events
   discarded. Each view's time inside its event handler is taken per event (the rendering the
   loop waits for); the median and p99 per event, the total, and the session's wall time are
   reported. Targets: <= 1 ms of rendering per event (median), and --json no more than the
   terminal view.
2. `agentctl show ID --transcript` of a 10,000-checkpoint session, in a fresh process, piped:
   the time from the process's start to its first screen (50 lines) on the pipe, and to the
   end; the median of 5 processes. Target: first screen <= 0.3 s.

Run: python -m bench.render [--quick]   (--quick: 40 turns, 1,000 checkpoints, 3 processes)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentctl.domain.records import RunEvent

SCREEN = 50  # lines: a first screen


def script_toml(turns: int) -> str:
    """A plan, then turns that cycle through a shell command with 40 lines of output, an
    edit, a read and a write, then finish."""
    parts = [
        'goal = "bench the run view"\nmax_turns = 1000\nsandbox = "off"\n',
        '[[script]]\ncontent = "Planning."\n[[script.tool_calls]]\nname = "submit_plan"\n'
        'arguments = { steps = ["work"] }\n',
    ]
    for n in range(turns - 2):
        kind = n % 4
        if kind == 0:
            call = 'name = "run_shell"\narguments = { command = "seq 1 40" }'
        elif kind == 1:
            edit = f'path = "notes.txt", old = "line {n - 1}\\n", new = "line {n}\\n"'
            call = f'name = "edit_file"\narguments = {{ {edit} }}'
        elif kind == 2:
            call = 'name = "read_file"\narguments = { path = "notes.txt" }'
        else:
            call = (
                'name = "write_file"\n'
                f'arguments = {{ path = "out{n % 8}.txt", content = "turn {n}\\nsecond line\\n" }}'
            )
        text = f'content = "Turn {n}: working on it."\n' if n % 3 == 0 else ""
        parts.append(f"[[script]]\n{text}[[script.tool_calls]]\n{call}\n")
    parts.append(
        '[[script]]\n[[script.tool_calls]]\nname = "finish"\narguments = { result = "done" }\n'
    )
    return "".join(parts)


class Timed:
    """An event handler's time per event."""

    def __init__(self, handler: Callable[[RunEvent], None]) -> None:
        self.handler = handler
        self.times: list[float] = []

    def __call__(self, event: RunEvent) -> None:
        started = time.perf_counter()
        self.handler(event)
        self.times.append(time.perf_counter() - started)


def _pty_console() -> tuple[Any, Callable[[], None]]:
    """A rich console on a pseudo-terminal, its other side read (and dropped) by a thread."""
    import pty

    from rich.console import Console

    controller, terminal = pty.openpty()
    stream = os.fdopen(terminal, "w", buffering=1, encoding="utf-8")
    done = threading.Event()

    def drain() -> None:
        while not done.is_set():
            try:
                if not os.read(controller, 65536):
                    break
            except OSError:
                break

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    console = Console(
        file=stream, force_terminal=True, width=120, highlight=False, soft_wrap=True, emoji=False
    )

    def close() -> None:
        done.set()
        stream.close()
        os.close(controller)

    return console, close


def one_session(mode: str, turns: int, root: Path) -> dict[str, Any]:
    """Run the session once with `mode`'s view: terminal, json or none."""
    from agentctl.config import Settings
    from agentctl.domain.tasks import load_task_file
    from agentctl.terminal import render
    from agentctl.terminal.event_stream import StreamView
    from agentctl.terminal.run_view import RunView
    from agentctl.usecases import runs as run_use_cases

    home = root / f"home-{mode}"
    work = root / f"work-{mode}"
    work.mkdir()
    (work / "notes.txt").write_text("".join(f"line {n}\n" for n in range(-1, turns)))
    task = root / "bench.toml"
    task.write_text(script_toml(turns))
    settings = Settings.load(
        {"AGENTCTL_HOME": str(home), "HOME": str(root), "PATH": os.environ.get("PATH", "")}
    )
    close: Callable[[], None] = lambda: None  # noqa: E731
    handler: Callable[[RunEvent], None]
    if mode == "terminal":
        console, close = _pty_console()
        render.err._console = console  # type: ignore[attr-defined]
        view = RunView()
        handler = view
    elif mode == "json":
        sink = open(os.devnull, "w")  # noqa: SIM115

        def write(line: str) -> None:
            sink.write(line + "\n")
            sink.flush()

        stream = StreamView(write=write)
        handler = stream
    else:
        handler = lambda _event: None  # noqa: E731
    timed = Timed(handler)
    started = time.perf_counter()
    report = run_use_cases.start_session(
        settings,
        load_task_file(task),
        max_turns=turns + 5,
        ask=None,
        on_event=timed,
        workspace=work,
        yes=True,
    )
    if mode == "terminal":
        view.finish(report, 0)
    elif mode == "json":
        stream.finish(report, 0)
    wall = time.perf_counter() - started
    close()
    if mode == "terminal":
        render.err._console = None  # type: ignore[attr-defined]
    times = sorted(timed.times)
    assert report.stop.value == "done", report.stop
    return {
        "events": len(times),
        "per event ms (median)": round(statistics.median(times) * 1000, 4),
        "per event ms (p99)": round(times[int(len(times) * 0.99) - 1] * 1000, 3),
        "rendering total ms": round(sum(times) * 1000, 1),
        "session wall s": round(wall, 2),
    }


def transcript_first_screen(checkpoints: int, runs: int, root: Path) -> dict[str, Any]:
    from bench.ttfr import build_session

    url = f"sqlite://{root / 'transcript.db'}"
    build_session(url, "t0000001", checkpoints, root / "home-t")
    env = {**os.environ, "AGENTCTL_STORE": url, "AGENTCTL_HOME": str(root / "home-t")}
    script = Path(sys.executable).parent / "agentctl"
    agentctl = [str(script)] if script.exists() else [sys.executable, "-m", "agentctl"]
    firsts, ends, cpus = [], [], []
    for _ in range(runs):
        # CPU time to the first screen (the machine's load does not stretch it): the reader
        # closes the pipe after a screen, the transcript stops at its next write.
        proc = subprocess.Popen(
            [*agentctl, "show", "t0000001", "--transcript"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        for _ in range(SCREEN):
            proc.stdout.readline()
        proc.stdout.close()
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = 0
        cpus.append(usage.ru_utime + usage.ru_stime)
    list_cpus = []
    for _ in range(runs):
        proc = subprocess.Popen([*agentctl, "list"], env=env, stdout=subprocess.DEVNULL)
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = 0
        list_cpus.append(usage.ru_utime + usage.ru_stime)
    for _ in range(runs):
        started = time.perf_counter()
        proc = subprocess.Popen(
            [*agentctl, "show", "t0000001", "--transcript"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdout is not None
        lines = 0
        first = None
        for _line in proc.stdout:
            lines += 1
            if lines == SCREEN:
                first = time.perf_counter() - started
        proc.wait()
        ends.append(time.perf_counter() - started)
        assert first is not None, "the transcript had less than a screen"
        firsts.append(first)
    starts = []  # the same machine's start-up floor: `agentctl list` of this store, whole
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([*agentctl, "list"], env=env, capture_output=True, check=True)
        starts.append(time.perf_counter() - started)
    return {
        "checkpoints": checkpoints,
        "agentctl list s (median)": round(statistics.median(starts), 3),
        "first screen s (median)": round(statistics.median(firsts), 3),
        "first screen CPU s (median)": round(statistics.median(cpus), 3),
        "agentctl list CPU s (median)": round(statistics.median(list_cpus), 3),
        "whole transcript s (median)": round(statistics.median(ends), 3),
        "lines": lines,
    }


def run(quick: bool) -> dict[str, Any]:
    turns = 40 if quick else 200
    out: dict[str, Any] = {"turns": turns}
    with tempfile.TemporaryDirectory(prefix="agentctl-bench-render-") as tmp:
        root = Path(tmp)
        for mode in ("none", "json", "terminal"):
            (root / mode).mkdir()
            out[mode] = one_session(mode, turns, root / mode)
        out["transcript"] = transcript_first_screen(
            1_000 if quick else 10_000, 3 if quick else 5, root
        )
    term, stream = out["terminal"], out["json"]
    out["json / terminal (per event)"] = round(
        stream["per event ms (median)"] / term["per event ms (median)"], 2
    )
    print("run view and stream:", json.dumps(out))
    return out


if __name__ == "__main__":
    run("--quick" in sys.argv)
