"""Workers and the queue's use cases: `run --detach`, `resume --detach`, `answer`, `worker`.

A worker is one process with N slots (threads). One dispatcher claims sessions for free slots
(store/pg_queue.py: the claim is the session's fenced lease) and hands each to a slot, which
runs it through the same `resume_session` a person's `resume` uses, never prompting: a
question or an approval that would be asked pauses the session, and the worker gives up its
lease and its slot at once (the session is `waiting` until someone runs `agentctl answer`).
SIGTERM (or Ctrl-C) drains: no new claims, each slot stops after the step it is in (already
checkpointed), gives its session back to the queue as runnable and releases it; then the
worker exits. A worker killed with -9 holds leases that expire: the sessions are claimed again
where their last checkpoints left them.

Wake-ups: one connection LISTENs for `agentctl_queue`; the dispatcher also polls every
`AGENTCTL_WORKER_POLL` seconds (default 5) and when the lease of a session another worker was
running expires, so an idle worker costs the database one short claim transaction per poll.

A checkout of a session's repository is bounded (`AGENTCTL_WORKER_CLONE_TIMEOUT`, 600 s) and
gives way to a drain: git runs in a process group of its own, killed whole on either, so a
clone that hangs (a server that accepts and never answers) cannot hold the worker.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentctl.config import Settings
from agentctl.domain.records import Stop
from agentctl.errors import AgentctlError, NotWaitingError, StoreError, UsageError

if TYPE_CHECKING:
    import psycopg

    from agentctl.store.pg_queue import Claim
    from agentctl.store.postgres import PostgresStore

DEFAULT_POLL_S = 5.0
MAX_POLL_S = 3600.0
DEFAULT_CLONE_TIMEOUT_S = 600.0
LIMIT_READ_S = 30.0  # how often a worker reads again whether its queue is capped

# The transports a queued session's repository may use: not ext:: or fd:: (a command, a file
# descriptor of the worker) nor any other remote helper. Whoever writes the store names it.
_GIT_PROTOCOLS = [
    "-c",
    "protocol.allow=never",
    *(
        a
        for p in ("https", "http", "ssh", "git", "file")
        for a in ("-c", f"protocol.{p}.allow=always")
    ),
]

# What a slot's run ended in -> the session's queue status.
_STATUS = {
    Stop.DONE: "done",
    Stop.PAUSED: "waiting",
    Stop.DRAINED: "runnable",
}


def poll_interval(settings: Settings) -> float:
    """AGENTCTL_WORKER_POLL in seconds, from 0.05 to an hour (`inf` or `nan`, which no wait
    takes, or a word: the default)."""
    import math

    try:
        given = float(settings.environ.get("AGENTCTL_WORKER_POLL", DEFAULT_POLL_S))
    except ValueError:
        return DEFAULT_POLL_S
    return min(MAX_POLL_S, max(0.05, given)) if math.isfinite(given) else DEFAULT_POLL_S


def clone_timeout(settings: Settings) -> float:
    """AGENTCTL_WORKER_CLONE_TIMEOUT in seconds: how long a checkout of a session's
    repository may take (0.1 s to a day; a value no wait takes, or a word: the default)."""
    import math

    given_text = settings.environ.get("AGENTCTL_WORKER_CLONE_TIMEOUT", "")
    try:
        given = float(given_text) if given_text else DEFAULT_CLONE_TIMEOUT_S
    except ValueError:
        return DEFAULT_CLONE_TIMEOUT_S
    return min(86400.0, max(0.1, given)) if math.isfinite(given) else DEFAULT_CLONE_TIMEOUT_S


class CheckoutStopped(Exception):
    """A checkout gave way to the worker's drain: the session goes back to the queue as it was
    (nothing of it ran here)."""


# -- queueing (any machine) ------------------------------------------------------------------


def queue_resume(
    settings: Settings,
    prefix: str,
    *,
    answer: str | None,
    queue: str | None = None,
    priority: int | None = None,
) -> str:
    """`resume ID --detach` / `answer ID TEXT`: make a session runnable again for a worker,
    with the answer to the question it waits for (or a follow-up for a done session). Checked
    here as `resume --input` checks it; nothing runs here. The session id."""
    from agentctl.domain.lifecycle import State
    from agentctl.usecases import common, runs

    what = "answer" if answer is not None else "resume --detach"
    runs.needs_postgres(settings, what)
    with common.opened_store(settings) as store:
        session_id = common.resolve_session(store, prefix)
        common.refuse_if_moved(store, session_id)
        common.refuse_if_damaged(store, session_id)
        head = store.head(session_id)
        if answer is not None:
            if head.to_state not in (State.WAITING_FEEDBACK, State.DONE):
                raise NotWaitingError(
                    f"session {session_id} is {head.to_state.value}, not waiting for input; "
                    f"queue it without an answer: agentctl resume {session_id} --detach"
                )
            if not answer.strip():
                raise UsageError("an empty answer is no answer: give the text")
        runs.Detach(queue, priority).enqueue(
            store, session_id, (answer, head.id) if answer is not None else None
        )
    return session_id


def queue_listing(settings: Settings) -> dict[str, Any]:
    """Each queued session's place (pg_queue.Queued) by id, for `list`; {} on other stores."""
    from agentctl.store import pg_queue

    url = settings.store_url.split(":", 1)[0].lower()
    if url not in ("postgresql", "postgres"):
        return {}
    from agentctl.usecases import common

    with common.opened_store(settings) as store:
        listed: dict[str, Any] = pg_queue.on(store).with_connection(pg_queue.queued)
        return listed


