"""Sessions that move between stores: export, import, move.

The export format is JSON lines, versioned: a header line (format, version, the agentctl that
wrote it, the session's facts), then one line per checkpoint in order, each with the messages
it added — the JSON-lines store's own shape, so `jq` reads both. Message ids count within the
session on every backend (store/base.plan_append), so a session's checkpoints are replayed into
another store through the ordinary append and come out with the same numbers, message ids and
tips; every replayed checkpoint is compared with the exported one, and the imported session is
verified. Nothing secret is in a session (no API key; a moved session names its new store with
the password masked), so nothing secret is exported.

Import is idempotent: a session already there with the same history (or the start of it, from
an import that was cut short) is completed, not duplicated; a different session with the same
id is refused unless `--new-id`. A move copies, verifies, then marks the source with a `moved`
checkpoint, after which the source refuses `resume` and `rollback`, naming the new store.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from agentctl import __version__
from agentctl.domain.checkpoints import MovedDetail
from agentctl.domain.lifecycle import CheckpointKind
from agentctl.domain.records import ImportReport, MoveReport
from agentctl.errors import StoreError, UnknownSessionError, UsageError

if TYPE_CHECKING:
    from agentctl.config import Settings
    from agentctl.domain.session import Checkpoint, Message, SessionInfo
    from agentctl.store.base import Store
    from agentctl.store.lease import Lease

FORMAT = "agentctl-session"
FORMAT_VERSION = 1
MAX_LINE = 64 << 20  # a line is one checkpoint and its messages: bounded like a store read
MAX_EXPORT = 1 << 30  # a whole export: it is held in memory to be written in one transaction


@dataclass(frozen=True)
class Exported:
    """A session as an export holds it: its facts and its checkpoints with the messages each
    added, as (id, parent, message)."""

    info: SessionInfo
    checkpoints: list[tuple[Checkpoint, list[tuple[int, int | None, Message]]]]
    name: str | None = None  # the user's labels (agentctl rename, tag): not history, but
    tags: tuple[str, ...] = ()  # the session's all the same, so they travel with it


# -- export -----------------------------------------------------------------------------------


def export_lines(store: Store, session_id: str) -> Iterator[str]:
    """The export of one session, line by line (each a JSON object, no newline), made as the
    checkpoints are read (store/copying.stream_session) where the store reads id ranges: the
    first line is out before the session is read, and a page of checkpoints is held at a
    time."""
    from agentctl.store.codec import to_payload
    from agentctl.store.copying import CopiedCheckpoint, read_session, stream_session
    from agentctl.store.core import capabilities

    info = store.info(session_id)
    ranged = capabilities(store)["ranged_reads"]  # else read whole, once, as it always was
    if ranged:
        count = store.head(session_id).id
        copied: Iterator[CopiedCheckpoint] = stream_session(store, session_id, count)
    else:
        whole = read_session(store, session_id)
        count, copied = len(whole), iter(whole)
    labelled = store.session_summary(session_id)
    header: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "agentctl": __version__,
        "session": to_payload(info),
        # How many checkpoint lines follow: an export cut short (damage met midway, after
        # standard output had the lines before it) is refused by import, not taken as whole.
        "checkpoints": count,
    }
    if labelled is not None and (labelled.name or labelled.tags):
        header["labels"] = {"name": labelled.name, "tags": list(labelled.tags)}
    yield json.dumps(header, separators=(",", ":"))
    for checkpoint, messages in copied:
        added = [
            {"id": number, "parent": parent, "message": to_payload(message)}
            for number, parent, message in messages
        ]
        line = {"checkpoint": to_payload(checkpoint), "messages": added}
        yield json.dumps(line, separators=(",", ":"))


# -- import -----------------------------------------------------------------------------------


def stream_lines(stream: BinaryIO, source: str) -> Iterator[str]:
    """An export's lines as they are read, each checked before the next is read: at most
    MAX_LINE bytes a line and MAX_EXPORT in all, UTF-8. `/dev/zero` or a file that is not an
    export is refused after one bounded read, never read whole first."""
    total = 0
    number = 0
    while True:
        number += 1
        raw = stream.readline(MAX_LINE + 1)
        if not raw:
            return
        total += len(raw)
        if len(raw.rstrip(b"\r\n")) > MAX_LINE:
            raise UsageError(
                f"{source} line {number} is longer than {MAX_LINE:,} bytes: not an agentctl "
                "export; nothing was imported"
            )
        if total > MAX_EXPORT:
            raise UsageError(
                f"{source} is larger than {MAX_EXPORT:,} bytes, more than an export of one "
                "session holds; nothing was imported"
            )
        try:
            yield raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise UsageError(
                f"{source} line {number} is not UTF-8 text: not an agentctl export; nothing "
                "was imported"
            ) from None


def read_export(lines: Iterable[str], source: str) -> Exported:
    """Parse and validate an export; UsageError naming the line for anything else."""
    from agentctl.domain.session import Checkpoint, Message
    from agentctl.store.codec import decode

    info: SessionInfo | None = None
    labels: tuple[str | None, tuple[str, ...]] = (None, ())
    count: int | None = None  # the checkpoints the header says follow (older exports: unsaid)
    checkpoints: list[tuple[Checkpoint, list[tuple[int, int | None, Message]]]] = []
    for number, line in enumerate(lines, 1):
        where = f"{source} line {number}"
        if len(line) > MAX_LINE:
            raise UsageError(f"{where} is longer than {MAX_LINE} bytes: not an agentctl export")
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict):
                raise ValueError("not a JSON object")
            if info is None:
                info = _header(entry, where)
                labels = _labels(entry, where)
                count = entry.get("checkpoints")
                if count is not None and (type(count) is not int or count < 1):
                    raise UsageError(f"{where}: the header's checkpoint count is not a count")
                continue
            checkpoint = decode(Checkpoint, entry["checkpoint"], where=where)
            messages = [
                (int(m["id"]), m["parent"], decode(Message, m["message"], where=where))
                for m in entry["messages"]
            ]
        except UsageError:
            raise
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            text = getattr(exc, "message", None) or str(exc)
            raise UsageError(f"{where} is not part of an agentctl export: {text[:200]}") from None
        if checkpoint.id != len(checkpoints) + 1:
            raise UsageError(f"{where}: checkpoint {checkpoint.id} where {len(checkpoints) + 1}")
        checkpoints.append((checkpoint, messages))
    if info is None or not checkpoints:
        raise UsageError(f"{source} holds no agentctl session")
    if count is not None and len(checkpoints) < count:
        raise UsageError(
            f"{source} holds {len(checkpoints)} of the {count} checkpoints its header names: "
            "an export cut short (did the export fail?); nothing was imported"
        )
    if count is not None and len(checkpoints) > count:
        raise UsageError(
            f"{source} holds {len(checkpoints)} checkpoints, more than the {count} its header "
            "names: lines were added after the export; nothing was imported"
        )
    return Exported(info, checkpoints, *labels)


def _labels(entry: dict[str, Any], where: str) -> tuple[str | None, tuple[str, ...]]:
    """The header's name and tags, held to what `rename` and `tag` accept."""
    from agentctl.usecases.common import valid_name, valid_tags

    labels = entry.get("labels")
    if labels is None:
        return None, ()
    name = labels.get("name") if isinstance(labels, dict) else None
    tags = labels.get("tags", []) if isinstance(labels, dict) else None
    if (
        not isinstance(labels, dict)
        or not (name is None or isinstance(name, str))
        or not isinstance(tags, list)
        or not all(isinstance(t, str) for t in tags)
    ):
        raise UsageError(f"{where}: the labels are not a name and a list of tags")
    try:
        return (valid_name(name) if name is not None else None), valid_tags(tags)
    except UsageError as exc:
        raise UsageError(f"{where}: {exc.message}") from None


