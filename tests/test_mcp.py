"""Tools from MCP servers (issue 26), against real third-party servers: `mcp-server-time` and
`mcp-server-git` (PyPI) and `@modelcontextprotocol/server-everything` (npm). Where a server is
missing its tests skip, unless AGENTCTL_REQUIRE_MCP is set (.ci/run installs them and sets it):
then they fail."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agentctl.errors import UsageError
from agentctl.mcpconfig import McpServer, parse_servers, tool_name
from agentctl.tools import SideEffect
from agentctl.tools.approval import ApprovalPolicy
from tests.conftest import cli


def server_command(name: str) -> str:
    """The server's program: beside this Python (pip) or on PATH (npm -g)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        if os.environ.get("AGENTCTL_REQUIRE_MCP"):
            pytest.fail(f"{name} is required here and is not installed (.ci/run installs it)")
        pytest.skip(f"{name} is not installed")
    return found


def settings_file(home: Path, servers: dict[str, dict[str, Any]]) -> None:
    from agentctl.config import write_file

    write_file(home / "config.toml", {"mcp_servers": servers})


def task_file(tmp_path: Path, calls: list[dict[str, Any]], extra: str = "") -> Path:
    """A task whose scripted model plans, makes `calls` one reply each, then finishes."""
    turns = [
        '[[script]]\n[[script.tool_calls]]\nname = "submit_plan"\n'
        'arguments = { steps = ["use the tools"] }\n'
    ]
    for call in calls:
        turns.append(
            "[[script]]\n[[script.tool_calls]]\n"
            f"name = {json.dumps(call['name'])}\n"
            f"arguments = {json.dumps(json.dumps(call.get('arguments', {})))}\n"
        )
    turns.append(
        '[[script]]\n[[script.tool_calls]]\nname = "finish"\narguments = { result = "done" }\n'
    )
    path = tmp_path / "task.toml"
    path.write_text(f'goal = "use MCP tools"\n{extra}\n' + "\n".join(turns))
    return path


def tool_results(home: Path, session: str) -> list[str]:
    shown = cli("show", session, "--json", env={"AGENTCTL_HOME": str(home)})
    messages = shown.json()["messages"]
    return [m["content"] for m in messages if m["role"] == "tool"]


# -- names, configuration and approval: no server needed ------------------------------------


def test_tool_names_keep_to_what_the_apis_take() -> None:
    assert tool_name("time", "get_current_time") == "mcp__time__get_current_time"
    assert tool_name("ev", "get.sum with space") == "mcp__ev__get_sum_with_space"
    long_a, long_b = tool_name("srv", "x" * 80 + "a"), tool_name("srv", "x" * 80 + "b")
    assert len(long_a) == len(long_b) == 64
    assert long_a != long_b  # the hash suffix keeps two cut names apart
    assert set(long_a) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def test_a_server_table_is_checked_key_by_key() -> None:
    with pytest.raises(UsageError, match="needs command"):
        parse_servers({"a": {"args": ["x"]}}, "f")
    with pytest.raises(UsageError, match="unknown key 'comand'"):
        parse_servers({"a": {"comand": "x"}}, "f")
    with pytest.raises(UsageError, match="name 'a b'"):
        parse_servers({"a b": {"command": "x"}}, "f")
    with pytest.raises(UsageError, match="tool_timeout_sec"):
        parse_servers({"a": {"command": "x", "tool_timeout_sec": -1}}, "f")
    ok = parse_servers({"a": {"command": "x", "env": {"GITHUB_TOKEN": "ghp_secret"}}}, "f")
    assert ok["a"].record() == {"name": "a", "transport": "stdio", "target": "x"}


def test_a_task_file_may_not_carry_a_secret(tmp_path: Path) -> None:
    from agentctl.domain.tasks import load_task_file
    from agentctl.errors import TaskFileError

    path = tmp_path / "t.toml"
    path.write_text(
        'goal = "g"\n[mcp_servers.gh]\ncommand = "gh-mcp"\nenv = { GITHUB_TOKEN = "ghp_x" }\n'
    )
    with pytest.raises(TaskFileError, match="env_vars"):
        load_task_file(path)


class _Remote:
    def __init__(self, read_only: bool | None, destructive: bool | None) -> None:
        self.name, self.description, self.title = "t", "d", None
        self.schema: dict[str, Any] = {"type": "object"}
        self.read_only, self.destructive = read_only, destructive


