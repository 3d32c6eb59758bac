"""One contract, every backend: agentctl.testing.store_spec runs against each store here."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentctl.store import Store, open_store
from agentctl.store.core import CAPABILITIES
from agentctl.testing.overview_spec import OverviewSpec
from agentctl.testing.store_spec import StoreSpec


class TestMemoryStore(StoreSpec, OverviewSpec):
    persistent = False
    overridden = frozenset()  # the core only: every capability is BaseStore's default

    def open(self, place: Path) -> Store:
        return open_store("memory:")


class TestSQLiteStore(StoreSpec, OverviewSpec):
    overridden = frozenset(CAPABILITIES)

    def open(self, place: Path) -> Store:
        return open_store(f"sqlite://{place / 'db' / 'agentctl.db'}")


class TestJsonlStore(StoreSpec, OverviewSpec):
    overridden = frozenset(CAPABILITIES) - {
        "search",
        "kept_listing",
        "overview",
        "integrity_pass",
        "paged_history",  # the log is read whole anyway
        "ranged_reads",
    }

    def open(self, place: Path) -> Store:
        return open_store(f"json://{place / 'jsonl'}")


class TestPostgresStore(StoreSpec, OverviewSpec):
    """The same contract on a real PostgreSQL (a throwaway server: tests/conftest.py)."""

    overridden = frozenset(CAPABILITIES) - {
        "search",
        "reclaim",
        "overview",
        "sizes",
        "integrity_pass",
    }

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
