"""Use cases for the pile of sessions: names and tags, finding, forking, deleting, usage.

Nothing here deletes a session the user did not name: `rm` takes ids (and asks on a terminal),
`prune` lists what its filters select, with sizes, before it deletes, and `--dry-run` only lists.
A session running elsewhere (a live lease) is never deleted.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from agentctl.domain.records import Doomed, SharedSnapshots, UsageRow
from agentctl.errors import SessionBusyError, UsageError
from agentctl.llm.catalogue import PRICES_TAKEN as PRICES_TAKEN
from agentctl.usecases.common import (
    opened_store,
    refuse_taken_name,
    resolve_session,
    valid_name,
    valid_tags,
)
from agentctl.usecases.wiring import price as wiring_price

if TYPE_CHECKING:
    from agentctl.config import Settings
    from agentctl.domain.records import RunEvent, RunReport, SearchHit
    from agentctl.domain.session import SessionInfo
    from agentctl.store.base import SessionSummary, Store
    from agentctl.workspace.snapshots import Snapshots

_AGE = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str, flag: str, now: datetime | None = None) -> datetime:
    """`2d`, `12h`, `30m`, `1w` ago, or a date (`2026-11-01`) or time in ISO form."""
    now = now or datetime.now(UTC)
    found = _AGE.fullmatch(text.strip())
    if found:
        return now - timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"{flag} takes an age such as 2d, 12h or 30m, or a date such as 2026-11-01; "
            f"not {text!r}"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _time(stamp: str) -> datetime | None:
    from agentctl.store.overview import parse_stamp

    return parse_stamp(stamp)


@dataclass(frozen=True)
class Filters:
    state: str | None = None
    since: str | None = None
    until: str | None = None
    tags: tuple[str, ...] = ()
    workspace: Path | None = None
    limit: int | None = 50  # None: all

    def keep(self) -> Callable[[SessionSummary], bool] | None:
        """Whether a session passes the filters (None: every session does)."""
        since = parse_when(self.since, "--since") if self.since else None
        until = parse_when(self.until, "--until") if self.until else None
        where = str(self.workspace.resolve()) if self.workspace else None
        if (self.state, since, until, self.tags, where) == (None, None, None, (), None):
            return None

        def keep(s: SessionSummary) -> bool:
            updated = _time(s.updated_at)
            if self.state is not None and s.state != self.state:
                return False
            if since is not None and (updated is None or updated < since):
                return False
            if until is not None and (updated is None or updated > until):
                return False
            if any(tag not in s.tags for tag in self.tags):
                return False
            return where is None or s.workspace == where

        return keep

    def select(self, sessions: Iterable[SessionSummary]) -> list[SessionSummary]:
        keep = self.keep()
        out = [s for s in sessions if keep is None or keep(s)]
        return out if self.limit is None else out[: self.limit]


def list_sessions(settings: Settings, filters: Filters) -> list[SessionSummary]:
    from agentctl.domain.lifecycle import State
    from agentctl.store.base import MOVED

    states = [s.value for s in State if s is not State.IDLE] + [MOVED]
    if filters.state is not None and filters.state not in states:
        raise UsageError(
            f"--state (--status) must be one of {', '.join(states)}, not {filters.state!r}"
        )
    with opened_store(settings) as store:  # only the rows it shows, where the store can
        return store.select_sessions(filters.keep(), filters.limit)


def complete(settings: Settings, incomplete: str) -> list[str]:
    """Session ids and names that start with `incomplete` (shell completion: quietly nothing
    when the store cannot be read)."""
    from agentctl.errors import AgentctlError

    try:
        with opened_store(settings) as store:
            found = store.list_sessions()
    except AgentctlError:
        return []
    words = [s.id for s in found] + [s.name for s in found if s.name]
    # A name from the store is offered only when it is one line of printable text: completion
    # lists are line-based (and the shells' own quoting comes after, in completion.py).
    return [w for w in words if w.startswith(incomplete) and w.isprintable()]


# -- names and tags ------------------------------------------------------------------------


def _summary(store: Store, session_id: str) -> SessionSummary:
    from agentctl.errors import UnknownSessionError

    summary = store.session_summary(session_id)
    if summary is None:
        raise UnknownSessionError(f"no session {session_id!r}")
    return summary


def rename(settings: Settings, prefix: str, name: str) -> tuple[str, str]:
    name = valid_name(name)
    with opened_store(settings) as store:
        session_id = resolve_session(store, prefix)
        refuse_taken_name(store, name, session_id)
        store.set_labels(session_id, name, _summary(store, session_id).tags)
    return session_id, name


def tag(settings: Settings, prefix: str, tags: list[str], remove: bool) -> tuple[str, ...]:
    valid_tags(tags)
    with opened_store(settings) as store:
        session_id = resolve_session(store, prefix)
        summary = _summary(store, session_id)
        kept = [t for t in summary.tags if not (remove and t in tags)]
        new = kept if remove else kept + [t for t in tags if t not in kept]
        store.set_labels(session_id, summary.name, tuple(new))
        return tuple(new)


# -- fork ----------------------------------------------------------------------------------


def fork(
    settings: Settings,
    prefix: str,
    at: int | None,
    name: str | None,
    workspace: Path | None = None,
) -> tuple[str, int]:
    """A new session from checkpoint `at` (default: the head) of another: its checkpoints 1 to
    `at` are copied under a new id (a copy, not a share: message ids count per session, so a
    session is one unit to move, export or delete; on SQLite only the search index's entries
    are shared), rows as they are, in one transaction
    (store.copy_session; bench/ measures it against the row-copy floor), the new session's
    facts naming where it came from; no approval is copied. Damage is copied as it is, never
    extended: the fork, like its source, is refused for writing until it is rolled back
    past it. With `workspace`, that
    checkpoint's files are written into a new folder, which becomes the fork's workspace."""
    from agentctl.errors import UnknownCheckpointError

    name = valid_name(name) if name is not None else None
    with opened_store(settings) as store:
        source = resolve_session(store, prefix)
        if name is not None:
            refuse_taken_name(store, name)
        head = store.head(source).id
        at = at or head
        if not 1 <= at <= head:
            raise UnknownCheckpointError(source, at)
        new_id = secrets.token_hex(4)
        while store.match_sessions(new_id):
            new_id = secrets.token_hex(4)
        update: dict[str, object] = {"id": new_id, "forked_from": f"{source}:{at}"}
        if workspace is not None:
            folder, origin = _materialise(settings, store, source, at, workspace)
            update["workspace"] = str(folder)
            origin.add_owner(new_id)  # its checkpoints name the original's trees: keep them
        info = store.info(source).model_copy(update=update)
        # Approvals never cross a fork, as they never cross a rollback: a yes given in the
        # source covered that call there, once; the fork asks again.
        store.copy_session(store, source, info, upto=at, keep_approvals=False)
        _carry_trust(settings, store.info(source), info)
        if name:
            store.set_labels(new_id, name, ())
    return new_id, at


def _carry_trust(settings: Settings, source: SessionInfo, copy: SessionInfo) -> None:
    """A fork is as much this user's as its source: their grant for the source (trust.py)
    covers the copy; a source from elsewhere not yet accepted leaves the fork to be accepted."""
    from agentctl.usecases import trust

    granted = trust.lookup(settings, source)
    if granted is not None:
        trust.grant(settings, copy, granted)


def _materialise(
    settings: Settings, store: Store, source: str, at: int, dest: Path
) -> tuple[Path, Snapshots]:
    import shutil

    from agentctl import faults
    from agentctl.usecases import wiring
    from agentctl.workspace.restore import tree_at

    try:
        dest = dest.resolve()
        taken = dest.exists() and (not dest.is_dir() or any(dest.iterdir()))
    except OSError as exc:  # a name too long for the file system, a folder not readable
        raise UsageError(f"--workspace {dest}: {exc.strerror or exc}") from None
    if taken:
        raise UsageError(f"--workspace {dest} must be a new or empty folder")
    recorded = store.info(source).workspace
    origin = (
        wiring.snapshots(settings, recorded, lambda _e: None, False)
        if recorded is not None
        else wiring.kept_snapshots(settings, store, source)  # a worker's session
    )
    tree = tree_at(store, source, store.get_checkpoint(source, at)) if origin else None
    if origin is None or tree is None or not origin.has(tree):
        raise UsageError(f"session {source} has no workspace snapshot at checkpoint {at}")
    target = wiring.snapshots(settings, str(dest), lambda _e: None)
    if target is None:
        raise UsageError(f"{dest} cannot hold a snapshotted workspace")
    # Written into a hidden folder beside it and renamed into place whole: a fork killed
    # midway leaves no half-written workspace in the way of a re-run.
    temporary = dest.parent / f".agentctl-fork-{secrets.token_hex(6)}"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        temporary.mkdir(mode=0o700)
        target.borrow(origin)
        target.checkout(tree, into=temporary)
        os.chmod(temporary, 0o777 & ~_umask())
        faults.hit("fork_written")
        os.rename(temporary, dest)  # an empty folder of that name is replaced
    except OSError as exc:
        raise UsageError(f"--workspace {dest}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return dest, origin


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def forks_of(store: Store, session_id: str) -> list[str]:
    """The sessions forked from this one, as `id (at N)`: from the store's index of forks."""
    return [f"{other} (at checkpoint {at or '?'})" for other, at in store.forks_of(session_id)]


