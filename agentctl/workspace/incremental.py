"""A capture in process: the workspace walked once, only changed files read, the snapshot's
objects written by agentctl itself, no `git` spawned.

Git's index is the stat cache: each file's lstat (size, mtime, ctime, inode, owner) and blob id
as the last capture left it. A file whose stat is unchanged and whose mtime is in a second before
the index's is not read again; any other is hashed (racy git: a file changed within the second
the index was written looks unchanged by its stat, so it is read). The walk lists what
`git ls-files -t --cached --others --modified --exclude-standard` would (workspace/ignore.py
decides what is ignored), and the capture classifies that listing with the very code the git
path uses (caps, refused names, nested repositories, agentctl's own files). Only the folders on
a changed path get new trees; the index is written back (version 2, every entry's stat data,
as git writes it) so git's own `read-tree -u` in a restore trusts it. A capture with no change
writes nothing.

Whatever this does not follow exactly is left to git, for that capture: no index yet (the
first capture), an index git wrote with features not read here, a nested `.git` that is not
plainly a repository, a character class in a pattern, a store that cannot be written (raises
`LeftToGit`). A `.gitignore` that is not a plain file holds no pattern, as for git.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from agentctl.workspace import ignore
from agentctl.workspace.gitobjects import (
    SYMLINK,
    Entry,
    IndexTorn,
    IndexUnsupported,
    ObjectStore,
    Stat,
    Trees,
    git_mode,
    object_id,
    read_index,
    write_index,
)

_EMPTY = object_id(b"blob", b"")
KEEP_READ = 1 << 20  # a changed file up to this size is kept in memory between hash and write
RACY_REWRITE = 1 << 20  # bytes of racy files re-read before the index is written to clear them


class LeftToGit(Exception):
    """This capture is left to git (the reason is the message)."""


@dataclass
class Scan:
    """What the walk found: the listing git would give, and what the capture needs to apply."""

    others: list[bytes]  # untracked, not ignored: files, and nested repositories as b"name/"
    modified: list[bytes]  # tracked, changed or gone, in index order
    seen: dict[bytes, os.stat_result]  # tracked files and links found, and new ones: lstat
    refreshed: dict[bytes, Entry]  # tracked, content unchanged, stat changed
    contents: dict[bytes, bytes] = field(default_factory=dict)  # read while comparing
    racy_bytes: int = 0


@dataclass
class Applied:
    tree: str
    changed: list[tuple[str, str]]  # (status, path) from the tree before, as diff-tree says
    written_trees: list[tuple[str, str]]  # (id, path): trees this capture wrote
    odd_modes: list[str]  # "perm path" for files neither 644 nor 755
    previous_tree: str  # the tree the index held before this capture


class InProcess:
    """The in-process capture of one snapshot store; keeps the index it last wrote in memory
    (checked against the file's checksum before each use)."""

    def __init__(
        self, git_dir: Path, workspace: Path, own: tuple[str, ...], attributes: str
    ) -> None:
        self.git_dir = git_dir
        self.attributes = attributes  # the store's info/attributes, as agentctl writes it
        self.root = os.fsencode(workspace)
        self.own = {os.fsencode(name) for name in own}
        self.objects = ObjectStore(git_dir / "objects")
        self.index_path = git_dir / "index"
        self._entries: dict[bytes, Entry] = {}
        self._trees: Trees | None = None
        self._folders: set[bytes] = set()
        # The index as this object last read or wrote it (inode, size, mtime, ctime): git
        # writes a new file and renames it, so a git capture or restore since changes it.
        self._identity: tuple[int, int, int, int] | None = None
        self._index_time = 0
        self._ignore_files: dict[bytes, tuple[tuple[int, ...], list[ignore.Pattern]]] = {}
        # Kept while the index is the one this object read or wrote: the raw lstat of each
        # tracked file last found unchanged, the "perm path" of those neither 644 nor 755,
        # and each entry's bytes in the index.
        self._clean: dict[bytes, tuple[int, int, int, int, int]] = {}
        self._odd: dict[bytes, str] = {}
        self._records: dict[bytes, tuple[Entry, bytes]] = {}
        self._settled: bool | None = None

    # -- the index as the last capture left it ---------------------------------------------

    def _settings_allow(self) -> bool:
        """The store is one agentctl set up: SHA-1, case-sensitive, its own attributes, no
        other ignore file (read once)."""
        if self._settled is None:
            try:
                config = (self.git_dir / "config").read_text(errors="replace").lower()
                attributes = (self.git_dir / "info" / "attributes").read_text()
            except OSError:
                return False
            self._settled = (
                attributes == self.attributes
                and not any(map(_unsettling, config.splitlines()))
                and not (self.git_dir / "home" / "git" / "ignore").exists()
            )
        return self._settled

    def _load(self) -> None:
        if not self._settings_allow():
            raise LeftToGit("store settings")
        try:
            st = os.stat(self.index_path)
        except FileNotFoundError:
            raise LeftToGit("no index yet") from None
        identity = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if identity != self._identity or self._trees is None:
            data = self.index_path.read_bytes()
            try:
                entries = read_index(data)
            except IndexTorn:  # a write a crash cut short: git rebuilds it from the files
                self.index_path.unlink(missing_ok=True)
                raise LeftToGit("a torn index") from None
            except IndexUnsupported as exc:
                raise LeftToGit(str(exc)) from None
            self._use(entries)
            st = os.stat(self.index_path)
            self._identity = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        self._index_time = st.st_mtime_ns

    def _use(self, entries: dict[bytes, Entry]) -> None:
        self._entries = entries
        self._trees = Trees(entries)
        self._clean = {}
        self._odd = {}
        self._records = {}
        self._folders = _folders_of(entries)

    def forget(self) -> None:
        """Drop what is kept in memory: the next capture reads the index again."""
        self._trees, self._identity = None, None

    # -- the walk ----------------------------------------------------------------------------

    def _patterns(self, folder: bytes) -> list[ignore.Pattern]:
        """The patterns of `folder`'s .gitignore (b"" is the root), cached by its stat."""
        path = self.root + b"/" + folder + b".gitignore"
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return []
        if not stat.S_ISREG(st.st_mode):
            # Git reads no pattern from it: a link it does not follow, a folder it cannot
            # read, a device (empty); on a pipe it waits, unless a writer holds it open
            # (Snapshots does while git runs), and then it reads it as empty.
            return []
        key = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
        cached = self._ignore_files.get(folder)
        if cached is None or cached[0] != key:
            # Never through a link, never waiting on a pipe put there since the lstat.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as f:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise LeftToGit(".gitignore changed kind while read")
                cached = (key, ignore.parse(f.read(), folder))
            self._ignore_files[folder] = cached
        return cached[1]

    def git_pipes(self) -> tuple[list[bytes], list[bytes]]:
        """What git would open and wait on for ever, being pipes: `.gitignore` files (full
        paths), and untracked folders whose `.git/HEAD` is one (relative, git's test of a
        nested repository reads it). Walked as `scan` walks, past ignored folders; under a
        pattern this module does not decide, everywhere."""
        try:
            top: ignore.Rules | None = self._root_rules()
        except (ignore.Unsupported, LeftToGit, OSError):
            top = None
        tracked = self._folders if self._trees is not None else _index_folders(self.index_path)
        ignores, heads = [], []
        stack: list[tuple[bytes, ignore.Rules | None]] = [(b"", top)]
        while stack:
            rel, rules = stack.pop()
            path = self.root + b"/" + rel + b".gitignore"
            with contextlib.suppress(OSError):
                if stat.S_ISFIFO(os.lstat(path).st_mode):
                    ignores.append(path)
            try:
                listing = os.scandir(self.root + b"/" + rel if rel else self.root)
            except OSError:
                continue
            with listing:
                for item in listing:
                    if item.name == b".git" or not item.is_dir(follow_symlinks=False):
                        continue
                    folder = rel + item.name
                    below = None
                    if rules is not None:
                        try:
                            if rules.ignored(folder, item.name, True):
                                continue
                            below = rules.below(self._patterns(folder + b"/"))
                        except (ignore.Unsupported, LeftToGit, OSError):
                            below = None
                    if folder not in tracked and _head_is_special(item.path + b"/.git"):
                        heads.append(folder)
                        continue
                    stack.append((folder + b"/", below))
        return ignores, heads

    def _root_rules(self) -> ignore.Rules:
        exclude = self.git_dir / "info" / "exclude"
        try:
            st = exclude.stat()
            key = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
            cached = self._ignore_files.get(b"\0exclude")
            if cached is None or cached[0] != key:
                cached = (key, ignore.parse(exclude.read_bytes(), b""))
                self._ignore_files[b"\0exclude"] = cached
            patterns = cached[1]
        except FileNotFoundError:
            patterns = []
        return ignore.Rules(tuple(patterns)).below(self._patterns(b""))

    def _nested(self, folder: bytes) -> bool:
        """Whether an untracked folder is another repository (git leaves it out whole)."""
        dotgit = self.root + b"/" + folder + b".git"
        try:
            st = os.lstat(dotgit)
        except (FileNotFoundError, NotADirectoryError):
            return False
        if stat.S_ISDIR(st.st_mode) and (_head_is_special(dotgit) or _is_repository(dotgit)):
            return True  # (a HEAD git can only wait on: left out whole, git's too)
        raise LeftToGit("a .git that is not plainly a repository")

    def scan(self) -> Scan:
        """Walk the workspace against the index (loaded or kept). Raises LeftToGit."""
        self._load()
        entries, folders, own = self._entries, self._folders, self.own
        found: dict[bytes, os.stat_result] = {}
        others: list[bytes] = []
        stack: list[tuple[bytes, ignore.Rules | None]] = [(b"", self._root_rules())]
        while stack:
            rel, rules = stack.pop()  # rules None: an ignored folder holding tracked files
            try:
                listing = os.scandir(self.root + b"/" + rel if rel else self.root)
            except (FileNotFoundError, NotADirectoryError):
                continue
            with listing:
                for item in listing:
                    name = item.name
                    if name == b".git":
                        continue
                    path = rel + name
                    if path in own:
                        continue
                    if item.is_dir(follow_symlinks=False):
                        subfolder = path + b"/"
                        tracked = path in folders
                        if rules is None or rules.ignored(path, name, True):
                            if tracked:
                                stack.append((subfolder, None))
                        elif tracked:
                            stack.append((subfolder, rules.below(self._patterns(subfolder))))
                        elif self._nested(subfolder):
                            others.append(subfolder)
                        else:
                            stack.append((subfolder, rules.below(self._patterns(subfolder))))
                        continue
                    try:
                        st = item.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                        # Git lists no socket, pipe or device; a tracked file that is one now
                        # is modified, and the capture leaves it out (Snapshots._classify).
                        continue
                    if path in entries:
                        found[path] = st
                    elif rules is not None and not rules.ignored(path, name, False):
                        others.append(path)
                        found[path] = st
        others.sort()
        return self._compare(found, others)

    def _compare(self, found: dict[bytes, os.stat_result], others: list[bytes]) -> Scan:
        """The tracked files against their index entries (index order)."""
        scan = Scan(others, [], found, {})
        clean, odd = self._clean, self._odd
        # Racy by git's rule as git is built (no USE_NSEC): a file whose mtime falls in the
        # index's second or later. Nanoseconds would trust a file written later in that second
        # on a file system that keeps whole seconds (ext3, HFS+, 128-byte ext4 inodes): its
        # stat does not move, and the index (agentctl's data folder) is not on it.
        index_second = self._index_time // 10**9
        for path, entry in self._entries.items():
            st = found.get(path)
            if st is None:
                scan.modified.append(path)  # gone, or a folder now
                continue
            # The raw lstat this file had when last found unchanged: same, and older than
            # the index, it is unchanged still (its mode too: a chmod moves the ctime).
            key = (st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_size, st.st_mode)
            if clean.get(path) == key and st.st_mtime_ns // 10**9 < index_second:
                continue
            clean.pop(path, None)
            _note_mode(odd, path, st)
            mode = git_mode(st.st_mode)
            now = Stat.of(st)
            if mode != entry.mode:
                scan.modified.append(path)
                continue
            racy = st.st_mtime_ns // 10**9 >= index_second
            if now.same_file(entry.stat) and not racy:
                clean[path] = key
                continue
            # Another size is another file, unread: the whole size (the index keeps 32 bits;
            # 4 GiB more is not the same file), and an empty file's entry (size 0, the empty
            # blob) is no smudged one git would have to read (a file grown from 0 to 10 GB
            # was read whole into memory to learn that).
            if st.st_size != entry.stat.size and (entry.stat.size != 0 or entry.sha == _EMPTY):
                scan.modified.append(path)
                continue
            body = self._read(path, st)
            if object_id(b"blob", body) != entry.sha:
                scan.modified.append(path)
                if len(body) <= KEEP_READ:
                    scan.contents[path] = body
            elif now.same_file(entry.stat):
                scan.racy_bytes += len(body)
            else:
                scan.refreshed[path] = Entry(mode, entry.sha, now)
        return scan

    def _read(self, path: bytes, st: os.stat_result) -> bytes:
        """A file's bytes (a link's target), never through a link: not the last name, nor a
        folder on the way (a folder swapped for a link to `~/.ssh` since the walk would have
        a sandboxed command's hidden files read into the snapshot). Raises LeftToGit."""
        *folders, name = path.split(b"/")
        try:
            parent = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                for folder in folders:
                    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
                    below = os.open(folder, flags, dir_fd=parent)
                    os.close(parent)
                    parent = below
                if stat.S_ISLNK(st.st_mode):
                    return os.readlink(name, dir_fd=parent)
                flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
                fd = os.open(name, flags, dir_fd=parent)
            finally:
                os.close(parent)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise LeftToGit("a file changed kind while read")
                with os.fdopen(fd, "rb", closefd=False) as f:
                    # No more than its size at the lstat, which the caps saw: a file that
                    # grows while read is not followed (git reads that many bytes too).
                    return f.read(st.st_size)
            finally:
                os.close(fd)
        except OSError as exc:
            raise LeftToGit(f"cannot read {os.fsdecode(path)}: {exc}") from None

    # -- writing the capture -----------------------------------------------------------------

    def apply(
        self, scan: Scan, add: list[str], drop: list[str], left: list[str], own: tuple[str, ...]
    ) -> Applied:
        """Write the capture: `add` (untracked files to take in), every modified tracked file
        not in `drop` (over a cap: out of the snapshot) and not under a `left` path, the
        deletions; own files out. Returns the tree and what changed."""
        assert self._trees is not None
        old = self._entries
        trees = self._trees
        before = trees.write(self.objects)[0]  # known: nothing is written
        left_out = [os.fsencode(name) for name in left]
        dropped = {os.fsencode(name) for name in drop}
        mine = [os.fsencode(name) for name in own]
        new = dict(old)
        touched: set[bytes] = set()

        def outside(path: bytes, prefixes: list[bytes]) -> bool:
            return any(path == p or path.startswith(p + b"/") for p in prefixes)

        if mine or dropped:
            for path in [p for p in old if outside(p, mine) or p in dropped]:
                del new[path]
                touched.add(path)
        for path in scan.modified:
            if path not in new:
                continue
            st = scan.seen.get(path)
            if st is None or outside(path, left_out):
                if st is None:  # gone, or a folder now
                    del new[path]
                    touched.add(path)
                continue
            new[path] = self._blob(path, st, scan)
            touched.add(path)
        for path, entry in scan.refreshed.items():
            if path in new:
                new[path] = entry
        for name in add:
            path = os.fsencode(name)
            st = scan.seen.get(path)
            if st is None or outside(path, left_out):
                continue
            new[path] = self._blob(path, st, scan)
            touched.add(path)
            _note_mode(self._odd, path, st)
        changed: list[tuple[str, str]] = []
        for path in sorted(touched):
            was, now = old.get(path), new.get(path)
            if was is None and now is not None:
                status = "A"
            elif now is None and was is not None:
                status = "D"
            elif was is not None and now is not None and (was.mode, was.sha) != (now.mode, now.sha):
                status = "T" if (was.mode == SYMLINK) != (now.mode == SYMLINK) else "M"
            else:
                continue
            changed.append((status, os.fsdecode(path)))
            if now is None:
                trees.remove(path)
                self._odd.pop(path, None)
        for status, name in changed:
            if status != "D":
                path = os.fsencode(name)
                trees.set(path, new[path].mode, new[path].sha)
        tree, written = trees.write(self.objects)
        for path in touched:
            self._clean.pop(path, None)
            if path not in new:
                self._odd.pop(path, None)
        if changed or scan.refreshed or scan.racy_bytes > RACY_REWRITE:
            moved = any(status in "AD" for status, _ in changed)
            ordered = dict(sorted(new.items())) if moved else new  # git's order: by name
            st = write_index(self.index_path, ordered, self._records)
            self._entries = ordered
            self._folders = _folders_of(ordered) if moved else self._folders
            self._identity = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            self._index_time = st.st_mtime_ns
        return Applied(
            tree.hex(),
            changed,
            [(sha.hex(), os.fsdecode(path)) for sha, path in written],
            [self._odd[path] for path in sorted(self._odd)],
            before.hex(),
        )

    def _blob(self, path: bytes, st: os.stat_result, scan: Scan) -> Entry:
        body = scan.contents.pop(path, None)
        if body is None:
            body = self._read(path, st)
        try:
            sha = self.objects.put(b"blob", body)
        except OSError as exc:
            raise LeftToGit(f"cannot write an object: {exc}") from None
        return Entry(git_mode(st.st_mode), sha, Stat.of(st))


def _note_mode(odd: dict[bytes, str], path: bytes, st: os.stat_result) -> None:
    """Keep `path`'s "perm path" in `odd` when it is a file neither 644 nor 755."""
    perm = stat.S_IMODE(st.st_mode)
    if stat.S_ISREG(st.st_mode) and perm != (0o755 if perm & 0o100 else 0o644):
        odd[path] = f"{perm:o} {os.fsdecode(path)}"
    else:
        odd.pop(path, None)


_FALSE = ("false", "no", "off", "0")


def _unsettling(line: str) -> bool:
    """Whether a line of the store's config (lower case) makes git capture otherwise than
    this module: another config read in, case-insensitive names, another ignore file or hash,
    a sparse or split index, modes or links not taken from the files. Any spelling git reads:
    spaces or none, a bare key (true)."""
    line = "".join(line.split())
    if line.startswith("[include"):
        return True
    key, _, value = line.partition("=")
    if key in ("objectformat", "excludesfile", "sparsecheckout", "splitindex"):
        return True
    if key == "ignorecase":
        return value not in _FALSE
    return key in ("filemode", "symlinks") and value in _FALSE


def _folders_of(entries: dict[bytes, Entry]) -> set[bytes]:
    folders: set[bytes] = set()
    for name in entries:
        at = name.rfind(b"/")
        while at > 0 and name[:at] not in folders:
            folders.add(name[:at])
            at = name.rfind(b"/", 0, at)
    return folders


def _head_is_special(dotgit: bytes) -> bool:
    """Whether `dotgit/HEAD` is a pipe, socket or device (git opens it and may wait)."""
    try:
        kind = stat.S_IFMT(os.lstat(dotgit + b"/HEAD").st_mode)
    except OSError:
        return False
    return kind not in (stat.S_IFREG, stat.S_IFLNK, stat.S_IFDIR)


def _index_folders(index: Path) -> set[bytes]:
    """The folders the index at `index` tracks (none when it cannot be read)."""
    try:
        return _folders_of(read_index(index.read_bytes()))
    except (OSError, IndexUnsupported):
        return set()


def _is_repository(dotgit: bytes) -> bool:
    """Git's test of a folder's `.git` (is_git_directory): a HEAD that names a ref or an
    object id, an objects folder and a refs folder."""
    head = dotgit + b"/HEAD"
    try:
        st = os.lstat(head)
        if stat.S_ISLNK(st.st_mode):
            ok = os.readlink(head).startswith(b"refs/")
        elif not stat.S_ISREG(st.st_mode):
            return False  # a pipe named HEAD is never opened (it would wait for a writer)
        else:
            with open(head, "rb") as f:
                text = f.read(255)
            ok = (text.startswith(b"ref:") and text[4:].lstrip().startswith(b"refs/")) or (
                len(text) >= 40 and all(c in b"0123456789abcdef" for c in text[:40])
            )
    except OSError:
        return False
    return ok and os.access(dotgit + b"/objects", os.X_OK) and os.access(dotgit + b"/refs", os.X_OK)