# -- the worker ------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerOptions:
    queue: str = "default"
    concurrency: int = 1
    queue_limit: int | None = None  # the queue's global cap, set in the database
    rate: float | None = None  # requests per second to this worker's model server, shared
    scratch: Path | None = None  # where sessions' folders go
    accept_any: bool = False  # run sessions that ask for more than the sandboxed tools
    clone_timeout: float | None = None  # seconds; None: AGENTCTL_WORKER_CLONE_TIMEOUT or 600


class Worker:
    """One `agentctl worker` process: claims, runs, releases; `stop()` drains it."""

    def __init__(
        self, settings: Settings, options: WorkerOptions, say: Callable[[str], None]
    ) -> None:
        from agentctl.store import open_store, pg_queue
        from agentctl.store.lease import host_name
        from agentctl.usecases import runs

        runs.needs_postgres(settings, "agentctl worker")
        if options.concurrency < 1:
            raise UsageError("--concurrency must be 1 or more")
        self.settings = settings
        self.options = options
        self._say = say
        self._store: PostgresStore = pg_queue.on(open_store(settings.store_url, create=True))
        self._lock = threading.Lock()  # one transaction at a time on the dispatcher's connection
        self._draining = threading.Event()
        self._wake = threading.Event()
        self._slots = threading.Semaphore(options.concurrency)
        self._running: dict[str, threading.Thread] = {}
        self._name = f"{host_name()}:{os.getpid()}"
        self._poll = poll_interval(settings)
        self._clone_timeout = options.clone_timeout or clone_timeout(settings)
        self._capped = False
        self._limit_read_at = 0.0  # when to read again whether the queue is capped
        self.claimed = 0
        self.scratch = options.scratch or Path(
            settings.environ.get("AGENTCTL_WORKER_DIR")
            or Path(os.environ.get("TMPDIR", "/tmp")) / f"agentctl-work-{os.getuid()}"
        )
        if options.queue_limit is not None:
            limit = options.queue_limit
            self._db(lambda c: pg_queue.set_limit(c, options.queue, limit))
        if options.rate is not None:
            from agentctl.usecases import wiring

            server = wiring.server_key(settings, settings.model or "")
            rate = options.rate
            self._db(lambda c: pg_queue.set_rate(c, server, rate))

    def _db(self, work: Callable[[psycopg.Connection[Any]], Any]) -> Any:
        with self._lock:
            return self._store.with_connection(work)

    def stop(self) -> None:
        """Drain: no new claims; every slot stops after its current step."""
        self._draining.set()
        self._wake.set()

    def run(self) -> int:
        """Claim and run until stopped; then wait for the slots to give their sessions back.
        The number of sessions claimed."""
        from agentctl.llm.openai_chat import preload_client

        # The model client's import (~1 s) before the first claim, not in its latency.
        threading.Thread(target=preload_client, name="preload", daemon=True).start()
        if self.settings.environ.get("AGENTCTL_WORKER_LISTEN", "1") != "0":  # 0: poll only
            listener = threading.Thread(target=self._listen, name="queue-listen", daemon=True)
            listener.start()
        self._say(
            f"worker {self._name}: queue {self.options.queue}, "
            f"{self.options.concurrency} slot(s), store {self._store.shown}"
        )
        try:
            while not self._draining.is_set():
                if not self._slots.acquire(timeout=self._poll):
                    continue
                claim = None
                self._wake.clear()  # before the claim: a NOTIFY from here on is not missed
                try:
                    claim, lease, expiry = self._claim()
                except StoreError as exc:  # the database went away: wait, and try again
                    self._say(f"worker: {exc.message}; trying again in {self._poll:g} s")
                    self._draining.wait(self._poll)
                    continue
                finally:
                    if claim is None:
                        self._slots.release()
                if claim is not None:
                    self._start(claim, lease)
                    continue
                self._idle(expiry)
        finally:
            for thread in list(self._running.values()):
                thread.join()
            self._store.close()
        self._say(f"worker {self._name}: stopped ({self.claimed} claimed)")
        return self.claimed

    def _claim(self) -> tuple[Claim | None, Any, float | None]:
        """One claim: the session and its lease, or None, and when the first lease of a
        running session of the queue expires. Whether the queue is capped is read again
        every LIMIT_READ_S: one statement per claim otherwise."""
        import time

        from agentctl.store import pg_queue
        from agentctl.store.lease import Lease

        queue = self.options.queue
        if time.monotonic() >= self._limit_read_at:
            self._capped = self._db(lambda c: pg_queue.queue_limit(c, queue)) is not None
            self._limit_read_at = time.monotonic() + LIMIT_READ_S
        lease = Lease.mine(secrets.token_hex(8))
        capped = self._capped
        found, expiry = self._db(lambda c: pg_queue.claim(c, queue, lease, self._name, capped))
        return found, lease, expiry

    def _idle(self, expiry: float | None) -> None:
        """Wait for a NOTIFY, the poll, or the expiry of another worker's lease."""
        wait = self._poll if expiry is None else min(self._poll, expiry + 0.05)
        self._wake.wait(wait)

    def _listen(self) -> None:
        """LISTEN on a connection of its own; every NOTIFY for our queue wakes the dispatcher.
        When the connection fails, the poll carries on alone (and we try again later)."""
        import psycopg

        from agentctl.store import pg_queue
        from agentctl.store.pg_connection import connection_options

        dsn, options = connection_options(self.settings.store_url)
        while not self._draining.is_set():
            try:
                with psycopg.connect(dsn, **options) as conn:
                    conn.execute(f"LISTEN {pg_queue.CHANNEL}")
                    while not self._draining.is_set():
                        for note in conn.notifies(timeout=1.0):
                            if note.payload == self.options.queue:
                                self._wake.set()
            except psycopg.Error:
                self._draining.wait(self._poll)

    def _start(self, claim: Claim, lease: Any) -> None:
        self.claimed += 1
        thread = threading.Thread(
            target=self._slot, args=(claim, lease), name=f"slot-{claim.session_id}", daemon=True
        )
        self._running[claim.session_id] = thread
        thread.start()

    def _slot(self, claim: Claim, lease: Any) -> None:
        from agentctl.store import pg_queue

        sid = claim.session_id
        try:
            status, error, keep = self._run_claimed(claim, lease)
            finished = self._db(
                lambda c: pg_queue.finish(c, sid, lease.token, status, error, keep_input=keep)
            )
            said = status if error is None else f"{status}: {error}"
            if not finished:
                said = "lost (another worker took it over)"
            self._say(f"{sid} {said}")
        except AgentctlError as exc:
            self._say(f"{sid}: {exc.message}")
        finally:
            self._running.pop(sid, None)
            self._slots.release()
            self._wake.set()

    def _run_claimed(self, claim: Claim, lease: Any) -> tuple[str, str | None, bool]:
        """Run one claimed session until it is done, paused, failed or drained: its queue
        status, the error if any, and whether an answer it carried is still to be given."""
        from agentctl.errors import SessionBusyError
        from agentctl.usecases import common, runs

        sid = claim.session_id
        self._say(f"{sid} claimed (queue {claim.queue}, claim {claim.claims})")
        answer = None
        try:
            refused = self._asks_too_much(sid)
            if refused is not None:
                return "failed", refused, False
            answer = self._answer(claim)
            folder = self._workspace(claim)
            shared = self._follow_workspace(sid, folder)
            report = runs.resume_session(
                self.settings,
                sid,
                answer=answer,
                max_turns=None,
                ask=None,
                on_event=lambda _event: None,
                accept_settings=True,
                claimed=common.Claimed(
                    lease,
                    str(folder),
                    self._draining.is_set,
                    lambda name: SharedPace(self, name),
                    lambda snapshots: self._share(sid, snapshots, shared),
                ),
            )
        except SessionBusyError as exc:  # the claim was lost: whoever holds it goes on
            return "running", exc.message, True
        except CheckoutStopped as exc:  # drained mid-checkout: back to the queue, answer kept
            self._say(f"{sid}: {exc}")
            return "runnable", None, True
        except CheckoutError as exc:  # the session did not start: its answer is still to give
            return "failed", exc.message, True
        except AgentctlError as exc:
            return "failed", exc.message, False
        except Exception as exc:  # a bug must not take the worker down with it
            return "failed", f"{type(exc).__name__}: {exc}", False
        status = _STATUS.get(report.stop, "failed")
        error = None
        if status == "failed":
            error = report.session.task.last_error or f"stopped ({report.stop.value})"
        keep = status == "runnable" and answer is not None and not self._taken(claim)
        return status, error, keep

    def _asks_too_much(self, session_id: str) -> str | None:
        """Why this worker does not run the session, or None. Whoever can write the store
        queues work here, so by default a worker runs only what stays in its sandbox: no MCP
        servers of the task's own (commands it would start), no secrets handed to commands
        (pass_env), no commands without the sandbox or with the network. `worker
        --accept-any-settings` lifts that."""
        if self.options.accept_any:
            return None
        spec = self._db(lambda _c: self._store.info(session_id)).spec
        asks = [
            what
            for what, asked in (
                ("MCP servers of its own", bool(spec.mcp_servers)),
                ("pass_env", bool(spec.pass_env)),
                ("no sandbox", spec.sandbox == "off"),
                ("the network", bool(spec.network)),
            )
            if asked
        ]
        if not asks:
            return None
        return (
            f"it asks for {', '.join(asks)}, which this worker does not give a queued session "
            "(start a worker with --accept-any-settings to run it)"
        )

    def _answer(self, claim: Claim) -> str | None:
        """The answer the claim carries, while the session still waits where it was answered:
        not once it was taken (a worker that committed it and died before saying so), nor
        when the head moved meanwhile (a rollback put another question in its place): an
        answer is given once, and only to the question it was given for."""
        if claim.input is None or claim.input_for is None:
            return None
        head = self._db(lambda _c: self._store.head(claim.session_id)).id
        if head != claim.input_for:
            if not self._taken(claim):
                self._say(
                    f"{claim.session_id}: the answer given at checkpoint {claim.input_for} is "
                    f"not for where it is now (checkpoint {head}): not given"
                )
            return None
        return claim.input

    def _taken(self, claim: Claim) -> bool:
        from agentctl.domain.lifecycle import CheckpointKind

        assert claim.input_for is not None
        kinds = (CheckpointKind.INPUT_RECEIVED.value, CheckpointKind.FOLLOW_UP.value)
        history = self._db(lambda _c: self._store.history(claim.session_id))
        return any(c.id > claim.input_for and c.kind in kinds for c in history)

    def _follow_workspace(self, session_id: str, folder: Path) -> set[str]:
        """Make this worker's folder of the session what the session's head says it is: take
        in the trees other workers kept in the database, then restore the head's tree (the
        session ran elsewhere since, or was rolled back). The trees kept there."""
        from agentctl.store import pg_queue
        from agentctl.usecases import wiring

        known = self._db(lambda c: pg_queue.known_trees(c, session_id))
        snapshots = wiring.snapshots(self.settings, str(folder), lambda _event: None)
        if snapshots is None:
            return set(known)
        missing = [t for t in known if not snapshots.has(t)]
        if missing:
            packs = self._db(lambda c: pg_queue.tree_packs(c, session_id, missing))
            for tree, pack, modes in packs:
                snapshots.unpack(tree, pack, modes)
        head = self._db(lambda _c: self._store.head(session_id)).task.workspace_tree
        if head is not None and snapshots.has(head):
            current = snapshots.capture().tree
            if current != head:
                left = snapshots.restore(current, head)
                if left:
                    self._say(f"{session_id}: left as they are: {', '.join(left[:5])}")
        return set(known)

    def _share(self, session_id: str, snapshots: Any, known: set[str]) -> None:
        """Every tree the run captures goes to the database too (only the objects the trees
        kept there before lack), so the session's next worker, and diff from anywhere,
        have it."""
        from agentctl.store import pg_queue

        def keep(tree: str) -> None:
            if tree in known:
                return
            pack, modes = snapshots.pack(tree, since=sorted(known))
            self._db(lambda c: pg_queue.keep_tree(c, session_id, tree, pack, modes))
            known.add(tree)

        snapshots.on_capture = keep

    def _workspace(self, claim: Claim) -> Path:
        """The session's folder on this worker: kept between its runs here; a git source is
        cloned into it (at its ref) the first time, within the clone timeout (CheckoutError),
        or until the worker drains (CheckoutStopped)."""
        import time

        sid = claim.session_id
        if sid in ("", ".", "..") or Path(sid).name != sid:  # whoever writes the store names it
            raise UsageError(f"session id {sid!r} is not a folder name: not run here")
        repo, ref = claim.source.repo, claim.source.ref
        for what in (repo, ref):
            if what is not None and (what.startswith("-") or not what.strip()):
                raise UsageError(f"cannot check out {what!r}: not a repository or ref")
        folder = self.scratch / sid
        self.scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
        if folder.exists():
            return folder
        if repo is None:
            folder.mkdir(mode=0o700)
            return folder
        # Cloned beside it and renamed into place: a worker killed mid-clone leaves no folder
        # the next claim here would take for a checkout.
        import shutil

        cloning = self.scratch / f".{sid}.cloning"
        shutil.rmtree(cloning, ignore_errors=True)
        cloning.mkdir(mode=0o700)
        where = f"{repo}{'@' + ref if ref else ''}"
        deadline = time.monotonic() + self._clone_timeout
        try:
            failed = _git(self, deadline, "clone", "--quiet", "--", repo, str(cloning))
            if failed is None and ref:
                failed = _git(self, deadline, "-C", str(cloning), "checkout", "--quiet", ref, "--")
        except BaseException:
            shutil.rmtree(cloning, ignore_errors=True)
            raise
        if failed is not None:
            shutil.rmtree(cloning, ignore_errors=True)
            raise CheckoutError(f"cannot check out {where}: {failed}")
        cloning.rename(folder)
        return folder


