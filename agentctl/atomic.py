"""Replacing a private file atomically: the one way agentctl writes a whole file it owns.

A temporary file of a fresh name (O_EXCL and O_NOFOLLOW, so neither a planted file nor a link
is written through), mode 0600 whatever the umask, written whole (write(2) may write less than
asked at a file-size limit), fsynced, renamed over the target, and the folder fsynced. A crash
or a full disk leaves the old file or the new one, never a mix and never a stray temporary.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data` or raise: a short write is continued, not ignored."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private(path: Path, data: bytes | Iterable[bytes]) -> None:
    """`data` as the whole new content of `path`: bytes, or pieces written as they come (an
    export of 100,000 checkpoints is never held whole). If making them fails midway, the old
    file stays and the temporary one is removed."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        try:
            for piece in (data,) if isinstance(data, bytes) else data:
                write_all(fd, piece)
            os.fchmod(fd, 0o600)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
