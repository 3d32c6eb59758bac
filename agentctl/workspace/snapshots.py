"""Workspace snapshots: a shadow git object store per workspace, driven by the `git` command.

Each workspace gets its own git directory under agentctl's data directory
(`snapshots/<hash of the workspace path>`); git's work tree is the workspace. A capture is
`git add -A` into that directory's own index, then `git write-tree`: content-addressed, so disk
grows only with changed bytes and an unchanged workspace gives the same tree id. A restore is
`git read-tree --reset -u TREE` from an index that holds the current capture: files the tree
lacks are removed, the rest written with their modes, symlinks restored as symlinks.

Isolation. The user's own `.git` is never read or written: GIT_DIR points at the shadow
directory, `.git` entries are never added (git's rule), and a nested repository is left out
whole. The user's git configuration, hooks and fsmonitor do not run: no system or global
config, a private HOME, `core.hooksPath` to nowhere, `core.fsmonitor` off. Like git, a
snapshot keeps no empty folder.

Bounds. The workspace's `.gitignore` files apply, plus defaults (virtual environments,
node_modules, caches, build output). A file over `max_file` bytes is not captured (and not in
the tree, so a restore leaves it as it is); the capture names it. Nothing is ever pruned here
(`gc.auto = 0`): retention belongs to an explicit command.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from agentctl.config import DEFAULT_SNAPSHOT_MAX_CAPTURE, DEFAULT_SNAPSHOT_MAX_FILE
from agentctl.errors import StoreError

MAX_FILE = DEFAULT_SNAPSHOT_MAX_FILE  # bytes: a larger file is not captured
MAX_CAPTURE = DEFAULT_SNAPSHOT_MAX_CAPTURE  # bytes of new (untracked) files one capture stores
DEFAULT_IGNORES = (
    ".git",
    ".venv/",
    "venv/",
    "node_modules/",
    "__pycache__/",
    "*.pyc",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".tox/",
    "build/",
    "dist/",
    "target/",
    "*.egg-info/",
)
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's well-known empty tree


class SnapshotsUnavailable(Exception):
    """Snapshots cannot be taken here (no git, or a workspace that must not be captured)."""


@dataclass(frozen=True)
class Change:
    status: str  # A: added, D: deleted, M: modified, T: type changed (file <-> symlink)
    path: str


@dataclass(frozen=True)
class Capture:
    tree: str
    skipped: tuple[str, ...] = ()  # files over the size cap, not captured
    changed: tuple[Change, ...] = ()  # since the tree the capture was asked to compare with


def refuse_reason(workspace: Path, home: str | None) -> str | None:
    """Why a workspace must not be captured (its whole home folder or the whole disk)."""
    resolved = workspace.resolve()
    if resolved == Path("/"):
        return "the workspace is / (the whole disk)"
    if home and resolved == Path(home).resolve():
        return "the workspace is your home folder"
    return None


class Snapshots:
    def __init__(
        self,
        workspace: Path,
        data_dir: Path,
        max_file: int = MAX_FILE,
        max_capture: int = MAX_CAPTURE,
        create: bool = True,
    ) -> None:
        self.max_capture = max_capture
        if shutil.which("git") is None:
            raise SnapshotsUnavailable("git is not installed")
        self.workspace = workspace.resolve()
        key = hashlib.sha256(str(self.workspace).encode()).hexdigest()[:16]
        self.git_dir = data_dir / "snapshots" / key
        self.max_file = max_file
        private = self.git_dir / "home"
        self._env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_DIR": str(self.git_dir),
            "GIT_WORK_TREE": str(self.workspace),
            "GIT_INDEX_FILE": str(self.git_dir / "index"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "HOME": str(private),
            "XDG_CONFIG_HOME": str(private),
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_OPTIONAL_LOCKS": "0",
            "LC_ALL": "C",
            # the one commit retention writes (refs/agentctl/kept) needs a name
            "GIT_AUTHOR_NAME": "agentctl",
            "GIT_AUTHOR_EMAIL": "agentctl@localhost",
            "GIT_COMMITTER_NAME": "agentctl",
            "GIT_COMMITTER_EMAIL": "agentctl@localhost",
        }
        if not (self.git_dir / "HEAD").exists() and not create:
            raise SnapshotsUnavailable("no snapshot of this workspace was taken")
        # Made on first use: a session that never changes a file never runs git at all.
        self._private = private

    def _ensure(self) -> None:
        if not (self.git_dir / "HEAD").exists():
            self._init(self._private)

    def _init(self, private: Path) -> None:
        self.git_dir.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._git("init", "--quiet")
        private.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.git_dir, 0o700)
        for key, value in (
            ("core.hooksPath", os.devnull),
            ("core.fsmonitor", "false"),
            ("core.autocrlf", "false"),
            ("core.symlinks", "true"),
            ("core.quotepath", "false"),
            ("core.untrackedCache", "true"),
            ("gc.auto", "0"),
            ("advice.addEmbeddedRepo", "false"),
        ):
            self._git("config", key, value)
        (self.git_dir / "info").mkdir(exist_ok=True)
        (self.git_dir / "info" / "exclude").write_text("\n".join(DEFAULT_IGNORES) + "\n")

    def _git(self, *args: str, check: bool = True) -> str:
        try:
            done = subprocess.run(
                ["git", *args],
                env=self._env,
                cwd=self.workspace,
                capture_output=True,
                check=False,
                timeout=300,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise StoreError(f"workspace snapshot: git {args[0]} failed: {exc}") from None
        if check and done.returncode != 0:
            text = done.stderr.decode(errors="replace").strip().splitlines()
            raise StoreError(
                f"workspace snapshot: git {args[0]} failed: {text[-1] if text else done.returncode}"
            )
        return done.stdout.decode(errors="surrogateescape")

    # -- capture and restore ------------------------------------------------------------------

    def capture(self, previous: str | None = None) -> Capture:
        """The workspace as a tree id, now, and what changed since tree `previous`. Files over
        the size cap are left out and named: untracked ones before `git add` sees them (it
        would store them), and a tracked file that grew past the cap is dropped after."""
        self._ensure()
        untracked = self._git("ls-files", "-z", "--others", "--exclude-standard")
        big, nested, new_bytes = [], [], 0
        for name in filter(None, untracked.split("\0")):
            if name.endswith("/"):  # git does not descend into another repository
                nested.append(name.rstrip("/"))
            elif self._too_big(name):
                big.append(name)
            else:  # a capture stores at most max_capture bytes of new files; the rest: named
                new_bytes += self._size(name)
                if new_bytes > self.max_capture:
                    big.append(name)
        # A nested repository is the user's: left out whole (not even as a gitlink).
        excludes = [f":(exclude,literal){name}" for name in big + nested]
        self._git("add", "-A", "--", ".", *excludes)
        tree = self._git("write-tree").strip()
        changed = self.changes(previous, tree) if previous else []
        grown = [c.path for c in changed if c.status in "AMT" and self._too_big(c.path)]
        if grown:  # tracked before and grown since: out of the snapshot, not kept stale
            self._git("rm", "-q", "--cached", "--ignore-unmatch", "--", *grown)
            tree = self._git("write-tree").strip()
            changed = self.changes(previous, tree) if previous else []
        return Capture(tree, tuple(sorted(big + grown)), tuple(changed))

    def _too_big(self, name: str) -> bool:
        return self._size(name) > self.max_file

    def _size(self, name: str) -> int:
        try:
            info = os.lstat(self.workspace / name)
        except OSError:
            return 0
        return 0 if os.path.islink(self.workspace / name) else info.st_size

    def changes(self, old: str, new: str) -> list[Change]:
        """What differs from tree `old` to tree `new` (renames as a delete and an add)."""
        if old == new:
            return []
        out = self._git("diff-tree", "-r", "-z", "--no-renames", "--name-status", old, new)
        fields = [f for f in out.split("\0") if f]
        return [Change(fields[i], fields[i + 1]) for i in range(0, len(fields) - 1, 2)]

    def numstat(self, old: str, new: str) -> list[tuple[int | None, int | None, str]]:
        """Lines added and removed per file from tree `old` to `new` (None: a binary file)."""
        if old == new:
            return []
        out = self._git("diff-tree", "-r", "-z", "--no-renames", "--numstat", old, new)
        rows = []
        for field in out.split("\0"):
            added, _, rest = field.partition("\t")
            removed, _, path = rest.partition("\t")
            if path:
                rows.append(
                    (
                        int(added) if added.isdigit() else None,
                        int(removed) if removed.isdigit() else None,
                        path,
                    )
                )
        return rows

    def restore(self, current: str, target: str) -> None:
        """Make the workspace tree `target`; the index must hold `current` (a capture just
        taken). Files only `current` has are removed; files over the cap are left alone."""
        # The capture left `current` in the index with every file's stat data, so git writes
        # only the files that differ. Reading the tree into the index instead would drop that
        # data and rewrite every file (200 ms, not 20, at 2,000 files).
        if self._git("write-tree").strip() != current:
            self._git("read-tree", current)
        self._git("read-tree", "--reset", "-u", target)

    # -- retention ---------------------------------------------------------------------------

    @property
    def owners_file(self) -> Path:
        return self.git_dir / "sessions"

    def add_owner(self, session_id: str) -> None:
        """Remember a session that snapshots into this store (its first capture)."""
        self._ensure()
        with self.owners_file.open("a") as f:
            f.write(session_id + "\n")

    def owners(self) -> set[str]:
        try:
            return set(filter(None, self.owners_file.read_text().split("\n")))
        except OSError:
            return set()

    def collect(self, keep: set[str], owners: set[str]) -> int:
        """Delete every snapshot object no tree in `keep` reaches, and pack the rest (git's
        delta compression makes the trees small). `owners` are the sessions left using this
        store. Returns the bytes given back."""
        before = self.size()
        asked = "".join(f"{tree}\n" for tree in sorted(keep))
        present = self._stdin("cat-file", "--batch-check", asked)
        trees = [
            f[0] for f in (line.split() for line in present.splitlines()) if f[1:2] == ["tree"]
        ]
        listing = "".join(f"040000 tree {tree}\t{n:08d}\n" for n, tree in enumerate(trees))
        holder = self._stdin("mktree", listing).strip()
        commit = self._git("commit-tree", holder, "-m", "snapshots kept by agentctl").strip()
        self._git("update-ref", "refs/agentctl/kept", commit)
        self._git("reflog", "expire", "--expire=now", "--all")
        self._git("repack", "-a", "-d", "-q")
        self._git("prune", "--expire=now")
        self.owners_file.write_text("".join(f"{o}\n" for o in sorted(owners)))
        return max(0, before - self.size())

    def _stdin(self, command: str, *rest: str) -> str:
        """A git command fed the last argument on its standard input."""
        *args, text = rest
        done = subprocess.run(
            ["git", command, *args],
            input=text.encode(),
            env=self._env,
            cwd=self.workspace,
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            raise StoreError(f"workspace snapshot: git {command} failed")
        return done.stdout.decode()

    def borrow(self, other: Snapshots) -> None:
        """Read `other`'s objects too (git alternates): a fork's new workspace reaches every
        tree of the session it came from, without copying them."""
        self._ensure()
        alternates = self.git_dir / "objects" / "info" / "alternates"
        alternates.parent.mkdir(parents=True, exist_ok=True)
        known = alternates.read_text().split("\n") if alternates.exists() else []
        source = str((other.git_dir / "objects").resolve())
        if source not in known:
            alternates.write_text("\n".join([*filter(None, known), source]) + "\n")

    def checkout(self, tree: str) -> None:
        """Write tree `tree` into the (empty) workspace: a fork's files."""
        self._git("read-tree", tree)
        self._git("checkout-index", "-a", "-f")

    def has(self, tree: str) -> bool:
        return self._git("cat-file", "-t", tree, check=False).strip() == "tree"

    def diff(self, old: str, new: str, *, stat: bool = False, color: bool = False) -> str:
        args = ["diff-tree", "-r", "--no-renames", "--stat" if stat else "-p"]
        if color:
            args.append("--color=always")
        return self._git(*args, old, new)

    def size(self) -> int:
        """Bytes the snapshot store takes on disk (scandir: `show` pays little for it)."""
        total = 0
        stack = [str(self.git_dir / "objects")]
        while stack:
            try:
                entries = list(os.scandir(stack.pop()))
            except OSError:
                continue
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
        return total

    # -- an interrupted restore --------------------------------------------------------------

    @property
    def marker(self) -> Path:
        return self.git_dir / "restoring"

    def begin_restore(self, session_id: str, checkpoint: int, target: str) -> None:
        """Written before a restore starts, removed when it ends: a crash in between leaves a
        mark that the next `resume` or `rollback` of the session completes."""
        self._ensure()
        self.marker.write_text(f"{session_id} {checkpoint} {target}\n")

    def end_restore(self) -> None:
        self.marker.unlink(missing_ok=True)

    def pending_restore(self) -> tuple[str, int, str] | None:
        try:
            session_id, checkpoint, target = self.marker.read_text().split()
            return session_id, int(checkpoint), target
        except (OSError, ValueError):
            return None
