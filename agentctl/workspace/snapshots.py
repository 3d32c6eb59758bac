"""Workspace snapshots: a shadow git object store per workspace, driven by the `git` command.

Each workspace gets its own git directory under agentctl's data directory
(`snapshots/<hash of the workspace path>`); git's work tree is the workspace. A capture is
`git add -A` into that directory's own index, then `git write-tree`: content-addressed, so disk
grows only with changed bytes and an unchanged workspace gives the same tree id. After the
first, a capture does the same in process (workspace/incremental.py: the index as the stat
cache, objects written by agentctl in git's format), so a turn spawns no git; whatever that
path does not follow exactly is left to git, capture by capture. A restore is
`git read-tree --reset -u TREE` from an index that holds the current capture: files the tree
lacks are removed, the rest written, symlinks restored as symlinks. Git keeps only 644 or 755,
so each capture also records the exact permission of every file that has another one
(`modes/<tree>`), and a restore puts it back: a 0600 key never comes back 0644.

Isolation. The user's own `.git` is never read or written: GIT_DIR points at the shadow
directory, `.git` entries are never added (git's rule), and a nested repository is left out
whole. The user's git configuration, hooks and fsmonitor do not run: no system or global
config, a private HOME, `core.hooksPath` to nowhere, `core.fsmonitor` off, and `git` itself
found through the absolute entries of PATH only (a `git` planted in the workspace never runs).
The store's own `info/attributes` unsets every attribute that changes bytes (`text`, `eol`,
`ident`, `filter`, `working-tree-encoding`), and it takes precedence over the workspace's
`.gitattributes`: a restore is byte-exact. A value read from agentctl's store (a tree id) is
checked to be one before it reaches git, and every git call ends its options. Like git, a
snapshot keeps no empty folder.

Sharing. Several sessions (and processes) may use one workspace: every operation that writes
the shadow store holds an exclusive lock on it (`flock`), so captures never interleave and two
first captures cannot race on `git init`. While agentctl holds that lock no other agentctl
process is inside git here, so a git lock file found then (`index.lock`, left by a `kill -9`)
is stale and removed.

Never captured, never restored: agentctl's own data folder and store files when they lie in
the workspace, and folders git refuses by name (`.GIT`, `git~1`, `.git.`: git's own folder on
another file system); the capture names what it left out.

Bounds. The workspace's `.gitignore` files apply, plus defaults (virtual environments,
node_modules, caches, build output). A file over `max_file` bytes is not captured (and not in
the tree, so a restore leaves it as it is); the capture names it. One capture adds at most
`max_capture` bytes of new content, new files and rewritten tracked files alike; what would
pass the bound is left out of that capture and named. Nothing is ever pruned here
(`gc.auto = 0`): retention belongs to an explicit command.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import stat
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from agentctl import faults
from agentctl.config import DEFAULT_SNAPSHOT_MAX_CAPTURE, DEFAULT_SNAPSHOT_MAX_FILE
from agentctl.errors import StoreError
from agentctl.workspace.ignore import Unsupported
from agentctl.workspace.incremental import InProcess, LeftToGit
from agentctl.workspace.packing import TreePack, all_trees, parse_raw

MAX_FILE = DEFAULT_SNAPSHOT_MAX_FILE  # bytes: a larger file is not captured
MAX_CAPTURE = DEFAULT_SNAPSHOT_MAX_CAPTURE  # bytes of new content one capture adds
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
# Attributes that would make the bytes written differ from the bytes captured, all unset.
ATTRIBUTES = "* -text -eol -ident -filter -working-tree-encoding\n"
_TREE_ID = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
LOCK_WAIT_S = 300.0
# Characters some file systems ignore in names (HFS+), which git ignores when it checks one.
_IGNORABLE = re.compile("[\u200c-\u200f\u202a-\u202e\u206a-\u206f\ufeff]")
# Lock files a git killed mid-write leaves; stale whenever agentctl holds the store's lock.
_GIT_LOCKS = ("index.lock", "config.lock", "HEAD.lock", "packed-refs.lock", "shallow.lock")


def valid_tree(tree: object) -> str:
    """`tree` if it is a git object id (40 or 64 hex digits); a StoreError otherwise. Ids come
    from agentctl's store, which is hostile input: `--output=FILE` must never reach git."""
    if not isinstance(tree, str) or not _TREE_ID.fullmatch(tree):
        shown = repr(tree)[:80]
        raise StoreError(f"workspace snapshot: {shown} is not a snapshot id")
    return tree


