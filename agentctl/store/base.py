"""The one store contract every backend implements, and the light records it returns.

A session is an append-only tree of checkpoints; the head is always the newest checkpoint, so a
rollback is a new checkpoint whose parent is an old one (a fork), never a rewrite. Messages are
stored once, each pointing to its predecessor, so a checkpoint costs the same whatever the length
of the session. `SessionSummary` and `CheckpointSummary` are plain dataclasses built from index
columns: `list` and `history` must not pay pydantic's import cost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from agentctl.domain.checkpoints import Detail, NoDetail
from agentctl.domain.lifecycle import CheckpointKind, State

if TYPE_CHECKING:
    from datetime import datetime

    from agentctl.domain.records import SearchHit
    from agentctl.domain.session import (
        Checkpoint,
        Message,
        Session,
        SessionInfo,
        Task,
        Usage,
        UserProfile,
    )
    from agentctl.store.lease import Lease
    from agentctl.store.listing import KeptListing
    from agentctl.store.ready import ReadyConversation


class SessionSummary(NamedTuple):
    """A NamedTuple, like CheckpointSummary: `history` builds thousands, and a tuple is built
    in C where a frozen dataclass pays a Python __setattr__ per field."""

    id: str
    state: str  # the lifecycle state at the head; MOVED for the record a move left behind
    goal: str
    title: str | None
    head: int
    created_at: str
    updated_at: str
    outcome: str | None = None
    name: str | None = None  # the user's name for it (agentctl rename)
    tags: tuple[str, ...] = ()  # agentctl tag
    workspace: str | None = None  # the folder its tools work in


MOVED = "moved"  # a listed session's state when its head is a `moved` checkpoint


def summary_of(row: Sequence[Any]) -> SessionSummary:
    """A `list` row from a database's session index: id, state, goal, title, head, created,
    updated, outcome, name, tags (JSON text), workspace, the head's kind. A row whose labels
    do not read (tags that are not a JSON list of text, a name that is not text) is listed as
    "damaged", saying why, rather than failing the whole listing; `tag` or `rename` repair it,
    `rm` removes it, `verify` reports it."""
    import json

    try:
        tags = json.loads(row[9]) if row[9] != "[]" else []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ValueError("not a JSON list of text")
        if row[8] is not None and not isinstance(row[8], str):
            raise ValueError("the name is not text")
    except (ValueError, TypeError, RecursionError) as exc:
        why = str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
        return SessionSummary(
            str(row[0]),
            DAMAGED,
            f"its name or tags cannot be read ({why}): set them again with agentctl tag or "
            "rename, or remove it",
            None,
            row[4] if isinstance(row[4], int) else 0,
            str(row[5]),
            str(row[6]),
        )
    if not isinstance(row[5], str) or not isinstance(row[6], str):  # an edit's bytes
        return SessionSummary(
            str(row[0]),
            DAMAGED,
            "its times in the session index are not text: see agentctl verify",
            None,
            row[4] if isinstance(row[4], int) else 0,
            str(row[5]),
            str(row[6]),
        )
    return SessionSummary._make(
        (row[0], listed_state(row[1], row[11]), *row[2:9], tuple(tags), row[10])
    )


DAMAGED = "damaged"  # a listed session's state when its row cannot be read whole


def listed_state(state: str, head_kind: str | None) -> str:
    """The state `list` shows: a session moved to another store is "moved" there, not the
    state it was in when it left (it runs no more here)."""
    return MOVED if head_kind == CheckpointKind.MOVED.value else state


class CheckpointSummary(NamedTuple):
    id: int
    parent: int | None
    kind: str  # a CheckpointKind value (stored as "event")
    from_state: str
    to_state: str
    created_at: str
    detail: dict[str, Any]  # the stored form

    def typed_detail(self) -> Detail:
        """The detail as the record of this checkpoint's kind (domain/checkpoints.py)."""
        from agentctl.domain.checkpoints import parse

        return parse(self.kind, self.detail)


