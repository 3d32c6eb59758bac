"""The store contract as an executable spec: every backend runs these same tests.

A backend registers by subclassing `StoreSpec` in a test module, the way LangGraph's checkpoint
conformance package is used:

    class TestMyStore(StoreSpec):
        def open(self, place: Path) -> Store:
            return MyStore(place / "data")

`open` makes a handle on the store kept in the folder `place` (called again with the same
folder, it opens the same store: reopening and two handles are tested that way). A backend
that keeps nothing across handles (the memory store) sets `persistent = False` and the tests
that need persistence skip. Each method documents one rule of base.py's contract, including
the negative cases: unknown sessions and checkpoints, a prefix that is not an id, duplicate
ids, a head that moved, a lease held by another.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from agentctl.domain.checkpoints import CompactionDetail, ReplyDetail
from agentctl.domain.lifecycle import CheckpointKind, Outcome, State
from agentctl.domain.session import (
    Message,
    Prepared,
    SessionInfo,
    Task,
    TaskSpec,
    Usage,
    UserProfile,
)
from agentctl.errors import (
    HeadMovedError,
    InvalidDraftError,
    SessionBusyError,
    SessionExistsError,
    StoreError,
    UnknownCheckpointError,
    UnknownSessionError,
)
from agentctl.store import Store
from agentctl.store.base import CheckpointDraft
from agentctl.store.codec import decode_messages, encode_messages
from agentctl.store.lease import Lease


def _prepared(messages: Sequence[Message]) -> Prepared:
    """Any text stands for an adapter's (the store keeps it as it is): the stored form here."""
    return Prepared("store-spec", encode_messages(messages))


def info(session_id: str = "abc123", goal: str = "test goal") -> SessionInfo:
    return SessionInfo(
        id=session_id,
        spec=TaskSpec(goal=goal),
        model="scripted",
        created_at="2026-01-01T00:00:00.000+00:00",
    )


def draft(
    parent: int | None,
    n: int,
    *messages: str,
    state: State = State.EXECUTING,
    task: Task | None = None,
    kind: CheckpointKind | None = None,
    from_state: State | None = None,
) -> CheckpointDraft:
    """A checkpoint a real run could write, so every session the spec leaves is one `verify`
    calls sound (the fixture checks): the first is `new_task` (idle → planning), the second
    `plan_ready` (→ executing), later ones model replies in `state`; a move into `done` is
    `task_complete`, and a rollback lands in its target's state (executing)."""
    if kind is None:
        kind = (
            CheckpointKind.NEW_TASK
            if parent is None
            else CheckpointKind.PLAN_READY
            if n == 2
            else CheckpointKind.TASK_COMPLETE
            if state is State.DONE
            else CheckpointKind.MODEL_REPLY
        )
    before = {
        CheckpointKind.NEW_TASK: State.IDLE,
        CheckpointKind.PLAN_READY: State.PLANNING,
        CheckpointKind.TASK_COMPLETE: State.EXECUTING,
    }.get(kind, state if from_state is None else from_state)
    after = State.PLANNING if kind is CheckpointKind.NEW_TASK else state
    return CheckpointDraft(
        parent=parent,
        kind=kind,
        from_state=before,
        to_state=after,
        created_at=f"2026-01-01T00:00:{n:02d}.000+00:00",
        task=task or Task(goal="test goal", data={"n": n}),
        usage=Usage(calls=n),
        detail=ReplyDetail((f"t{n}",)),
        new_messages=tuple(Message(role="user", content=m, tokens=len(m)) for m in messages),
    )


def build(store: Store, length: int, session_id: str = "abc123") -> None:
    store.create_session(info(session_id), draft(None, 1, "m1"))
    for n in range(2, length + 1):
        store.append(session_id, n - 1, draft(n - 1, n, f"m{n}"))


def contents(store: Store, session_id: str = "abc123", at: int | None = None) -> list[str | None]:
    return [m.content for m in store.load(session_id, at).messages]


def overrides(store: Store, capability: str) -> bool:
    """Whether `store` overrides a capability (store/core.py) rather than taking the default."""
    from agentctl.store.core import capabilities

    return capabilities(store)[capability]