# -- delete --------------------------------------------------------------------------------


def _delete(store: Store, session_id: str) -> None:
    """Delete under the session's lease: a session running elsewhere is refused, busy. A
    move's copy that has not arrived (an arrival lease: it never ran here) may go: running the
    move again writes it anew."""
    from agentctl.errors import ArrivingError, StoreError
    from agentctl.store.lease import Lease

    try:
        store.acquire_lease(session_id, Lease.mine(secrets.token_hex(8)))
    except ArrivingError:
        pass
    except StoreError:
        pass  # a damaged lease says no one is running it: the session may go
    except SessionBusyError as exc:
        raise SessionBusyError(f"{exc.message}; not deleted", hint=exc.hint) from None
    store.delete_session(session_id)


def _workspace_of(store: Store, session_id: str) -> str | None:
    """Its workspace, for collecting snapshots after it goes; None when its facts are damaged
    (such a session can still be deleted: damage is removable)."""
    from agentctl.errors import StoreError

    try:
        return store.info(session_id).workspace
    except StoreError:
        return None


def remove(settings: Settings, prefixes: list[str]) -> list[str]:
    with opened_store(settings) as store:
        ids = [resolve_session(store, p) for p in prefixes]  # all resolve before any goes
        workspaces = {_workspace_of(store, i) for i in ids}
        gone = _gone_for_good(store, ids)
        for session_id in ids:
            _delete(store, session_id)
        _reclaim(store)
        collect_snapshots(settings, store, workspaces, gone)
    return ids


