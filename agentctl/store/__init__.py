"""Stores: one protocol (`Store`), several backends, chosen by URL.

`sqlite:///abs/file.db` or `sqlite:rel/file.db` (default: under AGENTCTL_HOME),
`json:///abs/dir` or `json:rel/dir`, `memory:` (tests).
"""

from __future__ import annotations

from pathlib import Path

from agentctl.errors import UsageError
from agentctl.store.base import Store


def _split(url: str) -> tuple[str, str]:
    scheme, sep, rest = url.partition(":")
    if not sep:
        raise UsageError(f"store URL {url!r} has no scheme; use sqlite:///FILE or json:///DIR")
    path = rest[2:] if rest.startswith("//") else rest  # scheme:///abs or scheme:rel
    return scheme, path.split("?", 1)[0]


def _read_only(url: str) -> bool:
    """`?mode=ro`: open an archive to list, show and verify it, with nothing written."""
    from urllib.parse import parse_qs

    return parse_qs(url.partition("?")[2]).get("mode") == ["ro"]


def store_paths(url: str) -> tuple[Path, ...]:
    """The local files a store URL names (a database and its journals, or a folder)."""
    scheme, path = _split(url)
    if scheme == "sqlite":
        db = Path(path).expanduser().absolute()
        return tuple(db.with_name(db.name + suffix) for suffix in ("", "-wal", "-shm", "-journal"))
    if scheme in ("json", "jsonl"):
        return (Path(path).expanduser().absolute(),)
    return ()


def open_store(url: str) -> Store:
    """Open (creating if needed) the store a URL names."""
    scheme, path = _split(url)
    if not path and scheme != "memory":
        raise UsageError(f"store URL {url!r} names no file or folder")
    if scheme == "sqlite":
        from agentctl.store.sqlite import SQLiteStore

        return SQLiteStore(Path(path).expanduser(), read_only=_read_only(url))
    if scheme in ("json", "jsonl"):
        from agentctl.store.jsonl import JsonlStore

        return JsonlStore(Path(path).expanduser(), read_only=_read_only(url))
    if scheme == "memory":
        from agentctl.store.memory import MemoryStore

        return MemoryStore()
    raise UsageError(f"unknown store scheme {scheme!r} in {url!r}; use sqlite:// or json://")


__all__ = ["Store", "open_store", "store_paths"]