def dead_pid() -> int:
    """A pid that belonged to a process that has exited."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


class SpecBase:
    """What every part of the spec shares: `open` (and `persistent`) and the store fixture."""

    persistent = True

    def open(self, place: Path) -> Store:
        raise NotImplementedError

    def needs_persistence(self) -> None:
        if not self.persistent:
            pytest.skip("the backend keeps nothing across handles")

    #: set by a test that damages its store on purpose: the fixture then skips its check
    damaged = False

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        from agentctl.usecases.verify import verify_store

        self.damaged = False
        s = self.open(tmp_path)
        yield s
        try:
            if not self.damaged:  # the spec writes only what a real run could: verify agrees
                store_problems, reports = verify_store(s)
                unsound = [f"{r.session_id}: {p}" for r in reports for p in r.problems]
                assert not store_problems + unsound, f"the spec left an unsound store: {unsound}"
        finally:
            s.close()


class CoreSpec(SpecBase):
    """The core (store/core.py): what every backend writes. A backend that writes only the
    core passes this and, with BaseStore's defaults, every other part."""

    #: the capabilities the backend overrides, as its test module declares them (None: unsaid)
    overridden: frozenset[str] | None = None

    def test_the_capabilities_it_overrides_are_reported_whole(self, store: Store) -> None:
        """A capability is overridden in all its methods or none, and the report says which
        (`pytest -s` prints it)."""
        from agentctl.store.core import CAPABILITIES, BaseStore, capabilities

        assert isinstance(store, BaseStore)
        backend = type(store)
        for name, methods in CAPABILITIES.items():
            mine = {getattr(backend, m) is not getattr(BaseStore, m) for m in methods}
            assert len(mine) == 1, f"{backend.__name__} overrides part of {name}"
        report = capabilities(store)
        print(
            f"{backend.__name__}: "
            + ", ".join(f"{k}={'own' if v else 'default'}" for k, v in report.items())
        )
        if self.overridden is not None:
            assert {name for name, own in report.items() if own} == self.overridden

    def test_a_new_session_loads_back_whole(self, store: Store) -> None:
        first = store.create_session(info(), draft(None, 1, "hello", "world"))
        assert first.id == 1
        assert first.parent is None
        loaded = store.load("abc123")
        assert loaded.info == info()
        assert loaded.checkpoint == first
        assert [m.content for m in loaded.messages] == ["hello", "world"]
        assert loaded.context_tokens == 10

    def test_checkpoints_are_numbered_and_chained(self, store: Store) -> None:
        build(store, 5)
        history = store.history("abc123")
        assert [c.id for c in history] == [1, 2, 3, 4, 5]
        assert [c.parent for c in history] == [None, 1, 2, 3, 4]
        assert history[2].detail == {"tools": ["t3"]}
        assert contents(store) == ["m1", "m2", "m3", "m4", "m5"]
        assert store.load("abc123").checkpoint.task.data == {"n": 5}

    def test_an_older_checkpoint_loads_as_it_was(self, store: Store) -> None:
        build(store, 5)
        assert contents(store, at=3) == ["m1", "m2", "m3"]
        assert store.get_checkpoint("abc123", 2).usage.calls == 2

    def test_a_stale_head_is_refused_and_changes_nothing(self, store: Store) -> None:
        build(store, 3)
        with pytest.raises(HeadMovedError):
            store.append("abc123", 2, draft(2, 9, "late"))
        assert len(store.history("abc123")) == 3
        assert contents(store) == ["m1", "m2", "m3"]

    def test_a_fork_shares_the_prefix_and_drops_the_abandoned_branch(self, store: Store) -> None:
        build(store, 5)
        fork = store.append("abc123", 5, draft(3, 6, kind=CheckpointKind.ROLLBACK))
        assert (fork.id, fork.parent) == (6, 3)
        assert contents(store) == ["m1", "m2", "m3"]
        store.append("abc123", 6, draft(6, 7, "branch"))
        assert contents(store) == ["m1", "m2", "m3", "branch"]
        assert contents(store, at=5) == ["m1", "m2", "m3", "m4", "m5"]  # nothing was deleted

    def test_a_compaction_keeps_a_prefix_and_the_full_record(self, store: Store) -> None:
        build(store, 6)
        compacted = replace(
            draft(6, 7, "summary", "m6", kind=CheckpointKind.CONTEXT_COMPACTED),
            detail=CompactionDetail("drop", dropped=3, kept=1),
            keep_messages=2,
        )
        store.append("abc123", 6, compacted)
        assert contents(store) == ["m1", "m2", "summary", "m6"]
        assert store.load("abc123").context_tokens == 2 + 2 + 7 + 2
        store.append("abc123", 7, draft(7, 8, "m8"))
        assert contents(store) == ["m1", "m2", "summary", "m6", "m8"]
        assert contents(store, at=6) == ["m1", "m2", "m3", "m4", "m5", "m6"]  # originals stay
        store.append(
            "abc123", 8, draft(6, 9, kind=CheckpointKind.ROLLBACK)
        )  # and can be returned to
        assert contents(store) == ["m1", "m2", "m3", "m4", "m5", "m6"]
        with pytest.raises(InvalidDraftError):
            store.append("abc123", 9, replace(draft(9, 10, "x"), keep_messages=7))
        assert len(store.history("abc123")) == 9

    def test_unknown_sessions_and_checkpoints(self, store: Store) -> None:
        build(store, 2)
        with pytest.raises(UnknownSessionError):
            store.load("nope")
        with pytest.raises(UnknownSessionError):
            store.history("nope")
        with pytest.raises(UnknownSessionError):
            store.append("nope", 1, draft(1, 2))
        with pytest.raises(UnknownCheckpointError):
            store.load("abc123", 9)
        with pytest.raises(UnknownCheckpointError):
            store.get_checkpoint("abc123", 0)
        with pytest.raises(UnknownCheckpointError):
            store.append("abc123", 2, draft(7, 3))
        for read in (store.history, store.head, store.info, store.load):
            with pytest.raises(UnknownSessionError):
                read("abc")  # a prefix is not an id: only the service resolves prefixes
        assert store.match_sessions("abc") == ["abc123"]
        assert store.match_sessions("abd") == []

    def test_a_session_id_is_created_once(self, store: Store) -> None:
        build(store, 2)
        with pytest.raises(SessionExistsError):
            build(store, 1)
        assert len(store.history("abc123")) == 2

    def test_the_profile_outlives_sessions(self, store: Store) -> None:
        assert store.load_profile() == UserProfile()
        store.update_profile(lambda p: p.remember("airline", "Delta"))
        assert store.load_profile().preferences == {"airline": "Delta"}
        assert store.update_profile(lambda p: p.remember("seat", "aisle")).preferences == {
            "airline": "Delta",
            "seat": "aisle",
        }

        def refuse(profile: UserProfile) -> UserProfile:
            raise ValueError("no")

        with pytest.raises(ValueError):
            store.update_profile(refuse)
        assert len(store.load_profile().preferences) == 2  # a refused change writes nothing

    def test_everything_survives_reopening(self, tmp_path: Path) -> None:
        self.needs_persistence()
        first = self.open(tmp_path)
        build(first, 4)
        first.update_profile(lambda p: p.remember("seat", "aisle"))
        before = first.load("abc123")
        first.close()
        again = self.open(tmp_path)
        assert again.load("abc123") == before
        assert again.load_profile().preferences == {"seat": "aisle"}
        again.close()

    def test_two_handles_on_one_store_see_each_other(self, tmp_path: Path) -> None:
        self.needs_persistence()
        a, b = self.open(tmp_path), self.open(tmp_path)
        build(a, 2)
        b.append("abc123", 2, draft(2, 3, "from b"))
        with pytest.raises(HeadMovedError):
            a.append("abc123", 2, draft(2, 3, "from a"))
        assert contents(a) == ["m1", "m2", "from b"]
        a.close()
        b.close()

    def test_a_live_lease_makes_the_session_busy_naming_the_holder(self, store: Store) -> None:
        build(store, 1)
        mine = Lease.mine("token-a")
        store.acquire_lease("abc123", mine)
        store.acquire_lease("abc123", mine.renewed())  # renewing one's own lease is fine
        other = Lease.mine("token-b")
        with pytest.raises(SessionBusyError, match=f"running in process {os.getpid()} on "):
            store.acquire_lease("abc123", other)
        store.release_lease("abc123", "token-b")  # not the holder: nothing happens
        with pytest.raises(SessionBusyError):
            store.acquire_lease("abc123", other)
        store.release_lease("abc123", "token-a")
        store.acquire_lease("abc123", other)

    def test_a_lease_whose_holder_died_on_this_host_is_taken_over_at_once(
        self, store: Store
    ) -> None:
        build(store, 1)
        gone = Lease(socket.gethostname(), dead_pid(), "token-dead", time.time() + 3600)
        store.acquire_lease("abc123", gone)
        store.acquire_lease("abc123", Lease.mine("token-new"))

    def test_a_lease_held_on_another_host_is_taken_over_only_after_expiry(
        self, store: Store
    ) -> None:
        build(store, 1)
        remote = Lease("some-other-host", 1, "token-remote", time.time() + 3600)
        store.acquire_lease("abc123", remote)
        with pytest.raises(SessionBusyError, match="on some-other-host"):
            store.acquire_lease("abc123", Lease.mine("token-local"))
        store.release_lease("abc123", "token-remote")
        store.acquire_lease("abc123", Lease("some-other-host", 1, "token-remote", time.time() - 1))
        store.acquire_lease("abc123", Lease.mine("token-local"))  # expired: taken over

    def test_a_lease_reads_back_as_it_is_held_and_none_when_free(self, store: Store) -> None:
        """`lease_of` is what `watch` asks when a session stands still: who holds it, until
        when (a network store's clock is its own: seconds of slack), expired ones included."""
        from agentctl.store.lease import ARRIVING, arriving_lease, holder_is_gone

        build(store, 1)
        assert store.lease_of("abc123") is None
        mine = Lease.mine("token-a", ttl=60)
        store.acquire_lease("abc123", mine)
        held = store.lease_of("abc123")
        assert held is not None
        assert (held.host, held.pid, held.token) == (mine.host, mine.pid, mine.token)
        assert abs(held.expires_at - mine.expires_at) < 10
        assert not holder_is_gone(held)
        store.acquire_lease("abc123", mine.renewed(600))
        renewed = store.lease_of("abc123")
        assert renewed is not None
        assert renewed.expires_at > held.expires_at + 300
        store.release_lease("abc123", "token-a")
        assert store.lease_of("abc123") is None
        store.acquire_lease("abc123", Lease("some-other-host", 7, "remote", time.time() - 5))
        expired = store.lease_of("abc123")
        assert expired is not None
        assert (expired.host, expired.pid) == ("some-other-host", 7)
        assert holder_is_gone(expired)  # read back expired, not dropped
        store.acquire_lease("abc123", arriving_lease("m0ve"))
        arriving = store.lease_of("abc123")
        assert arriving is not None
        assert arriving.token == ARRIVING + "m0ve"
        assert not holder_is_gone(arriving)
        store.release_lease("abc123", ARRIVING + "m0ve")
        with pytest.raises(UnknownSessionError):
            store.lease_of("nope")

    #: write a lease of `session_id` that agentctl would never write (a backend's own damage);
    #: None where the backend cannot hold one (the test skips)
    damage_lease_ways: tuple[str, ...] = ()

    def damage_lease(self, store: Store, session_id: str, way: str) -> None:
        raise NotImplementedError

    def test_a_damaged_lease_reads_as_none_and_holds_nothing(self, store: Store) -> None:
        """A lease is advisory (the head check is the guard): one that does not read as a
        lease is none, read without an error, and taken over like none."""
        if not self.damage_lease_ways:
            pytest.skip("the backend keeps no lease that could be damaged")
        self.damaged = True
        build(store, 1)
        for way in self.damage_lease_ways:
            store.acquire_lease("abc123", Lease("some-other-host", 1, "remote", time.time() + 600))
            self.damage_lease(store, "abc123", way)
            assert store.lease_of("abc123") is None, way
            store.acquire_lease("abc123", Lease.mine(f"after-{way}"))
            store.release_lease("abc123", f"after-{way}")

    def test_a_lease_for_an_unknown_session_is_refused(self, store: Store) -> None:
        with pytest.raises(UnknownSessionError):
            store.acquire_lease("nope", Lease.mine("t"))

    def test_the_head_and_the_facts_load_without_the_conversation(self, store: Store) -> None:
        build(store, 4)
        assert store.head("abc123") == store.load("abc123").checkpoint
        assert store.info("abc123") == info()
        store.append("abc123", 4, draft(2, 5, kind=CheckpointKind.ROLLBACK))
        assert store.head("abc123").id == 5
        with pytest.raises(UnknownSessionError):
            store.head("nope")
        with pytest.raises(UnknownSessionError):
            store.info("nope")

    def test_a_session_is_held_from_the_moment_it_exists(self, store: Store) -> None:
        from agentctl.store.lease import Lease

        mine = Lease.mine("creator")
        store.create_session(info(), draft(None, 1, "m1"), mine)
        seen = store.lease_of("abc123")
        assert seen is not None
        assert seen.token == "creator"
        with pytest.raises(SessionBusyError):
            store.acquire_lease("abc123", Lease.mine("another"))
        store.acquire_lease("abc123", mine.renewed())  # the creator renews it

    def test_another_handle_sees_the_same_store(self, store: Store) -> None:
        build(store, 2)
        other = store.another_handle()
        try:
            assert [c.id for c in other.history("abc123")] == [1, 2]
        finally:
            if other is not store:
                other.close()

    def test_a_stored_checkpoint_loads_back_equal(self, store: Store) -> None:
        first = store.create_session(info(), draft(None, 1, "a"))
        second = store.append("abc123", 1, draft(1, 2, "b"))
        assert store.get_checkpoint("abc123", 1) == first
        assert store.head("abc123") == second
        assert [c.kind for c in store.history("abc123")] == ["new_task", "plan_ready"]

    def test_a_deleted_session_is_gone_and_its_id_free_again(self, store: Store) -> None:
        build(store, 3, "gone11")
        build(store, 2, "stays1")
        store.acquire_lease("gone11", Lease.mine("t"))
        store.delete_session("gone11")
        assert store.match_sessions("") == ["stays1"]
        with pytest.raises(UnknownSessionError):
            store.history("gone11")
        with pytest.raises(UnknownSessionError):
            store.delete_session("gone11")
        build(store, 1, "gone11")  # the id can be used again, from scratch
        assert [c.id for c in store.history("gone11")] == [1]
        assert store.head("gone11").message_tip == 1
        assert len(store.history("stays1")) == 2


