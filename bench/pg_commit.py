"""A PostgreSQL commit against its INSERT floor on a fast disk (issue 30 item 6: "PostgreSQL
commit <= 1.5x the INSERT floor on a fast disk").

A durable cluster (fsync on, synchronous commit on) whose data folder is on tmpfs (/dev/shm),
where an fsync costs nothing, so what is left is each commit's own work. One server, one run,
each subject in a database of its own and on a connection of its own:

- floor: one INSERT of the step's JSON (its message and task field) into a plain table and its
  COMMIT (autocommit): the least a durable write of those bytes costs. Timed: encoding the
  step's dicts (json.dumps) and the INSERT.
- agentctl: `Store.append` of the step's draft, fenced by head and lease, one statement writing
  the session row, the message and the checkpoint. Timed: planning, encoding and the statement.
  The draft (the pydantic models the runner builds whatever the store) is made before the
  clock starts, as the floor's dicts are; `agentctl with its draft` adds it, as this benchmark
  timed the commit until 2026-12-07.
- agentctl statement alone: the same statement with its parameters encoded before the clock
  starts: the driver, the round trip and the server, without agentctl's own Python.
- agentctl, foreign keys: the store as it was before migration p008 (two foreign keys checked
  at every insert instead of one trigger on delete), for what p008 bought.

Two ways of taking turns, both printed: `rounds` (each subject commits `steps` times in a row,
order alternating by round; the median of each round, then of the rounds) and `interleaved`
(every step, each subject commits once, the order rotating; the median over the steps). Rounds
keep each subject's caches warm, as a tight loop of commits; interleaved puts every subject in
the same moment of the machine's load, with the other work between commits a runner has.
The server's own mean time per statement comes from pg_stat_statements.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.postgres import AgentctlPostgres, RawPostgres
from bench.subjects import message, task_field

FLOOR = "floor"
APPEND = "agentctl"
STATEMENT = "agentctl statement alone"
FOREIGN_KEYS = "agentctl, foreign keys"
WITH_DRAFT = "agentctl with its draft"
WARM_UP = 20  # untimed commits of each subject first: its statement prepared, its caches filled


def tmpfs_folder() -> str | None:
    """/dev/shm when it is a tmpfs (Linux): a disk whose fsync costs nothing."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        fields = line.split()
        if len(fields) > 2 and fields[1] == "/dev/shm" and fields[2] == "tmpfs":
            return "/dev/shm"
    return None


class Floor:
    name = FLOOR

    def __init__(self, url: str) -> None:
        self.raw = RawPostgres(url)

    def prepare(self, step: int) -> Any:
        return {"message": message(step), "task": task_field(step)}

    def commit(self, body: Any) -> None:
        self.raw.conn.execute("INSERT INTO log (body) VALUES (%s)", (json.dumps(body),))

    def close(self) -> None:
        self.raw.close()


class Append:
    name = APPEND

    def __init__(self, url: str) -> None:
        self.subject = AgentctlPostgres(url)

    def prepare(self, step: int) -> Any:
        return self.subject.draft(step)

    def commit(self, draft: Any) -> None:
        self.subject.append(draft)

    def close(self) -> None:
        self.subject.close()


class ForeignKeys(Append):
    """The schema before p008: messages and checkpoints each with a foreign key to the session
    (checked at every insert), no trigger. Only to measure."""

    name = FOREIGN_KEYS

    def __init__(self, url: str) -> None:
        super().__init__(url)
        conn = self.subject.store.with_connection(lambda db: db)
        for table in ("messages", "checkpoints"):
            conn.execute(
                f"ALTER TABLE agentctl.{table} ADD CONSTRAINT {table}_session_id_fkey"
                " FOREIGN KEY (session_id) REFERENCES agentctl.sessions (id) ON DELETE CASCADE"
            )
        conn.execute("DROP TRIGGER session_rows_dropped ON agentctl.sessions")


class Statement:
    """agentctl's append statement, its parameters planned and encoded in `prepare`."""

    name = STATEMENT

    def __init__(self, url: str) -> None:
        import psycopg

        self.subject = AgentctlPostgres(url)  # the schema and a session at head 1
        self.subject.store.close()
        self.conn = psycopg.connect(url, autocommit=True)
        self.cursor = psycopg.RawCursor(self.conn)
        self.head, self.tip = 1, 0

    def prepare(self, step: int) -> Any:
        from agentctl.store.base import plan_append
        from agentctl.store.pg_append import append_params

        def no_compaction(message: int) -> int | None:
            raise AssertionError(message)

        self.subject.head = self.head
        plan = plan_append(
            self.subject.draft(step),
            checkpoint_id=self.head + 1,
            parent_tip=self.tip or None,
            next_message_id=self.tip + 1,
            parent_of=no_compaction,
        )
        return plan, append_params(self.subject.session, self.head, plan, None)

    def commit(self, prepared: Any) -> None:
        from agentctl.store.pg_append import append_sql

        plan, params = prepared
        self.cursor.execute(append_sql(len(plan.messages)), params)
        assert self.cursor.rowcount == 1
        self.head, self.tip = plan.checkpoint.id, plan.checkpoint.message_tip

    def close(self) -> None:
        self.conn.close()


KINDS: list[type] = [Floor, Append, Statement, ForeignKeys]


