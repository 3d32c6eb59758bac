"""One contract, every backend: agentctl.testing.store_spec runs against each store here."""

from __future__ import annotations

from pathlib import Path

from agentctl.store import Store, open_store
from agentctl.testing.store_spec import StoreSpec


class TestMemoryStore(StoreSpec):
    persistent = False

    def open(self, place: Path) -> Store:
        return open_store("memory:")


class TestSQLiteStore(StoreSpec):
    def open(self, place: Path) -> Store:
        return open_store(f"sqlite://{place / 'db' / 'agentctl.db'}")


class TestJsonlStore(StoreSpec):
    def open(self, place: Path) -> Store:
        return open_store(f"json://{place / 'jsonl'}")