def _tool(trust: bool, read_only: bool | None = None, destructive: bool | None = None) -> Any:
    from agentctl.tools.mcp_tools import McpTool

    server = McpServer("srv", command="x", trust_annotations=trust)
    return McpTool("mcp__srv__t", server, _Remote(read_only, destructive), None)  # type: ignore[arg-type]


def test_annotations_count_only_where_the_user_trusts_the_server() -> None:
    assert _tool(False, read_only=True).side_effect is SideEffect.EXEC
    assert _tool(True, read_only=True).side_effect is SideEffect.READ
    assert _tool(True, read_only=True, destructive=True).side_effect is SideEffect.EXEC
    assert not _tool(True, read_only=True).effects.confined  # a rollback lists its calls


def test_allow_rules_name_a_tool_or_a_server_and_a_wildcard_never_covers_a_destroyer() -> None:
    plain, destroyer = _tool(False), _tool(False, destructive=True)
    assert ApprovalPolicy().needs_approval(plain, {})
    assert not ApprovalPolicy(allow=("mcp__srv__t",)).needs_approval(plain, {})
    assert not ApprovalPolicy(allow=("mcp__srv__*",)).needs_approval(plain, {})
    assert ApprovalPolicy(allow=("mcp__other__*",)).needs_approval(plain, {})
    assert ApprovalPolicy(allow=("mcp__srv__*",)).needs_approval(destroyer, {})
    assert not ApprovalPolicy(allow=("mcp__srv__t",)).needs_approval(destroyer, {})
    # an argument named like the shell's cannot make a plain rule refuse, or a glob approve
    assert not ApprovalPolicy(allow=("mcp__srv__t",)).needs_approval(plain, {"command": "rm"})


# -- real servers ------------------------------------------------------------------------


@pytest.mark.process
def test_time_server_through_the_run_with_an_allow_rule(
    tmp_path: Path, agentctl_home: Path
) -> None:
    time_server = server_command("mcp-server-time")
    settings_file(
        agentctl_home, {"time": {"command": time_server, "args": ["--local-timezone", "UTC"]}}
    )
    task = task_file(
        tmp_path,
        [
            {"name": "mcp__time__get_current_time", "arguments": {"timezone": "Asia/Tokyo"}},
            {"name": "mcp__time__get_current_time", "arguments": {"zone": "x"}},  # schema
        ],
        extra='allow = ["mcp__time__*"]',
    )
    work = tmp_path / "work"
    work.mkdir()
    done = cli("run", str(task), "--workspace", str(work), "--no-input", "--json")
    assert done.code == 0, done.stderr
    assert "mcp-server" not in done.stderr  # the server's own stderr went to its log
    session = done.events()[-1]["session_id"]
    results = tool_results(agentctl_home, session)
    assert any('"timezone": "Asia/Tokyo"' in r for r in results), results
    refused = "bad arguments for mcp__time__get_current_time:"
    assert any(refused in r and "'timezone'" in r for r in results), results
    history = cli("history", session, "--json").json()
    kinds = [c["event"] for c in history]
    assert kinds.count("tool_started") >= 1
    first = kinds.index("tool_started")
    assert kinds[first + 1] == "tool_result"
    assert (agentctl_home / "mcp" / "logs" / "time.log").exists()
    # reading the session never loads the SDK, servers configured or not
    from tests.test_architecture import loaded_heavy_modules

    for command in (["show", session], ["history", session], ["list"]):
        assert "'mcp'" not in loaded_heavy_modules(command), command


@pytest.mark.process
def test_a_stdio_server_boots_while_the_sdk_loads_and_is_stopped_at_close(
    tmp_path: Path,
) -> None:
    """The server's process is started before the SDK is imported (the two take about as long,
    and overlap); the hub talks to that very process, and closing it leaves no child behind."""
    program = f"""
import json, os, sys
from pathlib import Path
from agentctl.mcpconfig import McpServer
from agentctl.tools.mcp_tools import spawn_servers, start_servers
from agentctl.tools.shell import children

server = McpServer("time", command={server_command("mcp-server-time")!r})
here = Path({str(tmp_path)!r})
hub = spawn_servers([server], environ={{}}, cwd=here, data=here)
spawned = children(os.getpid())
sdk_before = "mcp" in sys.modules
source = start_servers(hub, say=lambda _t: None)
tools = sorted(t.remote.name for t in source.tools)
talked_to = children(os.getpid())
result = source.tools[0].hub.call(server, "get_current_time", {{"timezone": "UTC"}})
source.close()
print(json.dumps({{"spawned": sorted(spawned), "sdk_before": sdk_before, "tools": tools,
    "talked_to": sorted(talked_to), "after": sorted(children(os.getpid())),
    "result": result.text, "error": result.is_error}}))
"""
    proc = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.splitlines()[-1])
    assert not seen["sdk_before"]
    assert len(seen["spawned"]) == 1  # the server, before the SDK was imported
    assert seen["talked_to"] == seen["spawned"]  # and no second one was started for it
    assert seen["tools"] == ["convert_time", "get_current_time"]
    assert not seen["error"], seen["result"]
    assert '"timezone": "UTC"' in seen["result"]
    assert seen["after"] == []  # stopped and reaped
    assert (tmp_path / "logs" / "time.log").exists()


