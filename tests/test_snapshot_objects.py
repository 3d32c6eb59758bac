"""Captures in process (issue 30 item 5): the objects agentctl writes itself are git's, to the
byte of their ids; git reads the store (`fsck`); a file changed within the index's clock tick
is read again; an unchanged workspace or a one-file change spawns no process; and random edits
give the tree git's own `add -A` / `write-tree` gives."""

from __future__ import annotations

import os
import stat
import subprocess
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentctl.workspace import gitobjects, ignore
from agentctl.workspace.gitobjects import Entry, ObjectStore, Stat, Trees
from agentctl.workspace.snapshots import Snapshots


def git(*args: str, cwd: Path, stdin: bytes = b"", env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["git", *args], input=stdin, cwd=cwd, env={**os.environ, **(env or {})},
        capture_output=True, check=True,
    )  # fmt: skip
    return done.stdout.decode(errors="surrogateescape")


def by_git(workspace: Path, data: Path) -> Snapshots:
    """A store whose every capture goes through git (the reference)."""
    snaps = Snapshots(workspace, data)
    snaps.in_process = False
    return snaps


def test_blob_and_tree_ids_are_gits_with_modes_and_its_order(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git("init", "-q", cwd=repo)
    for body in (b"", b"x", b"line\n" * 1000, bytes(range(256))):
        want = git("hash-object", "--stdin", cwd=repo, stdin=body).strip()
        assert gitobjects.object_id(b"blob", body).hex() == want
    store = ObjectStore(repo / ".git" / "objects")
    blob = store.put(b"blob", b"content\n")
    link = store.put(b"blob", b"target")
    # Names whose order differs as files and as folders ('-' < '.' < '/' < '0').
    names = [b"a", b"a-b", b"a.b", b"a0", b"b", b"\xc3\xbc", b"-dash", b"new\nline"]
    entries = {}
    for n, name in enumerate(names):
        mode = [gitobjects.REGULAR, gitobjects.EXECUTABLE, gitobjects.SYMLINK][n % 3]
        entries[name] = Entry(mode, link if mode == gitobjects.SYMLINK else blob, STAT)
    entries[b"a/inner"] = entries.pop(b"a")  # "a" a folder: sorts as "a/"
    entries[b"a0/deep/x"] = Entry(gitobjects.REGULAR, blob, STAT)
    entries.pop(b"a0")
    tree, written = Trees(entries).write(store)
    listing = git("ls-tree", "-r", "-z", "--full-tree", tree.hex(), cwd=repo)
    assert sorted(listing.split("\0")[:-1]) == sorted(
        f"{e.mode:06o} blob {e.sha.hex()}\t{os.fsdecode(n)}" for n, e in entries.items()
    )
    # The same trees made by git mktree from the entries, handed over in reverse order.
    assert mktree(repo, entries, b"") == tree.hex()
    assert len(written) == 4  # root, a, a0, a0/deep
    git("fsck", "--strict", "--no-dangling", cwd=repo)


STAT = Stat((1, 2), (3, 4), 5, 6, 7, 8, 9)


def mktree(repo: Path, entries: dict[bytes, Entry], folder: bytes) -> str:
    """The id git mktree gives the folder `folder` (b"" or b"a/") of `entries`."""
    lines, below = [], set()
    for name, entry in entries.items():
        if not name.startswith(folder):
            continue
        rest = name[len(folder) :]
        if b"/" in rest:
            below.add(rest.split(b"/")[0])
        else:
            lines.append(b"%o blob %s\t%s\0" % (entry.mode, entry.sha.hex().encode(), rest))
    for sub in below:
        inner = mktree(repo, entries, folder + sub + b"/")
        lines.append(b"040000 tree %s\t%s\0" % (inner.encode(), sub))
    return git("mktree", "-z", cwd=repo, stdin=b"".join(reversed(sorted(lines)))).strip()


def test_an_index_agentctl_writes_is_one_git_reads_as_its_own(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "f.txt").write_text("one\n")
    (work / "-lead").write_text("dash\n")
    (work / "x.sh").write_text("#!/bin/sh\n")
    (work / "x.sh").chmod(0o755)
    os.symlink("f.txt", work / "link")
    snaps = Snapshots(work, tmp_path / "data")
    snaps.capture()  # the first: through git
    (work / "f.txt").write_text("two\n")
    tree = snaps.capture().tree  # in process: objects and index written here
    env = {"GIT_DIR": str(snaps.git_dir), "GIT_WORK_TREE": str(work)}
    assert git("write-tree", cwd=work, env=env).strip() == tree
    assert git("diff-files", "--name-only", cwd=work, env=env) == ""  # stat data trusted
    git("fsck", "--strict", "--no-dangling", cwd=work, env=env)
    assert "100755" in git("ls-tree", tree, "x.sh", cwd=work, env=env)
    loose = snaps.git_dir / "objects" / tree[:2] / tree[2:]
    assert zlib.decompress(loose.read_bytes()).startswith(b"tree ")


def test_a_file_changed_in_the_index_s_clock_tick_is_read_again(tmp_path: Path) -> None:
    """Racy git: the index says a file of this stat holds the old bytes. When the file's
    mtime is not older than the index, that stat proves nothing, so it is read."""
    work = tmp_path / "work"
    work.mkdir()
    target = work / "f.txt"
    target.write_text("aaaa\n")
    for racy in (True, False):
        snaps = Snapshots(work, tmp_path / f"data-{racy}")
        first = snaps.capture().tree
        snaps.capture()
        target.write_text("bbbb\n")  # same size
        index = snaps.git_dir / "index"
        entries = gitobjects.read_index(index.read_bytes())
        old = entries[b"f.txt"]
        # As a capture leaves it when the file changes after its stat, in the same tick.
        entries[b"f.txt"] = Entry(old.mode, old.sha, Stat.of(os.lstat(target)))
        gitobjects.write_index(index, entries)
        mtime = os.lstat(target).st_mtime_ns
        when = mtime if racy else mtime + 10**10
        os.utime(index, ns=(when, when))
        again = Snapshots(work, tmp_path / f"data-{racy}").capture(first)
        if racy:
            assert [(c.status, c.path) for c in again.changed] == [("M", "f.txt")]
            assert again.tree != first
        else:  # the stat is trusted: this is what the racy rule is for
            assert again.tree == first
        target.write_text("aaaa\n")


def test_an_index_a_crash_tore_is_rebuilt_by_git(tmp_path: Path) -> None:
    """The index is written in place (a rename over it costs a data flush): a write a crash
    cut short leaves the new index's bytes over the old one's tail. That fails its checksum,
    is dropped, and git rebuilds it from the files."""
    work = tmp_path / "work"
    work.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (work / name).write_text(f"{name}\n")
    snaps = Snapshots(work, tmp_path / "data")
    snaps.capture()
    (work / "a.txt").write_text("edited\n")
    snaps.capture()  # in process
    index = snaps.git_dir / "index"
    old = index.read_bytes()
    (work / "b.txt").unlink()
    (work / "c.txt").unlink()
    whole = snaps.capture().tree
    new = index.read_bytes()
    for attempt in range(50):  # git skips an unknown extension named in capitals: not this
        if not 0x41 <= new[-20] <= 0x5A:
            break
        (work / "a.txt").write_text(f"edited {attempt}\n")
        whole = snaps.capture().tree
        new = index.read_bytes()
    index.write_bytes(new + old[len(new) :])  # written, never cut to its length
    env = {"GIT_DIR": str(snaps.git_dir), "GIT_WORK_TREE": str(work)}
    broken = subprocess.run(["git", "ls-files"], env={**os.environ, **env}, capture_output=True)
    assert broken.returncode != 0  # git itself does not read it
    (work / "g.txt").write_text("new\n")
    again = Snapshots(work, tmp_path / "data").capture(whole)
    assert [(c.status, c.path) for c in again.changed] == [("A", "g.txt")]
    assert again.tree == by_git(work, tmp_path / "ref").capture().tree
    assert git("write-tree", cwd=work, env=env).strip() == again.tree


def counting_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[object]]:
    """A `git` first on PATH that logs each run before it runs the real one, and every
    process started from Python counted."""
    real = subprocess.run(["which", "git"], capture_output=True, text=True).stdout.strip()
    folder = tmp_path / "bin"
    folder.mkdir()
    log = tmp_path / "spawned.log"
    log.write_text("")
    wrapper = folder / "git"
    wrapper.write_text(f'#!/bin/sh\necho "$1" >> {log}\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    spawned: list[object] = []
    original = subprocess.Popen

    class Counting(original):  # type: ignore[misc,valid-type]
        def __init__(self, *args: object, **kwargs: object) -> None:
            spawned.append(args[0])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", Counting)
    return log, spawned


def test_an_unchanged_or_one_file_capture_spawns_no_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "a.txt").write_text("a\n")
    (work / "sub" / "b.txt").write_text("b\n")
    reference = by_git(work, tmp_path / "ref")  # made first: it runs the real git directly
    log, spawned = counting_git(tmp_path, monkeypatch)
    snaps = Snapshots(work, tmp_path / "data")
    first = snaps.capture()
    assert log.read_text(), "the wrapper saw no git at all"  # the first capture: git's
    steps = [
        lambda: None,  # unchanged
        lambda: (work / "a.txt").write_text("edited\n"),  # one file changed
        lambda: (work / "sub" / "new.txt").write_text("new\n"),  # one file added
        lambda: (work / "sub" / "b.txt").unlink(),  # one file deleted
        lambda: (work / "a.txt").chmod(0o755),  # executable now
    ]
    tree = first.tree
    for step in steps:
        step()
        log.write_text("")
        before = len(spawned)
        captured = snaps.capture(tree)
        assert (log.read_text(), spawned[before:]) == ("", [])
        assert captured.tree == reference.capture().tree
        tree = captured.tree
    assert snaps._fast.objects.written > 0  # the objects were written in this process

    def store_files() -> dict[str, tuple[int, int]]:
        return {
            str(p): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in snaps.git_dir.rglob("*")
            if p.is_file()
        }

    before_unchanged = store_files()
    assert snaps.capture(tree).tree == tree
    assert store_files() == before_unchanged  # a capture with no change writes nothing


