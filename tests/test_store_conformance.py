"""One contract, every backend: agentctl.testing.store_spec runs against each store here."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import ClassVar

import pytest

from agentctl.store import Store, open_store
from agentctl.store.core import CAPABILITIES
from agentctl.store.lease import Lease
from agentctl.testing.overview_spec import OverviewSpec
from agentctl.testing.store_spec import StoreSpec, build


class TestMemoryStore(StoreSpec, OverviewSpec):
    persistent = False
    overridden = frozenset()  # the core only: every capability is BaseStore's default

    def open(self, place: Path) -> Store:
        return open_store("memory:")


class TestSQLiteStore(StoreSpec, OverviewSpec):
    overridden = frozenset(CAPABILITIES)
    damage_lease_ways = (
        "text pid",
        "blob host",
        "no expiry",
        "empty token",
        "huge host",
        "infinite expiry",
        "before the epoch",
        "pid 0",
    )

    def open(self, place: Path) -> Store:
        return open_store(f"sqlite://{place / 'db' / 'agentctl.db'}")

    def damage_lease(self, store: Store, session_id: str, way: str) -> None:
        change = {
            "text pid": "pid = 'not a pid'",
            "blob host": "host = x'00ff'",
            "no expiry": "expires_at = 'soon'",
            "empty token": "token = ''",
            "huge host": "host = printf('%.10000c', 'x')",
            "infinite expiry": "expires_at = 9e999",
            "before the epoch": "expires_at = -1e308",
            "pid 0": "pid = 0",
        }[way]
        db = sqlite3.connect(store.path)  # type: ignore[attr-defined]
        with db:
            db.execute(f"UPDATE leases SET {change} WHERE session_id = ?", (session_id,))
        db.close()


class TestJsonlStore(StoreSpec, OverviewSpec):
    overridden = frozenset(CAPABILITIES) - {
        "search",
        "kept_listing",
        "overview",
        "integrity_pass",
        "paged_history",  # the log is read whole anyway
        "ranged_reads",
        "paged_graph",
    }

    damage_lease_ways = (
        "not json",
        "a list",
        "text pid",
        "huge",
        "a fifo",
        "a link",
        "a directory",
        "expiry of 400 digits",
        "NaN expiry",
        "before the epoch",
        "pid 0",
    )

    def open(self, place: Path) -> Store:
        return open_store(f"json://{place / 'jsonl'}")

    fields: ClassVar[dict[str, dict[str, object]]] = {
        "expiry of 400 digits": {"expires_at": "DIGITS"},  # json.loads gives an int
        "NaN expiry": {"expires_at": "NaN"},
        "before the epoch": {"expires_at": -1e308},
        "pid 0": {"pid": 0},
    }

    def damage_lease(self, store: Store, session_id: str, way: str) -> None:
        path = store.sessions_dir / session_id / "lease.json"  # type: ignore[attr-defined]
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        path.unlink(missing_ok=True)
        if way == "a fifo":
            os.mkfifo(path)  # read without O_NONBLOCK, it would never return
        elif way == "a link":
            path.symlink_to(path.parent / "info.json")
        elif way == "a directory":
            path.mkdir()
        elif way in self.fields:
            field = {"host": "h", "pid": 1, "token": "t", "expires_at": 9e9}
            text = json.dumps({**field, **self.fields[way]}).replace('"NaN"', "NaN")
            path.write_text(text.replace('"DIGITS"', "1" + "0" * 400))
        else:
            path.write_text(
                {
                    "not json": "{",
                    "a list": "[1, 2]",
                    "text pid": json.dumps(
                        {"host": "h", "pid": "1", "token": "t", "expires_at": 9e9}
                    ),
                    "huge": json.dumps(
                        {"host": "h" * 100_000, "pid": 1, "token": "t", "expires_at": 9e9}
                    ),
                }[way]
            )

    def test_a_lease_file_made_a_fifo_while_held_does_not_hang_its_release(
        self, store: Store
    ) -> None:
        """The release read lease.json whole, without the bounds every other read of it has:
        replaced by a FIFO while the run held it, the run never ended."""
        import threading

        build(store, 1)
        store.acquire_lease("abc123", Lease.mine("mine"))
        path = store.sessions_dir / "abc123" / "lease.json"  # type: ignore[attr-defined]
        path.unlink()
        os.mkfifo(path)
        releasing = threading.Thread(target=store.release_lease, args=("abc123", "mine"))
        releasing.start()
        releasing.join(10)
        hung = releasing.is_alive()
        if hung:  # let it go: a writer that closes gives the reader its end
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            releasing.join(10)
        assert not hung
        assert store.lease_of("abc123") is None
        store.acquire_lease("abc123", Lease.mine("next"))  # taken over like none


class TestPostgresStore(StoreSpec, OverviewSpec):
    """The same contract on a real PostgreSQL (a throwaway server: tests/conftest.py)."""

    overridden = frozenset(CAPABILITIES) - {
        "search",
        "reclaim",
        "overview",
        "sizes",
        "integrity_pass",
    }

    damage_lease_ways = (
        "no expiry",
        "huge host",
        "negative pid",
        "infinite expiry",
        "before the epoch",
        "pid 0",
    )

    def damage_lease(self, store: Store, session_id: str, way: str) -> None:
        change = {
            "no expiry": "lease_expires = NULL",
            "huge host": "lease_host = repeat('x', 10000)",
            "negative pid": "lease_pid = -5",
            "infinite expiry": "lease_expires = 'infinity'",
            "before the epoch": "lease_expires = '-infinity'",
            "pid 0": "lease_pid = 0",
        }[way]
        store.with_connection(  # type: ignore[attr-defined]
            lambda conn: conn.execute(
                f"UPDATE agentctl.sessions SET {change} WHERE id = %s", (session_id,)
            )
        )

    @pytest.fixture(autouse=True)
    def _server(self, postgres: object, pg_url: str) -> None:
        self.server = postgres
        self.spare = [pg_url]  # the test's first folder gets the fixture's (pooled) database
        self.urls: dict[Path, str] = {}

    def open(self, place: Path) -> Store:
        if place not in self.urls:  # one database per test folder: reopening finds it
            self.urls[place] = (
                self.spare.pop()
                if self.spare
                else self.server.database(f"c{abs(hash(place)) % 10**12}")  # type: ignore[attr-defined]
            )
        return open_store(self.urls[place])