class SessionListSpec(SpecBase):
    """`list_sessions`: newest first, from the session index or (the default) from each head."""

    def test_sessions_are_listed_newest_first_and_matched_by_prefix(self, store: Store) -> None:
        build(store, 2, "aa11")
        build(store, 4, "aa22")
        store.append(
            "aa11",
            2,
            draft(2, 30, state=State.DONE, task=Task(goal="g", outcome=Outcome.SUCCEEDED)),
        )
        listed = store.list_sessions()
        assert [s.id for s in listed] == ["aa11", "aa22"]
        assert (listed[0].state, listed[0].head, listed[0].outcome) == ("done", 3, "succeeded")
        assert (listed[1].state, listed[1].head, listed[1].goal) == ("executing", 4, "test goal")
        assert store.match_sessions("aa") == ["aa11", "aa22"]
        assert store.match_sessions("aa2") == ["aa22"]
        assert store.match_sessions("b") == []


class LabelsSpec(SpecBase):
    """Names and tags, set in place. The default keeps none and says so."""

    def test_names_and_tags_are_set_in_place_and_listed(self, store: Store) -> None:
        build(store, 2, "named1")
        build(store, 1, "plain1")
        if not overrides(store, "labels"):  # the default: refused, saying so; listed without
            with pytest.raises(StoreError, match="keeps no names or tags"):
                store.set_labels("named1", "trip to Lisbon", ())
            with pytest.raises(UnknownSessionError):
                store.set_labels("nope", "x", ())
            assert {(s.name, s.tags) for s in store.list_sessions()} == {(None, ())}
            return
        store.set_labels("named1", "trip to Lisbon", ("travel", "2026"))
        by_id = {s.id: s for s in store.list_sessions()}
        assert (by_id["named1"].name, by_id["named1"].tags) == (
            "trip to Lisbon",
            ("travel", "2026"),
        )
        assert (by_id["plain1"].name, by_id["plain1"].tags) == (None, ())
        store.set_labels("named1", None, ())
        assert store.list_sessions()[0].name is None or store.list_sessions()[1].name is None
        with pytest.raises(UnknownSessionError):
            store.set_labels("nope", "x", ())
        store.append("named1", 2, draft(2, 3, "more"))  # labels are not history
        assert {s.id: s.tags for s in store.list_sessions()}["named1"] == ()