class CheckoutError(UsageError):
    """A session's repository could not be checked out (git failed, or took too long)."""


def _git(worker: Worker, deadline: float, *args: str) -> str | None:
    """Run one git command for a checkout: None when it succeeded, else why not (one line).
    Git (and its transport helpers) run in a process group of their own, killed whole when
    the deadline passes or the worker drains; never a prompt, never the worker's terminal
    (fd::0 would read it)."""
    import contextlib
    import signal
    import subprocess
    import time

    git = ["git", "-c", "advice.detachedHead=false", *_GIT_PROTOCOLS]
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}
    proc = subprocess.Popen(
        [*git, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    stopped, err = None, ""
    try:
        while True:
            try:
                _, err = proc.communicate(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                if worker._draining.is_set():
                    stopped = "the worker stopped (drain) while git was checking it out"
                elif time.monotonic() >= deadline:
                    stopped = (
                        f"git took longer than {worker._clone_timeout:g} s "
                        "(AGENTCTL_WORKER_CLONE_TIMEOUT)"
                    )
                if stopped is not None:
                    break
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    if stopped is not None:
        if worker._draining.is_set():
            raise CheckoutStopped(stopped)
        return stopped
    if proc.returncode != 0:
        return " ".join((err or "").split())[-200:] or f"git exited with {proc.returncode}"
    return None


class SharedPace:
    """The pace of one model server kept in the database for every worker (llm.Pace): a
    request waits for the next free slot of its server (pg_queue.next_slot), and a 429 holds
    the server back for every worker for as long as it asked (or 1 s)."""

    def __init__(self, worker: Worker, server: str) -> None:
        self._worker = worker
        self._server = server

    def before_request(self) -> None:
        import time

        from agentctl.store import pg_queue

        wait = self._worker._db(lambda c: pg_queue.next_slot(c, self._server))
        if wait > 0:
            time.sleep(wait)

    def retrying(self, status: int | None, wait: float) -> None:
        from agentctl.store import pg_queue

        if status == 429:
            self._worker._db(lambda c: pg_queue.slow_down(c, self._server, max(1.0, wait)))
            self._worker._say(f"{self._server} answered 429: slowed down for every worker")


def run_worker(settings: Settings, options: WorkerOptions, say: Callable[[str], None]) -> int:
    """`agentctl worker`: until SIGTERM, SIGINT or SIGHUP, which drain it. The number of
    sessions it claimed."""
    import signal

    worker = Worker(settings, options, say)

    def drain(signum: int, _frame: object) -> None:
        say(f"worker: {signal.Signals(signum).name}: finishing the steps under way, then stopping")
        worker.stop()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, drain)
    return worker.run()
