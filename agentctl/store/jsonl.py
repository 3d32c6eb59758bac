"""The JSON-lines store: one append-only `events.jsonl` per session, readable with `jq`.

Event sourcing in its plainest form. Each line is one checkpoint with the messages it added and
the next message id; the head is the last line. The log is the only truth: the head, the
summary `list` shows and where the next append goes are all read from its last line (found by
reading backwards from the end, so O(1) in the session's length), never from a side file that
could disagree with it. The files and how each is validated when read are jsonl_files.py's.
Loading a whole session reads its whole log: O(checkpoints), unlike SQLite.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentctl import faults
from agentctl.atomic import fsync_dir, write_all, write_private
from agentctl.errors import (
    HeadMovedError,
    SessionExistsError,
    StoreError,
    UnknownCheckpointError,
    UnknownSessionError,
)
from agentctl.store.base import (
    CheckpointDraft,
    CheckpointSummary,
    MessageLinks,
    SessionSummary,
    gc_paused,
    listed_state,
    no_store,
    plan_all,
    plan_append,
)
from agentctl.store.core import BaseStore
from agentctl.store.jsonl_files import (
    SESSION_FILES,
    append_line,
    check_entry,
    drop_unreadable_lease,
    empty_or_being_made,
    held_lease,
    known_parent,
    labels_of,
    last_entry,
    log_place,
    parse_line,
    read_log,
    reading,
    write_private_atomic,
)
from agentctl.store.lease import Lease, check_takeover

if TYPE_CHECKING:
    from agentctl.domain.session import Checkpoint, Session, SessionInfo, UserProfile
    from agentctl.store.base import Store
    from agentctl.store.ready import ReadyConversation

FORMAT = "agentctl-jsonl"
FORMAT_VERSION = 1
IMPORTING = ".importing-"  # a session being written whole (create_whole), beside sessions/
READY_FILE = "ready.cache"  # the conversation kept ready for the next request (store/ready.py)


class JsonlStore(BaseStore):
    """Keeps no history listing (BaseStore's default): `history` reads the log whole anyway."""

    def __init__(
        self, root: str | os.PathLike[str], read_only: bool = False, create: bool = True
    ) -> None:
        self.root = Path(root)
        self.read_only = read_only
        self.sessions_dir = self.root / "sessions"
        self._infos: dict[str, dict[str, Any]] = {}  # session id -> info.json, immutable
        try:
            marker = self.root / "store.json"
            if not marker.is_file():
                if not create and (not self.root.exists() or empty_or_being_made(self.root)):
                    raise no_store(f"json://{self.root}")
                if read_only or not create:
                    raise StoreError(f"{self.root} is not an agentctl JSON-lines store")
                self._create(marker)
            meta = json.loads(marker.read_text())
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise StoreError(f"{self.root} is not an agentctl JSON-lines store")
            if not isinstance(meta.get("version"), int) or meta["version"] > FORMAT_VERSION:
                raise StoreError(
                    f"store {self.root} has format version {meta.get('version')!r}, newer "
                    f"than this agentctl ({FORMAT_VERSION}); upgrade agentctl to use it"
                )
            if not self.sessions_dir.is_dir():
                raise StoreError(f"store {self.root}: sessions/ is missing or not a folder")
        except (OSError, ValueError, RecursionError) as exc:
            raise StoreError(f"store {self.root}: {exc}") from None

    def _create(self, marker: Path) -> None:
        """A new store, only where nothing else is: a folder of someone else's files is never
        written into, nor chmodded. The marker goes last, so a store with it is whole."""
        if self.root.exists() and not empty_or_being_made(self.root):
            if marker.is_file():
                return  # another agentctl has just finished creating it
            raise StoreError(
                f"{self.root} is not an agentctl JSON-lines store (no store.json) and not "
                "empty; nothing was changed. Point --store at a new or empty folder"
            )
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)  # ours: empty, just made, or being made by another agentctl
        self.sessions_dir.mkdir(mode=0o700, exist_ok=True)
        write_private_atomic(marker, json.dumps({"format": FORMAT, "version": FORMAT_VERSION}))

    # -- files and locking ----------------------------------------------------------------

    def _dir(self, session_id: str) -> Path:
        path = self.sessions_dir / session_id
        if (
            not session_id
            or "/" in session_id
            or session_id.startswith(".")
            or not (path / "info.json").exists()
        ):
            raise UnknownSessionError(f"no session {session_id!r}")
        return path

    @contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        """The write lock of a session (or of the store, for the profile). Every write takes
        it, so a read-only store refuses here, before anything is written."""
        if self.read_only:
            raise StoreError(f"store {self.root} is open read-only (?mode=ro): nothing written")
        fd = os.open(path / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- writes ---------------------------------------------------------------------------

    def create_session(
        self, info: SessionInfo, first: CheckpointDraft, lease: Lease | None = None
    ) -> Checkpoint:
        from agentctl.store.codec import encode

        path = self.sessions_dir / info.id
        if self.read_only:
            raise StoreError(f"store {self.root} is open read-only (?mode=ro): nothing written")
        try:
            path.mkdir(mode=0o700)
            if lease is not None:  # before info.json: the session is invisible until then
                write_private_atomic(path / "lease.json", json.dumps(lease.__dict__))
            with self._locked(path):
                checkpoint = self._write(path, info.id, _Tail(0, None, 1), first, encode(info))
                return checkpoint
        except FileExistsError:
            raise SessionExistsError(f"session {info.id} exists") from None
        except OSError as exc:
            raise StoreError(f"store {self.root}: {exc}") from exc

    def create_whole(
        self, info: SessionInfo, drafts: Sequence[CheckpointDraft], lease: Lease | None = None
    ) -> list[Checkpoint]:
        from agentctl.store.codec import to_payload

        plans = plan_all(drafts)

        def lines() -> Iterator[bytes]:
            next_id = 1
            for plan in plans:
                new = [
                    {"id": m.id, "parent": m.parent, "message": to_payload(m.message)}
                    for m in plan.messages
                ]
                next_id += len(new)
                entry = {
                    "checkpoint": to_payload(plan.checkpoint),
                    "messages": new,
                    "next_message_id": next_id,
                }
                yield (json.dumps(entry, separators=(",", ":")) + "\n").encode()

        self._write_whole(info, lines(), lease)
        return [plan.checkpoint for plan in plans]

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
        """From a JSON-lines store (this one or another), the first `upto` lines of the log
        copied as they are (each validated as `_read_log` does, none re-encoded but a line
        whose approval a fork leaves behind); from anywhere else, BaseStore's default."""
        if not isinstance(source, JsonlStore):
            return super().copy_session(
                source, session_id, info, upto=upto, lease=lease, keep_approvals=keep_approvals
            )
        path = source._dir(session_id)
        with reading(path):
            lines = (path / "events.jsonl").read_bytes().split(b"\n")[:-1]  # torn: left out
            last = len(lines) if upto is None else upto
            if not 1 <= last <= len(lines):
                raise UnknownCheckpointError(session_id, last)
            copied = []
            next_id = 1
            for number, line in enumerate(lines[:last], 1):
                entry = parse_line(line, number, path)
                next_id = check_entry(entry, number, next_id, path)
                task = entry["checkpoint"].get("task")
                if not keep_approvals and isinstance(task, dict) and "approval" in task:
                    del task["approval"]
                    line = json.dumps(entry, separators=(",", ":")).encode()
                copied.append(line + b"\n")
        self._write_whole(info, iter(copied), lease)
        return last

    def _write_whole(self, info: SessionInfo, lines: Iterator[bytes], lease: Lease | None) -> None:
        """A session written whole in a hidden folder beside sessions/ (`.importing-ID-…`,
        which nothing lists), then renamed into place: it appears complete or not at all. A
        folder a crash left there is removed by `reclaim`."""
        import shutil
        import uuid

        from agentctl.store.codec import encode

        if self.read_only:
            raise StoreError(f"store {self.root} is open read-only (?mode=ro): nothing written")
        final = self.sessions_dir / info.id
        if final.exists():
            raise SessionExistsError(f"session {info.id} exists")
        staging = self.root / f"{IMPORTING}{info.id}-{uuid.uuid4().hex[:8]}"
        try:
            staging.mkdir(mode=0o700)
            try:
                if lease is not None:
                    write_private_atomic(staging / "lease.json", json.dumps(lease.__dict__))
                write_private_atomic(staging / "info.json", encode(info))
                fd = os.open(staging / "events.jsonl", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    for line in lines:
                        write_all(fd, line)
                        faults.hit("commit_started")  # part written, in the hidden folder
                    os.fsync(fd)
                finally:
                    os.close(fd)
                fsync_dir(staging)
                if final.exists():
                    raise SessionExistsError(f"session {info.id} exists")
                os.rename(staging, final)  # the one step that makes it visible, whole
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            fsync_dir(self.sessions_dir)
        except OSError as exc:
            raise StoreError(f"store {self.root}: {exc}") from exc

    def append(self, session_id: str, expected_head: int, draft: CheckpointDraft) -> Checkpoint:
        path = self._dir(session_id)
        try:
            with self._locked(path):
                tail = self._tail(path)
                if tail.head != expected_head:
                    raise HeadMovedError(
                        f"session {session_id} moved on to checkpoint {tail.head} "
                        f"(expected {expected_head}): another process is writing to it"
                    )
                return self._write(path, session_id, tail, draft)
        except OSError as exc:
            raise StoreError(f"store {self.root}: {exc}") from exc

    def _info_of(self, path: Path) -> dict[str, Any]:
        """A session's info.json, read once: it never changes after the session is created."""
        if path.name not in self._infos:
            self._infos[path.name] = json.loads((path / "info.json").read_text())
        return self._infos[path.name]

    def _tail(self, path: Path) -> _Tail:
        """Where the log ends, from its last line (O(1) per append, whatever the session's
        length); logs written before lines carried `next_message_id` are read whole once."""
        last = last_entry(path)
        if last is None:
            return _Tail(0, None, 1)
        checkpoint = last["checkpoint"]
        next_id = last.get("next_message_id")
        if last["messages"] and next_id != last["messages"][-1]["id"] + 1:
            raise StoreError(f"{log_place(path, None)}: next_message_id {next_id!r} is wrong")
        if not isinstance(next_id, int):
            entries = read_log(path)
            next_id = 1 + sum(len(r["messages"]) for r in entries)
        return _Tail(checkpoint["id"], checkpoint["message_tip"], next_id)

    def _write(
        self,
        path: Path,
        session_id: str,
        tail: _Tail,
        draft: CheckpointDraft,
        info_json: str | None = None,
    ) -> Checkpoint:
        from agentctl.store.codec import to_payload

        tip: int | None = None
        if draft.parent == tail.head and draft.parent:
            tip = tail.tip
        elif draft.parent is not None:  # a fork from an older checkpoint: look it up
            entries = read_log(path)
            if not 1 <= draft.parent <= len(entries):
                raise UnknownCheckpointError(session_id, draft.parent)
            tip = entries[draft.parent - 1]["checkpoint"]["message_tip"]
        parents: dict[int, int | None] = {}
        if draft.keep_messages is not None:  # a compaction: rare, so reading the log is fine
            parents = {m["id"]: m["parent"] for r in read_log(path) for m in r["messages"]}
        plan = plan_append(
            draft,
            checkpoint_id=tail.head + 1,
            parent_tip=tip,
            next_message_id=tail.next_message_id,
            parent_of=lambda m: known_parent(parents, m, path),
        )
        checkpoint = plan.checkpoint
        new = [
            {"id": m.id, "parent": m.parent, "message": to_payload(m.message)}
            for m in plan.messages
        ]
        next_id = tail.next_message_id + len(new)
        if info_json is not None:  # the session's facts, before its first event
            write_private_atomic(path / "info.json", info_json)
        entry = {"checkpoint": to_payload(checkpoint), "messages": new, "next_message_id": next_id}
        append_line(path, entry)
        return checkpoint

    # -- reads ----------------------------------------------------------------------------

    def load(self, session_id: str, checkpoint_id: int | None = None) -> Session:
        from agentctl.domain.session import Checkpoint, Session, SessionInfo
        from agentctl.store.codec import decode, decode_messages

        path = self._dir(session_id)
        where = f"session {session_id}"
        with reading(path):
            entries = read_log(path)
            info = decode(SessionInfo, (path / "info.json").read_text(), where=where)
            number = checkpoint_id or len(entries)
            if not 1 <= number <= len(entries):
                raise UnknownCheckpointError(session_id, number)
            checkpoint = decode(Checkpoint, entries[number - 1]["checkpoint"], where=where)
            by_id = {m["id"]: m for r in entries for m in r["messages"]}
            chain = []
            tip = checkpoint.message_tip
            while tip is not None:  # parents point backwards (checked on read): it ends
                entry = by_id[tip]
                chain.append(entry["message"])
                tip = entry["parent"]
            chain.reverse()
            messages = decode_messages(chain, where=where)  # in one call, as SQLite does
        return Session(info=info, checkpoint=checkpoint, messages=messages)

    def get_checkpoint(self, session_id: str, checkpoint_id: int) -> Checkpoint:
        from agentctl.domain.session import Checkpoint
        from agentctl.store.codec import decode

        path = self._dir(session_id)
        with reading(path):
            entries = read_log(path)
            if not 1 <= checkpoint_id <= len(entries):
                raise UnknownCheckpointError(session_id, checkpoint_id)
            return decode(Checkpoint, entries[checkpoint_id - 1]["checkpoint"], where=session_id)

    def info(self, session_id: str) -> SessionInfo:
        from agentctl.domain.session import SessionInfo
        from agentctl.store.codec import decode

        path = self._dir(session_id)
        with reading(path):
            return decode(
                SessionInfo, (path / "info.json").read_text(), where=f"session {session_id}"
            )

    def head(self, session_id: str) -> Checkpoint:
        from agentctl.domain.session import Checkpoint
        from agentctl.store.codec import decode

        path = self._dir(session_id)
        with reading(path):
            last = last_entry(path)
            if last is None:
                raise StoreError(f"session {session_id} has no checkpoints")
            return decode(Checkpoint, last["checkpoint"], where=session_id)

    def list_sessions(self) -> list[SessionSummary]:
        out = []
        with reading(self.sessions_dir):
            paths = list(self.sessions_dir.iterdir())
        for path in paths:
            if not (path / "info.json").exists():
                continue  # a session whose creation did not finish
            try:
                with reading(path):
                    summary = self._read_summary(path)
            except StoreError as exc:  # one damaged session does not hide the others
                summary = SessionSummary(path.name, "damaged", exc.message, None, 0, "", "")
            if summary is not None:
                out.append(summary)
        return sorted(out, key=lambda s: (s.updated_at, s.id), reverse=True)

    def _read_summary(self, path: Path) -> SessionSummary | None:
        last = last_entry(path)
        if last is None:
            return None
        info, checkpoint = self._info_of(path), last["checkpoint"]
        task = checkpoint.get("task") if isinstance(checkpoint.get("task"), dict) else {}
        name, tags = labels_of(path)
        return SessionSummary(
            str(info["id"]),
            listed_state(str(checkpoint["to_state"]), checkpoint.get("event")),
            str(info["spec"]["goal"]),
            info["spec"].get("title"),
            checkpoint["id"],
            str(info["created_at"]),
            str(checkpoint["created_at"]),
            task.get("outcome"),
            name,
            tags,
            info.get("workspace"),
        )

    def history(self, session_id: str, *, kept: bool = True) -> list[CheckpointSummary]:
        path = self._dir(session_id)  # the log is read whole anyway: no listing is kept
        with reading(path), gc_paused():
            entries = read_log(path)
            return [
                CheckpointSummary(
                    id=c["id"],
                    parent=c["parent"],
                    kind=c["event"],
                    from_state=c["from_state"],
                    to_state=c["to_state"],
                    created_at=c["created_at"],
                    detail=c["detail"],
                )
                for c in (r["checkpoint"] for r in entries)
            ]

    def message_links(self, session_id: str) -> MessageLinks:
        from agentctl.domain.session import Checkpoint, Message
        from agentctl.errors import AgentctlError
        from agentctl.store.codec import decode

        path = self._dir(session_id)
        with reading(path):
            entries = read_log(path)
        tips = {r["checkpoint"]["id"]: r["checkpoint"]["message_tip"] for r in entries}
        unreadable: dict[int, str] = {}
        for r in entries:
            try:
                decode(Checkpoint, r["checkpoint"], where=f"checkpoint {r['checkpoint']['id']}")
            except AgentctlError as exc:
                unreadable[r["checkpoint"]["id"]] = exc.message
        messages: dict[int, tuple[int | None, Message | str]] = {}
        for entry in (m for r in entries for m in r["messages"]):
            try:
                body: Message | str = decode(
                    Message, entry["message"], where=f"message {entry['id']}"
                )
            except AgentctlError as exc:
                body = exc.message
            messages[entry["id"]] = (entry["parent"], body)
        return MessageLinks(messages, tips, unreadable)

    def session_sizes(self, session_ids: Sequence[str]) -> dict[str, int]:
        """The bytes of each session's files (its log, facts and labels), from the file system."""
        out = {}
        for session_id in session_ids:
            try:
                path = self._dir(session_id)
                out[session_id] = sum(p.stat().st_size for p in path.iterdir() if p.is_file())
            except (UnknownSessionError, OSError):
                continue
        return out

    def match_sessions(self, prefix: str) -> list[str]:
        return sorted(
            p.name
            for p in self.sessions_dir.iterdir()
            if p.name.startswith(prefix) and (p / "info.json").exists()
        )

    def acquire_lease(self, session_id: str, lease: Lease) -> None:
        path = self._dir(session_id)
        with reading(path), self._locked(path):
            check_takeover(session_id, held_lease(path), lease)
            drop_unreadable_lease(path)
            write_private_atomic(path / "lease.json", json.dumps(lease.__dict__))

    def set_labels(self, session_id: str, name: str | None, tags: tuple[str, ...]) -> None:
        path = self._dir(session_id)
        with reading(path), self._locked(path):
            write_private_atomic(path / "labels.json", json.dumps({"name": name, "tags": tags}))

    def keep_ready(self, session_id: str, ready: ReadyConversation) -> None:
        path = self._dir(session_id)
        with reading(path), self._locked(path):
            write_private(path / READY_FILE, ready.document())

    def ready_conversation(self, session_id: str) -> ReadyConversation | None:
        from agentctl.store.ready import from_document

        try:
            data = (self._dir(session_id) / READY_FILE).read_bytes()
        except (OSError, UnknownSessionError):  # none kept, or unreadable: a cache
            return None
        return from_document(data)

    def delete_session(self, session_id: str) -> None:
        import shutil
        import uuid

        path = self._dir(session_id)
        with reading(path), self._locked(path):
            # Renamed out of sessions/ first (atomic): a crash leaves no half-deleted session.
            trash = self.root / f".deleted-{session_id}-{uuid.uuid4().hex[:8]}"
            os.rename(path, trash)
        shutil.rmtree(trash, ignore_errors=True)
        self._infos.pop(session_id, None)

    def lease_of(self, session_id: str) -> Lease | None:
        return held_lease(self._dir(session_id))

    def release_lease(self, session_id: str, token: str) -> None:
        path = self._dir(session_id)
        with reading(path), self._locked(path):
            # Read as every lease is (bounded, never a FIFO, which would block forever):
            # anything else is not ours to remove.
            held = held_lease(path)
            if held is not None and held.token == token:
                (path / "lease.json").unlink(missing_ok=True)

    def reclaim(self) -> None:
        import shutil

        for left in self.root.glob(".deleted-*"):  # a delete a crash cut short
            shutil.rmtree(left, ignore_errors=True)
        import time

        for left in self.root.glob(f"{IMPORTING}*"):  # a copy a crash cut short (not one
            try:  # being written now: those are minutes old at most)
                if time.time() - left.stat().st_mtime > 3600:
                    shutil.rmtree(left, ignore_errors=True)
            except OSError:
                continue

    def check(self) -> list[str]:
        problems = []
        for name in ("store.json", "profile.json"):
            if (self.root / name).exists() and not (self.root / name).is_file():
                problems.append(f"{name} is not a file")
        for path in sorted(self.sessions_dir.iterdir()):
            if not (path / "info.json").exists():
                problems.append(f"{path.name}: a session directory without info.json")
                continue
            for name in (*SESSION_FILES, READY_FILE):
                if (path / name).exists() and not (path / name).is_file():
                    problems.append(f"{path.name}: {name} is not a file")
            try:
                with reading(path):
                    read_log(path)
                    json.loads((path / "info.json").read_text())
            except StoreError as exc:
                problems.append(exc.message)
        return problems

    def load_profile(self) -> UserProfile:
        from agentctl.domain.session import UserProfile
        from agentctl.store.codec import decode

        path = self.root / "profile.json"
        with reading(path):
            if not path.exists():
                return UserProfile()
            return decode(UserProfile, path.read_text(), where=str(path))

    def update_profile(self, change: Callable[[UserProfile], UserProfile]) -> UserProfile:
        from agentctl.store.codec import encode

        with self._locked(self.root):  # the store's lock: no other update in between
            profile = change(self.load_profile())
            write_private_atomic(self.root / "profile.json", encode(profile))
        return profile


@dataclass(frozen=True)
class _Tail:
    head: int  # the newest checkpoint's id (0: none yet)
    tip: int | None  # its last message
    next_message_id: int
