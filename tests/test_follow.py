"""Following a session another process drives (`watch`, a question answered elsewhere), and
what it does when nothing drives it any more: one notice and Stop.NOT_RUNNING (exit 7), never
while a driver holds the lease, arrives, or the session waits in a worker queue.

The follower runs in a thread on a store the test writes to as a driver would: the leases
are real Lease values in real stores; every wait is a bounded poll."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentctl.domain.lifecycle import State
from agentctl.domain.records import Notice, RunEvent, RunReport, Stop
from agentctl.store import Store, open_store
from agentctl.store.lease import Lease, arriving_lease
from agentctl.testing.store_spec import build, dead_pid, draft
from agentctl.usecases import common

SID = "abc123"


class Counted:
    """The follower's own handle on the store (SQLite's belongs to its thread), its lease
    reads counted; `on_lease` acts as a read happens (a driver's step, on this handle)."""

    def __init__(self, store: Store, on_lease: Callable[[int, Store], None] | None) -> None:
        self.store = store
        self.on_lease = on_lease
        self.lease_reads = 0

    def lease_of(self, session_id: str) -> Lease | None:
        self.lease_reads += 1
        if self.on_lease is not None:
            self.on_lease(self.lease_reads, self.store)
        return self.store.lease_of(session_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


class Following:
    """follow() in a thread, on its own handle: its events, and its report when it ends."""

    def __init__(self, url: str, on_lease: Callable[[int, Store], None] | None = None) -> None:
        self.events: list[RunEvent] = []
        self.report: RunReport | None = None
        self.counted: Counted | None = None
        self.thread = threading.Thread(target=self._run, args=(url, on_lease), daemon=True)
        self.thread.start()

    def _run(self, url: str, on_lease: Callable[[int, Store], None] | None) -> None:
        store = open_store(url)
        try:
            self.counted = Counted(store, on_lease)
            self.report = common.follow(self.counted, SID, self.events.append)  # type: ignore[arg-type]
        finally:
            store.close()

    @property
    def lease_reads(self) -> int:
        return self.counted.lease_reads if self.counted is not None else 0

    def notices(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, Notice)]

    def ended(self, within: float = 20) -> RunReport:
        self.thread.join(within)
        assert self.report is not None, "the follower never ended"
        return self.report


def wait_for(check: Callable[[], bool], what: str, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.01)


@pytest.fixture(autouse=True)
def _fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "FOLLOW_POLL_S", 0.01)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path / 's.db'}"


@pytest.fixture
def driver(url: str) -> Iterator[Store]:
    """The driver's handle: the session, two checkpoints in, held by nobody yet."""
    opened = open_store(url, create=True)
    build(opened, 2, SID)
    yield opened
    opened.close()


def finish(store: Store) -> None:
    """The driver's last commit: the task is done."""
    store.append(SID, 2, draft(2, 3, "done", state=State.DONE))


def test_a_session_nobody_holds_is_not_running_at_once(url: str, driver: Store) -> None:
    report = Following(url).ended()
    assert report.stop is Stop.NOT_RUNNING
    assert report.session.checkpoint.id == 2


def test_a_driver_killed_on_this_host_is_said_gone(url: str, driver: Store) -> None:
    driver.acquire_lease(SID, Lease(socket.gethostname(), dead_pid(), "t", time.time() + 600))
    following = Following(url)
    assert following.ended().stop is Stop.NOT_RUNNING
    said = following.notices()[-1]
    assert said.startswith(f"session {SID} is not running: the process that ran it (process ")
    assert said.endswith(f"is gone; continue with: agentctl resume {SID}")


def test_a_lease_left_to_expire_on_another_host_is_said_so(url: str, driver: Store) -> None:
    driver.acquire_lease(SID, Lease("far-away", 42, "t", time.time() - 90))
    following = Following(url)
    assert following.ended().stop is Stop.NOT_RUNNING
    assert "process 42 on far-away stopped renewing its lease" in following.notices()[-1]