class HistoryTable(NamedTuple):
    """What `history`'s table shows: the newest checkpoint's id, how many checkpoints there
    are, the (from_state, to_state) pairs among the rows shown (the transition column's
    width), and those rows, which may be read as they are shown."""

    head: int | None
    total: int  # how many checkpoints the session has
    transitions: frozenset[tuple[str, str]]
    rows: Iterable[CheckpointSummary]
    shown: int  # how many rows `rows` gives

    @classmethod
    def of(cls, history: list[CheckpointSummary], limit: int | None = None) -> HistoryTable:
        """The table of a history read whole: the newest `limit` of it with --limit."""
        shown = history[-limit:] if limit and limit < len(history) else history
        transitions = frozenset((c.from_state, c.to_state) for c in shown)
        head = history[-1].id if history else None
        return cls(head, len(history), transitions, shown, len(shown))


@dataclass(frozen=True)
class MessageLinks:
    """A session's message graph: id -> (parent id, the message or why it does not decode),
    and checkpoint id -> the id of its last message."""

    messages: dict[int, tuple[int | None, Message | str]]
    tips: dict[int, int | None]
    unreadable: dict[int, str]  # checkpoint id -> why its stored state does not decode


class MessageGraph(NamedTuple):
    """A session's message graph as `verify` checks it: every message's parent and which do
    not decode, without the messages themselves (a session of 100,000 messages held them all:
    100 MB); `message` reads one when a check compares it (a compaction's kept turns)."""

    parents: dict[int, int | None]  # message id -> its parent's id
    undecodable: dict[int, str]  # message id -> why it does not decode
    tips: dict[int, int | None]  # checkpoint id -> the id of its last message
    unreadable: dict[int, str]  # checkpoint id -> why its stored state does not decode
    message: Callable[[int], Message | str]  # one message of `parents`, or why it does not decode

    @classmethod
    def of(cls, links: MessageLinks) -> MessageGraph:
        messages = links.messages
        return cls(
            {i: parent for i, (parent, _) in messages.items()},
            {i: body for i, (_, body) in messages.items() if isinstance(body, str)},
            links.tips,
            links.unreadable,
            lambda i: messages[i][1],
        )


@dataclass(frozen=True)
class CheckpointDraft:
    """A checkpoint before the store numbers it.

    `new_messages` extend the parent's conversation; with `keep_messages` = N they follow only
    its first N messages instead (a compaction: the conversation is rebuilt shorter, while the
    parent's full conversation stays in the store, reachable from the parent).
    """

    parent: int | None
    kind: CheckpointKind
    from_state: State
    to_state: State
    created_at: str
    task: Task
    usage: Usage
    detail: Detail = field(default_factory=NoDetail)
    new_messages: tuple[Message, ...] = ()
    keep_messages: int | None = None


class SessionTree(Protocol):
    """The core every backend has: sessions as append-only trees of checkpoints.

    Every method is atomic; `append` is one transaction. Every failure is an AgentctlError:
    UnknownSessionError for an id the store does not have (a prefix is not an id: only the
    service resolves prefixes), UnknownCheckpointError for a checkpoint number it does not
    have, StoreError when the store is damaged or fails (naming the session), HeadMovedError
    when another writer won.
    """

    def create_session(
        self, info: SessionInfo, first: CheckpointDraft, lease: Lease | None = None
    ) -> Checkpoint:
        """Create a session whose first checkpoint is `first` (parent None), held by `lease`
        from the first moment another process can see it.

        Raises SessionExistsError when the id is taken; StoreError when the store fails.
        """
        ...

    def append(self, session_id: str, expected_head: int, draft: CheckpointDraft) -> Checkpoint:
        """Add a checkpoint and make it the head. `draft.parent` is usually the head; a
        rollback names an older checkpoint.

        Raises HeadMovedError when the head is no longer `expected_head` (another writer won);
        UnknownSessionError; UnknownCheckpointError for a parent that is not there;
        InvalidDraftError when `keep_messages` is longer than the parent's conversation.
        """
        ...

    def load(self, session_id: str, checkpoint_id: int | None = None) -> Session:
        """The session at a checkpoint (default: the head), conversation included.

        Raises UnknownSessionError, UnknownCheckpointError; StoreError for a damaged chain.
        """
        ...

    def get_checkpoint(self, session_id: str, checkpoint_id: int) -> Checkpoint:
        """One checkpoint without its conversation. Raises UnknownCheckpointError."""
        ...

    def head(self, session_id: str) -> Checkpoint:
        """The newest checkpoint without its conversation, in O(1) of the session's length.
        Raises UnknownSessionError."""
        ...

    def info(self, session_id: str) -> SessionInfo:
        """The facts written when the session was created: id, task spec, model."""
        ...

    def list_sessions(self) -> list[SessionSummary]:
        """All sessions, most recently updated first. A session that cannot be read is
        listed with state "damaged" where the backend can still name it."""
        ...

    def history(self, session_id: str, *, kept: bool = True) -> list[CheckpointSummary]:
        """Every checkpoint of a session in order of creation (all branches): from the kept
        listing (KeptListings) and the rows after it, or with `kept=False` from the rows
        alone (what `verify` compares). Raises UnknownSessionError."""
        ...

    def match_sessions(self, prefix: str) -> list[str]:
        """Ids of the sessions that start with `prefix` (none is an answer, not an error)."""
        ...

    def delete_session(self, session_id: str) -> None:
        """Remove a session, its checkpoints, messages and lease, in one transaction where the
        backend has them (a JSON-lines session: its folder, renamed away first). Only ever
        called for a session the user named. Raises UnknownSessionError."""
        ...

    def close(self) -> None: ...