def _reclaim(store: Store) -> None:
    """Give the deleted sessions' space back. A failure here is not the delete's: the sessions
    are gone (committed), their pages stay free inside the file for the next writes, and the
    next rm or prune tries again. On a nearly full disk an older store's one VACUUM (it writes
    the whole file again) failed with 'database or disk is full', exit 6, for an rm that had
    deleted: the user was told it failed, and every later rm said the same."""
    import contextlib

    from agentctl.errors import StoreError

    with contextlib.suppress(StoreError):
        store.reclaim()


def _gone_for_good(store: Store, ids: list[str]) -> set[str]:
    """Of sessions about to be deleted, those that live on nowhere: a session moved to another
    store lives on there (this store keeps only its read-only copy), with the snapshots it names."""
    from agentctl.domain.lifecycle import CheckpointKind

    return {i for i in ids if store.head(i).kind is not CheckpointKind.MOVED}


def collect_snapshots(
    settings: Settings,
    store: Store,
    workspaces: set[str | None],
    deleted: set[str],
    *,
    shared_too: bool = False,
) -> int:
    """After a delete: the workspace snapshots no session of this store names any more are
    given back. Every session of this store in that workspace counts (a fork there names the
    original's trees before it captures any), and every session that ever captured into it.
    A snapshot store that sessions of another store use (or a session moved to another store)
    is left alone: its trees may be theirs — unless `shared_too` (`prune --snapshots`): then
    only this store's sessions count, and the others lose their snapshots. Returns the bytes
    given back."""
    from agentctl.errors import AgentctlError
    from agentctl.usecases import wiring

    freed = 0
    if not any(workspaces):
        return freed  # nothing captured: the store's sessions are not read
    listed = store.list_sessions()
    here = {s.id for s in listed}
    for workspace in filter(None, workspaces):
        snapshots = wiring.snapshots(settings, workspace, lambda _e: None, create=False)
        if snapshots is None:
            continue
        owners = snapshots.owners() - deleted
        if shared_too:
            owners &= here
        elif not owners <= here:
            continue  # another store's sessions snapshot here too
        users = owners | {
            s.id for s in listed if s.workspace and _same_folder(s.workspace, workspace)
        }
        keep: set[str] = set()
        try:
            for session_id in users:
                for summary in store.history(session_id):
                    tree = store.get_checkpoint(session_id, summary.id).task.workspace_tree
                    if tree is not None:
                        keep.add(tree)
            freed += snapshots.collect(keep, owners)
        except AgentctlError:
            continue  # the sessions are deleted; their snapshots wait for the next prune
    return freed


def shared_snapshots(settings: Settings) -> list[SharedSnapshots]:
    """The snapshot stores of this store's workspaces that `rm` and `prune` leave alone, since
    sessions this store does not hold (another store's, or copies moved away) snapshot there."""
    from agentctl.usecases import wiring

    out = []
    with opened_store(settings) as store:
        listed = store.list_sessions()
        here = {s.id for s in listed}
        for workspace in sorted({s.workspace for s in listed if s.workspace}):
            snapshots = wiring.snapshots(settings, workspace, lambda _e: None, create=False)
            others = snapshots.owners() - here if snapshots is not None else set()
            if snapshots is not None and others:
                out.append(SharedSnapshots(workspace, tuple(sorted(others)), snapshots.size()))
    return out