# -- random edits: the tree git itself gives -------------------------------------------------

NAMES = ["a.txt", "b.log", "-dash", "ü.txt", "new\nline", "keep.log", "x", "top.txt", "d1"]
FOLDERS = ["", "sub/", "sub/deep/", "build/", "d1/"]
PATTERNS = [
    "*.log", "!keep.log", "build/", "/top.txt", "sub/**/x", "**/deep", "d*/", "[ab]*.txt",
    "\\#hash", "x ", "sub/*.tmp", "?.txt", "**", "!sub/", "!*.txt", "a**/x", "[!a-c]*",
    "[[:alpha:]]*.log", "*[]-]*",
]  # fmt: skip

edit = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(FOLDERS), st.sampled_from(NAMES), st.binary()),
    st.tuples(st.just("chmod"), st.sampled_from(FOLDERS), st.sampled_from(NAMES), st.just(b"")),
    st.tuples(st.just("link"), st.sampled_from(FOLDERS), st.sampled_from(NAMES), st.just(b"")),
    st.tuples(st.just("remove"), st.sampled_from(FOLDERS), st.sampled_from(NAMES), st.just(b"")),
    st.tuples(
        st.just("ignore"),
        st.sampled_from(FOLDERS[:3]),
        st.lists(st.sampled_from(PATTERNS), max_size=3).map("\n".join),
        st.just(b""),
    ),
)