@pytest.mark.process
def test_an_mcp_call_asks_first_without_a_rule(tmp_path: Path, agentctl_home: Path) -> None:
    settings_file(agentctl_home, {"time": {"command": server_command("mcp-server-time")}})
    task = task_file(
        tmp_path, [{"name": "mcp__time__get_current_time", "arguments": {"timezone": "UTC"}}]
    )
    work = tmp_path / "work"
    work.mkdir()
    paused = cli("run", str(task), "--workspace", str(work), "--no-input")
    assert paused.code == 3, paused.stderr  # waiting for the user's yes
    said = paused.stdout + paused.stderr
    assert "mcp__time__get_current_time" in said
    assert 'arguments: {"timezone": "UTC"}' in said  # the user sees what they allow


@pytest.mark.process
def test_the_tools_command_lists_mcp_tools(tmp_path: Path, agentctl_home: Path) -> None:
    settings_file(agentctl_home, {"time": {"command": server_command("mcp-server-time")}})
    listed = cli("tools", "--json")
    assert listed.code == 0, listed.stderr
    names = {t["name"]: t for t in listed.json()}
    assert names["mcp__time__convert_time"]["side_effect"] == "exec"
    assert names["mcp__time__convert_time"]["approval"].startswith("asks")


@pytest.mark.process
def test_a_required_server_that_is_down_stops_the_run_in_one_line(
    tmp_path: Path, agentctl_home: Path
) -> None:
    settings_file(
        agentctl_home,
        {
            "gone": {"command": str(tmp_path / "no-such-server"), "required": True},
            "hangs": {"command": "sleep", "args": ["30"], "startup_timeout_sec": 1},
        },
    )
    task = task_file(tmp_path, [])
    work = tmp_path / "work"
    work.mkdir()
    began = time.monotonic()
    stopped = cli("run", str(task), "--workspace", str(work), "--no-input")
    assert stopped.code == 5, stopped.stderr
    assert "required MCP server 'gone'" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert time.monotonic() - began < 25  # the hanging one did not hold the run for 30 s
    # optional and down: said, left out, the run goes on
    settings_file(
        agentctl_home, {"hangs": {"command": "sleep", "args": ["30"], "startup_timeout_sec": 1}}
    )
    went = cli("run", str(task), "--workspace", str(work), "--no-input")
    assert went.code == 0, went.stderr
    assert "MCP server 'hangs' is not available (did not start within 1 s)" in (
        went.stdout + went.stderr
    )