def refused_name(component: str) -> bool:
    """A path component git refuses to store (its own folder under another spelling: `.GIT`,
    `git~1`, `.git.`, `.git `, `.git::$DATA`, with ignorable characters)."""
    name = _IGNORABLE.sub("", component).split(":", 1)[0].rstrip(" .").lower()
    return name in (".git", "git~1")


def git_command(path: str) -> tuple[str | None, str]:
    """The absolute `git` found through PATH's absolute entries, and that PATH. A relative
    entry (`.`, an empty one, `bin`) would find a `git` the workspace planted."""
    entries = [e for e in path.split(os.pathsep) if e and os.path.isabs(e)]
    clean = os.pathsep.join(entries) or "/usr/bin:/bin"
    return shutil.which("git", path=clean), clean


def _canonical(mode: int) -> int:
    """The permission git writes for a file: 755 if executable by its owner, else 644."""
    return 0o755 if mode & 0o100 else 0o644


class SnapshotsUnavailable(Exception):
    """Snapshots cannot be taken here (no git, or a workspace that must not be captured)."""


@dataclass(frozen=True)
class Change:
    status: str  # A: added, D: deleted, M: modified, T: type changed (file <-> symlink)
    path: str


@dataclass(frozen=True)
class Capture:
    tree: str
    skipped: tuple[str, ...] = ()  # not captured: over a cap, or a name git refuses
    changed: tuple[Change, ...] = ()  # since the tree the capture was asked to compare with


def _literal(name: bytes) -> bytes:
    """`name` as an ignore pattern that matches it alone (every special byte escaped)."""
    return b"".join(b"\\" + bytes([c]) if c in b"\\*?[]!# " else bytes([c]) for c in name)


def refuse_reason(workspace: Path, home: str | None) -> str | None:
    """Why a workspace must not be captured (its whole home folder or the whole disk)."""
    resolved = workspace.resolve()
    if resolved == Path("/"):
        return "the workspace is / (the whole disk)"
    if home and resolved == Path(home).resolve():
        return "the workspace is your home folder"
    return None