class IntegritySpec(SpecBase):
    """`message_links`, `check`, `reclaim`: what `verify` reads."""

    def test_message_ids_count_within_their_session(self, store: Store) -> None:
        """Ids mean the same on every backend (1, 2, 3... per session), so a checkpoint can
        be copied to another store as it is."""
        build(store, 3, "first1")
        build(store, 2, "second")
        assert [store.get_checkpoint("first1", n).message_tip for n in (1, 2, 3)] == [1, 2, 3]
        assert store.head("second").message_tip == 2
        back = draft(1, 4, kind=CheckpointKind.ROLLBACK, state=State.PLANNING)
        store.append("first1", 3, replace(back, from_state=State.EXECUTING))
        branch = store.append("first1", 4, draft(4, 5, "b1", "b2", state=State.PLANNING))
        assert branch.message_tip == 5  # numbered on after m3, its parent is m1
        links = store.message_links("first1")
        assert {i: parent for i, (parent, _m) in links.messages.items()} == {
            1: None,
            2: 1,
            3: 2,
            4: 1,
            5: 4,
        }
        assert links.tips == {1: 1, 2: 2, 3: 3, 4: 1, 5: 5}


class ReadyConversationSpec(SpecBase):
    """The ready conversation (store/ready.py): a cache, kept whole, gone with its session."""

    def test_a_ready_conversation_is_kept_whole_and_replaced(self, store: Store) -> None:
        from agentctl.store.ready import ReadyConversation

        assert store.ready_conversation("abc123") is None
        build(store, 3)
        session = store.load("abc123")
        tip = session.checkpoint.message_tip
        assert tip is not None
        ready = ReadyConversation.of(
            session.info, session.messages, tip, _prepared(session.messages)
        )
        store.keep_ready("abc123", ready)
        assert store.ready_conversation("abc123") == ready
        # Text the way models write it: quotes, newlines, non-ASCII, an emoji.
        store.append("abc123", 3, draft(3, 4, 'say "hé"\nand 🙂'))
        newer = store.load("abc123")
        assert newer.checkpoint.message_tip is not None
        again = ReadyConversation.of(
            newer.info, newer.messages, newer.checkpoint.message_tip, _prepared(newer.messages)
        )
        store.keep_ready("abc123", again)
        kept = store.ready_conversation("abc123")
        assert kept == again
        assert kept is not None
        assert kept.sound()
        form, _, text = kept.prepared.partition("\n")
        assert (form, decode_messages(text)) == ("store-spec", newer.messages)

    def test_a_ready_conversation_goes_with_its_session(self, store: Store) -> None:
        from agentctl.store.ready import ReadyConversation

        build(store, 2)
        session = store.load("abc123")
        ready = ReadyConversation.of(session.info, session.messages, 2, _prepared(session.messages))
        with pytest.raises(UnknownSessionError):
            store.keep_ready("nope", ready)
        store.keep_ready("abc123", ready)
        store.delete_session("abc123")
        assert store.ready_conversation("abc123") is None
        assert store.ready_conversation("nope") is None


