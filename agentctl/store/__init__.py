"""Stores: one protocol (`Store`), several backends, chosen by URL through a small registry.

`sqlite:///abs/file.db` or `sqlite:rel/file.db` (default: under AGENTCTL_HOME),
`json:///abs/dir` or `json:rel/dir`, `postgresql://user@host/db` (or `postgres://`), `memory:`
(tests). `?mode=ro` opens a store read-only.
A backend registers its schemes with an opener; the URL reaches it parsed but whole, so a
network backend keeps `scheme://user:password@host/db` as it is (and its password is masked
wherever the URL is shown: redact.redact_url).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

from agentctl.errors import UsageError
from agentctl.store.base import Store


@dataclass(frozen=True)
class StoreURL:
    scheme: str
    url: str  # as given: a network backend needs all of it
    path: str  # for file backends: what follows scheme:// (or scheme:), without the query
    read_only: bool  # ?mode=ro
    create: bool = True  # False: a URL that names no store is NoStoreError, nothing made

    @classmethod
    def parse(cls, url: str) -> StoreURL:
        scheme, sep, rest = url.partition(":")
        if not sep or not scheme:
            raise UsageError(f"store URL {url!r} has no scheme; use sqlite:///FILE or json:///DIR")
        path = rest[2:] if rest.startswith("//") else rest  # scheme:///abs or scheme:rel
        path, _, query = path.partition("?")
        return cls(scheme, url, path, parse_qs(query).get("mode") == ["ro"])


Opener = Callable[[StoreURL], Store]
_OPENERS: dict[str, Opener] = {}
_LOCAL: dict[str, Callable[[StoreURL], tuple[Path, ...]]] = {}


def register(
    *schemes: str, local_paths: Callable[[StoreURL], tuple[Path, ...]] | None = None
) -> Callable[[Opener], Opener]:
    """Register an opener for URL schemes (and, for file backends, the files a URL names)."""

    def decorator(opener: Opener) -> Opener:
        for scheme in schemes:
            _OPENERS[scheme] = opener
            if local_paths is not None:
                _LOCAL[scheme] = local_paths
        return opener

    return decorator


def _file_path(url: StoreURL) -> Path:
    if not url.path:
        raise UsageError(f"store URL {url.url!r} names no file or folder")
    return Path(url.path).expanduser()


def _sqlite_files(url: StoreURL) -> tuple[Path, ...]:
    db = _file_path(url).absolute()
    return tuple(db.with_name(db.name + suffix) for suffix in ("", "-wal", "-shm", "-journal"))


@register("sqlite", local_paths=_sqlite_files)
def _sqlite(url: StoreURL) -> Store:
    from agentctl.store.sqlite import SQLiteStore

    return SQLiteStore(_file_path(url), read_only=url.read_only, create=url.create)


@register("json", "jsonl", local_paths=lambda url: (_file_path(url).absolute(),))
def _jsonl(url: StoreURL) -> Store:
    from agentctl.store.jsonl import JsonlStore

    return JsonlStore(_file_path(url), read_only=url.read_only, create=url.create)


@register("postgresql", "postgres")
def _postgres(url: StoreURL) -> Store:
    try:
        import psycopg  # noqa: F401  # the optional extra: say how to get it
    except ImportError:
        from agentctl.errors import StoreError

        raise StoreError(
            "a PostgreSQL store needs psycopg: pip install 'agentctl[postgres]'"
        ) from None
    from agentctl.store.postgres import PostgresStore

    return PostgresStore(url.url, create=url.create)


@register("memory")
def _memory(url: StoreURL) -> Store:
    from agentctl.store.memory import MemoryStore

    return MemoryStore()


def schemes() -> list[str]:
    return sorted(_OPENERS)


def store_paths(url: str) -> tuple[Path, ...]:
    """The local files a store URL names (a database and its journals, or a folder)."""
    parsed = StoreURL.parse(url)
    local = _LOCAL.get(parsed.scheme)
    return local(parsed) if local is not None else ()


def open_store(url: str, *, create: bool = True) -> Store:
    """Open (creating if needed, where nothing else is) the store a URL names; with
    `create=False`, NoStoreError where there is none (and nothing is made: no folder, no
    file, no schema)."""
    from dataclasses import replace

    parsed = replace(StoreURL.parse(url), create=create)
    opener = _OPENERS.get(parsed.scheme)
    if opener is None:
        known = ", ".join(f"{s}://" for s in schemes())
        raise UsageError(f"unknown store scheme {parsed.scheme!r}; known: {known}")
    return opener(parsed)


__all__ = ["Store", "StoreURL", "open_store", "register", "schemes", "store_paths"]
