"""The store core a backend must write, and a base class that builds every other capability on it.

A backend subclasses `BaseStore` and writes the core: sessions (create, facts, match), the
fenced append, reads of the head, a checkpoint and the history, the conversation at a
checkpoint (`load`), leases, delete and the profile. Every other capability — the session
list, names and tags, search, the caches (ready conversation, kept listing), the integrity
reads, writing a session whole and copying one — has a default here built on that core, which a
backend overrides only where it can do better (SQLite answers `search` from an index and copies
a session with one INSERT … SELECT). The model is langgraph's `BaseCheckpointSaver` (`get` built
on `get_tuple`): which capabilities a backend overrides is read off its class (`capabilities`),
and the conformance spec (agentctl/testing/store_spec.py) tests the core on every backend and
each capability where it is overridden.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

from agentctl.store.base import (
    CheckpointDraft,
    CheckpointSummary,
    MessageGraph,
    MessageLinks,
    SessionSummary,
    listed_state,
    plan_all,
)
from agentctl.store.overview import OverviewDefaults

if TYPE_CHECKING:
    from agentctl.domain.records import SearchHit
    from agentctl.domain.session import Checkpoint, Message, Session, SessionInfo, UserProfile
    from agentctl.store.base import SessionReads, Store
    from agentctl.store.lease import Lease
    from agentctl.store.listing import KeptListing
    from agentctl.store.ready import ReadyConversation

# Each optional capability and the methods that make it: a backend overrides all of a
# capability's methods or none (the spec's report says which it overrides).
CAPABILITIES: dict[str, tuple[str, ...]] = {
    "session_list": ("list_sessions",),
    "labels": ("set_labels",),
    "search": ("search",),
    "ready_conversation": ("keep_ready", "ready_conversation"),
    "kept_listing": ("keep_listing", "kept_listing"),
    "paged_history": ("history_page",),
    "ranged_reads": ("checkpoints_page", "messages_between"),
    "integrity": ("check", "message_links"),
    "paged_graph": ("message_graph",),
    "integrity_pass": ("session_reads",),
    "reclaim": ("reclaim",),
    "whole_write": ("create_whole",),
    "copy_session": ("copy_session",),
    # store-wide reads at the cost of what they show (store/overview.py)
    "overview": (
        "select_sessions",
        "session_summary",
        "usage_facts",
        "usage_totals",
        "sessions_before",
        "forks_of",
    ),
    "sizes": ("session_sizes",),
}


def capabilities(store: object) -> dict[str, bool]:
    """Which optional capabilities `store` overrides (True) rather than taking the default."""
    backend = type(store)
    return {
        name: any(getattr(backend, m, None) is not getattr(BaseStore, m) for m in methods)
        for name, methods in CAPABILITIES.items()
    }


class BaseStore(OverviewDefaults, ABC):
    """The core (abstract) and the defaults. Every method is atomic; every failure is an
    AgentctlError: UnknownSessionError for an id the store does not have (a prefix is not an
    id: only the use cases resolve prefixes), UnknownCheckpointError for a checkpoint number it
    does not have, StoreError when the store is damaged or fails (naming the session),
    HeadMovedError when another writer won."""

    keeps_listings = False  # the kept-listing capability: True where keep_listing keeps one
    _ready_kept: dict[str, ReadyConversation] | None = None  # the default's, in this handle

    # -- the core: sessions ---------------------------------------------------------------

    @abstractmethod
    def create_session(
        self, info: SessionInfo, first: CheckpointDraft, lease: Lease | None = None
    ) -> Checkpoint:
        """Create a session whose first checkpoint is `first` (parent None), held by `lease`
        from the first moment another process can see it.

        Raises SessionExistsError when the id is taken; StoreError when the store fails.
        """

    @abstractmethod
    def info(self, session_id: str) -> SessionInfo:
        """The facts written when the session was created: id, task spec, model."""

    @abstractmethod
    def match_sessions(self, prefix: str) -> list[str]:
        """Ids of the sessions that start with `prefix`, sorted (none is an answer)."""

    @abstractmethod
    def delete_session(self, session_id: str) -> None:
        """Remove a session, its checkpoints, messages, lease and caches, in one transaction
        where the backend has them. Only ever called for a session the user named. Raises
        UnknownSessionError."""

    # -- the core: the fenced append and the reads ------------------------------------------

    @abstractmethod
    def append(self, session_id: str, expected_head: int, draft: CheckpointDraft) -> Checkpoint:
        """Add a checkpoint and make it the head. `draft.parent` is usually the head; a
        rollback names an older checkpoint.

        Raises HeadMovedError when the head is no longer `expected_head` (another writer won);
        UnknownSessionError; UnknownCheckpointError for a parent that is not there;
        InvalidDraftError when `keep_messages` is longer than the parent's conversation.
        """

    @abstractmethod
    def load(self, session_id: str, checkpoint_id: int | None = None) -> Session:
        """The session at a checkpoint (default: the head), conversation included.

        Raises UnknownSessionError, UnknownCheckpointError; StoreError for a damaged chain.
        """

    @abstractmethod
    def get_checkpoint(self, session_id: str, checkpoint_id: int) -> Checkpoint:
        """One checkpoint without its conversation. Raises UnknownCheckpointError."""

    @abstractmethod
    def head(self, session_id: str) -> Checkpoint:
        """The newest checkpoint without its conversation, in O(1) of the session's length.
        Raises UnknownSessionError."""

    @abstractmethod
    def history(self, session_id: str, *, kept: bool = True) -> list[CheckpointSummary]:
        """Every checkpoint of a session in order of creation (all branches): from the kept
        listing and the rows after it, or with `kept=False` from the rows alone (what `verify`
        compares). Raises UnknownSessionError."""

    # -- the core: leases and the profile ---------------------------------------------------

    @abstractmethod
    def acquire_lease(self, session_id: str, lease: Lease) -> None:
        """Take (or renew) the session's lease. Raises SessionBusyError naming the holder."""

    @abstractmethod
    def release_lease(self, session_id: str, token: str) -> None:
        """Give the lease up if `token` still holds it (else nothing)."""

    @abstractmethod
    def lease_of(self, session_id: str) -> Lease | None:
        """The session's lease as stored, expired or not (None: nobody holds it, or what is
        stored does not read as a lease: lease.lease_from). One small read; it takes nothing.
        Raises UnknownSessionError."""

    @abstractmethod
    def load_profile(self) -> UserProfile:
        """The profile (empty when none was saved). Raises StoreError when it is damaged."""

    @abstractmethod
    def update_profile(self, change: Callable[[UserProfile], UserProfile]) -> UserProfile:
        """Apply `change` to the profile atomically and return the result: a read, the change
        and the write, with no other update in between (or, where the backend cannot lock,
        retried until none came between). `change` may raise to refuse; nothing is written."""

    def another_handle(self) -> Store:
        """A handle to the same store for another thread (the lease heartbeat): this one,
        unless a handle belongs to the thread that opened it."""
        return self

    def close(self) -> None:
        """Let go of the store (a connection, a file)."""
        return None

    # -- defaults: the session list and labels ------------------------------------------------

    def list_sessions(self) -> list[SessionSummary]:
        """All sessions, most recently updated first, from each one's facts and head (a
        database answers from its session index). A session that cannot be read is listed
        as "damaged", saying why."""
        from agentctl.errors import StoreError, UnknownSessionError

        out = []
        for sid in self.match_sessions(""):
            try:
                info, head = self.info(sid), self.head(sid)
            except UnknownSessionError:
                continue  # deleted meanwhile
            except StoreError as exc:
                out.append(SessionSummary(sid, "damaged", exc.message, None, 0, "", ""))
                continue
            out.append(
                SessionSummary(
                    sid,
                    listed_state(head.to_state.value, head.kind.value),
                    info.spec.goal,
                    info.spec.title,
                    head.id,
                    info.created_at,
                    head.created_at,
                    head.task.outcome.value if head.task.outcome else None,
                    None,  # names and tags: the labels capability's
                    (),
                    info.workspace,
                )
            )
        return sorted(out, key=lambda s: (s.updated_at, s.id), reverse=True)

    def set_labels(self, session_id: str, name: str | None, tags: tuple[str, ...]) -> None:
        """Replace a session's name and tags (listed by `list_sessions`). The default keeps
        none: there is nowhere in the core to keep what is not history."""
        from agentctl.errors import StoreError

        self.head(session_id)  # UnknownSessionError first
        raise StoreError(
            f"this store ({type(self).__name__}) keeps no names or tags",
            hint="use a SQLite, JSON-lines or PostgreSQL store",
        )

    # -- defaults: search -----------------------------------------------------------------------

    def search(self, text: str, limit: int) -> list[SearchHit]:
        """Messages whose content contains `text` (case-insensitive), at most `limit`. The
        default reads every session's messages (base.scan_search)."""
        from agentctl.store.base import scan_search

        return scan_search(self, text, limit)

    # -- defaults: the caches -----------------------------------------------------------------

    def keep_ready(self, session_id: str, ready: ReadyConversation) -> None:
        """Replace the session's ready conversation (store/ready.py). The default keeps it in
        this handle, for this process: a cache, checked by its owner and tip when read, so a
        copy another handle made stale is never used. Raises UnknownSessionError."""
        self.head(session_id)
        if self._ready_kept is None:
            self._ready_kept = {}
        self._ready_kept[session_id] = ready

    def ready_conversation(self, session_id: str) -> ReadyConversation | None:
        """The ready conversation last kept, or None (none kept, or unreadable: a cache is
        never an error). The default's copy is the session's while its facts are the ones it
        was kept for: not once the session is deleted, nor for a later one of the same id."""
        from agentctl.errors import AgentctlError
        from agentctl.store.ready import owner_of

        copy = (self._ready_kept or {}).get(session_id)
        try:
            mine = copy is not None and copy.owner == owner_of(self.info(session_id))
        except AgentctlError:
            return None
        return copy if mine else None

    def keep_listing(self, session_id: str, listing: KeptListing) -> None:
        """Keep the session's history listing (store/listing.py): the default keeps none
        (`keeps_listings` False, so the caller does not build one). Raises
        UnknownSessionError."""
        self.head(session_id)

    def kept_listing(self, session_id: str) -> KeptListing | None:
        return None

    # -- defaults: the history a page at a time -------------------------------------------------

    def history_page(
        self, session_id: str, after: int = 0, limit: int | None = None
    ) -> list[CheckpointSummary]:
        """The checkpoints numbered after `after`, in order, at most `limit` (None: all), read
        from the rows (never from a kept listing): what a reader that wants a part of a long
        history reads (a resume's damage check, the first screen of `history`). The default
        reads the whole history; a database reads the range from its index. Raises
        UnknownSessionError."""
        rows = [c for c in self.history(session_id, kept=False) if c.id > after]
        return rows if limit is None else rows[: max(limit, 0)]

    # -- defaults: checkpoints and messages in id ranges (a streamed export) ---------------------

    def checkpoints_page(
        self, session_id: str, after: int = 0, limit: int | None = None
    ) -> list[Checkpoint]:
        """The checkpoints numbered after `after`, whole (task, usage, last message), in
        order, at most `limit` (None: all). The default reads each with `get_checkpoint`; a
        database reads the range in one query. Raises UnknownSessionError; StoreError naming
        a checkpoint that does not read."""
        page = self.history_page(session_id, after, limit)
        return [self.get_checkpoint(session_id, c.id) for c in page]

    def messages_between(
        self, session_id: str, first: int, last: int
    ) -> dict[int, tuple[int | None, Message | str]]:
        """The messages numbered `first`..`last` that the store has: id -> (parent id, the
        message, or why it does not decode), as `message_links` gives them. The default reads
        `message_links` whole; a database reads the range. Raises UnknownSessionError."""
        every = self.message_links(session_id).messages
        return {n: every[n] for n in range(first, last + 1) if n in every}

    # -- defaults: integrity ----------------------------------------------------------------------

    def check(self) -> list[str]:
        """The backend's own integrity check: an empty list when its files are sound."""
        return []

    def reclaim(self) -> None:
        """Give the space of deleted sessions back (the default frees it as it deletes)."""
        return None

    def message_links(self, session_id: str) -> MessageLinks:
        """Every message of a session and each checkpoint's tip, for `verify` and `export`.

        The default is built on `load`: a checkpoint's new messages are the last ones of its
        conversation, numbered on from the highest id so far (message ids count per session
        in order of appending: base.plan_append), and the first of them follows the message of
        its parent's conversation that it keeps. O(checkpoints x conversation): a database
        reads its message rows once instead. A checkpoint that does not load is reported in
        the result, not raised. Raises UnknownSessionError."""
        from agentctl.errors import AgentctlError

        messages: dict[int, tuple[int | None, Message | str]] = {}
        tips: dict[int, int | None] = {}
        lengths: dict[int, int] = {}
        unreadable: dict[int, str] = {}
        highest = 0
        for summary in self.history(session_id, kept=False):
            try:
                session = self.load(session_id, summary.id)
            except AgentctlError as exc:
                unreadable[summary.id] = exc.message[:200]
                continue
            tip, chain = session.checkpoint.message_tip, session.messages
            tips[summary.id], lengths[summary.id] = tip, len(chain)
            if tip is None or tip <= highest:
                continue
            kept = len(chain) - (tip - highest)
            at = tips.get(summary.parent) if summary.parent is not None else None
            # Walk back from the parent's tip to the last message the new ones follow.
            steps = lengths.get(summary.parent, 0) - kept if summary.parent is not None else 0
            while steps > 0 and at is not None and at in messages:
                at, steps = messages[at][0], steps - 1
            if kept < 0 or steps != 0 or (kept > 0) != (at is not None):
                unreadable[summary.id] = "its messages do not follow its parent's"
                continue
            for number, message in enumerate(chain[kept:], highest + 1):
                messages[number], at = (at, message), number
            highest = tip
        return MessageLinks(messages, tips, unreadable)

    def message_graph(self, session_id: str) -> MessageGraph:
        """`message_links` as `verify` checks it: the default is message_links'."""
        return MessageGraph.of(self.message_links(session_id))

    def session_reads(self, session_ids: Sequence[str] | None = None) -> Iterator[SessionReads]:
        """Each session through the per-session reads (one at a time, when asked for)."""
        for session_id in self.match_sessions("") if session_ids is None else session_ids:
            yield PerSessionReads(self, session_id)

    # -- defaults: writing and copying whole sessions ---------------------------------------------

    def create_whole(
        self, info: SessionInfo, drafts: Sequence[CheckpointDraft], lease: Lease | None = None
    ) -> list[Checkpoint]:
        """Create a session with all of `drafts` as its checkpoints 1, 2, 3… (planned by
        plan_all), held by `lease`. The default creates it and appends the rest, and deletes
        what it wrote when an append fails; only a backend that overrides it (one transaction,
        or a hidden folder renamed into place) is whole under a kill as well.

        Raises SessionExistsError when the id is taken; InvalidDraftError or
        UnknownCheckpointError for drafts that do not chain; StoreError when the store fails.
        """
        plan_all(drafts)  # drafts that do not chain are refused before anything is written
        written = [self.create_session(info, drafts[0], lease)]
        try:
            for number, draft in enumerate(drafts[1:], 1):
                written.append(self.append(info.id, number, draft))
        except BaseException:
            self.delete_session(info.id)
            raise
        return written

    def copy_session(
        self,
        source: Store,
        session_id: str,
        info: SessionInfo,
        *,
        upto: int | None = None,
        lease: Lease | None = None,
        keep_approvals: bool = True,
    ) -> int:
        """Copy checkpoints 1..`upto` (default: all) of `source`'s session `session_id` into
        this store as the session `info` names (a fork: a new id in the same store; a move:
        the same id in another), with the same checkpoint and message ids, held by `lease`;
        with `keep_approvals` False no checkpoint carries the approval of a call. Returns the
        number of checkpoints copied. Whole or not at all, as `create_whole` is (the default
        reads the source's checkpoints and messages and writes them with it; a database
        copies its rows in one transaction).

        Raises UnknownSessionError, UnknownCheckpointError for an `upto` the source does not
        have, SessionExistsError when `info.id` is taken, StoreError for a damaged source.
        """
        from agentctl.store.copying import drafts_of, read_session

        copied = read_session(source, session_id, upto, keep_approvals=keep_approvals)
        return len(self.create_whole(info, drafts_of(copied), lease))