def warm_up(subject: Any) -> None:
    for step in range(2, WARM_UP + 2):
        subject.commit(subject.prepare(step))


def commit_times(subject: Any, steps: int, into: dict[str, list[float]]) -> None:
    """`steps` commits of `subject` in a row; the draft's making timed apart for agentctl."""
    warm_up(subject)
    for step in range(WARM_UP + 2, WARM_UP + steps + 2):
        started = time.perf_counter()
        prepared = subject.prepare(step)
        ready = time.perf_counter()
        subject.commit(prepared)
        done = time.perf_counter()
        into.setdefault(subject.name, []).append(done - ready)
        if subject.name == APPEND:
            into.setdefault(WITH_DRAFT, []).append(done - started)


def ratios(medians: dict[str, float]) -> dict[str, float]:
    return {name: round(value / medians[FLOOR], 2) for name, value in medians.items()}


def fast_disk(quick: bool) -> dict[str, Any]:
    """Both ways of taking turns on one tmpfs cluster; the report, printed and returned."""
    from agentctl.testing.postgres import ThrowawayPostgres, Unavailable

    folder = tmpfs_folder()
    if folder is None:
        return {"skipped": "no tmpfs at /dev/shm"}
    try:
        server = ThrowawayPostgres(
            durable=True,
            parent=folder,
            settings=("shared_preload_libraries=pg_stat_statements",),
        )
        server.start()
    except Unavailable as exc:
        return {"skipped": f"no PostgreSQL: {exc}"}
    import psycopg

    steps, rounds, interleaved_steps = (200, 3, 600) if quick else (1000, 5, 3000)
    load_before = os.getloadavg()
    per_round: dict[str, list[float]] = {}
    interleaved: dict[str, list[float]] = {}
    try:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        for n in range(rounds):
            for kind in KINDS if n % 2 == 0 else reversed(KINDS):
                subject = kind(server.database(f"fast_{kind.__name__.lower()}_{n}"))
                times: dict[str, list[float]] = {}
                commit_times(subject, steps, times)
                subject.close()
                for name, values in times.items():
                    per_round.setdefault(name, []).append(statistics.median(values))
        subjects = [kind(server.database(f"mixed_{kind.__name__.lower()}")) for kind in KINDS]
        for subject in subjects:
            warm_up(subject)
        for step in range(WARM_UP + 2, WARM_UP + interleaved_steps + 2):
            turn = step % len(subjects)
            for subject in subjects[turn:] + subjects[:turn]:
                prepared = subject.prepare(step)
                started = time.perf_counter()
                subject.commit(prepared)
                interleaved.setdefault(subject.name, []).append(time.perf_counter() - started)
        for subject in subjects:
            subject.close()
        server_ms = server_times(server.url, steps)
    finally:
        server.stop()
    rounds_ms = {k: statistics.median(v) * 1000 for k, v in per_round.items()}
    mixed_ms = {k: statistics.median(v) * 1000 for k, v in interleaved.items()}
    out: dict[str, Any] = {
        "disk": f"tmpfs ({folder}), fsync on",
        "load average before / after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "rounds": {
            "steps": steps,
            "rounds": rounds,
            "commit_median_ms": {k: round(v, 4) for k, v in rounds_ms.items()},
            "vs_floor": ratios(rounds_ms),
        },
        "interleaved": {
            "steps": interleaved_steps,
            "commit_median_ms": {k: round(v, 4) for k, v in mixed_ms.items()},
            "vs_floor": ratios(mixed_ms),
        },
        "server_exec_ms": server_ms,
        "commit_vs_floor": round(rounds_ms[APPEND] / rounds_ms[FLOOR], 2),
        "commit_vs_floor_interleaved": round(mixed_ms[APPEND] / mixed_ms[FLOOR], 2),
    }
    print("\nPostgreSQL commit on a fast disk (tmpfs, fsync on), ms and x the INSERT floor:")
    for way in ("rounds", "interleaved"):
        shown = ", ".join(
            f"{k} {out[way]['commit_median_ms'][k]} ({out[way]['vs_floor'][k]}x)"
            for k in out[way]["commit_median_ms"]
        )
        print(f"   {way}: {shown}")
    print("   server's own time per statement (ms):", json.dumps(server_ms))
    print("   load average before / after:", out["load average before / after"])
    return out


def server_times(url: str, steps: int) -> dict[str, float]:
    """The server's mean execution time of each subject's statement (pg_stat_statements)."""
    import psycopg

    out = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for name, kind, like in (
            ("floor INSERT", Floor, "INSERT INTO log%"),
            ("append", Append, "%WITH moved AS%"),
            ("append, foreign keys", ForeignKeys, "%WITH moved AS%"),
        ):
            row = conn.execute(
                "SELECT sum(s.total_exec_time) / sum(s.calls) FROM pg_stat_statements s"
                " JOIN pg_database d ON d.oid = s.dbid"
                " WHERE d.datname LIKE %s AND s.query LIKE %s AND s.calls >= %s",
                (f"%\\_{kind.__name__.lower()}%", like, steps - 1),
            ).fetchone()
            if row and row[0] is not None:
                out[name] = round(float(row[0]), 4)
    return out


if __name__ == "__main__":
    fast_disk("--quick" in sys.argv)