class Leases(Protocol):
    """One writer per session (store/lease.py); the head check on every append is the fence."""

    def acquire_lease(self, session_id: str, lease: Lease) -> None:
        """Take (or renew) the session's lease. Raises SessionBusyError naming the holder."""
        ...

    def release_lease(self, session_id: str, token: str) -> None:
        """Give the lease up if `token` still holds it (else nothing)."""
        ...

    def lease_of(self, session_id: str) -> Lease | None:
        """The session's lease as stored, expired or not; None when nobody holds it or it
        does not read as one. Raises UnknownSessionError."""
        ...

    def another_handle(self) -> Store:
        """A handle to the same store for another thread (the lease heartbeat)."""
        ...


class Search(Protocol):
    """Finding text in every session's messages."""

    def search(self, text: str, limit: int) -> list[SearchHit]:
        """Messages whose content contains `text` (case-insensitive), at most `limit`: SQLite
        answers from its FTS5 index, the other backends scan (scan_search)."""
        ...


class Labels(Protocol):
    """The user's names and tags for sessions: the one thing about a session that changes in
    place (they are not history: a rollback keeps them)."""

    def set_labels(self, session_id: str, name: str | None, tags: tuple[str, ...]) -> None:
        """Replace a session's name and tags. Raises UnknownSessionError."""
        ...


class Profiles(Protocol):
    """User state that outlives sessions."""

    def load_profile(self) -> UserProfile:
        """The profile (empty when none was saved). Raises StoreError when it is damaged."""
        ...

    def update_profile(self, change: Callable[[UserProfile], UserProfile]) -> UserProfile:
        """Apply `change` to the profile atomically and return the result: a read, the change
        and the write, with no other update in between (or, where the backend cannot lock,
        retried until none came between). Two machines that update at once both keep their
        change. `change` may raise to refuse; nothing is written then."""
        ...


class Integrity(Protocol):
    """What `verify` asks of a backend beyond the session tree."""

    def check(self) -> list[str]:
        """The backend's own integrity check: an empty list when its files are sound."""
        ...

    def reclaim(self) -> None:
        """Give the space of deleted sessions back (SQLite: VACUUM; the others free it as
        they delete)."""
        ...

    def message_links(self, session_id: str) -> MessageLinks:
        """Every message of a session, read and decoded once, and each checkpoint's tip: what
        `verify` needs to check every conversation in O(checkpoints + messages).

        Raises UnknownSessionError; a message or checkpoint that does not decode is reported
        in the result, not raised.
        """
        ...

    def message_graph(self, session_id: str) -> MessageGraph:
        """`message_links` as `verify` checks it (MessageGraph): each message read and
        decoded once, but not kept. The default is message_links'; a database reads the rows a
        page at a time, so the memory is the graph's, not the messages'.

        Raises UnknownSessionError; a message or checkpoint that does not decode is reported
        in the result, not raised.
        """
        ...


