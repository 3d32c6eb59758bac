"""What the use cases share: the store a command opens, finding a session by id or name, the
lease a run holds (given up while a person is asked), following a session another process
drives, names and tags checked, and a task read from its argument. The use cases import this;
it imports none of them."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from agentctl.config import Settings
from agentctl.domain.records import Notice, RunReport, Stop
from agentctl.errors import (
    AgentctlError,
    AmbiguousSessionError,
    StoreError,
    UnknownSessionError,
    UsageError,
)
from agentctl.store import Store, open_store

if TYPE_CHECKING:
    from agentctl.domain.records import RunEvent
    from agentctl.domain.session import PendingQuestion, TaskSpec
    from agentctl.llm.client import Pace
    from agentctl.loop.runner import Ask
    from agentctl.store.lease import Lease
    from agentctl.workspace.snapshots import Snapshots


# What the terminal asks with: the question, and a check that it was answered elsewhere.
Prompt = Callable[["PendingQuestion", Callable[[], bool]], "str | None"]


class HeldLease:
    """The session's lease, renewed by a heartbeat thread on its own handle to the same store,
    and given up while a person is asked something (`release`, then `take` again): a session
    waiting at a prompt holds nothing that would stop an answer from another terminal."""

    def __init__(self, store: Store, session_id: str) -> None:
        self._store = store
        self._session_id = session_id
        self._held: Lease | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def take(self, lease: Lease | None = None) -> None:
        """Take the lease (SessionBusyError naming the holder), unless `lease` is held already."""
        from agentctl.store.lease import Lease

        if lease is None:
            lease = Lease.mine(secrets.token_hex(8))
            self._store.acquire_lease(self._session_id, lease)
        self._held = lease
        self._stop = threading.Event()
        self._beat = threading.Thread(
            target=self._heartbeat, args=(lease, self._stop), name="lease-heartbeat", daemon=True
        )
        self._beat.start()

    def release(self, give_up: bool = True) -> None:
        """Stop renewing and give the lease up; `give_up` False: stop renewing only (a worker
        gives it up itself, with the session's queue status, in one transaction)."""
        if self._held is None:
            return
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        held, self._held = self._held, None
        if give_up:
            self._store.release_lease(self._session_id, held.token)

    def _heartbeat(self, held: Lease, stop: threading.Event) -> None:
        from agentctl.store.lease import lease_ttl

        # The handle is opened at the first beat, not at once: opening it would compete with
        # the first model request for the interpreter.
        other: Store | None = None
        try:
            while not stop.wait(lease_ttl() / 3):
                other = other or self._store.another_handle()
                other.acquire_lease(self._session_id, held.renewed())
        except AgentctlError:
            pass  # lost to a takeover: the head check on every commit stops our writes
        finally:
            if other is not None and other is not self._store:
                other.close()


@contextmanager
def held_lease(
    store: Store, session_id: str, lease: Lease | None = None, give_up: bool = True
) -> Iterator[HeldLease]:
    """Hold the session's lease while the block runs (taking it, unless `lease` is already
    held), renewed by a heartbeat thread on its own handle to the same store; given up at the
    end unless `give_up` is False (a worker's claim: see Claimed)."""
    holder = HeldLease(store, session_id)
    holder.take(lease)
    try:
        yield holder
    finally:
        holder.release(give_up)


@dataclass(frozen=True)
class Claimed:
    """A worker's run of a session it claimed (worker.py): the lease the claim wrote (renewed
    while the run goes on, and kept when it ends: the worker gives it up together with the
    queue status), the scratch folder the session works in on this worker, and when to stop
    between two steps (SIGTERM)."""

    lease: Lease
    workspace: str
    stop_when: Callable[[], bool]
    pace: Callable[[str], Pace] | None = None  # the shared pace of model servers
    share: Callable[[Snapshots], None] | None = None  # keeps its captures where all can read


def unleased(store: Store, session_id: str, holder: HeldLease, prompt: Prompt) -> Ask:
    """The runner's `ask`: the lease is given up while the person thinks, so an answer from
    another terminal (`resume ID --input`) can proceed; the prompt notices the head move and
    raises AnsweredElsewhere. An answer typed here takes the lease back and is used only if
    the session still waits where it did: never two writers, never an answer applied to a
    question it was not given for."""
    from agentctl.domain.records import AnsweredElsewhere
    from agentctl.errors import SessionBusyError

    def ask(question: PendingQuestion) -> str | None:
        waiting = store.head(session_id).id
        holder.release()
        try:
            text = prompt(question, lambda: store.head(session_id).id != waiting)
        except AnsweredElsewhere as exc:  # the prompt saw the head move: which question
            raise AnsweredElsewhere(exc.typed, waiting) from None
        try:
            holder.take()
        except SessionBusyError:
            # another process writes: it answered (its answer may not be committed yet)
            raise AnsweredElsewhere(text, waiting) from None
        if store.head(session_id).id != waiting:
            raise AnsweredElsewhere(text, waiting)
        return text

    return ask


def follow(
    store: Store,
    session_id: str,
    on_event: Callable[[RunEvent], None],
    past: int | None = None,
) -> RunReport:
    """Report every checkpoint after the current head as it is committed, until the session is
    done or waiting for input. One O(1) head read per poll, and no lease: it writes nothing.

    `past`: the question another terminal answered. Its answer may not be committed yet (that
    process has the lease, its commit is on the way), so the session standing at that question
    is not "waiting" yet: followed until the head moves past it, or, when nothing moves for
    `ANSWER_WAIT_S`, the question is taken as still open (the answer never came)."""
    import time

    from agentctl.domain.lifecycle import State
    from agentctl.domain.records import Checkpointed
    from agentctl.domain.session import Message

    seen = store.head(session_id)
    before: tuple[Message, ...] | None = None
    still = time.monotonic() + ANSWER_WAIT_S
    while True:
        head = store.head(session_id)
        if past is not None and head.id != past:
            past = None  # the answer, or a rollback: from here on, as `watch` follows
        if past is not None and time.monotonic() < still:
            time.sleep(FOLLOW_POLL_S)
            continue
        for number in range(seen.id + 1, head.id + 1):
            # The messages each checkpoint added, so a view shows what a run's would.
            if before is None:
                before = store.load(session_id, seen.id).messages
            now = store.load(session_id, number)
            added = now.messages[len(before) :] if len(now.messages) > len(before) else ()
            before = now.messages
            on_event(Checkpointed(now.checkpoint, added))
        seen = head
        if head.to_state in (State.DONE, State.WAITING_FEEDBACK):
            stop = Stop.DONE if head.to_state is State.DONE else Stop.PAUSED
            return RunReport(stop, store.load(session_id))
        time.sleep(FOLLOW_POLL_S)


FOLLOW_POLL_S = 0.25
ANSWER_WAIT_S = 10.0


def _answered_elsewhere(
    store: Store,
    session_id: str,
    exc: Exception,
    on_event: Callable[[RunEvent], None],
) -> RunReport:
    """The prompt's question was answered in another terminal: say so, and follow the session
    read-only (as `watch` does) until it is done or waits again; the exit code is `run`'s."""
    from agentctl.domain.records import AnsweredElsewhere

    typed = exc.typed if isinstance(exc, AnsweredElsewhere) else None
    on_event(
        Notice(
            "answered in another terminal; following the session there (read-only)",
            session_id=session_id,
            elsewhere=True,
        )
    )
    if typed and typed.strip():
        on_event(Notice(f"not sent (it was answered first): {typed}"))
    question = exc.question if isinstance(exc, AnsweredElsewhere) else None
    return replace(follow(store, session_id, on_event, past=question), followed=True)


@contextmanager
def opened_store(settings: Settings, *, create: bool = False) -> Iterator[Store]:
    """The store of the settings. Only the commands that make sessions (run, import, a move's
    target) or the profile (profile set) pass `create`: every other command leaves a URL
    that names no store as it is, and says so (NoStoreError, exit 2) — except the default
    store before anything was saved in it, which reads as an empty store."""
    from agentctl.errors import NoStoreError

    try:
        store = open_store(settings.store_url, create=create)
    except NoStoreError:
        if "store" in settings.sources:  # named by a flag, a variable or the settings file
            raise
        store = open_store("memory:")  # the default, not made yet: nothing saved so far
    try:
        yield store
    finally:
        store.close()


def refuse_if_damaged(store: Store, session_id: str) -> None:
    """A session is written to only while the path its head stands on is sound: damage is
    never extended (exit 6, nothing written). Reading commands still show what they can. A
    long session's kept listing spares reading its whole history (store/listing.py)."""
    from agentctl.errors import StoreError
    from agentctl.store.listing import head_path_problems

    problems = head_path_problems(store, session_id)
    if problems:
        raise StoreError(
            f"session {session_id} is damaged ({problems[0]}); nothing was written",
            hint=f"agentctl verify {session_id}, then agentctl rollback {session_id} --to N "
            "(a sound checkpoint)",
        )


def refuse_if_moved(store: Store, session_id: str) -> None:
    """A moved session is continued where it went; this copy stays, read-only."""
    from agentctl.domain.checkpoints import MovedDetail
    from agentctl.domain.lifecycle import CheckpointKind

    head = store.head(session_id)
    if head.kind is CheckpointKind.MOVED:
        detail = head.typed_detail()
        where = detail.to if isinstance(detail, MovedDetail) else "another store"
        raise UsageError(
            f"session {session_id} was moved to {where}; continue it there",
            hint=resume_elsewhere(session_id, where),
        )


def resume_elsewhere(session_id: str, shown_url: str) -> str:
    """The command that continues a moved session in the store it went to, ready to paste:
    the URL as shown (user name kept), its masked password left out for libpq to find."""
    import shlex

    from agentctl.config import pasteable_url

    url = pasteable_url(shown_url)
    if url is None:  # an older record masked the user name, or a query parameter
        return f"agentctl resume {session_id} --store URL (the URL of {shown_url})"
    command = f"agentctl resume {session_id} --store {shlex.quote(url)}"
    if url != shown_url:
        command += "  (the password from PGPASSWORD or ~/.pgpass)"
    return command


def resolve_session(store: Store, prefix: str) -> str:
    """The one session an id, a unique id prefix or a name (agentctl rename) names. An id
    wins over a name; a name two sessions share is ambiguous."""
    matches = store.match_sessions(prefix) if prefix else []
    if prefix in matches:
        return prefix
    if len(matches) == 1:
        return matches[0]
    if not matches and prefix:
        listed = store.list_sessions()
        if any(s.id == prefix for s in listed):
            # Listed, yet not found by id: a damaged page (an index and its table disagree).
            raise StoreError(
                f"the store lists session {prefix!r} but cannot find it by its id: the store "
                "is damaged",
                hint="agentctl verify",
            )
        named = [s.id for s in listed if s.name == prefix]
        if len(named) == 1:
            return named[0]
        if named:
            raise AmbiguousSessionError(
                f"{len(named)} sessions are named {prefix!r}: {', '.join(named[:5])}",
                hint="name one by its id, or rename one: agentctl rename ID NAME",
            )
    if not matches:
        raise UnknownSessionError(f"no session matches {prefix!r}", hint="agentctl list")
    shown = ", ".join(matches[:5]) + (" …" if len(matches) > 5 else "")
    raise AmbiguousSessionError(f"{prefix!r} matches {len(matches)} sessions: {shown}")


# -- names and tags ---------------------------------------------------------------------

MAX_NAME = 80


def valid_name(name: str) -> str:
    """A session name as given (stripped), or UsageError saying what a name is."""
    name = name.strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise UsageError(f"a name is one line of 1 to {MAX_NAME} printable characters")
    return name


def valid_tags(tags: Iterable[str]) -> tuple[str, ...]:
    for t in tags:
        if not t or len(t) > 40 or not t.isprintable() or " " in t:
            raise UsageError(f"a tag is one word of up to 40 characters, not {t!r}")
    return tuple(dict.fromkeys(tags))


def refuse_taken_name(store: Store, name: str, session_id: str | None = None) -> None:
    """A name names one session: one that is the start of an id (an id always wins) or that
    another session already has is refused now, not when it is first used (exit 2)."""
    if store.match_sessions(name):
        raise UsageError(f"{name!r} is the start of a session id; pick another name")
    holders = [s.id for s in store.list_sessions() if s.name == name and s.id != session_id]
    if holders:
        raise UsageError(
            f"the name {name!r} is taken by session {holders[0]}; pick another name",
            hint=f"agentctl rename {holders[0]} OTHER-NAME (to free it)",
        )


# -- running --------------------------------------------------------------------------------


def read_task(argument: str, stdin: Callable[[], str] | None = None) -> TaskSpec:
    """A task file, or a goal typed on the command line; `-`: the goal is standard input."""
    from agentctl.domain.tasks import goal_task, load_task_file, looks_like_task_file

    if argument == "-" and stdin is not None:
        return goal_task(stdin())
    return load_task_file(argument) if looks_like_task_file(argument) else goal_task(argument)