class KeptListingSpec(SpecBase):
    """The kept history listing (store/listing.py): a cache `history` reads when it is sound."""

    def test_history_reads_a_kept_listing_and_the_rows_after_it(self, store: Store) -> None:
        from agentctl.store.listing import KeptListing
        from agentctl.store.ready import owner_of

        assert store.kept_listing("abc123") is None
        build(store, 4)
        owner = owner_of(store.info("abc123"))
        listing = KeptListing.of(owner, store.history("abc123")[:3])
        store.keep_listing("abc123", listing)
        assert store.kept_listing("abc123") == (listing if store.keeps_listings else None)
        store.append("abc123", 4, draft(4, 5, 'say "hé"\nand 🙂'))
        store.append("abc123", 5, draft(3, 6, "a branch", kind=CheckpointKind.ROLLBACK))
        rows = store.history("abc123", kept=False)
        assert [(c.id, c.parent) for c in rows] == [
            (1, None),
            (2, 1),
            (3, 2),
            (4, 3),
            (5, 4),
            (6, 3),
        ]
        assert store.history("abc123") == rows
        assert rows[5].kind == "rollback"
        assert rows[2].detail == {"tools": ["t3"]}
        store.keep_listing("abc123", KeptListing.of(owner, rows))  # replaced whole
        assert store.history("abc123") == rows
        kept = KeptListing.of(owner, rows)
        assert store.kept_listing("abc123") == (kept if store.keeps_listings else None)

    def test_a_listing_that_is_not_this_sessions_sound_own_is_not_read(self, store: Store) -> None:
        from agentctl.store.listing import KeptListing
        from agentctl.store.ready import owner_of

        build(store, 3)
        rows = store.history("abc123")
        owner = owner_of(store.info("abc123"))
        self.damaged = True  # a sound listing that disagrees with the rows: verify says so
        other = [c._replace(kind="tampered") for c in rows]
        sound = KeptListing.of(owner, other)
        for listing in (
            sound._replace(check=sound.check ^ 1),  # damaged
            KeptListing.of("abc123 2020-01-01T00:00:00", other),  # an earlier session's
            sound._replace(body=sound.body[:-2]),  # torn
            KeptListing.of(owner, [*other, other[-1]._replace(id=4, parent=3)]),  # past the head
        ):
            store.keep_listing("abc123", listing)
            assert store.history("abc123") == rows
        store.keep_listing("abc123", sound)  # sound and its own: read (verify compares)
        assert store.history("abc123") == (other if store.keeps_listings else rows)
        assert store.history("abc123", kept=False) == rows

    def test_a_kept_listing_goes_with_its_session(self, store: Store) -> None:
        from agentctl.store.listing import KeptListing
        from agentctl.store.ready import owner_of

        build(store, 2)
        listing = KeptListing.of(owner_of(store.info("abc123")), store.history("abc123"))
        with pytest.raises(UnknownSessionError):
            store.keep_listing("nope", listing)
        store.keep_listing("abc123", listing)
        store.delete_session("abc123")
        assert store.kept_listing("abc123") is None
        with pytest.raises(UnknownSessionError):
            store.history("abc123")
        build(store, 1)  # the same id again: its own history, not the listing of the one before
        assert [c.id for c in store.history("abc123")] == [1]