class SessionReads(Protocol):
    """One session's records as `verify` reads them, each read when asked for and raising as
    the store's own method named after it raises (a StoreError for a damaged row), so a check
    fed by a store-wide pass finds what it finds fed by the per-session reads."""

    @property
    def session_id(self) -> str: ...

    def history(self) -> list[CheckpointSummary]:
        """As `Store.history(session_id, kept=False)`."""
        ...

    def message_links(self) -> MessageLinks:
        """As `Store.message_links(session_id)`."""
        ...

    def message_graph(self) -> MessageGraph:
        """As `Store.message_graph(session_id)`."""
        ...

    def info(self) -> SessionInfo:
        """As `Store.info(session_id)`."""
        ...

    def kept_history(self) -> list[CheckpointSummary] | None:
        """As `Store.history(session_id)` where the store keeps a listing of the session
        (`keeps_listings` and `kept_listing` not None); else None."""
        ...

    def kept_listing(self) -> KeptListing | None:
        """As `Store.kept_listing(session_id)` where the store keeps listings; else None."""
        ...


class IntegrityPass(Protocol):
    """`verify` of a whole store at the cost of reading it once."""

    def session_reads(self, session_ids: Sequence[str] | None = None) -> Iterator[SessionReads]:
        """The records of each of `session_ids` (default: every session, by id), in that
        order. The default reads each through the per-session methods; a database reads its
        tables in one ordered pass each, in one read transaction."""
        ...


class ReadyConversations(Protocol):
    """A session's conversation kept ready for its next request (store/ready.py): a cache, one per
    session, replaced whole, removed with the session, never exported."""

    def keep_ready(self, session_id: str, ready: ReadyConversation) -> None:
        """Replace the session's ready conversation, atomically. Raises UnknownSessionError."""
        ...

    def ready_conversation(self, session_id: str) -> ReadyConversation | None:
        """The ready conversation last kept, or None (none kept, or unreadable: a cache is
        never an error). Whether it is the head's, and sound, is for the caller to check."""
        ...


class KeptListings(Protocol):
    """A session's history listing kept as one record (store/listing.py): a cache, one per
    session, replaced whole, removed with the session, never exported. A backend whose
    `history` would not gain from it (JSON lines reads its log whole; memory holds its
    summaries) keeps none."""

    keeps_listings: bool  # False: keep_listing keeps nothing and history never reads one

    def keep_listing(self, session_id: str, listing: KeptListing) -> None:
        """Replace the session's kept listing, atomically (or keep none). Raises
        UnknownSessionError."""
        ...

    def kept_listing(self, session_id: str) -> KeptListing | None:
        """The listing last kept, or None (none kept, or unreadable: a cache is never an
        error). Whether it is usable is for store/listing.summaries to say."""
        ...


class PagedHistory(Protocol):
    """A part of a session's history, read from the rows: a database reads only that range."""

    def history_page(
        self, session_id: str, after: int = 0, limit: int | None = None
    ) -> list[CheckpointSummary]:
        """The checkpoints numbered after `after`, in order, at most `limit` (None: all).
        Raises UnknownSessionError."""
        ...


class RangedReads(Protocol):
    """Checkpoints and messages in id ranges, for a reader that goes through a whole session a
    part at a time (a streamed export): a database reads only that range."""

    def checkpoints_page(
        self, session_id: str, after: int = 0, limit: int | None = None
    ) -> list[Checkpoint]:
        """The checkpoints numbered after `after`, whole, in order, at most `limit`. Raises
        UnknownSessionError; StoreError naming a checkpoint that does not read."""
        ...

    def messages_between(
        self, session_id: str, first: int, last: int
    ) -> dict[int, tuple[int | None, Message | str]]:
        """The messages numbered `first`..`last`: id -> (parent, message or why it does not
        decode). Raises UnknownSessionError."""
        ...