def _header(entry: dict[str, Any], where: str) -> SessionInfo:
    from agentctl.domain.session import SessionInfo
    from agentctl.store.codec import decode

    if entry.get("format") != FORMAT:
        raise UsageError(f"{where}: not an agentctl session export (no {FORMAT!r} header)")
    version = entry.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise UsageError(
            f"{where}: export format version {version!r} is newer than this agentctl "
            f"({FORMAT_VERSION}); upgrade agentctl to import it"
        )
    import re

    from agentctl.domain.session import SESSION_ID

    session = entry.get("session")
    if not isinstance(session, dict):
        raise UsageError(f"{where}: no session in the header; nothing was imported")
    sid = session.get("id")
    if not isinstance(sid, str) or not re.fullmatch(SESSION_ID, sid):
        raise UsageError(
            f"{where}: the session id {sid!r} is not one agentctl makes (letters, digits, - "
            "and _); nothing was imported"
        )
    return decode(SessionInfo, session, where=where)


def import_session(
    store: Store, exported: Exported, *, new_id: str | None = None, lease: Lease | None = None
) -> ImportReport:
    """Replay an export into `store` (idempotent); verify what was imported. A new session is
    written whole (store.create_whole): an import killed midway leaves nothing behind. What
    is already there (a session that went on here, a move's copy) is completed by appends,
    under `lease` when given (a move's arrival lease)."""
    from agentctl.usecases.verify import verify_session

    info = exported.info
    if new_id is not None:
        info = info.model_copy(update={"id": new_id})
    have = _existing(store, info, exported)
    from agentctl.store import writes
    from agentctl.store.copying import drafts_of

    drafts = drafts_of(exported.checkpoints)
    expected = [checkpoint for checkpoint, _messages in exported.checkpoints]
    if have == 0:
        written = store.create_whole(info, drafts, lease)
        _compare(info.id, expected, written)
        name = _free_name(store, info.id, exported.name)
        if name or exported.tags:
            store.set_labels(info.id, name, exported.tags)
    else:
        if lease is not None:
            store.acquire_lease(info.id, lease)
        writes.replay(store, info.id, drafts, expected, have)
    report = verify_session(store, info.id, store.history(info.id))
    if report.problems:
        raise StoreError(
            f"session {info.id} imported, but verify finds: {report.problems[0]}",
            hint=f"agentctl verify {info.id}",
        )
    from agentctl.usecases.trust import describe

    total = len(exported.checkpoints)
    return ImportReport(
        info.id, total, total - have, exported.info.id, describe(store.info(info.id))
    )