class Snapshots:
    # Captures write their objects in process (workspace/incremental.py), git only where that
    # path leaves a capture to it; False: every capture through git (tests compare the two).
    in_process = True

    def __init__(
        self,
        workspace: Path,
        data_dir: Path,
        max_file: int = MAX_FILE,
        max_capture: int = MAX_CAPTURE,
        create: bool = True,
        private: Iterable[Path] = (),
    ) -> None:
        self.max_capture = max_capture
        # Told each tree captured (a worker shares it: usecases/worker.py).
        self.on_capture: Callable[[str], None] | None = None
        git, path = git_command(os.environ.get("PATH", "/usr/bin:/bin"))
        if git is None:
            raise SnapshotsUnavailable("git is not installed")
        self._git_bin = git
        self.workspace = workspace.resolve()
        key = hashlib.sha256(str(self.workspace).encode()).hexdigest()[:16]
        self.git_dir = data_dir / "snapshots" / key
        self._lock_path = data_dir / "snapshots" / f"{key}.lock"
        self._lock_depth = 0
        self._lock_fd = -1
        self.max_file = max_file
        # agentctl's own files inside the workspace (its data folder, its store): never
        # captured, never restored, as paths relative to the workspace.
        self.own: tuple[str, ...] = tuple(
            sorted({rel for rel in (self._inside(p) for p in (data_dir, *private)) if rel})
        )
        private_home = self.git_dir / "home"
        self._env = {
            "PATH": path,
            "GIT_DIR": str(self.git_dir),
            "GIT_WORK_TREE": str(self.workspace),
            "GIT_INDEX_FILE": str(self.git_dir / "index"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "HOME": str(private_home),
            "XDG_CONFIG_HOME": str(private_home),
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
        self._private = private_home
        self._fast = InProcess(self.git_dir, self.workspace, self.own, ATTRIBUTES)
        self._modes_written: tuple[str, list[str]] | None = None

    def _inside(self, path: Path) -> str | None:
        try:
            rel = path.resolve().relative_to(self.workspace)
        except (ValueError, OSError):
            return None
        return str(rel) if str(rel) != "." else None

    # -- the lock ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store's exclusive lock (re-entrant within this object). Waits for another
        agentctl process at most LOCK_WAIT_S; git lock files found once it is held are stale."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        self._lock_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StoreError(f"workspace snapshot: cannot lock {self._lock_path}: {exc}") from None
        try:
            deadline = time.monotonic() + LOCK_WAIT_S
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StoreError(
                            "workspace snapshot: another agentctl process has held the "
                            f"snapshots of {self.workspace} for {LOCK_WAIT_S:g} s"
                        ) from None
                    time.sleep(0.02)
            self._lock_fd, self._lock_depth = fd, 1
            self._clear_stale_locks()
            yield
        finally:
            self._lock_depth, self._lock_fd = 0, -1
            os.close(fd)  # releases the lock

    def _clear_stale_locks(self) -> None:
        stale = [self.git_dir / name for name in _GIT_LOCKS]
        refs = self.git_dir / "refs"
        if refs.is_dir():
            stale += list(refs.rglob("*.lock"))
        for lock in stale:
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()

    def _ensure(self) -> None:
        """Create (or finish creating, or bring up to date) the shadow store, under the lock.
        The attributes file is written last: its presence says the set-up is complete."""
        if (self.git_dir / "info" / "attributes").exists():
            return
        with self.locked():
            if not (self.git_dir / "info" / "attributes").exists():
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
        temporary = self.git_dir / "info" / "attributes.tmp"
        temporary.write_text(ATTRIBUTES)
        os.replace(temporary, self.git_dir / "info" / "attributes")

    def _git(self, *args: str, check: bool = True, env: dict[str, str] | None = None) -> str:
        command = next((a for a in args if not a.startswith("-") and "=" not in a), args[0])
        where = Path((env or {}).get("GIT_WORK_TREE", self.workspace))
        if not where.is_dir():  # a fork's folder, not made yet
            where = self.git_dir.parent
        try:
            done = subprocess.run(
                [self._git_bin, *args],
                env={**self._env, **(env or {})},
                cwd=where,
                capture_output=True,
                check=False,
                timeout=300,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise StoreError(f"workspace snapshot: git {command} failed: {exc}") from None
        if check and done.returncode != 0:
            text = done.stderr.decode(errors="replace").strip().splitlines()
            raise StoreError(
                f"workspace snapshot: git {command} failed: {text[-1] if text else done.returncode}"
            )
        return done.stdout.decode(errors="surrogateescape")

    def _die_in_git(self, point: str) -> None:
        """A crash-test point: die as a `kill -9` of agentctl and its git child would, with
        git's index lock taken and the index not yet written."""
        if faults.armed(point):
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.git_dir / "index.lock", os.O_CREAT | os.O_EXCL, 0o600))
        faults.hit(point)

    # -- capture and restore ------------------------------------------------------------------

    def capture(self, previous: str | None = None) -> Capture:
        """The workspace as a tree id, now, and what changed since tree `previous`. Left out
        and named: files over the size cap, new content past the capture bound (untracked
        files before `git add` sees them, and rewritten tracked files, which are dropped from
        the index rather than kept stale), folders git refuses by name. Left out silently:
        agentctl's own files and nested repositories (the user's)."""
        if previous is not None:
            valid_tree(previous)
        self._ensure()
        with self.locked():
            captured = self._capture(previous)
        if self.on_capture is not None:
            self.on_capture(captured.tree)
        return captured

    def _capture(self, previous: str | None) -> Capture:
        if self.in_process:
            done = self._capture_in_process(previous)
            if done is not None:
                return done
        with self._pipes_held() as options:
            return self._capture_by_git(previous, options)

    @contextlib.contextmanager
    def _pipes_held(self) -> Iterator[tuple[str, ...]]:
        """Git opens each `.gitignore` it reads, and the `.git/HEAD` of each untracked folder
        that may be a repository, and waits on one that is a pipe until something opens it
        for writing: a `mkfifo .gitignore` stalled every capture for the git call's 300 s,
        then failed it. Each such `.gitignore` is held open for writing while git runs, so it
        opens at once and reads as empty (no pattern, as in process); each such folder is
        excluded (`core.excludesFile`, for these git calls only), so git never opens its
        HEAD: left out whole, as in process. Yields the options git is run with."""
        ignores, heads = self._fast.git_pipes()
        options: tuple[str, ...] = ()
        if heads:
            if any(b"\n" in folder for folder in heads):
                raise StoreError("workspace snapshot: a folder named with a line break holds "
                                 "a .git/HEAD that is a pipe; git would wait on it")  # fmt: skip
            excluded = self.git_dir / "pipes.exclude"
            excluded.write_bytes(b"".join(b"/%s/\n" % _literal(folder) for folder in heads))
            options = ("-c", f"core.excludesFile={excluded}")
        held = []
        try:
            for path in ignores:
                with contextlib.suppress(OSError):
                    flags = os.O_RDWR | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
                    held.append(os.open(path, flags))
            yield options
        finally:
            for fd in held:
                os.close(fd)

    def _capture_by_git(self, previous: str | None, options: tuple[str, ...] = ()) -> Capture:
        # One listing, tagged: H tracked, C tracked and changed, ? untracked (not ignored).
        listed = self._git(
            *options, "ls-files", "-z", "-t", "--cached", "--others", "--modified",
            "--exclude-standard",
        )  # fmt: skip
        entries = ((entry[:1], entry[2:]) for entry in filter(None, listed.split("\0")))
        big, nested, refused, tracked, added = self._classify(entries)
        # A nested repository is the user's: left out whole (not even as a gitlink).
        left = [*big, *nested, *sorted(refused), *self.own]
        excludes = [f":(exclude,literal){name}" for name in left]
        if self.own or big:  # captured before (an older agentctl, or a rewrite): out now
            gone = [f":(literal){name}" for name in [*self.own, *big]]
            self._git("rm", "-r", "-q", "-f", "--cached", "--ignore-unmatch", "--", *gone)
        self._die_in_git("capture_in_git")
        self._git(*options, "add", "-A", "--", ".", *excludes)
        tree = self._git("write-tree").strip()
        changed, trees = self._changes_and_trees(previous, tree)
        grown = [c.path for c in changed if c.status in "AMT" and self._too_big(c.path)]
        if grown:  # tracked before and grown since: out of the snapshot, not kept stale
            dropped = [f":(literal){name}" for name in grown]
            self._git("rm", "-q", "-f", "--cached", "--ignore-unmatch", "--", *dropped)
            tree = self._git("write-tree").strip()
            changed, trees = self._changes_and_trees(previous, tree)
        with contextlib.suppress(StoreError):  # an economy: when it fails, trees stay loose
            TreePack(self.git_dir).add(self._stdin, trees)
        self._record_modes(tree, [*tracked, *added])
        return Capture(tree, self._skipped({*big, *grown}, refused), tuple(changed))

    def _classify(
        self, listed: Iterable[tuple[str, str]]
    ) -> tuple[list[str], list[str], set[str], list[str], list[str]]:
        """Sort a listing as `git ls-files -t --cached --others --modified` gives it (tag,
        name): files over a cap (and those git cannot add: a tracked file that is a pipe,
        socket or device now, a file this user cannot read), nested repositories, refused
        names, the tracked files, and the untracked files to add. One capture adds at most
        max_capture bytes of content, counted in the listing's order: untracked files first,
        then changed tracked ones."""
        big: list[str] = []
        nested: list[str] = []
        refused: set[str] = set()
        tracked: list[str] = []
        added: list[str] = []
        new_bytes = 0
        for tag, name in listed:
            if tag != "?" and tag != "C":
                tracked.append(name)
                continue
            if self._own(name):
                continue
            parts = name.rstrip("/").split("/")
            bad = next((i for i, part in enumerate(parts) if refused_name(part)), None)
            if bad is not None:
                refused.add("/".join(parts[: bad + 1]))
            elif name.endswith("/"):  # git does not descend into another repository
                nested.append(name.rstrip("/"))
            elif self._too_big(name) or (tag == "C" and self._special(name)) or self._unread(name):
                big.append(name)
            else:  # a capture adds at most max_capture bytes of content; the rest: named
                new_bytes += self._size(name)
                if new_bytes > self.max_capture:
                    big.append(name)
                elif tag == "?":
                    added.append(name)
        return big, nested, refused, tracked, added

    def _capture_in_process(self, previous: str | None) -> Capture | None:
        """The capture without spawning git (workspace/incremental.py); None when this one
        is left to git (the first capture, or something the in-process path does not
        follow exactly)."""
        fast = self._fast
        try:
            scan = fast.scan()
            listing = [("?", os.fsdecode(name)) for name in scan.others]
            listing += [("C", os.fsdecode(name)) for name in scan.modified]
            big, nested, refused, _tracked, added = self._classify(listing)
            left = [*big, *nested, *sorted(refused), *self.own]
            self._die_in_git("capture_in_git")
            applied = fast.apply(scan, added, big, left, self.own)
        except (LeftToGit, Unsupported, OSError):  # OSError: a store it cannot write: git says why
            fast.forget()
            return None
        except BaseException:
            fast.forget()
            raise
        tree = applied.tree
        if previous is None or previous == tree:
            changed = []
        elif previous == applied.previous_tree:
            changed = [Change(status, path) for status, path in applied.changed]
        else:
            changed = self._changes_and_trees(previous, tree)[0]
        if applied.written_trees:
            with contextlib.suppress(StoreError):  # an economy: when it fails, trees stay loose
                TreePack(self.git_dir).add(
                    self._stdin, applied.written_trees, fast.objects.tree_sizes
                )
        self._write_modes(tree, applied.odd_modes)
        return Capture(tree, self._skipped(big, refused), tuple(changed))

    def _changes_and_trees(
        self, previous: str | None, tree: str
    ) -> tuple[list[Change], list[tuple[str, str]]]:
        """What changed since tree `previous` (as `changes` says it), and the trees `tree`
        has that `previous` has not, as (id, path): one `diff-tree` for both."""
        if previous is None:
            return [], [(tree, ""), *all_trees(self._git, tree)]
        if previous == tree:
            return [], []
        raw = self._git(
            "diff-tree", "-r", "-t", "-z", "--no-renames", "--raw", "--end-of-options",
            previous, tree,
        )  # fmt: skip
        files, trees = parse_raw(raw)
        return [Change(status, path) for status, path in files], [(tree, ""), *trees]

    def _own(self, name: str) -> bool:
        return any(name == own or name.startswith(own + "/") for own in self.own)

    # -- exact file modes --------------------------------------------------------------------

    def _modes_file(self, tree: str) -> Path:
        return self.git_dir / "modes" / valid_tree(tree)

    def _record_modes(self, tree: str, names: list[str]) -> None:
        """Write the permissions of the files captured as `tree` (`names`) that git would not
        restore as they are."""
        odd = []
        base = f"{self.workspace}/"
        for name in names:
            try:
                info = os.lstat(base + name)
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                perm = stat.S_IMODE(info.st_mode)
                if perm != _canonical(perm):
                    odd.append(f"{perm:o} {name}")
        self._write_modes(tree, odd)

    def _write_modes(self, tree: str, odd: list[str]) -> None:
        """`modes/<tree>`: each "perm name" of `odd`; no file when there is none."""
        if self._modes_written == (tree, odd):
            return  # as the last capture of this process left it
        path = self._modes_file(tree)
        text = "".join(f"{line}\0" for line in odd)
        if not odd:
            path.unlink(missing_ok=True)
            self._modes_written = (tree, odd)
            return
        with contextlib.suppress(OSError):
            if path.read_text(errors="surrogateescape") == text:
                self._modes_written = (tree, odd)
                return
        path.parent.mkdir(mode=0o700, exist_ok=True)
        temporary = path.with_name(f"{tree}.{os.getpid()}.tmp")
        temporary.write_text(text, errors="surrogateescape")
        os.replace(temporary, path)
        self._modes_written = (tree, odd)

    def modes(self, tree: str) -> dict[str, int]:
        """The recorded permissions of tree `tree`'s files that are neither 644 nor 755."""
        try:
            text = self._modes_file(tree).read_text(errors="surrogateescape")
        except OSError:
            return {}
        out = {}
        for entry in filter(None, text.split("\0")):
            perm, _, name = entry.partition(" ")
            with contextlib.suppress(ValueError):
                out[name] = int(perm, 8) & 0o7777
        return out

    def _put_modes(self, tree: str, paths: Iterable[str]) -> None:
        """Give each restored file of `paths` the permission tree `tree` recorded."""
        recorded = self.modes(tree)
        for name in paths:
            path = self.workspace / name
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode):
                continue
            want = recorded.get(name, _canonical(stat.S_IMODE(info.st_mode)))
            if stat.S_IMODE(info.st_mode) != want:
                with contextlib.suppress(OSError):
                    os.chmod(path, want, follow_symlinks=False)

    def _special(self, name: str) -> bool:
        """Whether `name` is a pipe, socket or device (no file git can hold)."""
        try:
            kind = stat.S_IFMT(os.lstat(self.workspace / name).st_mode)
        except OSError:
            return False
        return kind not in (stat.S_IFREG, stat.S_IFLNK, stat.S_IFDIR)

    def _unread(self, name: str) -> bool:
        """Whether `name` is a file this user cannot read (git add fails on it)."""
        path = self.workspace / name
        try:
            return stat.S_ISREG(os.lstat(path).st_mode) and not os.access(path, os.R_OK)
        except OSError:
            return False

    def _skipped(self, big: Iterable[str], refused: Iterable[str]) -> tuple[str, ...]:
        """What a capture left out, as it names it."""
        named = [
            f"{name} (not a file)"
            if self._special(name)
            else f"{name} (unreadable)"
            if self._unread(name)
            else name
            for name in sorted(big)
        ]
        return (*named, *(f"{name}/ (a name git refuses)" for name in sorted(refused)))

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
        if valid_tree(old) == valid_tree(new):
            return []
        out = self._git(
            "diff-tree", "-r", "-z", "--no-renames", "--name-status", "--end-of-options", old, new
        )
        fields = [f for f in out.split("\0") if f]
        return [Change(fields[i], fields[i + 1]) for i in range(0, len(fields) - 1, 2)]

    def numstat(self, old: str, new: str) -> list[tuple[int | None, int | None, str]]:
        """Lines added and removed per file from tree `old` to `new` (None: a binary file)."""
        if valid_tree(old) == valid_tree(new):
            return []
        out = self._git(
            "diff-tree", "-r", "-z", "--no-renames", "--numstat", "--end-of-options", old, new
        )
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

    def restore(self, current: str, target: str) -> list[str]:
        """Make the workspace tree `target`; the index should hold `current` (a capture just
        taken). Files only `current` has are removed. A path the workspace holds that the
        capture left out (ignored, over a cap, agentctl's own, a refused name) is never
        written or deleted: the restore leaves it, and returns it."""
        valid_tree(current)
        valid_tree(target)
        with self.locked():
            left = self.left_alone(current, target)
            written = target if not left else self._without(target, left)
            # The capture left `current` in the index with every file's stat data, so git
            # writes only the files that differ. Reading the tree into the index instead would
            # drop that data and rewrite every file (200 ms, not 20, at 2,000 files).
            if self._git("write-tree").strip() != current:
                self._git("read-tree", "--end-of-options", current)
            changed = [c.path for c in self.changes(current, written) if c.status != "D"]
            self._die_in_git("restore_in_git")
            self._git("read-tree", "--reset", "-u", "--end-of-options", written)
            moded = set(self.modes(current).items()) ^ set(self.modes(target).items())
            self._put_modes(target, {*changed, *(name for name, _ in moded)} - set(left))
            return left

    def left_alone(self, current: str, target: str) -> list[str]:
        """Paths a restore from `current` to `target` must not touch: the target has them, the
        capture `current` does not, and the workspace holds something there that agentctl did
        not capture (or they are agentctl's own, or a name git refuses)."""
        left = []
        for change in self.changes(current, target):
            if change.status != "A":
                continue
            name = change.path
            parts = name.split("/")
            if self._own(name) or any(refused_name(p) for p in parts):
                left.append(name)
                continue
            for depth in range(1, len(parts) + 1):
                here = self.workspace.joinpath(*parts[:depth])
                last = depth == len(parts)
                if os.path.lexists(here) and (last or not here.is_dir() or here.is_symlink()):
                    left.append(name)
                    break
        return left

    def _without(self, tree: str, paths: list[str]) -> str:
        """Tree `tree` less `paths`, built in a private index."""
        index = self.git_dir / f"index.without.{os.getpid()}"
        env = {"GIT_INDEX_FILE": str(index)}
        try:
            self._git("read-tree", "--end-of-options", tree, env=env)
            literal = [f":(literal){name}" for name in paths]
            self._git(
                "rm", "-r", "-q", "-f", "--cached", "--ignore-unmatch", "--", *literal, env=env
            )
            return self._git("write-tree", env=env).strip()
        finally:
            index.unlink(missing_ok=True)

    # -- retention ---------------------------------------------------------------------------

    @property
    def owners_file(self) -> Path:
        return self.git_dir / "sessions"

    def add_owner(self, session_id: str) -> None:
        """Remember a session that snapshots into this store (its first capture)."""
        self._ensure()
        with self.locked(), self.owners_file.open("a") as f:
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
        with self.locked():
            return self._collect(keep, owners)

    def _collect(self, keep: set[str], owners: set[str]) -> int:
        before = self.size()
        asked = "".join(f"{tree}\n" for tree in sorted(keep) if _TREE_ID.fullmatch(tree))
        present = self._stdin("cat-file", "--batch-check", asked)
        trees = [
            f[0] for f in (line.split() for line in present.splitlines()) if f[1:2] == ["tree"]
        ]
        listing = "".join(f"040000 tree {tree}\t{n:08d}\n" for n, tree in enumerate(trees))
        holder = self._stdin("mktree", listing).strip()
        commit = self._git(
            "commit-tree", "-m", "snapshots kept by agentctl", "--end-of-options", holder
        ).strip()
        self._git("update-ref", "--end-of-options", "refs/agentctl/kept", valid_tree(commit))
        self._git("reflog", "expire", "--expire=now", "--all")
        self._git("repack", "-a", "-d", "-q")
        self._git("prune", "--expire=now")
        # The index agentctl writes names files, not folders (no cache-tree), so the trees of
        # the last capture that no kept tree reaches are gone now, while an in-process capture
        # (this process's or another's, kept in memory by the index's identity) would reuse
        # them. Without an index the next capture is git's, and it writes every tree again.
        (self.git_dir / "index").unlink(missing_ok=True)
        self._fast.forget()
        modes = self.git_dir / "modes"
        if modes.is_dir():
            kept = set(trees)
            for entry in modes.iterdir():
                if entry.name not in kept:
                    entry.unlink(missing_ok=True)
        self.owners_file.write_text("".join(f"{o}\n" for o in sorted(owners)))
        return max(0, before - self.size())

    def _stdin(self, command: str, *rest: str) -> str:
        """A git command fed the last argument on its standard input."""
        *args, text = rest
        done = subprocess.run(
            [self._git_bin, command, *args],
            input=text.encode(),
            env=self._env,
            cwd=self.workspace,
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            raise StoreError(f"workspace snapshot: git {command} failed")
        return done.stdout.decode()

    # -- sharing trees between machines (a worker's session: usecases/worker.py) ----------

    def pack(self, tree: str, since: Iterable[str] = ()) -> tuple[bytes, str]:
        """The objects of tree `tree` that the trees `since` lack, as one git pack, and the
        tree's recorded permissions: what another machine that has `since` needs to have
        `tree`. Bounded by the capture bound (one capture adds at most `max_capture` bytes
        of new content)."""
        lines = [valid_tree(tree), *(f"^{valid_tree(t)}" for t in since if self.has(t))]
        with self.locked():
            done = subprocess.run(
                [self._git_bin, "pack-objects", "--revs", "--stdout", "-q"],
                input="\n".join(lines).encode() + b"\n",
                env=self._env,
                cwd=self.git_dir,
                capture_output=True,
                check=False,
                timeout=300,
            )
        if done.returncode != 0:
            raise StoreError(f"workspace snapshot: cannot pack tree {tree}")
        try:
            modes = self._modes_file(tree).read_text(errors="surrogateescape")
        except OSError:
            modes = ""
        return done.stdout, modes

    def unpack(self, tree: str, pack: bytes, modes: str) -> None:
        """Take in a pack another machine made (`pack`): its objects, and tree `tree`'s
        recorded permissions. A pack is checked by git as it is read (store content is
        hostile input); nothing is written to the workspace."""
        valid_tree(tree)
        self._ensure()
        with self.locked():
            done = subprocess.run(
                [self._git_bin, "unpack-objects", "-q", "--strict"],
                input=pack,
                env=self._env,
                cwd=self.git_dir,
                capture_output=True,
                check=False,
                timeout=300,
            )
            if done.returncode != 0:
                raise StoreError(f"workspace snapshot: the pack of tree {tree} does not read")
            # Another machine's permissions, never its setuid, setgid or sticky bits: a store
            # writer's pack must not make the worker's user run a file as whoever owns it.
            modes = "".join(
                f"{int(perm, 8) & 0o777:o} {name}\0"
                for perm, _, name in (e.partition(" ") for e in modes.split("\0") if e)
                if perm and all(c in "01234567" for c in perm)
            )
            if modes:
                path = self._modes_file(tree)
                path.parent.mkdir(mode=0o700, exist_ok=True)
                path.write_text(modes, errors="surrogateescape")

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

    def checkout(self, tree: str, into: Path | None = None) -> None:
        """Write tree `tree` into an empty folder (`into`, else the workspace): a fork's
        files, with their recorded permissions. A private index: the store's stays as it is."""
        valid_tree(tree)
        folder = into or self.workspace
        index = self.git_dir / f"index.checkout.{os.getpid()}"
        env = {"GIT_INDEX_FILE": str(index), "GIT_WORK_TREE": str(folder)}
        with self.locked():
            try:
                self._git("read-tree", "--end-of-options", tree, env=env)
                self._git("checkout-index", "-a", "-f", env=env)
                names = filter(None, self._git("ls-files", "-z", env=env).split("\0"))
            finally:
                index.unlink(missing_ok=True)
            recorded = self.modes(tree)
            for name in names:
                path = folder / name
                with contextlib.suppress(OSError):
                    info = os.lstat(path)
                    if stat.S_ISREG(info.st_mode):
                        perm = recorded.get(name, _canonical(stat.S_IMODE(info.st_mode)))
                        os.chmod(path, perm, follow_symlinks=False)

    def has(self, tree: str) -> bool:
        valid_tree(tree)
        out = self._git("cat-file", "-t", "--end-of-options", tree, check=False)
        return out.strip() == "tree"

    def diff(self, old: str, new: str, *, stat: bool = False, color: bool = False) -> str:
        args = ["diff-tree", "-r", "--no-renames", "--stat" if stat else "-p"]
        if color:
            args.append("--color=always")
        return self._git(*args, "--end-of-options", valid_tree(old), valid_tree(new))

    def size(self) -> int:
        """Bytes the snapshot store takes on disk (scandir: `show` pays little for it)."""
        total = TreePack(self.git_dir).size()
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

    def marker(self, session_id: str) -> Path:
        """The mark of `session_id`'s restore in progress (one per session: sessions that
        share the workspace never overwrite each other's)."""
        safe = hashlib.sha256(session_id.encode()).hexdigest()[:16]
        return self.git_dir / f"restoring-{safe}"

    def begin_restore(self, session_id: str, checkpoint: int, target: str) -> None:
        """Written before a restore starts, removed when it ends: a crash in between leaves a
        mark that the next `resume` or `rollback` of the session completes."""
        valid_tree(target)
        self._ensure()
        path = self.marker(session_id)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(f"{session_id} {checkpoint} {target}\n")
        os.replace(temporary, path)

    def end_restore(self, session_id: str) -> None:
        self.marker(session_id).unlink(missing_ok=True)
        legacy = self.git_dir / "restoring"  # one mark for every session, before 2026-12
        if (self.pending_restore(session_id, legacy) or ("",))[0] == session_id:
            legacy.unlink(missing_ok=True)

    def pending_restore(
        self, session_id: str, path: Path | None = None
    ) -> tuple[str, int, str] | None:
        for mark in [path] if path else [self.marker(session_id), self.git_dir / "restoring"]:
            try:
                sid, checkpoint, target = mark.read_text().split()
                if sid == session_id and _TREE_ID.fullmatch(target):
                    return sid, int(checkpoint), target
            except (OSError, ValueError):
                continue
        return None
