"""The shell sandbox: bubblewrap around each `run_shell` command, so everything a command can
change is in the workspace, where a rollback restores it.

The one decision a reader must know: the sandbox is a filesystem view, not a policy engine. The
root filesystem is bound read-only; the workspace is bound writable (`workspace-write`) or
read-only (`read-only`); `/tmp`, `/dev/shm` and `/run` are private and empty; the user's secrets
and agentctl's own settings, data and store are covered by empty read-only mounts; the network
is a namespace of its own with only a loopback (unless the task allows the network); the
command's processes live in their own PID namespace, so they all die with the command and with
agentctl. Where bubblewrap is missing or cannot make namespaces, `probe` says why in one line
and the caller records `unavailable`.

Limits (README "Sandbox"): at most PROCESS_LIMIT processes (RLIMIT_NPROC inside the sandbox's
own user namespace; for root, which that limit does not bind, a pids cgroup where one can be
made, joined by the next command's shell while the previous result goes back: see `launch`),
TMPFS_BYTES in each of `/tmp` and `/dev/shm`. Time is bounded by run_shell's timeout.
"""

from __future__ import annotations

import atexit
import os
import shlex
import shutil
import subprocess
import threading
from collections.abc import Callable, Hashable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

WORKSPACE_WRITE = "workspace-write"
READ_ONLY = "read-only"
OFF = "off"
REQUIRED = "required"  # workspace-write, and a refusal where the sandbox cannot run
MODES = (WORKSPACE_WRITE, READ_ONLY, OFF, REQUIRED)
UNAVAILABLE = "unavailable"  # recorded where a sandbox was wanted and could not run

PROCESS_LIMIT = 512  # processes (threads count too) inside one command's sandbox
TMPFS_BYTES = 512 << 20  # of /tmp and of /dev/shm, each (memory, freed when the command ends)
HOW_TO_GET = "apt-get install bubblewrap"

# Under the user's home: keys and cloud credentials a command never needs to read.
HOME_SECRETS = (
    ".ssh",
    ".aws",
    ".gnupg",
    ".config/gcloud",
    ".azure",
    ".kube",
    ".docker",
    ".config/gh",
    ".netrc",
    ".git-credentials",
    ".pypirc",
    ".npmrc",
)
# Folders every sandbox replaces by an empty tmpfs: what lies there is not the workspace.
PRIVATE = ("/tmp", "/dev/shm", "/run")


def effective_mode(mode: str) -> str:
    """The mode a command runs in: `required` is workspace-write that refuses to run without."""
    return WORKSPACE_WRITE if mode == REQUIRED else mode