class PagedHistorySpec(SpecBase):
    """`history_page`: a part of the history, from the rows, as `history` lists it."""

    def test_a_page_is_the_part_of_the_history_after_a_checkpoint(self, store: Store) -> None:
        build(store, 5)
        store.append("abc123", 5, draft(2, 6, "a branch", kind=CheckpointKind.ROLLBACK))
        rows = store.history("abc123", kept=False)
        for after in range(0, 8):
            for limit in (None, 0, 1, 2, 10):
                want = rows[after:] if limit is None else rows[after : after + limit]
                assert store.history_page("abc123", after, limit) == want, (after, limit)
        assert store.history_page("abc123") == rows

    def test_a_page_of_an_unknown_session_is_refused(self, store: Store) -> None:
        build(store, 2)
        with pytest.raises(UnknownSessionError):
            store.history_page("nope")
        with pytest.raises(UnknownSessionError):
            store.history_page("abc", 1, 1)  # a prefix is not an id

    def test_a_page_is_read_from_the_rows_not_from_a_kept_listing(self, store: Store) -> None:
        from agentctl.store.listing import KeptListing
        from agentctl.store.ready import owner_of

        build(store, 3)
        rows = store.history("abc123")
        self.damaged = True  # a sound listing that disagrees with the rows
        other = [c._replace(kind="tampered") for c in rows]
        store.keep_listing("abc123", KeptListing.of(owner_of(store.info("abc123")), other))
        assert store.history_page("abc123") == rows
        assert store.history_page("abc123", 1, 1) == rows[1:2]


class RangedReadsSpec(SpecBase):
    """`checkpoints_page` and `messages_between`: a session read a range at a time, as it
    reads whole (what a streamed export reads)."""

    def test_checkpoints_and_messages_read_in_ranges_as_they_read_whole(self, store: Store) -> None:
        build(store, 5)
        compaction = replace(
            draft(5, 6, "note", "m5"),
            kind=CheckpointKind.CONTEXT_COMPACTED,
            keep_messages=2,
            detail=CompactionDetail("drop", 3, 1, 20, 10),
        )
        store.append("abc123", 5, compaction)
        store.append("abc123", 6, draft(3, 7, "a branch", kind=CheckpointKind.ROLLBACK))
        whole = [store.get_checkpoint("abc123", n) for n in range(1, 8)]
        for after in range(0, 9):
            for limit in (None, 0, 1, 3):
                want = whole[after:] if limit is None else whole[after : after + limit]
                assert store.checkpoints_page("abc123", after, limit) == want, (after, limit)
        every = store.message_links("abc123").messages
        assert len(every) == 8
        for first in range(1, 10):
            for last in range(first - 1, 10):
                want_messages = {n: m for n, m in every.items() if first <= n <= last}
                assert store.messages_between("abc123", first, last) == want_messages

    def test_ranges_of_an_unknown_session_are_refused(self, store: Store) -> None:
        build(store, 2)
        with pytest.raises(UnknownSessionError):
            store.checkpoints_page("nope")
        with pytest.raises(UnknownSessionError):
            store.messages_between("abc", 1, 2)  # a prefix is not an id