def apply(work: Path, op: tuple[str, str, str, bytes]) -> None:
    kind, folder, name, body = op
    base = work / folder
    path = base / (".gitignore" if kind == "ignore" else name)
    try:
        base.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        return  # a file stands where the folder would be
    if path.is_dir() and not path.is_symlink():
        if kind != "remove":
            return
        for inner in sorted(path.rglob("*"), reverse=True):
            inner.unlink() if not inner.is_dir() or inner.is_symlink() else inner.rmdir()
        path.rmdir()
        return
    if kind == "remove":
        path.unlink(missing_ok=True)
    elif kind == "write":
        path.unlink(missing_ok=True)
        path.write_bytes(body)
    elif kind == "chmod" and path.exists() and not path.is_symlink():
        path.chmod(path.stat().st_mode ^ stat.S_IXUSR)
    elif kind == "link":
        path.unlink(missing_ok=True)
        os.symlink("../a.txt", path)
    elif kind == "ignore":
        path.unlink(missing_ok=True)
        path.write_text(name + "\n")


@pytest.mark.process  # two git stores per example
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=st.lists(st.lists(edit, min_size=1, max_size=6), min_size=1, max_size=4))
def test_random_edits_give_the_tree_git_gives(
    tmp_path_factory: pytest.TempPathFactory, batches: list[list[tuple[str, str, str, bytes]]]
) -> None:
    root = tmp_path_factory.mktemp("edits")
    work = root / "work"
    (work / "sub").mkdir(parents=True)
    (work / "a.txt").write_text("a\n")
    ours, theirs = Snapshots(work, root / "ours"), by_git(work, root / "theirs")
    previous = ours.capture().tree
    assert previous == theirs.capture().tree
    for batch in batches:
        for op in batch:
            apply(work, op)
        try:
            mine = ours.capture(previous)
        except ignore.Unsupported:  # never raised out of a capture
            pytest.fail("Unsupported escaped")
        reference = theirs.capture(previous)
        assert (mine.tree, mine.skipped, mine.changed) == (
            reference.tree,
            reference.skipped,
            reference.changed,
        )
        assert ours.modes(mine.tree) == theirs.modes(reference.tree)  # 744 after a chmod
        previous = mine.tree
    env = {"GIT_DIR": str(ours.git_dir)}
    git("fsck", "--strict", "--no-dangling", cwd=root, env=env)


def test_links_to_folders_are_captured_as_links_and_never_walked(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not the workspace's\n")
    work = tmp_path / "work"
    (work / "inner").mkdir(parents=True)
    (work / "inner" / "f.txt").write_text("f\n")
    snaps = Snapshots(work, tmp_path / "data")
    first = snaps.capture().tree
    os.symlink(outside, work / "out")  # a folder outside the workspace
    os.symlink("inner", work / "in")  # and one inside it
    second = snaps.capture(first)
    assert [(c.status, c.path) for c in second.changed] == [("A", "in"), ("A", "out")]
    env = {"GIT_DIR": str(snaps.git_dir)}
    listing = git("ls-tree", "-r", "--full-tree", second.tree, cwd=work, env=env)
    assert "secret.txt" not in listing
    assert {line.split()[0] for line in listing.splitlines() if line.endswith(("in", "out"))} == {
        "120000"
    }
    assert second.tree == by_git(work, tmp_path / "ref").capture().tree
