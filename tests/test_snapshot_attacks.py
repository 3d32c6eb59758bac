"""Attacks on the in-process capture (workspace/incremental.py): each compares what it captures
with what git itself captures, and takes the capture through a rollback round trip (capture,
change the files, restore, and the files are back byte for byte, with their modes)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import stat
import struct
import subprocess
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentctl.workspace import gitobjects
from agentctl.workspace.gitobjects import Entry, Stat
from agentctl.workspace.snapshots import Snapshots


def fsck(snaps: Snapshots, tree: str) -> None:
    """Every object `tree` reaches is in the store (git says so)."""
    env = {**os.environ, "GIT_DIR": str(snaps.git_dir)}
    done = subprocess.run(
        ["git", "fsck", "--no-dangling", tree], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("pruned_by", ["this process", "another process"])
def test_a_capture_after_a_prune_names_no_tree_the_prune_gave_back(
    tmp_path: Path, pruned_by: str
) -> None:
    """A prune keeps what the checkpoints name and what git's index names. The index agentctl
    writes names files, not folders, so a folder's tree the last capture made and no checkpoint
    kept is given back; a capture that then reused it from memory named a tree that is gone,
    and a rollback to it (or through it) failed."""
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "f.txt").write_text("f1\n")
    (work / "sub" / "h.txt").write_text("h1\n")
    snaps = Snapshots(work, tmp_path / "data")
    first = snaps.capture().tree
    (work / "sub" / "h.txt").write_text("h2\n")
    snaps.capture(first)  # in process: the tree of sub/ is this capture's own
    pruner = snaps if pruned_by == "this process" else Snapshots(work, tmp_path / "data")
    pruner.collect({first}, set())
    (work / "f.txt").write_text("f3\n")
    third = snaps.capture(first).tree
    fsck(snaps, third)
    snaps.restore(third, first)
    assert (work / "sub" / "h.txt").read_text() == "h1\n"
    assert (work / "f.txt").read_text() == "f1\n"
    snaps.restore(snaps.capture().tree, third)
    assert (work / "sub" / "h.txt").read_text() == "h2\n"
    assert (work / "f.txt").read_text() == "f3\n"


def by_git(workspace: Path, data: Path) -> Snapshots:
    """A store whose every capture goes through git (the reference)."""
    snaps = Snapshots(workspace, data)
    snaps.in_process = False
    return snaps


def files_of(work: Path) -> dict[str, tuple[str, bytes, int]]:
    """Every file and link under `work` (not .git): its kind, bytes (a link's target), mode."""
    out = {}
    for folder, folders, names in os.walk(work):
        if ".git" in folders:
            folders.remove(".git")
        for name in names:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                out[path] = ("link", os.fsencode(os.readlink(path)), 0)
            elif stat.S_ISREG(info.st_mode):
                out[path] = ("file", Path(path).read_bytes(), stat.S_IMODE(info.st_mode))
    return out


def same_as_git_and_round_trip(
    tmp_path: Path, work: Path, change: Callable[[], object]
) -> tuple[str, str]:
    """Capture twice (the second in process), make `change`, capture in process and by git:
    the same tree, skipped and changes. Then roll back to the first capture and forward again:
    every file as it was after the change. Returns the two trees."""
    ours, theirs = Snapshots(work, tmp_path / "ours"), by_git(work, tmp_path / "theirs")
    first = ours.capture().tree
    assert first == theirs.capture().tree
    assert ours.capture(first).tree == first
    change()
    after = files_of(work)
    mine, reference = ours.capture(first), theirs.capture(first)
    assert (mine.tree, mine.skipped, mine.changed) == (
        reference.tree,
        reference.skipped,
        reference.changed,
    )
    ours.restore(mine.tree, first)
    ours.restore(ours.capture().tree, mine.tree)
    assert files_of(work) == after
    return first, mine.tree


@pytest.mark.parametrize(
    ("ignore_file", "made"),
    [
        (b"foo\0bar\n", "foo"),  # git reads "foo": ignored
        (b"*.log\n!keep.log\0x\n", "keep.log"),  # git reads "!keep.log": not ignored
        (b"*.log\n!keep.log \0\r\n", "keep.log"),
    ],
)
def test_a_nul_ends_an_ignore_line_as_it_does_for_git(
    tmp_path: Path, ignore_file: bytes, made: str
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / ".gitignore").write_bytes(ignore_file)
    (work / "a.txt").write_text("a\n")
    same_as_git_and_round_trip(tmp_path, work, lambda: (work / made).write_text("made\n"))


def test_a_file_changed_later_in_the_index_s_second_is_read_again(tmp_path: Path) -> None:
    """Git (built without USE_NSEC, as distributions build it) takes a file as racy when its
    mtime is in the index's second or later. Compared in nanoseconds, a file whose mtime is
    earlier in that second was trusted by its stat: on a file system that keeps whole seconds
    its stat does not move when it is written again (the index lies on another one)."""
    work = tmp_path / "work"
    work.mkdir()
    target = work / "f.txt"
    target.write_text("aaaa\n")
    snaps = Snapshots(work, tmp_path / "data")
    first = snaps.capture().tree
    snaps.capture(first)
    target.write_text("bbbb\n")  # same size
    index = snaps.git_dir / "index"
    entries = gitobjects.read_index(index.read_bytes())
    old = entries[b"f.txt"]
    # As a capture leaves it when the file is written again after its stat, in that second.
    entries[b"f.txt"] = Entry(old.mode, old.sha, Stat.of(os.lstat(target)))
    gitobjects.write_index(index, entries)
    mtime = os.lstat(target).st_mtime_ns
    later = mtime // 10**9 * 10**9 + 10**9 - 1  # the end of the file's second
    os.utime(index, ns=(later, later))
    again = Snapshots(work, tmp_path / "data").capture(first)
    assert [(c.status, c.path) for c in again.changed] == [("M", "f.txt")]
    snaps.restore(again.tree, first)
    snaps.restore(snaps.capture().tree, again.tree)
    assert target.read_text() == "bbbb\n"


@pytest.fixture
def whole_seconds(tmp_path: Path) -> Iterator[Path]:
    """A folder on a file system that keeps whole seconds (ext4 with 128-byte inodes, on a
    loop device): root only."""
    image, folder = tmp_path / "seconds.img", tmp_path / "seconds"
    folder.mkdir()
    with image.open("wb") as f:
        f.truncate(16 << 20)
    made = subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-I", "128", str(image)], capture_output=True, check=False
    )
    if made.returncode != 0 or os.geteuid() != 0:
        pytest.skip("no ext4 with 128-byte inodes here")
    mounted = subprocess.run(
        ["mount", "-o", "loop", str(image), str(folder)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a loop device: {mounted.stderr.decode(errors='replace')}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True, check=False)


def test_a_workspace_that_keeps_whole_seconds_loses_no_write(
    tmp_path: Path, whole_seconds: Path
) -> None:
    """The same on a real such file system: a file written twice in one second, captured
    between the two writes, is read again at the next capture, and a rollback round trip
    brings back the second write."""
    work = whole_seconds / "work"
    work.mkdir()
    target = work / "f.txt"
    target.write_text("aaaa\n")
    snaps = Snapshots(work, tmp_path / "data")
    first = snaps.capture().tree
    snaps.capture(first)
    for _attempt in range(3):  # both writes and the capture between them in one second
        while time.time() % 1 > 0.2:  # a bounded wait: at most a second
            time.sleep(0.01)
        start = int(time.time())
        target.write_text("bbbb\n")
        second = snaps.capture(first)
        target.write_text("cccc\n")  # same size, same second: the same stat
        if int(time.time()) == start:
            break
    third = snaps.capture(second.tree)
    assert [(c.status, c.path) for c in third.changed] == [("M", "f.txt")]
    snaps.restore(third.tree, first)
    assert target.read_text() == "aaaa\n"
    snaps.restore(snaps.capture().tree, third.tree)
    assert target.read_text() == "cccc\n"


def resealed(data: bytes) -> bytes:
    """Index bytes with their checksum made right again (a damage the checksum cannot see)."""
    body = data[:-20]
    return body + hashlib.sha1(body, usedforsecurity=False).digest()


def test_an_index_that_lies_under_a_good_checksum_is_rebuilt_by_git(tmp_path: Path) -> None:
    """An index git never writes (more entries than it holds) whose checksum holds: read, it
    raised a bare struct.error out of the capture (an internal error, not a capture). It is
    dropped like a torn one, and git rebuilds it."""
    work = tmp_path / "work"
    work.mkdir()
    for name in ("aa.txt", "bb.txt"):
        (work / name).write_text(f"{name}\n")
    snaps = Snapshots(work, tmp_path / "data")
    first = snaps.capture().tree
    (work / "aa.txt").write_text("edited\n")
    second = snaps.capture(first).tree  # in process: the index is agentctl's
    index = snaps.git_dir / "index"
    data = index.read_bytes()
    index.write_bytes(resealed(data[:8] + struct.pack(">I", 7) + data[12:]))
    (work / "cc.txt").write_text("new\n")
    again = Snapshots(work, tmp_path / "data").capture(second)
    assert [(c.status, c.path) for c in again.changed] == [("A", "cc.txt")]
    assert again.tree == by_git(work, tmp_path / "ref").capture().tree
    fsck(snaps, again.tree)


def test_an_empty_loose_object_is_written_again(tmp_path: Path) -> None:
    """A loose object a crash left empty (written, renamed, never flushed) was taken for the
    object: a capture of the same bytes named it, and a rollback to that capture could not
    read the file back."""
    work = tmp_path / "work"
    work.mkdir()
    target = work / "f.txt"
    target.write_text("one\n")
    snaps = Snapshots(work, tmp_path / "data")
    first = snaps.capture().tree
    blob = gitobjects.object_id(b"blob", b"one\n").hex()
    loose = snaps.git_dir / "objects" / blob[:2] / blob[2:]
    loose.chmod(0o644)
    loose.write_bytes(b"")
    target.write_text("two\n")
    second = snaps.capture(first).tree
    target.write_text("one\n")
    third = snaps.capture(second).tree
    assert third == first
    fsck(snaps, third)
    snaps.restore(third, second)
    assert target.read_text() == "two\n"
    snaps.restore(snaps.capture().tree, third)
    assert target.read_text() == "one\n"


@pytest.mark.parametrize("kind", ["pipe", "socket"])
def test_a_tracked_file_that_is_a_pipe_or_socket_now_is_left_out(tmp_path: Path, kind: str) -> None:
    """`mkfifo f.txt` over a tracked file (a model's shell can) made every later capture fail
    (git add: 'updating files failed'), the capture a rollback takes first included: no
    snapshot and no rollback until someone removed it. The capture leaves it out and names
    it; a rollback leaves it where it is."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "f.txt").write_text("tracked\n")
    (work / "g.txt").write_text("g\n")

    def change() -> None:
        (work / "f.txt").unlink()
        if kind == "pipe":
            os.mkfifo(work / "f.txt")
        else:
            server = socket.socket(socket.AF_UNIX)
            server.bind(str(work / "f.txt"))
            server.close()
        (work / "g.txt").write_text("g2\n")

    ours, theirs = Snapshots(work, tmp_path / "ours"), by_git(work, tmp_path / "theirs")
    first = ours.capture().tree
    assert theirs.capture().tree == first
    ours.capture(first)
    change()
    mine, reference = ours.capture(first), theirs.capture(first)
    assert mine == reference
    assert mine.skipped == ("f.txt (not a file)",)
    assert sorted((c.status, c.path) for c in mine.changed) == [("D", "f.txt"), ("M", "g.txt")]
    assert ours.restore(mine.tree, first) == ["f.txt"]  # left alone: not captured
    assert (work / "g.txt").read_text() == "g\n"
    assert not stat.S_ISREG(os.lstat(work / "f.txt").st_mode)


@contextlib.contextmanager
def no_capture_waits_on(pipes: list[Path]) -> Iterator[None]:
    """Fails the test if code inside waited on one of `pipes` (a capture that opened it for
    reading): a watchdog opens them all for writing, briefly, every 15 s, so the test is
    bounded and the wait is seen."""
    released: list[Path] = []
    done = threading.Event()

    def watchdog() -> None:
        while not done.wait(15):
            fds = [os.open(pipe, os.O_RDWR | os.O_NONBLOCK) for pipe in pipes]
            released.extend(pipes)
            done.wait(1)
            for fd in fds:
                os.close(fd)

    guard = threading.Thread(target=watchdog, daemon=True)
    guard.start()
    try:
        yield
    finally:
        done.set()
        guard.join()
    assert released == []  # no capture waited on a pipe


def test_a_gitignore_that_is_a_pipe_holds_no_pattern_and_stalls_no_capture(
    tmp_path: Path,
) -> None:
    """`mkfifo .gitignore`: git opens it and waits for a writer, so every capture through git
    stalled for the git call's 300 s, then failed (and the in-process one handed it to git).
    It holds no pattern, in process and through git alike, and no capture waits on it. A
    watchdog opens the pipes for writing after a generous bound, so a capture that waits
    ends."""
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "a.txt").write_text("a\n")
    (work / "b.log").write_text("b\n")
    (work / "sub" / "x.log").write_text("x\n")
    (work / "sub" / ".gitignore").write_text("*.log\n")
    pipes = [work / ".gitignore", work / "sub" / "deeper" / ".gitignore"]
    (work / "sub" / "deeper").mkdir()
    for pipe in pipes:
        os.mkfifo(pipe)
    with no_capture_waits_on(pipes):
        first, second = same_as_git_and_round_trip(
            tmp_path, work, lambda: (work / "c.log").write_text("c\n")
        )
    ours = Snapshots(work, tmp_path / "ours")
    names = subprocess.run(
        ["git", "ls-tree", "-r", "-z", "--name-only", first],
        env={**os.environ, "GIT_DIR": str(ours.git_dir)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    assert sorted(filter(None, names)) == ["a.txt", "b.log", "sub/.gitignore"]
    changed = ours.changes(first, second)
    assert [(c.status, c.path) for c in changed] == [("A", "c.log")]


def unreadable_round(root: Path) -> dict[str, object]:
    """A tracked file and a new one made unreadable, one readable file changed: both captures,
    then a rollback round trip. Run as a user that is not root."""
    work = root / "work"
    work.mkdir()
    (work / "f.txt").write_text("f\n")
    (work / "g.txt").write_text("g\n")
    ours, theirs = Snapshots(work, root / "ours"), by_git(work, root / "theirs")
    first = ours.capture().tree
    assert theirs.capture().tree == first
    ours.capture(first)
    (work / "f.txt").write_text("f2\n")
    os.chmod(work / "f.txt", 0)
    (work / "new.txt").write_text("n\n")
    os.chmod(work / "new.txt", 0)
    (work / "g.txt").write_text("g2\n")
    mine, reference = ours.capture(first), theirs.capture(first)
    left = ours.restore(mine.tree, first)
    back = (work / "g.txt").read_text()
    ours.restore(ours.capture().tree, mine.tree)
    return {
        "same": mine == reference,
        "skipped": list(mine.skipped),
        "changed": sorted([c.status, c.path] for c in mine.changed),
        "left": left,
        "back": back,
        "forth": (work / "g.txt").read_text(),
    }


def test_a_file_its_user_cannot_read_is_left_out_and_named(tmp_path: Path) -> None:
    """`chmod 000` on a file (a model's shell can, as the user agentctl runs as) made every
    later capture fail (git add: 'Permission denied'), the capture a rollback takes first
    included. It is left out and named; a rollback leaves it as it is. As root (CI), the
    round runs in a forked child that became `nobody` (root reads any file)."""
    if os.geteuid() != 0:
        result = unreadable_round(tmp_path)
        root = tmp_path
    else:
        root = Path(tempfile.mkdtemp(dir="/tmp", prefix="agentctl-unreadable-"))
        os.chmod(root, 0o777)
        reading, writing = os.pipe()
        child = os.fork()
        if child == 0:  # the child: never back into pytest
            code = 1
            try:
                os.close(reading)
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                os.environ["HOME"] = str(root)
                os.write(writing, json.dumps(unreadable_round(root)).encode())
                code = 0
            except BaseException as exc:
                os.write(writing, repr(exc).encode())
            finally:
                os._exit(code)
        os.close(writing)
        with os.fdopen(reading, "rb") as pipe:
            said = pipe.read().decode()
        _, status = os.waitpid(child, 0)
        ok = os.waitstatus_to_exitcode(status) == 0
        result = json.loads(said) if ok else {"the child failed": said}
    try:
        assert result == {
            "same": True,
            "skipped": ["f.txt (unreadable)", "new.txt (unreadable)"],
            "changed": [["D", "f.txt"], ["M", "g.txt"]],
            "left": ["f.txt"],
            "back": "g\n",
            "forth": "g2\n",
        }
        if os.geteuid() == 0:
            assert (root / "work" / "f.txt").read_text() == "f2\n"  # as it was
    finally:
        if root != tmp_path:
            shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize(
    "config",
    [
        "[core]\n\tignoreCase=true\n",  # no spaces: what the check looked for had them
        "[core]\n\tignorecase\n",  # a bare key is true
        "[include]\n\tpath = {other}\n",  # another file's core.excludesFile
    ],
)
def test_a_store_config_that_changes_what_git_ignores_leaves_the_capture_to_git(
    tmp_path: Path, config: str
) -> None:
    """A store whose config git reads otherwise than the in-process capture (case-insensitive
    names, an ignore file brought in by an include): each capture is git's. The check looked
    for 'ignorecase = true' and 'excludesfile' spelled one way, in the store's file only."""
    work = tmp_path / "work"
    work.mkdir()
    (work / ".gitignore").write_text("*.LOG\n")
    (work / "a.txt").write_text("a\n")
    other, ignored = tmp_path / "other.config", tmp_path / "ignored"
    other.write_text(f"[core]\n\texcludesFile = {ignored}\n")
    ignored.write_text("*.log\n")
    ours, theirs = Snapshots(work, tmp_path / "ours"), by_git(work, tmp_path / "theirs")
    first = ours.capture().tree
    assert theirs.capture().tree == first
    for snaps in (ours, theirs):
        with (snaps.git_dir / "config").open("a") as f:
            f.write(config.format(other=other))
    (work / "x.log").write_text("x\n")
    mine, reference = Snapshots(work, tmp_path / "ours").capture(first), theirs.capture(first)
    assert (mine.tree, mine.changed) == (reference.tree, reference.changed)
    assert mine.tree == first  # x.log: ignored by git


def test_an_empty_file_grown_past_the_cap_is_not_read(tmp_path: Path) -> None:
    """A tracked empty file grown to a size over the cap (`truncate -s 10G f`: instant, and
    sparse) was read whole into memory by the next capture before the cap could leave it out:
    an index entry of size 0 was taken for one git smudged, whose bytes must be compared. An
    empty file's entry names the empty blob: another size is another file, left unread."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "f.txt").write_bytes(b"")
    (work / "g.txt").write_text("g\n")
    ours = Snapshots(work, tmp_path / "ours", max_file=1 << 20)
    theirs = Snapshots(work, tmp_path / "theirs", max_file=1 << 20)
    theirs.in_process = False
    first = ours.capture().tree
    assert theirs.capture().tree == first
    ours.capture(first)
    os.truncate(work / "f.txt", 48 << 20)
    tracemalloc.start()
    try:
        mine = ours.capture(first)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20  # not the file's 48 MiB
    reference = theirs.capture(first)
    assert (mine.tree, mine.skipped, mine.changed) == (
        reference.tree,
        reference.skipped,
        reference.changed,
    )
    assert mine.skipped == ("f.txt",)


def test_hostile_names_kinds_and_ignore_files_give_git_s_tree_and_round_trip(
    tmp_path: Path,
) -> None:
    """What held, kept: one workspace with names that sort differently as bytes and as text
    (newline, tab, backslash, a leading dash, bytes that are not UTF-8, NFC and NFD, 255
    bytes), git's own folder under other spellings, a nested repository and a tracked folder
    that becomes one, links (out of the workspace, dangling, a loop, to a folder), a file
    that becomes a folder and back, a folder that becomes a link out of it, odd permissions
    (setuid, 0600), a hard link, a pipe, an empty file and folder, an ignore file with a
    byte-order mark, CRLF, escaped spaces, '\\#' and '\\!', a deeper one that re-includes,
    and a file rewritten with the same size and its old mtime put back (`touch -d`)."""
    work = tmp_path / "work"
    for name in ("sub", "tracked", "dir2file", "etc"):
        (work / name).mkdir(parents=True)
    (work / "f.txt").write_text("AAAA\n")
    (work / "sub" / "a.txt").write_text("a\n")
    (work / "tracked" / "t.txt").write_text("t\n")
    (work / "dir2file" / "b").write_text("b\n")
    (work / "file2dir").write_text("x\n")
    (work / "etc" / "passwd").write_text("mine\n")
    (work / ".gitignore").write_bytes(b"\xef\xbb\xbf*.log\r\na\\ \r\nb  \r\n\\#d\r\n\\!e\r\n")
    (work / "sub" / ".gitignore").write_text("!*.log\n")
    root = os.fsencode(work)
    outside = tmp_path / "outside"  # stands for /etc: a restore must never write through
    outside.mkdir()
    (outside / "passwd").write_text("theirs\n")

    def change() -> None:
        for name in (b"nl\nx", b"tab\tx", b"back\\x", b"-dash", b"\xff\xfe", b"caf\xc3\xa9",
                     b"cafe\xcc\x81", b"A", b"a-b", b"a.b", b"a0", b"x" * 255, b"a ", b"a",
                     b"b", b"#d", b"!e", b"e", b"top.log"):  # fmt: skip
            Path(os.fsdecode(root + b"/" + name)).write_bytes(name + b"\n")
        (work / "sub" / "kept.log").write_text("re-included\n")
        for name in (".GIT/x", "sub/.Git/y", "git~1/z"):
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            (work / name).write_text("refused\n")
        subprocess.run(["git", "init", "-q", str(work / "nest")], check=True)
        (work / "nest" / "inner.txt").write_text("inner\n")
        subprocess.run(["git", "init", "-q", str(work / "tracked")], check=True)
        (work / "tracked" / "new.txt").write_text("new\n")
        os.symlink("/etc", work / "out")
        os.symlink("nowhere", work / "dangling")
        os.symlink("loop", work / "loop")
        os.symlink("sub", work / "tosub")
        (work / "file2dir").unlink()
        (work / "file2dir" / "inside").parent.mkdir()
        (work / "file2dir" / "inside").write_text("now a folder\n")
        shutil.rmtree(work / "dir2file")
        (work / "dir2file").write_text("now a file\n")
        shutil.rmtree(work / "etc")
        os.symlink(outside, work / "etc")
        (work / "setuid").write_text("#!/bin/sh\n")
        os.chmod(work / "setuid", 0o4755)
        (work / "secret").write_text("key\n")
        os.chmod(work / "secret", 0o600)
        os.link(work / "sub" / "a.txt", work / "hard")
        os.mkfifo(work / "pipe")
        (work / "empty").write_bytes(b"")
        (work / "emptydir").mkdir()
        before = os.lstat(work / "f.txt")
        (work / "f.txt").write_text("BBBB\n")
        os.utime(work / "f.txt", ns=(before.st_atime_ns, before.st_mtime_ns))

    first, captured = same_as_git_and_round_trip(tmp_path, work, change)
    ours = Snapshots(work, tmp_path / "ours")
    paths = {c.path for c in ours.changes(first, captured)}
    assert {"f.txt", "sub/kept.log", "setuid", "secret", "etc"} <= paths
    assert not {"top.log", ".GIT/x", "nest/inner.txt"} & paths
    assert ours.modes(captured) == {"setuid": 0o4755, "secret": 0o600}
    assert [p.name for p in outside.iterdir()] == ["passwd"]
    assert (outside / "passwd").read_text() == "theirs\n"


def test_a_nested_git_head_that_is_a_pipe_stalls_no_capture(tmp_path: Path) -> None:
    """`mkdir -p x/.git && mkfifo x/.git/HEAD`: git's test of whether an untracked folder is
    another repository opens that HEAD and waits for a writer, so every capture through git
    stalled for 300 s and failed, and the in-process capture handed it to git. The folder is
    left out whole (as a repository is), in process and through git alike; a tracked folder
    git never tests, and it stays captured. A watchdog opens the pipes for writing after a
    generous bound, so a capture that waits ends."""
    work = tmp_path / "work"
    (work / "tracked").mkdir(parents=True)
    (work / "a.txt").write_text("a\n")
    (work / "tracked" / "t.txt").write_text("t\n")
    pipes: list[Path] = []

    def planted(folder: str) -> None:
        (work / folder / ".git").mkdir(parents=True, exist_ok=True)
        os.mkfifo(work / folder / ".git" / "HEAD")
        (work / folder / "inside.txt").write_text("inside\n")
        pipes.append(work / folder / ".git" / "HEAD")

    planted("x")
    planted("odd [name]!")
    with no_capture_waits_on(pipes):
        ours, theirs = Snapshots(work, tmp_path / "ours"), by_git(work, tmp_path / "theirs")
        first = ours.capture().tree
        assert theirs.capture().tree == first
        (work / "b.txt").write_text("b\n")
        planted("tracked")
        mine, reference = ours.capture(first), theirs.capture(first)
    assert (mine.tree, mine.changed) == (reference.tree, reference.changed)
    names = subprocess.run(
        ["git", "ls-tree", "-r", "-z", "--name-only", mine.tree],
        env={**os.environ, "GIT_DIR": str(ours.git_dir)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    assert sorted(filter(None, names)) == [
        "a.txt",
        "b.txt",
        "tracked/inside.txt",
        "tracked/t.txt",
    ]


def test_a_folder_swapped_for_a_link_mid_capture_is_never_read_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new file the walk found under `sub/` is read later, when the capture is written; a
    command that swaps `sub` for a link to a folder outside meanwhile (`~/.ssh`, which the
    sandbox hides from it) had that folder's file of the same name read into the snapshot,
    whence a rollback writes it into the workspace. The read never follows a link on the
    way: the capture is left to git, which finds `sub` a link."""
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "a.txt").write_text("a\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "id_rsa").write_text("SECRET\n")
    snaps = Snapshots(work, tmp_path / "data")
    first = snaps.capture().tree
    (work / "sub" / "id_rsa").write_text("decoy!\n")  # as long as the secret
    classify = Snapshots._classify

    def swapped(self: Snapshots, listed: Any) -> Any:
        sorted_out = classify(self, listed)
        if (work / "sub").is_dir() and not (work / "sub").is_symlink():
            (work / "sub").rename(work / "sub.real")
            os.symlink(outside, work / "sub")
        return sorted_out

    monkeypatch.setattr(Snapshots, "_classify", swapped)
    captured = snaps.capture(first)
    monkeypatch.undo()
    secret = gitobjects.object_id(b"blob", b"SECRET\n").hex()
    env = {**os.environ, "GIT_DIR": str(snaps.git_dir)}
    found = subprocess.run(["git", "cat-file", "-e", secret], env=env, capture_output=True)
    assert found.returncode != 0  # never read into the store
    assert captured.tree == by_git(work, tmp_path / "ref").capture().tree
