"""The things measured, behind one small interface, all fed the same synthetic workload.

The workload: one session; each step appends one ~400-character message (user, assistant and
tool in turn) and changes a small task-state field, committed durably. Every SQLite subject runs
in WAL mode with synchronous=FULL (each commit is fsynced: it survives power loss).

- agentctl-sqlite / agentctl-jsonl: the real store code (`Store.append`), codec and models.
- langgraph-sqlite: LangGraph's SqliteSaver driven as a graph drives it each step: `put_writes`
  of the step's writes, then `put` of a checkpoint whose channel_values hold the whole message
  list and the task state (what MessagesState does), each committed by the saver.
- raw-sqlite: the physical limit: one INSERT of the step's new bytes (message + task field) and
  one COMMIT into a plain table.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any, Protocol

ROLES = ("user", "assistant", "tool")
SESSION = "bench0001"


def message_text(step: int) -> str:
    base = f"Step {step}: "
    filler = "the quick brown fox jumps over the lazy dog; " * 10
    return (base + filler)[:400]


def message(step: int) -> dict[str, Any]:
    role = ROLES[step % 3]
    out: dict[str, Any] = {"role": role, "content": message_text(step)}
    if role == "tool":
        out["tool_call_id"] = f"call_{step}"
    return out


def task_field(step: int) -> dict[str, Any]:
    return {"step": step, "note": f"working on item {step}"}


def dir_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class Subject(Protocol):
    name: str
    path: Path

    def commit(self, step: int) -> None: ...

    def rollback(self, to_step: int) -> None: ...

    def stop(self) -> float:
        """What the end of a run leaves behind, beyond its checkpoints: the seconds it takes."""
        ...

    def close(self) -> None: ...

    def size(self) -> int: ...


class AgentctlSubject:
    def __init__(
        self, kind: str, root: Path, url: str | None = None, session: str = SESSION
    ) -> None:
        """`url` names another store (PostgreSQL); `session` another session id."""
        from agentctl.domain.lifecycle import CheckpointKind, State
        from agentctl.domain.session import SessionInfo, Task, TaskSpec, Usage
        from agentctl.store import open_store
        from agentctl.store.base import CheckpointDraft

        self.name = f"agentctl-{kind}"
        self.path = root / ("agentctl.db" if kind == "sqlite" else "jsonl")
        self.session = session
        if url is None:
            url = f"sqlite://{self.path}" if kind == "sqlite" else f"json://{self.path}"
        self.url = url
        self.store = open_store(url)
        self._draft, self._task, self._usage = CheckpointDraft, Task, Usage
        info = SessionInfo(id=session, spec=TaskSpec(goal="bench"), model="bench", created_at="t")
        # A session `verify` finds sound: new_task (idle -> planning), then work that keeps
        # the state, dated in order.
        first = CheckpointDraft(
            None,
            CheckpointKind.NEW_TASK,
            State.IDLE,
            State.PLANNING,
            "2026-01-01",
            Task(goal="bench"),
            Usage(),
        )
        self.head = self.store.create_session(info, first).id

    def commit(self, step: int) -> None:
        self.append(self.draft(step))

    def draft(self, step: int) -> Any:
        """The step's checkpoint as the runner hands it to the store (a CheckpointDraft)."""
        from agentctl.domain.lifecycle import CheckpointKind, State
        from agentctl.domain.session import Message

        return self._draft(
            parent=self.head,
            kind=CheckpointKind.TOOL_RESULT,
            from_state=State.PLANNING,
            to_state=State.PLANNING,
            created_at=f"2026-01-01T00:00:00.{step:06d}",
            task=self._task(goal="bench", data=task_field(step)),
            usage=self._usage(),
            new_messages=(Message.model_validate({**message(step), "tokens": 100}),),
        )

    def append(self, draft: Any) -> None:
        self.head = self.store.append(self.session, self.head, draft).id

    def stop(self) -> float:
        from agentctl.llm.openai_chat import prepare
        from agentctl.store.listing import keep_listing
        from agentctl.store.ready import keep_ready, owner_of

        # As the runner does when a run stops: the conversation kept ready for the next resume
        # and the history listing kept. Timed from the session in memory, as a runner has it.
        session = self.store.load(self.session)
        started = time.perf_counter()
        keep_ready(self.store, session, prepare)
        keep_listing(self.store, self.session, owner_of(session.info), session.checkpoint.id)
        return time.perf_counter() - started

    def rollback(self, to_step: int) -> None:
        from agentctl.domain.checkpoints import RollbackDetail
        from agentctl.domain.lifecycle import CheckpointKind, State

        target = self.store.get_checkpoint(self.session, to_step)
        draft = self._draft(
            parent=to_step,
            kind=CheckpointKind.ROLLBACK,
            from_state=State.PLANNING,
            to_state=target.to_state,
            created_at="2026-01-02",
            task=target.task,
            usage=target.usage,
            detail=RollbackDetail(to_step, self.head),
        )
        self.head = self.store.append(self.session, self.head, draft).id

    def close(self) -> None:
        self.store.close()

    def size(self) -> int:
        return dir_size(self.path)