class SearchSpec(SpecBase):
    """`search`: substrings, case-insensitive, alike on every backend."""

    def test_search_matches_substrings_case_insensitively_on_every_backend(
        self, store: Store
    ) -> None:
        """Every backend answers alike: a part of a word finds it (SQLite's index once matched
        whole words only), in any case, and so do one or two characters."""
        store.create_session(info("word01"), draft(None, 1, "Always fly DELTA to Lisbon"))
        store.append("word01", 1, draft(1, 2, "the seat is 14C"))
        for query in ("delt", "DELTA", "always fly", "isbo", "14c", "4C"):
            hits = store.search(query, 10)
            assert [h.session_id for h in hits] == ["word01"], query
        assert store.search("deltas", 10) == []
        hit = store.search("delt", 10)[0]
        assert (hit.checkpoint, hit.role) == (1, "user")
        assert "\ue000DELT\ue001" in hit.snippet
        assert len(store.search("a", 1)) == 1  # the limit holds for short queries too

    def test_a_message_holding_the_snippet_markers_is_found_and_marked_once(
        self, store: Store
    ) -> None:
        """The markers around a match are private-use characters: a message may hold them too
        (`search` crashed on every backend). There they are text; the snippet has one pair."""
        store.create_session(info("mark01"), draft(None, 1, "x \ue001 needle \ue000 y \ue001"))
        [hit] = store.search("needle", 10)
        assert hit.snippet.count("\ue000") == hit.snippet.count("\ue001") == 1
        assert hit.snippet.index("\ue000") < hit.snippet.index("\ue001")
        assert "\ue000needle\ue001" in hit.snippet


class WholeWriteSpec(SpecBase):
    """A session written whole (import): all or nothing, held by its lease."""

    def test_a_session_written_whole_equals_one_built_by_appends(self, store: Store) -> None:
        drafts = [draft(None, 1, "m1", "m2")]
        drafts += [draft(n - 1, n, f"m{n + 1}") for n in range(2, 6)]
        drafts.append(replace(draft(3, 6, "branch"), kind=CheckpointKind.ROLLBACK))
        drafts.append(  # a compaction: the first two messages, a summary, the newest turn
            replace(
                draft(6, 7, "summary", "branch", kind=CheckpointKind.CONTEXT_COMPACTED),
                detail=CompactionDetail("drop", dropped=2, kept=1),
                keep_messages=2,
            )
        )
        store.create_session(info("built1"), drafts[0])
        for n, d in enumerate(drafts[1:], 1):
            store.append("built1", n, d)
        written = store.create_whole(info("whole1"), drafts)
        assert [c.id for c in written] == list(range(1, 8))
        for n in range(1, 8):
            assert store.load("whole1", n).messages == store.load("built1", n).messages
            assert store.get_checkpoint("whole1", n) == written[n - 1]
        assert store.history("whole1") == store.history("built1")
        store.append("whole1", 7, draft(7, 8, "on"))  # and it goes on like any other
        assert store.head("whole1").id == 8

    def test_a_session_written_whole_is_all_or_nothing(self, store: Store) -> None:
        build(store, 2, "taken1")
        good = [draft(None, 1, "m1"), draft(1, 2, "m2")]
        with pytest.raises(SessionExistsError):
            store.create_whole(info("taken1"), good)
        assert len(store.history("taken1")) == 2
        with pytest.raises(InvalidDraftError):  # a parent that is not an earlier checkpoint
            store.create_whole(info("bad001"), [*good, draft(5, 3, "m3")])
        assert store.match_sessions("bad") == []
        lease = Lease.mine("holder", ttl=60)
        store.create_whole(info("held01"), good, lease)
        with pytest.raises(SessionBusyError):
            store.acquire_lease("held01", Lease(lease.host, 999_999_999, "other", 0.0))

    def test_an_arrival_lease_is_taken_by_no_one_but_its_move(self, store: Store) -> None:
        """A move's copy is held until the move marks the source (transfer.move_session):
        not when its holder died, not when it expired; the same move takes it again."""
        from agentctl.errors import ArrivingError
        from agentctl.store.lease import ARRIVING, arriving_lease

        arriving = arriving_lease("m0ve")
        store.create_whole(info("arrive"), [draft(None, 1, "m1")], arriving)
        dead = Lease(arriving.host, 999_999_999, arriving.token, time.time() - 1)
        store.acquire_lease("arrive", dead)  # the same move (its token): taken, even expired
        with pytest.raises(ArrivingError, match="arriving from another store"):
            store.acquire_lease("arrive", Lease.mine("resume"))
        store.release_lease("arrive", ARRIVING + "m0ve")
        store.acquire_lease("arrive", Lease.mine("resume"))  # released: it runs here now


