"""Snapshot trees packed as captures go, so a long session's snapshots grow with the bytes it
changed, not with the size of the folders it changed them in.

A capture writes a new tree object for every folder on the path of a changed file, loose and
whole: one file changed in a folder of 20,000 files is a new 760 KB tree (495 KB compressed) per
capture, while the file itself is a few hundred bytes. Git stores such a tree as a delta of a
few dozen bytes against its previous version, but only inside one pack, and a pack never
reaches outside itself for a base. So the trees live in one pack of their own, the tree pack,
rewritten by each capture with that capture's new trees added: `git pack-objects` reuses the
deltas already in it as they are and searches a base only for the new trees (named by their
path, so a folder's versions sort together). The new trees' loose copies are then deleted.
Blobs stay loose: a changed file is stored compressed either way.

Bounded: a tree pack that holds TREE_PACK_LIMIT trees is left as it is and the next capture
begins a new one (one whole copy of each large tree per TREE_PACK_LIMIT captures), so a
capture's packing never grows with the session. `prune` (snapshots.collect) repacks everything
into one pack; the tree pack it replaced is then gone, and the next capture begins a new one.
Packing is an economy: when it fails, the trees stay loose and nothing else changes.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from pathlib import Path

TREE_PACK_LIMIT = 500  # trees in one tree pack before a new one is begun
PACK_AFTER = 32 << 10  # bytes of loose trees waiting before they are packed
# Each capture makes the previous newest tree a delta of the new one, so a tree pack is one
# chain, newest first; git would cut it at 50 with a whole copy.
DEPTH = TREE_PACK_LIMIT
_PACK_NAME = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
TREE_MODE = "040000"

Git = Callable[..., str]  # Snapshots._git: arguments -> standard output
GitStdin = Callable[..., str]  # Snapshots._stdin: command, arguments, then the input text


def parse_raw(out: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """`git diff-tree -r -t -z --raw` output: the files that changed, as (status, path), and
    the trees the new side has that the old did not, as (id, path)."""
    fields = out.split("\0")
    files, trees = [], []
    for index in range(0, len(fields) - 1, 2):
        header, path = fields[index], fields[index + 1]
        parts = header.split()
        if len(parts) != 5 or not header.startswith(":"):
            continue
        old_mode, new_mode, _, new_id, status = parts
        if new_mode == TREE_MODE:  # a folder added or changed: a new tree
            trees.append((new_id, path))
        elif old_mode != ":" + TREE_MODE:  # (a folder removed is its files removed)
            files.append((status[:1], path))
    return files, trees


def all_trees(git: Git, tree: str) -> list[tuple[str, str]]:
    """Every folder's tree in `tree`, as (id, path): a first capture's new trees."""
    out = git("ls-tree", "-r", "-d", "-z", "--end-of-options", tree)
    found = []
    for entry in filter(None, out.split("\0")):
        info, _, path = entry.partition("\t")
        parts = info.split()
        if len(parts) == 3 and parts[1] == "tree":
            found.append((parts[2], path))
    return found


class TreePack:
    """The tree pack of one snapshot store (`git_dir`). Which pack it is, and the trees the
    last capture added with their paths (the ones the next capture pairs its new versions
    with), are kept in `git_dir/tree-pack`: a line `pack NAME`, then `ID PATH` lines. The
    other trees in it are read from its index."""

    def __init__(self, git_dir: Path) -> None:
        self.git_dir = git_dir
        self.state = git_dir / "tree-pack"
        self.pack_dir = git_dir / "objects" / "pack"

    def _read(self, known: dict[str, int]) -> tuple[str | None, dict[str, str], list[str]]:
        """The pack's name, the named trees (id -> path: the last packed capture's, and any
        waiting loose), and every tree in the pack."""
        try:
            lines = self.state.read_text(errors="surrogateescape").split("\n")
        except OSError:
            return None, {}, []
        named = {}
        for line in lines[1:]:
            tree, _, path = line.partition(" ")
            if _PACK_NAME.fullmatch(tree):
                named[tree] = path
        head = lines[0].split(" ", 1)
        name = head[1] if len(head) == 2 and head[0] == "pack" else ""
        try:
            every = _index_ids((self.pack_dir / f"pack-{name}.idx").read_bytes())
        except OSError:  # none yet, or repacked by prune: begin a new one
            every = None
        if not _PACK_NAME.fullmatch(name) or every is None:
            loose = {t: p for t, p in named.items() if t in known or self._loose(t).exists()}
            return None, loose, []
        return name, named, every

    def _loose(self, tree: str) -> Path:
        return self.git_dir / "objects" / tree[:2] / tree[2:]

    def _write_state(self, name: str | None, named: dict[str, str]) -> None:
        # In place, under the store's lock: a rename over it costs a data flush on ext4
        # (gitobjects.write_index), and a record a crash tore is only an economy lost.
        lines = "".join(f"{t} {p}\n" for t, p in named.items())
        text = f"pack {name or '-'}\n{lines}"
        write_in_place(self.state, text.encode(errors="surrogateescape"))

    def add(
        self, stdin: GitStdin, new: list[tuple[str, str]], known: dict[str, int] | None = None
    ) -> None:
        """Pack the `new` trees (id, path) that are loose, with those still waiting, into the
        tree pack and delete their loose copies; or, while they are fewer than PACK_AFTER
        bytes, leave them loose for a later capture (a capture in a folder of a hundred files
        writes a few KB of trees: packing them every time cost as much as a git call).
        `known`: the sizes of loose trees this process wrote (workspace/incremental.py), so
        they are not looked up again at every capture while they wait.
        Raises what `stdin` raises (StoreError) when git fails."""
        known = known or {}
        name, named, every = self._read(known)
        sizes = {}
        for tree, path in [*new, *named.items()]:
            if tree not in sizes:
                with contextlib.suppress(OSError):
                    sizes[tree] = known.get(tree) or self._loose(tree).stat().st_size
                    # The path pairs a folder's versions (a hint): a line break is not one.
                    named.setdefault(tree, path.replace("\n", " "))
        if not sizes:
            return
        if sum(sizes.values()) < PACK_AFTER:
            self._write_state(name, {**{t: named[t] for t, _ in new if t in sizes}, **named})
            return
        if len(every) >= TREE_PACK_LIMIT:  # full: left as it is, a new one begun
            name, every = None, []
            named = {t: p for t, p in named.items() if t in sizes}
        # The loose trees first, newest first, then the last packed capture's, all named by
        # their paths: of equal size and name, git takes an earlier one as the base of a later
        # one, so the newest version is kept whole and the one before it becomes a small delta
        # of it; the rest keep their deltas as they are. (Listed after, a new tree could only
        # be a delta of the pack's oldest whole tree, which grows with every capture since.)
        loose = {t: named[t] for t, _ in new if t in sizes}
        loose.update((t, p) for t, p in reversed(named.items()) if t in sizes)
        ordered = {**loose, **named}
        rest = [t for t in every if t not in ordered]
        listing = "".join(f"{t} {p}\n" for t, p in ordered.items()) + "".join(
            f"{t}\n" for t in rest
        )
        try:
            made = stdin(
                "pack-objects", "-q", "--delta-base-offset", f"--depth={DEPTH}", "--compression=1",
                str(self.pack_dir / "pack"), listing,
            ).strip()  # fmt: skip
        except Exception:
            known.clear()  # a tree it named may be gone (a prune since): look again next time
            raise
        if not _PACK_NAME.fullmatch(made):
            return
        self._write_state(made, {t: p for t, p in new if t in loose} or loose)
        if name is not None and name != made:  # its trees are all in the new one
            for suffix in (".keep", ".rev", ".idx", ".pack"):  # .idx before .pack, as git does
                with contextlib.suppress(FileNotFoundError):
                    (self.pack_dir / f"pack-{name}{suffix}").unlink()
        for tree in loose:
            known.pop(tree, None)  # packed: no longer a loose tree waiting
            with contextlib.suppress(FileNotFoundError):
                self._loose(tree).unlink()

    def size(self) -> int:
        with contextlib.suppress(OSError):
            return self.state.stat().st_size
        return 0


def _index_ids(index: bytes) -> list[str] | None:
    """The object ids a version-2 pack index lists (SHA-1), or None when it is not one."""
    if len(index) < 8 + 1024 or index[:8] != b"\xfftOc\x00\x00\x00\x02":
        return None
    count = int.from_bytes(index[8 + 1020 : 8 + 1024], "big")
    ids = index[8 + 1024 : 8 + 1024 + 20 * count]
    if len(ids) != 20 * count:
        return None
    return [ids[n : n + 20].hex() for n in range(0, len(ids), 20)]


def write_in_place(path: Path, data: bytes) -> None:
    """Replace a small file's bytes in place, not by a new file renamed over it: on ext4 a
    rename over an existing file flushes the new one's data (`auto_da_alloc`), 0.3 to 1.6 ms
    on this machine. Only for files the store's lock guards and a torn write cannot harm."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        offset = 0
        while offset < len(data):
            offset += os.pwrite(fd, view[offset:], offset)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
