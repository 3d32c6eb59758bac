"""The JSON-lines store: one append-only `events.jsonl` per session, readable with `jq`.

Event sourcing in its plainest form. Each line is one checkpoint with the messages it added; the
head is the last line. `head.json` is a summary for `list`, replaced atomically after each append
and trusted only while the log's size matches the size it records, so a crash between the two
writes costs nothing. A torn last line (a crash during an append) is ignored on read and cut off
before the next append. Loading a session reads its whole log: O(checkpoints), unlike SQLite.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentctl import faults
from agentctl.errors import HeadMovedError, StoreError, UnknownSessionError
from agentctl.store.base import (
    CheckpointDraft,
    CheckpointSummary,
    SessionSummary,
    UnknownCheckpointError,
    number_checkpoint,
    prefix_tip,
)
from agentctl.store.lease import Lease, check_takeover

if TYPE_CHECKING:
    from agentctl.state import Checkpoint, SessionInfo, SessionState, UserProfile

FORMAT = "agentctl-jsonl"
FORMAT_VERSION = 1


def write_private_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text`: written to a temporary file, synced, renamed over."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class JsonlStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.sessions_dir = self.root / "sessions"
        self._infos: dict[str, dict[str, Any]] = {}  # session id -> info.json, immutable
        try:
            self.sessions_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.root, 0o700)
            marker = self.root / "store.json"
            if marker.exists():
                meta = json.loads(marker.read_text())
                if meta.get("format") != FORMAT:
                    raise StoreError(f"{self.root} is not an agentctl JSON-lines store")
                if meta.get("version", 0) > FORMAT_VERSION:
                    raise StoreError(
                        f"store {self.root} has format version {meta['version']}, newer than this"
                        f" agentctl ({FORMAT_VERSION}); upgrade agentctl to use it"
                    )
            else:
                write_private_atomic(
                    marker, json.dumps({"format": FORMAT, "version": FORMAT_VERSION})
                )
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreError(f"store {self.root}: {exc}") from exc

    # -- files and locking ----------------------------------------------------------------

    def _dir(self, session_id: str) -> Path:
        path = self.sessions_dir / session_id
        if "/" in session_id or session_id.startswith(".") or not (path / "info.json").exists():
            raise UnknownSessionError(f"no session {session_id!r}")
        return path

    @contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        fd = os.open(path / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read_log(self, path: Path) -> list[dict[str, Any]]:
        """Every complete line of the log; a torn last line is left out."""
        try:
            data = (path / "events.jsonl").read_bytes()
        except FileNotFoundError:
            return []
        # The part after the last newline, if any, is an append that did not finish: left out.
        complete = data.split(b"\n")[:-1]
        records = []
        for number, line in enumerate(complete, 1):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise StoreError(
                    f"{path / 'events.jsonl'} line {number} is corrupt (not a torn last line)"
                ) from None
        return records

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
            line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
            half = len(line) // 2
            os.write(fd, line[:half])
            faults.hit("commit_started")  # a torn line, as a crash mid-append leaves it
            os.write(fd, line[half:])
            os.fsync(fd)
            return os.fstat(fd).st_size
        finally:
            os.close(fd)

    # -- writes ---------------------------------------------------------------------------

    def create_session(self, info: SessionInfo, first: CheckpointDraft) -> Checkpoint:
        from agentctl.store.codec import encode

        path = self.sessions_dir / info.id
        try:
            path.mkdir(mode=0o700)
            with self._locked(path):
                checkpoint = self._write(path, info.id, _Tail(0, None, 1), first, encode(info))
                return checkpoint
        except FileExistsError:
            raise ValueError(f"session {info.id} exists") from None
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

    def _info_of(self, path: Path, written: str | None = None) -> dict[str, Any]:
        """A session's info.json, read once: it never changes after the session is created."""
        if path.name not in self._infos:
            text = written if written is not None else (path / "info.json").read_text()
            self._infos[path.name] = json.loads(text)
        return self._infos[path.name]

    def _tail(self, path: Path) -> _Tail:
        """Where the log ends. From head.json while it matches the log's size (O(1) per
        append, whatever the session's length); from the log itself after a crash."""
        try:
            data = json.loads((path / "head.json").read_text())
            if data.get("log_size") == (path / "events.jsonl").stat().st_size:
                return _Tail(data["head"], data["message_tip"], data["next_message_id"])
        except (OSError, ValueError, KeyError):
            pass
        records = self._read_log(path)
        if not records:
            return _Tail(0, None, 1)
        return _Tail(
            len(records),
            records[-1]["checkpoint"]["message_tip"],
            1 + sum(len(r["messages"]) for r in records),
        )

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
        if draft.keep_messages is not None:  # a compaction: rare, so reading the log is fine
            parents = {m["id"]: m["parent"] for r in self._read_log(path) for m in r["messages"]}
            tip = prefix_tip(tip, parents.__getitem__, draft.keep_messages)
        next_id = tail.next_message_id
        new = []
        for message in draft.new_messages:
            new.append({"id": next_id, "parent": tip, "message": to_payload(message)})
            tip, next_id = next_id, next_id + 1
        checkpoint = number_checkpoint(draft, tail.head + 1, tip)
        if info_json is not None:  # the session's facts, before its first event
            write_private_atomic(path / "info.json", info_json)
        size = self._append_line(path, {"checkpoint": to_payload(checkpoint), "messages": new})
        summary = _summary(self._info_of(path, info_json), checkpoint.model_dump(mode="json"), size)
        summary["next_message_id"] = next_id
        write_private_atomic(path / "head.json", json.dumps(summary))
        return checkpoint

    # -- reads ----------------------------------------------------------------------------

    def load(self, session_id: str, checkpoint_id: int | None = None) -> SessionState:
        from agentctl.state import Checkpoint, Message, SessionInfo, SessionState
        from agentctl.store.codec import decode

        path = self._dir(session_id)
        records = self._read_log(path)
        where = f"session {session_id}"
        info = decode(SessionInfo, (path / "info.json").read_text(), where=where)
        number = checkpoint_id or len(records)
        if not 1 <= number <= len(records):
            raise UnknownCheckpointError(session_id, number)
        checkpoint = decode(Checkpoint, records[number - 1]["checkpoint"], where=where)
        by_id = {m["id"]: m for r in records for m in r["messages"]}
        chain = []
        tip = checkpoint.message_tip
        while tip is not None:
            entry = by_id[tip]
            chain.append(decode(Message, entry["message"], where=where))
            tip = entry["parent"]
        return SessionState(info=info, checkpoint=checkpoint, messages=tuple(reversed(chain)))

    def get_checkpoint(self, session_id: str, checkpoint_id: int) -> Checkpoint:
        from agentctl.state import Checkpoint
        from agentctl.store.codec import decode

        records = self._read_log(self._dir(session_id))
        if not 1 <= checkpoint_id <= len(records):
            raise UnknownCheckpointError(session_id, checkpoint_id)
        return decode(Checkpoint, records[checkpoint_id - 1]["checkpoint"], where=session_id)

    def info(self, session_id: str) -> SessionInfo:
        from agentctl.state import SessionInfo
        from agentctl.store.codec import decode

        path = self._dir(session_id)
        return decode(SessionInfo, (path / "info.json").read_text(), where=f"session {session_id}")

    def head(self, session_id: str) -> Checkpoint:
        from agentctl.state import Checkpoint
        from agentctl.store.codec import decode

        path = self._dir(session_id)
        records = self._read_log(path)
        if not records:
            raise UnknownSessionError(f"no session {session_id!r}")
        return decode(Checkpoint, records[-1]["checkpoint"], where=session_id)

    def list_sessions(self) -> list[SessionSummary]:
        out = []
        for path in self.sessions_dir.iterdir():
            if not (path / "info.json").exists():
                continue  # a session whose creation did not finish
            summary = self._read_summary(path)
            if summary is not None:
                out.append(summary)
        return sorted(out, key=lambda s: (s.updated_at, s.id), reverse=True)

    def _read_summary(self, path: Path) -> SessionSummary | None:
        fields = ("id", "state", "goal", "title", "head", "created_at", "updated_at", "outcome")
        try:
            data = json.loads((path / "head.json").read_text())
            fresh = data.get("log_size") == (path / "events.jsonl").stat().st_size
        except (OSError, json.JSONDecodeError):
            fresh = False
        if not fresh:  # a crash between the log append and the summary: rebuild from the log
            records = self._read_log(path)
            if not records:
                return None
            size = (path / "events.jsonl").stat().st_size
            data = _summary(self._info_of(path), records[-1]["checkpoint"], size)
        return SessionSummary(*(data[f] for f in fields))

    def history(self, session_id: str) -> list[CheckpointSummary]:
        records = self._read_log(self._dir(session_id))
        return [
            CheckpointSummary(
                id=c["id"],
                parent=c["parent"],
                event=c["event"],
                from_state=c["from_state"],
                to_state=c["to_state"],
                created_at=c["created_at"],
                detail=c.get("detail", {}),
            )
            for c in (r["checkpoint"] for r in records)
        ]

    def match_sessions(self, prefix: str) -> list[str]:
        return sorted(
            p.name
            for p in self.sessions_dir.iterdir()
            if p.name.startswith(prefix) and (p / "info.json").exists()
        )

    def acquire_lease(self, session_id: str, lease: Lease) -> None:
        path = self._dir(session_id)
        with self._locked(path):
            held = None
            try:
                data = json.loads((path / "lease.json").read_text())
                held = Lease(data["host"], data["pid"], data["token"], data["expires_at"])
            except (OSError, ValueError, KeyError, TypeError):
                pass  # none, or unreadable: a lease is advisory, the head check is the guard
            check_takeover(session_id, held, lease)
            write_private_atomic(path / "lease.json", json.dumps(lease.__dict__))

    def release_lease(self, session_id: str, token: str) -> None:
        path = self._dir(session_id)
        with self._locked(path):
            try:
                if json.loads((path / "lease.json").read_text()).get("token") == token:
                    (path / "lease.json").unlink()
            except (OSError, ValueError):
                pass

    def check(self) -> list[str]:
        problems = []
        for path in sorted(self.sessions_dir.iterdir()):
            if not (path / "info.json").exists():
                problems.append(f"{path.name}: a session directory without info.json")
                continue
            try:
                self._read_log(path)
            except StoreError as exc:
                problems.append(exc.message)
        return problems

    def load_profile(self) -> UserProfile:
        from agentctl.state import UserProfile
        from agentctl.store.codec import decode

        path = self.root / "profile.json"
        if not path.exists():
            return UserProfile()
        return decode(UserProfile, path.read_text(), where=str(path))

    def save_profile(self, profile: UserProfile) -> None:
        from agentctl.store.codec import encode

        with self._locked(self.root):
            write_private_atomic(self.root / "profile.json", encode(profile))

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class _Tail:
    head: int  # the newest checkpoint's id (0: none yet)
    tip: int | None  # its last message
    next_message_id: int


def _summary(info: dict[str, Any], checkpoint: dict[str, Any], log_size: int) -> dict[str, Any]:
    """The head.json record: what `list` shows, and the log size it was written for."""
    return {
        "id": info["id"],
        "state": checkpoint["to_state"],
        "goal": info["spec"]["goal"],
        "title": info["spec"].get("title"),
        "head": checkpoint["id"],
        "created_at": info["created_at"],
        "updated_at": checkpoint["created_at"],
        "outcome": checkpoint["task"].get("outcome"),
        "message_tip": checkpoint["message_tip"],
        "log_size": log_size,
    }