class LangGraphSubject:
    name = "langgraph-sqlite"

    def __init__(self, root: Path) -> None:
        from langgraph.checkpoint.sqlite import SqliteSaver

        self.path = root / "langgraph.db"
        self.conn = sqlite3.connect(self.path, check_same_thread=False)
        saver = SqliteSaver(self.conn)
        saver.setup()
        self.conn.execute("PRAGMA synchronous=FULL")
        self._begin(saver)

    def _begin(self, saver: Any) -> None:
        """Drive `saver` (SqliteSaver, PostgresSaver: the same interface) as a graph does."""
        self.saver = saver
        self.config: dict[str, Any] = {"configurable": {"thread_id": SESSION, "checkpoint_ns": ""}}
        self.messages: list[dict[str, Any]] = []
        self.ids: list[dict[str, Any]] = []  # config of each step's checkpoint, from step 0
        self._put(0, [], {}, self.config)  # the input checkpoint a graph writes first

    def _put(
        self,
        step: int,
        messages: list[dict[str, Any]],
        task: dict[str, Any],
        parent: dict[str, Any],
    ) -> None:
        from langgraph.checkpoint.base import empty_checkpoint
        from langgraph.checkpoint.base.id import uuid6

        checkpoint = empty_checkpoint()
        checkpoint["id"] = str(uuid6(clock_seq=step))
        checkpoint["channel_values"] = {"messages": messages, "task": task}
        checkpoint["channel_versions"] = {"messages": step, "task": step}
        self.config = self.saver.put(
            parent,
            checkpoint,
            {"source": "loop", "step": step, "parents": {}},
            {"messages": step, "task": step},
        )
        self.ids.append(self.config)

    def commit(self, step: int) -> None:
        new = message(step)
        self.messages = [*self.messages, new]
        self.saver.put_writes(
            self.config, [("messages", [new]), ("task", task_field(step))], str(uuid.uuid4())
        )
        self._put(step, self.messages, task_field(step), self.config)

    def stop(self) -> float:
        return 0.0  # every checkpoint holds its whole conversation already

    def rollback(self, to_step: int) -> None:
        # Time travel as LangGraph does it: a new checkpoint forked from the old one, holding
        # that checkpoint's state.
        old = self.saver.get_tuple(self.ids[to_step])
        assert old is not None
        values = old.checkpoint["channel_values"]
        self._put(len(self.ids), values["messages"], values["task"], old.config)

    def close(self) -> None:
        self.conn.close()

    def size(self) -> int:
        return dir_size(self.path)


class RawSubject:
    name = "raw-sqlite"

    def __init__(self, root: Path) -> None:
        self.path = root / "raw.db"
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE log (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")

    def commit(self, step: int) -> None:
        body = json.dumps({"message": message(step), "task": task_field(step)})
        self.db.execute("BEGIN")
        self.db.execute("INSERT INTO log (body) VALUES (?)", (body,))
        self.db.execute("COMMIT")

    def stop(self) -> float:
        return 0.0

    def rollback(self, to_step: int) -> None:
        self.db.execute("BEGIN")
        self.db.execute("INSERT INTO log (body) VALUES (?)", (json.dumps({"rollback": to_step}),))
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    def size(self) -> int:
        return dir_size(self.path)


def make(name: str, root: Path) -> Subject:
    root.mkdir(parents=True, exist_ok=True)
    if name == "agentctl-sqlite":
        return AgentctlSubject("sqlite", root)
    if name == "agentctl-jsonl":
        return AgentctlSubject("jsonl", root)
    if name == "langgraph-sqlite":
        return LangGraphSubject(root)
    if name == "raw-sqlite":
        return RawSubject(root)
    raise ValueError(name)


def path_of(name: str, root: Path) -> Path:
    return (
        root
        / {
            "agentctl-sqlite": "agentctl.db",
            "agentctl-jsonl": "jsonl",
            "langgraph-sqlite": "langgraph.db",
            "raw-sqlite": "raw.db",
        }[name]
    )


__all__ = ["Subject", "make", "os", "path_of"]