@pytest.mark.process
def test_a_missing_extra_is_one_line_with_the_install_command(
    tmp_path: Path, agentctl_home: Path
) -> None:
    settings_file(agentctl_home, {"time": {"command": "mcp-server-time"}})
    task = task_file(tmp_path, [])
    work = tmp_path / "work"
    work.mkdir()
    code = (
        "import sys, runpy; sys.modules['mcp'] = None\n"  # import mcp raises ImportError
        "sys.argv = ['agentctl', *sys.argv[1:]]\n"
        "runpy.run_module('agentctl', run_name='__main__')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "run", str(task), "--workspace", str(work), "--no-input"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert 'pip install "agentctl[mcp]"' in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.process
def test_everything_server_results_images_structured_errors(
    tmp_path: Path, agentctl_home: Path
) -> None:
    settings_file(
        agentctl_home,
        {"ev": {"command": server_command("mcp-server-everything"), "args": ["stdio"]}},
    )
    task = task_file(
        tmp_path,
        [
            {"name": "mcp__ev__get-tiny-image"},
            {"name": "mcp__ev__get-structured-content", "arguments": {"location": "Chicago"}},
            {"name": "mcp__ev__get-sum", "arguments": {"a": 2, "b": 3}},
            {"name": "mcp__ev__get-sum", "arguments": {"a": "two", "b": 3}},
        ],
        extra='allow = ["mcp__ev__*"]',
    )
    work = tmp_path / "work"
    work.mkdir()
    done = cli("run", str(task), "--workspace", str(work), "--no-input", "--json", timeout=90)
    assert done.code == 0, done.stderr
    session = done.events()[-1]["session_id"]
    results = tool_results(agentctl_home, session)
    image = next(r for r in results if "image/png, saved to" in r)
    saved = Path(image.split("saved to ", 1)[1].split("]", 1)[0])
    assert saved.read_bytes().startswith(b"\x89PNG")
    assert saved.is_relative_to(agentctl_home / "mcp" / "sessions" / session)
    assert oct(saved.stat().st_mode & 0o777) == "0o600"
    assert all("base64" not in r and "iVBOR" not in r for r in results)  # no base64 in context
    assert any("Chicago" in r or "temperature" in r for r in results), results
    assert any("5" in r for r in results)
    assert any("bad arguments for mcp__ev__get-sum: argument 'a'" in r for r in results), results


def _history(session: str) -> list[dict[str, Any]]:
    return list(cli("history", session, "--json").json())


def _session_id() -> str:
    return str(cli("list", "--json").json()[0]["id"])


def _wait_for_the_call(proc: subprocess.Popen[bytes]) -> None:
    """Until the run's one MCP call is recorded as started and its request is out."""
    from agentctl.config import Settings
    from agentctl.store import open_store

    deadline = time.monotonic() + 60
    url = Settings.load().store_url
    while True:  # poll the store until the call is recorded as started
        assert proc.poll() is None, "the run ended before the call"
        assert time.monotonic() < deadline
        try:
            store = open_store(url)
            try:
                sessions = store.list_sessions()
                kinds = [c.kind for c in store.history(sessions[0].id)] if sessions else []
            finally:
                store.close()
        except Exception:
            kinds = []
        if "tool_started" in kinds:
            break
        time.sleep(0.05)
    time.sleep(0.5)  # the request is out, the server is counting


@pytest.mark.process
def test_ctrl_c_during_a_call_stops_quietly_and_stops_the_server(
    tmp_path: Path, agentctl_home: Path
) -> None:
    """The call is abandoned (outcome unknown, as after a crash), the server is stopped, and
    nothing of the abandoned call reaches the terminal (asyncio's "Task exception was never
    retrieved" did once)."""
    settings_file(
        agentctl_home,
        {"ev": {"command": server_command("mcp-server-everything"), "args": ["stdio"]}},
    )
    slow = {"name": "mcp__ev__trigger-long-running-operation", "arguments": {"duration": 20}}
    task = task_file(tmp_path, [slow], extra='allow = ["mcp__ev__*"]')
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentctl", "run", str(task), "--workspace", str(work)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        _wait_for_the_call(proc)
        from agentctl.tools.shell import children

        servers = children(proc.pid)
        assert servers
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    said = stderr.decode()
    assert proc.returncode == 130, said
    assert "interrupted" in said
    assert "Traceback" not in said
    assert "never retrieved" not in said
    assert not [pid for pid in servers if Path(f"/proc/{pid}").exists()]


@pytest.mark.process
def test_kill_9_during_a_call_then_resume_never_sends_it_again(
    tmp_path: Path, agentctl_home: Path
) -> None:
    settings_file(
        agentctl_home,
        {"ev": {"command": server_command("mcp-server-everything"), "args": ["stdio"]}},
    )
    slow = {"name": "mcp__ev__trigger-long-running-operation", "arguments": {"duration": 8}}
    task = task_file(tmp_path, [slow], extra='allow = ["mcp__ev__*"]')
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentctl", "run", str(task), "--workspace", str(work)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        _wait_for_the_call(proc)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    resumed = cli("resume", "--no-input", timeout=90)
    assert resumed.code == 0, resumed.stderr
    session = _session_id()
    kinds = [c["event"] for c in _history(session)]
    assert kinds.count("tool_started") == 1  # never sent a second time
    results = tool_results(agentctl_home, session)
    assert any("was interrupted" in r and "outcome is unknown" in r for r in results), results


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.mark.process
def test_rollback_past_an_mcp_call_restores_the_workspace_and_names_the_call(
    tmp_path: Path, agentctl_home: Path
) -> None:
    git_server = server_command("mcp-server-git")
    work = tmp_path / "work"
    work.mkdir()
    _git(work, "init", "-q", "-b", "main")
    _git(work, "config", "user.email", "t@example.com")
    _git(work, "config", "user.name", "t")
    (work / "notes.md").write_text("main\n")
    _git(work, "add", "notes.md")
    _git(work, "commit", "-q", "-m", "main")
    _git(work, "checkout", "-q", "-b", "other")
    (work / "notes.md").write_text("other branch\n")
    _git(work, "commit", "-q", "-am", "other")
    _git(work, "checkout", "-q", "main")
    settings_file(agentctl_home, {"git": {"command": git_server}})
    checkout = {
        "name": "mcp__git__git_checkout",
        "arguments": {"repo_path": str(work), "branch_name": "other"},
    }
    task = task_file(tmp_path, [checkout], extra='allow = ["mcp__git__git_checkout"]')
    done = cli("run", str(task), "--workspace", str(work), "--no-input", timeout=90)
    assert done.code == 0, done.stderr
    assert (work / "notes.md").read_text() == "other branch\n"  # the server changed the file
    session = _session_id()
    started = next(c["id"] for c in _history(session) if c["event"] == "tool_started")
    back = cli("rollback", session, "--to", str(started - 1))
    assert back.code == 0, back.stderr
    assert (work / "notes.md").read_text() == "main\n"  # restored inside the workspace
    assert "1 tool call" in back.stderr
    assert "mcp__git__git_checkout" in back.stderr


@pytest.mark.process
def test_streamable_http_and_secrets_kept_out_of_the_store(
    tmp_path: Path, agentctl_home: Path
) -> None:
    import socket

    everything = server_command("mcp-server-everything")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [everything, "streamableHttp"],
        env={**os.environ, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:  # until it listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline
                assert server.poll() is None
                time.sleep(0.1)
        secret = "sk-mcp-header-secret-123456"
        settings_file(
            agentctl_home,
            {
                "web": {
                    "url": f"http://127.0.0.1:{port}/mcp",
                    "http_headers": {"Authorization": f"Bearer {secret}"},
                },
                "time": {
                    "command": server_command("mcp-server-time"),
                    "env": {"TIME_API_TOKEN": secret},
                },
            },
        )
        call = {"name": "mcp__web__echo", "arguments": {"message": "over http"}}
        task = task_file(tmp_path, [call], extra='allow = ["mcp__web__*"]')
        work = tmp_path / "work"
        work.mkdir()
        done = cli("run", str(task), "--workspace", str(work), "--no-input", timeout=90)
        assert done.code == 0, done.stderr
        session = _session_id()
        assert any("over http" in r for r in tool_results(agentctl_home, session))
        exported = cli("export", session)
        assert exported.code == 0, exported.stderr
        assert secret not in exported.stdout
        for path in agentctl_home.rglob("*"):
            if path.is_file() and path.name != "config.toml":
                assert secret.encode() not in path.read_bytes(), path
    finally:
        server.terminate()
        server.wait(timeout=10)


# -- agentctl mcp ----------------------------------------------------------------------------


def test_mcp_add_list_remove_with_secrets_masked(agentctl_home: Path) -> None:
    from tests.conftest import run

    added = run(
        "mcp", "add", "gh", "--env", "GITHUB_TOKEN=ghp_abcdefghijklmnop", "--",
        "gh-mcp", "--stdio", "-v",
    )  # fmt: skip
    assert added.code == 0, added.stderr
    web = run("mcp", "add", "web", "--url", "http://127.0.0.1:9/mcp", "--header",
              "Authorization: Bearer tok_abcdefghijklmnop")  # fmt: skip
    assert web.code == 0, web.stderr
    again = run("mcp", "add", "gh", "--", "other")
    assert again.code == 2
    assert "already configured" in again.stderr
    listed = run("mcp", "list", "--json")
    rows = {r["name"]: r for r in listed.json()}
    assert rows["gh"]["target"] == "gh-mcp --stdio -v"
    assert rows["gh"]["env"] == {"GITHUB_TOKEN": "****mnop"}
    assert rows["web"]["headers"] == {"Authorization": "****mnop"}
    shown = run("mcp", "list")
    assert "ghp_abcdefghijklmnop" not in shown.stdout + shown.stderr
    # the settings file holds them (0600), and `config set` keeps the servers
    assert run("config", "set", "timeout", "30").code == 0
    config = (agentctl_home / "config.toml").read_text()
    assert "ghp_abcdefghijklmnop" in config
    assert oct((agentctl_home / "config.toml").stat().st_mode & 0o777) == "0o600"
    assert run("mcp", "remove", "gh").code == 0
    assert [r["name"] for r in run("mcp", "list", "--json").json()] == ["web"]
    missing = run("mcp", "remove", "gh")
    assert missing.code == 2
    assert "no MCP server named 'gh'" in missing.stderr
    neither = run("mcp", "add", "x")
    assert neither.code == 2
    assert "COMMAND" in neither.stderr


def test_mcp_import_reads_claude_codes_file(tmp_path: Path) -> None:
    from tests.conftest import run

    file = tmp_path / ".mcp.json"
    file.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "time": {"command": "mcp-server-time", "args": ["--local-timezone", "UTC"]},
                    "remote": {"type": "http", "url": "https://example.com/mcp"},
                }
            }
        )
    )
    imported = run("mcp", "import", str(file))
    assert imported.code == 0, imported.stderr
    rows = {r["name"]: r for r in run("mcp", "list", "--json").json()}
    assert rows["time"]["target"] == "mcp-server-time --local-timezone UTC"
    assert rows["remote"]["transport"] == "http"
    twice = run("mcp", "import", str(file))
    assert twice.code == 2
    assert "--replace" in twice.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert run("mcp", "import", str(bad)).code == 2


