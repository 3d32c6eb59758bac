"""MCP tools (issue 26): what a stdio server costs a run, and what agentctl adds to a call.

1. Time to the first model request (bench/ttfr.py's clock: the scripted server notes when the
   request arrived whole), `agentctl run GOAL` with no server configured and with one stdio
   server (`mcp-server-time`); beside them the server's own start-up with the SDK alone
   (`mcp.Client` over the SDK's `stdio_client`, the SDK already imported: spawn, handshake,
   tools/list). The three alternate round by round, so a shared machine's load falls on all
   alike; medians of N rounds. Target: with <= without + server start + 150 ms. The model is
   `gpt-4o`, a model whose window is known: under an unknown model's 8,192-token default the
   byte bound of the MCP tools' schemas no longer surely fits, and the tokenizer is loaded
   before the first request (runner.py `_send_first`), which is the context budget's cost,
   not the server's.
2. Cost per call: `get_current_time` through agentctl's tool (argument check against the
   schema, the call on the hub's event loop from the runner's thread, the result turned into
   text) against the same call made with the SDK directly on its own loop, the median of 200
   calls each after 20 to warm up. Target: <= 1.2x.

Run: python -m bench.mcp [--quick]   (needs the [mcp] extra and mcp-server-time)
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.startup import compiled
from bench.ttfr import Clocked
from bench.ttfr import request_and_cpu as first_request


def server_command() -> str:
    beside = Path(sys.executable).parent / "mcp-server-time"
    found = str(beside) if beside.exists() else shutil.which("mcp-server-time")
    if found is None:
        raise SystemExit("bench.mcp needs mcp-server-time: pip install mcp-server-time")
    return found


def sdk_start(command: str) -> float:
    """Spawn to tools listed with the SDK alone (imported already): the server's own start."""
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters, stdio_client

    async def once() -> float:
        with tempfile.TemporaryFile("w+") as log:  # its stderr to a file, as agentctl's
            started = time.perf_counter()
            params = StdioServerParameters(command=command)
            async with Client(stdio_client(params, errlog=log), cache=None) as client:
                await client.list_tools()
                return time.perf_counter() - started

    return asyncio.run(once())


def ttfr(command: str, runs: int) -> dict[str, float]:
    """Without a server, with one, and the server's own start, in turn, round by round."""
    from agentctl.config import write_file
    from agentctl.domain.session import ScriptTurn
    from agentctl.llm.scripted import ScriptedServer

    model = Clocked((ScriptTurn(content="hi"),))
    subjects = {"without MCP": None, "with one stdio server": {"time": {"command": command}}}
    times: dict[str, list[float]] = {label: [] for label in [*subjects, "server start"]}
    cpu: dict[str, list[float]] = {label: [] for label in subjects}
    with (
        tempfile.TemporaryDirectory(prefix="agentctl-bench-mcp-") as tmp,
        ScriptedServer(model) as server,
    ):
        root = Path(tmp)
        work = root / "work"
        work.mkdir()
        script = Path(sys.executable).parent / "agentctl"
        agentctl = [str(script)] if script.exists() else [sys.executable, "-m", "agentctl"]
        envs = {}
        for label, servers in subjects.items():
            home = root / label.replace(" ", "-")
            home.mkdir()
            if servers:
                write_file(home / "config.toml", {"mcp_servers": servers})
            envs[label] = {
                **os.environ,
                "AGENTCTL_STORE": f"sqlite://{home / 'agentctl.db'}",
                "AGENTCTL_HOME": str(home),
                "OPENAI_BASE_URL": server.base_url,
                "OPENAI_API_KEY": "sk-bench",
                "AGENTCTL_SANDBOX": "off",
            }
        run = [*agentctl, "run", "Say hi", "--model", "gpt-4o", "--workspace", str(work)]
        sdk_start(command)  # warm: the server's bytecode and the page cache
        for _ in range(runs):
            for label in subjects:
                wall, used = first_request(model, run, envs[label])
                times[label].append(wall)
                cpu[label].append(used)
            times["server start"].append(sdk_start(command))
    out = {label: round(statistics.median(t), 4) for label, t in times.items()}
    out |= {f"{label}, CPU": round(statistics.median(t), 4) for label, t in cpu.items()}
    rounds = zip(
        times["with one stdio server"], times["without MCP"], times["server start"], strict=True
    )
    out["overhead, median of the rounds"] = round(
        statistics.median(w - n - s for w, n, s in rounds), 4
    )
    return out