def prune_shared_snapshots(settings: Settings, shared: list[SharedSnapshots]) -> int:
    """Give back, in those snapshot stores, every snapshot no session of this store names."""
    with opened_store(settings) as store:
        workspaces: set[str | None] = {s.workspace for s in shared}
        return collect_snapshots(settings, store, workspaces, set(), shared_too=True)


def _same_folder(one: str, other: str) -> bool:
    try:
        return Path(one).resolve() == Path(other).resolve()
    except OSError:
        return one == other


def prune_candidates(
    settings: Settings, older_than: str, state: str | None, keep_last: int
) -> list[Doomed]:
    """The store picks the sessions older than the cutoff (by its index, where it has one),
    newest first; the most recent `keep_last` of all sessions are kept whatever their age."""
    cutoff = parse_when(older_than, "--older-than")
    with opened_store(settings) as store:
        kept = {s.id for s in store.select_sessions(None, keep_last)} if keep_last else set()
        chosen = [
            s
            for s in store.sessions_before(cutoff)
            if s.id not in kept and (state is None or s.state == state)
        ]
        sizes = store.session_sizes([s.id for s in chosen])  # summed by the store
        return [Doomed(s, sizes.get(s.id, 0)) for s in chosen]


def prune(settings: Settings, doomed: list[Doomed]) -> None:
    with opened_store(settings) as store:
        workspaces = {d.summary.workspace for d in doomed}
        gone = _gone_for_good(store, [d.summary.id for d in doomed])
        for d in doomed:
            _delete(store, d.summary.id)
        _reclaim(store)
        collect_snapshots(settings, store, workspaces, gone)


# -- usage ---------------------------------------------------------------------------------


def usage(settings: Settings, prefix: str | None, since: str | None, by: str) -> list[UsageRow]:
    """The sums are the store's (grouped by what is shown and the model, in SQL where it can);
    each group is priced here from its token sums."""
    from agentctl.store.overview import usage_fact, usage_totals_of

    if by not in ("model", "day", "session"):
        raise UsageError(f"--by must be model, day or session, not {by!r}")
    cutoff = parse_when(since, "--since") if since else None
    with opened_store(settings) as store:
        if prefix:
            totals = usage_totals_of(
                [usage_fact(store, resolve_session(store, prefix))], by, cutoff
            )
        else:
            totals = store.usage_totals(by, cutoff)
    groups: dict[str, list[int]] = {}
    priced: dict[str, float | None] = {}
    prices: dict[str, tuple[float, float] | None] = {}
    for total in totals:
        key, model = total.key, total.model
        row = groups.setdefault(key, [0, 0, 0, 0])
        row[0] += total.sessions
        row[1] += total.calls
        row[2] += total.prompt_tokens
        row[3] += total.completion_tokens
        if model not in prices:
            prices[model] = wiring_price(settings, model)
        price = prices[model]
        cost = None
        if price is not None:
            cost = (total.prompt_tokens * price[0] + total.completion_tokens * price[1]) / 1e6
        if key not in priced:
            priced[key] = cost
        elif priced[key] is not None and cost is not None:
            priced[key] = priced[key] + cost  # type: ignore[operator]
        else:
            priced[key] = None
    return [UsageRow(k, v[0], v[1], v[2], v[3], priced[k]) for k, v in sorted(groups.items())]


# -- search --------------------------------------------------------------------------------


def search(settings: Settings, text: str, limit: int) -> list[SearchHit]:
    if not text.strip():
        raise UsageError("search needs some text to look for")
    with opened_store(settings) as store:
        return store.search(text.strip(), limit)


# -- watch ---------------------------------------------------------------------------------


def watch(settings: Settings, prefix: str, on_event: Callable[[RunEvent], None]) -> RunReport:
    """Report every checkpoint after the current head as it is committed, until the session is
    done or waiting for input, or nothing runs it any more (Stop.NOT_RUNNING: common.follow).
    One O(1) head read per poll, and no lease: it writes nothing."""
    from agentctl.domain.records import Notice
    from agentctl.usecases.common import follow

    with opened_store(settings) as store:
        session_id = resolve_session(store, prefix)
        seen = store.head(session_id)
        on_event(
            Notice(
                f"watching session {session_id} from checkpoint {seen.id}",
                session_id,
                elsewhere=True,
            )
        )
        return follow(store, session_id, on_event)