@pytest.mark.parametrize(
    "holder",
    [
        pytest.param(lambda: Lease.mine("alive", ttl=600), id="alive-here"),
        pytest.param(lambda: Lease("far-away", 42, "t", time.time() + 600), id="other-host"),
        pytest.param(lambda: arriving_lease("m0ve"), id="arriving"),
    ],
)
def test_a_held_session_is_followed_through_many_lease_reads_to_its_end(
    url: str, driver: Store, holder: Callable[[], Lease]
) -> None:
    driver.acquire_lease(SID, holder())
    following = Following(url)
    wait_for(lambda: following.lease_reads >= 5, "five lease reads")
    finish(driver)
    assert following.ended().stop is Stop.DONE
    assert not any("not running" in n for n in following.notices())


def test_a_driver_that_lets_go_after_its_last_commit_is_no_false_alarm(
    url: str, driver: Store
) -> None:
    """The race a finishing driver makes: the follower read the head before the last commit
    and the lease after the release. The second look a poll later sees the end."""

    def driver_finishes(reads: int, store: Store) -> None:
        if reads == 1:
            finish(store)  # the commit; the lease was released (never taken here)

    following = Following(url, driver_finishes)
    assert following.ended().stop is Stop.DONE
    assert following.lease_reads == 1


def test_a_renewed_lease_between_two_looks_is_no_false_alarm(url: str, driver: Store) -> None:
    """The first look finds the lease expired (a heartbeat late on a loaded machine); the
    driver renews it before the second look: followed on."""
    driver.acquire_lease(SID, Lease.mine("slow", ttl=-1))

    def renewed(reads: int, store: Store) -> None:
        if reads == 2:
            store.acquire_lease(SID, Lease.mine("slow", ttl=600))

    following = Following(url, renewed)
    wait_for(lambda: following.lease_reads >= 5, "five lease reads")
    finish(driver)
    assert following.ended().stop is Stop.DONE


def test_a_session_queued_for_a_worker_is_followed_saying_so(pg_url: str) -> None:
    from agentctl.store import pg_queue

    driver = open_store(pg_url, create=True)
    try:
        build(driver, 2, SID)
        pg_queue.on(driver).with_connection(lambda conn: pg_queue.enqueue(conn, SID))
        following = Following(pg_url)
        wait_for(lambda: any("waits for a worker" in n for n in following.notices()), "queued")
        reads = following.lease_reads
        wait_for(lambda: following.lease_reads >= reads + 4, "more lease reads")
        finish(driver)
        assert following.ended().stop is Stop.DONE
        assert sum("waits for a worker" in n for n in following.notices()) == 1
    finally:
        driver.close()


def test_a_heartbeat_that_fails_once_goes_on_renewing_the_lease(
    url: str, driver: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One renewal the store refused (SQLite busy under load, a PostgreSQL connection lost)
    stopped the heartbeat for good: the lease of a run still going expired, the watch said
    it was not running, and a resume could take it over. Now the next beat renews it."""
    from agentctl.errors import StoreError

    monkeypatch.setenv("AGENTCTL_LEASE_TTL", "1")  # a beat every third of a second
    failed: list[bool] = []
    opened = driver.another_handle

    def flaky() -> Store:
        other = opened()
        if not failed:

            def busy(*_args: object) -> None:
                failed.append(True)
                raise StoreError("database is locked")

            other.acquire_lease = busy  # type: ignore[method-assign]
        return other

    monkeypatch.setattr(driver, "another_handle", flaky)
    with common.held_lease(driver, SID):
        held = driver.lease_of(SID)
        assert held is not None

        def renewed_after_the_failure() -> bool:
            now = driver.lease_of(SID)
            return bool(failed) and now is not None and now.expires_at > held.expires_at + 0.5

        wait_for(renewed_after_the_failure, "a renewal after the failed one", within=10)