@pytest.mark.process
def test_mcp_check_lists_tools_annotations_and_tokens(agentctl_home: Path) -> None:
    settings_file(agentctl_home, {"time": {"command": server_command("mcp-server-time")}})
    checked = cli("mcp", "check", "time", "--json")
    assert checked.code == 0, checked.stderr
    report = checked.json()
    names = {t["name"]: t for t in report["tools"]}
    assert names["mcp__time__get_current_time"]["read_only"] is True
    assert names["mcp__time__get_current_time"]["tokens"] > 20
    assert report["info"].startswith("mcp-time")
    settings_file(agentctl_home, {"bad": {"command": "sh", "args": ["-c", "echo boom >&2"]}})
    down = cli("mcp", "check", "bad")
    assert down.code == 5
    assert "boom" in down.stderr  # the end of its log
    assert "Traceback" not in down.stderr


@pytest.mark.process
def test_a_changed_tool_list_is_recorded_on_resume_and_a_gone_tool_answered(
    tmp_path: Path, agentctl_home: Path
) -> None:
    time_server = server_command("mcp-server-time")
    settings_file(agentctl_home, {"time": {"command": time_server}})
    task = task_file(
        tmp_path,
        [
            {"name": "mcp__time__get_current_time", "arguments": {"timezone": "UTC"}},
            {
                "name": "mcp__time__convert_time",
                "arguments": {
                    "source_timezone": "UTC",
                    "time": "09:00",
                    "target_timezone": "Asia/Tokyo",
                },
            },
        ],
        extra='allow = ["mcp__time__get_current_time"]',
    )
    work = tmp_path / "work"
    work.mkdir()
    paused = cli("run", str(task), "--workspace", str(work), "--no-input")
    assert paused.code == 3, paused.stderr  # convert_time waits for the user's yes
    session = _session_id()
    shown = cli("show", session, "--json").json()
    offered = shown["task"]["mcp"]
    assert [o["name"] for o in offered] == ["time"]
    assert set(offered[0]["tools"]) == {"mcp__time__get_current_time", "mcp__time__convert_time"}
    assert set(offered[0]) <= {"name", "transport", "target", "server", "up", "digest", "tools"}

    # a required server that is down stops the resume in one line, writing nothing
    head = len(_history(session))
    settings_file(agentctl_home, {"time": {"command": str(tmp_path / "gone"), "required": True}})
    down = cli("resume", session, "--input", "y")
    assert down.code == 5, down.stderr
    assert "required MCP server 'time'" in down.stderr
    assert len(_history(session)) == head

    # the server no longer offers convert_time: the change is recorded and said, the call
    # the user allowed is answered with an error naming the change, and the run goes on
    settings_file(
        agentctl_home, {"time": {"command": time_server, "disabled_tools": ["convert_time"]}}
    )
    resumed = cli("resume", session, "--input", "y")
    assert resumed.code == 0, resumed.stderr
    assert "MCP tools changed since this session last ran: removed: mcp__time__convert_time" in (
        resumed.stdout + resumed.stderr
    )
    events = [c["event"] for c in _history(session)]
    assert "mcp_tools" in events
    results = tool_results(agentctl_home, session)
    assert any("no longer lists that tool" in r for r in results), results
    history = cli("history", session)
    assert "MCP tools changed: removed: mcp__time__convert_time" in history.stdout
