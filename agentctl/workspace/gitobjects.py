"""Git's own formats, written in process: loose objects, the index, and trees built from it.

A capture that spawned `git` three or four times cost about 28 ms under load, most of it the
spawns; these are the few formats it needs to do the same work itself (workspace/incremental.py).
Everything here is byte for byte what git writes or reads, so git still reads the store: an
object is `zlib(b"<kind> <size>\\0" + body)` under its SHA-1, a tree lists its entries in git's
order (a folder sorts as if its name ended in '/'), and the index is version 2 with every
entry's stat data, so git's own `read-tree -u` and `diff` keep trusting it. Only SHA-1 stores
and version 2/3 indexes without conflicts or special flags are read: anything else is left to
git (`IndexUnsupported`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from agentctl.workspace.packing import _index_ids, write_in_place

REGULAR = 0o100644
EXECUTABLE = 0o100755
SYMLINK = 0o120000
TREE = 0o040000
_ENTRY = struct.Struct(">10I20sH")  # ctime s/ns, mtime s/ns, dev, ino, mode, uid, gid, size
_MASK = 0xFFFFFFFF


class IndexUnsupported(Exception):
    """An index this module does not read (git reads it): version 4, conflicts, flags."""


class IndexTorn(IndexUnsupported):
    """An index whose checksum fails: a write cut short (git would not read it either)."""


def object_id(kind: bytes, body: bytes) -> bytes:
    """The SHA-1 git names an object of `kind` with `body` by (20 bytes)."""
    digest = hashlib.sha1(b"%s %d\0" % (kind, len(body)), usedforsecurity=False)
    digest.update(body)
    return digest.digest()


@dataclass(frozen=True)
class Stat:
    """What git keeps of a file's lstat in the index (each field cut to 32 bits as git does)."""

    ctime: tuple[int, int]
    mtime: tuple[int, int]
    dev: int
    ino: int
    uid: int
    gid: int
    size: int

    @classmethod
    def of(cls, st: os.stat_result) -> Stat:
        c, m = st.st_ctime_ns, st.st_mtime_ns
        return cls(
            (c // 10**9 & _MASK, c % 10**9),
            (m // 10**9 & _MASK, m % 10**9),
            st.st_dev & _MASK,
            st.st_ino & _MASK,
            st.st_uid & _MASK,
            st.st_gid & _MASK,
            st.st_size & _MASK,
        )

    def same_file(self, other: Stat) -> bool:
        """Unchanged by git's measure (ctime, mtime, inode, owner, size; not the device)."""
        return (
            self.mtime == other.mtime
            and self.ctime == other.ctime
            and self.ino == other.ino
            and self.size == other.size
            and self.uid == other.uid
            and self.gid == other.gid
        )


@dataclass(frozen=True)
class Entry:
    mode: int
    sha: bytes
    stat: Stat


def git_mode(st_mode: int) -> int:
    """The mode git records for a file of this lstat mode: a link, or 644/755 by the owner's
    execute bit (core.filemode)."""
    if (st_mode & 0o170000) == SYMLINK:
        return SYMLINK
    return EXECUTABLE if st_mode & 0o100 else REGULAR


# -- loose objects ---------------------------------------------------------------------------


@dataclass
class ObjectStore:
    """A git object directory: which objects it has (loose, or in a pack), and loose writes."""

    objects: Path
    _packed: set[bytes] = field(default_factory=set)
    _packs_seen: tuple[int, int] | None = None
    written: int = 0  # objects written by this store object (tests count them)
    tree_sizes: dict[str, int] = field(default_factory=dict)  # loose trees written: bytes

    def _loose(self, sha: bytes) -> str:
        hexid = sha.hex()
        return f"{self.objects}/{hexid[:2]}/{hexid[2:]}"

    def _packed_ids(self) -> set[bytes]:
        """Ids in the packs, read again only when the pack folder changed."""
        folder = self.objects / "pack"
        try:
            st = folder.stat()
            seen = (st.st_mtime_ns, st.st_ino)
        except OSError:
            return set()
        if seen != self._packs_seen:
            found: set[bytes] = set()
            for index in folder.glob("*.idx"):
                with contextlib.suppress(OSError):
                    found.update(bytes.fromhex(i) for i in _index_ids(index.read_bytes()) or ())
            self._packed, self._packs_seen = found, seen
        return self._packed

    def has(self, sha: bytes) -> bool:
        """Whether the store holds the object. An empty loose file is no object (what a crash
        leaves of one written but never flushed): it is written again over it."""
        try:
            if os.stat(self._loose(sha)).st_size > 0:
                return True
        except OSError:
            pass
        return sha in self._packed_ids()

    def put(self, kind: bytes, body: bytes, sha: bytes | None = None) -> bytes:
        """Store an object (unless it is there already) and return its id. Written as git
        does: compressed at core.loosecompression's default (1), to a temporary name in its
        folder, then renamed; read-only. Raises OSError when the folder cannot be written."""
        sha = sha or object_id(kind, body)
        if self.has(sha):
            return sha
        path = self._loose(sha)
        folder = os.path.dirname(path)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        data = zlib.compress(b"%s %d\0" % (kind, len(body)) + body, 1)
        temporary = f"{folder}/tmp_obj_{os.getpid()}_{sha.hex()[:8]}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o444)
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        os.replace(temporary, path)
        self.written += 1
        if kind == b"tree":
            self.tree_sizes[sha.hex()] = len(data)
        return sha


# -- trees -----------------------------------------------------------------------------------


class Folder:
    """One folder of the index as a tree: its files (name -> (mode, id)), its folders, and its
    tree id while it is known (None: changed since, to be computed)."""

    __slots__ = ("files", "folders", "sha")

    def __init__(self) -> None:
        self.files: dict[bytes, tuple[int, bytes]] = {}
        self.folders: dict[bytes, Folder] = {}
        self.sha: bytes | None = None


class Trees:
    """The folders of an index, kept so a capture rebuilds only the trees on a changed path."""

    def __init__(self, entries: dict[bytes, Entry]) -> None:
        self.root = Folder()
        for name, entry in entries.items():
            self.set(name, entry.mode, entry.sha)

    def _folder(self, parts: list[bytes], make: bool) -> list[Folder] | None:
        """The folders from the root down to the one named by `parts`, each marked changed."""
        chain = [self.root]
        for part in parts:
            here = chain[-1]
            below = here.folders.get(part)
            if below is None:
                if not make:
                    return None
                below = here.folders[part] = Folder()
            chain.append(below)
        return chain

    def set(self, path: bytes, mode: int, sha: bytes) -> None:
        *parts, name = path.split(b"/")
        chain = self._folder(parts, make=True)
        assert chain is not None
        for folder in chain:
            folder.sha = None
        chain[-1].files[name] = (mode, sha)

    def remove(self, path: bytes) -> None:
        *parts, name = path.split(b"/")
        chain = self._folder(parts, make=False)
        if chain is None or chain[-1].files.pop(name, None) is None:
            return
        for folder in chain:
            folder.sha = None
        # A folder left empty is no tree at all (git keeps no empty folder).
        for depth in range(len(parts), 0, -1):
            folder = chain[depth]
            if folder.files or folder.folders:
                break
            del chain[depth - 1].folders[parts[depth - 1]]

    def write(self, store: ObjectStore) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """The root tree's id, every changed tree written; and the trees written, as (id,
        path), for the tree pack."""
        written: list[tuple[bytes, bytes]] = []
        sha = self._write(self.root, b"", store, written)
        return sha, written

    def _write(
        self, folder: Folder, path: bytes, store: ObjectStore, written: list[tuple[bytes, bytes]]
    ) -> bytes:
        if folder.sha is not None:
            return folder.sha
        items = [(name, mode, sha) for name, (mode, sha) in folder.files.items()]
        for name, below in folder.folders.items():
            items.append((name, TREE, self._write(below, path + b"/" + name, store, written)))
        # Git's order: by name, a folder's as if it ended in '/'.
        items.sort(key=lambda item: item[0] + b"/" if item[1] == TREE else item[0])
        body = b"".join(b"%o %s\0%s" % (mode, name, sha) for name, mode, sha in items)
        sha = object_id(b"tree", body)
        if not store.has(sha):
            store.put(b"tree", body, sha)
            written.append((sha, path.lstrip(b"/")))
        folder.sha = sha
        return sha


# -- the index -------------------------------------------------------------------------------


def read_index(data: bytes) -> dict[bytes, Entry]:
    """The entries of an index file (its extensions are git's caches: not needed, dropped).
    Raises IndexUnsupported for what is left to git."""
    if len(data) < 32 or data[:4] != b"DIRC":
        raise IndexUnsupported("not an index")
    version, count = struct.unpack_from(">II", data, 4)
    if version not in (2, 3):
        raise IndexUnsupported(f"index version {version}")
    if hashlib.sha1(data[:-20], usedforsecurity=False).digest() != data[-20:]:
        raise IndexTorn("index checksum")
    try:
        return _entries(data, count)
    except (struct.error, ValueError):  # entries past its end: not an index git wrote
        raise IndexTorn("index entries") from None


def _entries(data: bytes, count: int) -> dict[bytes, Entry]:
    entries: dict[bytes, Entry] = {}
    at = 12
    for _ in range(count):
        fields = _ENTRY.unpack_from(data, at)
        flags = fields[11]
        if flags & 0xF000:  # assume-valid, extended (skip-worktree, intent-to-add), a stage
            raise IndexUnsupported("index entry flags")
        length = flags & 0xFFF
        start = at + 62
        end = data.index(b"\0", start) if length == 0xFFF else start + length
        name = data[start:end]
        mode = fields[6]
        if mode not in (REGULAR, EXECUTABLE, SYMLINK):
            raise IndexUnsupported("index entry mode")  # a gitlink: left to git
        stat = Stat(
            (fields[0], fields[1]),
            (fields[2], fields[3]),
            fields[4],
            fields[5],
            fields[7],
            fields[8],
            fields[9],
        )
        entries[name] = Entry(mode, fields[10], stat)
        at += (62 + len(name) + 8) & ~7
    return entries


def index_bytes(
    entries: dict[bytes, Entry], records: dict[bytes, tuple[Entry, bytes]] | None = None
) -> bytes:
    """A version-2 index of `entries`, which are in git's order (by the name's bytes).
    `records`: each entry's bytes as last made, reused while the entry is the same object."""
    records = {} if records is None else records
    parts = [b"DIRC" + struct.pack(">II", 2, len(entries))]
    for name, entry in entries.items():
        made = records.get(name)
        if made is None or made[0] is not entry:
            s = entry.stat
            record = _ENTRY.pack(
                *s.ctime, *s.mtime, s.dev, s.ino, entry.mode, s.uid, s.gid, s.size,
                entry.sha, min(len(name), 0xFFF),
            ) + name  # fmt: skip
            made = records[name] = (entry, record + b"\0" * (8 - len(record) % 8))
        parts.append(made[1])
    body = b"".join(parts)
    return body + hashlib.sha1(body, usedforsecurity=False).digest()


def write_index(
    path: Path, entries: dict[bytes, Entry], records: dict[bytes, tuple[Entry, bytes]] | None = None
) -> os.stat_result:
    """Write the index at `path` over the one there, in place (packing.write_in_place), and
    return the file's stat. Not through a new file renamed over the old one as git does: a
    capture writes the index every time something changed, and that rename costs a data flush.
    The caller holds the store's lock, so no git reads it meanwhile; an index a crash left
    torn fails its checksum (IndexTorn), and the capture drops it and lets git rebuild it."""
    write_in_place(path, index_bytes(entries, records))
    return os.stat(path)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
