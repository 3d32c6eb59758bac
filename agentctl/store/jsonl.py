"""The JSON-lines store: one append-only `events.jsonl` per session, readable with `jq`.

Event sourcing in its plainest form. Each line is one checkpoint with the messages it added and
the next message id; the head is the last line. The log is the only truth: the head, the
summary `list` shows and where the next append goes are all read from its last line (found by
reading backwards from the end, so O(1) in the session's length), never from a side file that
could disagree with it. A torn last line (a crash during an append) is ignored on read and cut
off before the next append. Every line is validated when read — its shape, its checkpoint
number, message ids that only grow, parents that point backwards — so damage is a StoreError
naming the session and the line, and no walk of a chain can loop. Loading a whole session reads
its whole log: O(checkpoints), unlike SQLite.
"""

from __future__ import annotations

import contextlib
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
from agentctl.store.lease import Lease, check_takeover

if TYPE_CHECKING:
    from agentctl.domain.state import Checkpoint, Session, SessionInfo, UserProfile
    from agentctl.store.base import Store
    from agentctl.store.ready import ReadyConversation

FORMAT = "agentctl-jsonl"
FORMAT_VERSION = 1
IMPORTING = ".importing-"  # a session being written whole (create_whole), beside sessions/
READY_FILE = "ready.cache"  # the conversation kept ready for the next request (store/ready.py)


def write_private_atomic(path: Path, text: str) -> None:
    write_private(path, text.encode())