@dataclass(frozen=True)
class Sandbox:
    """How one workspace's commands are sandboxed. `mode` is workspace-write or read-only."""

    bwrap: str  # the bubblewrap binary
    workspace: Path
    mode: str = WORKSPACE_WRITE
    network: bool = False
    hidden: tuple[Path, ...] = ()  # covered by empty read-only mounts, where they exist
    processes: int = PROCESS_LIMIT
    tmpfs_bytes: int = TMPFS_BYTES
    cgroups: Path | None = field(default=None, compare=False)  # root: where a pids group goes

    def argv(self, command: str) -> list[str]:
        """bubblewrap's command line that runs `sh -c command` in the workspace."""
        ws = self.workspace.resolve()
        args = [self.bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        for place in PRIVATE:
            if place != "/run":
                args += ["--size", str(self.tmpfs_bytes)]
            args += ["--tmpfs", place]
        if self.network and Path("/run/systemd/resolve").is_dir():
            args += ["--ro-bind", "/run/systemd/resolve", "/run/systemd/resolve"]  # DNS
        inside: list[Path] = []
        outside: list[Path] = []
        # A folder that holds the workspace cannot be covered without covering it: the
        # files listed inside that folder (a settings file, a store) are covered instead.
        coverable = tuple(p for p in self.hidden if not ws.is_relative_to(p))
        for path in _outermost(coverable):
            (inside if path.is_relative_to(ws) else outside).append(path)
        args += _hide(p for p in outside if not _private(p))
        args += ["--ro-bind" if self.mode == READ_ONLY else "--bind", str(ws), str(ws)]
        args += _hide(inside)
        # The namespaces that confine: user (no rights outside it), PID (its processes die
        # with it), IPC (no System V memory of the user's), network. UTS and cgroup ones would
        # confine nothing more (sethostname already needs rights the command lacks) and cost.
        args += ["--unshare-user", "--unshare-pid", "--unshare-ipc", "--disable-userns"]
        if not self.network:
            args.append("--unshare-net")
        args += ["--die-with-parent", "--new-session", "--chdir", str(ws), "--"]
        if os.geteuid() == 0:  # RLIMIT_NPROC does not bind root: a pids cgroup does (launched)
            return [*args, "/bin/sh", "-c", command]
        # The process limit is set inside: RLIMIT_NPROC counts per user namespace, so the
        # user's processes outside do not use it up (dash spells it -p, bash -u).
        limit = self.processes
        inner = (
            f'ulimit -p {limit} 2>/dev/null || ulimit -u {limit} 2>/dev/null; exec /bin/sh -c "$1"'
        )
        return [*args, "/bin/sh", "-c", inner, "sh", command]

    def launch(self, command: str, popen: Popen, key: Hashable) -> subprocess.Popen[bytes]:
        """Start `sh -c command` in the sandbox through `popen` (how the caller starts a
        process: its folder, environment and pipes; `key` tells one such way from another).
        When agentctl is root (whom RLIMIT_NPROC does not bind) the command joins a pids cgroup
        first, so every process it makes is counted: through a shell that joined it ahead of
        time, while the previous command's result went back (`prepare`), because joining waits
        for the kernel (~10 ms: an RCU grace period) and that wait is then no command's."""
        argv = self.argv(command)
        group = _group(self.cgroups, self.processes) if self.cgroups is not None else None
        if group is None:
            return popen(argv, None)
        standby = _take_standby((group, key)) or _Standby.start(group, popen, (group, key))
        if standby.go(argv):
            return standby.proc
        fresh = _Standby.start(group, popen, (group, key))  # that one had died: its error is
        fresh.go(argv)  # said by this one, if it has the same
        return fresh.proc

    def prepare(self, popen: Popen, key: Hashable) -> None:
        """Have the next command's shell join the pids cgroup now (root only; see `launch`)."""
        group = _group(self.cgroups, self.processes) if self.cgroups is not None else None
        waiting = _STANDBY
        if group is not None and (waiting is None or waiting.key != (group, key)):
            _keep_standby(_Standby.start(group, popen, (group, key)))


# How the caller starts a process: (argv, its standard input or None for /dev/null) -> it.
Popen = Callable[[list[str], int | None], "subprocess.Popen[bytes]"]
# The standby: it joins the group, then runs what is written to its standard input, the line
# `exec bwrap ... </dev/null`.
_STANDBY_SCRIPT = 'echo $$ > "$0/cgroup.procs" && . /dev/stdin'


@dataclass
class _Standby:
    """A shell, already in the pids group, waiting for the command line it will become."""

    proc: subprocess.Popen[bytes]
    commands: int  # the write end of the pipe it reads its command line from
    key: tuple[Path, Hashable]
    pid: int  # the agentctl process that made it (a forked child must not use it)

    @staticmethod
    def start(group: Path, popen: Popen, key: tuple[Path, Hashable]) -> _Standby:
        read, write = os.pipe()
        try:
            proc = popen(["/bin/sh", "-c", _STANDBY_SCRIPT, str(group)], read)
        except BaseException:
            os.close(write)
            raise
        finally:
            os.close(read)
        return _Standby(proc, write, key, os.getpid())

    def go(self, argv: list[str]) -> bool:
        """Hand it the command line; False when it is gone (its pipe broken)."""
        line = "exec " + " ".join(shlex.quote(a) for a in argv) + " </dev/null\n"
        data = line.encode("utf-8", "surrogateescape")
        try:
            while data:
                data = data[os.write(self.commands, data) :]
        except OSError:
            self.close()
            return False
        self._end_script()  # the end of its script: it runs what it read
        return True

    def _end_script(self) -> None:
        if self.commands >= 0:
            with suppress(OSError):
                os.close(self.commands)
            self.commands = -1

    def close(self) -> None:
        """Let it go unused: its script ends, empty; it is reaped."""
        self._end_script()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# One per agentctl process. A worker runs sessions in threads, so it is taken and kept under a
# lock: a standby serves one command, never two.
_STANDBY: _Standby | None = None
_SLOT = threading.Lock()


def _swap(new: _Standby | None) -> _Standby | None:
    global _STANDBY
    with _SLOT:
        old, _STANDBY = _STANDBY, new
    return old


def _take_standby(key: tuple[Path, Hashable]) -> _Standby | None:
    standby = _swap(None)
    if standby is None:
        return None
    if standby.key == key and standby.pid == os.getpid() and standby.proc.poll() is None:
        return standby
    if standby.pid == os.getpid():
        standby.close()
    return None


def _keep_standby(standby: _Standby) -> None:
    old = _swap(standby)
    if old is not None and old.pid == os.getpid():
        old.close()
    # Last registered, first run: it leaves its group before the group is removed.
    atexit.unregister(_drop_standby)
    atexit.register(_drop_standby)


def _drop_standby() -> None:
    standby = _swap(None)
    if standby is not None and standby.pid == os.getpid():
        standby.close()


# One pids cgroup per agentctl process and limit, made at its first sandboxed command and
# removed when the process exits: its commands run one after another, and each one's
# processes die with its PID namespace, so they never share the limit. (A group made and
# removed around every command cost 7 ms.)
_GROUPS: dict[tuple[int, Path, int], Path | None] = {}


def _group(cgroups: Path, limit: int) -> Path | None:
    key = (os.getpid(), cgroups, limit)
    if key not in _GROUPS:
        _sweep(cgroups)
        group = cgroups / f"agentctl-{os.getpid()}-{limit}"
        try:
            group.mkdir(exist_ok=True)
            (group / "pids.max").write_text(str(limit))
        except OSError:
            _remove_group(group)
            _GROUPS[key] = None
        else:
            atexit.register(_remove_group, group)
            _GROUPS[key] = group
    return _GROUPS[key]


def _sweep(cgroups: Path) -> None:
    """Remove the empty groups of agentctl processes that died without removing theirs
    (killed, or a forked child that left by os._exit)."""
    with suppress(OSError):
        for entry in os.scandir(cgroups):
            owner = entry.name.split("-")
            if len(owner) != 3 or owner[0] != "agentctl" or not owner[1].isdigit():
                continue
            try:
                os.kill(int(owner[1]), 0)
            except ProcessLookupError:
                with suppress(OSError):
                    os.rmdir(entry.path)  # fails, harmlessly, while a process is in it
            except OSError:
                pass


def _remove_group(group: Path) -> None:
    """rmdir succeeds once the group is empty: the PID namespace took every process with it."""
    import time

    deadline = time.monotonic() + 2.0
    while True:
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() >= deadline:
                return  # left empty; nothing runs in it
            time.sleep(0.01)


def _outermost(paths: tuple[Path, ...]) -> list[Path]:
    """The paths not inside another of them (covering a folder covers what it holds)."""
    return [p for p in paths if not any(p != q and p.is_relative_to(q) for q in paths)]


def _private(path: Path) -> bool:
    return any(path == Path(p) or path.is_relative_to(p) for p in PRIVATE)


def _hide(paths: Iterator[Path] | list[Path]) -> list[str]:
    """An empty read-only folder over a folder, /dev/null over a file."""
    args: list[str] = []
    for path in paths:
        if path.is_dir():
            args += ["--tmpfs", str(path), "--remount-ro", str(path)]
        elif path.exists():
            args += ["--ro-bind", "/dev/null", str(path)]
    return args


def pids_cgroups() -> Path | None:
    """Where a root agentctl can make a pids cgroup (v1's pids hierarchy, or v2's root with
    the pids controller on), or None."""
    if os.geteuid() != 0:
        return None
    v1 = Path("/sys/fs/cgroup/pids")
    if (v1 / "cgroup.procs").exists() and os.access(v1, os.W_OK):
        return v1
    v2 = Path("/sys/fs/cgroup")
    with suppress(OSError):
        if "pids" in (v2 / "cgroup.subtree_control").read_text().split() and os.access(v2, os.W_OK):
            return v2
    return None


_PROBED: dict[str, str | None] = {}
# A namespace of each kind the sandbox uses, and the command that must run in them.
PROBE_ARGS = ["--ro-bind", "/", "/", "--unshare-user", "--unshare-pid", "--unshare-ipc"]
PROBE_ARGS += ["--unshare-net", "--disable-userns"]
PROBE_ARGS += ["--die-with-parent", "/bin/true"]


_STARTED: dict[str, subprocess.Popen[bytes]] = {}


def probe_soon(environ: Mapping[str, str]) -> None:
    """Start the probe without waiting for it, so it runs while agentctl opens the store and
    the workspace (`probe` collects it): it is on the way to the first model request."""
    found = shutil.which("bwrap", path=environ.get("PATH") or os.defpath)
    if found is None or found in _PROBED or found in _STARTED:
        return
    with suppress(OSError):
        _STARTED[found] = subprocess.Popen(
            [found, *PROBE_ARGS],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )


def probe(environ: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(the bubblewrap binary, None) where a sandbox works here, else (None, why not)."""
    found = shutil.which("bwrap", path=environ.get("PATH") or os.defpath)
    if found is None:
        return None, f"bubblewrap is not installed (to get it: {HOW_TO_GET})"
    if found not in _PROBED:
        probe_soon(environ)
        proc = _STARTED.pop(found, None)
        why: str | None = f"bubblewrap does not run here ({found} cannot be started)"
        if proc is not None:
            try:
                _, stderr = proc.communicate(timeout=10)
                why = None
                if proc.returncode != 0:
                    lines = stderr.decode("utf-8", "replace").strip().splitlines()
                    said = lines[0] if lines else f"exit {proc.returncode}"
                    why = f"bubblewrap cannot make namespaces here ({said})"
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                why = "bubblewrap does not run here (it did not answer within 10 s)"
        _PROBED[found] = why
    why = _PROBED[found]
    return (found, None) if why is None else (None, why)


def secrets_of(home: str | None, own: tuple[Path, ...]) -> tuple[Path, ...]:
    """What a sandbox hides: the home's keys and credentials, and agentctl's own files."""
    paths = [Path(home) / name for name in HOME_SECRETS] if home else []
    return tuple(dict.fromkeys(p.resolve() for p in [*paths, *own]))