class WholeCopies(Protocol):
    """A session written whole, in one step: what import, move and fork write."""

    def create_whole(
        self,
        info: SessionInfo,
        drafts: Sequence[CheckpointDraft],
        lease: Lease | None = None,
    ) -> list[Checkpoint]:
        """Create a session with all of `drafts` as its checkpoints 1, 2, 3… (planned by
        plan_all), held by `lease`: visible whole or not at all (one transaction; a JSON-lines
        session is written in a hidden folder and renamed into place). A copy killed midway
        leaves nothing another command could take for a session.

        Raises SessionExistsError when the id is taken; InvalidDraftError or
        UnknownCheckpointError for drafts that do not chain; StoreError when the store fails.
        """
        ...

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
        """Copy checkpoints 1..`upto` of `source`'s session into this store as `info`'s
        session, whole or not at all (fork, move): store/core.py says how."""
        ...


class UsageFact(NamedTuple):
    """What `usage` adds up of one session: its facts and the usage its head carries."""

    session_id: str
    model: str
    created_at: str
    forked_from: str | None  # "SESSION:CHECKPOINT"
    calls: int
    prompt_tokens: int
    completion_tokens: int
    unreported: int
    # A fork's history starts with copies of its origin's checkpoints, whose calls the origin
    # made: the usage of the checkpoint it started from (calls, prompt and completion tokens,
    # unreported), or None (not a fork, or that checkpoint is not in it).
    copied: tuple[int, int, int, int] | None = None


class UsageTotal(NamedTuple):
    """What `usage` shows of one group of sessions of one model: `key` is what it groups by
    (the model, the day the sessions started, or the session), the counts are summed over the
    sessions, each counting only the calls it made itself (a fork's copied ones taken off)."""

    key: str
    model: str
    sessions: int
    calls: int
    prompt_tokens: int
    completion_tokens: int


USAGE_KEYS = ("model", "day", "session")


def fork_point(forked_from: str | None) -> int | None:
    """The checkpoint a fork started from, from its facts' "SESSION:CHECKPOINT"."""
    _origin, colon, at = (forked_from or "").partition(":")
    return int(at) if colon and at.isascii() and at.isdigit() else None


class Overview(Protocol):
    """What the store-wide commands (`list`, `show`, `usage`, `prune`) read, at the cost of
    what they show: defaults built on the session tree (store/overview.py), overridden where a
    backend has an index (SQLite: grouped queries, an index of forks)."""

    def select_sessions(
        self, keep: Callable[[SessionSummary], bool] | None, limit: int | None
    ) -> list[SessionSummary]:
        """The sessions `keep` accepts (all: None), most recently updated first, at most
        `limit`: reading only as many as it takes to find them where the backend can."""
        ...

    def session_summary(self, session_id: str) -> SessionSummary | None:
        """The one session's `list` row, or None when the store lists no such session."""
        ...

    def session_sizes(self, session_ids: Sequence[str]) -> dict[str, int]:
        """The bytes each session's stored rows (or files) hold; unknown ids are left out."""
        ...

    def usage_facts(self) -> list[UsageFact]:
        """Every session's model, creation time, origin and head usage."""
        ...

    def usage_totals(self, by: str, since: datetime | None) -> list[UsageTotal]:
        """Every session's own usage (store/overview.own_usage) summed by (`by`, model), `by`
        one of USAGE_KEYS, of the sessions started at or after `since` (a session whose start
        does not read as a time is left out when `since` is given); sorted."""
        ...

    def sessions_before(self, cutoff: datetime) -> list[SessionSummary]:
        """The sessions last updated before `cutoff` (one whose time does not read is not),
        most recently updated first, as `list_sessions` lists them."""
        ...

    def forks_of(self, session_id: str) -> list[tuple[str, str]]:
        """The sessions forked from this one and the checkpoint each started from, as
        (id, checkpoint as recorded), by id."""
        ...


class Store(
    SessionTree,
    Overview,
    WholeCopies,
    Leases,
    Labels,
    Search,
    Profiles,
    Integrity,
    IntegrityPass,
    ReadyConversations,
    KeptListings,
    PagedHistory,
    RangedReads,
    Protocol,
):
    """What agentctl's use cases need of a store: the session tree and its capabilities. Every
    backend subclasses store/core.BaseStore, which writes every capability but the core as a
    default, and passes the one conformance suite (agentctl/testing/store_spec.py)."""


class StoredMessage(NamedTuple):
    """A message as a store keeps it: its id within the session (1, 2, 3... in the order they
    were appended, the same on every backend) and the id of the message before it."""

    id: int
    parent: int | None
    message: Message


