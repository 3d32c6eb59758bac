"""What the use cases share: the store a command opens, finding a session by id or name, the
lease a run holds (given up while a person is asked), following a session another process
drives, names and tags checked, and a task read from its argument. The use cases import this;
it imports none of them."""

from __future__ import annotations

import contextlib
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
    SessionBusyError,
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
                try:
                    other = other or self._store.another_handle()
                    other.acquire_lease(self._session_id, held.renewed())
                except (SessionBusyError, UsageError):
                    return  # lost to a takeover (or gone): the head check stops our writes
                except AgentctlError:
                    # A store that failed this once (busy under load, a connection lost):
                    # renewed at the next beat, on a handle opened again. Stopping here let
                    # the lease of a run still going expire (watch: "not running"; a resume
                    # could take it over).
                    self._let_go(other)
                    other = None
        finally:
            self._let_go(other)

    def _let_go(self, other: Store | None) -> None:
        if other is not None and other is not self._store:
            with contextlib.suppress(Exception):
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
    done or waiting for input, or nothing runs it any more. One O(1) head read per poll, and
    no lease: it writes nothing.

    Who runs it is asked only when the head stands still (`Driver`): a lease read about once
    a second. A session nobody holds (a driver killed with -9, or stopped on an error), or
    held by a process gone from this host, or by a lease left to expire, ends the following
    with Stop.NOT_RUNNING and one notice saying so and how to continue — once a second look,
    a poll later, finds the head where it was and the same holder gone (a driver that just
    finished commits before it lets go). A session queued for a worker (PostgreSQL) is
    followed on, saying once that it waits for one.

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
    driver = Driver(store, session_id)
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
        moved, seen = head.id != seen.id, head
        if head.to_state in (State.DONE, State.WAITING_FEEDBACK):
            stop = Stop.DONE if head.to_state is State.DONE else Stop.PAUSED
            return RunReport(stop, store.load(session_id))
        gone = driver.gone(moved)
        if gone is not None:
            on_event(Notice(gone, session_id=session_id, elsewhere=True))
            return RunReport(Stop.NOT_RUNNING, store.load(session_id))
        if driver.queued is not None:
            on_event(Notice(driver.queued, session_id=session_id, elsewhere=True))
            driver.queued = None
        time.sleep(FOLLOW_POLL_S)


FOLLOW_POLL_S = 0.25
ANSWER_WAIT_S = 10.0
STILL_POLLS = 2  # polls the head stands still before the lease is read
LEASE_EVERY = 4  # then read again every this many polls (about a second)
QUEUED = ("runnable", "running")  # queue statuses a worker takes (store/pg_queue.py)


class Driver:
    """Whether a process still drives a followed session, from its lease (lease.py's
    `holder_is_gone`: none, a dead pid on this host, or expired), read only while the head
    stands still. `gone` answers after each poll: None (driven, or not sure yet), or the line
    that says nobody drives it. A session queued for a worker is never gone: `queued` is then
    the line to say once."""

    def __init__(self, store: Store, session_id: str) -> None:
        self._store = store
        self._session_id = session_id
        self._still = 0  # polls the head has stood still
        self._suspect: tuple[str | None] | None = None  # the gone holder's token, seen once
        self._waits = False  # said that it waits for a worker
        self.queued: str | None = None

    def gone(self, moved: bool) -> str | None:
        from agentctl.store.lease import holder_is_gone

        if moved:
            self._still, self._suspect = 0, None
            return None
        self._still += 1
        due = self._still >= STILL_POLLS and (self._still - STILL_POLLS) % LEASE_EVERY == 0
        if self._suspect is None and not due:
            return None
        held = self._store.lease_of(self._session_id)
        if held is not None and not holder_is_gone(held):
            self._suspect = None
            return None
        token = (held.token if held is not None else None,)
        if self._suspect != token:  # first seen gone: look again a poll later
            self._suspect = token
            return None
        self._suspect = None
        status = queue_status(self._store, self._session_id)
        if status in QUEUED:
            if not self._waits:
                self._waits = True
                self.queued = (
                    f"session {self._session_id} is queued ({status}): it waits for a worker "
                    "(agentctl worker) to take it; following it"
                )
            return None
        return not_running(self._session_id, held)


def not_running(session_id: str, held: Lease | None) -> str:
    """The line that says nothing runs the session any more: what is known of why, and the
    command that continues it."""
    import time

    if held is None:
        why = "no process holds it (its run stopped before it was done or waiting for input)"
    elif held.expires_at <= time.time():
        ago = round(time.time() - held.expires_at)
        why = f"{held.holder()} stopped renewing its lease {ago} s ago"
    else:
        why = f"the process that ran it ({held.holder()}) is gone"
    return (
        f"session {session_id} is not running: {why}; continue with: agentctl resume {session_id}"
    )


def queue_status(store: Store, session_id: str) -> str | None:
    """The session's place in a worker queue (runnable, running, waiting, done, failed), or
    None: never queued, or a store without queues (only PostgreSQL has them)."""
    if not hasattr(store, "with_connection"):
        return None
    from agentctl.store import pg_queue

    status: str | None = pg_queue.on(store).with_connection(
        lambda conn: pg_queue.status_of(conn, session_id), session_id
    )
    return status


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