def per_call(command: str, calls: int, warm: int = 20) -> dict[str, float]:
    """Both clients open at once, called in alternating rounds of 10, so load that comes and
    goes weighs on both alike. agentctl's tool is called as the runner calls it, from plain
    synchronous code (the hub runs its loop for the call); the SDK's calls are awaited in a
    running loop, as an asyncio program makes them, ten to a run of that loop."""
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters, stdio_client

    from agentctl.mcpconfig import McpServer
    from agentctl.tools.mcp_tools import spawn_servers, start_servers

    args = {"timezone": "Europe/Lisbon"}
    loop = asyncio.new_event_loop()
    opened: asyncio.Future[Any] = loop.create_future()
    done = asyncio.Event()

    async def hold() -> None:
        # the server's stderr to a file, as agentctl sends it (a terminal is slower)
        with tempfile.TemporaryFile("w+") as log:
            params = StdioServerParameters(command=command)
            async with Client(stdio_client(params, errlog=log), cache=None) as client:
                opened.set_result(client)
                await done.wait()

    async def ten(client: Any, into: list[float]) -> None:
        for _ in range(10):
            started = time.perf_counter()
            result = await client.call_tool("get_current_time", args)
            into.append(time.perf_counter() - started)
            assert not result.is_error

    ours: list[float] = []
    sdk: list[float] = []
    with tempfile.TemporaryDirectory(prefix="agentctl-bench-mcp-") as tmp:
        hub = spawn_servers(
            [McpServer("time", command=command)], environ={}, cwd=Path(tmp), data=Path(tmp)
        )
        source = start_servers(hub, say=lambda _t: None)
        holder = loop.create_task(hold())
        try:
            tool = next(t for t in source.tools if t.remote.name == "get_current_time")
            client = loop.run_until_complete(opened)
            for n in range(0, warm + calls, 10):
                for _ in range(10):
                    started = time.perf_counter()
                    outcome = tool.run(args)
                    elapsed = time.perf_counter() - started
                    assert not outcome.is_error, outcome.content
                    if n >= warm:
                        ours.append(elapsed)
                round_ = [] if n < warm else sdk
                loop.run_until_complete(ten(client, round_))
        finally:
            source.close()
            done.set()
            loop.run_until_complete(holder)
            loop.close()
    a, b = statistics.median(ours), statistics.median(sdk)
    return {
        "agentctl tool (ms)": round(a * 1000, 3),
        "SDK directly (ms)": round(b * 1000, 3),
        "ratio": round(a / b, 3),
    }


def run(quick: bool) -> dict[str, Any]:
    compiled()
    command = server_command()
    runs = 3 if quick else 15
    out: dict[str, Any] = {"runs": runs, "load_average": round(os.getloadavg()[0], 1)}
    first = ttfr(command, runs)
    out["first request, without MCP (s)"] = first["without MCP"]
    out["first request, one stdio server (s)"] = first["with one stdio server"]
    out["first request CPU, without MCP (s)"] = first["without MCP, CPU"]
    out["first request CPU, one stdio server (s)"] = first["with one stdio server, CPU"]
    out["server start with the SDK alone, spawn to tools listed (s)"] = first["server start"]
    out["overhead beyond the server's start (ms)"] = round(
        (first["with one stdio server"] - first["without MCP"] - first["server start"]) * 1000,
        1,
    )
    out["overhead, median of the rounds (ms)"] = round(
        first["overhead, median of the rounds"] * 1000, 1
    )
    out["within 150 ms"] = out["overhead beyond the server's start (ms)"] <= 150
    out["per call"] = per_call(command, 50 if quick else 200)
    print("MCP:", json.dumps(out))
    return out


if __name__ == "__main__":
    run("--quick" in sys.argv)