class AppendPlan(NamedTuple):
    """What one append writes: the numbered checkpoint and the messages it adds."""

    checkpoint: Checkpoint
    messages: tuple[StoredMessage, ...]


def no_store(shown_url: str) -> Exception:
    """The one error for a URL that names no store, given to a command that makes none."""
    from agentctl.errors import NoStoreError

    return NoStoreError(
        f"there is no agentctl store at {shown_url}; nothing was created (a store is made by "
        "the first `run` or `import` there)",
        hint="check the URL (--store, AGENTCTL_STORE, or `store` in the settings file)",
    )


def cache_owner(session_id: str, created_at: str) -> str:
    """Whose a cache beside a session is (store/ready.py, store/listing.py): its id and creation
    time. An older agentctl deletes a session without knowing its caches; a session made later
    under the same id must not take them for its own."""
    return f"{session_id} {created_at}"


def plan_append(
    draft: CheckpointDraft,
    *,
    checkpoint_id: int,
    parent_tip: int | None,
    next_message_id: int,
    parent_of: Callable[[int], int | None],
) -> AppendPlan:
    """The one append algorithm, for every backend: from the parent's last message, keep the
    first `keep_messages` (a compaction), chain the new messages after it with the session's
    next ids, and number the checkpoint. The backend reads the three facts (the parent's tip,
    the next message id, a message's parent for the rare compaction) and writes the plan in
    one transaction; the plan is the same whichever backend made it, so a session copied
    between stores keeps its ids."""
    from agentctl.domain.checkpoints import payload
    from agentctl.domain.session import Checkpoint

    tip = parent_tip if draft.parent is not None else None
    if draft.keep_messages is not None:
        tip = prefix_tip(tip, parent_of, draft.keep_messages)
    added = []
    for number, message in enumerate(draft.new_messages, next_message_id):
        added.append(StoredMessage(number, tip, message))
        tip = number
    checkpoint = Checkpoint(
        id=checkpoint_id,
        parent=draft.parent,
        kind=draft.kind,
        from_state=draft.from_state,
        to_state=draft.to_state,
        created_at=draft.created_at,
        detail=payload(draft.detail),
        task=draft.task,
        usage=draft.usage,
        message_tip=tip,
    )
    return AppendPlan(checkpoint, tuple(added))


def plan_all(drafts: Sequence[CheckpointDraft]) -> list[AppendPlan]:
    """The plans of a whole session's appends, made in memory (create_whole): each draft's
    parent must be an earlier one; message ids count from 1 as the appends would number them."""
    from agentctl.errors import InvalidDraftError

    plans: list[AppendPlan] = []
    tips: dict[int, int | None] = {}
    parents: dict[int, int | None] = {}

    def parent_of(message: int) -> int | None:
        if message not in parents:
            raise InvalidDraftError(f"message {message} is not in the session")
        return parents[message]

    for number, draft in enumerate(drafts, 1):
        if (draft.parent is None) != (number == 1) or (
            draft.parent is not None and draft.parent not in tips
        ):
            raise InvalidDraftError(
                f"checkpoint {number} has parent {draft.parent}, not an earlier checkpoint"
            )
        plan = plan_append(
            draft,
            checkpoint_id=number,
            parent_tip=tips[draft.parent] if draft.parent is not None else None,
            next_message_id=len(parents) + 1,
            parent_of=parent_of,
        )
        for stored in plan.messages:
            parents[stored.id] = stored.parent
        tips[number] = plan.checkpoint.message_tip
        plans.append(plan)
    if not plans:
        raise InvalidDraftError("a session has at least one checkpoint")
    return plans