def _compare(session_id: str, expected: list[Checkpoint], written: list[Checkpoint]) -> None:
    for want, got in zip(expected, written, strict=True):
        if got != want:
            raise StoreError(
                f"session {session_id}: checkpoint {want.id} came out different on import "
                "(the export is inconsistent)",
                hint=f"agentctl verify {session_id}",
            )


def _free_name(store: Store, session_id: str, name: str | None) -> str | None:
    """The exported name, unless this store gives it to another session already (or it is
    the start of an id): names name one session, and the import keeps the id."""
    from agentctl.usecases.common import refuse_taken_name

    if name is None:
        return None
    try:
        refuse_taken_name(store, name, session_id)
    except UsageError:
        return None
    return name


def _existing(store: Store, info: SessionInfo, exported: Exported) -> int:
    """How many of the export's checkpoints the store already has (0: a new session)."""
    try:
        stored_info = store.info(info.id)
    except UnknownSessionError:
        return 0
    history = store.history(info.id)
    if (
        history
        and history[-1].kind == CheckpointKind.MOVED
        and _continues(store, info, history[:-1], exported)
    ):
        # Coming back: what is here is the copy left when the session moved away, and all
        # of it but that mark is the start of what returns. The copy gives way to it.
        store.delete_session(info.id)
        return 0
    # The same session: the same facts, and one history the start of the other (an import cut
    # short, or a session that went on here after an earlier import or move).
    shared = min(len(history), len(exported.checkpoints))
    # The workspace is the importing user's choice, not part of what the session is: the one
    # already here keeps its own.
    same = stored_info == info.model_copy(update={"workspace": stored_info.workspace}) and all(
        store.get_checkpoint(info.id, n) == exported.checkpoints[n - 1][0]
        for n in range(1, shared + 1)
    )
    if not same:
        raise UsageError(
            f"this store already has a different session {info.id}; nothing was imported",
            hint="import it beside that one with --new-id",
        )
    return shared


