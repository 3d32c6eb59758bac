"""run_shell: a command in the workspace, with a time limit, bounded output and no secrets.

Its side effects are unknowable, so it is never re-run after a crash and needs approval unless
--yes or a rule of the task's allow-list names it. The command runs in a session (process group)
of its own; when it ends, times out or agentctl is interrupted, the whole group is stopped (TERM,
then KILL after a grace period), so pipelines and background children never outlive the call.
A child that leaves the group (`setsid`, a daemon's double fork) is caught too: agentctl is the
subreaper of what it starts (Linux `PR_SET_CHILD_SUBREAPER`), so an orphan becomes agentctl's
own child instead of init's, and every such child, with everything below it, is killed.
Output is read as it comes and only its head and tail are kept, so memory stays bounded
whatever the command prints. The environment is agentctl's less its own secrets
(config.tool_environment decides which), plus what the task passes explicitly. Where a sandbox
is given, the command runs inside it (tools/sandbox.py) and the tool says its effects are
confined to the workspace.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from agentctl.tools.base import Effects, SideEffect, Subject, SubjectType, ToolOutcome
from agentctl.tools.files import MAX_OUTPUT, Workspace

if TYPE_CHECKING:
    from agentctl.tools.sandbox import Sandbox

TIMEOUT_S = 120.0
GRACE_S = 2.0  # between TERM and KILL
KEEP_BYTES = MAX_OUTPUT // 2  # of each stream's head and tail


class Capture:
    """Keeps the first and last KEEP_BYTES of a stream and counts the rest."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := stream.read1(1 << 16):  # type: ignore[attr-defined]
                self.total += len(chunk)
                room = KEEP_BYTES - len(self.head)
                if room > 0:
                    self.head += chunk[:room]
                    chunk = chunk[room:]
                if chunk:
                    self.tail = (self.tail + chunk)[-KEEP_BYTES:]

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def text(self) -> str:
        cut = self.total - len(self.head) - len(self.tail)
        middle = f"\n[… {cut} bytes cut …]\n" if cut > 0 else ""
        data = bytes(self.head) + middle.encode() + bytes(self.tail)
        return data.decode("utf-8", errors="replace")


def _group_gone(proc: subprocess.Popen[bytes], within: float) -> bool:
    deadline = time.monotonic() + within
    while True:
        proc.poll()  # reap the shell itself, or it lingers in the group as a zombie
        try:
            os.killpg(proc.pid, 0)
        except (ProcessLookupError, PermissionError):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def stop_group(proc: subprocess.Popen[bytes], grace: float = GRACE_S) -> None:
    """TERM the command's whole process group, then KILL what is left after `grace`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            break  # the group is gone
        if _group_gone(proc, grace):
            break
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)


PR_SET_CHILD_SUBREAPER = 36


@functools.cache
def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux only; once)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def children(pid: int) -> set[int]:
    """The live children of `pid` (every thread's), from /proc."""
    found: set[int] = set()
    with contextlib.suppress(OSError):
        for task in os.scandir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"{task.path}/children") as f:
                found.update(int(word) for word in f.read().split())
    return found


# The processes this agentctl started for commands (and the shells waiting to become one), from
# every thread: a worker runs sessions in threads, and one command's clean-up must not take a
# command another thread started meanwhile for one of its strays.
_OWN: set[int] = set()
_OWN_LOCK = threading.Lock()


def _disown(pid: int) -> None:
    """A command's process is done with (its clean-up ran): no longer one of ours."""
    with _OWN_LOCK:
        _OWN.discard(pid)


def stop_escaped(known: set[int], rounds: int = 200) -> None:
    """KILL every child of this process not in `known` (orphans of a command that left its
    process group, reparented here) and everything below them, and reap them. Killed
    processes cannot fork, and their own orphans come here too, so this ends."""
    me = os.getpid()
    for _ in range(rounds):
        with _OWN_LOCK:
            alive = children(me)
            _OWN.intersection_update(alive)  # the rest were reaped (a standby let go unused)
            strays = alive - known - _OWN
        if not strays:
            return
        tree: set[int] = set()
        stack = list(strays)
        while stack and len(tree) < 100_000:
            pid = stack.pop()
            if pid not in tree:
                tree.add(pid)
                stack.extend(children(pid))
        for pid in tree:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for pid in strays:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, 0)