def _empty_or_being_made(root: Path) -> bool:
    """An empty folder, or a store another agentctl is creating at this moment (or crashed
    while creating): an empty sessions/ and at most the marker's temporary files. The marker
    is written last, so with it the store is whole."""
    if not root.is_dir():
        return False
    for entry in root.iterdir():
        if entry.name == "sessions":
            if entry.is_symlink() or not entry.is_dir() or any(entry.iterdir()):
                return False
        elif not (entry.name.startswith(".store.json.") and entry.name.endswith(".tmp")):
            return False
    return True


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
                if not create and (not self.root.exists() or _empty_or_being_made(self.root)):
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
        if self.root.exists() and not _empty_or_being_made(self.root):
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

    def _read_log(self, path: Path) -> list[dict[str, Any]]:
        """Every complete line of the log, validated; a torn last line is left out."""
        try:
            data = (path / "events.jsonl").read_bytes()
        except FileNotFoundError:
            return []
        # The part after the last newline, if any, is an append that did not finish: left out.
        complete = data.split(b"\n")[:-1]
        records: list[dict[str, Any]] = []
        next_id = 1
        for number, line in enumerate(complete, 1):
            record = _parse_line(line, number, path)
            next_id = _check_record(record, number, next_id, path)
            records.append(record)
        return records

    def _last_record(self, path: Path) -> dict[str, Any] | None:
        """The log's last complete line, read backwards from the end: O(1) in the log's
        length. Checked for shape; its place in the whole log is checked by full reads."""
        try:
            fd = os.open(path / "events.jsonl", os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            size = os.fstat(fd).st_size
            end = size
            data = b""
            while end > 0:  # find the end of the last complete line, then its start
                start = max(0, end - (1 << 16))
                data = os.pread(fd, end - start, start) + data
                end = start
                last_nl = data.rfind(b"\n")
                if last_nl != -1 and data.rfind(b"\n", 0, last_nl) != -1:
                    break
            last_nl = data.rfind(b"\n")
            if last_nl == -1:
                return None
            line = data[data.rfind(b"\n", 0, last_nl) + 1 : last_nl]
        finally:
            os.close(fd)
        record = _parse_line(line, None, path)
        number = record["checkpoint"]["id"] if isinstance(record.get("checkpoint"), dict) else 0
        if not isinstance(number, int) or number < 1:
            raise StoreError(f"{_where(path, None)}: the last checkpoint has no valid number")
        _check_record(record, number, None, path)
        return record

    def _append_line(self, path: Path, record: dict[str, Any]) -> int:
        log = path / "events.jsonl"
        fd = os.open(log, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size:
                os.lseek(fd, size - 1, os.SEEK_SET)
                if os.read(fd, 1) != b"\n":  # cut off a torn line left by a crash
                    data = (path / "events.jsonl").read_bytes()
                    os.ftruncate(fd, data.rfind(b"\n") + 1)
            size = os.fstat(fd).st_size
            line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
            half = len(line) // 2
            try:
                write_all(fd, line[:half])
                faults.hit("commit_started")  # a torn line, as a crash mid-append leaves it
                write_all(fd, line[half:])
                os.fsync(fd)
            except OSError:
                # A full disk (or a file-size limit) writes part of the line and then fails:
                # take the part back, so the commit that failed leaves nothing behind.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise
            return size + len(line)
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
                record = {
                    "checkpoint": to_payload(plan.checkpoint),
                    "messages": new,
                    "next_message_id": next_id,
                }
                yield (json.dumps(record, separators=(",", ":")) + "\n").encode()

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
        with _reading(path):
            lines = (path / "events.jsonl").read_bytes().split(b"\n")[:-1]  # torn: left out
            last = len(lines) if upto is None else upto
            if not 1 <= last <= len(lines):
                raise UnknownCheckpointError(session_id, last)
            copied = []
            next_id = 1
            for number, line in enumerate(lines[:last], 1):
                record = _parse_line(line, number, path)
                next_id = _check_record(record, number, next_id, path)
                task = record["checkpoint"].get("task")
                if not keep_approvals and isinstance(task, dict) and "approval" in task:
                    del task["approval"]
                    line = json.dumps(record, separators=(",", ":")).encode()
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
        last = self._last_record(path)
        if last is None:
            return _Tail(0, None, 1)
        checkpoint = last["checkpoint"]
        next_id = last.get("next_message_id")
        if last["messages"] and next_id != last["messages"][-1]["id"] + 1:
            raise StoreError(f"{_where(path, None)}: next_message_id {next_id!r} is wrong")
        if not isinstance(next_id, int):
            records = self._read_log(path)
            next_id = 1 + sum(len(r["messages"]) for r in records)
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
            records = self._read_log(path)
            if not 1 <= draft.parent <= len(records):
                raise UnknownCheckpointError(session_id, draft.parent)
            tip = records[draft.parent - 1]["checkpoint"]["message_tip"]
        parents: dict[int, int | None] = {}
        if draft.keep_messages is not None:  # a compaction: rare, so reading the log is fine
            parents = {m["id"]: m["parent"] for r in self._read_log(path) for m in r["messages"]}
        plan = plan_append(
            draft,
            checkpoint_id=tail.head + 1,
            parent_tip=tip,
            next_message_id=tail.next_message_id,
            parent_of=lambda m: _known_parent(parents, m, path),
        )
        checkpoint = plan.checkpoint
        new = [
            {"id": m.id, "parent": m.parent, "message": to_payload(m.message)}
            for m in plan.messages
        ]
        next_id = tail.next_message_id + len(new)
        if info_json is not None:  # the session's facts, before its first event
            write_private_atomic(path / "info.json", info_json)
        record = {"checkpoint": to_payload(checkpoint), "messages": new, "next_message_id": next_id}
        self._append_line(path, record)
        return checkpoint

    # -- reads ----------------------------------------------------------------------------

    def load(self, session_id: str, checkpoint_id: int | None = None) -> Session:
        from agentctl.domain.state import Checkpoint, Session, SessionInfo
        from agentctl.store.codec import decode, decode_messages

        path = self._dir(session_id)
        where = f"session {session_id}"
        with _reading(path):
            records = self._read_log(path)
            info = decode(SessionInfo, (path / "info.json").read_text(), where=where)
            number = checkpoint_id or len(records)
            if not 1 <= number <= len(records):
                raise UnknownCheckpointError(session_id, number)
            checkpoint = decode(Checkpoint, records[number - 1]["checkpoint"], where=where)
            by_id = {m["id"]: m for r in records for m in r["messages"]}
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
        from agentctl.domain.state import Checkpoint
        from agentctl.store.codec import decode

        path = self._dir(session_id)
        with _reading(path):
            records = self._read_log(path)
            if not 1 <= checkpoint_id <= len(records):
                raise UnknownCheckpointError(session_id, checkpoint_id)
            return decode(Checkpoint, records[checkpoint_id - 1]["checkpoint"], where=session_id)

    def info(self, session_id: str) -> SessionInfo:
        from agentctl.domain.state import SessionInfo
        from agentctl.store.codec import decode

        path = self._dir(session_id)
        with _reading(path):
            return decode(
                SessionInfo, (path / "info.json").read_text(), where=f"session {session_id}"
            )

    def head(self, session_id: str) -> Checkpoint:
        from agentctl.domain.state import Checkpoint
        from agentctl.store.codec import decode

        path = self._dir(session_id)
        with _reading(path):
            last = self._last_record(path)
            if last is None:
                raise StoreError(f"session {session_id} has no checkpoints")
            return decode(Checkpoint, last["checkpoint"], where=session_id)

    def list_sessions(self) -> list[SessionSummary]:
        out = []
        with _reading(self.sessions_dir):
            paths = list(self.sessions_dir.iterdir())
        for path in paths:
            if not (path / "info.json").exists():
                continue  # a session whose creation did not finish
            try:
                with _reading(path):
                    summary = self._read_summary(path)
            except StoreError as exc:  # one damaged session does not hide the others
                summary = SessionSummary(path.name, "damaged", exc.message, None, 0, "", "")
            if summary is not None:
                out.append(summary)
        return sorted(out, key=lambda s: (s.updated_at, s.id), reverse=True)

    def _read_summary(self, path: Path) -> SessionSummary | None:
        last = self._last_record(path)
        if last is None:
            return None
        info, checkpoint = self._info_of(path), last["checkpoint"]
        task = checkpoint.get("task") if isinstance(checkpoint.get("task"), dict) else {}
        name, tags = _labels(path)
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
        with _reading(path), gc_paused():
            records = self._read_log(path)
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
                for c in (r["checkpoint"] for r in records)
            ]

    def message_links(self, session_id: str) -> MessageLinks:
        from agentctl.domain.state import Checkpoint, Message
        from agentctl.errors import AgentctlError
        from agentctl.store.codec import decode

        path = self._dir(session_id)
        with _reading(path):
            records = self._read_log(path)
        tips = {r["checkpoint"]["id"]: r["checkpoint"]["message_tip"] for r in records}
        unreadable: dict[int, str] = {}
        for r in records:
            try:
                decode(Checkpoint, r["checkpoint"], where=f"checkpoint {r['checkpoint']['id']}")
            except AgentctlError as exc:
                unreadable[r["checkpoint"]["id"]] = exc.message
        messages: dict[int, tuple[int | None, Message | str]] = {}
        for entry in (m for r in records for m in r["messages"]):
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
        with _reading(path), self._locked(path):
            check_takeover(session_id, _held_lease(path), lease)
            write_private_atomic(path / "lease.json", json.dumps(lease.__dict__))

    def set_labels(self, session_id: str, name: str | None, tags: tuple[str, ...]) -> None:
        path = self._dir(session_id)
        with _reading(path), self._locked(path):
            write_private_atomic(path / "labels.json", json.dumps({"name": name, "tags": tags}))

    def keep_ready(self, session_id: str, ready: ReadyConversation) -> None:
        path = self._dir(session_id)
        with _reading(path), self._locked(path):
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
        with _reading(path), self._locked(path):
            # Renamed out of sessions/ first (atomic): a crash leaves no half-deleted session.
            trash = self.root / f".deleted-{session_id}-{uuid.uuid4().hex[:8]}"
            os.rename(path, trash)
        shutil.rmtree(trash, ignore_errors=True)
        self._infos.pop(session_id, None)

    def release_lease(self, session_id: str, token: str) -> None:
        path = self._dir(session_id)
        with _reading(path), self._locked(path):
            try:
                if json.loads((path / "lease.json").read_text()).get("token") == token:
                    (path / "lease.json").unlink()
            except (OSError, ValueError, AttributeError, RecursionError):  # not ours to remove
                pass

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
            for name in (
                "info.json",
                "events.jsonl",
                "lock",
                "lease.json",
                "labels.json",
                READY_FILE,
            ):
                if (path / name).exists() and not (path / name).is_file():
                    problems.append(f"{path.name}: {name} is not a file")
            try:
                with _reading(path):
                    self._read_log(path)
                    json.loads((path / "info.json").read_text())
            except StoreError as exc:
                problems.append(exc.message)
        return problems

    def load_profile(self) -> UserProfile:
        from agentctl.domain.state import UserProfile
        from agentctl.store.codec import decode

        path = self.root / "profile.json"
        with _reading(path):
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


def _known_parent(parents: dict[int, int | None], message: int, path: Path) -> int | None:
    if message not in parents:
        raise StoreError(f"{_where(path, None)}: message {message} is missing")
    return parents[message]


def _held_lease(path: Path) -> Lease | None:
    """The session's lease.json as a Lease; None when there is none or it does not read as
    one (a lease is advisory, the head check is the guard: a damaged one holds nothing)."""
    try:
        data = json.loads((path / "lease.json").read_text())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    host, pid, token = data.get("host"), data.get("pid"), data.get("token")
    expires, user = data.get("expires_at"), data.get("user", "")
    if not (
        isinstance(host, str)
        and isinstance(pid, int)
        and not isinstance(pid, bool)
        and isinstance(token, str)
        and isinstance(expires, int | float)
        and not isinstance(expires, bool)
        and isinstance(user, str)
    ):
        return None
    return Lease(host, pid, token, float(expires), user)


def _labels(path: Path) -> tuple[str | None, tuple[str, ...]]:
    """A session's name and tags (labels.json, replaced whole when they change)."""
    try:
        data = json.loads((path / "labels.json").read_text())
    except FileNotFoundError:
        return None, ()
    name, tags = data.get("name"), data.get("tags", [])
    if (name is not None and not isinstance(name, str)) or not isinstance(tags, list):
        raise ValueError("labels.json holds no name and tags")
    return name, tuple(str(t) for t in tags)


def _where(path: Path, line: int | None) -> str:
    at = f" line {line}" if line is not None else ""
    return f"session {path.name}: events.jsonl{at}"


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Whatever a damaged file raises (a folder where a file belongs, bytes that are not
    UTF-8, a key or a type that is not there) becomes one StoreError naming the place."""
    try:
        yield
    except (StoreError, UnknownSessionError):
        raise
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        RecursionError,  # JSON nested deeper than the parser goes
    ) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise StoreError(
            f"store {path}: cannot be read ({type(exc).__name__}: {detail[:200]})",
            hint="agentctl verify",
        ) from None


def _parse_line(line: bytes, number: int | None, path: Path) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep to parse
        raise StoreError(
            f"{_where(path, number)} is corrupt (not a torn last line)", hint="agentctl verify"
        ) from None
    if not isinstance(record, dict):
        raise StoreError(f"{_where(path, number)} is not a JSON object", hint="agentctl verify")
    return record


def _check_record(record: dict[str, Any], number: int, next_id: int | None, path: Path) -> int:
    """Raise StoreError unless `record` is line `number` of a sound log: a checkpoint numbered
    `number` whose parent is earlier, messages numbered on from `next_id` (when known) whose
    parents point backwards. Returns the next message id."""
    where = _where(path, number)
    checkpoint, messages = record.get("checkpoint"), record.get("messages")
    if not isinstance(checkpoint, dict) or not isinstance(messages, list):
        raise StoreError(f"{where}: no checkpoint or messages", hint="agentctl verify")
    if checkpoint.get("id") != number:
        raise StoreError(f"{where}: holds checkpoint {checkpoint.get('id')!r}, not {number}")
    parent = checkpoint.get("parent")
    if parent is not None and not isinstance(parent, int):  # where it points: verify's concern
        raise StoreError(f"{where}: checkpoint {number} has parent {parent!r}")
    for key in ("event", "from_state", "to_state", "created_at"):
        if not isinstance(checkpoint.get(key), str):
            raise StoreError(f"{where}: checkpoint {number} has no valid {key}")
    if not isinstance(checkpoint.get("detail", {}), dict):
        raise StoreError(f"{where}: checkpoint {number} has a detail that is not an object")
    checkpoint.setdefault("detail", {})
    first = next_id if next_id is not None else None
    for entry in messages:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), int):
            raise StoreError(f"{where}: a message without a valid id")
        if first is not None and entry["id"] != first:
            raise StoreError(f"{where}: message {entry['id']} where {first} was due")
        mparent = entry.get("parent")
        if mparent is not None and not (isinstance(mparent, int) and 1 <= mparent < entry["id"]):
            raise StoreError(f"{where}: message {entry['id']} has parent {mparent!r}")
        if not isinstance(entry.get("message"), dict):
            raise StoreError(f"{where}: message {entry['id']} has no body")
        first = entry["id"] + 1 if first is not None else None
    tip = checkpoint.get("message_tip")
    highest = (first - 1) if first is not None else max((m["id"] for m in messages), default=tip)
    if tip is not None and not (isinstance(tip, int) and 1 <= tip <= (highest or 0)):
        raise StoreError(f"{where}: checkpoint {number} ends at message {tip!r}, not there")
    due = record.get("next_message_id", first)
    if first is not None and due != first:
        raise StoreError(f"{where}: next_message_id {due!r}, not {first}")
    return first if first is not None else 0
