"""The shell sandbox with real bubblewrap: escapes tried, limits met, modes recorded, rollback
and approval told by the tool's own description (issue 27).

Where bubblewrap cannot run these tests skip with the reason, unless AGENTCTL_REQUIRE_SANDBOX is
set or CI=true (.ci/run sets both): there a skip is a failure. The places written to are under
/var/tmp, not /tmp, because the sandbox's /tmp is private: a write to /tmp/x could not reach the
real /tmp whether or not the rest of the sandbox works.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl.config import Settings
from agentctl.domain.session import TaskSpec
from agentctl.tools import effects_of
from agentctl.tools.files import Workspace
from agentctl.tools.sandbox import Sandbox, pids_cgroups, probe, secrets_of
from agentctl.tools.shell import RunShell
from agentctl.usecases import wiring
from tests.conftest import cli, run


def _required() -> bool:
    return bool(os.environ.get("AGENTCTL_REQUIRE_SANDBOX")) or os.environ.get("CI") == "true"


@pytest.fixture(scope="module")
def bwrap() -> str:
    found, why = probe(os.environ)
    if found is None:
        if _required():
            pytest.fail(f"the sandbox is required here and cannot run: {why}")
        pytest.skip(f"no sandbox here: {why}")
    return found


@pytest.fixture
def place() -> Iterator[Path]:
    """A private folder outside /tmp (removed after the test)."""
    base = Path("/var/tmp") if Path("/var/tmp").is_dir() else Path.home()
    path = Path(tempfile.mkdtemp(prefix="agentctl-sandbox-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _shell(bwrap: str, ws: Path, **options: object) -> RunShell:
    timeout = float(options.pop("timeout", 60))  # type: ignore[arg-type]
    box = Sandbox(bwrap, ws, cgroups=pids_cgroups(), **options)  # type: ignore[arg-type]
    return RunShell(Workspace(ws), timeout=timeout, sandbox=box)


def _alive_with(marker: str) -> list[int]:
    """Processes of this machine whose command line holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if marker.encode() in cmdline and state != "Z":
                found.append(int(entry.name))
    return found