HISTORY_PAGE = 5000  # rows PerSessionReads.history reads at a time


class PerSessionReads(NamedTuple):
    """SessionReads through a store's per-session methods."""

    store: Store
    session_id: str

    def history(self) -> list[CheckpointSummary]:
        """The rows, a page at a time where the store reads a page from its index (the rows of
        a page let go as it is read: `verify` of 100,000 checkpoints held them all at once)."""
        if not capabilities(self.store)["paged_history"]:
            return self.store.history(self.session_id, kept=False)
        rows: list[CheckpointSummary] = []
        after = 0
        while True:
            page = self.store.history_page(self.session_id, after, HISTORY_PAGE)
            rows += page
            if len(page) < HISTORY_PAGE:
                break
            after = page[-1].id
            if type(after) is not int:  # numbered by something that is not an order
                return self.store.history(self.session_id, kept=False)
        return rows

    def message_links(self) -> MessageLinks:
        return self.store.message_links(self.session_id)

    def message_graph(self) -> MessageGraph:
        return self.store.message_graph(self.session_id)

    def info(self) -> SessionInfo:
        return self.store.info(self.session_id)

    def kept_history(self) -> list[CheckpointSummary] | None:
        if not self.store.keeps_listings or self.store.kept_listing(self.session_id) is None:
            return None
        return self.store.history(self.session_id)

    def kept_listing(self) -> KeptListing | None:
        return self.store.kept_listing(self.session_id) if self.store.keeps_listings else None