class CopySpec(SpecBase):
    """`copy_session` (fork, move): a session's checkpoints 1..N copied whole, ids kept."""

    def branchy(self, store: Store, session_id: str = "src001") -> None:
        """Work, a rollback, a compaction, and an approval on one checkpoint."""
        from agentctl.domain.session import Approval

        store.create_session(info(session_id), draft(None, 1, "m1", "m2"))
        for n in range(2, 6):
            store.append(session_id, n - 1, draft(n - 1, n, f"m{n + 1}"))
        store.append(session_id, 5, draft(3, 6, "branch", kind=CheckpointKind.ROLLBACK))
        compacted = replace(
            draft(6, 7, "summary", "branch", kind=CheckpointKind.CONTEXT_COMPACTED),
            detail=CompactionDetail("drop", dropped=2, kept=1),
            keep_messages=2,
        )
        store.append(session_id, 6, compacted)
        approved = Task(goal="test goal", approval=Approval(call_id="c1", asked_at=7))
        store.append(session_id, 7, draft(7, 8, "asked", task=approved))
        store.append(session_id, 8, draft(8, 9, "on"))

    def test_a_copy_is_the_session_up_to_a_checkpoint_under_a_new_id(self, store: Store) -> None:
        self.branchy(store)
        assert [h.session_id for h in store.search("branch", 50)] == ["src001"] * 2  # indexed
        for upto in (9, 7, 1):
            new = info(f"copy{upto:02d}")
            assert store.copy_session(store, "src001", new, upto=upto) == upto
            assert store.info(new.id) == new
            assert store.history(new.id) == store.history("src001")[:upto]
            for n in range(1, upto + 1):
                assert store.load(new.id, n).messages == store.load("src001", n).messages
                assert store.get_checkpoint(new.id, n) == store.get_checkpoint("src001", n)
            assert store.head(new.id) == store.get_checkpoint("src001", upto)
            listed = {s.id: s for s in store.list_sessions()}[new.id]
            assert (listed.head, listed.state) == (upto, store.head(new.id).to_state.value)
        store.append("copy07", 7, draft(7, 8, "goes on"))  # a copy goes on like any other
        assert contents(store, "copy07")[-1] == "goes on"
        # numbered on from the copy's own messages, as the source's next one was
        assert store.head("copy07").message_tip == store.get_checkpoint("src001", 8).message_tip
        assert len(store.history("src001")) == 9  # the source is as it was
        assert {h.session_id for h in store.search("branch", 50)} == {"src001", "copy09", "copy07"}

    def test_a_copy_may_leave_the_approvals_behind(self, store: Store) -> None:
        self.branchy(store)
        store.copy_session(store, "src001", info("noyes1"), keep_approvals=False)
        assert store.get_checkpoint("src001", 8).task.approval is not None
        assert [store.get_checkpoint("noyes1", n).task.approval for n in range(1, 10)] == [None] * 9
        assert store.get_checkpoint("noyes1", 8).task.goal == "test goal"
        assert store.load("noyes1").messages == store.load("src001").messages

    def test_a_copy_is_all_or_nothing_and_held(self, store: Store) -> None:
        self.branchy(store)
        build(store, 1, "taken1")
        with pytest.raises(SessionExistsError):
            store.copy_session(store, "src001", info("taken1"))
        assert len(store.history("taken1")) == 1
        with pytest.raises(UnknownCheckpointError):
            store.copy_session(store, "src001", info("past01"), upto=10)
        with pytest.raises(UnknownSessionError):
            store.copy_session(store, "nope", info("none01"))
        assert store.match_sessions("past") == store.match_sessions("none") == []
        store.copy_session(store, "src001", info("held01"), lease=Lease.mine("copier", ttl=60))
        with pytest.raises(SessionBusyError):
            store.acquire_lease("held01", Lease("elsewhere", 1, "other", time.time() + 60))
        store.release_lease("held01", "copier")

    def test_a_copy_outlives_its_source_whole_and_searchable(self, store: Store) -> None:
        """Deleting the source (`rm`, `prune`) takes nothing of a copy: its rows, and its
        messages found by `search` (SQLite's copies share their source's index entries)."""
        self.branchy(store)
        store.copy_session(store, "src001", info("copy01"), upto=8)
        store.copy_session(store, "copy01", info("copy02"), upto=4)  # a copy of a copy
        kept = {
            sid: (store.history(sid), [store.load(sid, n) for n in range(1, upto + 1)])
            for sid, upto in (("copy01", 8), ("copy02", 4))
        }
        assert {h.session_id for h in store.search("m3", 50)} == {"src001", "copy01", "copy02"}
        branch = sorted(repr(h) for h in store.search("branch", 50) if h.session_id != "src001")
        assert branch
        store.delete_session("src001")
        for sid, (history, states) in kept.items():
            assert store.history(sid) == history
            assert [store.load(sid, n) for n in range(1, len(states) + 1)] == states
        assert sorted(h.session_id for h in store.search("M3", 50)) == ["copy01", "copy02"]
        assert [h.session_id for h in store.search("asked", 50)] == ["copy01"]
        assert sorted(repr(h) for h in store.search("branch", 50)) == branch
        store.delete_session("copy01")
        assert [h.session_id for h in store.search("m3", 50)] == ["copy02"]
        store.delete_session("copy02")
        assert store.search("m3", 50) == store.search("branch", 50) == []

    def test_a_copy_into_another_store_keeps_the_ids(self, tmp_path: Path) -> None:
        source, target = self.open(tmp_path / "a"), self.open(tmp_path / "b")
        try:
            self.branchy(source)
            assert target.copy_session(source, "src001", info("src001")) == 9
            for n in range(1, 10):
                assert target.load("src001", n) == source.load("src001", n)
            assert target.history("src001") == source.history("src001")
        finally:
            source.close()
            target.close()


class StoreSpec(
    CoreSpec,
    SessionListSpec,
    LabelsSpec,
    IntegritySpec,
    ReadyConversationSpec,
    KeptListingSpec,
    PagedHistorySpec,
    RangedReadsSpec,
    SearchSpec,
    WholeWriteSpec,
    CopySpec,
):
    """Every part: what a backend's test module subclasses (with `open`)."""