@dataclass(frozen=True)
class RunShell:
    workspace: Workspace
    timeout: float = TIMEOUT_S
    env: Mapping[str, str] | None = None  # None: inherit (tests); wiring.py passes a clean one
    grace: float = GRACE_S
    name: str = "run_shell"
    side_effect: SideEffect = SideEffect.EXEC
    sandbox: Sandbox | None = None  # None: the command runs with all of the user's rights
    unsandboxed: str = "off"  # recorded without a sandbox: "off", or "unavailable"

    @property
    def description(self) -> str:
        """What the model is told, the sandbox included: it explains a read-only file system
        or a network that is not there before the model trips over them."""
        text = "Run a shell command in the workspace and return its exit code and output."
        box = self.sandbox
        if box is None:
            return text
        where = (
            "the workspace is read-only"
            if box.mode == "read-only"
            else "only the workspace is writable"
        )
        reach = "" if box.network else "; there is no network"
        return f"{text} It runs in a sandbox: {where}, /tmp starts empty for each command{reach}."

    @property
    def effects(self) -> Effects:
        """Confined when sandboxed without network: then the workspace, which is captured
        after every call, is all a command can change."""
        if self.sandbox is None:
            return Effects(confined=False, sandbox=self.unsandboxed, network=True)
        network = self.sandbox.network
        return Effects(confined=not network, sandbox=self.sandbox.mode, network=network)

    @property
    def parameters(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"command": {"type": "string"}},
            "required": ["command"],
        }

    def approval_subject(self, arguments: dict[str, Any]) -> Subject:
        """The command: shown whole at approval, matched word by word by a rule, granted
        alone by `a`, and listed by a rollback when it may have reached outside."""
        return Subject(SubjectType.COMMAND, str(arguments.get("command", "")))

    def subject(self, arguments: dict[str, Any]) -> str:
        return f"$ {arguments.get('command', '')}"

    def run(self, arguments: dict[str, Any]) -> ToolOutcome:
        command = str(arguments["command"])
        box = self.sandbox
        if box is None:
            return self._run(command, lambda: self._popen(["/bin/sh", "-c", command], None))
        key = self._key()
        outcome = self._run(command, lambda: box.launch(command, self._popen, key))
        box.prepare(self._popen, key)  # the next command's start, while this result goes back
        return outcome

    def prepare(self) -> None:
        """Start what the next command needs ahead of it (Sandbox.prepare), as a run starts."""
        if self.sandbox is not None:
            self.sandbox.prepare(self._popen, self._key())

    def _popen(self, argv: list[str], stdin: int | None) -> subprocess.Popen[bytes]:
        with _OWN_LOCK:  # known as ours before another thread's clean-up can look
            proc = subprocess.Popen(
                argv,
                cwd=self.workspace.root,
                stdin=subprocess.DEVNULL if stdin is None else stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(self.env) if self.env is not None else None,
                start_new_session=True,  # its own process group, so it can be stopped whole
            )
            _OWN.add(proc.pid)
        return proc

    def _key(self) -> Hashable:
        """What `_popen` depends on: a process made ahead for one shell serves only its like."""
        env = tuple(sorted(self.env.items())) if self.env is not None else None
        return (str(self.workspace.root), env)

    def _run(self, command: str, start: Callable[[], subprocess.Popen[bytes]]) -> ToolOutcome:
        reaping = become_subreaper()
        known = children(os.getpid())
        proc: subprocess.Popen[bytes] | None = None
        streams: list[Capture] = []
        timed_out = False
        try:
            # Inside the try: an interrupt that lands while Popen returns (the command already
            # running) still stops it, as a new child of this process (stop_escaped).
            proc = start()
            assert proc.stdout is not None
            assert proc.stderr is not None
            streams = [Capture(proc.stdout), Capture(proc.stderr)]
            proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            # On success, timeout or an interrupt (KeyboardInterrupt from Ctrl-C, SIGTERM or
            # SIGHUP): nothing the command started may keep running after this call.
            if proc is not None:
                stop_group(proc, self.grace)
            if reaping:  # and what left the group: setsid, a daemon's double fork
                stop_escaped(known | ({proc.pid} if proc is not None else set()))
            if proc is not None:
                _disown(proc.pid)
            # Children that ignored TERM were KILLed, so the pipes close; don't wait longer.
            for stream in streams:
                stream.join(self.grace)
            if proc is not None:
                for pipe in (proc.stdout, proc.stderr):
                    if pipe is not None:
                        pipe.close()
        assert proc is not None
        out, err = streams
        if timed_out:
            output = f"timed out after {self.timeout:g} s (stopped): {command}\n{out.text()}"
            return ToolOutcome(output, is_error=True)
        output = f"exit {proc.returncode}\n{out.text()}"
        if err.total:
            output += f"\n[stderr]\n{err.text()}"
        return ToolOutcome(output, is_error=proc.returncode != 0)
