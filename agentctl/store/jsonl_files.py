"""The files of a JSON-lines session folder: the log (`events.jsonl`) appended a line at a time
and read back validated, and the small side files (`lease.json`, `labels.json`).

Every line is validated when read — its shape, its checkpoint number, message ids that only
grow, parents that point backwards — so damage is a StoreError naming the session and the line,
and no walk of a chain can loop. A torn last line (a crash during an append) is ignored on read
and cut off before the next append. Whatever else a damaged file raises becomes one StoreError
naming the place (`reading`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agentctl import faults
from agentctl.atomic import write_all, write_private
from agentctl.errors import StoreError, UnknownSessionError
from agentctl.store.lease import Lease, lease_from

# The files of a session folder (besides the ready cache): `check` finds each a file or absent.
SESSION_FILES = ("info.json", "events.jsonl", "lock", "lease.json", "labels.json")


def write_private_atomic(path: Path, text: str) -> None:
    write_private(path, text.encode())


def empty_or_being_made(root: Path) -> bool:
    """An empty folder, or a store another agentctl is creating at this moment (or crashed
    while creating): an empty sessions/ and at most the marker's temporary files. The marker
    is written last, so with it the store is whole."""
    if not root.is_dir():
        return False
    for entry in root.iterdir():
        if entry.name == "sessions":
            if entry.is_symlink() or not entry.is_dir() or any(entry.iterdir()):
                return False
        elif not (entry.name.startswith(".store.json.") and entry.name.endswith(".tmp")):
            return False
    return True


def read_log(path: Path) -> list[dict[str, Any]]:
    """Every complete line of the log, validated; a torn last line is left out."""
    try:
        data = (path / "events.jsonl").read_bytes()
    except FileNotFoundError:
        return []
    # The part after the last newline, if any, is an append that did not finish: left out.
    complete = data.split(b"\n")[:-1]
    entries: list[dict[str, Any]] = []
    next_id = 1
    for number, line in enumerate(complete, 1):
        entry = parse_line(line, number, path)
        next_id = check_entry(entry, number, next_id, path)
        entries.append(entry)
    return entries


def last_entry(path: Path) -> dict[str, Any] | None:
    """The log's last complete line, read backwards from the end: O(1) in the log's
    length. Checked for shape; its place in the whole log is checked by full reads."""
    try:
        fd = os.open(path / "events.jsonl", os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        size = os.fstat(fd).st_size
        end = size
        data = b""
        while end > 0:  # find the end of the last complete line, then its start
            start = max(0, end - (1 << 16))
            data = os.pread(fd, end - start, start) + data
            end = start
            last_nl = data.rfind(b"\n")
            if last_nl != -1 and data.rfind(b"\n", 0, last_nl) != -1:
                break
        last_nl = data.rfind(b"\n")
        if last_nl == -1:
            return None
        line = data[data.rfind(b"\n", 0, last_nl) + 1 : last_nl]
    finally:
        os.close(fd)
    entry = parse_line(line, None, path)
    number = entry["checkpoint"]["id"] if isinstance(entry.get("checkpoint"), dict) else 0
    if not isinstance(number, int) or number < 1:
        raise StoreError(f"{log_place(path, None)}: the last checkpoint has no valid number")
    check_entry(entry, number, None, path)
    return entry


def append_line(path: Path, entry: dict[str, Any]) -> int:
    """Append one line and fsync it; a torn line a crash left is cut off first, and a line a
    full disk cut short is taken back."""
    log = path / "events.jsonl"
    fd = os.open(log, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        size = os.fstat(fd).st_size
        if size:
            os.lseek(fd, size - 1, os.SEEK_SET)
            if os.read(fd, 1) != b"\n":  # cut off a torn line left by a crash
                data = (path / "events.jsonl").read_bytes()
                os.ftruncate(fd, data.rfind(b"\n") + 1)
        size = os.fstat(fd).st_size
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
        half = len(line) // 2
        try:
            write_all(fd, line[:half])
            faults.hit("commit_started")  # a torn line, as a crash mid-append leaves it
            write_all(fd, line[half:])
            os.fsync(fd)
        except OSError:
            # A full disk (or a file-size limit) writes part of the line and then fails:
            # take the part back, so the commit that failed leaves nothing behind.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise
        return size + len(line)
    finally:
        os.close(fd)


MAX_LEASE_BYTES = 4096  # a lease.json agentctl writes is ~150 bytes


def held_lease(path: Path) -> Lease | None:
    """The session's lease.json as a Lease; None when there is none or it does not read as
    one (a lease is advisory, the head check is the guard: a damaged one holds nothing).
    Bounded: a regular file of at most MAX_LEASE_BYTES, never a link or a FIFO."""
    import stat

    try:
        fd = os.open(
            path / "lease.json", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        )
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        raw = os.read(fd, MAX_LEASE_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(raw) > MAX_LEASE_BYTES:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    return lease_from(
        data.get("host"),
        data.get("pid"),
        data.get("token"),
        data.get("expires_at"),
        data.get("user", ""),
    )


def drop_unreadable_lease(path: Path) -> None:
    """Remove a lease.json that is a directory, before a lease is written over it: a rename
    replaces a file, a link or a FIFO, but not a directory (the session could not be taken
    over). The name is agentctl's own, within the session's folder."""
    import shutil
    import stat

    try:
        mode = os.lstat(path / "lease.json").st_mode
    except OSError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path / "lease.json", ignore_errors=True)


def labels_of(path: Path) -> tuple[str | None, tuple[str, ...]]:
    """A session's name and tags (labels.json, replaced whole when they change)."""
    try:
        data = json.loads((path / "labels.json").read_text())
    except FileNotFoundError:
        return None, ()
    name, tags = data.get("name"), data.get("tags", [])
    if (name is not None and not isinstance(name, str)) or not isinstance(tags, list):
        raise ValueError("labels.json holds no name and tags")
    return name, tuple(str(t) for t in tags)


