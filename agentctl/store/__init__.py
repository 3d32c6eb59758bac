"""Stores: one protocol (`Store`), several backends, chosen by URL.

`sqlite:///abs/file.db` or `sqlite:rel/file.db` (default: under AGENTCTL_HOME),
`json:///abs/dir` or `json:rel/dir`, `memory:` (tests).
"""

from __future__ import annotations

from pathlib import Path

from agentctl.errors import UsageError
from agentctl.store.base import Store


def open_store(url: str) -> Store:
    """Open (creating if needed) the store a URL names."""
    scheme, sep, rest = url.partition(":")
    if not sep:
        raise UsageError(f"store URL {url!r} has no scheme; use sqlite:///FILE or json:///DIR")
    path = rest[2:] if rest.startswith("//") else rest  # scheme:///abs/path or scheme:rel/path
    if scheme == "sqlite":
        from agentctl.store.sqlite import SQLiteStore

        return SQLiteStore(Path(path).expanduser())
    if scheme in ("json", "jsonl"):
        from agentctl.store.jsonl import JsonlStore

        return JsonlStore(Path(path).expanduser())
    if scheme == "memory":
        from agentctl.store.memory import MemoryStore

        return MemoryStore()
    raise UsageError(f"unknown store scheme {scheme!r} in {url!r}; use sqlite:// or json://")


__all__ = ["Store", "open_store"]