def _continues(store: Store, info: SessionInfo, history: list[Any], exported: Exported) -> bool:
    return (
        store.info(info.id) == info
        and len(history) <= len(exported.checkpoints)
        and all(
            store.get_checkpoint(info.id, c.id) == exported.checkpoints[c.id - 1][0]
            for c in history
        )
    )


# -- use cases --------------------------------------------------------------------------------


def export_session(
    settings: Settings,
    prefix: str,
    output: Path | None = None,
    write: Callable[[str], None] | None = None,
) -> tuple[str, int]:
    """Export a session: its lines written to `output` (private, like the store; whole or
    not at all) when given, else handed to `write` a chunk of lines at a time as they are
    made. Returns the session's id and how many checkpoints were exported. A checkpoint that
    does not read stops the export there (StoreError, exit 6): `output` is then left as it
    was; what `write` was given stays given (the lines before the damage), and only the exit
    code says the export stopped short."""
    from agentctl.atomic import write_private
    from agentctl.usecases.common import opened_store, resolve_session

    if output is not None and not output.parent.is_dir():  # write_private would make it
        raise UsageError(f"cannot write {output}: folder {output.parent} does not exist")
    counted = [0]

    def chunks(lines: Iterator[str]) -> Iterator[str]:
        """The lines, newline-ended, gathered into pieces of about CHUNK characters."""
        piece: list[str] = []
        size = 0
        for line in lines:
            counted[0] += 1
            piece.append(line + "\n")
            size += len(line) + 1
            if size >= CHUNK:
                yield "".join(piece)
                piece, size = [], 0
        if piece:
            yield "".join(piece)

    with opened_store(settings) as store:
        session_id = resolve_session(store, prefix)
        made = chunks(export_lines(store, session_id))
        if output is not None:
            try:
                write_private(output, (text.encode() for text in made))
            except OSError as exc:
                raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
        elif write is not None:
            for text in made:
                write(text)
        else:
            for _text in made:
                pass
    return session_id, counted[0] - 1


CHUNK = 1 << 16  # characters of an export written at a time


def import_file(
    settings: Settings, path: str, *, new_id: bool, workspace: Path | None = None
) -> ImportReport:
    """Import a file: the session works in the folder the importing user chooses (--workspace,
    else the current one; never the home folder or `/`), never the one the file names, and
    `resume` asks before its settings count (trust.py)."""
    import secrets

    from agentctl.usecases import wiring
    from agentctl.usecases.common import opened_store

    root = wiring.session_workspace(
        settings,
        str(workspace) if workspace else None,
        own=False,
        hint="agentctl import FILE --workspace DIR (a project folder)",
    )

    source = "standard input" if path == "-" else path
    try:
        if path == "-":
            import sys

            exported = read_export(stream_lines(sys.stdin.buffer, source), source)
        else:
            with open(path, "rb") as stream:
                exported = read_export(stream_lines(stream, source), source)
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror or exc}") from None
    exported = replace(exported, info=exported.info.model_copy(update={"workspace": root}))
    with opened_store(settings, create=True) as store:
        fresh = None
        if new_id:
            while fresh is None or store.match_sessions(fresh):
                fresh = secrets.token_hex(4)
        report = import_session(store, exported, new_id=fresh)
        _no_grant_for_what_came(settings, store, report)
        return report


def _no_grant_for_what_came(settings: Settings, store: Store, report: ImportReport) -> None:
    """What an import brings grants nothing (trust.py). A grant of this user's covers the
    imported session only when its settings are exactly the ones they took (a copy of their own
    session, or one that went on elsewhere); even then the approvals it brings count only from
    its new head on, whatever store the grant was given in."""
    from agentctl.usecases import trust

    if report.added == 0:
        return
    info = store.info(report.session_id)
    granted = trust.lookup(settings, info)
    if granted is not None:
        head = store.head(report.session_id)
        if head.task.auto_approve:
            # A "--yes" that arrived with the file is its own word, not this user's: the grant
            # goes, so resume asks again, and accepting resets the session to asking.
            trust.revoke(settings, info.id)
            return
        since = max(granted.since, trust.counting_from(head.task, head.id))
        trust.grant(settings, info, trust.Trust(own=granted.own, since=since))