def log_place(path: Path, line: int | None) -> str:
    at = f" line {line}" if line is not None else ""
    return f"session {path.name}: events.jsonl{at}"


@contextmanager
def reading(path: Path) -> Iterator[None]:
    """Whatever a damaged file raises (a folder where a file belongs, bytes that are not
    UTF-8, a key or a type that is not there) becomes one StoreError naming the place."""
    try:
        yield
    except (StoreError, UnknownSessionError):
        raise
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        RecursionError,  # JSON nested deeper than the parser goes
    ) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise StoreError(
            f"store {path}: cannot be read ({type(exc).__name__}: {detail[:200]})",
            hint="agentctl verify",
        ) from None


def parse_line(line: bytes, number: int | None, path: Path) -> dict[str, Any]:
    try:
        entry = json.loads(line)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep to parse
        raise StoreError(
            f"{log_place(path, number)} is corrupt (not a torn last line)", hint="agentctl verify"
        ) from None
    if not isinstance(entry, dict):
        raise StoreError(f"{log_place(path, number)} is not a JSON object", hint="agentctl verify")
    return entry


def check_entry(entry: dict[str, Any], number: int, next_id: int | None, path: Path) -> int:
    """Raise StoreError unless `entry` is line `number` of a sound log: a checkpoint numbered
    `number` whose parent is earlier, messages numbered on from `next_id` (when known) whose
    parents point backwards. Returns the next message id."""
    where = log_place(path, number)
    checkpoint, messages = entry.get("checkpoint"), entry.get("messages")
    if not isinstance(checkpoint, dict) or not isinstance(messages, list):
        raise StoreError(f"{where}: no checkpoint or messages", hint="agentctl verify")
    if checkpoint.get("id") != number:
        raise StoreError(f"{where}: holds checkpoint {checkpoint.get('id')!r}, not {number}")
    parent = checkpoint.get("parent")
    if parent is not None and not isinstance(parent, int):  # where it points: verify's concern
        raise StoreError(f"{where}: checkpoint {number} has parent {parent!r}")
    for key in ("event", "from_state", "to_state", "created_at"):
        if not isinstance(checkpoint.get(key), str):
            raise StoreError(f"{where}: checkpoint {number} has no valid {key}")
    if not isinstance(checkpoint.get("detail", {}), dict):
        raise StoreError(f"{where}: checkpoint {number} has a detail that is not an object")
    checkpoint.setdefault("detail", {})
    first = next_id if next_id is not None else None
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("id"), int):
            raise StoreError(f"{where}: a message without a valid id")
        if first is not None and message["id"] != first:
            raise StoreError(f"{where}: message {message['id']} where {first} was due")
        mparent = message.get("parent")
        if mparent is not None and not (isinstance(mparent, int) and 1 <= mparent < message["id"]):
            raise StoreError(f"{where}: message {message['id']} has parent {mparent!r}")
        if not isinstance(message.get("message"), dict):
            raise StoreError(f"{where}: message {message['id']} has no body")
        first = message["id"] + 1 if first is not None else None
    tip = checkpoint.get("message_tip")
    highest = (first - 1) if first is not None else max((m["id"] for m in messages), default=tip)
    if tip is not None and not (isinstance(tip, int) and 1 <= tip <= (highest or 0)):
        raise StoreError(f"{where}: checkpoint {number} ends at message {tip!r}, not there")
    due = entry.get("next_message_id", first)
    if first is not None and due != first:
        raise StoreError(f"{where}: next_message_id {due!r}, not {first}")
    return first if first is not None else 0


def known_parent(parents: dict[int, int | None], message: int, path: Path) -> int | None:
    if message not in parents:
        raise StoreError(f"{log_place(path, None)}: message {message} is missing")
    return parents[message]