def _poll(check: object, seconds: float = 10.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return bool(check())  # type: ignore[operator]


# -- writes outside the workspace -----------------------------------------------------------


def test_writes_outside_the_workspace_have_no_effect_outside(bwrap: str, place: Path) -> None:
    ws, outside = place / "ws", place / "outside"
    ws.mkdir()
    outside.mkdir()
    (ws / "link").symlink_to(outside)  # a link in the workspace that points out
    shm = f"/dev/shm/agentctl-test-{uuid.uuid4().hex}"
    attempts = {
        "absolute": f"echo x > {outside}/absolute",
        "dotdot": "echo x > ../outside/dotdot",
        "symlink": "echo x > link/through-link",
        "proc-root": f"echo x > /proc/self/root{outside}/proc-root",
        "proc-1-root": f"echo x > /proc/1/root{outside}/proc-1-root",
        "etc": "echo x > /etc/agentctl-sandbox-test",
        "dev-shm": f"echo x > {shm}",
        "mkdir": f"mkdir {outside}/made",
        "chmod": f"chmod 777 {outside}",
    }
    shell = _shell(bwrap, ws)
    for name, command in attempts.items():
        outcome = shell.run({"command": command})
        assert name
        assert outcome.content
    assert list(outside.iterdir()) == []
    assert oct(outside.stat().st_mode & 0o777) != oct(0o777)
    assert not Path(shm).exists()
    assert not Path("/etc/agentctl-sandbox-test").exists()
    ok = shell.run({"command": "echo inside > kept.txt && mkdir -p made && echo y > made/z"})
    assert not ok.is_error, ok.content
    assert (ws / "kept.txt").read_text() == "inside\n"  # the workspace itself is writable
    assert (ws / "made" / "z").read_text() == "y\n"


def test_read_only_mode_keeps_the_workspace_unchanged(bwrap: str, place: Path) -> None:
    ws = place / "ws"
    ws.mkdir()
    (ws / "a.txt").write_text("a\n")
    shell = _shell(bwrap, ws, mode="read-only")
    outcome = shell.run({"command": "cat a.txt; echo b > a.txt; touch new.txt"})
    assert outcome.is_error
    assert "a\n" in outcome.content
    assert "Read-only file system" in outcome.content
    assert (ws / "a.txt").read_text() == "a\n"
    assert not (ws / "new.txt").exists()
    assert effects_of(shell).confined
    assert effects_of(shell).sandbox == "read-only"


# -- secrets --------------------------------------------------------------------------------


@pytest.mark.parametrize("under", ["tmp", "var"])
def test_secrets_and_agentctls_own_files_are_hidden(
    bwrap: str, place: Path, tmp_path: Path, under: str
) -> None:
    """Planted in the home the sandbox is told about (one under /tmp, one outside it), and in
    agentctl's settings, data folder and store, found the way `run` finds them."""
    root = tmp_path if under == "tmp" else place
    home, data, ws = root / "home", root / "data", place / "ws"
    secret = f"SECRET-{uuid.uuid4().hex}"
    for relative in (".ssh/id_ed25519", ".ssh/id_rsa", ".aws/credentials", ".config/gcloud/k"):
        (home / relative).parent.mkdir(parents=True, exist_ok=True)
        (home / relative).write_text(secret)
    data.mkdir()
    (data / "config.toml").write_text(f'api_key = "{secret}"\n')
    (data / "agentctl.db").write_text(secret)
    ws.mkdir(exist_ok=True)
    env = {"HOME": str(home), "AGENTCTL_HOME": str(data), "PATH": os.environ["PATH"]}
    settings = Settings.load(env)
    tools = wiring.work_tools(settings, str(ws), TaskSpec(goal="g"), yes=True)
    shell = tools.get("run_shell")
    assert shell is not None
    assert effects_of(shell).sandbox == "workspace-write"
    commands = [
        f"cat {home}/.ssh/id_*",
        f"cat {home}/.aws/credentials {home}/.config/gcloud/k",
        f"ls -la {home}/.ssh",
        f"cat {data}/config.toml {data}/agentctl.db",
        f"grep -r {secret[:10]} {home} {data}",
        "cat ~/.ssh/id_rsa",
    ]
    for command in commands:
        outcome = shell.run({"command": command})
        assert secret not in outcome.content, command
    # The workspace, beside them, stays usable.
    assert not shell.run({"command": "echo ok > f && cat f"}).is_error


def test_the_store_inside_the_workspace_is_hidden_too(bwrap: str, place: Path) -> None:
    ws = place / "ws"
    (ws / ".agentctl").mkdir(parents=True)
    (ws / ".agentctl" / "agentctl.db").write_text("SECRET-STORE")
    box = Sandbox(bwrap, ws, hidden=secrets_of(None, (ws / ".agentctl",)))
    shell = RunShell(Workspace(ws), sandbox=box)
    outcome = shell.run({"command": "cat .agentctl/agentctl.db; rm -rf .agentctl; echo done"})
    assert "SECRET-STORE" not in outcome.content
    assert (ws / ".agentctl" / "agentctl.db").read_text() == "SECRET-STORE"


# -- network --------------------------------------------------------------------------------


class _Counting(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"reached")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_server() -> Iterator[tuple[int, type[_Counting]]]:
    handler = type("Handler", (_Counting,), {"hits": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_on_127_0_0_1_outside_is_out_of_reach(
    bwrap: str, place: Path, local_server: tuple[int, type[_Counting]]
) -> None:
    port, handler = local_server
    # The interpreter itself, not a venv's link to it: a checkout under /tmp (CI's clone) is
    # not in the sandbox, whose /tmp is its own.
    python = os.path.realpath(sys.executable)
    fetch = (
        f'{python} -c "import urllib.request as u; '
        f"print(u.urlopen('http://127.0.0.1:{port}/', timeout=5).read())\""
    )
    ws = place / "ws"
    ws.mkdir()
    closed = _shell(bwrap, ws).run({"command": fetch})
    assert closed.is_error
    assert "reached" not in closed.content
    assert handler.hits == 0
    # With the network allowed the same command reaches it: the test can tell the difference.
    opened = _shell(bwrap, ws, network=True)
    assert not effects_of(opened).confined
    assert "reached" in opened.run({"command": fetch}).content
    assert handler.hits == 1


# -- processes ------------------------------------------------------------------------------


def test_no_process_outlives_the_command(bwrap: str, place: Path) -> None:
    ws = place / "ws"
    ws.mkdir()
    marker = f"{7000 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 1000}"
    command = f"setsid sleep {marker} & nohup sleep {marker} >/dev/null 2>&1 & echo started"
    outcome = _shell(bwrap, ws).run({"command": command})
    assert "started" in outcome.content
    assert _poll(lambda: not _alive_with(f"sleep {marker}"))


def test_the_commands_die_with_agentctl(bwrap: str, place: Path) -> None:
    """kill -9 of agentctl in the middle of a sandboxed command: nothing of it goes on."""
    ws = place / "ws"
    ws.mkdir()
    marker = f"{8000 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 1000}"
    program = (
        "import sys; from pathlib import Path\n"
        "from agentctl.tools.files import Workspace\n"
        "from agentctl.tools.sandbox import Sandbox\n"
        "from agentctl.tools.shell import RunShell\n"
        f"ws = Path({str(ws)!r})\n"
        f"box = Sandbox({bwrap!r}, ws)\n"
        f"RunShell(Workspace(ws), sandbox=box).run({{'command': 'setsid sleep {marker} & "
        f"echo go > go; sleep {marker}'}})\n"
    )
    child = subprocess.Popen([sys.executable, "-c", program], start_new_session=True)
    try:
        assert _poll(lambda: (ws / "go").exists() and len(_alive_with(f"sleep {marker}")) >= 2, 30)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        child.kill()
    assert _poll(lambda: not _alive_with(f"sleep {marker}"))


def test_a_fork_bomb_meets_the_process_limit(bwrap: str, place: Path) -> None:
    if os.geteuid() == 0 and pids_cgroups() is None and not _required():
        pytest.skip("root is bound by no process limit without a pids cgroup (README: Sandbox)")
    ws = place / "ws"
    ws.mkdir()
    limit = 64
    shell = _shell(bwrap, ws, processes=limit, timeout=4)
    peak = [0]
    done = threading.Event()
    marker = f"bomb{uuid.uuid4().hex[:8]}"

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], len(_alive_with(marker)))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        # A bomb whose processes all carry the marker on their command line, and wait for
        # their children: the tree stays as large as the limit lets it grow until the time
        # limit ends it, so the watcher sees it whatever the machine's load.
        bomb = f"cat > b.sh <<'E'\nsh b.sh {marker} & sh b.sh {marker} & wait\nE\nsh b.sh {marker}"
        outcome = shell.run({"command": bomb})
    finally:
        done.set()
        watcher.join()
    # Stopped by the time limit, or every shell gave up when it could not fork ("Cannot fork":
    # then the command may even end with status 0, depending on the machine's load); either
    # way the bomb never grew past the limit and left nothing behind.
    assert outcome.is_error or "fork" in outcome.content.lower(), outcome.content[-300:]
    assert 0 < peak[0] <= limit + 4, peak[0]  # bwrap's own two and the outer shells
    assert _poll(lambda: not _alive_with(marker))


def test_filling_tmp_stops_at_the_tmpfs_size(bwrap: str, place: Path) -> None:
    ws = place / "ws"
    ws.mkdir()
    name = f"agentctl-fill-{uuid.uuid4().hex}"
    shell = _shell(bwrap, ws, tmpfs_bytes=8 << 20)
    outcome = shell.run(
        {"command": f"head -c 100000000 /dev/zero > /tmp/{name}; ls -l /tmp/{name}; df /tmp"}
    )
    assert "No space left on device" in outcome.content
    assert " 8388608 " in outcome.content  # the file stopped at the limit
    shm = shell.run({"command": f"head -c 100000000 /dev/zero > /dev/shm/{name}"})
    assert "No space left on device" in shm.content
    assert not Path(f"/tmp/{name}").exists()
    assert not Path(f"/dev/shm/{name}").exists()
    again = shell.run({"command": f"ls /tmp/{name}"})
    assert again.is_error  # each command gets a fresh, empty /tmp


# -- where the sandbox cannot run -----------------------------------------------------------


def test_without_bubblewrap_it_says_how_to_get_it_and_records_unavailable(
    tmp_path: Path,
) -> None:
    found, why = probe({"PATH": str(tmp_path)})
    assert found is None
    assert why == "bubblewrap is not installed (to get it: apt-get install bubblewrap)"
    ws = tmp_path / "ws"
    ws.mkdir()
    task = tmp_path / "t.toml"
    task.write_text(SHELL_TASK.format(command="echo hi > made.txt"))
    env = {"PATH": str(tmp_path)}
    first = run("run", str(task), "--workspace", str(ws), "--yes", env=env)
    assert first.code == 0, first.stderr
    assert first.stderr.count("apt-get install bubblewrap") == 1  # once, however many calls
    sid = run("list", "--json").json()[0]["id"]
    shown = run("show", sid, "--json").json()
    assert shown["sandbox"] == "unavailable"
    history = run("history", sid, "--json").json()
    started = [c for c in history if c["event"] == "tool_started"]
    assert started
    assert all(c["detail"]["sandbox"] == "unavailable" for c in started)
    refused = run("run", str(task), "--workspace", str(ws), "--sandbox", "required", env=env)
    assert refused.code == 2
    assert "apt-get install bubblewrap" in refused.stderr
    assert len(run("list", "--json").json()) == 1  # nothing was started


SHELL_TASK = """
goal = "Run a command"
max_turns = 8

[[script]]
[[script.tool_calls]]
name = "submit_plan"
arguments = {{ steps = ["run"] }}

[[script]]
[[script.tool_calls]]
name = "run_shell"
arguments = {{ command = "{command}" }}

[[script]]
[[script.tool_calls]]
name = "run_shell"
arguments = {{ command = "echo again >> made.txt" }}

[[script]]
[[script.tool_calls]]
name = "finish"
arguments = {{ result = "ran" }}
"""


# -- what the session records, what rollback says, what is asked ------------------------------


def _git_ok() -> bool:
    return shutil.which("git") is not None


@pytest.mark.parametrize(
    ("flags", "recorded", "outside_note"),
    [
        ((), "workspace-write", False),
        (("--network",), "workspace-write", True),
        (("--sandbox", "off"), "off", True),
    ],
)
def test_rollback_lists_only_what_could_reach_outside(
    bwrap: str, place: Path, flags: tuple[str, ...], recorded: str, outside_note: bool
) -> None:
    ws = place / "ws"
    ws.mkdir()
    task = place / "t.toml"
    task.write_text(SHELL_TASK.format(command="echo hi > made.txt"))
    result = run("run", str(task), "--workspace", str(ws), "--yes", *flags)
    assert result.code == 0, result.stderr
    sid = run("list", "--json").json()[0]["id"]
    shown = run("show", sid)
    assert f"sandbox:  {recorded}" in shown.stdout
    assert run("show", sid, "--json").json()["sandbox"] == recorded
    history = run("history", sid, "--json").json()
    started = [c for c in history if c["event"] == "tool_started"]
    assert [c["detail"]["sandbox"] for c in started] == [recorded, recorded]
    assert all(c["detail"]["confined"] is not outside_note for c in started)
    assert (ws / "made.txt").read_text() == "hi\nagain\n"
    back = run("rollback", sid, "--to", str(started[0]["id"] - 1))  # before both commands
    assert back.code == 0, back.stderr
    assert not (ws / "made.txt").exists()  # the workspace went back, whatever the mode
    said = "may have changed things outside the workspace" in back.stderr
    assert said is outside_note, back.stderr
    if outside_note:
        assert "2 commands" in back.stderr
        assert "echo hi > made.txt" in back.stderr


@pytest.mark.parametrize(
    ("flags", "asks"),
    [((), False), (("--network",), True), (("--sandbox", "off"), True)],
)
def test_auto_sandboxed_approval_asks_only_what_a_rollback_cannot_undo(
    bwrap: str, place: Path, flags: tuple[str, ...], asks: bool
) -> None:
    ws = place / "ws"
    ws.mkdir()
    task = place / "t.toml"
    task.write_text(SHELL_TASK.format(command="echo hi > made.txt"))
    env = {"AGENTCTL_APPROVAL": "auto-sandboxed"}
    result = run("run", str(task), "--workspace", str(ws), "--no-input", *flags, env=env)
    if asks:
        assert result.code == 3, result.stderr  # paused on the approval question
        assert not (ws / "made.txt").exists()
    else:
        assert result.code == 0, result.stderr
        assert (ws / "made.txt").read_text() == "hi\nagain\n"


def test_by_default_sandboxed_commands_are_still_asked(bwrap: str, place: Path) -> None:
    ws = place / "ws"
    ws.mkdir()
    task = place / "t.toml"
    task.write_text(SHELL_TASK.format(command="echo hi > made.txt"))
    result = run("run", str(task), "--workspace", str(ws), "--no-input")
    assert result.code == 3, result.stderr
    assert not (ws / "made.txt").exists()


def test_a_task_file_sets_the_mode_and_a_resume_keeps_it(bwrap: str, place: Path) -> None:
    ws = place / "ws"
    ws.mkdir()
    (ws / "a.txt").write_text("a\n")
    task = place / "t.toml"
    body = SHELL_TASK.format(command="echo b > a.txt")
    task.write_text('sandbox = "read-only"\n' + body)
    first = run("run", str(task), "--workspace", str(ws), "--no-input")
    assert first.code == 3  # asked
    sid = run("list", "--json").json()[0]["id"]
    assert run("resume", sid, "--input", "y", "--no-input").code == 3
    assert (ws / "a.txt").read_text() == "a\n"  # read-only held across the resume
    history = run("history", sid, "--json").json()
    started = [c for c in history if c["event"] == "tool_started"]
    assert started[0]["detail"]["sandbox"] == "read-only"


def test_bad_modes_are_refused_with_one_line(tmp_path: Path) -> None:
    bad = run("run", "a goal", "--workspace", str(tmp_path), "--sandbox", "loose")
    assert bad.code == 2
    assert "--sandbox" in bad.stderr
    assert "workspace-write" in bad.stderr
    assert run("config", "set", "sandbox", "nope").code == 2
    assert run("config", "set", "network", "maybe").code == 2
    assert run("config", "set", "approval", "always").code == 2
    assert run("config", "set", "network", "true").code == 0
    assert run("config", "set", "approval", "auto-sandboxed").code == 0
    shown = run("config", "show").stdout
    assert "network" in shown
    assert "true" in shown
    assert "auto-sandboxed" in shown
    task = tmp_path / "t.toml"
    task.write_text('goal = "g"\nsandbox = "wide-open"\n')
    refused = run("run", str(task), "--workspace", str(tmp_path))
    assert refused.code == 2
    assert "sandbox" in refused.stderr


def test_the_run_header_says_the_sandbox(bwrap: str, place: Path) -> None:
    ws = place / "ws"
    ws.mkdir()
    task = place / "t.toml"
    task.write_text(SHELL_TASK.format(command="true"))
    result = cli("run", str(task), "--workspace", str(ws), "--yes")
    assert result.code == 0, result.stderr
    assert "· sandbox workspace-write, no network" in result.stderr
    assert "[sandbox: workspace-write]" in result.stderr


def test_where_namespaces_are_refused_it_says_so_and_records_unavailable(
    tmp_path: Path,
) -> None:
    """A bubblewrap that cannot make namespaces (some containers): the probe's own words."""
    fake = tmp_path / "bin" / "bwrap"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    found, why = probe({"PATH": str(fake.parent)})
    assert found is None
    assert why == (
        "bubblewrap cannot make namespaces here (bwrap: No permissions to create new namespace)"
    )
    ws = tmp_path / "ws"
    ws.mkdir()
    task = tmp_path / "t.toml"
    task.write_text(SHELL_TASK.format(command="echo hi > made.txt"))
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin"}
    result = run("run", str(task), "--workspace", str(ws), "--yes", env=env)
    assert result.code == 0, result.stderr
    assert "No permissions to create new namespace" in result.stderr
    sid = run("list", "--json").json()[0]["id"]
    assert run("show", sid, "--json").json()["sandbox"] == "unavailable"
    assert "sandbox:  unavailable" in run("show", sid).stdout


def test_tools_says_the_sandbox_and_what_auto_sandboxed_skips(bwrap: str) -> None:
    listed = run("tools").stdout
    assert "approval: asks; sandbox: workspace-write" in listed
    auto = run("tools", env={"AGENTCTL_APPROVAL": "auto-sandboxed"}).stdout
    assert "never where the workspace is snapshotted (approval = auto-sandboxed)" in auto
    networked = run("tools", env={"AGENTCTL_NETWORK": "true"}).stdout
    assert "sandbox: workspace-write, with network" in networked


def test_auto_sandboxed_needs_snapshots_to_skip_the_question(bwrap: str, place: Path) -> None:
    """Without workspace snapshots a rollback undoes nothing a command did: it is asked."""
    settings = Settings.load({**os.environ, "AGENTCTL_APPROVAL": "auto-sandboxed"})
    spec = TaskSpec(goal="g")
    for undoable, asked in ((True, False), (False, True)):
        tools = wiring.work_tools(settings, str(place), spec, yes=False, undoable=undoable)
        shell = tools.get("run_shell")
        assert shell is not None
        assert tools.policy.needs_approval(shell, {"command": "make"}) is asked


def test_a_session_from_before_the_sandbox_says_it_was_not_recorded(tmp_path: Path) -> None:
    store = tmp_path / "agentctl.db"
    shutil.copy(Path(__file__).parent / "fixtures" / "v0.1-schema2" / "agentctl.db", store)
    env = {"AGENTCTL_STORE": f"sqlite://{store}"}
    sid = run("list", "--json", env=env).json()[0]["id"]
    shown = run("show", sid, env=env)
    assert shown.code == 0, shown.stderr
    assert "sandbox:  not recorded (a session from before the sandbox)" in shown.stdout
    assert run("show", sid, "--json", env=env).json()["sandbox"] is None


def test_the_pids_cgroup_of_a_dead_agentctl_is_swept(bwrap: str, place: Path) -> None:
    cgroups = pids_cgroups()
    if cgroups is None:
        pytest.skip("no pids cgroup here (not root, or none writable)")
    stale = cgroups / "agentctl-999999999-512"  # beyond pid_max: certainly not running
    stale.mkdir()
    try:
        from agentctl.tools import sandbox

        sandbox._GROUPS.clear()
        ws = place / "ws"
        ws.mkdir()
        assert not _shell(bwrap, ws).run({"command": "true"}).is_error
        assert not stale.exists()
    finally:
        with contextlib.suppress(OSError):
            stale.rmdir()


def _root_with_cgroups() -> Path:
    cgroups = pids_cgroups()
    if cgroups is None:
        if _required() and os.geteuid() == 0:
            pytest.fail("root here and no pids cgroup can be made")
        pytest.skip("no pids cgroup here (not root, or none writable)")
    return cgroups


def test_the_next_command_waits_in_the_pids_group_before_it_is_asked(
    bwrap: str, place: Path
) -> None:
    """Joining the group is done while the previous result goes back (a write to cgroup.procs
    waits for the kernel), so a command is not slowed by it; what runs is the same: in the
    group, stdin /dev/null, no other descriptor, the shell's own folder and environment."""
    from agentctl.tools import sandbox

    _root_with_cgroups()
    ws, other = place / "ws", place / "other"
    ws.mkdir()
    other.mkdir()
    box = Sandbox(bwrap, ws, cgroups=pids_cgroups())
    shell = RunShell(Workspace(ws), sandbox=box, env={"PATH": os.defpath, "MARK": "one"})
    probe_fds = "ls /proc/self/fd | wc -l; readlink /proc/self/fd/0; pwd; echo $MARK"
    for _ in range(2):
        shown = shell.run({"command": f"grep pids /proc/self/cgroup; {probe_fds}"})
        assert not shown.is_error, shown.content
        group = sandbox._GROUPS[(os.getpid(), box.cgroups, box.processes)]
        assert group is not None
        assert f":pids:/{group.name}\n" in shown.content
        # ls's own folder descriptor besides 0, 1 and 2
        assert "\n4\n/dev/null\n" + f"{ws}\none\n" in shown.content, shown.content
        standby = sandbox._STANDBY
        assert standby is not None  # made after the command, before the next is asked
        members = group / "cgroup.procs"
        pid = str(standby.proc.pid)
        assert _poll(lambda pid=pid, members=members: pid in members.read_text().split())
    # Another shell (its own folder and environment) is not served by that one's standby.
    elsewhere = RunShell(
        Workspace(other), sandbox=Sandbox(bwrap, other, cgroups=pids_cgroups()), env={"MARK": "2"}
    )
    shown = elsewhere.run({"command": "pwd; echo $MARK"})
    assert shown.content.endswith(f"{other}\n2\n"), shown.content
    # A standby that died (killed from outside) is replaced, and the command still runs.
    standby = sandbox._STANDBY
    assert standby is not None
    standby.proc.kill()
    standby.proc.wait()
    shown = elsewhere.run({"command": "echo still"})
    assert shown.content == "exit 0\nstill\n", shown.content


def test_a_run_readies_its_first_commands_shell(bwrap: str, place: Path) -> None:
    """As root, the run's tools start the first command's shell, which joins the pids group
    while the run goes on to its first request; the first command is served by it."""
    from agentctl.tools import sandbox

    _root_with_cgroups()
    sandbox._drop_standby()
    ws = place / "ws"
    ws.mkdir()
    env = {"HOME": str(place), "AGENTCTL_HOME": str(place / "data"), "PATH": os.defpath}
    tools = wiring.work_tools(Settings.load(env), str(ws), TaskSpec(goal="g"), yes=True)
    standby = sandbox._STANDBY
    assert standby is not None
    shell = tools.get("run_shell")
    assert isinstance(shell, RunShell)
    assert standby.key[1] == shell._key()
    shown = shell.run({"command": "grep pids /proc/self/cgroup"})
    assert "agentctl-" in shown.content, shown.content
    assert sandbox._STANDBY is not standby  # used, and the next one made
