"""SQLite's errors as agentctl's: one StoreError naming the store (and session), for the SQLite
store and its store-wide reads alike."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agentctl.errors import StoreError


@contextmanager
def translated(path: Path, session_id: str | None = None) -> Iterator[None]:
    """SQLite's errors, and whatever damaged rows make the decoding raise, as one StoreError."""
    where = f"store {path}" + (f", session {session_id}" if session_id else "")
    try:
        yield
    except sqlite3.DatabaseError as exc:
        text = str(exc)
        if "disk I/O error" in text or "disk is full" in text:
            text += " (is the disk full, or the file too large for its file system?)"
        raise StoreError(f"{where}: {text}") from None
    except (ValueError, KeyError, TypeError, IndexError, RecursionError) as exc:
        raise StoreError(
            f"{where}: cannot be read ({type(exc).__name__}: {str(exc)[:200]})",
            hint="agentctl verify",
        ) from None