def copy_into(
    target: Store, source: Store, session_id: str, upto: int, lease: Lease
) -> ImportReport:
    """Checkpoints 1..`upto` of a session copied into another store under the same id, held
    by `lease` (a move's arrival): as rows (target.copy_session) when the target does not
    have the session, else completed as an import completes (a copy cut short, a session
    coming back); verified there either way."""
    from agentctl.store.copying import read_session
    from agentctl.usecases.trust import describe
    from agentctl.usecases.verify import verify_session

    info = source.info(session_id)
    listed = next((s for s in source.list_sessions() if s.id == session_id), None)
    name, tags = (listed.name, listed.tags) if listed is not None else (None, ())
    if session_id in target.match_sessions(session_id):
        copied = read_session(source, session_id, upto)
        return import_session(target, Exported(info, copied, name, tags), lease=lease)
    target.copy_session(source, session_id, info, upto=upto, lease=lease)
    name = _free_name(target, session_id, name)
    if name or tags:
        target.set_labels(session_id, name, tags)
    report = verify_session(target, session_id, target.history(session_id))
    if report.problems:
        raise StoreError(
            f"session {session_id} copied, but verify finds: {report.problems[0]}",
            hint=f"agentctl verify {session_id}",
        )
    return ImportReport(session_id, upto, upto, session_id, describe(target.info(session_id)))


def arrival_token(source_url: str, session_id: str, created_at: str) -> str:
    """The token of a move's arrival lease: the same for every attempt at the same move (so a
    re-run takes the copy a killed run left), and for no other."""
    import hashlib

    return hashlib.sha256(f"{source_url}\n{session_id}\n{created_at}".encode()).hexdigest()[:32]


def move_session(settings: Settings, prefix: str, to_url: str) -> MoveReport:
    """Copy a session to another store, verify it there, then mark the source as moved.

    In three steps, each durable before the next, so that at no moment do two copies run:
    the copy is written whole in the target, held by an arrival lease no one else takes
    (store/lease.py); the source is marked `moved`; the arrival lease is given up. Killed
    anywhere, at most one copy runs (the source before the mark, the target after the
    release, none in between), and running the same move again finishes it: it completes the
    copy or finds it whole, marks the source if it is not, and releases the target."""
    from agentctl import faults
    from agentctl.config import redact_url
    from agentctl.store import open_store, writes
    from agentctl.store.lease import arriving_lease
    from agentctl.usecases import wiring
    from agentctl.usecases.common import (
        held_lease,
        opened_store,
        refuse_if_damaged,
        refuse_if_moved,
        resolve_session,
        resume_elsewhere,
    )

    shown = redact_url(to_url, keep_user=True)
    with opened_store(settings) as source:
        session_id = resolve_session(source, prefix)
        if settings.store_url == to_url:
            raise UsageError("the session is already in that store")
        head = source.head(session_id)
        detail = head.typed_detail()
        finishing = head.kind is CheckpointKind.MOVED
        if not finishing or not (isinstance(detail, MovedDetail) and detail.to == shown):
            refuse_if_moved(source, session_id)  # moved elsewhere: continue it there
        refuse_if_damaged(source, session_id)
        token = arrival_token(settings.store_url, session_id, source.info(session_id).created_at)
        with held_lease(source, session_id):  # nobody writes to it while it is copied
            upto = source.head(session_id).id - (1 if finishing else 0)  # without the mark
            target = open_store(to_url)
            try:
                report = copy_into(target, source, session_id, upto, arriving_lease(token))
                faults.hit("move_copied")  # whole in the target, held there; source unmarked
                if not finishing:
                    head = source.head(session_id)
                    mark = writes.draft_on(
                        head,
                        CheckpointKind.MOVED,
                        head.to_state,
                        head.task,
                        wiring.now(),
                        detail=MovedDetail(shown),
                    )
                    writes.commit(source, session_id, head.id, mark)
                    faults.hit("move_marked")  # the source marked; the target still held
                from agentctl.store.lease import ARRIVING

                target.release_lease(session_id, ARRIVING + token)
            finally:
                target.close()
    return MoveReport(session_id, report.checkpoints, shown, resume_elsewhere(session_id, shown))