def prefix_tip(tip: int | None, parent_of: Callable[[int], int | None], keep: int) -> int | None:
    """The id of message number `keep` (1-based) of the chain ending at `tip`; None for 0.
    Parents point backwards (a smaller id), so the walk ends; a store where one does not is
    damaged, and that is a StoreError, not a loop."""
    from agentctl.errors import InvalidDraftError, StoreError

    chain = []
    while tip is not None:
        chain.append(tip)
        parent = parent_of(tip)
        if parent is not None and not parent < tip:
            raise StoreError(f"message {tip} has parent {parent}: the message chain is damaged")
        tip = parent
    if not 0 <= keep <= len(chain):
        raise InvalidDraftError(f"cannot keep {keep} of a conversation of {len(chain)} messages")
    return chain[len(chain) - keep] if keep else None


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a read builds thousands of acyclic objects
    (tuples, strings, ints, plain dicts) it could never free: a history of 1,000 checkpoints
    paid 0.65 ms of its 2.2 ms in collections. Back on (if it was) however the read ends."""
    import gc

    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def chain_array(rows: Iterable[tuple[int, int | None, str]], tip: int | None) -> str | None:
    """The conversation ending at message `tip` as one JSON array of stored bodies, oldest
    first, from `rows` (id, parent, body) holding at least that chain: a session's messages up
    to the tip, read as one range. A range read and a walk here take a third of the time of
    SQLite's recursive query (0.6 ms against 1.9 at 1,000 messages); a rolled-back branch in
    the range is read and passed over. None when the chain is broken: a message missing, or
    a parent not before its child (so a damaged store cannot make the walk loop)."""
    by_id = {row[0]: row for row in rows}
    bodies = []
    at = tip
    while at is not None:
        row = by_id.get(at)
        if row is None or (row[1] is not None and not row[1] < at):
            return None
        bodies.append(row[2])
        at = row[1]
    bodies.reverse()
    return "[" + ",".join(bodies) + "]"


def snippet_around(text: str, start: int, length: int, width: int = 60) -> str:
    """`text` around a match, the match marked (records.HIT_START/HIT_END), one line."""
    from agentctl.domain.records import HIT_END, HIT_START

    # The markers are private-use characters a message may hold too: there they are text,
    # shown as the replacement character, so a snippet has exactly one pair of marks.
    text = text.replace(HIT_START, "\ufffd").replace(HIT_END, "\ufffd")
    left = max(0, start - width // 2)
    right = min(len(text), start + length + width // 2)
    before = ("…" if left else "") + text[left:start]
    after = text[start + length : right] + ("…" if right < len(text) else "")
    out = before + HIT_START + text[start : start + length] + HIT_END + after
    return " ".join(out.split())


def find_folded(text: str, needle: str) -> int:
    """Where `needle` (casefolded) starts in `text`, case-insensitively, as an index into
    `text` itself (casefolding may change lengths: "ß" is "ss"); -1 when it is not there."""
    folded = text.casefold()
    at = folded.find(needle)
    if at < 0 or len(folded) == len(text):
        return at
    length = 0  # map the folded index back: count source characters until it is reached
    for index, char in enumerate(text):
        if length >= at:
            return index
        length += len(char.casefold())
    return -1


def scan_search(store: Store, text: str, limit: int) -> list[SearchHit]:
    """Search by reading every session's messages once: what backends without a text index
    do (O(all messages); SQLite's FTS5 index answers in milliseconds)."""
    import bisect

    from agentctl.domain.records import SearchHit

    needle = text.casefold()
    hits: list[SearchHit] = []
    for session_id in store.match_sessions(""):
        links = store.message_links(session_id)
        added = sorted((tip, c) for c, tip in links.tips.items() if tip is not None)
        tips = [t for t, _c in added]
        for message_id, (_parent, message) in sorted(links.messages.items()):
            if isinstance(message, str) or not message.content:
                continue
            at = find_folded(message.content, needle)
            if at < 0:
                continue
            where = bisect.bisect_left(tips, message_id)  # the first checkpoint that has it
            checkpoint = added[where][1] if where < len(added) else 0
            snippet = snippet_around(message.content, at, len(text))
            hits.append(SearchHit(session_id, checkpoint, message.role, snippet))
            if len(hits) >= limit:
                return hits
    return hits


def ancestors(history: list[CheckpointSummary], c: CheckpointSummary) -> list[int]:
    """Ids from `c` up to the first checkpoint (bounded by the history's length)."""
    chain: list[int] = []
    current: int | None = c.id
    while current is not None and 1 <= current <= len(history) and len(chain) <= len(history):
        chain.append(current)
        current = history[current - 1].parent
    return chain
